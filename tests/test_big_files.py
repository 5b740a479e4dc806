"""Big files: cut into parts at real statement ends, sent a part per message in one transaction.

Most tests shrink ONE_MESSAGE_LIMIT so that a small file is cut into many parts, at every kind
of place a cut could go wrong: inside strings, dollar quotes, comments, quoted identifiers and
parentheses. A file that is cut must run exactly as it runs whole: same rows, same error, same line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, assert_clean_error, cli_env, query, runner_cli, write
from pglast import parser
from psycopg.conninfo import make_conninfo

import runner
from runner import api, files, preflight, results
from runner.errors import MigrationFailed
from runner.files import read_migration
from runner.preflight import prepare
from runner.tracking import TrackingTable

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
    return [part.data.decode() for part in script.parts()]


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files over 500 bytes are cut, into parts of about 500 bytes."""
    monkeypatch.setattr(preflight, "ONE_MESSAGE_LIMIT", 500)


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


# Where the scanner alone would see other statement ends than the server: `;` inside BEGIN ATOMIC
# bodies (with CASE ... END, and END in comments and strings), and backslashes in strings.
READ_ALIKE = {
    "begin-atomic": "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;",
    "procedure-with-case": "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql\nBEGIN ATOMIC\n  INSERT INTO t (note) "
                           "VALUES ('end;');\n  SELECT CASE WHEN true THEN 1 END; -- END;\nEND;",
    "comments-and-a-subquery": "/* END; /* END; */ */ create or replace function g(x int) returns int language sql\n"
                               "begin atomic\n  select case x when 1 then 2 else (select 3) end;\n  select 4;\nend;",
    "escape-string": "INSERT INTO t (note) VALUES (E'it\\'s; \\\\ fine');",
    "backslash-before-a-quote": "INSERT INTO t (note) VALUES ('C:\\temp\\'), ('a\\b;');",
}  # fmt: skip


def _with(statement: str, copies: int = 8) -> str:
    """``statement`` among tricky ones, again and again, so that windows end in every part of it."""
    statements = (TRICKY[:4] + [statement]) * copies
    return "CREATE TABLE t (id serial PRIMARY KEY, note text);\n" + "\n".join(statements) + "\n"


@pytest.mark.parametrize("limit", [90, 200, 500])
@pytest.mark.parametrize("statement", READ_ALIKE.values(), ids=READ_ALIKE.keys())
def test_a_file_is_cut_only_where_the_server_sees_a_statement_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int, statement: str
) -> None:
    monkeypatch.setattr(preflight, "ONE_MESSAGE_LIMIT", limit)
    text = _with(statement)
    parts = _parts(write(tmp_path, "0001_big.sql", text))
    assert len(parts) > len(text) // limit // 3 and "".join(parts) == text
    assert [s for part in parts for s in _statements(part)] == _statements(text)


@pytest.mark.parametrize("statement", READ_ALIKE.values(), ids=READ_ALIKE.keys())
def test_a_file_with_begin_atomic_or_backslashes_is_cut_and_runs_as_it_would_whole(
    dsn: str, migrations: Path, small_parts: None, statement: str
) -> None:
    text = _with(statement)
    assert len(_parts(write(migrations, "0001_big.sql", text))) > 5
    assert [a.statements for a in runner.migrate(dsn, migrations).applied] == [len(_statements(text))]


