"""Fleets from the command line: many databases in separate processes, killed, interrupted and sharded for real.

Exactly-once is checked in each database's own history: one "apply" row per file, whatever happened.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from helpers import assert_clean_error, cli_env, query, runner_cli, write
from psycopg import sql
from psycopg.conninfo import make_conninfo
from test_faults import eventually, finish, running_backend, started

Databases = Callable[[int], list[str]]
SLOW = "SELECT pg_sleep({seconds});\n"
FILES = {
    "0001_create_accounts.sql": "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, name text NOT NULL);\n",
    "0002_index_names.sql": "CREATE INDEX IF NOT EXISTS accounts_name ON accounts (name);\n",
    "0003_create_notes.sql": "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text);\n",
}


def _each(server_dsn: str, statement: str, names: list[str]) -> None:
    """``statement`` for each database name, on 8 connections: DROP DATABASE waits for a checkpoint, and
    those of drops made together are one."""

    def run(part: list[str]) -> None:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            for name in part:
                admin.execute(sql.SQL(statement).format(sql.Identifier(name)))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(run, [names[i::8] for i in range(8)]))


@pytest.fixture
def make_databases(server_dsn: str) -> Iterator[Databases]:
    """Creates databases on the test server for one test, and drops them afterwards."""
    made: list[str] = []

    def make(count: int) -> list[str]:
        prefix = f"runner_fleet_{uuid.uuid4().hex[:8]}"
        names = [f"{prefix}_{i:03}" for i in range(count)]
        made.extend(names)
        _each(server_dsn, "CREATE DATABASE {}", names)
        return [make_conninfo(server_dsn, dbname=name) for name in names]

    yield make
    _each(server_dsn, "DROP DATABASE IF EXISTS {} WITH (FORCE)", made)


def project(tmp_path: Path, dsns: list[str], files: dict[str, str] = FILES) -> tuple[Path, Path]:
    """A migrations folder and a targets file listing ``dsns``."""
    folder = tmp_path / "sql"
    for name, text in files.items():
        write(folder, name, text)
    listed = tmp_path / "targets.txt"
    listed.write_text("# the fleet\n" + "".join(f"{dsn}\n" for dsn in dsns))
    return folder, listed


def applied_once(dsn: str, count: int) -> bool:
    """Every file recorded, and applied exactly once by the history's account."""
    rows = query(dsn, "SELECT version, count(*) FROM runner_migrations_history WHERE action = 'apply' "
                      "AND version IS NOT NULL GROUP BY version ORDER BY 1")  # fmt: skip
    recorded = query(dsn, "SELECT count(*) FROM runner_migrations")
    return rows == [(v, 1) for v in range(1, count + 1)] and recorded == [(count,)]


def recorded(dsn: str) -> int:
    """How many files the database's tracking table records (0 without one)."""
    if query(dsn, "SELECT to_regclass('runner_migrations')") == [(None,)]:
        return 0
    return int(str(query(dsn, "SELECT count(*) FROM runner_migrations")[0][0]))


def shape(dsn: str) -> list[tuple[object, ...]]:
    return query(dsn, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                      "WHERE table_schema = 'public' AND left(table_name, 6) <> 'runner' ORDER BY 1, 2")  # fmt: skip


