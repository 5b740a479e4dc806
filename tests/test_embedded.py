"""The no-server default: with no DSN, runner brings up an embedded PostgreSQL of the project."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from helpers import assert_clean_error, no_database_env, runner_cli, write

from runner import embedded


@pytest.fixture
def project(embedded_project: Path) -> Path:
    write(embedded_project / "sql", "0001_create_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    write(embedded_project / "sql", "0002_seed.sql", "INSERT INTO things VALUES (1);\n")
    return embedded_project


def _modes(path: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.stat().st_mode) for p in [path, *path.parents]}


def test_migrate_without_dsn_uses_the_embedded_server_and_stops_it_after(project: Path) -> None:
    modes_before = _modes(project)
    first = runner_cli("migrate", cwd=project, env=no_database_env(), timeout=300)
    assert first.returncode == 0, first.stderr
    notes = [line for line in first.stderr.splitlines() if "Using the embedded PostgreSQL" in line]
    assert len(notes) == 1, first.stderr
    assert "Applied 2 migration(s)" in first.stdout

    second = runner_cli("migrate", cwd=project, env=no_database_env(), timeout=300)
    assert second.returncode == 0, second.stderr
    assert "All migrations are up to date" in second.stdout

    lay = embedded.layout(project)
    assert (lay.data_dir / "PG_VERSION").exists()
    assert not embedded._running(lay), "the last runner out stops the server"
    assert _modes(project) == modes_before, "no folder's permissions were changed"
    if os.geteuid() == 0:
        # PostgreSQL refuses root: the server ran as an unprivileged user, in a folder it owns.
        owner = lay.data_dir.stat().st_uid
        assert owner != 0 and owner == lay.uid
        assert not str(lay.data_dir).startswith(str(project))
        assert (project / ".runner" / "pgdata").resolve() == lay.data_dir.resolve()
    else:
        assert lay.data_dir == project / ".runner" / "pgdata"


def test_wrong_password_exits_5_without_showing_it(project: Path) -> None:
    lay = embedded.layout(project)
    embedded.init_cluster(lay, password="right-horse-battery")
    embedded.start(lay)
    wrong = f"postgresql://postgres:Wr0ng-S3cret@/postgres?host={lay.socket_dir}&port={embedded.PORT}"
    result = runner_cli("status", "--dsn", wrong, "--dir", project / "sql")
    error = assert_clean_error(result, 5, "password authentication failed", "postgres@")
    assert "Wr0ng-S3cret" not in result.stdout + result.stderr and error

    right = wrong.replace("Wr0ng-S3cret", "right-horse-battery")
    ok = runner_cli("migrate", "--dsn", right, "--dir", project / "sql")
    assert ok.returncode == 0, ok.stderr
    assert "right-horse-battery" not in ok.stdout + ok.stderr


def test_from_a_sub_folder_the_projects_own_server_is_used(project: Path) -> None:
    write(project, "pyproject.toml", '[tool.runner]\ndir = "sql"\n')
    inside = runner_cli("migrate", cwd=project / "sql", env=no_database_env())
    assert inside.returncode == 0, inside.stderr
    assert not (project / "sql" / ".runner").exists() and (project / ".runner").is_dir()
    status = runner_cli("status", "--json", cwd=project, env=no_database_env())
    assert [m["state"] for m in json.loads(status.stdout)["migrations"]] == ["applied", "applied"]