def test_with_standard_conforming_strings_off_nothing_after_a_backslash_before_a_quote_is_cut(
    dsn: str, migrations: Path, small_parts: None
) -> None:
    # Two strings when the setting is on (so the file is cut on after them, unless told not to), one when it is off.
    escaped = "SELECT 'it\\' AS a, ' ; here' AS b;"
    text = _tricky_file(20) + escaped + "\n" + _tricky_file(20).split("\n", 1)[1]
    turns_off = "SET standard_conforming_strings = off;\n" + text  # the file turns the setting off itself
    script = prepare(read_migration(write(migrations, "0001_big.sql", turns_off), 1))
    off = list(script.parts())  # before the string, cut as any file
    assert len(off) > 3 and off[-1].where.start <= turns_off.encode().index(escaped.encode())
    # A session with the setting off is refused such a file before anything runs (see test_transactions.py), so
    # the cuts keep the file whole past such a string only for a file that turns the setting off itself.
    write(migrations, "0001_big.sql", text)
    line = text[: text.index(escaped)].count("\n") + 1
    with pytest.raises(runner.BadInput, match=f"0001_big.sql, line {line}: a backslash before a quote"):
        runner.migrate(make_conninfo(dsn, options="-c standard_conforming_strings=off"), migrations)
    assert query(dsn, "SELECT to_regclass('t')") == [(None,)]


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


@pytest.mark.parametrize("head", ["", "-- BEGIN: a word that has the file walked before it runs\n"],
                         ids=["cut-while-sent", "cut-before"])  # fmt: skip
@pytest.mark.parametrize("bad", FAILURES.values(), ids=FAILURES.keys())
def test_a_failure_in_a_part_reads_as_it_would_without_parts(
    dsn: str, migrations: Path, monkeypatch: pytest.MonkeyPatch, bad: str, head: str
) -> None:
    before = head + _tricky_file(60)
    write(migrations, "0001_big.sql", before + bad + "\n" + _tricky_file(60).split("\n", 1)[1])
    with pytest.raises(MigrationFailed) as whole:
        runner.migrate(dsn, migrations)
    monkeypatch.setattr(preflight, "ONE_MESSAGE_LIMIT", 500)
    assert len(_parts(migrations / "0001_big.sql")) > 5
    with pytest.raises(MigrationFailed) as cut:
        runner.migrate(dsn, migrations)
    assert str(cut.value) == str(whole.value)
    assert cut.value.details == whole.value.details and cut.value.details["line"] == before.count("\n") + 1
    assert query(dsn, "SELECT to_regclass('t')") == [(None,)]
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(0,)]


def test_a_big_file_with_the_words_in_comments_and_strings_is_cut_and_applied(
    dsn: str, migrations: Path, small_parts: None
) -> None:
    rows = [f"-- the END of batch {n}; COMMIT follows\nINSERT INTO t (note) VALUES ('BEGIN; VACUUM; END {n}');"
            for n in range(40)]  # fmt: skip
    text = "CREATE TABLE t (id serial PRIMARY KEY, note text);\n" + "\n".join(rows) + "\n"
    assert len(_parts(write(migrations, "0001_big.sql", text))) > 5
    assert [a.statements for a in runner.migrate(dsn, migrations).applied] == [41]
    assert query(dsn, "SELECT count(*) FROM t WHERE starts_with(note, 'BEGIN; VACUUM; END ')") == [(40,)]


def test_a_big_file_wrapped_in_begin_and_commit_is_cut_without_its_wrapper(
    dsn: str, migrations: Path, small_parts: None
) -> None:
    text = "-- a data load\nBEGIN;\n" + _tricky_file(60) + "COMMIT;\n-- done\n"
    parts = _parts(write(migrations, "0001_big.sql", text))
    assert len(parts) > 5 and "BEGIN" not in parts[0] and "COMMIT" not in parts[-1]
    assert "".join(parts) in text and len("".join(parts)) > len(text) - 40
    applied = runner.migrate(dsn, migrations).applied
    assert [(a.statements, a.wrapper_removed) for a in applied] == [(len(_statements(text)) - 2, True)]
    assert query(dsn, "SELECT version FROM runner_migrations") == [(1,)]


