"""Session state and timeouts: every file starts clean; a stuck lock fails fast and can be retried."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import psycopg
from helpers import assert_clean_error, query, runner_cli, write


def _migrate(dsn: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return runner_cli("migrate", "--dsn", dsn, "--dir", folder, *args)


def test_nothing_a_file_sets_leaks_into_the_next_file_or_its_record(dsn: str, migrations: Path) -> None:
    query(dsn, "CREATE SCHEMA elsewhere; DROP ROLE IF EXISTS runner_test_reader; CREATE ROLE runner_test_reader")
    write(migrations, "1_messy.sql", """
        CREATE TABLE IF NOT EXISTS public.seen (search_path text, who text, timeout text, temp regclass, prepared int);
        SET search_path = elsewhere;
        SET statement_timeout = '30ms';  -- long enough for this file's own statements, not for the next file's
        SET lock_timeout = '1ms';
        SET application_name = 'someone else';
        CREATE TEMP TABLE scratch (x int);
        PREPARE leftover AS SELECT 1;
        SET ROLE runner_test_reader;  -- a role that may not write the tracking table
    """)  # fmt: skip
    write(migrations, "2_look.sql", """
        SELECT pg_sleep(0.1);  -- would break a leaked 30ms statement_timeout
        INSERT INTO public.seen SELECT current_setting('search_path'), current_user,
            current_setting('statement_timeout'), to_regclass('pg_temp.scratch'),
            (SELECT count(*) FROM pg_prepared_statements);
    """)  # fmt: skip
    done = _migrate(dsn, migrations)
    assert done.returncode == 0, done.stderr
    assert query(dsn, "SELECT * FROM seen") == [('"$user", public', "postgres", "0", None, 0)]
    # Both records were written by the session user, whatever role the file switched to.
    assert query(dsn, "SELECT version, applied_by FROM runner_migrations ORDER BY 1") == [
        (1, "postgres"),
        (2, "postgres"),
    ]
    query(dsn, "DROP OWNED BY runner_test_reader; DROP ROLE runner_test_reader")


def _migrate_while_busy(
    dsn: str, folder: Path, alter: str, *args: str, release_after: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run 2_alter.sql while an application transaction reads table ``busy``, holding a lock the ALTER needs.

    The transaction ends after ``release_after`` seconds, or once runner has exited.
    """
    write(folder, "1_table.sql", "CREATE TABLE busy (id int);\n")
    assert _migrate(dsn, folder).returncode == 0
    write(folder, "2_alter.sql", alter)
    blocker = psycopg.connect(dsn)
    blocker.execute("SELECT * FROM busy")
    release = threading.Timer(release_after or 0, blocker.close)
    if release_after is not None:
        release.start()
    try:
        return _migrate(dsn, folder, *args)
    finally:
        release.cancel()
        blocker.close()


def _columns_of_busy(dsn: str) -> int:
    return int(str(query(dsn, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'busy'")[0][0]))


ALTER = "ALTER TABLE busy ADD COLUMN note text;\n"


def test_lock_timeout_fails_fast_instead_of_queueing_behind_a_long_query(dsn: str, migrations: Path) -> None:
    failed = _migrate_while_busy(dsn, migrations, ALTER, "--lock-timeout", "200ms")
    assert_clean_error(failed, 3, "2_alter.sql failed", "lock timeout", "55P03", "rolled back")
    assert _columns_of_busy(dsn) == 1
    assert query(dsn, "SELECT max(version) FROM runner_migrations") == [(1,)]


def test_a_file_can_set_its_own_lock_timeout(dsn: str, migrations: Path) -> None:
    failed = _migrate_while_busy(dsn, migrations, "-- runner: lock-timeout=200ms\n" + ALTER, "--lock-timeout", "1h")
    assert_clean_error(failed, 3, "2_alter.sql failed", "55P03")


def test_retries_run_the_file_again_from_a_fresh_transaction(dsn: str, migrations: Path) -> None:
    # Not idempotent: a half-kept first attempt would make the retry fail on the existing table.
    done = _migrate_while_busy(dsn, migrations, "CREATE TABLE side (id int);\n" + ALTER,
                               "--lock-timeout", "300ms", "--retries", "5", release_after=1.5)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2_alter.sql gave up waiting for a lock (lock_timeout) and was rolled back; retrying in 1s" in done.stderr
    assert "attempt 2 of 6" in done.stderr
    assert _columns_of_busy(dsn) == 2
    assert query(dsn, "SELECT max(version) FROM runner_migrations") == [(2,)]


def test_retries_give_up_with_the_lock_timeout_error(dsn: str, migrations: Path) -> None:
    failed = _migrate_while_busy(dsn, migrations, ALTER, "--lock-timeout", "100ms", "--retries", "1")
    assert "attempt 2 of 2" in failed.stderr
    assert_clean_error(failed, 3, "2_alter.sql failed", "55P03")


def test_statement_timeout_limits_each_statement(dsn: str, migrations: Path) -> None:
    write(migrations, "1_slow.sql", "CREATE TABLE t (id int);\nSELECT pg_sleep(0.2);\nSELECT pg_sleep(0.2);\n")
    assert _migrate(dsn, migrations, "--statement-timeout", "1s").returncode == 0
    write(migrations, "2_slower.sql", "SELECT pg_sleep(5);\n")
    failed = _migrate(dsn, migrations, "--statement-timeout", "300ms")
    assert_clean_error(failed, 3, "2_slower.sql failed", "statement timeout", "57014")


def test_a_bad_duration_is_refused_before_connecting(migrations: Path) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    result = runner_cli("migrate", "--dsn", "postgresql://postgres@127.0.0.1:1/x", "--dir", migrations,
                        "--lock-timeout", "banana")  # fmt: skip
    assert_clean_error(result, 2, "--lock-timeout", "'banana' is not a duration", "10s")
