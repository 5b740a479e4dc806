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


def test_runners_started_together_apply_each_file_exactly_once(dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder)
    # A slow file and a non-idempotent one: a second application would fail or double the rows.
    write(folder, "9000_slow.sql", "SELECT pg_sleep(0.5);\nCREATE TABLE applied_log (n int);\n")
    write(folder, "9001_count.sql", "INSERT INTO applied_log VALUES (1);\n")
    total = len(list(folder.glob("*.sql")))

    procs = [
        subprocess.Popen([sys.executable, "-m", "runner", "migrate", "--dsn", dsn, "--dir", str(folder)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
        for _ in range(5)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 5, outputs
    applied = [out for out, _ in outputs if f"Applied {total} migration(s)" in out]
    up_to_date = [out for out, _ in outputs if out.strip() == "All migrations are up to date"]
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
