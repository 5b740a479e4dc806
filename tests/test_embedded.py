"""The no-server default: with no DSN, runner brings up an embedded PostgreSQL of the project."""

from __future__ import annotations

import functools
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT, assert_clean_error, no_database_env, on_terminals, remove_embedded, runner_cli, write

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


# The embedded database belongs to its clone.


def _home(project: Path) -> Path | None:
    """As root, the folder under /var/lib/runner-pg holding the project's data (None when it is in the clone)."""
    link = embedded.layout(project).state_dir / "pgdata"
    return Path(os.readlink(link)).parent if link.is_symlink() else None


def test_a_new_clone_at_the_same_path_gets_a_new_database_and_the_old_ones_data_is_removed(project: Path) -> None:
    first = runner_cli("migrate", cwd=project, env=no_database_env(), timeout=300)
    assert first.returncode == 0, first.stderr
    old_home = _home(project)
    files = {p.name: p.read_bytes() for p in (project / "sql").iterdir()}
    shutil.rmtree(project)  # the clone is deleted, and cloned again at the same path
    for name, text in files.items():
        write(project / "sql", name, text)

    status = runner_cli("status", "--json", cwd=project, env=no_database_env(), timeout=300)
    assert status.returncode == 0, status.stderr
    assert "Creating the embedded PostgreSQL" in status.stderr
    assert [m["state"] for m in json.loads(status.stdout)["migrations"]] == ["pending", "pending"]
    if old_home is not None:  # as root: the old clone's data was outside it, and is gone now too
        assert not old_home.exists()
        assert _home(project) != old_home


def test_db_destroy_asks_first_refuses_without_a_terminal_and_deletes_with_yes(project: Path) -> None:
    assert runner_cli("migrate", cwd=project, env=no_database_env(), timeout=300).returncode == 0
    lay = embedded.layout(project)
    no_terminal = subprocess.run([sys.executable, "-m", "runner", "db", "destroy"], capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL, cwd=project, env=no_database_env())  # fmt: skip
    assert_clean_error(no_terminal, 2, "no terminal to confirm it on; pass --yes")
    code, shown, _ = on_terminals("db", "destroy", cwd=project, env=no_database_env(), answer="n")
    assert code == 1 and "with all its data? [y/N]" in shown and "nothing was deleted" in shown, shown
    assert (lay.data_dir / "PG_VERSION").exists()

    other = no_database_env(DATABASE_URL="postgresql://x@db/x")
    elsewhere = runner_cli("db", "destroy", "--yes", cwd=project, env=other)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "DATABASE_URL is set" in elsewhere.stderr and "deletes the embedded one only" in elsewhere.stderr
    assert elsewhere.stdout.startswith("Deleted the embedded PostgreSQL in ")
    assert not lay.data_dir.exists() and not os.path.lexists(project / ".runner" / "pgdata")
    assert lay.home is None or not lay.home.exists()
    again = runner_cli("db", "destroy", "--yes", cwd=project, env=no_database_env())
    assert again.returncode == 0, again.stderr
    assert again.stdout == "There is no embedded PostgreSQL in this project: nothing to delete\n"


def test_a_migration_needing_an_extension_the_embedded_build_lacks_says_why_and_what_to_do(project: Path) -> None:
    write(project / "sql", "0003_uuids.sql", 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp";\n')
    result = runner_cli("migrate", cwd=project, env=no_database_env(), timeout=300)
    assert_clean_error(result, 3, '0003_uuids.sql failed in the statement at line 1: extension "uuid-ossp" is not '
                       "available", "has no uuid-ossp: built without OpenSSL, libuuid and libxml",
                       "use the built-in gen_random_uuid()", "point DATABASE_URL at a PostgreSQL server")  # fmt: skip
    assert "Applied" not in result.stdout and "Completed: 0002_seed.sql" in result.stdout


# Root and a normal user on one project. These need root, to make a project of another user's.

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the project is made for another user")


@functools.cache
def _python_for(user: str) -> str:
    """A Python interpreter that ``user`` can run with runner's packages (the venv's may live in /root)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.realpath(sys.executable), shutil.which(version) or "", f"/usr/bin/{version}"):
        if candidate and _as(user, [candidate, "-c", "import psycopg, typer, pglast"], Path("/")).returncode == 0:
            return candidate
    pytest.fail(f"no {version} that {user} can run")


def _as(user: str, command: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as ``user`` (setpriv: that user's ids and no other group), with runner's packages."""
    entry = pwd.getpwnam(user)
    path = os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])
    env = no_database_env(HOME=str(cwd), PYTHONPATH=path, **extra)
    prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    return subprocess.run([*prefix, *command], capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def runner_as(user: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _as(user, [_python_for(user), "-m", "runner", *args], cwd)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder every user can reach (pytest's own tmp_path is root's alone), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="runner-test-"))
    folder.chmod(0o755)
    yield folder
    for project in folder.iterdir():
        remove_embedded(project)
    shutil.rmtree(folder)


def _project_of(user: str, folder: Path) -> Path:
    write(folder, "pyproject.toml", '[project]\nname = "app"\n')
    write(folder / "sql", "0001_create_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    entry = pwd.getpwnam(user)
    for path in (folder, folder / "pyproject.toml", folder / "sql", folder / "sql" / "0001_create_things.sql"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return folder


@as_root
def test_root_and_the_owner_of_a_project_share_its_embedded_database(shared: Path) -> None:
    project = _project_of("nobody", shared / "app")
    by_root = runner_cli("migrate", cwd=project, env=no_database_env(), timeout=300)
    assert by_root.returncode == 0, by_root.stderr
    assert "Using the embedded PostgreSQL in .runner/pgdata, run by user nobody" in by_root.stderr
    assert not (project / ".runner" / "id").exists(), "no data of this project outside it"
    assert {p.owner() for p in (project / ".runner").iterdir()} == {"nobody"}

    by_owner = runner_as("nobody", "status", "--json", cwd=project)
    assert by_owner.returncode == 0, by_owner.stderr
    assert [m["state"] for m in json.loads(by_owner.stdout)["migrations"]] == ["applied"]
    destroyed = runner_as("nobody", "db", "destroy", "--yes", cwd=project)
    assert destroyed.returncode == 0, destroyed.stderr
    assert not (project / ".runner" / "pgdata").exists()


@as_root
def test_a_user_on_a_clone_whose_database_root_made_gets_one_error_line_with_the_fix(shared: Path) -> None:
    project = _project_of("root", shared / "app")
    home = _home(project)  # as root `runner db url` would, before any cluster: the id, the link, the folder
    assert home is not None
    before = sorted(p.name for p in (project / ".runner").iterdir())

    linked = runner_as("nobody", "status", cwd=project)
    assert_clean_error(linked, 5, f"was created by root, in {home}, and only root can use it",
                       "`runner db destroy`", f"`chown -R nobody {project / '.runner'}`")  # fmt: skip
    (project / ".runner").chmod(0o700)
    unreadable = runner_as("nobody", "db", "destroy", "--yes", cwd=project / "sql")
    assert_clean_error(unreadable, 5, f"{project / '.runner'} belongs to root, and nobody cannot use it",
                       f"`chown -R nobody {project / '.runner'}`", "`runner db destroy`")  # fmt: skip
    assert sorted(p.name for p in (project / ".runner").iterdir()) == before and home.exists()
    assert json.loads((home / "clone").read_text()) == {"path": str(project), "id": home.name}
