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


OWN = [f"public.runner_migrations{suffix}" for suffix in ("", "_history", "_repeatable", "_schema")]
SNAPSHOT_TABLE = sql.Identifier("public", "runner_migrations_schema")


def _recorded_names(dsn: str) -> str:
    return str(query(dsn, "SELECT string_agg(kind || ' ' || name, ', ') FROM runner_migrations_schema")[0][0])


def _fingerprinted(dsn: str) -> bool:
    """The record says what the catalogs added up to (verify can skip reading the snapshot)."""
    found = query(dsn, "SELECT attributes ? 'fingerprint' FROM runner_migrations_schema WHERE kind = ''")
    return found == [(True,)]


def test_a_freshly_migrated_database_has_no_schema_drift(runner_db: str, project: Path) -> None:
    assert _verify(runner_db, project) == (0, ["No drift: 15 applied"])
    # runner's own tables (tracking, history, schema) are never part of the schema it compares
    names = _recorded_names(runner_db)
    assert "table approval_levels" in names and "runner_migrations" not in names


def test_the_record_is_the_live_schema_until_something_changes(runner_db: str, project: Path) -> None:
    with psycopg.connect(runner_db, autocommit=True) as conn:
        assert schema.unchanged(conn, SNAPSHOT_TABLE) is not None
        conn.execute("COMMENT ON TABLE approval_levels IS 'not in the snapshot'")
        conn.execute("CREATE TEMPORARY TABLE scratch (id int)")  # a session's own, gone with it
        assert schema.unchanged(conn, SNAPSHOT_TABLE) is not None
        conn.execute("ALTER TABLE approval_levels ALTER COLUMN skip_reason SET DEFAULT 'n/a'")
        assert schema.unchanged(conn, SNAPSHOT_TABLE) is None
        conn.execute("ALTER TABLE approval_levels ALTER COLUMN skip_reason DROP DEFAULT")
        assert schema.unchanged(conn, SNAPSHOT_TABLE) is None  # as it was, but written since: read to be sure
    assert _verify(runner_db, project) == (0, ["No drift: 15 applied"])
    write(project, "0015_later.sql", "CREATE TABLE IF NOT EXISTS later (id int);\n")
    assert runner_cli("migrate", "--dsn", runner_db, "--dir", project).returncode == 0
    with psycopg.connect(runner_db, autocommit=True) as conn:
        assert schema.unchanged(conn, SNAPSHOT_TABLE) is not None
        # A record written by another transaction than the one it names (a dump restored on another server,
        # whose transaction ids are not the ones its fingerprint counts from) is read whole.
        conn.execute("UPDATE runner_migrations_schema SET attributes = attributes WHERE kind = ''")
        assert schema.unchanged(conn, SNAPSHOT_TABLE) is None


def test_a_schema_recorded_by_an_earlier_runner_in_one_row_is_still_compared(runner_db: str, project: Path) -> None:
    query(runner_db, """
        CREATE TABLE old_layout AS SELECT now() AS taken_at, 150000 AS server_version,
            (SELECT jsonb_object_agg(kind, objects) FROM (
                SELECT kind, jsonb_object_agg(name, attributes) AS objects FROM runner_migrations_schema
                WHERE kind <> '' GROUP BY kind) k) AS snapshot, NULL::text AS digest;
        DROP TABLE runner_migrations_schema;
        ALTER TABLE old_layout RENAME TO runner_migrations_schema;
    """)  # fmt: skip
    assert _verify(runner_db, project) == (0, ["No drift: 15 applied"])
    query(runner_db, "CREATE TABLE tmp_fix (id int)")
    assert _verify(runner_db, project)[1][0] == "schema       table tmp_fix: not created by any migration"
    query(runner_db, "DROP TABLE tmp_fix")
    write(project, "0015_later.sql", "CREATE TABLE IF NOT EXISTS later (id int);\n")
    assert runner_cli("migrate", "--dsn", runner_db, "--dir", project).returncode == 0  # records it, per object
    assert _fingerprinted(runner_db) and "table later" in _recorded_names(runner_db)
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
        "Changes made outside runner stay drift until `runner accept --schema` records them",
        "Drift found: 15 applied, 3 schema change(s)",
    ]
    doc = json.loads(runner_cli("verify", "--dsn", runner_db, "--dir", project, "--json").stdout)
    assert [d["text"] for d in doc["schema_drift"]] == [line.removeprefix("schema       ") for line in lines[:3]]
    assert doc["clean"] is False and doc["schema_recorded"] is True


