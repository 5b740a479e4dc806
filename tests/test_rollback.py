"""runner rollback and redo, with down files, on a real server: what is undone, and what is refused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import runner
from runner import api
from runner.errors import Refused
from tests.helpers import ROOT, assert_clean_error, cli_env, on_terminals, query, runner_cli, write
from tests.test_dump import schema_only, seed
from tests.test_faults import eventually, running_backend, wait_for_backend
from tests.test_lock import _holder_of

FILES = {
    "0001_things.sql": ("CREATE TABLE IF NOT EXISTS things (id int PRIMARY KEY);\n", "DROP TABLE IF EXISTS things;\n"),
    "0002_kinds.sql": ("CREATE TYPE kind AS ENUM ('a', 'b');\nALTER TABLE things ADD COLUMN k kind;\n",
                       "ALTER TABLE things DROP COLUMN IF EXISTS k;\nDROP TYPE IF EXISTS kind;\n"),
    "0003_index.sql": ("CREATE INDEX IF NOT EXISTS things_k ON things (k);\n", "DROP INDEX IF EXISTS things_k;\n"),
}  # fmt: skip


def started(folder: Path, dsn: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """`runner rollback --yes ARGS` in a process of its own, to signal or race."""
    argv = [sys.executable, "-m", "runner", "rollback", "--yes", *args, "--dsn", dsn, "--dir", str(folder)]
    return subprocess.Popen(argv, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)  # fmt: skip


SLEEPING = "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'"


def ctrl_c_when(folder: Path, dsn: str, ready: Callable[[subprocess.Popen[str]], object]) -> tuple[int, str, str]:
    """`runner rollback --yes`, sent a real SIGINT once ``ready`` returns: its exit code, stdout and stderr."""
    proc = started(folder, dsn, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        ready(proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return proc.returncode, out, err


def project(tmp_path: Path) -> Path:
    folder = tmp_path / "sql"
    for name, (up, down) in FILES.items():
        write(folder, name, up)
        write(folder / "down", name, down)
    return folder


def test_a_rollback_to_0_leaves_the_empty_schema_and_a_migrate_again_the_same_one(
    dsn: str, another_dsn: str, tmp_path: Path
) -> None:
    folder = project(tmp_path)
    api.migrate(dsn, folder)
    migrated, empty = schema_only(dsn), schema_only(another_dsn)
    some = runner_cli("rollback", "--to", "1", "--yes", "--dsn", dsn, "--dir", folder)
    assert some.returncode == 0, some.stderr
    lines = some.stdout.splitlines()
    assert lines[0].startswith("Rolled back: 0003_index.sql (") and lines[0].endswith(" ms, down/0003_index.sql)")
    assert lines[1].startswith("Rolled back: 0002_kinds.sql (") and lines[1].endswith(" ms, down/0002_kinds.sql)")
    assert "Rolled back 2 migration(s)" in some.stdout
    assert query(dsn, "SELECT version FROM runner_migrations") == [(1,)]
    assert runner_cli("migrate", "--dsn", dsn, "--dir", folder).returncode == 0
    assert schema_only(dsn) == migrated
    everything = runner_cli("rollback", "--to", "0", "--yes", "--dsn", dsn, "--dir", folder)
    assert everything.returncode == 0 and "Rolled back 3 migration(s)" in everything.stdout
    assert schema_only(dsn) == empty
    actions = query(dsn, "SELECT action, name FROM runner_migrations_history WHERE action = 'rollback' ORDER BY id")
    assert [name for _, name in actions] == ["0003_index.sql", "0002_kinds.sql", "0003_index.sql",
                                             "0002_kinds.sql", "0001_things.sql"]  # fmt: skip
    status = api.status(dsn, folder)
    assert [(e.state.value, e.detail.split(" ")[0:2]) for e in status.entries] == [("pending", ["rolled", "back"])] * 3


def test_a_failing_down_file_is_rolled_back_with_its_step_and_keeps_the_record(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0003_index.sql", "DROP INDEX things_k;\nSELECT 1 / 0;\n")
    api.migrate(dsn, folder)
    result = runner_cli("rollback", "--to", "0", "--yes", "--dsn", dsn, "--dir", folder)
    assert_clean_error(result, 3, "down/0003_index.sql failed in the statement at line 2: division by zero "
                                  "(SQLSTATE 22012)",
                       "0003_index.sql is still applied, and no later step ran")  # fmt: skip
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_k'") == [(1,)]
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY version") == [(1,), (2,), (3,)]
    failed = "SELECT name, outcome, error IS NOT NULL FROM runner_migrations_history WHERE action = 'rollback'"
    assert query(dsn, failed) == [("0003_index.sql", "failed", True)]


def test_what_a_rollback_refuses_it_refuses_before_anything_runs(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    api.migrate(dsn, folder)
    before = schema_only(dsn)
    (folder / "down" / "0002_kinds.sql").unlink()
    assert_clean_error(runner_cli("rollback", "--to", "0", "--yes", "--dsn", dsn, "--dir", folder), 2,
                       "0002_kinds.sql: no down file", "nothing was rolled back")  # fmt: skip
    write(folder / "down", "0002_kinds.sql", FILES["0002_kinds.sql"][1])
    write(folder / "down", "0009_typo.sql", "SELECT 1;\n")
    assert_clean_error(runner_cli("rollback", "--yes", "--dsn", dsn, "--dir", folder), 2,
                       "down/0009_typo.sql: a down file with no migration of that name")  # fmt: skip
    (folder / "down" / "0009_typo.sql").unlink()
    write(folder / "down", "0003_index.sql", "-- Undoes 0003_index.sql: as `runner new` writes it\n;\n")
    assert_clean_error(runner_cli("rollback", "--yes", "--dsn", dsn, "--dir", folder), 2,
                       "down/0003_index.sql holds no SQL, only comments")  # fmt: skip
    write(folder / "down", "0003_index.sql", FILES["0003_index.sql"][1])
    write(folder, "0003_index.sql", FILES["0003_index.sql"][0] + "-- reviewed\n")
    assert_clean_error(runner_cli("rollback", "--yes", "--dsn", dsn, "--dir", folder), 1,
                       "0003_index.sql is not as it was applied (checksum", "pass --force")  # fmt: skip
    assert_clean_error(runner_cli("rollback", "--dsn", dsn, "--dir", folder, "--force"), 2,
                       "there is no terminal to confirm it on; pass --yes")  # fmt: skip
    write(tmp_path, "pyproject.toml", "[tool.runner]\nrollback = false\n")
    assert_clean_error(runner_cli("rollback", "--yes", "--force", "--dsn", dsn, "--dir", folder, cwd=tmp_path), 1,
                       "rollback is turned off for this target")  # fmt: skip
    assert schema_only(dsn) == before
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(3,)]


def test_redo_rolls_the_newest_back_and_applies_it_again(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    api.migrate(dsn, folder)
    first = query(dsn, "SELECT executed_at FROM runner_migrations WHERE version = 3")
    done = runner_cli("redo", "--yes", "--dsn", dsn, "--dir", folder)
    assert done.returncode == 0 and "Rolled back: 0003_index.sql" in done.stdout, done.stderr
    assert "Completed: 0003_index.sql" in done.stdout
    assert query(dsn, "SELECT executed_at FROM runner_migrations WHERE version = 3") != first
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_k'") == [(1,)]


def test_ctrl_c_during_a_down_file_rolls_its_step_back(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0003_index.sql", "DROP INDEX things_k;\nSELECT pg_sleep(60);\n")
    api.migrate(dsn, folder)
    code, out, err = ctrl_c_when(folder, dsn, lambda _: eventually(lambda: query(dsn, SLEEPING),
                                                                   "the down file to reach its pause"))  # fmt: skip
    assert code == 130, (out, err)
    assert "was interrupted (Ctrl-C) and rolled back: 0003_index.sql is still applied" in err
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_k'") == [(1,)]
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY version") == [(1,), (2,), (3,)]


def test_ctrl_c_during_a_no_transaction_down_file_keeps_what_ran_and_the_record(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0003_index.sql", "-- runner: no-transaction\nDROP INDEX CONCURRENTLY things_k;\n"
                                             "SELECT pg_sleep(60);\n")  # fmt: skip
    api.migrate(dsn, folder)
    code, out, err = ctrl_c_when(folder, dsn, lambda proc: wait_for_backend(dsn, proc))
    assert code == 130, (out, err)
    assert (
        "down/0003_index.sql (no transaction) was interrupted (Ctrl-C): the statement(s) at line(s) 2 had "
        "already run and were kept; the one at line 3 was running and was cancelled"
    ) in err, err
    assert "0003_index.sql is still recorded as applied" in err
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_k'") == [(0,)]
    assert query(dsn, "SELECT max(version) FROM runner_migrations") == [(3,)]


def test_a_ctrl_c_that_comes_too_late_to_cancel_the_step_says_it_was_rolled_back(dsn: str, tmp_path: Path) -> None:
    """The record's removal sleeps and swallows the cancel, so the step commits though Ctrl-C came first."""
    folder = project(tmp_path)
    api.migrate(dsn, folder)
    query(dsn, """
        CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(30); RETURN OLD; EXCEPTION WHEN query_canceled THEN RETURN OLD; END $$;
        CREATE TRIGGER slow_delete BEFORE DELETE ON runner_migrations FOR EACH ROW EXECUTE FUNCTION slow_delete();
    """)  # fmt: skip

    def sleeping_in_the_trigger(proc: subprocess.Popen[str]) -> None:
        wait_for_backend(dsn, proc, "gone AS")  # the removal of 0003's record
        eventually(lambda: query(dsn, SLEEPING), "the removal to reach the trigger's sleep")

    code, out, err = ctrl_c_when(folder, dsn, sleeping_in_the_trigger)
    assert code == 130, (out, err)
    assert "interrupted (Ctrl-C) just after down/0003_index.sql committed: 0003_index.sql was rolled back" in err
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY version") == [(1,), (2,)]


