"""Repeatable migrations: files under sql/repeatable/, run after the numbered ones and again whenever they change."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest
from helpers import assert_clean_error, query, runner_cli, write

import runner

VIEW = "CREATE OR REPLACE VIEW big_orders AS SELECT id, total FROM orders WHERE total > {limit};\n"


def _run(dsn: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return runner_cli(*args, "--dsn", dsn, "--dir", folder)


def _project(folder: Path) -> None:
    write(folder, "1_orders.sql", "CREATE TABLE orders (id int PRIMARY KEY, total int NOT NULL);\n")
    write(folder / "repeatable", "views.sql", VIEW.format(limit=100))
    # Named to sort first, yet it runs after the numbered files: it needs the table of 2_lines.sql.
    write(
        folder / "repeatable",
        "a_function.sql",
        "CREATE OR REPLACE FUNCTION line_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM lines';\n",
    )
    write(folder, "2_lines.sql", "CREATE TABLE lines (order_id int REFERENCES orders);\n")  # fmt: skip


def _recorded(dsn: str) -> list[tuple[object, ...]]:
    return query(dsn, "SELECT name, checksum, executed_at FROM runner_migrations_repeatable ORDER BY name")


def _limit(dsn: str) -> str:
    return str(query(dsn, "SELECT pg_get_viewdef('big_orders')")[0][0])


def test_repeatable_files_run_after_the_numbered_ones_in_name_order_then_only_when_changed(
    dsn: str, migrations: Path
) -> None:
    _project(migrations)
    first = _run(dsn, migrations, "migrate")
    assert first.returncode == 0, first.stderr
    completed = [line.split()[1] for line in first.stdout.splitlines() if line.startswith("Completed:")]
    assert completed == ["1_orders.sql", "2_lines.sql", "repeatable/a_function.sql", "repeatable/views.sql"]
    assert "Applied 4 migration(s)" in first.stdout
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(2,)]  # the numbered files only
    before = _recorded(dsn)
    assert [row[0] for row in before] == ["repeatable/a_function.sql", "repeatable/views.sql"]

    again = _run(dsn, migrations, "migrate")
    assert again.stdout.strip() == "All migrations are up to date"
    assert _recorded(dsn) == before  # not run again: same checksum, same time

    write(migrations / "repeatable", "views.sql", VIEW.format(limit=500))
    status = _run(dsn, migrations, "status", "--json")
    states = {m["name"]: (m["version"], m["state"], m["repeatable"]) for m in json.loads(status.stdout)["migrations"]}
    assert states == {
        "1_orders.sql": (1, "applied", False),
        "2_lines.sql": (2, "applied", False),
        "repeatable/a_function.sql": (None, "applied", True),
        "repeatable/views.sql": (None, "outdated", True),
    }
    verify = _run(dsn, migrations, "verify")
    assert verify.returncode == 0, verify.stdout  # a changed repeatable file is pending work, not drift
    assert "outdated     repeatable/views.sql: checksum sha256:" in verify.stdout
    assert _run(dsn, migrations, "verify", "--strict").returncode == 1
    planned = _run(dsn, migrations, "plan")
    assert planned.stdout.splitlines()[0] == "repeatable/views.sql: 1 statement(s), one transaction"

    rerun = _run(dsn, migrations, "migrate")
    assert rerun.returncode == 0, rerun.stderr
    assert [line.split()[1] for line in rerun.stdout.splitlines() if line.startswith("Completed:")] == [
        "repeatable/views.sql"
    ]
    assert "500" in _limit(dsn)
    after = _recorded(dsn)
    assert after[0] == before[0] and after[1][1] != before[1][1] and after[1][2] > before[1][2]
    history = query(dsn, "SELECT action, version, name FROM runner_migrations_history ORDER BY id")
    assert history[-1] == ("apply", None, "repeatable/views.sql")
    assert [h for h in history if h[2] == "repeatable/views.sql"] == [("apply", None, "repeatable/views.sql")] * 2
    clean = _run(dsn, migrations, "verify")
    assert clean.returncode == 0 and "No drift" in clean.stdout, clean.stdout  # its own table is not schema drift


def test_a_failing_repeatable_file_rolls_back_and_keeps_its_old_record(dsn: str, migrations: Path) -> None:
    _project(migrations)
    assert _run(dsn, migrations, "migrate").returncode == 0
    before = _recorded(dsn)
    write(migrations / "repeatable", "views.sql", VIEW.format(limit=500) + "SELECT no_such_column FROM orders;\n")
    failed = _run(dsn, migrations, "migrate")
    assert_clean_error(failed, 3, "repeatable/views.sql failed at line 2", "rolled back")
    assert "100" in _limit(dsn) and _recorded(dsn) == before
    assert query(dsn, "SELECT outcome FROM runner_migrations_history ORDER BY id DESC LIMIT 1") == [("failed",)]


def test_a_deleted_repeatable_file_is_drift_until_unmarked(dsn: str, migrations: Path) -> None:
    _project(migrations)
    assert _run(dsn, migrations, "migrate").returncode == 0
    (migrations / "repeatable" / "views.sql").unlink()
    verify = _run(dsn, migrations, "verify")
    assert verify.returncode == 1
    assert "missing      repeatable/views.sql: applied" in verify.stdout
    assert "`runner unmark repeatable/views.sql` forgets it" in verify.stdout
    assert_clean_error(_run(dsn, migrations, "migrate", "--strict"), 1, "repeatable/views.sql (missing")
    forgotten = _run(dsn, migrations, "unmark", str(migrations / "repeatable" / "views.sql"))
    assert forgotten.returncode == 0, forgotten.stderr
    assert forgotten.stdout.startswith("Unmarked repeatable/views.sql")
    assert [r[0] for r in _recorded(dsn)] == ["repeatable/a_function.sql"]
    assert _run(dsn, migrations, "verify").returncode == 0


def test_to_holds_repeatable_files_back_while_a_numbered_file_waits(dsn: str, migrations: Path) -> None:
    _project(migrations)
    partial = _run(dsn, migrations, "migrate", "--to", "1")
    assert partial.returncode == 0, partial.stderr
    assert "Applied 1 migration(s)" in partial.stdout
    assert query(dsn, "SELECT to_regclass('runner_migrations_repeatable')") == [(None,)]
    rest = _run(dsn, migrations, "migrate", "--to", "2")  # nothing numbered is left: the repeatable files run
    assert "Applied 3 migration(s)" in rest.stdout, rest.stdout


def test_marking_a_repeatable_file_is_refused(dsn: str, migrations: Path) -> None:
    _project(migrations)
    assert_clean_error(_run(dsn, migrations, "mark", "repeatable/views.sql"), 2, "a repeatable file is not marked")
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(0,)]


def test_a_table_of_that_name_that_is_not_runners_is_left_alone(dsn: str, migrations: Path) -> None:
    _project(migrations)
    query(dsn, "CREATE TABLE runner_migrations_repeatable (name text, note text)")
    failed = _run(dsn, migrations, "migrate")
    assert_clean_error(failed, 2, "runner_migrations_repeatable exists but is not runner's table")
    assert query(dsn, "SELECT to_regclass('orders')") == [(None,)]


def test_a_history_table_from_before_repeatable_files_is_upgraded(dsn: str, migrations: Path) -> None:
    write(migrations, "1_orders.sql", "CREATE TABLE orders (id int PRIMARY KEY, total int NOT NULL);\n")
    assert _run(dsn, migrations, "migrate").returncode == 0
    query(dsn, "ALTER TABLE runner_migrations_history ALTER COLUMN version SET NOT NULL")  # as it was made then
    write(migrations / "repeatable", "views.sql", VIEW.format(limit=100))
    done = _run(dsn, migrations, "migrate")
    assert done.returncode == 0, done.stderr
    assert query(dsn, "SELECT count(*) FROM runner_migrations_history WHERE version IS NULL") == [(1,)]


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda f: write(f, "repeatable", "not a folder"), "repeatable is not a folder"),
        (lambda f: write(f / "repeatable", "Views.SQL", "SELECT 1;"), "rename it to end in lower-case .sql"),
        (lambda f: write(f / "repeatable", "views.sql", b"SELECT '\xff';"), "not valid UTF-8"),
        (lambda f: (f / "repeatable" / "old.sql").mkdir(parents=True), "a folder named like a migration file"),
    ],
    ids=["file-named-repeatable", "upper-case-suffix", "not-utf8", "folder-named-sql"],
)
def test_a_bad_repeatable_folder_is_refused_before_anything_runs(
    dsn: str, migrations: Path, make: object, needle: str
) -> None:
    write(migrations, "1_orders.sql", "CREATE TABLE orders (id int);\n")
    make(migrations)  # type: ignore[operator]
    assert_clean_error(_run(dsn, migrations, "migrate"), 2, needle)
    assert query(dsn, "SELECT to_regclass('orders')") == [(None,)]


def test_the_library_reports_repeatable_files_too(dsn: str, migrations: Path) -> None:
    _project(migrations)
    with psycopg.connect(dsn) as conn:
        result = runner.migrate(conn, migrations)
        assert [a.name for a in result.applied][-2:] == ["repeatable/a_function.sql", "repeatable/views.sql"]
        assert [a.version for a in result.applied][-2:] == [None, None]
        write(migrations / "repeatable", "views.sql", VIEW.format(limit=7))
        assert [e.name for e in runner.verify(conn, migrations).pending] == ["repeatable/views.sql"]


def test_lint_takes_a_repeatable_file_by_path_and_as_a_pending_one(dsn: str, migrations: Path) -> None:
    write(migrations / "repeatable", "views.sql", "CREATE OR REPLACE VIEW v AS SELECT 1 AS one;\n")
    by_path = _run(dsn, migrations, "lint", "--json", str(migrations / "repeatable" / "views.sql"))
    pending = _run(dsn, migrations, "lint", "--json")
    assert by_path.returncode == pending.returncode == 0, by_path.stderr + pending.stderr
    assert {f["file"] for f in json.loads(pending.stdout)["findings"]} == {str(migrations / "repeatable" / "views.sql")}
    assert json.loads(by_path.stdout) == json.loads(pending.stdout)
