"""The migration lock: runners started together apply each file exactly once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from helpers import SQL_DIR, assert_clean_error, cli_env, query, runner_cli, write
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from runner.files import checksum
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
    total = len(list(folder.glob("[0-9]*.sql")))
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


def _migrate_once_released(
    holder: psycopg.Connection, seconds: float, dsn: str, folder: Path
) -> subprocess.CompletedProcess[str]:
    """runner migrate while ``holder`` keeps the lock, which it lets go of (by closing) after ``seconds``."""
    release = threading.Timer(seconds, holder.close)
    release.start()
    try:
        return runner_cli("migrate", "--dsn", dsn, "--dir", folder, "--lock-wait", "60")
    finally:
        release.join()


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
    pid = holder.info.backend_pid
    result = _migrate_once_released(holder, 1.5, dsn, migrations)
    assert result.returncode == 0, result.stderr
    assert f"Waiting for the migration lock, held by server backend pid {pid} (someone-else" in result.stderr
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


# --- the session holding the lock is lost -----------------------------------------------------------------------------

# A slow file and a non-idempotent one, in a transaction and without: each leaves one row in effects per run of it.
_EFFECTS = {
    "0001_slow.sql": "SELECT pg_sleep(0.3);\nINSERT INTO effects VALUES ('0001_slow.sql');\n",
    "0002_insert.sql": "INSERT INTO effects VALUES ('0002_insert.sql');\n",
    "0003_slow_nt.sql": "-- runner: no-transaction\nSELECT pg_sleep(0.3);\n"
    "INSERT INTO effects VALUES ('0003_slow_nt.sql');\n",
    "0004_insert_nt.sql": "-- runner: no-transaction\nINSERT INTO effects VALUES ('0004_insert_nt.sql');\n",
    "0005_slow.sql": "SELECT pg_sleep(0.3);\nINSERT INTO effects VALUES ('0005_slow.sql');\n",
}
_LOCK_HOLDER = """
SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND a.datname = current_database()
  AND a.application_name LIKE %s
