"""`runner migrate` against a real database: applying, recording, warning, refusing, failing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from helpers import assert_clean_error, query, runner_cli, write
from psycopg.conninfo import make_conninfo

import runner
from runner.errors import MigrationFailed


def migrate(dsn: str, folder: Path, *extra: str):  # type: ignore[no-untyped-def]
    return runner_cli("migrate", "--dsn", dsn, "--dir", folder, *extra)


def recorded(dsn: str, table: str = "public.runner_migrations") -> list[tuple[object, ...]]:
    return query(dsn, f"SELECT version, name, checksum FROM {table} ORDER BY version")


def test_applies_pending_files_in_order_and_records_each(dsn: str, migrations: Path) -> None:
    write(migrations, "1_create.sql", "CREATE TABLE items (id int PRIMARY KEY, label text);\n")
    write(migrations, "2_seed.sql", "INSERT INTO items VALUES (1, 'one'), (2, 'two');\n")
    write(migrations, "10_more.sql", "INSERT INTO items VALUES (10, 'ten');\n")
    result = migrate(dsn, migrations)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Running 3 pending migration(s)…",
        *[line for line in result.stdout.splitlines() if line.startswith("Completed: ")],
        "Applied 3 migration(s)",
    ]
    assert [line.split(" (")[0] for line in result.stdout.splitlines()[1:4]] == [
        "Completed: 1_create.sql", "Completed: 2_seed.sql", "Completed: 10_more.sql",
    ]  # fmt: skip
    assert query(dsn, "SELECT id FROM items ORDER BY id") == [(1,), (2,), (10,)]
    rows = query(dsn, "SELECT version, name, checksum, executed_at IS NOT NULL, execution_ms >= 0, applied_by "
                      "FROM runner_migrations ORDER BY version")  # fmt: skip
    assert [r[:2] for r in rows] == [(1, "1_create.sql"), (2, "2_seed.sql"), (10, "10_more.sql")]
    assert all(r[2].startswith("sha256:") and r[3] and r[4] and r[5] == "postgres" for r in rows)

    again = migrate(dsn, migrations)
    assert again.returncode == 0
    assert again.stdout.strip() == "All migrations are up to date"
    assert len(recorded(dsn)) == 3


def test_empty_and_comment_only_files_are_recorded_and_reported(dsn: str, migrations: Path) -> None:
    write(migrations, "1_empty.sql", "")
    write(migrations, "2_comments.sql", "-- squashed into 0100\n/* nothing left */\n")
    result = migrate(dsn, migrations)
    assert result.returncode == 0, result.stderr
    assert "Completed: 1_empty.sql (empty file, recorded)" in result.stdout
    assert "Completed: 2_comments.sql (empty file, recorded)" in result.stdout
    assert [r[0] for r in recorded(dsn)] == [1, 2]


def test_edited_file_is_a_warning_and_strict_refuses_before_applying(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    assert migrate(dsn, migrations).returncode == 0
    write(migrations, "1_a.sql", "CREATE TABLE a (id bigint);\n")
    write(migrations, "2_b.sql", "CREATE TABLE b (id int);\n")

    strict = migrate(dsn, migrations, "--strict")
    assert_clean_error(strict, 1, "1_a.sql", "--strict")
    assert query(dsn, "SELECT to_regclass('b')") == [(None,)]

    relaxed = migrate(dsn, migrations)
    assert relaxed.returncode == 0
    assert "warning: 1_a.sql changed after it was applied" in relaxed.stderr
    assert "Applied 1 migration(s)" in relaxed.stdout
    assert query(dsn, "SELECT to_regclass('b') IS NOT NULL") == [(True,)]


def test_missing_file_is_a_warning(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    gone = write(migrations, "2_b.sql", "SELECT 2;\n")
    assert migrate(dsn, migrations).returncode == 0
    gone.unlink()
    result = migrate(dsn, migrations)
    assert result.returncode == 0
    assert "warning: 2_b.sql was applied but its file is gone" in result.stderr


def test_out_of_order_file_is_refused_unless_allowed(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    write(migrations, "3_c.sql", "CREATE TABLE c (id int);\n")
    assert migrate(dsn, migrations).returncode == 0
    write(migrations, "2_b.sql", "CREATE TABLE b (id int);\n")
    write(migrations, "4_d.sql", "CREATE TABLE d (id int);\n")

    refused = migrate(dsn, migrations)
    assert_clean_error(refused, 1, "2_b.sql", "out of order", "--allow-out-of-order")
    assert query(dsn, "SELECT to_regclass('b'), to_regclass('d')") == [(None, None)]

    allowed = migrate(dsn, migrations, "--allow-out-of-order")
    assert allowed.returncode == 0, allowed.stderr
    assert [r[0] for r in recorded(dsn)] == [1, 2, 3, 4]


FAILURES = [
    # (file text, line reported, fragment of the message)
    ("CREATE TABLE t (id int);\n\nSELECT nope\n  FROM nowhere;\n", "at line 4, column 8", "42P01"),
    ("CREATE TABLE t (id int PRIMARY KEY);\nINSERT INTO t VALUES (1);\n-- again:\nINSERT INTO t VALUES (1);\n",
     "in the statement at line 4", "23505"),
    ("CREATE TABLE t (id int);\nSELECT 1;\n\n\n  SELECT 1 / 0;\n", "in the statement at line 5", "22012"),
    ("CREATE TABLE t (v text);\nINSERT INTO t VALUES ('x');\nCREATE TABLE u AS\n  SELECT v::int FROM t;\n",
     "in the statement at line 3", "22P02"),
    ("CREATE TABLE t (id int);\nCREATE TABLE u (id int", "at line 2, where the file ends", "42601"),
    ("CREATE TABLE t (id int);\nDO $$\nBEGIN\n  RAISE EXCEPTION 'stop here';\nEND\n$$;\n",
     "in the statement at line 2", "P0001"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "where", "sqlstate"), FAILURES, ids=["position", "unique", "div0", "cast", "eof", "do"]
)
def test_failing_file_rolls_back_and_names_file_line_and_sqlstate(
    dsn: str, migrations: Path, text: str, where: str, sqlstate: str
) -> None:
    write(migrations, "1_ok.sql", "CREATE TABLE first (id int);\n")
    write(migrations, "2_bad.sql", text)
    write(migrations, "3_later.sql", "CREATE TABLE later (id int);\n")
    result = migrate(dsn, migrations)
    error = assert_clean_error(result, 3, "2_bad.sql", where, f"SQLSTATE {sqlstate}", "rolled back")
    assert "Completed: 1_ok.sql" in result.stdout
    assert error
    assert query(dsn, "SELECT to_regclass('first') IS NOT NULL, to_regclass('t'), to_regclass('later')") == [
        (True, None, None)
    ]
    assert [r[0] for r in recorded(dsn)] == [1]


def test_failure_as_json_and_as_exception(dsn: str, migrations: Path) -> None:
    write(migrations, "1_ok.sql", "CREATE TABLE first (id int);\n")
    write(migrations, "2_bad.sql", "SELECT 1;\nSELECT missing_column FROM first;\n")
    result = migrate(dsn, migrations, "--json")
    assert result.returncode == 3
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["error"]["sqlstate"] == "42703" and doc["error"]["line"] == 2 and doc["error"]["column"] == 8
    assert [a["name"] for a in doc["applied"]] == ["1_ok.sql"]

    with pytest.raises(MigrationFailed) as caught:
        runner.migrate(dsn, migrations)
    assert caught.value.details["line"] == 2


def test_json_output_is_one_document_and_nothing_else(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    write(migrations, "2_empty.sql", "-- nothing\n")
    result = migrate(dsn, migrations, "--json")
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["up_to_date"] is False
    assert [(a["version"], a["name"], a["empty"], a["statements"]) for a in doc["applied"]] == [
        (1, "1_a.sql", False, 1), (2, "2_empty.sql", True, 0)
    ]  # fmt: skip
    assert json.loads(migrate(dsn, migrations, "--json").stdout)["up_to_date"] is True


def test_tracking_row_stays_put_when_a_migration_changes_search_path(dsn: str, migrations: Path) -> None:
    write(migrations, "1_schema.sql", "CREATE SCHEMA app;\nSET search_path = app;\nCREATE TABLE things (id int);\n")
    write(migrations, "2_more.sql", "CREATE TABLE more_things (id int);\n")
    assert migrate(dsn, migrations).returncode == 0
    assert [r[0] for r in recorded(dsn)] == [1, 2]
    assert query(dsn, "SELECT to_regclass('app.runner_migrations')") == [(None,)]
    assert query(dsn, "SELECT to_regclass('app.things') IS NOT NULL") == [(True,)]


def test_custom_table_with_schema_and_a_hostile_name(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    hostile = '"ops"."migrations; DROP TABLE a; --"'
    result = migrate(dsn, migrations, "--table", hostile)
    assert result.returncode == 0, result.stderr
    assert query(dsn, "SELECT to_regclass('a') IS NOT NULL") == [(True,)]
    assert query(dsn, 'SELECT version FROM ops."migrations; DROP TABLE a; --"') == [(1,)]
    assert query(dsn, "SELECT to_regclass('public.runner_migrations')") == [(None,)]
    status = runner_cli("status", "--dsn", dsn, "--dir", migrations, "--table", hostile, "--json")
    assert json.loads(status.stdout)["migrations"][0]["state"] == "applied"


@pytest.mark.parametrize("bad", ["a.b.c", "my table", '"unterminated', ".x", "x" * 64])
def test_malformed_table_option_exits_2(dsn: str, migrations: Path, bad: str) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    assert_clean_error(migrate(dsn, migrations, "--table", bad), 2, "--table")


def test_a_foreign_table_with_our_name_is_refused_and_left_alone(dsn: str, migrations: Path) -> None:
    query(dsn, "CREATE TABLE runner_migrations (id serial PRIMARY KEY, script text); "
               "INSERT INTO runner_migrations (script) VALUES ('theirs')")  # fmt: skip
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    for command in ("migrate", "status", "verify"):
        result = runner_cli(command, "--dsn", dsn, "--dir", migrations)
        assert_clean_error(result, 2, "public.runner_migrations", "not runner's tracking table", "--table")
    assert query(dsn, "SELECT id, script FROM runner_migrations") == [(1, "theirs")]
    assert query(dsn, "SELECT to_regclass('a')") == [(None,)]


def test_every_file_and_its_row_commit_together(dsn: str, migrations: Path) -> None:
    """A file that breaks the tracking INSERT (by dropping the table) leaves nothing behind."""
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    # In dynamic SQL, which the pre-flight check cannot see: a plain DROP TABLE of it is refused up front.
    write(migrations, "2_sabotage.sql",
          "CREATE TABLE b (id int);\nDO $$ BEGIN EXECUTE 'DROP TABLE public.runner_migrations'; END $$;\n")  # fmt: skip
    result = migrate(dsn, migrations)
    assert_clean_error(result, 3, "2_sabotage.sql", "recording it in public.runner_migrations failed")
    assert [r[0] for r in recorded(dsn)] == [1]
    assert query(dsn, "SELECT to_regclass('b')") == [(None,)]


def test_utf8_files_arrive_intact_in_a_latin1_database(server_dsn: str, migrations: Path) -> None:
    name = f"runner_latin1_{uuid.uuid4().hex[:8]}"
    query(server_dsn, f"CREATE DATABASE {name} ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        target = make_conninfo(server_dsn, dbname=name)
        write(migrations, "1_a.sql", "CREATE TABLE t (v text);\nINSERT INTO t VALUES ('café');\n")
        assert migrate(target, migrations).returncode == 0
        assert query(target, "SELECT v, length(v) FROM t") == [("café", 4)]
    finally:
        query(server_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_role_without_create_rights_gets_a_clear_refusal(dsn: str, migrations: Path) -> None:
    role = f"limited_{uuid.uuid4().hex[:8]}"
    query(dsn, f"CREATE ROLE {role} LOGIN")
    try:
        write(migrations, "1_a.sql", "SELECT 1;\n")
        result = migrate(make_conninfo(dsn, user=role), migrations)
        assert_clean_error(result, 2, "the database refused preparing the tracking table", "permission denied")
    finally:
        query(dsn, f"DROP OWNED BY {role}; DROP ROLE {role}")
