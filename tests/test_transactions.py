"""Transactions against a real server: wrappers, no-transaction files and what a failure leaves behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_clean_error, query, runner_cli, write
from psycopg.conninfo import make_conninfo

import runner
from runner import preflight


def _migrate(dsn: str, folder: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner_cli("migrate", "--dsn", dsn, "--dir", folder, *args)


def _recorded(dsn: str) -> list[int]:
    return [row[0] for row in query(dsn, "SELECT version FROM runner_migrations ORDER BY version")]  # type: ignore[misc]


def _refuse_record(dsn: str, version: int) -> None:
    """Make the tracking row of one version fail once the file has run (its row is claimed before the file,
    and its time written after it), as a full disk or a lost connection would."""
    query(dsn, f"""
        CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.version = {version} THEN RAISE EXCEPTION 'no record for you'; END IF; RETURN NEW; END $$;
        CREATE TRIGGER refuse BEFORE UPDATE ON runner_migrations FOR EACH ROW EXECUTE FUNCTION refuse();
    """)  # fmt: skip


def test_a_wrapped_file_commits_together_with_its_record(dsn: str, migrations: Path) -> None:
    write(migrations, "1_first.sql", "CREATE TABLE first (id int);\n")
    assert _migrate(dsn, migrations).returncode == 0
    _refuse_record(dsn, 2)
    write(migrations, "2_wrapped.sql", "BEGIN;\nCREATE TABLE wrapped (id int);\nCOMMIT;\n")
    failed = _migrate(dsn, migrations)
    # Had the file's own COMMIT run, the table would be committed while its record failed.
    assert_clean_error(failed, 3, "2_wrapped.sql ran, but recording it", "no record for you")
    assert query(dsn, "SELECT to_regclass('wrapped')") == [(None,)]
    assert _recorded(dsn) == [1]

    query(dsn, "DROP TRIGGER refuse ON runner_migrations")
    done = _migrate(dsn, migrations)
    assert done.returncode == 0, done.stderr
    assert "2_wrapped.sql" in done.stdout and "BEGIN/COMMIT wrapper ignored" in done.stdout
    assert query(dsn, "SELECT to_regclass('wrapped')::text") == [("wrapped",)]
    assert _recorded(dsn) == [1, 2]


def test_an_error_in_a_wrapped_file_points_at_its_own_line(dsn: str, migrations: Path) -> None:
    write(migrations, "1_wrapped.sql", "BEGIN;\nCREATE TABLE t (id int);\n\nINSERT INTO t VALUES ('x');\nCOMMIT;\n")
    failed = _migrate(dsn, migrations)
    assert_clean_error(failed, 3, "1_wrapped.sql failed at line 4, column", "22P02", "rolled back")
    assert query(dsn, "SELECT to_regclass('t')") == [(None,)]


def test_a_refused_file_stops_the_run_before_anything_runs(dsn: str, migrations: Path) -> None:
    write(migrations, "1_fine.sql", "CREATE TABLE fine (id int);\n")
    write(migrations, "2_index.sql", "CREATE INDEX CONCURRENTLY fine_id ON fine (id);\n")
    refused = _migrate(dsn, migrations)
    assert_clean_error(refused, 2, "2_index.sql, line 1: CREATE INDEX CONCURRENTLY", "-- runner: no-transaction")
    assert query(dsn, "SELECT to_regclass('fine')") == [(None,)]
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(0,)]


def test_a_no_transaction_file_builds_an_index_concurrently(dsn: str, migrations: Path) -> None:
    write(
        migrations, "1_table.sql", "CREATE TABLE items (id int);\nINSERT INTO items SELECT generate_series(1, 1000);\n"
    )
    write(migrations, "2_index.sql", "-- runner: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_id "
                                     "ON items (id);\nVACUUM (ANALYZE) items;\n")  # fmt: skip
    done = _migrate(dsn, migrations, "--json")
    assert done.returncode == 0, done.stderr
    applied = json.loads(done.stdout)["applied"]
    assert [(a["name"], a["no_transaction"], a["statements"]) for a in applied] == [
        ("1_table.sql", False, 2),
        ("2_index.sql", True, 2),
    ]
    assert query(dsn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_id'::regclass") == [(True,)]
    assert _recorded(dsn) == [1, 2]


def test_a_no_transaction_file_runs_its_own_begin_and_commit_as_written(dsn: str, migrations: Path) -> None:
    write(migrations, "1_own.sql", "-- runner: no-transaction\nCREATE TABLE t (id int);\n"
                                   "BEGIN;\nINSERT INTO t VALUES (1);\nROLLBACK;\n"
                                   "BEGIN;\nINSERT INTO t VALUES (2);\nCOMMIT;\n")  # fmt: skip
    done = _migrate(dsn, migrations)
    assert done.returncode == 0, done.stderr
    assert query(dsn, "SELECT id FROM t") == [(2,)]
    assert _recorded(dsn) == [1]


def test_a_no_transaction_file_is_recorded_only_after_its_last_statement(dsn: str, migrations: Path) -> None:
    write(migrations, "1_partial.sql", "-- runner: no-transaction\nCREATE TABLE kept (id int);\n\n"
                                       "INSERT INTO kept VALUES (1);\nSELECT 1 / 0;\n")  # fmt: skip
    failed = _migrate(dsn, migrations, "--json")
    error = assert_clean_error(failed, 3, "1_partial.sql failed in the statement at line 5", "22012")
    assert "the statement(s) at line(s) 2, 4 had already run and were kept; the file was not recorded" in error
    doc = json.loads(failed.stdout)["error"]
    assert doc["statements_kept"] == [2, 4] and doc["line"] == 5
    assert query(dsn, "SELECT id FROM kept") == [(1,)]
    assert _recorded(dsn) == []


def test_a_failed_concurrent_build_reports_the_invalid_index_until_it_is_fixed(dsn: str, migrations: Path) -> None:
    write(migrations, "1_table.sql", "CREATE TABLE people (email text);\nINSERT INTO people VALUES ('a'), ('a');\n")
    unique = "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS people_email ON people (email);\n"
    write(migrations, "2_unique.sql", "-- runner: no-transaction\n" + unique)
    failed = _migrate(dsn, migrations)
    error = assert_clean_error(failed, 3, "2_unique.sql failed", "23505", "nothing ran; the file was not recorded")
    assert "index public.people_email on public.people is INVALID" in error
    assert "DROP INDEX CONCURRENTLY public.people_email;" in error

    # IF NOT EXISTS would now skip the broken index: verify says so, by name, with the fix.
    verify = runner_cli("verify", "--dsn", dsn, "--dir", migrations, "--json")
    assert verify.returncode == 1
    report = json.loads(verify.stdout)
    assert report["invalid_indexes"] == [
        {
            "index": "public.people_email",
            "table": "public.people",
            "fix": "DROP INDEX CONCURRENTLY public.people_email;",
        }
    ]
    assert "INVALID" in runner_cli("verify", "--dsn", dsn, "--dir", migrations).stdout

    query(dsn, "DROP INDEX CONCURRENTLY public.people_email")
    query(dsn, "DELETE FROM people WHERE ctid = (SELECT max(ctid) FROM people)")
    assert _migrate(dsn, migrations).returncode == 0
    assert runner_cli("verify", "--dsn", dsn, "--dir", migrations).returncode == 0


def test_a_no_transaction_file_that_leaves_a_transaction_open_is_rolled_back(dsn: str, migrations: Path) -> None:
    write(migrations, "1_open.sql", "-- runner: no-transaction\nCREATE TABLE t (id int);\nBEGIN;\n"
                                    "INSERT INTO t VALUES (1);\n")  # fmt: skip
    failed = _migrate(dsn, migrations)
    assert_clean_error(failed, 3, "1_open.sql ends inside a transaction", "rolled back", "not recorded")
    assert query(dsn, "SELECT count(*) FROM t") == [(0,)]
    assert _recorded(dsn) == []


def _big(rows: int, tail: str) -> str:
    """A file over apply.ONE_MESSAGE_LIMIT, sent on its own inside BEGIN/COMMIT."""
    lines = ["CREATE TABLE big (id int, note text);\n"]
    lines += [f"INSERT INTO big VALUES ({n}, '{'x' * 60}');\n" for n in range(rows)]
    return "".join(lines) + tail


def test_a_big_file_is_applied_and_recorded_in_one_transaction(dsn: str, migrations: Path) -> None:
    write(migrations, "1_big.sql", _big(60_000, ""))
    assert (migrations / "1_big.sql").stat().st_size > 4_000_000
    done = _migrate(dsn, migrations, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied"][0]["statements"] == 60_001
    assert query(dsn, "SELECT count(*) FROM big") == [(60_000,)]
    assert _recorded(dsn) == [1]


def test_a_big_file_that_fails_at_its_end_keeps_nothing(dsn: str, migrations: Path) -> None:
    write(migrations, "1_big.sql", _big(60_000, "SELECT 1 / 0;\n"))
    failed = _migrate(dsn, migrations)
    assert_clean_error(failed, 3, "1_big.sql failed in the statement at line 60002", "22012", "rolled back")
    assert query(dsn, "SELECT to_regclass('big')") == [(None,)]
    assert _recorded(dsn) == []


def test_a_big_file_whose_record_fails_keeps_nothing(dsn: str, migrations: Path) -> None:
    write(migrations, "1_first.sql", "CREATE TABLE first (id int);\n")
    assert _migrate(dsn, migrations).returncode == 0
    _refuse_record(dsn, 2)
    write(migrations, "2_big.sql", _big(60_000, ""))
    failed = _migrate(dsn, migrations)
    assert_clean_error(failed, 3, "2_big.sql ran, but recording it", "no record for you")
    assert query(dsn, "SELECT to_regclass('big')") == [(None,)]
    assert _recorded(dsn) == [1]


def test_a_concurrent_index_left_invalid_by_an_earlier_run_is_not_reported_done(dsn: str, migrations: Path) -> None:
    write(migrations, "1_table.sql", "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1), (1);\n")
    write(migrations, "2_index.sql", "-- runner: no-transaction\n"
                                     "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);\n")  # fmt: skip
    assert_clean_error(_migrate(dsn, migrations), 3, "2_index.sql failed", "23505")
    query(dsn, "DELETE FROM t WHERE ctid = (SELECT max(ctid) FROM t)")  # the data is fixed; the index is not
    again = _migrate(dsn, migrations)
    # IF NOT EXISTS skipped the INVALID index: the file did nothing, and must not be recorded as done.
    assert_clean_error(
        again,
        3,
        "2_index.sql ran, but index public.t_id on public.t is INVALID",
        "run `DROP INDEX CONCURRENTLY public.t_id;`, then `runner migrate` again",
        "not recorded",
    )
    assert "Completed: 2_index.sql" not in again.stdout
    assert _recorded(dsn) == [1]

    query(dsn, "DROP INDEX CONCURRENTLY public.t_id")
    done = _migrate(dsn, migrations)
    assert done.returncode == 0, done.stderr
    assert query(dsn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass") == [(True,)]
    assert _recorded(dsn) == [1, 2]


# Read with standard_conforming_strings on (runner's checks), one string, then `; SELECT 2;`; read with it off (the
# server), the string ends after `x, `: the COMMIT is a statement, and `--` starts a comment.
HIDDEN_COMMIT = "SELECT 'A\\' AS x, ' ; COMMIT; -- ';\n"
READ_OTHERWISE = {
    "hidden-commit": "CREATE TABLE before_it (id int);\n" + HIDDEN_COMMIT + "SELECT 1 / 0;\n",
    "wrapper": "BEGIN;\nINSERT INTO c VALUES ('it\\'s');\nINSERT INTO c VALUES ('two');\nCOMMIT;\n",
    "savepoint": "BEGIN;\nINSERT INTO c VALUES ('it\\'s');\nSAVEPOINT a;\nROLLBACK TO a;\nCOMMIT;\n",
    "escaped-backslash-then-quote": "INSERT INTO c VALUES ('a\\\\\\'b');\n",
}


@pytest.mark.parametrize("body", READ_OTHERWISE.values(), ids=READ_OTHERWISE.keys())
def test_a_file_the_server_reads_otherwise_than_the_checks_is_refused_before_anything_runs(
    dsn: str, migrations: Path, body: str
) -> None:
    """With standard_conforming_strings off, a backslash before a quote escapes it, and the server's statements are
    not the ones runner checked: a COMMIT could end the file's transaction with its record in the middle."""
    write(migrations, "1_table.sql", "CREATE TABLE c (v text);\n")
    write(migrations, "2_escapes.sql", "-- a comment\n" + body)
    off = make_conninfo(dsn, options="-c standard_conforming_strings=off")
    for command in ("migrate", "plan"):
        failed = runner_cli(command, "--dsn", off, "--dir", migrations)
        line = 2 + body.split("\\", 1)[0].count("\n")
        assert_clean_error(
            failed,
            2,
            f"2_escapes.sql, line {line}: a backslash before a quote in a string, and this "
            "session has standard_conforming_strings off",
            "E'...'",
            "Nothing was applied",
        )
    assert _recorded(dsn) == [] and query(dsn, "SELECT to_regclass('c')") == [(None,)]


