"""Big files: cut into parts at real statement ends, sent a part per message in one transaction.

Most tests shrink ONE_MESSAGE_LIMIT so that a small file is cut into many parts, at every kind
of place a cut could go wrong: inside strings, dollar quotes, comments, quoted identifiers and
parentheses. A file that is cut must run exactly as it runs whole: same rows, same error, same line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_clean_error, query, runner_cli, write
from pglast import parser

import runner
from runner import apply, preflight
from runner.errors import MigrationFailed
from runner.files import read_migration
from runner.preflight import prepare

# Statements with `;` where it ends nothing, some long, some sharing a line, some not ASCII.
TRICKY = [
    "INSERT INTO t (note) VALUES ('a;b'), ('c;\nd'), ('it''s; fine');",
    "INSERT INTO t (note) VALUES ($$dollar; quoted$$), ($q$nested $$; still$q$);",
    "INSERT INTO t (note) VALUES ('x' -- a comment; with a semicolon\n);",
    "/* a block; comment /* nested; */ still; */ INSERT INTO t (note) VALUES ('after comment');",
    'CREATE TABLE IF NOT EXISTS "odd;name" ("col;umn" int);',
    'CREATE OR REPLACE RULE keep AS ON INSERT TO "odd;name" DO ALSO (SELECT 1; SELECT 2);',
    "INSERT INTO t (note) VALUES ('été; 東京; ☃');  INSERT INTO t (note) VALUES ('same line');",
    "INSERT INTO t (note) SELECT repeat('long;', 300);",
]


def _tricky_file(copies: int) -> str:
    statements = ["CREATE TABLE t (id serial PRIMARY KEY, note text);"]
    statements += [TRICKY[i % len(TRICKY)] for i in range(copies)]
    return "\n".join(statements) + "\n"


def _parts(path: Path) -> list[str]:
    """The parts the file is sent in."""
    script = prepare(read_migration(path, 1))
    return [script.body[part].decode() for part in script.parts()]


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files over 500 bytes are cut, into parts of about 500 bytes."""
    monkeypatch.setattr(preflight, "ONE_MESSAGE_LIMIT", 500)
    monkeypatch.setattr(apply, "ONE_MESSAGE_LIMIT", 500)


def _statements(text: str) -> list[str]:
    """The statements as the real parser sees them."""
    return list(parser.split(text, with_parser=True))


@pytest.mark.parametrize("limit", [90, 200, 333, 500, 1000])
def test_cutting_a_file_changes_none_of_its_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(preflight, "ONE_MESSAGE_LIMIT", limit)
    text = _tricky_file(120)
    parts = _parts(write(tmp_path, "0001_big.sql", text))
    assert len(parts) > len(text) // limit // 2
    assert "".join(parts) == text
    assert all(part.endswith(";") for part in parts[:-1])
    assert [s for part in parts for s in _statements(part)] == _statements(text)


def test_a_statement_longer_than_a_part_is_not_cut(tmp_path: Path, small_parts: None) -> None:
    long = "INSERT INTO t (note) VALUES " + ", ".join(f"('{n};')" for n in range(200)) + ";"
    text = _tricky_file(10) + long + "\n" + _tricky_file(10)
    parts = _parts(write(tmp_path, "0001_big.sql", text))
    assert any(long in part for part in parts)
    assert [s for part in parts for s in _statements(part)] == _statements(text)


@pytest.mark.parametrize(
    "text",
    [
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n",  # `;` inside it
        "SELECT E'\\'';\n",  # a backslash: standard_conforming_strings=off would read the quotes differently
    ],
    ids=["begin-atomic", "backslash"],
)
def test_a_file_the_scanner_could_misread_is_not_cut(dsn: str, migrations: Path, small_parts: None, text: str) -> None:
    whole = _tricky_file(30) + text + _tricky_file(30).split("\n", 1)[1]
    assert _parts(write(migrations, "0001_big.sql", whole)) == [whole]
    assert [a.statements for a in runner.migrate(dsn, migrations).applied] == [len(_statements(whole))]


def test_the_words_that_need_parsing_are_found_across_chunks(tmp_path: Path) -> None:
    head = "SELECT 1;\n-- " + "x" * (preflight._CHUNK - 17) + "\n"
    assert len(head) + len("VAC") == preflight._CHUNK  # VACUUM straddles the end of the first chunk
    with pytest.raises(runner.BadInput, match="line 3: VACUUM cannot run inside a transaction"):
        prepare(read_migration(write(tmp_path, "0001_big.sql", head + "VACUUM;\n"), 1))
    assert not preflight._suspect(b"SELECT end_date, weekend, _begin, begin1, $x FROM x;")
    assert preflight._suspect(b"SELECT 1;\nCoMmIt;")


