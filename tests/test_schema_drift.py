"""Schema drift through the commands: migrate records the schema, verify names what changed by hand, diff compares."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import SQL_DIR, assert_clean_error, query, runner_cli, write
from psycopg import sql
from psycopg.conninfo import make_conninfo

from runner import schema


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's own migrations, the ones ``runner_db`` (runner's pytest plugin) was migrated with."""
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder)
    return folder


def _verify(dsn: str, folder: Path, *args: str) -> tuple[int, list[str]]:
    result = runner_cli("verify", "--dsn", dsn, "--dir", folder, *args)
    return result.returncode, result.stdout.splitlines()


def test_a_freshly_migrated_database_has_no_schema_drift(runner_db: str, project: Path) -> None:
    assert _verify(runner_db, project) == (0, ["No drift: 15 applied"])
    # runner's own tables (tracking, history, schema) are never part of the schema it compares
    snapshot = query(runner_db, "SELECT snapshot::text FROM runner_migrations_schema")[0][0]
    assert "runner_migrations" not in str(snapshot)


def test_the_recorded_digest_is_the_live_one_until_something_changes(runner_db: str, project: Path) -> None:
    own = [
        "public.runner_migrations",
        "public.runner_migrations_history",
        "public.runner_migrations_repeatable",
        "public.runner_migrations_schema",
    ]
    with psycopg.connect(runner_db, autocommit=True) as conn:
        table = sql.Identifier("runner_migrations_schema")
        recorded = schema.recorded_digest(conn, table)
        assert recorded and recorded == schema.digest(conn, own) == schema.taken(conn, own)[1]
        conn.execute("COMMENT ON TABLE approval_levels IS 'not in the snapshot, so not in the digest'")
        assert schema.digest(conn, own) == recorded
        conn.execute("ALTER TABLE approval_levels ALTER COLUMN skip_reason SET DEFAULT 'n/a'")
        assert schema.digest(conn, own) != recorded


def test_a_schema_recorded_before_digests_is_still_compared(runner_db: str, project: Path) -> None:
    query(runner_db, "ALTER TABLE runner_migrations_schema DROP COLUMN digest")
    assert _verify(runner_db, project) == (0, ["No drift: 15 applied"])
    query(runner_db, "CREATE TABLE tmp_fix (id int)")
    assert _verify(runner_db, project)[1][0] == "schema       table tmp_fix: not created by any migration"
    write(project, "0015_later.sql", "CREATE TABLE IF NOT EXISTS later (id int);\n")
    assert runner_cli("migrate", "--dsn", runner_db, "--dir", project).returncode == 0  # records it, with a digest
    assert query(runner_db, "SELECT digest IS NOT NULL FROM runner_migrations_schema") == [(True,)]
    assert _verify(runner_db, project) == (0, ["No drift: 16 applied"])


def test_verify_names_each_change_made_by_hand(runner_db: str, project: Path) -> None:
    query(runner_db, """
        ALTER TABLE approval_levels ALTER COLUMN skip_reason TYPE varchar(100);
        DROP INDEX idx_tat_alerts_due;
        CREATE TABLE tmp_fix (id int);
    """)  # fmt: skip
    code, lines = _verify(runner_db, project)
    assert code == 1
    assert lines == [
        "schema       table tmp_fix: not created by any migration",
        "schema       column approval_levels.skip_reason: type text -> character varying(100)",
        "schema       index idx_tat_alerts_due: dropped",
        "Drift found: 15 applied, 3 schema change(s)",
    ]
    doc = json.loads(runner_cli("verify", "--dsn", runner_db, "--dir", project, "--json").stdout)
    assert [d["text"] for d in doc["schema_drift"]] == [line.removeprefix("schema       ") for line in lines[:3]]
    assert doc["clean"] is False and doc["schema_recorded"] is True


def test_migrate_warns_of_changes_made_by_hand_then_records_the_new_schema(runner_db: str, project: Path) -> None:
    query(runner_db, "CREATE TABLE tmp_fix (id int)")
    write(project, "0015_later.sql", "CREATE TABLE IF NOT EXISTS later (id int);\n")
    planned = runner_cli("plan", "--dsn", runner_db, "--dir", project)
    assert "warning: changed outside runner: table tmp_fix: not created by any migration" in planned.stderr
    result = runner_cli("migrate", "--dsn", runner_db, "--dir", project)
    assert result.returncode == 0, result.stderr
    assert "warning: changed outside runner: table tmp_fix: not created by any migration" in result.stderr
    assert _verify(runner_db, project) == (0, ["No drift: 16 applied"])


def test_a_file_run_by_hand_and_marked_is_not_schema_drift(runner_db: str, project: Path) -> None:
    write(project, "0015_notes.sql", "CREATE TABLE IF NOT EXISTS release_notes (id int);\n")
    query(runner_db, "CREATE TABLE IF NOT EXISTS release_notes (id int)")  # the DBA ran it in psql
    assert _verify(runner_db, project)[0] == 1
    assert runner_cli("mark", "15", "--dsn", runner_db, "--dir", project).returncode == 0
    assert _verify(runner_db, project) == (0, ["No drift: 16 applied"])


def test_a_database_without_a_recorded_schema_says_so(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    assert runner_cli("mark", "1", "--dsn", dsn, "--dir", migrations).returncode == 0
    query(dsn, "DROP TABLE runner_migrations_schema")
    code, lines = _verify(dsn, migrations)
    assert code == 0 and lines[0].startswith("No schema recorded yet")
    # migrate records it, even with nothing to run
    assert runner_cli("migrate", "--dsn", dsn, "--dir", migrations).returncode == 0
    assert query(dsn, "SELECT count(*) FROM runner_migrations_schema") == [(1,)]


@pytest.fixture
def other(runner_db: str, project: Path) -> Iterator[str]:
    """A second database, migrated from the same files (staging beside production)."""
    name = f"{psycopg.conninfo.conninfo_to_dict(runner_db)['dbname']}_other"
    with psycopg.connect(make_conninfo(runner_db, dbname="postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            url = make_conninfo(runner_db, dbname=name)
            assert runner_cli("migrate", "--dsn", url, "--dir", project).returncode == 0
            yield url
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_diff_compares_two_live_databases(runner_db: str, other: str) -> None:
    same = runner_cli("diff", "--dsn", runner_db, "--against", other)
    assert (same.returncode, same.stdout.strip()) == (0, "No differences")
    query(other, "ALTER TABLE work_notes ADD COLUMN pinned boolean; DROP VIEW vw_tat_alerts_by_month")
    found = runner_cli("diff", "--dsn", runner_db, "--against", other)
    assert found.returncode == 1
    assert found.stdout.splitlines() == [
        "column work_notes.pinned: only in --against",
        "view vw_tat_alerts_by_month: missing from --against",
    ]
    doc = json.loads(runner_cli("diff", "--dsn", runner_db, "--against", other, "--json").stdout)
    assert doc["same"] is False and len(doc["differences"]) == 2
    unreachable = runner_cli("diff", "--dsn", runner_db, "--against", "postgresql://x@127.0.0.1:1/x")
    assert_clean_error(unreachable, 5, "x@127.0.0.1:1/x")