def test_two_hundred_databases_from_a_targets_file_end_in_the_same_schema(
    make_databases: Databases, tmp_path: Path
) -> None:
    dsns = make_databases(200)
    folder, listed = project(tmp_path, dsns)
    result = runner_cli("migrate", "--targets-file", listed, "--dir", folder, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "200 target(s) in" in result.stdout and ": 200 migrated" in result.stdout
    assert sum("applied 3 migration(s)" in line for line in result.stdout.splitlines()) == 200
    first = shape(dsns[0])
    assert len(first) == 4
    assert all(shape(dsn) == first and applied_once(dsn, 3) for dsn in dsns)
    again = runner_cli("status", "--targets-file", listed, "--dir", folder, timeout=600)
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == "200 target(s): 200 up to date"


def test_a_fleet_killed_mid_run_then_run_again_applies_every_file_exactly_once(
    make_databases: Databases, tmp_path: Path
) -> None:
    dsns = make_databases(12)
    files = {**FILES, "0002_index_names.sql": SLOW.format(seconds=0.5) + FILES["0002_index_names.sql"]}
    folder, listed = project(tmp_path, dsns, files)
    with started("migrate", "--targets-file", listed, "--dir", folder, "--jobs", "3") as proc:
        eventually(
            lambda: sum(recorded(dsn) == 3 for dsn in dsns) >= 2 and any(running_backend(d) for d in dsns),
            "two targets done and a third in its slow file",
        )
        proc.kill()
        proc.wait()
    assert any(recorded(dsn) < 3 for dsn in dsns)
    result = runner_cli("migrate", "--targets-file", listed, "--dir", folder, "--jobs", "4", timeout=300)
    assert result.returncode == 0, result.stderr
    assert all(applied_once(dsn, 3) for dsn in dsns)


def test_two_shards_and_a_whole_run_at_once_apply_every_file_exactly_once(
    make_databases: Databases, tmp_path: Path
) -> None:
    dsns = make_databases(10)
    files = {**FILES, "0002_index_names.sql": SLOW.format(seconds=0.1) + FILES["0002_index_names.sql"]}
    folder, listed = project(tmp_path, dsns, files)
    runs = [("--shard", "0/2"), ("--shard", "1/2"), ()]
    command = [sys.executable, "-m", "runner", "migrate", "--targets-file", str(listed), "--dir", str(folder)]
    procs = [subprocess.Popen([*command, *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
             for extra in runs]  # fmt: skip
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    sizes = [int(out.strip().splitlines()[-1].split(" target(s)")[0]) for out, _ in outputs]
    assert sizes[0] + sizes[1] == 10 and sizes[2] == 10 and 0 < sizes[0] < 10
    assert all(applied_once(dsn, 3) for dsn in dsns)


def test_a_failed_canary_leaves_the_rest_unstarted_and_says_so(make_databases: Databases, tmp_path: Path) -> None:
    dsns = make_databases(4)
    folder, listed = project(tmp_path, dsns)
    query(dsns[0], "CREATE TABLE accounts (id bigint)")  # 0002's index needs a name column
    result = runner_cli("migrate", "--targets-file", listed, "--dir", folder, "--canary", "1")
    assert result.returncode == 3
    lines = result.stdout.strip().splitlines()
    assert "error (exit 3): 0002_index_names.sql failed" in lines[0]
    assert lines[-1].startswith("3 target(s) not started: a canary target failed (")
    assert all(query(dsn, "SELECT to_regclass('runner_migrations')") == [(None,)] for dsn in dsns[1:])


SIGNALS = [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")]


@pytest.mark.parametrize(("signum", "code", "cause"), SIGNALS, ids=["int", "term"])
def test_a_signal_lets_running_targets_finish_and_starts_no_new_one(
    make_databases: Databases, tmp_path: Path, signum: int, code: int, cause: str
) -> None:
    dsns = make_databases(6)
    files = {**FILES, "0002_index_names.sql": SLOW.format(seconds=1) + FILES["0002_index_names.sql"]}
    folder, listed = project(tmp_path, dsns, files)
    with started("migrate", "--targets-file", listed, "--dir", folder, "--jobs", "2") as proc:
        eventually(lambda: sum(bool(running_backend(dsn)) for dsn in dsns) == 2, "two targets in their slow file")
        proc.send_signal(signum)
        result = finish(proc)
    assert result.returncode == code, result.stderr
    assert f"no new target starts: interrupted ({cause}); waiting for 2 running" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"4 target(s) not started: interrupted ({cause}); run the " \
        "command again to go on from where each target stands"  # fmt: skip
    done = [dsn for dsn in dsns if recorded(dsn)]
    assert len(done) == 2 and all(applied_once(dsn, 3) for dsn in done)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("status", "--shard", "2/2"), 2, "K counts from 0"),
        (("status", "--shard", "half"), 2, "is not K/N"),
        (("history", "--dsn", "postgresql:///a", "--dsn", "postgresql:///b"), 2, "--dsn is given 2 times"),
        (("status", "--schemas", "no_such_tenant_*"), 2, "chose no schema in runner_test_"),
        (("migrate", "--schemas", "tenant_*", "--create-schema"), 2, "give its name as --schemas NAME"),
        (("status", "--targets-file", "/nonexistent/targets.txt"), 2, "/nonexistent/targets.txt"),
        (("status", "--schemas", "a", "--schemas-query", "SELECT 'a'"), 2, "give one of them"),
        (("migrate", "--schemas", "public", "--canary", "5"), 2, "--canary 5"),
    ],
    ids=["shard-k", "shard-form", "dsn-twice", "no-schema", "create-pattern", "no-file", "both", "canary"],
)
def test_a_bad_fleet_option_is_one_error_line_and_changes_nothing(dsn: str, args: tuple[str, ...], code: int,
                                                                   needle: str, tmp_path: Path) -> None:  # fmt: skip
    folder, _ = project(tmp_path, [])
    where = () if args[0] == "history" else ("--dir", folder)
    result = runner_cli(*args, *where, env=cli_env(DATABASE_URL=dsn))
    assert_clean_error(result, code, needle)
    assert query(dsn, "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')") \
        == [(0,)]  # fmt: skip


def test_each_target_gets_its_name_and_schema_as_variables_beside_those_set(dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    text = "CREATE TABLE IF NOT EXISTS :\"schema\".accounts (id int, region text DEFAULT :'region');\n"
    write(folder, "0001_accounts.sql", text + "COMMENT ON TABLE :\"schema\".accounts IS :'target';\n")
    query(dsn, 'CREATE SCHEMA tenant_a; CREATE SCHEMA "tenant B"')
    env = cli_env(DATABASE_URL=dsn)
    refused = runner_cli("migrate", "--schemas", "tenant*", "--dir", folder, env=env)
    assert refused.returncode == 2 and "the variable :'region' has no value" in refused.stdout
    assert query(dsn, "SELECT count(*) FROM pg_tables WHERE tablename = 'accounts'") == [(0,)]
    result = runner_cli("migrate", "--schemas", "tenant*", "--dir", folder, "--set", "region=eu", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = query(dsn, "SELECT n.nspname, obj_description(c.oid), pg_get_expr(d.adbin, d.adrelid) FROM pg_class c "
                      "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attrdef d ON d.adrelid = c.oid "
                      "WHERE c.relname = 'accounts' ORDER BY 1")  # fmt: skip
    database = dsn.rpartition("dbname=")[2].split()[0]
    assert rows == [
        ("tenant B", f"{database}/tenant B", "'eu'::text"),
        ("tenant_a", f"{database}/tenant_a", "'eu'::text"),
    ]
    bad = runner_cli("migrate", "--schemas", "tenant*", "--dir", folder, "--set", "region", env=env)
    assert_clean_error(bad, 2, "--set 'region': expected NAME=VALUE")
