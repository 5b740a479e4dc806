"""Pre-flight checks of a file's SQL, case by case, with the real parser: what is refused, what is accepted.

Each case is a whole migration file. Refusals must name the line; accepted wrappers are blanked
out without moving any line, so errors the server reports later still point at the right place.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write

from runner.errors import BadInput
from runner.files import read_migration
from runner.preflight import Script, prepare
from runner.tracking import TrackingTable


def _prepare(tmp_path: Path, text: str) -> Script:
    return prepare(read_migration(write(tmp_path, "0001_case.sql", text), 1))


ACCEPTED_AS_IS = {
    "plain": "CREATE TABLE IF NOT EXISTS t (id int);\nINSERT INTO t VALUES (1);\n",
    "do-block": "DO $$\nBEGIN\n  PERFORM 1;\nEND\n$$;\n",
    "function-body": "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $f$\nBEGIN\n  RETURN 1;\nEND\n$f$;\n",
    "begin-atomic": "CREATE OR REPLACE FUNCTION g() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\nEND;\n",
    "words-in-comments": "-- we COMMIT to VACUUM the DATABASE; \\set is psql\n/* BEGIN; */\nSELECT 1;\n",
    "words-in-strings": "SELECT 'BEGIN; COMMIT; \\set x', E'a\\\\b', $$END$$;\n",
    "analyze": "ANALYZE;\n",
    "copy-to-stdout": "COPY (SELECT 1) TO STDOUT;\n",
    "syntax-error": "CREATE TABLE (;\nCOMMIT;\n",  # the server reports it, with its line
    "create-index-plain": "CREATE INDEX IF NOT EXISTS i ON t (id);\n",
    "ends-without-semicolon": "SELECT 1",
}


@pytest.mark.parametrize("text", ACCEPTED_AS_IS.values(), ids=ACCEPTED_AS_IS.keys())
def test_files_without_transaction_control_are_sent_unchanged(tmp_path: Path, text: str) -> None:
    script = _prepare(tmp_path, text)
    assert script.body == text.encode() and not script.no_transaction and not script.wrapper_removed


WRAPPED = {
    "begin-commit": ("BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n", [1, 3]),
    "start-end": ("START TRANSACTION;\nCREATE TABLE t (id int);\nEND;\n", [1, 3]),
    "lower-case-with-comments": ("-- header\n\nbegin;\n-- body\ncreate table t (id int);\n\ncommit;\n", [3, 7]),
    "begin-work": ("BEGIN WORK;\nSELECT 1;\nCOMMIT WORK;\n", [1, 3]),
    "stray-commit": ("CREATE TABLE t (id int);\nCOMMIT;\n", [2]),
    "no-final-semicolon": ("BEGIN;\nSELECT 1;\nCOMMIT", [1, 3]),
}


@pytest.mark.parametrize(("text", "lines"), WRAPPED.values(), ids=WRAPPED.keys())
def test_a_wrapper_is_blanked_out_keeping_every_line_and_offset(tmp_path: Path, text: str, lines: list[int]) -> None:
    script = _prepare(tmp_path, text)
    assert script.wrapper_removed
    body = script.text()
    assert len(body) == len(text) and body.count("\n") == text.count("\n")
    original, sent = text.split("\n"), body.split("\n")
    for number, (before, after) in enumerate(zip(original, sent, strict=True), start=1):
        if number in lines:
            assert after.strip() in ("", ";"), (number, after)
        else:
            assert after == before


REFUSED = {
    "commit-in-the-middle": ("BEGIN;\nSELECT 1;\nCOMMIT;\nSELECT 2;\n", 3, "COMMIT"),
    "begin-without-commit": ("BEGIN;\nSELECT 1;\n", 1, "BEGIN"),
    "begin-with-options": ("BEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;\nCOMMIT;\n", 1, "BEGIN ISOLATION"),
    "rollback-at-end": ("BEGIN;\nSELECT 1;\nROLLBACK;\n", 3, "ROLLBACK"),
    "savepoint": ("SELECT 1;\nSAVEPOINT a;\nSELECT 2;\n", 2, "SAVEPOINT"),
    "two-transactions": ("BEGIN;\nSELECT 1;\nCOMMIT;\nBEGIN;\nSELECT 2;\nCOMMIT;\n", 3, "COMMIT"),
    "commit-and-chain": ("SELECT 1;\nCOMMIT AND CHAIN;\n", 2, "COMMIT AND"),
    "prepare-transaction": ("BEGIN;\nSELECT 1;\nPREPARE TRANSACTION 'x';\n", 3, "PREPARE TRANSACTION"),
}


@pytest.mark.parametrize(("text", "line", "what"), REFUSED.values(), ids=REFUSED.keys())
def test_other_transaction_control_is_refused_naming_the_line(tmp_path: Path, text: str, line: int, what: str) -> None:
    with pytest.raises(BadInput) as refused:
        _prepare(tmp_path, text)
    message = str(refused.value)
    assert f"0001_case.sql, line {line}: {what}" in message
    assert "-- runner: no-transaction" in message


NOT_IN_A_TRANSACTION = {
    "create-index-concurrently": ("SELECT 1;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (id);\n", 2),
    "drop-index-concurrently": ("DROP INDEX CONCURRENTLY IF EXISTS i;\n", 1),
    "reindex-concurrently": ("\n\nREINDEX INDEX CONCURRENTLY i;\n", 3),
    "reindex-database": ("REINDEX DATABASE app;\n", 1),
    "vacuum": ("-- tidy up\nVACUUM (ANALYZE) t;\n", 2),
    "create-database": ("CREATE DATABASE other;\n", 1),
    "drop-database": ("DROP DATABASE IF EXISTS other;\n", 1),
    "alter-system": ("ALTER SYSTEM SET work_mem = '64MB';\n", 1),
    "create-tablespace": ("CREATE TABLESPACE fast LOCATION '/srv/fast';\n", 1),
    "alter-database-tablespace": ("ALTER DATABASE app SET TABLESPACE fast;\n", 1),
    "cluster-everything": ("CLUSTER;\n", 1),
}


@pytest.mark.parametrize(("text", "line"), NOT_IN_A_TRANSACTION.values(), ids=NOT_IN_A_TRANSACTION.keys())
def test_statements_postgres_refuses_in_a_transaction_are_refused_up_front(
    tmp_path: Path, text: str, line: int
) -> None:
    with pytest.raises(BadInput) as refused:
        _prepare(tmp_path, text)
    message = str(refused.value)
    assert f"0001_case.sql, line {line}: " in message and "cannot run inside a transaction" in message
    assert "-- runner: no-transaction" in message


PSQL_ONLY = {
    "set": ("SELECT 1;\n\\set answer 42\nSELECT :answer;\n", 2, "\\set is a psql meta-command"),
    "include": ("\\i other.sql\n", 1, "\\i is a psql meta-command"),
    "connect": ("CREATE TABLE t (id int);\n\\connect other\n", 2, "\\connect is a psql meta-command"),
    "gexec-after-a-query": ("SELECT 'SELECT 1' \\gexec\n", 1, "\\gexec is a psql meta-command"),
    "copy-inline-data": (
        "CREATE TABLE t (a int, b text);\nCOPY t FROM stdin;\n1\tit's\n\\.\n",
        2,
        "COPY ... FROM stdin",
    ),
    "copy-without-data": ("COPY t (a) FROM STDIN WITH (FORMAT csv);\n", 1, "COPY ... FROM stdin"),
}


@pytest.mark.parametrize(("text", "line", "what"), PSQL_ONLY.values(), ids=PSQL_ONLY.keys())
def test_psql_features_are_refused_naming_the_line(tmp_path: Path, text: str, line: int, what: str) -> None:
    with pytest.raises(BadInput) as refused:
        _prepare(tmp_path, text)
    assert f"0001_case.sql, line {line}: {what}" in str(refused.value)


def test_a_no_transaction_file_is_split_into_statements_with_their_lines(tmp_path: Path) -> None:
    text = (
        "-- runner: no-transaction\n"
        "-- builds the index without blocking writes\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (id);\n"
        "\n"
        "BEGIN;\nUPDATE t SET id = id; COMMIT;\n"
        "DO $$ BEGIN PERFORM 1; END $$;\n"
    )
    script = _prepare(tmp_path, text)
    assert script.no_transaction and script.body == text.encode()
    assert [(s.line, s.text) for s in script.statements] == [
        (3, "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (id)"),
        (5, "BEGIN"),
        (6, "UPDATE t SET id = id"),
        (6, "COMMIT"),
        (7, "DO $$ BEGIN PERFORM 1; END $$"),
    ]


def test_a_no_transaction_file_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot be split into statements"):
        _prepare(tmp_path, "-- runner: no-transaction\nCREATE INDEX CONCURRENTLY ON (;\n")


@pytest.mark.parametrize(
    ("header", "settings"),
    [
        ("-- runner: lock-timeout=10s\n", {"lock_timeout": "10000ms"}),
        (
            "-- RUNNER: statement-timeout=2min, lock-timeout=500ms\n",
            {"statement_timeout": "120000ms", "lock_timeout": "500ms"},
        ),  # fmt: skip
        ("-- a comment\n\n-- runner: lock-timeout=1.5\n", {"lock_timeout": "1500ms"}),
        ("SELECT 1;\n-- runner: lock-timeout=10s\n", {}),  # only the leading comments count
        ("-- runner: lock-timeout=2147483647ms\n", {"lock_timeout": "2147483647ms"}),  # PostgreSQL's limit
    ],
)
def test_directives_set_per_file_timeouts(tmp_path: Path, header: str, settings: dict[str, str]) -> None:
    assert _prepare(tmp_path, header + "SELECT 1;\n").settings == settings


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("-- runner: no-transactoin\n", "unknown directive 'no-transactoin'"),
        ("-- runner: lock-timeout=soon\n", "'soon' is not a duration"),
        ("-- runner: lock-timeout\n", "unknown directive 'lock-timeout'"),
        ("-- runner: statement-timeout=2147483648ms\n", "longer than PostgreSQL allows (2147483647ms"),
    ],
)
def test_a_mistyped_directive_is_an_error_not_ignored(tmp_path: Path, header: str, needle: str) -> None:
    with pytest.raises(BadInput, match="line 1") as refused:
        _prepare(tmp_path, header + "SELECT 1;\n")
    assert needle in str(refused.value)


OWN = [TrackingTable("public", "runner_migrations" + suffix) for suffix in ("", "_history", "_schema", "_repeatable")]
OWN_TABLE_CHANGES = {
    "delete": ("SELECT 1;\nDELETE FROM runner_migrations WHERE version = 3;\n", 2,
               "DELETE FROM public.runner_migrations"),
    "update-qualified": ("UPDATE public.runner_migrations SET checksum = 'x';\n", 1, "UPDATE public.runner_migrations"),
    "insert-history": ("INSERT INTO runner_migrations_history (action) VALUES ('x');\n", 1,
                       "INSERT INTO public.runner_migrations_history"),
    "truncate-among-others": ("TRUNCATE audit, runner_migrations_schema;\n", 1,
                              "TRUNCATE public.runner_migrations_schema"),
    "drop": ("-- start again\nDROP TABLE IF EXISTS runner_migrations;\n", 2, "DROP TABLE public.runner_migrations"),
    "alter": ("ALTER TABLE runner_migrations ADD COLUMN note text;\n", 1, "ALTER TABLE public.runner_migrations"),
    "rename": ("ALTER TABLE runner_migrations_repeatable RENAME TO old;\n", 1,
               "ALTER ... RENAME public.runner_migrations_repeatable"),
    "upper-case-unquoted": ("DELETE FROM Runner_Migrations;\n", 1, "DELETE FROM public.runner_migrations"),
    "in-a-with-query": ("WITH gone AS (DELETE FROM runner_migrations RETURNING version)\nSELECT * FROM gone;\n", 1,
                        "DELETE FROM public.runner_migrations"),
    # a child table's rows are read as the tracking table's: a file could record versions that never ran
    "inherits": ("CREATE TABLE fake () INHERITS (runner_migrations);\n", 1,
                 "CREATE TABLE ... INHERITS public.runner_migrations"),
    "inherit": ("ALTER TABLE audit INHERIT public.runner_migrations_history;\n", 1,
                "ALTER TABLE ... INHERIT public.runner_migrations_history"),
    "no-transaction-file": ("-- runner: no-transaction\nSELECT 1;\nDELETE FROM runner_migrations;\n", 3,
                            "DELETE FROM public.runner_migrations"),
}  # fmt: skip


@pytest.mark.parametrize(("text", "line", "what"), OWN_TABLE_CHANGES.values(), ids=OWN_TABLE_CHANGES.keys())
def test_a_file_that_changes_runners_own_tables_is_refused_naming_the_line(
    tmp_path: Path, text: str, line: int, what: str
) -> None:
    with pytest.raises(BadInput) as refused:
        prepare(read_migration(write(tmp_path, "0001_case.sql", text), 1), OWN)
    message = str(refused.value)
    assert f"0001_case.sql, line {line}: {what} changes one of runner's own tables" in message
    assert "runner unmark" in message and "runner mark" in message and "runner accept" in message


@pytest.mark.parametrize("header", ["", "-- runner: no-transaction\n"])
def test_a_file_that_drops_the_schema_of_runners_tables_is_refused(tmp_path: Path, header: str) -> None:
    with pytest.raises(BadInput) as refused:
        prepare(read_migration(write(tmp_path, "0001_case.sql", header + "DROP SCHEMA IF EXISTS public CASCADE;\n"), 1),
                OWN)  # fmt: skip
    assert "DROP SCHEMA public CASCADE drops public.runner_migrations, one of runner's own tables" in str(refused.value)


NOT_OWN_TABLES = {
    "reads": "SELECT count(*) FROM runner_migrations;\nCREATE VIEW applied AS SELECT * FROM runner_migrations;\n",
    "another-schema": "DELETE FROM archive.runner_migrations;\n",
    "a-quoted-other-name": 'DELETE FROM "Runner_Migrations";\n',
    "a-longer-name": "DROP TABLE runner_migrations_old;\n",
    "in-comments-and-strings": "-- DELETE FROM runner_migrations;\nSELECT 'TRUNCATE runner_migrations';\n",
    "dynamic-sql": "DO $$ BEGIN EXECUTE 'DELETE FROM runner_migrations'; END $$;\n",  # not seen: the README says so
    "another-schema-dropped": "DROP SCHEMA archive CASCADE;\n",
}


@pytest.mark.parametrize("text", NOT_OWN_TABLES.values(), ids=NOT_OWN_TABLES.keys())
def test_reading_runners_tables_or_naming_others_like_them_is_accepted(tmp_path: Path, text: str) -> None:
    script = prepare(read_migration(write(tmp_path, "0001_case.sql", text), 1), OWN)
    assert script.body == text.encode()