def test_a_change_made_by_hand_stays_drift_after_later_migrations_until_accepted(runner_db: str, project: Path) -> None:
    query(
        runner_db, "CREATE TABLE tmp_fix (id int); ALTER TABLE approval_levels ALTER COLUMN skip_reason SET DEFAULT 'x'"
    )
    write(project, "0015_later.sql", "CREATE TABLE IF NOT EXISTS later (id int);\n")
    planned = runner_cli("plan", "--dsn", runner_db, "--dir", project)
    assert "warning: changed outside runner: table tmp_fix: not created by any migration" in planned.stderr
    result = runner_cli("migrate", "--dsn", runner_db, "--dir", project)
    assert result.returncode == 0, result.stderr
    assert "warning: changed outside runner: table tmp_fix: not created by any migration" in result.stderr
    # The deploy recorded what its file did (the table later), not the DBA's changes: verify still names them.
    hand_made = [
        "schema       table tmp_fix: not created by any migration",
        "schema       column approval_levels.skip_reason: default (none) -> 'x'::text",
        "Changes made outside runner stay drift until `runner accept --schema` records them",
    ]
    assert _verify(runner_db, project) == (1, [*hand_made, "Drift found: 16 applied, 2 schema change(s)"])
    write(project, "0016_more.sql", "ALTER TABLE later ADD COLUMN IF NOT EXISTS note text;\n")
    assert runner_cli("migrate", "--dsn", runner_db, "--dir", project).returncode == 0
    assert _verify(runner_db, project) == (1, [*hand_made, "Drift found: 17 applied, 2 schema change(s)"])

    accepted = runner_cli("accept", "--schema", "--dsn", runner_db, "--dir", project)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.splitlines() == [
        "Accepted 2 change(s) made outside runner into the recorded schema:",
        "  table tmp_fix: not created by any migration",
        "  column approval_levels.skip_reason: default (none) -> 'x'::text",
    ]
    assert _verify(runner_db, project) == (0, ["No drift: 17 applied"])
    assert query(runner_db, "SELECT action, name FROM runner_migrations_history ORDER BY id DESC LIMIT 1") == [
        ("accept", "(schema)")
    ]
    assert _fingerprinted(runner_db)


def test_another_projects_runner_tables_are_not_schema_drift(runner_db: str, project: Path, tmp_path: Path) -> None:
    write(tmp_path / "other", "1_nothing.sql", "SELECT 1;\n")
    for table in ("other_migrations", "ops.migrations"):  # beside ours, and in a schema of its own
        done = runner_cli("migrate", "--dsn", runner_db, "--dir", tmp_path / "other", "--table", table)
        assert done.returncode == 0, done.stderr
        assert _verify(runner_db, project) == (0, ["No drift: 15 applied"])
        code, lines = _verify(runner_db, tmp_path / "other", "--table", table)
        assert (code, lines[-1]) == (0, "No drift: 1 applied"), lines
    # A snapshot recorded by an earlier runner, which counted the other project's tables, reads the same.
    comment = "COMMENT ON TABLE {} IS {}"
    for table in ("public.other_migrations", "ops.migrations"):
        query(runner_db, comment.format(table, "NULL"))
    assert runner_cli("accept", "--schema", "--dsn", runner_db, "--dir", project).returncode == 0
    recorded = _recorded_names(runner_db)
    assert "other_migrations_history" in recorded and "ops.migrations" in recorded
    for table in ("public.other_migrations", "ops.migrations"):
        query(runner_db, comment.format(table, "'Migrations applied by runner: one row per file.'"))
    assert _verify(runner_db, project) == (0, ["No drift: 15 applied"])


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
    assert _fingerprinted(dsn) and "schema public" in _recorded_names(dsn)


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


def test_diff_compares_two_live_databases(dsn: str, other: str, project: Path) -> None:
    """Two databases migrated alike. (runner_db's template is loaded from sql/schema.sql: PostgreSQL prints some of
    its CHECK constraints as it reprints them, which diff reports; see the README's schema file section.)"""
    assert runner_cli("migrate", "--dsn", dsn, "--dir", project).returncode == 0
    runner_db = dsn
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


def test_the_files_applied_before_a_failing_one_are_no_drift(dsn: str, migrations: Path) -> None:
    write(migrations, "0001_a.sql", "CREATE TABLE IF NOT EXISTS a (id int);\n")
    assert runner_cli("migrate", "--dsn", dsn, "--dir", migrations).returncode == 0
    write(migrations, "0002_b.sql", "CREATE TABLE IF NOT EXISTS b (id int);\n")
    write(migrations, "0003_c.sql", "SELECT 1 / 0;\n")
    assert runner_cli("migrate", "--dsn", dsn, "--dir", migrations).returncode == 3
    verify = runner_cli("verify", "--dsn", dsn, "--dir", migrations)
    assert verify.returncode == 0 and "table b" not in verify.stdout, verify.stdout  # 0002 applied it: no drift
    write(migrations, "0003_c.sql", "SELECT 1;\n")
    assert runner_cli("migrate", "--dsn", dsn, "--dir", migrations).returncode == 0
    assert runner_cli("verify", "--dsn", dsn, "--dir", migrations).returncode == 0
