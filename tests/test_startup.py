"""The README's start-up example, run as written: several replicas of a FastAPI application starting at once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, cli_env, query, write

# Enters the application's lifespan, as uvicorn does on start-up, and leaves it.
_START = """
import asyncio
from app import app

async def start_and_stop() -> None:
    async with app.router.lifespan_context(app):
        print("serving")

asyncio.run(start_and_stop())
"""


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    found = [block for block in blocks if "lifespan" in block]
    assert len(found) == 1, "the README should have one start-up example"
    return found[0]


def _replicas(project: Path, dsn: str, count: int) -> list[subprocess.CompletedProcess[str]]:
    write(project, "app.py", _example())
    env = cli_env(DATABASE_URL=dsn)
    started = [
        subprocess.Popen([sys.executable, "-c", _START], cwd=project, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(count)
    ]  # fmt: skip
    done = []
    for process in started:
        out, err = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def test_replicas_starting_together_apply_each_file_once_and_all_serve(dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "1_accounts.sql", "CREATE TABLE accounts (id int PRIMARY KEY);\n")
    write(folder, "2_slow.sql", "SELECT pg_sleep(1);\nCREATE TABLE audit (id int);\n")  # the others wait on the lock
    write(folder, "3_seed.sql", "INSERT INTO accounts VALUES (1);\n")  # a second run would break the primary key
    write(folder / "repeatable", "views.sql", "CREATE OR REPLACE VIEW account_ids AS SELECT id FROM accounts;\n")

    replicas = _replicas(tmp_path, dsn, 4)
    for replica in replicas:
        assert replica.returncode == 0, replica.stderr
        assert replica.stdout == "serving\n"
    applied = query(dsn, "SELECT name, count(*) FROM runner_migrations_history WHERE action = 'apply' GROUP BY 1")
    assert sorted(applied) == [("1_accounts.sql", 1), ("2_slow.sql", 1), ("3_seed.sql", 1),
                               ("repeatable/views.sql", 1)]  # fmt: skip
    assert query(dsn, "SELECT id FROM account_ids") == [(1,)]


def test_a_failing_migration_stops_the_start_up_with_runners_message(dsn: str, tmp_path: Path) -> None:
    write(tmp_path / "sql", "1_broken.sql", "CREATE TABLE t (id int);\nINSERT INTO t VALUES ('x');\n")
    (replica,) = _replicas(tmp_path, dsn, 1)
    assert replica.returncode != 0 and "serving" not in replica.stdout
    assert "runner.errors.MigrationFailed: 1_broken.sql failed at line 2" in replica.stderr
    assert query(dsn, "SELECT to_regclass('t')") == [(None,)]
