"""runner rollback and redo, with down files, on a real server: what is undone, and what is refused."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from runner import api
from tests.helpers import ROOT, assert_clean_error, cli_env, query, runner_cli, write
from tests.test_dump import schema_only
from tests.test_faults import eventually

FILES = {
    "0001_things.sql": ("CREATE TABLE IF NOT EXISTS things (id int PRIMARY KEY);\n", "DROP TABLE IF EXISTS things;\n"),
    "0002_kinds.sql": ("CREATE TYPE kind AS ENUM ('a', 'b');\nALTER TABLE things ADD COLUMN k kind;\n",
                       "ALTER TABLE things DROP COLUMN IF EXISTS k;\nDROP TYPE IF EXISTS kind;\n"),
    "0003_index.sql": ("CREATE INDEX IF NOT EXISTS things_k ON things (k);\n", "DROP INDEX IF EXISTS things_k;\n"),
}  # fmt: skip


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
    api.migrate(dsn, folder)
    write(folder / "down", "0003_index.sql", "DROP INDEX things_k;\nSELECT 1 / 0;\n")
    result = runner_cli("rollback", "--to", "0", "--yes", "--dsn", dsn, "--dir", folder)
    assert_clean_error(result, 3, "down/0003_index.sql failed: division by zero",
                       "0003_index.sql is still applied, and no later step ran")  # fmt: skip
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_k'") == [(1,)]
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY version") == [(1,), (2,), (3,)]


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
    write(folder, "0003_index.sql", FILES["0003_index.sql"][0] + "-- reviewed\n")
    assert_clean_error(runner_cli("rollback", "--yes", "--dsn", dsn, "--dir", folder), 1,
                       "0003_index.sql changed since it was applied", "pass --force")  # fmt: skip
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
    api.migrate(dsn, folder)
    write(folder / "down", "0003_index.sql", "DROP INDEX things_k;\nSELECT pg_sleep(60);\n")
    argv = [sys.executable, "-m", "runner", "rollback", "--yes", "--dsn", dsn, "--dir", str(folder)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        sleeping = "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'"
        eventually(lambda: query(dsn, sleeping), "the down file to reach its pause")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "was interrupted (Ctrl-C) and rolled back: 0003_index.sql is still applied" in err
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'things_k'") == [(1,)]
    assert query(dsn, "SELECT version FROM runner_migrations ORDER BY version") == [(1,), (2,), (3,)]


def test_two_runners_rolling_back_at_once_undo_each_step_once(dsn: str, tmp_path: Path) -> None:
    folder = project(tmp_path)
    api.migrate(dsn, folder)
    write(folder / "down", "0003_index.sql", "SELECT pg_sleep(0.5);\nDROP INDEX IF EXISTS things_k;\n")
    argv = [sys.executable, "-m", "runner", "rollback", "--to", "1", "--yes", "--dsn", dsn, "--dir", str(folder)]
    procs = [subprocess.Popen(argv, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]  # fmt: skip
    results = [(p.wait(timeout=60), p.stdout.read() if p.stdout else "") for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    assert query(dsn, "SELECT version FROM runner_migrations") == [(1,)]
    undone = query(dsn, "SELECT name FROM runner_migrations_history WHERE action = 'rollback' ORDER BY id")
    assert undone == [("0003_index.sql",), ("0002_kinds.sql",)]