OWN = [TrackingTable("public", "runner_migrations"), TrackingTable("public", "runner_migrations_history")]
REFUSED_IN_A_BIG_FILE = {
    "vacuum": ("VACUUM t;", "VACUUM cannot run inside a transaction"),
    "index-concurrently": ("CREATE INDEX CONCURRENTLY i ON t (note);", "CREATE INDEX CONCURRENTLY cannot run"),
    "commit-in-the-middle": ("COMMIT;", "COMMIT in a file that runs in a transaction"),
    "meta-command": ("\\set x 1", "\\set is a psql meta-command"),
    "copy-from-stdin": ("COPY t (note) FROM stdin;", "COPY ... FROM stdin with inline data is a psql feature"),
    "own-table": ("DELETE FROM runner_migrations_history;", "DELETE FROM public.runner_migrations_history changes "
                                                            "one of runner's own tables"),
}  # fmt: skip


@pytest.mark.parametrize("end", ["SELECT 'never closed;\n", "/* never closed\n", "SELECT (1;\n"])
def test_a_big_file_whose_end_is_unfinished_after_its_commit_is_refused(
    tmp_path: Path, small_parts: None, end: str
) -> None:
    # Left out as a wrapper, the COMMIT would not be the last statement; sent, it would commit runner's transaction.
    text = "BEGIN;\n" + _tricky_file(40) + "COMMIT;\n-- a comment is fine\n"
    path = write(tmp_path, "0001_big.sql", text + end)
    with pytest.raises(runner.BadInput, match=f"line {text.count(chr(10)) + 1}: the file ends in a statement, string"):
        prepare(read_migration(path, 1))
    assert prepare(read_migration(write(tmp_path, "0001_big.sql", text), 1)).wrapper_removed


@pytest.mark.parametrize(("statement", "message"), REFUSED_IN_A_BIG_FILE.values(), ids=REFUSED_IN_A_BIG_FILE.keys())
def test_a_refused_statement_in_a_big_file_is_refused_naming_its_line_in_the_file(
    tmp_path: Path, small_parts: None, statement: str, message: str
) -> None:
    before = _tricky_file(40) + "-- the next statement is the one\n"
    path = write(tmp_path, "0001_big.sql", before + statement + "\n" + _tricky_file(40).split("\n", 1)[1])
    with pytest.raises(runner.BadInput) as refused:
        prepare(read_migration(path, 1), OWN)
    assert f"0001_big.sql, line {before.count(chr(10)) + 1}: {message}" in str(refused.value)


@pytest.mark.parametrize("head", ["", "-- BEGIN\n"], ids=["cut-when-planned", "cut-before"])
def test_plan_counts_the_statements_of_a_big_file_and_names_the_line_where_it_would_fail(
    dsn: str, migrations: Path, small_parts: None, head: str
) -> None:
    text = head + _tricky_file(60)
    write(migrations, "0001_big.sql", text)
    assert [s.statements for s in api.dry_run(dsn, migrations).steps] == [len(_statements(text))]
    before = text + _tricky_file(20).split("\n", 1)[1]
    write(migrations, "0001_big.sql", before + "INSERT INTO t VALUES 1;\n" + _tricky_file(20).split("\n", 1)[1])
    [step] = api.dry_run(dsn, migrations).steps
    assert step.statements is None and step.failure is not None
    assert step.failure.startswith(f'line {before.count(chr(10)) + 1}: syntax error at or near "1" (pglast ')


def _migrate_edited_meanwhile(dsn: str, migrations: Path, path: Path, edited: str) -> None:
    """migrate, with ``path`` rewritten as ``edited`` once it is checked and about to be sent."""

    def meanwhile(event: object) -> None:
        if isinstance(event, results.Applying):
            path.write_text(edited)

    runner.migrate(dsn, migrations, on_event=meanwhile)


def _in_place_of(text: str, padding: str, sql: str) -> str:
    """``text`` with ``sql`` (then a comment to the same length) in place of the comment line ``padding``."""
    edited = text.replace(padding, sql + " --" + "x" * (len(padding) - len(sql) - 4) + "\n")
    assert len(edited) == len(text)
    return edited


