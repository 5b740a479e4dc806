"""What a DBA does by hand, written down: accept, mark, baseline, unmark, and the history that explains it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import assert_clean_error, query, runner_cli, write


def _run(dsn: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return runner_cli(*args, "--dsn", dsn, "--dir", folder)


def _records(dsn: str) -> list[tuple[object, ...]]:
    return query(dsn, "SELECT version, name, checksum FROM runner_migrations ORDER BY version")


def _history(dsn: str) -> list[tuple[object, ...]]:
    return query(dsn, "SELECT action, version, outcome FROM runner_migrations_history ORDER BY id")


def _three(folder: Path) -> None:
    write(folder, "1_a.sql", "CREATE TABLE a (id int);\n")
    write(folder, "2_b.sql", "CREATE TABLE b (id int);\n")
    write(folder, "3_c.sql", "CREATE TABLE c (id int);\n")


def test_a_file_run_by_hand_is_marked_and_then_skipped(dsn: str, migrations: Path) -> None:
    _three(migrations)
    query(dsn, "CREATE TABLE a (id int)")  # the DBA ran 1_a.sql in psql
    marked = _run(dsn, migrations, "mark", "1")
    assert marked.returncode == 0, marked.stderr
    assert marked.stdout.strip() == "Marked 1_a.sql as applied (mark; the file was not run)"
    done = _run(dsn, migrations, "migrate")
    assert done.returncode == 0, done.stderr  # CREATE TABLE a would fail had it run again
    assert "1_a.sql" not in done.stdout and "Applied 2 migration(s)" in done.stdout
    assert query(dsn, "SELECT execution_ms FROM runner_migrations WHERE version = 1") == [(0,)]
    assert _history(dsn) == [("mark", 1, "ok"), ("apply", 2, "ok"), ("apply", 3, "ok")]


def test_an_edited_file_is_accepted_one_at_a_time(dsn: str, migrations: Path) -> None:
    _three(migrations)
    assert _run(dsn, migrations, "migrate").returncode == 0
    before = _records(dsn)
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n-- reviewed\n")
    write(migrations, "2_b.sql", "CREATE TABLE b (id bigint);\n")
    accepted = _run(dsn, migrations, "accept", str(migrations / "1_a.sql"), "--json")
    assert accepted.returncode == 0, accepted.stderr
    (change,) = json.loads(accepted.stdout)["changes"]
    assert change["action"] == "accept" and change["version"] == 1
    assert change["old_checksum"] == before[0][2] and change["new_checksum"] != before[0][2]
    # Only 1_a.sql was accepted: 2_b.sql is still edited, and its SQL was never run.
    verify = _run(dsn, migrations, "verify", "--json")
    assert [e["name"] for e in json.loads(verify.stdout)["drift"]] == ["2_b.sql"]
    assert query(dsn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'b'::regclass "
                      "AND attname = 'id'") == [("integer",)]  # fmt: skip
    everything = _run(dsn, migrations, "accept", "--all")
    assert everything.stdout.startswith("Accepted 2_b.sql: checksum sha256:")
    assert _run(dsn, migrations, "verify").returncode == 0
    assert _run(dsn, migrations, "accept", "--all").stdout.strip() == "Nothing to accept"
    assert [row[:2] for row in _history(dsn)][-2:] == [("accept", 1), ("accept", 2)]


def test_a_rename_is_accepted_as_the_new_name(dsn: str, migrations: Path) -> None:
    _three(migrations)
    assert _run(dsn, migrations, "migrate").returncode == 0
    (migrations / "3_c.sql").rename(migrations / "3_create_c.sql")
    assert _run(dsn, migrations, "accept", "3").returncode == 0
    assert _records(dsn)[2][1] == "3_create_c.sql"
    assert _run(dsn, migrations, "verify").returncode == 0


def test_baseline_adopts_an_existing_database(dsn: str, migrations: Path) -> None:
    _three(migrations)
    query(dsn, "CREATE TABLE a (id int); CREATE TABLE b (id int)")  # built before runner was used
    result = _run(dsn, migrations, "baseline", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Marked 1_a.sql as applied (baseline; the file was not run)",
        "Marked 2_b.sql as applied (baseline; the file was not run)",
    ]
    assert "Applied 1 migration(s)" in _run(dsn, migrations, "migrate").stdout
    assert _run(dsn, migrations, "baseline", "2").stdout.startswith("Nothing to baseline")


def test_unmark_forgets_a_record_so_the_file_runs_again(dsn: str, migrations: Path) -> None:
    write(migrations, "1_seed.sql", "CREATE TABLE IF NOT EXISTS seed (n int);\nINSERT INTO seed VALUES (1);\n")
    assert _run(dsn, migrations, "migrate").returncode == 0
    unmarked = _run(dsn, migrations, "unmark", "1_seed.sql")
    assert unmarked.stdout.strip() == "Unmarked 1_seed.sql: its record is gone, and the next migrate runs it"
    assert _records(dsn) == []
    assert _run(dsn, migrations, "migrate").returncode == 0
    assert query(dsn, "SELECT count(*) FROM seed") == [(2,)]
    assert [row[0] for row in _history(dsn)] == ["apply", "unmark", "apply"]


def test_mistakes_change_nothing(dsn: str, migrations: Path) -> None:
    _three(migrations)
    assert _run(dsn, migrations, "migrate", "--to", "2").returncode == 0
    before, history_before = _records(dsn), _history(dsn)
    cases = [
        (("mark", "1", "3"), "1_a.sql (applied): only a file that is not applied can be marked"),
        (("mark", "9"), "9: no migration file or record has this version or name"),
        (("unmark", "3"), "3_c.sql (pending): only a recorded migration can be unmarked"),
        (("accept", "1"), "1_a.sql (applied): only an applied file that was edited can be accepted"),
        (("accept",), "name the edited files to accept, or pass --all"),
        (("baseline", "0"), "no migration file has a version of 0 or less"),
    ]
    for args, needle in cases:
        assert_clean_error(_run(dsn, migrations, *args), 2, needle)
    assert _records(dsn) == before and _history(dsn) == history_before


def test_a_failed_attempt_is_in_the_history_with_its_error(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    write(migrations, "2_bad.sql", "SELECT 1 / 0;\n")
    assert _run(dsn, migrations, "migrate").returncode == 3
    shown = runner_cli("history", "--dsn", dsn, "--json")
    events = json.loads(shown.stdout)["events"]
    assert [(e["action"], e["name"], e["outcome"]) for e in events] == [
        ("apply", "1_a.sql", "ok"),
        ("apply", "2_bad.sql", "failed"),
    ]
    assert "division by zero" in events[1]["error"] and events[1]["by"] == "postgres"
    table = runner_cli("history", "--dsn", dsn).stdout
    assert "2_bad.sql" in table and "failed" in table and "division by zero" in table
    assert runner_cli("history", "--dsn", dsn, "--limit", "1", "--json").stdout.count('"action"') == 1


def test_migrate_to_stops_at_a_version_and_plan_shows_what_would_run(dsn: str, migrations: Path) -> None:
    _three(migrations)
    write(migrations, "4_index.sql", "-- runner: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS c_id "
                                     "ON c (id);\n")  # fmt: skip
    planned = _run(dsn, migrations, "plan", "--to", "2")
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.splitlines() == [
        "1_a.sql: 1 statement(s), one transaction",
        "2_b.sql: 1 statement(s), one transaction",
        "2 migration(s) would run; nothing was changed",
    ]
    assert query(dsn, "SELECT to_regclass('runner_migrations')") == [(None,)]  # plan creates nothing
    assert "Applied 2 migration(s)" in _run(dsn, migrations, "migrate", "--to", "2").stdout
    dry = _run(dsn, migrations, "migrate", "--dry-run", "--json")
    assert [(s["name"], s["transaction"], s["statements"]) for s in json.loads(dry.stdout)["would_run"]] == [
        ("3_c.sql", True, 1),
        ("4_index.sql", False, 1),
    ]
    assert _records(dsn)[-1][0] == 2
    assert_clean_error(_run(dsn, migrations, "migrate", "--to", "7"), 2, "--to 7: no migration file has this version")


def test_plan_gives_the_warnings_and_refusals_migrate_would(dsn: str, migrations: Path) -> None:
    _three(migrations)
    assert _run(dsn, migrations, "migrate", "--to", "1").returncode == 0
    write(migrations, "1_a.sql", "CREATE TABLE a (id bigint);\n")
    planned = _run(dsn, migrations, "plan")
    assert "warning: 1_a.sql changed after it was applied" in planned.stderr
    assert_clean_error(_run(dsn, migrations, "plan", "--strict"), 1, "--strict")
    write(migrations, "5_bad.sql", "CREATE INDEX CONCURRENTLY i ON a (id);\n")
    assert_clean_error(_run(dsn, migrations, "plan"), 2, "5_bad.sql, line 1: CREATE INDEX CONCURRENTLY")


def test_an_edit_to_comments_or_layout_only_is_harmless(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int, note text);\n")
    assert _run(dsn, migrations, "migrate").returncode == 0
    reviewed = "-- Reviewed by the DBA team.\nCREATE TABLE a (\n    id   int,  /* key */\n    note text\n);\n"
    write(migrations, "1_a.sql", reviewed)
    verify = _run(dsn, migrations, "verify")
    assert verify.returncode == 0, verify.stdout
    assert verify.stdout.splitlines()[0] == (
        "harmless     1_a.sql: checksum "
        + verify.stdout.split("checksum ")[1].split(";")[0]
        + "; comments or whitespace only, the SQL is the same"
    )
    assert _run(dsn, migrations, "verify", "--strict").returncode == 1
    migrate = _run(dsn, migrations, "migrate")
    assert "comments or whitespace only" in migrate.stderr
    # A change to the SQL itself, even a string's content, is an edit.
    write(migrations, "1_a.sql", "CREATE TABLE a (id int, note varchar(10));\n")
    edited = _run(dsn, migrations, "verify", "--json")
    assert edited.returncode == 1
    assert [(e["name"], e["harmless"]) for e in json.loads(edited.stdout)["drift"]] == [("1_a.sql", False)]


def test_a_tracking_table_from_before_the_sql_checksum_is_upgraded_when_written(dsn: str, migrations: Path) -> None:
    query(dsn, """
        CREATE TABLE runner_migrations (version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
            executed_at timestamptz NOT NULL DEFAULT now(), execution_ms integer NOT NULL,
            applied_by text NOT NULL DEFAULT session_user)
    """)  # fmt: skip
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    assert _run(dsn, migrations, "status").returncode == 0  # read as is, not changed
    assert query(dsn, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'runner_migrations'::regclass "
                      "AND attname = 'sql_checksum'") == [(0,)]  # fmt: skip
    assert _run(dsn, migrations, "migrate").returncode == 0
    assert query(dsn, "SELECT sql_checksum IS NOT NULL FROM runner_migrations") == [(True,)]


def test_db_shell_runs_psql_on_the_target_database(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE IF NOT EXISTS a (id int);\n")
    ran = runner_cli("db", "shell", "--dsn", dsn, "--", "-f", migrations / "1_a.sql")
    assert ran.returncode == 0, ran.stderr
    assert query(dsn, "SELECT to_regclass('a')::text") == [("a",)]
    failed = runner_cli("db", "shell", "--dsn", dsn, "--", "-c", "SELECT 1 / 0")
    assert failed.returncode == 1 and "division by zero" in failed.stderr  # psql's own exit code and message


def test_a_record_deleted_by_hand_is_refused_by_migrate_and_reported_by_verify(dsn: str, migrations: Path) -> None:
    _three(migrations)
    write(migrations, "4_log.sql", "INSERT INTO a VALUES (4);\n")  # not idempotent: it must never run twice
    assert _run(dsn, migrations, "migrate").returncode == 0
    query(dsn, "DELETE FROM runner_migrations WHERE version IN (2, 4)")  # no `runner unmark` in the history

    refused = _run(dsn, migrations, "migrate")
    assert_clean_error(refused, 1, "2_b.sql, 4_log.sql: record deleted by hand", "Nothing was applied",
                       "`runner mark 2` restores the record", "`runner unmark 2` first")  # fmt: skip
    assert query(dsn, "SELECT count(*) FROM a") == [(1,)]
    assert_clean_error(_run(dsn, migrations, "plan"), 1, "record deleted by hand")
    verify = _run(dsn, migrations, "verify")
    assert verify.returncode == 1
    assert "deleted      4_log.sql: record deleted by hand: the history says it was applied (apply, " in verify.stdout
    states = {m["name"]: m["state"] for m in json.loads(_run(dsn, migrations, "status", "--json").stdout)["migrations"]}
    assert states == {"1_a.sql": "applied", "2_b.sql": "deleted", "3_c.sql": "applied", "4_log.sql": "deleted"}

    # Put right on purpose: 2 is in the database (mark restores its record), 4 is to run again (unmark).
    assert _run(dsn, migrations, "mark", "2").returncode == 0
    assert _run(dsn, migrations, "unmark", "4").returncode == 0
    done = _run(dsn, migrations, "migrate")
    assert done.returncode == 0, done.stderr
    assert "Completed: 4_log.sql" in done.stdout and "2_b.sql" not in done.stdout
    assert query(dsn, "SELECT count(*) FROM a") == [(2,)]
    assert _run(dsn, migrations, "verify").returncode == 0


def test_an_unmarked_file_runs_again_even_when_later_files_are_applied(dsn: str, migrations: Path) -> None:
    _three(migrations)
    assert _run(dsn, migrations, "migrate").returncode == 0
    query(dsn, "DROP TABLE b")
    unmarked = _run(dsn, migrations, "unmark", "2")
    assert unmarked.stdout.strip() == "Unmarked 2_b.sql: its record is gone, and the next migrate runs it"
    status = json.loads(_run(dsn, migrations, "status", "--json").stdout)["migrations"]
    assert [(m["name"], m["state"]) for m in status][1] == ("2_b.sql", "pending")
    done = _run(dsn, migrations, "migrate")  # not refused as out of order: unmark said it would run
    assert done.returncode == 0, done.stderr
    assert "2_b.sql was unmarked " in done.stderr and "migrate runs it again" in done.stderr
    assert "Completed: 2_b.sql" in done.stdout
    assert query(dsn, "SELECT to_regclass('b')::text") == [("b",)]
    assert [v for v, *_ in _records(dsn)] == [1, 2, 3]