def test_with_standard_conforming_strings_off_a_file_that_reads_alike_runs(dsn: str, migrations: Path) -> None:
    """A backslash in an E'' string, a dollar quote or a comment, or two before a quote, reads alike either way."""
    write(migrations, "1_alike.sql", "CREATE TABLE c (v text);\nINSERT INTO c VALUES (E'it\\'s'), ($$a\\'b$$), "
                                     "('c\\\\');\n-- don\\'t\n")  # fmt: skip
    write(migrations / "repeatable", "view.sql", "CREATE OR REPLACE VIEW v AS SELECT 'it''s' AS x;\n")
    done = _migrate(make_conninfo(dsn, options="-c standard_conforming_strings=off"), migrations)
    assert done.returncode == 0, done.stderr
    assert query(dsn, "SELECT v FROM c ORDER BY v") == [("a\\'b",), ("c\\",), ("it's",)]


def test_a_repeatable_or_big_file_the_server_reads_otherwise_is_refused_too(
    dsn: str, migrations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = make_conninfo(dsn, options="-c standard_conforming_strings=off")
    write(migrations / "repeatable", "views.sql", HIDDEN_COMMIT)
    assert_clean_error(_migrate(off, migrations), 2, "views.sql, line 1: a backslash before a quote")
    (migrations / "repeatable" / "views.sql").unlink()
    monkeypatch.setattr(preflight, "ONE_MESSAGE_LIMIT", 500)  # files over 500 bytes are sent in parts
    body = "".join(f"CREATE TABLE t{i} (id int);\n" for i in range(40)) + HIDDEN_COMMIT
    write(migrations, "1_big.sql", body + "SELECT 1 / 0;\n")
    with pytest.raises(runner.BadInput, match="1_big.sql, line 41: a backslash before a quote"):
        runner.migrate(off, migrations)
    assert _recorded(dsn) == []


def test_a_file_that_turns_the_setting_off_itself_is_stopped_before_what_would_be_read_otherwise(
    dsn: str, migrations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file held in memory travels in one message, read as the session was when it was checked. A big file's
    later parts, and a no-transaction file's later statements, are read after its SET: the server reports the
    setting after each message, and runner stops before one that would be read otherwise."""
    hidden = "SELECT 'A\\' AS x, ' ; DELETE FROM runner_migrations; -- ';\n"
    write(migrations, "1_first.sql", "CREATE TABLE first (id int);\n")
    write(migrations, "2_no_tx.sql", "-- runner: no-transaction\nSET standard_conforming_strings = off;\n" + hidden)
    failed = _migrate(dsn, migrations)
    assert_clean_error(failed, 3, "2_no_tx.sql turned standard_conforming_strings off, and its statement at line 3 "
                                  "has a backslash before a quote", "line(s) 2 had already run")  # fmt: skip
    assert _recorded(dsn) == [1]

    (migrations / "2_no_tx.sql").unlink()
    monkeypatch.setattr(preflight, "ONE_MESSAGE_LIMIT", 500)  # files over 500 bytes are sent in parts
    body = "".join(f"CREATE TABLE t{i} (id int);\n" for i in range(40))
    write(migrations, "2_big.sql", "SET standard_conforming_strings = off;\n" + body + hidden)
    with pytest.raises(runner.MigrationFailed, match=r"2_big.sql turned standard_conforming_strings off, and its part "
                                                     r"from line \d+ has a backslash before a quote.* nothing of it "
                                                     "was kept"):  # fmt: skip
        runner.migrate(dsn, migrations)
    assert _recorded(dsn) == [1] and query(dsn, "SELECT to_regclass('t0')") == [(None,)]
