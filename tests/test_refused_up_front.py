"""What migrate refuses before its first file runs, seen from the command line: exit 2, and nothing applied.

Each case puts a good file before the bad one, so that a check made too late would show as a
first file applied and recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import assert_clean_error, query, runner_cli, write

GOOD = "CREATE TABLE first_table (id int);\n"


def _nothing_applied(dsn: str) -> None:
    assert query(dsn, "SELECT to_regclass('first_table')") == [(None,)]
    if query(dsn, "SELECT to_regclass('runner_migrations')") != [(None,)]:
        assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(0,)]


def test_a_timeout_directive_longer_than_postgres_allows_is_refused_before_the_first_file_runs(
    dsn: str, migrations: Path
) -> None:
    write(migrations, "0001_first.sql", GOOD)
    write(migrations, "0002_wait.sql", "-- runner: lock-timeout=99999999999h\nSELECT 1;\n")
    refused = runner_cli("migrate", "--dsn", dsn, "--dir", migrations)
    assert_clean_error(refused, 2, "0002_wait.sql, line 1: lock-timeout",
                       "'99999999999h' is longer than PostgreSQL allows", "2147483647ms")  # fmt: skip
    _nothing_applied(dsn)


def test_a_timeout_option_longer_than_postgres_allows_is_refused(dsn: str, migrations: Path) -> None:
    write(migrations, "0001_first.sql", GOOD)
    refused = runner_cli("migrate", "--dsn", dsn, "--dir", migrations, "--statement-timeout", "25d")
    assert_clean_error(refused, 2, "--statement-timeout: '25d' is longer than PostgreSQL allows")
    _nothing_applied(dsn)


def test_a_file_that_deletes_from_the_tracking_table_is_refused_before_anything_runs(
    dsn: str, migrations: Path
) -> None:
    write(migrations, "0001_first.sql", GOOD)
    write(migrations, "0002_forget.sql", "-- start over\nDELETE FROM runner_migrations;\n")
    refused = runner_cli("migrate", "--dsn", dsn, "--dir", migrations)
    assert_clean_error(refused, 2, "0002_forget.sql, line 2: DELETE FROM public.runner_migrations changes one of "
                                   "runner's own tables", "runner unmark VERSION")  # fmt: skip
    _nothing_applied(dsn)


def test_a_file_that_changes_the_tables_of_another_table_name_is_refused(dsn: str, migrations: Path) -> None:
    write(migrations, "0001_first.sql", GOOD)
    write(migrations, "0002_tidy.sql", "TRUNCATE ops.deploys_history;\n")
    refused = runner_cli("migrate", "--dsn", dsn, "--dir", migrations, "--table", "ops.deploys")
    assert_clean_error(refused, 2, "0002_tidy.sql, line 1: TRUNCATE ops.deploys_history changes one of runner's own")
    assert query(dsn, "SELECT to_regclass('first_table')") == [(None,)]


def test_plan_reports_a_file_the_parser_rejects_as_a_failure_to_come(dsn: str, migrations: Path) -> None:
    write(migrations, "0001_first.sql", GOOD)
    write(migrations, "0002_typo.sql", "-- a typo\nCREATE TABLE second_table (id int);\nCREATE TABL third (id int);\n")
    for command in (["plan"], ["migrate", "--dry-run"]):
        planned = runner_cli(*command, "--dsn", dsn, "--dir", migrations)
        failure = 'line 3: syntax error at or near "TABL" (pglast '
        error = assert_clean_error(planned, 3, f"1 migration(s) would fail: 0002_typo.sql at {failure}", "grammar)",
                                   "nothing was changed")  # fmt: skip
        assert planned.stdout.splitlines() == [
            "0001_first.sql: 1 statement(s), one transaction",
            f"0002_typo.sql: would fail at {error.split(' at ', 1)[1].split('. Fix')[0]}",
            "2 migration(s) would run, 1 of which would fail; nothing was changed",
        ]
    doc = json.loads(runner_cli("plan", "--dsn", dsn, "--dir", migrations, "--json").stdout)
    assert [(s["name"], s["statements"], (s["failure"] or "")[:31]) for s in doc["would_run"]] == [
        ("0001_first.sql", 1, ""), ("0002_typo.sql", None, 'line 3: syntax error at or near')]  # fmt: skip
    _nothing_applied(dsn)