def test_a_cut_file_is_applied_and_recorded_as_one(dsn: str, migrations: Path, small_parts: None) -> None:
    text = _tricky_file(120)
    assert len(_parts(write(migrations, "0001_big.sql", text))) > 10
    result = runner.migrate(dsn, migrations)
    assert [a.statements for a in result.applied] == [len(_statements(text))]
    notes = query(dsn, "SELECT note FROM t ORDER BY id")
    assert notes[:3] == [("a;b",), ("c;\nd",), ("it's; fine",)]
    assert ("dollar; quoted",) in notes and ("nested $$; still",) in notes and ("été; 東京; ☃",) in notes
    assert ("long;" * 300,) in notes
    assert query(dsn, "SELECT version FROM runner_migrations") == [(1,)]


FAILURES = {
    "position": "INSERT INTO t (id) VALUES ('not a number');",
    "no-position": "SELECT 1 / 0;",
    "in-a-part-that-starts-mid-line": "SELECT 1; " * 150 + "SELECT 1 + 'x';",
    "syntax-error": "INSERT INTO t VALUES 1;",
    "unterminated-to-the-end": "SELECT $never$ closed;",
}


@pytest.mark.parametrize("bad", FAILURES.values(), ids=FAILURES.keys())
def test_a_failure_in_a_part_reads_as_it_would_without_parts(
    dsn: str, migrations: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    before = _tricky_file(60)
    write(migrations, "0001_big.sql", before + bad + "\n" + _tricky_file(60).split("\n", 1)[1])
    with pytest.raises(MigrationFailed) as whole:
        runner.migrate(dsn, migrations)
    monkeypatch.setattr(preflight, "ONE_MESSAGE_LIMIT", 500)
    monkeypatch.setattr(apply, "ONE_MESSAGE_LIMIT", 500)
    assert len(_parts(migrations / "0001_big.sql")) > 5
    with pytest.raises(MigrationFailed) as cut:
        runner.migrate(dsn, migrations)
    assert str(cut.value) == str(whole.value)
    assert cut.value.details == whole.value.details and cut.value.details["line"] == before.count("\n") + 1
    assert query(dsn, "SELECT to_regclass('t')") == [(None,)]
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(0,)]


def test_a_record_that_fails_after_the_last_part_keeps_nothing(dsn: str, migrations: Path, small_parts: None) -> None:
    write(migrations, "0001_small.sql", "SELECT 1;\n")
    runner.migrate(dsn, migrations)
    query(dsn, """
        CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no record'; END $$;
        CREATE TRIGGER refuse BEFORE UPDATE ON runner_migrations FOR EACH ROW EXECUTE FUNCTION refuse();
    """)  # fmt: skip
    write(migrations, "0002_big.sql", _tricky_file(60))
    with pytest.raises(MigrationFailed, match="0002_big.sql ran, but recording it in .* failed: no record"):
        runner.migrate(dsn, migrations)
    assert query(dsn, "SELECT to_regclass('t')") == [(None,)]
    assert query(dsn, "SELECT version FROM runner_migrations") == [(1,)]


def _big_file(rows: int, middle: str) -> str:
    """Rows of about 100 bytes, with ``middle`` between two halves, at line rows + 2."""
    lines = ["CREATE TABLE big (id int, note text);\n"]
    lines += [f"INSERT INTO big VALUES ({n}, '{'x;' * 30}');\n" for n in range(rows)]
    lines += [middle]
    lines += [f"INSERT INTO big VALUES ({n}, '{'x;' * 30}');\n" for n in range(rows)]
    return "".join(lines)


def test_a_real_big_file_failing_in_its_middle_part_keeps_nothing(dsn: str, migrations: Path) -> None:
    bad = "INSERT INTO big VALUES (1, 'one'), ('two', 'two');\n"
    write(migrations, "1_big.sql", _big_file(20_000, bad))
    parts = _parts(migrations / "1_big.sql")
    assert len(parts) >= 3 and max(map(len, parts)) <= preflight.ONE_MESSAGE_LIMIT
    assert not any(bad in part for part in (parts[0], parts[-1]))
    failed = runner_cli("migrate", "--dsn", dsn, "--dir", migrations)
    column = bad.index("'two'") + 1
    assert_clean_error(failed, 3, f"1_big.sql failed at line 20002, column {column}", "22P02", "rolled back")
    assert query(dsn, "SELECT to_regclass('big')") == [(None,)]
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(0,)]

    write(migrations, "1_big.sql", _big_file(20_000, "INSERT INTO big VALUES (1, 'one');\n"))
    done = runner_cli("migrate", "--dsn", dsn, "--dir", migrations, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied"][0]["statements"] == 40_002
    assert query(dsn, "SELECT count(*), count(*) FILTER (WHERE note = repeat('x;', 30)) FROM big") == [(40_001, 40_000)]
