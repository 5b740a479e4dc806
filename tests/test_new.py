"""`runner new`: the next file, numbered like its neighbours."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from helpers import assert_clean_error, runner_cli, write

from runner.files import discover
from runner.scaffold import new_migration, next_version


def test_new_file_follows_the_padding_of_its_neighbours(migrations: Path) -> None:
    write(migrations, "0001_a.sql", "SELECT 1;\n")
    write(migrations, "0009_b.sql", "SELECT 1;\n")
    result = runner_cli("new", "Add due date to TAT alerts!", "--dir", migrations)
    assert result.returncode == 0, result.stderr
    created = migrations / "0010_add_due_date_to_tat_alerts.sql"
    assert result.stdout.strip() == f"Created {created}"
    assert created.read_text().startswith("-- Add due date to TAT alerts!\n")
    assert [m.version for m in discover(migrations)] == [1, 9, 10]


def test_first_file_in_an_empty_folder(tmp_path: Path) -> None:
    assert [p.name for p in new_migration(tmp_path, "init")] == ["0001_init.sql"]


def test_new_from_the_migrations_folder_adds_to_it_and_a_mistyped_dir_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[project]\nname = "app"\n')
    write(tmp_path / "sql", "0001_first.sql", "SELECT 1;\n")
    inside = runner_cli("new", "second", cwd=tmp_path / "sql")
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout == "Created 0002_second.sql\n"
    assert sorted(p.name for p in (tmp_path / "sql").iterdir()) == ["0001_first.sql", "0002_second.sql"]

    typo = runner_cli("new", "third", "--dir", "sqll", cwd=tmp_path)
    assert_clean_error(typo, 2, "migrations folder sqll does not exist")
    assert not (tmp_path / "sqll").exists()


def test_new_in_a_project_without_a_migrations_folder_says_to_create_it(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[project]\nname = "app"\n')
    (tmp_path / "docs").mkdir()
    result = runner_cli("new", "init", cwd=tmp_path / "docs")
    assert_clean_error(result, 2, f"migrations folder {tmp_path / 'sql'} does not exist; create it")
    assert not (tmp_path / "sql").exists() and not (tmp_path / "docs" / "sql").exists()


def test_versions_without_padding_and_timestamps() -> None:
    assert next_version(["1", "2", "10"]) == "11"
    assert next_version(["0099"]) == "0100"
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert next_version(["20251104120000"], now) == "20261125120000"
    assert next_version(["20271104120000"], now) == "20271104120001"


def test_description_without_letters_exits_2(migrations: Path) -> None:
    assert_clean_error(runner_cli("new", "!!!", "--dir", migrations), 2, "description")


def test_new_as_json_names_the_file(migrations: Path) -> None:
    write(migrations, "0001_first.sql", "SELECT 1;\n")
    result = runner_cli("new", "add due date", "--dir", migrations, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"created": str(migrations / "0002_add_due_date.sql"), "down": None}


def test_new_creates_the_down_file_with_down_or_where_the_project_keeps_them(migrations: Path) -> None:
    write(migrations, "0001_first.sql", "SELECT 1;\n")
    made = runner_cli("new", "add due date", "--down", "--dir", migrations)
    assert made.returncode == 0, made.stderr
    up, down = migrations / "0002_add_due_date.sql", migrations / "down" / "0002_add_due_date.sql"
    assert made.stdout.splitlines() == [f"Created {up}", f"Created {down}"]
    assert down.read_text().startswith("-- Undoes 0002_add_due_date.sql: add due date\n")
    kept = runner_cli("new", "add region", "--dir", migrations, "--json")  # sql/down/ exists now
    assert json.loads(kept.stdout) == {"created": str(migrations / "0003_add_region.sql"),
                                       "down": str(migrations / "down" / "0003_add_region.sql")}  # fmt: skip
    assert runner_cli("new", "add index", "--no-down", "--dir", migrations).returncode == 0
    assert not (migrations / "down" / "0004_add_index.sql").exists()
    write(migrations / "down", "0005_add_kind.sql", "SELECT 1;\n")  # in the way: neither file is left
    assert_clean_error(runner_cli("new", "add kind", "--dir", migrations), 2, "0005_add_kind.sql already exists")
    assert not (migrations / "0005_add_kind.sql").exists()


def test_a_long_description_names_the_file_by_its_start_and_is_kept_whole_inside(migrations: Path) -> None:
    migrations.mkdir()
    description = "backfill the approval levels of every request " * 8  # 384 characters: no file name is so long
    result = runner_cli("new", description, "--dir", migrations)
    assert result.returncode == 0, result.stderr
    (created,) = migrations.iterdir()
    assert created.name.startswith("0001_backfill_the_approval_levels") and len(created.name.encode()) <= 255
    assert description.strip() in created.read_text()