@pytest.mark.parametrize("edit", ["same-size", "shorter"])
def test_a_big_file_edited_while_it_is_sent_is_rolled_back(
    dsn: str, migrations: Path, small_parts: None, monkeypatch: pytest.MonkeyPatch, edit: str
) -> None:
    monkeypatch.setattr(files, "HELD_LIMIT", 500)  # read a window at a time, as a file over 1 MB is
    path = write(migrations, "0001_big.sql", _tricky_file(60))
    edited = _tricky_file(60).replace("after comment", "edited!!!!!!!" if edit == "same-size" else "x")

    with pytest.raises(MigrationFailed, match="0001_big.sql changed while runner was sending it .* rolled back"):
        _migrate_edited_meanwhile(dsn, migrations, path, edited)
    assert query(dsn, "SELECT to_regclass('t')") == [(None,)]
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(0,)]


def test_a_big_file_that_ends_the_transaction_while_it_is_sent_removes_only_its_own_claim(
    dsn: str, migrations: Path, small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edited while it is sent, the file rolls back runner's transaction (and the claim with it), then writes a
    record of its own and commits it, as a runner that took the lock over would have, at a moment the test knows
    (and makes its table again, for the statements after it).
    The report says what happened, and only a row runner's own transaction wrote would be removed: not that one."""
    monkeypatch.setattr(files, "HELD_LIMIT", 500)  # read a window at a time, as a file over 1 MB is
    padding = "-- " + "x" * 200 + "\n"
    text = _tricky_file(30) + padding + _tricky_file(30).split("\n", 1)[1]
    path = write(migrations, "0001_big.sql", text)
    other = ("ROLLBACK; INSERT INTO runner_migrations (version, name, checksum, execution_ms) "
             "VALUES (1, 'x', 'other', 0); COMMIT; CREATE TABLE t (id serial PRIMARY KEY, note text);")  # fmt: skip
    edited = _in_place_of(text, padding, other)

    with pytest.raises(MigrationFailed, match=r"0001_big.sql ended runner's transaction before its byte \d+ .* and it "
                                              "was not recorded"):  # fmt: skip
        _migrate_edited_meanwhile(dsn, migrations, path, edited)
    assert query(dsn, "SELECT version, checksum FROM runner_migrations") == [(1, "other")]


def test_a_big_file_that_commits_its_claim_while_it_is_sent_then_fails_is_not_recorded(
    dsn: str, migrations: Path, small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edited while it is sent, one part commits runner's transaction, claim included, then fails: the claim that
    outlived the failure is removed, and the report says what may have been kept."""
    monkeypatch.setattr(files, "HELD_LIMIT", 500)  # read a window at a time, as a file over 1 MB is
    padding = "-- " + "x" * 60 + "\n"
    head = "-- BEGIN: a word, so that the file is walked, and cut where its statements ended when it was checked\n"
    text = head + _tricky_file(30) + padding + _tricky_file(30).split("\n", 1)[1]
    path = write(migrations, "0001_big.sql", text)
    commit_then_fail = "COMMIT; SELECT 1 / 0;"
    edited = _in_place_of(text, padding, commit_then_fail)

    with pytest.raises(MigrationFailed, match=r"0001_big.sql ended runner's transaction before its byte \d+ .* and it "
                                              "was not recorded"):  # fmt: skip
        _migrate_edited_meanwhile(dsn, migrations, path, edited)
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(0,)]


def test_a_file_walked_in_two_halves_is_cut_and_refused_as_if_walked_in_one(tmp_path: Path, small_parts: None) -> None:
    # The second half is walked on a thread from the first `;` ending a line after the middle: here
    # that is inside a string, so the first half's walk must go on past it.
    long_string = "INSERT INTO t (note) VALUES ('" + "x;\n" * 2000 + "');\n"
    head = "-- BEGIN: a word, so that the file is walked\n"
    text = head + _tricky_file(40) + long_string + _tricky_file(40).split("\n", 1)[1]
    assert "x;\n" in text[len(text) // 2 : len(text) // 2 + 10]
    parts = _parts(write(tmp_path, "0001_big.sql", text))
    assert "".join(parts) == text and [s for p in parts for s in _statements(p)] == _statements(text)
    first_half = _tricky_file(40).replace("CREATE TABLE t", "CREATE DATABASE a;\nCREATE TABLE t", 1)
    for halves, line in [
        ((_tricky_file(40), "VACUUM;\n"), _tricky_file(40).count("\n") * 2),
        ((first_half, "VACUUM;\n"), 1),
    ]:
        text = halves[0] + _tricky_file(40).split("\n", 1)[1] + halves[1]
        with pytest.raises(runner.BadInput, match=f"0001_big.sql, line {line}: (VACUUM|CREATE DATABASE) cannot"):
            prepare(read_migration(write(tmp_path, "0001_big.sql", text), 1))


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


# Runs the command given after it, then prints that process's peak resident memory in KiB, last on stderr.
_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(done.returncode)
"""


def _measured(*args: str | Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """The real command, run by a small process of its own, and its peak resident memory in MB."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "runner", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=300)  # fmt: skip
    *lines, peak = done.stderr.rstrip("\n").split("\n")
    done.stderr = "".join(line + "\n" for line in lines)
    return done, int(peak) / 1024


def test_a_big_file_full_of_the_words_is_applied_in_bounded_memory(dsn: str, migrations: Path) -> None:
    statement = "-- the END of a batch\nINSERT INTO big (id, note) VALUES " + ", ".join(
        f"({n}, 'BEGIN; COMMIT; END')" for n in range(1000)) + ";\n"  # fmt: skip
    write(migrations, "0001_big.sql", "CREATE TABLE big (id int, note text);\n" + statement * 300)
    assert (migrations / "0001_big.sql").stat().st_size > 8_000_000
    done, peak = _measured("migrate", "--dsn", dsn, "--dir", migrations)
    assert done.returncode == 0, done.stderr
    assert peak < 120, f"peak RSS {peak:.0f} MB"  # parsed whole, the file took 25 times its size
    assert query(dsn, "SELECT count(*) FROM big") == [(300_000,)]


def test_a_2_gb_file_of_nul_bytes_is_refused_without_being_read_whole(dsn: str, migrations: Path) -> None:
    write(migrations, "0001_first.sql", "CREATE TABLE first_table (id int);\n")
    with (migrations / "0002_zeros.sql").open("wb") as zeros:
        zeros.truncate(2 << 30)  # a sparse file: 2 GB of zeros that take no room on the disk
    refused, peak = _measured("migrate", "--dsn", dsn, "--dir", migrations)
    assert_clean_error(refused, 2, "0002_zeros.sql: contains a NUL byte at line 1; remove it")
    assert peak < 200, f"peak RSS {peak:.0f} MB"
    assert query(dsn, "SELECT to_regclass('first_table')") == [(None,)]


def test_a_backslash_run_across_two_windows_is_counted_whole(tmp_path: Path) -> None:
    """65 backslashes (an odd run: the quote after them is escaped) end a window of the file; a quote begins the
    next one."""
    head = "SELECT 1;\n" * ((files.WINDOW - 100) // 10)
    head += "-- " + "x" * (files.WINDOW - len(head) - 65 - len("SELECT '") - 4) + "\n"
    text = head + "SELECT '" + "\\" * 65 + "' AS x, ' ; COMMIT; -- ';\n"
    assert text.index("' AS x") == files.WINDOW
    script = prepare(read_migration(write(tmp_path, "0001_big.sql", text), 1))
    assert isinstance(script.body, files.FileView) and preflight.read_otherwise(script) == text.count("\n")
    even = text.replace("\\" * 65, "\\" * 64)
    assert preflight.read_otherwise(prepare(read_migration(write(tmp_path, "0002_big.sql", even), 2))) is None