"""


def _poll(check, seconds: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while (found := check()) is None:
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)
    return found


def _runner(dsn: str, folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "runner", "migrate", "--dsn", dsn, "--dir", str(folder), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())  # fmt: skip


def _wait_until_waiting(dsn: str, proc: subprocess.Popen[str]) -> None:
    """Until the runner has both its sessions (the files', and the lock's, which polls for the lock)."""
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s"
    _poll(lambda: query(dsn, sessions, (f"runner {proc.pid}@%",)) == [(2,)] or None)


def _holder_of(dsn: str, proc: subprocess.Popen[str]) -> int | None:
    rows = query(dsn, _LOCK_HOLDER, (f"runner {proc.pid}@%",))
    return int(str(rows[0][0])) if rows else None


def _completed(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines() if line.startswith("Completed: ")]


def _round(server_dsn: str, folder: Path, delay: float) -> tuple[bool, list[str]]:
    """Two runners start together: A takes the lock, B waits, and after ``delay`` the server ends A's lock session.

    Returns whether A's session was ended while A ran, and what went wrong (nothing, when every file's
    effect and record exists exactly once and both runners said honestly what they did).
    """
    name = f"runner_lost_{uuid.uuid4().hex[:10]}"
    query(server_dsn, f"CREATE DATABASE {name}")
    dsn = make_conninfo(server_dsn, dbname=name)
    procs: list[subprocess.Popen[str]] = []
    try:
        query(dsn, "CREATE TABLE effects (file text)")
        procs = [_runner(dsn, folder), _runner(dsn, folder)]
        first = _poll(lambda: next((p for p in procs if _holder_of(dsn, p)), None))
        second = procs[1 - procs.index(first)]  # it waits for the lock
        _wait_until_waiting(dsn, second)
        time.sleep(delay)
        holder = _holder_of(dsn, first)
        ended = holder is not None and query(dsn, "SELECT pg_terminate_backend(%s)", (holder,)) == [(True,)]
        (a_out, a_err), (b_out, b_err) = first.communicate(timeout=60), second.communicate(timeout=60)
        problems = []
        effects = dict(query(dsn, "SELECT file, count(*) FROM effects GROUP BY file"))  # type: ignore[arg-type]
        if effects != dict.fromkeys(_EFFECTS, 1):
            problems.append(f"effects {effects}")
        rows = query(dsn, "SELECT name, checksum FROM runner_migrations ORDER BY version")
        if rows != [(n, checksum(t.encode())) for n, t in sorted(_EFFECTS.items())]:
            problems.append(f"records {rows}")
        completed = _completed(a_out) + _completed(b_out)
        if sorted(completed) != sorted(_EFFECTS):
            problems.append(f"each file said Completed by exactly one runner: {completed}")
        skipped = [line.split()[1] for line in b_out.splitlines() if line.startswith("Skipped: ")]
        a_errors = [line for line in a_err.splitlines() if line.startswith("error: ")]
        if first.returncode == 4:
            said = a_errors[0] if len(a_errors) == 1 else ""
            done = _completed(a_out)
            if "lost the migration lock" not in said or not all(f in said for f in done[:3]) or "Traceback" in a_err:
                problems.append(f"A's message: {a_err!r}")
            if not done and "this run applied nothing" not in said:
                problems.append(f"A applied nothing and should say so: {said!r}")
        elif first.returncode != 0 or a_errors:
            problems.append(f"A exited {first.returncode}: {a_err!r}")
        if second.returncode != 0 or "Traceback" in b_err or not set(skipped) <= set(_completed(a_out)):
            problems.append(f"B exited {second.returncode}, skipping {skipped}: {b_out!r} {b_err!r}")
        return ended, problems
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        query(server_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_runner_that_loses_its_lock_session_stops_and_no_file_runs_twice(server_dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    for file, text in _EFFECTS.items():
        write(folder, file, text)
    delays = [0.035 * n for n in range(20)]  # from before the first file to the last: A runs for about 1 s
    with ThreadPoolExecutor(4) as pool:
        rounds = list(pool.map(lambda d: _round(server_dsn, folder, d), delays))
    assert [problems for _, problems in rounds if problems] == []
    assert sum(ended for ended, _ in rounds) >= 15, "the lock session was ended while the first runner ran"


def test_a_waiting_runner_names_the_holding_runners_own_process_and_host(dsn: str, migrations: Path) -> None:
    # The server's backend pid is not something to kill; the runner's own process id and host are.
    write(migrations, "1_slow.sql", "SELECT pg_sleep(5);\n")
    first = _runner(dsn, migrations)
    try:
        _poll(lambda: _holder_of(dsn, first))
        result = runner_cli("migrate", "--dsn", dsn, "--dir", migrations, "--lock-wait", "0.5")
        assert_clean_error(result, 4, f"held by runner process {first.pid} on {os.uname().nodename}",
                           "server backend pid")  # fmt: skip
    finally:
        first.kill()


def test_a_waiting_runner_whose_session_is_ended_says_so_without_a_traceback(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    holder = _hold_lock(dsn)
    try:
        waiting = _runner(dsn, migrations)
        _wait_until_waiting(dsn, waiting)
        query(dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
              (f"runner {waiting.pid}@%",))  # fmt: skip
        out, err = waiting.communicate(timeout=30)
    finally:
        holder.close()
    result = subprocess.CompletedProcess(waiting.args, waiting.returncode, out, err)
    assert_clean_error(result, 5, "lost the connection while waiting for the migration lock", "nothing was applied")
    assert query(dsn, "SELECT to_regclass('a')") == [(None,)]


def test_a_runner_waiting_for_the_lock_outlasts_the_databases_idle_session_timeout(dsn: str, migrations: Path) -> None:
    # Replicas that start together wait for the first; an idle_session_timeout set on the database (or a
    # role) must not end the waiting runner's sessions while it waits.
    query(dsn, f"ALTER DATABASE {conninfo_to_dict(dsn)['dbname']} SET idle_session_timeout = 500")
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    holder = _hold_lock(make_conninfo(dsn, options="-c idle_session_timeout=0"))
    result = _migrate_once_released(holder, 2, dsn, migrations)
    assert result.returncode == 0, result.stderr
    assert "Applied 1 migration(s)" in result.stdout


def _take_over_mid_file(dsn: str, migrations: Path, *second_args: str) -> subprocess.CompletedProcess[str]:
    """Runner A sleeps in 0001 when its lock session ends; runner B (started with ``second_args``) takes the lock
    over and reaches 0001, which A is still applying. What B did."""
    write(migrations, "0002_b.sql", "CREATE TABLE b (id int);\n")
    first = _runner(dsn, migrations)
    try:
        holder = _poll(lambda: _holder_of(dsn, first))
        second = _runner(dsn, migrations, *second_args)
        _wait_until_waiting(dsn, second)
        query(dsn, "SELECT pg_terminate_backend(%s)", (holder,))
        out, err = second.communicate(timeout=60)
        first.communicate(timeout=60)
    finally:
        first.kill()
    return subprocess.CompletedProcess(second.args, second.returncode, out, err)


def test_a_claim_that_waits_past_lock_timeout_for_another_runners_file_waits_on_then_skips_it(
    dsn: str, migrations: Path
) -> None:
    # B's claim of 0001 waits on A's row. Its --lock-timeout is for the file's own locks; ending that wait is no
    # failure of 0001, which A is applying.
    write(migrations, "0001_slow.sql", "SELECT pg_sleep(2);\nCREATE TABLE a (id int);\n")
    result = _take_over_mid_file(dsn, migrations, "--lock-timeout", "100ms")
    out, err = result.stdout, result.stderr
    assert result.returncode == 0, err
    assert "Skipped: 0001_slow.sql" in out and "Completed: 0002_b.sql" in out, out
    assert "0001_slow.sql is being applied by another runner" in err
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY 1") == [(1,), (2,)]
    assert query(dsn, "SELECT name, error IS NULL FROM runner_migrations_history ORDER BY id") == [
        ("0001_slow.sql", True), ("0002_b.sql", True)]  # fmt: skip


def test_a_claim_waits_for_another_runners_file_no_longer_than_lock_wait(dsn: str, migrations: Path) -> None:
    write(migrations, "0001_slow.sql", "SELECT pg_sleep(4);\nCREATE TABLE a (id int);\n")
    result = _take_over_mid_file(dsn, migrations, "--lock-timeout", "100ms", "--lock-wait", "1")
    assert_clean_error(result, 4, "0001_slow.sql was still being applied by another runner", "after 1s",
                       "none of it ran here", "raise --lock-wait")  # fmt: skip
    assert "0002_b.sql" not in result.stdout