def test_two_runners_rolling_back_at_once_undo_each_step_once(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0003_index.sql", "SELECT pg_sleep(0.5);\nDROP INDEX IF EXISTS things_k;\n")
    api.migrate(dsn, folder)
    procs = [started(folder, dsn, "--to", "1") for _ in range(2)]
    results = [(p.wait(timeout=60), p.stdout.read() if p.stdout else "") for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    assert query(dsn, "SELECT version FROM runner_migrations") == [(1,)]
    undone = query(dsn, "SELECT name FROM runner_migrations_history WHERE action = 'rollback' ORDER BY id")
    assert undone == [("0003_index.sql",), ("0002_kinds.sql",)]


def test_the_projects_own_migrations_roll_back_to_an_empty_schema_and_forward_to_the_same_one(
    dsn: str, another_dsn: str, tmp_path: Path
) -> None:
    folder = seed(tmp_path)
    runner.migrate(dsn, folder)
    migrated, empty = schema_only(dsn), schema_only(another_dsn)
    three = runner.rollback(dsn, folder, to=11)
    assert three.steps == ["0014_add_skip_fields_to_approval_levels.sql", "0013_create_admin_config.sql",
                           "0012_create_holidays.sql"]  # fmt: skip
    assert [(r.version, r.down) for r in three.rolled_back] == [
        (14, "down/0014_add_skip_fields_to_approval_levels.sql"), (13, "down/0013_create_admin_config.sql"),
        (12, "down/0012_create_holidays.sql")]  # fmt: skip
    again = runner.migrate(dsn, folder)
    assert [a.name for a in again.applied][-1] == "repeatable/kpi_views.sql"  # its record was forgotten: run again
    assert schema_only(dsn) == migrated
    everything = runner.rollback(dsn, folder, to=0)
    assert len(everything.rolled_back) == 14
    assert schema_only(dsn) == empty


def test_an_edited_or_deleted_down_file_is_reported_like_an_edited_migration(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    api.migrate(dsn, folder)
    recorded = query(dsn, "SELECT down_checksum FROM runner_migrations WHERE version = 3")
    assert recorded[0][0] == api.status(dsn, folder).entries[2].file.down.checksum  # type: ignore[union-attr]
    write(folder / "down", "0003_index.sql", "DROP INDEX IF EXISTS things_k; -- reviewed\n")
    (folder / "down" / "0002_kinds.sql").unlink()
    verify = runner_cli("verify", "--dsn", dsn, "--dir", folder)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert "edited       0002_kinds.sql: its down file down/0002_kinds.sql is gone since" in verify.stdout
    assert "edited       0003_index.sql: its down file down/0003_index.sql changed: checksum sha256:" in verify.stdout
    status = json.loads(runner_cli("status", "--dsn", dsn, "--dir", folder, "--json").stdout)["migrations"]
    assert [m["down"] for m in status] == ["down/0001_things.sql", None, "down/0003_index.sql"]
    assert_clean_error(runner_cli("rollback", "--yes", "--dsn", dsn, "--dir", folder), 1,
                       "0003_index.sql is not as it was applied (its down file", "pass --force")  # fmt: skip
    accepted = runner_cli("accept", "--all", "--dsn", dsn, "--dir", folder)
    assert accepted.returncode == 0, accepted.stderr
    lines = accepted.stdout.splitlines()
    assert lines[0].startswith("Accepted down/0002_kinds.sql: checksum sha256:") and lines[0].endswith(" -> none")
    assert lines[1].startswith("Accepted down/0003_index.sql: checksum sha256:"), lines
    assert runner_cli("verify", "--dsn", dsn, "--dir", folder).returncode == 0
    assert query(dsn, "SELECT version FROM runner_migrations WHERE down_checksum IS NULL") == [(2,)]
    write(folder / "down", "0002_kinds.sql", FILES["0002_kinds.sql"][1])  # added after it was applied: not drift
    assert runner_cli("verify", "--dsn", dsn, "--dir", folder).returncode == 0
    assert runner_cli("rollback", "--to", "1", "--yes", "--dsn", dsn, "--dir", folder).returncode == 0


def test_a_stray_down_file_is_a_bad_input_for_every_command(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0004_typo.sql", "SELECT 1;\n")
    for command in ("migrate", "status", "verify", "plan"):
        assert_clean_error(runner_cli(command, "--dsn", dsn, "--dir", folder), 2,
                           "down/0004_typo.sql: a down file with no migration of that name")  # fmt: skip
    assert query(dsn, "SELECT to_regclass('runner_migrations') IS NULL") == [(True,)]


def test_what_the_confirmation_is_shown_is_what_runs_and_a_no_runs_nothing(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    api.migrate(dsn, folder)
    shown: list[list[str]] = []

    def no(steps: list[str]) -> None:
        shown.append(steps)
        raise Refused("not confirmed")

    with pytest.raises(Refused):
        runner.rollback(dsn, folder, to=1, confirm=no)
    assert shown == [["0003_index.sql", "0002_kinds.sql"]]
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(3,)]
    assert runner.rollback(dsn, folder, to=3, confirm=shown.append).rolled_back == []
    assert shown[-1] == []  # asked with no step too: a caller that previewed some learns they are gone
    redone = runner.redo(dsn, folder, confirm=shown.append)
    assert redone.rolled_back is not None and redone.rolled_back.name == "0003_index.sql"
    assert redone.migrated is not None and [a.name for a in redone.migrated.applied] == ["0003_index.sql"]
    assert shown[-1] == ["0003_index.sql"]


@pytest.mark.parametrize(
    ("answer", "code", "said"),
    [("n", 1, "error: not confirmed: nothing was rolled back"), ("y", 0, "Rolled back 1 migration(s)"),
     (signal.SIGINT, 130, "[y/N]: \r\nerror: interrupted (Ctrl-C) at the question: nothing was rolled back")],
    ids=["no", "yes", "ctrl-c"],
)  # fmt: skip
def test_on_a_terminal_rollback_asks_first_and_a_ctrl_c_there_is_an_interrupt(
    dsn: str, tmp_path: Path, answer: str | signal.Signals, code: int, said: str
) -> None:
    folder = project(tmp_path)
    api.migrate(dsn, folder)
    got, shown, _ = on_terminals("rollback", "--dsn", dsn, "--dir", folder, cwd=ROOT, env=cli_env(NO_COLOR="1"),
                                 answer=answer)  # fmt: skip
    assert got == code and "Rolling back 0003_index.sql: go on? [y/N]" in shown and said in shown, shown
    assert "Traceback" not in shown
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(2 if answer == "y" else 3,)]


def test_squash_deletes_the_down_files_of_the_migrations_it_replaces(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    api.migrate(dsn, folder)
    done = runner_cli("squash", "--to", "2", "--dsn", dsn, "--dir", folder)
    assert done.returncode == 0, done.stderr
    assert "which were deleted, with their 2 down file(s)" in done.stdout
    assert sorted(p.name for p in (folder / "down").iterdir()) == ["0003_index.sql"]
    assert runner_cli("verify", "--dsn", dsn, "--dir", folder).returncode == 0
    assert_clean_error(runner_cli("rollback", "--to", "0", "--yes", "--dsn", dsn, "--dir", folder), 2,
                       "0002_squashed.sql: no down file")  # fmt: skip


def test_a_tracking_table_of_an_earlier_runner_gets_the_checksum_columns_it_lacks(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    query(dsn, "CREATE TABLE runner_migrations (version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT "
               "NULL, executed_at timestamptz NOT NULL DEFAULT now(), execution_ms integer NOT NULL, applied_by text "
               "NOT NULL DEFAULT session_user)")  # fmt: skip
    api.migrate(dsn, folder, to=1)
    assert runner_cli("status", "--dsn", dsn, "--dir", folder).returncode == 0
    columns = query(dsn, "SELECT attname FROM pg_attribute WHERE attrelid = 'runner_migrations'::regclass "
                         "AND attnum > 0 ORDER BY attnum")  # fmt: skip
    assert [c for (c,) in columns][-2:] == ["sql_checksum", "down_checksum"]
    assert query(dsn, "SELECT down_checksum IS NOT NULL FROM runner_migrations") == [(True,)]


def test_a_down_file_that_gives_up_on_a_lock_is_retried_like_a_migration(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    api.migrate(dsn, folder)
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("BEGIN; LOCK TABLE things IN ACCESS SHARE MODE")  # DROP INDEX waits on it
        once = runner_cli("rollback", "--yes", "--lock-timeout", "100ms", "--dsn", dsn, "--dir", folder)
        assert_clean_error(once, 3, "down/0003_index.sql failed", "lock timeout", "0003_index.sql is still applied")
        proc = started(folder, dsn, "--lock-timeout", "100ms", "--retries", "5")
        wait_for_backend(dsn, proc, "DROP INDEX")
        time.sleep(0.5)  # the first try gives up on the lock meanwhile (its lock_timeout is 100ms)
        holder.execute("COMMIT")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert "gave up waiting for a lock (lock_timeout) and was rolled back; retrying" in err
    assert "Rolled back: 0003_index.sql" in out
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY version") == [(1,), (2,)]


def test_a_lost_connection_during_a_down_file_keeps_the_step_whole(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0003_index.sql", "DROP INDEX things_k;\nSELECT pg_sleep(60);\n")
    api.migrate(dsn, folder)
    proc = started(folder, dsn)
    try:
        pid = eventually(lambda: running_backend(dsn), "the down file to reach its pause")
        query(dsn, "SELECT pg_terminate_backend(%s)", (pid,))
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 5, (out, err)
    assert "lost the connection while running down/0003_index.sql" in err
    assert "either undone and unrecorded or not at all" in err and "then `runner rollback` again" in err
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_k'") == [(1,)]
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY version") == [(1,), (2,), (3,)]


def test_a_rollback_that_loses_its_lock_stops_before_the_next_step_and_says_what_it_did(
    dsn: str, tmp_path: Path
) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0003_index.sql", "SELECT pg_sleep(1);\nDROP INDEX IF EXISTS things_k;\n")
    api.migrate(dsn, folder)
    proc = started(folder, dsn, "--to", "0")
    try:
        wait_for_backend(dsn, proc)
        holder = eventually(lambda: _holder_of(dsn, proc), "the runner's lock session")
        query(dsn, "SELECT pg_terminate_backend(%s)", (holder,))
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    said = assert_clean_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), 4,
                              "lost the migration lock", "Stopped: this run rolled back 0003_index.sql; "
                              "0002_kinds.sql and 1 later step(s) were not rolled back by it")  # fmt: skip
    assert "Traceback" not in said
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY version") == [(1,), (2,)]


def test_a_no_transaction_down_file_runs_a_statement_at_a_time_then_drops_the_record(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(
        folder,
        "0004_concurrently.sql",
        "-- runner: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS things_id ON things (id);\n",
    )
    write(folder / "down", "0004_concurrently.sql", "-- runner: no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS "
                                                    "things_id;\nSELECT 1 / :zero;\n")  # fmt: skip
    api.migrate(dsn, folder)
    failed = runner_cli("rollback", "--yes", "--set", "zero=0", "--dsn", dsn, "--dir", folder)
    assert_clean_error(failed, 3, "down/0004_concurrently.sql failed in the statement at line 3: division by zero",
                       "the statement(s) at line(s) 2 had already run and were kept",
                       "0004_concurrently.sql is still recorded as applied")  # fmt: skip
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_id'") == [(0,)]
    assert query(dsn, "SELECT max(version) FROM runner_migrations") == [(4,)]
    done = runner_cli("rollback", "--yes", "--set", "zero=1", "--dsn", dsn, "--dir", folder)  # guarded: again
    assert done.returncode == 0 and "Rolled back: 0004_concurrently.sql" in done.stdout, done.stderr
    assert query(dsn, "SELECT max(version) FROM runner_migrations") == [(3,)]


def test_a_down_file_over_1_mb_is_sent_in_parts_as_a_big_migration_is(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    filler = ("SELECT 1; -- " + "x" * 990 + "\n") * 1100  # 1.1 MB: over the size a file travels whole
    write(folder / "down", "0003_index.sql", filler + "DROP INDEX things_k;\nSELECT 1 / 0;\n")
    api.migrate(dsn, folder)
    failed = runner_cli("rollback", "--yes", "--dsn", dsn, "--dir", folder)
    assert_clean_error(failed, 3, "down/0003_index.sql failed in the statement at line 1102: division by zero",
                       "0003_index.sql is still applied")  # fmt: skip
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_k'") == [(1,)]
    write(folder / "down", "0003_index.sql", filler + "DROP INDEX things_k;\n")
    done = runner_cli("rollback", "--yes", "--force", "--dsn", dsn, "--dir", folder)
    assert done.returncode == 0 and "Rolled back: 0003_index.sql" in done.stdout, done.stderr
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_k'") == [(0,)]
    assert query(dsn, "SELECT max(version) FROM runner_migrations") == [(2,)]


def test_what_a_down_file_sends_back_and_where_it_fails_are_read_as_migrate_reads_them(
    dsn: str, tmp_path: Path
) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0003_index.sql", "DROP INDEX IF EXISTS things_k;\nCOPY things TO STDOUT;\n")
    write(folder / "down", "0002_kinds.sql", "SELECT 1;\nALTER TABLE things DROP COLUMN k oops;\n")
    api.migrate(dsn, folder)
    copied = runner_cli("rollback", "--yes", "--dsn", dsn, "--dir", folder)  # the COPY's rows are drained
    assert copied.returncode == 0 and "Rolled back: 0003_index.sql" in copied.stdout, copied.stderr
    for extra in ([], ["--lock-timeout", "5s", "--statement-timeout", "1min"]):  # runner's SETs shift no line
        failed = runner_cli("rollback", "--yes", *extra, "--dsn", dsn, "--dir", folder)
        assert_clean_error(failed, 3, "down/0002_kinds.sql failed at line 2, column 34: syntax error at or near "
                                      '"oops" (SQLSTATE 42601)')  # fmt: skip


def test_a_rollback_stopped_partway_says_what_it_undid_and_still_records_the_schema(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder / "repeatable", "things_view.sql", "CREATE OR REPLACE VIEW things_view AS SELECT id FROM things;\n")
    write(folder / "down", "0002_kinds.sql", "DROP VIEW things_view;\nSELECT 1 / 0;\n")
    api.migrate(dsn, folder)
    failed = runner_cli("rollback", "--to", "0", "--yes", "--dsn", dsn, "--dir", folder)
    assert_clean_error(failed, 3, "rolled back 0003_index.sql; then down/0002_kinds.sql failed in the statement at "
                                  "line 2: division by zero")  # fmt: skip
    verify = runner_cli("verify", "--dsn", dsn, "--dir", folder)  # runner's own change is no drift
    assert verify.returncode == 0 and "pending      0003_index.sql" in verify.stdout, verify.stdout + verify.stderr
    assert "pending      repeatable/things_view.sql" in verify.stdout  # forgotten: the next migrate runs it


def test_redo_checks_the_migration_first_and_applies_only_that_one_again(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder, "0003_index.sql", "CREATE INDEX IF NOT EXISTS things_k ON things (id);\n")
    (folder / "0002_kinds.sql").rename(tmp_path / "0002_kinds.sql")
    (folder / "down" / "0002_kinds.sql").unlink()
    api.migrate(dsn, folder)  # 1 and 3
    (tmp_path / "0002_kinds.sql").rename(folder / "0002_kinds.sql")  # merged late: out of order, migrate refuses it
    redone = runner.redo(dsn, folder)
    assert redone.rolled_back is not None and redone.rolled_back.name == "0003_index.sql"
    assert redone.migrated is not None and [a.name for a in redone.migrated.applied] == ["0003_index.sql"]
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY version") == [(1,), (3,)]
    write(folder, "0003_index.sql", "CREATE INDEX IF NOT EXISTS things_k ON things (:column);\n")
    refused = runner_cli("redo", "--yes", "--force", "--dsn", dsn, "--dir", folder)
    assert_clean_error(refused, 2, "the variable :column has no value")
    assert query(dsn, "SELECT count(*) FROM runner_migrations_history WHERE action = 'rollback'") == [(1,)]
    failed = runner_cli("redo", "--yes", "--force", "--set", "column=nope", "--dsn", dsn, "--dir", folder)
    assert_clean_error(failed, 3, "rolled back 0003_index.sql (down/0003_index.sql); then 0003_index.sql failed",
                       'column "nope" does not exist')  # fmt: skip
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY version") == [(1,)]


def test_rollback_refuses_a_squash_and_a_dry_run_writes_nothing(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    dry = runner_cli("rollback", "--dry-run", "--table", "elsewhere.trail", "--dsn", dsn, "--dir", folder)
    assert dry.returncode == 0 and dry.stdout.strip() == "Nothing to roll back", dry.stderr
    assert query(dsn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'elsewhere'") == [(0,)]
    assert query(dsn, "SELECT to_regclass('runner_migrations') IS NULL") == [(True,)]
    api.migrate(dsn, folder)
    assert runner_cli("squash", "--to", "3", "--dsn", dsn, "--dir", folder).returncode == 0
    write(folder / "down", "0003_squashed.sql", "DROP TABLE things;\n")
    assert_clean_error(runner_cli("rollback", "--yes", "--dsn", dsn, "--dir", folder), 2,
                       "0003_squashed.sql is a squash, and nothing is rolled back past a squash")  # fmt: skip
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(3,)]


def test_a_step_another_runner_undid_meanwhile_is_named_as_such(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0003_index.sql", "SELECT pg_sleep(3);\nDROP INDEX IF EXISTS things_k;\n")
    api.migrate(dsn, folder)
    first = started(folder, dsn)
    try:
        wait_for_backend(dsn, first)
        holder = eventually(lambda: _holder_of(dsn, first), "the first runner's lock session")
        query(dsn, "SELECT pg_terminate_backend(%s)", (holder,))  # its lock is free: a second runner takes it
        second = started(folder, dsn)
        (_, first_err), (_, second_err) = first.communicate(timeout=60), second.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 4 and "this run rolled back 0003_index.sql" in first_err, first_err
    assert_clean_error(subprocess.CompletedProcess(second.args, second.returncode, "", second_err), 3,
                       "0003_index.sql was rolled back by another runner meanwhile")  # fmt: skip
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY version") == [(1,), (2,)]
    undone = "SELECT outcome FROM runner_migrations_history WHERE action = 'rollback' ORDER BY id"
    assert query(dsn, undone) == [("ok",), ("failed",)]


def test_a_no_transaction_down_file_that_leaves_a_transaction_open_is_not_recorded(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0003_index.sql", "-- runner: no-transaction\nBEGIN;\nDROP INDEX IF EXISTS things_k;\n")
    api.migrate(dsn, folder)
    assert_clean_error(runner_cli("rollback", "--yes", "--dsn", dsn, "--dir", folder), 3,
                       "down/0003_index.sql ends inside a transaction it opened and never committed")  # fmt: skip
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_k'") == [(1,)]
    assert query(dsn, "SELECT max(version) FROM runner_migrations") == [(3,)]


def test_a_rollback_over_tenant_schemas_previews_asks_once_and_undoes_each_in_its_own_schema(
    dsn: str, tmp_path: Path
) -> None:
    folder = project(tmp_path)  # unqualified names: each tenant's, by search_path
    query(dsn, "CREATE SCHEMA tenant_a; CREATE SCHEMA tenant_b")
    env = cli_env(DATABASE_URL=dsn)
    assert runner_cli("migrate", "--schemas", "tenant_*", "--dir", folder, env=env).returncode == 0
    database = dsn.rpartition("dbname=")[2].split()[0]
    dry = runner_cli("rollback", "--schemas", "tenant_*", "--to", "1", "--dry-run", "--dir", folder, env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.splitlines()[:2] == [
        f"{database}/tenant_a: would roll back 0003_index.sql, 0002_kinds.sql",
        f"{database}/tenant_b: would roll back 0003_index.sql, 0002_kinds.sql",
    ]
    assert_clean_error(runner_cli("rollback", "--schemas", "tenant_*", "--dir", folder, env=env), 2,
                       "runner rollback runs down files and deletes records", "pass --yes")  # fmt: skip
    done = runner_cli("rollback", "--schemas", "tenant_*", "--to", "1", "--yes", "--dir", folder, "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert [t["rolled_back"] for t in document["targets"]] == [["0003_index.sql", "0002_kinds.sql"]] * 2
    kinds = "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE typname = 'kind'"
    assert query(dsn, kinds) == []  # the down files ran in the tenants' schemas, not in public
    for tenant in ("tenant_a", "tenant_b"):
        assert query(dsn, f"SELECT version FROM {tenant}.runner_migrations") == [(1,)]
    assert query(dsn, "SELECT to_regclass('public.things') IS NULL") == [(True,)]
    write(tmp_path, "pyproject.toml", "[tool.runner]\nrollback = false\n")
    assert_clean_error(runner_cli("rollback", "--schemas", "tenant_*", "--yes", "--dir", folder, cwd=tmp_path,
                                  env=env), 1, "rollback is turned off for this target")  # fmt: skip


def test_a_change_made_outside_runner_stays_drift_after_a_rollback_and_a_redo(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    api.migrate(dsn, folder)
    query(dsn, "CREATE TABLE by_hand (id int)")
    for command in ("rollback", "redo"):
        done = runner_cli(command, "--yes", "--dsn", dsn, "--dir", folder)
        assert done.returncode == 0 and "changed outside runner: table by_hand" in done.stderr, done.stderr
        verify = runner_cli("verify", "--dsn", dsn, "--dir", folder)
        assert verify.returncode == 1 and "by_hand" in verify.stdout, verify.stdout + verify.stderr
        assert "things_k" not in verify.stdout  # what the down file (and redo) changed is runner's own work
        if command == "rollback":
            assert runner_cli("migrate", "--dsn", dsn, "--dir", folder).returncode == 0


def test_a_no_transaction_down_file_that_kept_statements_is_not_tried_again(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0003_index.sql", "-- runner: no-transaction\nINSERT INTO undone VALUES (1);\n"
                                             "DROP INDEX things_k;\n")  # fmt: skip
    api.migrate(dsn, folder)
    query(dsn, "CREATE TABLE undone (n int)")
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("BEGIN; LOCK TABLE things IN ACCESS SHARE MODE")
        failed = runner_cli("rollback", "--yes", "--lock-timeout", "100ms", "--retries", "2", "--dsn", dsn,
                            "--dir", folder)  # fmt: skip
        holder.execute("COMMIT")
    said = assert_clean_error(failed, 3, "down/0003_index.sql failed in the statement at line 3",
                              "the statement(s) at line(s) 2 had already run and were kept")  # fmt: skip
    assert "retrying" not in failed.stderr, said
    assert query(dsn, "SELECT count(*) FROM undone") == [(1,)]


def test_a_down_file_the_server_reads_otherwise_is_refused_before_anything_runs(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    write(folder / "down", "0003_index.sql", "DROP INDEX things_k;\nSELECT 'A\\' AS x, ' ; COMMIT; -- ';\n"
                                             "SELECT 1 / 0;\n")  # fmt: skip
    api.migrate(dsn, folder)
    off = dsn + " options='-c standard_conforming_strings=off'"  # the server reads the string another way
    for command in ("rollback", "redo"):
        failed = runner_cli(command, "--yes", "--dsn", off, "--dir", folder)
        assert_clean_error(failed, 2, "down/0003_index.sql, line 2: a backslash before a quote",
                           "Nothing was rolled back")  # fmt: skip
    assert query(dsn, "SELECT max(version) FROM runner_migrations") == [(3,)]
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_k'") == [(1,)]


def test_a_fleet_rollback_stopped_by_a_failing_target_names_the_ones_it_did_not_start(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    query(dsn, "CREATE SCHEMA tenant_a; CREATE SCHEMA tenant_b; CREATE SCHEMA tenant_c")
    env = cli_env(DATABASE_URL=dsn)
    assert runner_cli("migrate", "--schemas", "tenant_*", "--dir", folder, env=env).returncode == 0
    query(dsn, "CREATE VIEW tenant_b.kinds AS SELECT k FROM tenant_b.things")  # 0002's down file fails there
    database = dsn.rpartition("dbname=")[2].split()[0]
    for extra in ([], ["--json"]):
        done = runner_cli("rollback", "--schemas", "tenant_*", "--to", "1", "--yes", "--jobs", "1", "--dir", folder,
                          *extra, env=env)  # fmt: skip
        assert done.returncode == 3 and "Traceback" not in done.stderr, done.stdout + done.stderr
        if extra:
            document = json.loads(done.stdout)
            assert [t["started"] for t in document["targets"]] == [True, True, False]
        else:
            first, second = done.stdout.splitlines()[:2]
            assert first == f"{database}/tenant_a: rolled back 0003_index.sql, 0002_kinds.sql"
            assert second.startswith(f"{database}/tenant_b: error (exit 3): rolled back 0003_index.sql; then "
                                     "down/0002_kinds.sql failed")  # fmt: skip
            assert "1 not started" in done.stdout
    assert query(dsn, "SELECT count(*) FROM tenant_c.runner_migrations") == [(3,)]


def test_a_rollback_on_an_applications_connection_sends_every_step_as_utf8_and_hands_it_back(
    dsn: str, tmp_path: Path
) -> None:
    folder = tmp_path / "sql"
    write(folder, "1_a.sql", "CREATE TABLE a (id int);\n")
    write(folder, "2_b.sql", "CREATE TABLE b (id int);\n")
    write(folder / "down", "2_b.sql", "DROP TABLE b;\n")
    write(folder / "down", "1_a.sql", "CREATE TABLE noted AS SELECT 'café' AS note;\nDROP TABLE a;\n")
    api.migrate(dsn, folder)
    with psycopg.connect(make_conninfo(dsn, client_encoding="LATIN1")) as conn:
        conn.commit()
        assert [r.name for r in runner.rollback(conn, folder, to=0).rolled_back] == ["2_b.sql", "1_a.sql"]
        assert conn.info.parameter_status("client_encoding") == "LATIN1"
        assert conn.execute("SELECT %s::int", (2,), prepare=True).fetchone() == (2,)
    assert query(dsn, "SELECT note FROM noted") == [("café",)]  # the second step too was read as UTF-8
