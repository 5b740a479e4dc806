"""The migration lock: runners started together apply each file exactly once."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
from helpers import SQL_DIR, assert_clean_error, cli_env, query, runner_cli, write

from runner.tracking import TrackingTable


def _run_together(count: int, dsn: str, folder: Path, timeout: float = 300) -> list[tuple[int, str, str]]:
    """Start ``count`` runners at once; their exit codes and outputs. A hung runner is killed, and fails the test."""
    procs = [
        subprocess.Popen([sys.executable, "-m", "runner", "migrate", "--dsn", dsn, "--dir", str(folder)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
        for _ in range(count)
    ]  # fmt: skip
    try:
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            p.kill()
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def test_runners_started_together_apply_each_file_exactly_once(dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder)
    # A slow file and a non-idempotent one: a second application would fail or double the rows.
    write(folder, "9000_slow.sql", "SELECT pg_sleep(0.5);\nCREATE TABLE applied_log (n int);\n")
    write(folder, "9001_count.sql", "INSERT INTO applied_log VALUES (1);\n")
    total = len(list(folder.glob("*.sql")))
    runs = total + len(list(folder.glob("repeatable/*.sql")))

    outputs = _run_together(5, dsn, folder)
    assert [code for code, _, _ in outputs] == [0] * 5, outputs
    applied = [out for _, out, _ in outputs if f"Applied {runs} migration(s)" in out]
    up_to_date = [out for _, out, _ in outputs if out.strip() == "All migrations are up to date"]
    assert len(applied) == 1 and len(up_to_date) == 4, outputs
    assert query(dsn, "SELECT count(*), count(DISTINCT version) FROM runner_migrations") == [(total, total)]
    assert query(dsn, "SELECT count(*) FROM applied_log") == [(1,)]


def _hold_lock(dsn: str, table: str = "public.runner_migrations") -> psycopg.Connection:
    conn = psycopg.connect(dsn, autocommit=True, application_name="someone-else")
    conn.execute("SELECT pg_advisory_lock(%s)", (TrackingTable.parse(table).lock_key,))
    return conn


def test_lock_not_obtained_in_time_exits_4_naming_the_holder(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    holder = _hold_lock(dsn)
    try:
        result = runner_cli("migrate", "--dsn", dsn, "--dir", migrations, "--lock-wait", "1")
        assert_clean_error(result, 4, f"pid {holder.info.backend_pid}", "someone-else", "--lock-wait")
        assert query(dsn, "SELECT to_regclass('a')") == [(None,)]
        # Another project's table has another lock: it is not blocked.
        other = runner_cli(
            "migrate", "--dsn", dsn, "--dir", migrations, "--lock-wait", "1", "--table", "other_migrations"
        )
        assert other.returncode == 0, other.stderr
    finally:
        holder.close()


def test_a_waiting_runner_says_who_holds_the_lock_then_proceeds(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    holder = _hold_lock(dsn)
    release = threading.Timer(1.5, holder.close)
    release.start()
    try:
        result = runner_cli("migrate", "--dsn", dsn, "--dir", migrations, "--lock-wait", "60")
    finally:
        release.join()
    assert result.returncode == 0, result.stderr
    assert "Waiting for the migration lock, held by pid" in result.stderr
    assert "Applied 1 migration(s)" in result.stdout


def test_runners_waiting_for_the_lock_never_block_a_concurrent_index_build(dsn: str, migrations: Path) -> None:
    # A runner blocked inside pg_advisory_lock would hold a snapshot that CREATE INDEX CONCURRENTLY
    # waits for, while the builder holds the lock it waits for: a deadlock that never ends.
    write(migrations, "1_table.sql", "CREATE TABLE big (id int);\nINSERT INTO big SELECT generate_series(1, 50000);\n")
    write(migrations, "2_index.sql", "-- runner: no-transaction\nSELECT pg_sleep(0.5);\n"
                                     "CREATE INDEX CONCURRENTLY IF NOT EXISTS big_id ON big (id);\n")  # fmt: skip
    write(migrations, "3_after.sql", "CREATE TABLE after_index (id int);\n")
    outputs = _run_together(4, dsn, migrations, timeout=120)
    assert [code for code, _, _ in outputs] == [0] * 4, outputs
    assert sum("Applied 3 migration(s)" in out for _, out, _ in outputs) == 1, outputs
    assert query(dsn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'big_id'::regclass") == [(True,)]
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(3,)]


def test_load_sixteen_runners_two_hundred_files_each_applied_exactly_once(dsn: str, migrations: Path) -> None:
    write(migrations, "0000_log.sql", "CREATE TABLE applied_log (version int);\n")
    for n in range(1, 200):
        write(
            migrations, f"{n:04d}_step.sql", f"CREATE TABLE step_{n} (id int);\nINSERT INTO applied_log VALUES ({n});\n"
        )
    outputs = _run_together(16, dsn, migrations)
    assert [code for code, _, _ in outputs] == [0] * 16, [err for _, _, err in outputs if err]
    assert query(dsn, "SELECT count(*), count(DISTINCT version) FROM applied_log") == [(199, 199)]
    assert query(dsn, "SELECT count(*), count(DISTINCT version) FROM runner_migrations") == [(200, 200)]
    lines = [line for _, out, _ in outputs for line in out.splitlines()]
    applied = [int(line.split()[1]) for line in lines if line.startswith("Applied ")]
    assert sum(applied) == 200, outputs  # across all runners, every file once
