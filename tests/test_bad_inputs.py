"""A corpus of bad inputs, each with the exit code and message a user should see, and proof that nothing was applied.

Every case runs the real ``runner migrate`` on a fresh database, with a migrations folder whose first file,
``0001_first.sql``, creates ``first_table``. A bad second file starts by creating ``t2``, so "t2 does not exist
afterwards" shows that nothing of it was kept. After the run:

- a failure (exit 1, 2 or 5) prints exactly one ``error:`` line naming what is wrong and how to fix it, no
  traceback, and leaves the database as it found it: no new relation except an empty tracking table, and a
  tracking table that existed before (hand-made or hand-altered) has the same columns and rows;
- exit 3 (a migration failed and was rolled back) keeps ``0001_first.sql``, applied and recorded before the
  failing file, and nothing of the failing file;
- a failure prints the same message in ``--json`` mode, and no output ever shows a password;
- a success (odd but valid input) records what it should and prints what it did.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from helpers import assert_clean_error, query, remove_embedded, runner_cli, write
from psycopg import sql

from runner import embedded

SECRET = "Sw0rdf1sh-9"  # a password in a connection string: it must appear in no output
FIRST = "CREATE TABLE first_table (id int);\n"
T2 = "CREATE TABLE t2 (a int);\n"  # what a bad file does first, so we can see it was not kept
KEPT_NEVER = ("public.t2", "public.t3")  # tables that bad files (and files after them) create
TRACKING = ("public", "runner_migrations")
# The columns runner's tracking table has, to build hand-altered copies of it.
RUNNER_TABLE = """
CREATE TABLE public.runner_migrations (
    version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
    executed_at timestamptz NOT NULL DEFAULT now(), execution_ms integer NOT NULL,
    applied_by text NOT NULL DEFAULT session_user);
"""
HOSTILE_TABLE = 'x"; DROP TABLE first_table; --'

Build = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    id: str
    code: int
    says: tuple[str, ...] = ()  # fragments of the error line; of stdout for a success
    files: tuple[tuple[str, str | bytes], ...] = ()  # besides 0001_first.sql
    build: Build | None = None  # links, folders, odd names: what write() cannot make
    prepare: str | None = None  # SQL run on the fresh database before runner
    args: tuple[str, ...] = ()
    dsn: str | None = None  # instead of the test database
    dir: str = "sql"  # --dir, relative to the test's tmp_path; the folder is always tmp_path/sql
    recorded: tuple[int, ...] = ()  # versions in the tracking table afterwards (exit 0 and 3)
    tracking: tuple[str, str] = TRACKING
    check: tuple[str, list[tuple[object, ...]]] | None = None  # a query and its rows afterwards
    never: tuple[str, ...] = ()  # must appear in no output (passwords, runner's own SQL)
    timeout: float = 120


# Builders for what write() cannot make: links, folders, odd names, big files.


def _link(name: str, target: str) -> Build:
    """A symbolic link in the migrations folder; ``target`` is relative to the folder."""

    def build(folder: Path) -> None:
        (folder / name).symlink_to(target)

    return build


def _link_to_file_inside(folder: Path) -> None:
    write(folder / "lib", "seed.sql", "INSERT INTO first_table VALUES (7);\n")  # sub-folders are not scanned
    (folder / "0002_seed.sql").symlink_to("lib/seed.sql")


def _link_to_file_outside(folder: Path) -> None:
    write(folder.parent, "outside.sql", T2)
    (folder / "0002_link.sql").symlink_to("../outside.sql")


def _non_utf8_name(folder: Path) -> None:
    with open(os.path.join(os.fsencode(folder), b"0002_caf\xe9.sql"), "wb") as file:
        file.write(b"SELECT 1;\n")


def _inserts(name: str, megabytes: int, head: str = "") -> Build:
    """A file of ``megabytes`` MB of INSERTs into a table ``big`` that it creates."""

    def build(folder: Path) -> None:
        row = "INSERT INTO big VALUES ({}, '" + "x" * 150 + "');\n"
        parts = [head, "CREATE TABLE big (id int, payload text);\n"]
        size = n = 0
        while size < megabytes * 1_000_000:
            parts.append(row.format(n))
            size += len(parts[-1])
            n += 1
        write(folder, name, "".join(parts))

    return build


# fmt: off
CASES: list[Case] = [
    # File names: refused before anything is read or connected.
    Case("name-without-version", 2, ("create_users.sql", "not a migration file name", "0015_add_due_date.sql"),
         files=(("create_users.sql", "SELECT 1;\n"),)),
    Case("name-version-only", 2, ("0007.sql", "not a migration file name", "<version>_<description>.sql"),
         files=(("0007.sql", "SELECT 1;\n"),)),
    Case("name-letter-before-version", 2, ("v7_x.sql", "not a migration file name"),
         files=(("v7_x.sql", "SELECT 1;\n"),)),
    Case("name-upper-case-extension", 2, ("0002_x.SQL", "lower-case .sql"), files=(("0002_x.SQL", "SELECT 1;\n"),)),
    Case("duplicate-version", 2, ("0003_a.sql", "3_b.sql", "both have version 3", "renumber"),
         files=(("0003_a.sql", "SELECT 1;\n"), ("3_b.sql", "SELECT 1;\n"))),
    Case("version-beyond-bigint", 2, ("99999999999999999999_huge.sql", "larger than 9223372036854775807"),
         files=(("99999999999999999999_huge.sql", "SELECT 1;\n"),)),
    Case("name-not-utf8", 2, ("0002_caf\\xe9.sql", "is not valid UTF-8", "rename the file"), build=_non_utf8_name),
    # Encodings.
    Case("latin1-content", 2, ("0002_latin1.sql", "not valid UTF-8 (byte 0xe9 at line 2)", "save the file as UTF-8"),
         files=(("0002_latin1.sql", T2.encode() + b"INSERT INTO t2 VALUES (length('caf\xe9'));\n"),)),
    Case("utf16-with-bom", 2, ("0002_utf16.sql", "the file is UTF-16", "save it as UTF-8"),
         files=(("0002_utf16.sql", T2.encode("utf-16")),)),
    Case("utf16-without-bom", 2, ("0002_utf16.sql", "UTF-16", "save it as UTF-8"),
         files=(("0002_utf16.sql", T2.encode("utf-16-le")),)),
    Case("nul-byte", 2, ("0002_nul.sql", "NUL byte at line 2", "remove it"),
         files=(("0002_nul.sql", T2.encode() + b"SELECT\x00 1;\n"),)),
    # What sits in the folder under a .sql name.
    Case("folder-named-sql", 2, ("0002_dir.sql", "a folder named like a migration file", "rename it or move it"),
         build=lambda folder: (folder / "0002_dir.sql").mkdir()),
    Case("symlink-outside-folder", 2,
         ("0002_link.sql", "outside the migrations folder", "copy the file into the folder instead"),
         build=_link_to_file_outside),
    Case("broken-symlink", 2, ("0002_gone.sql", "which does not exist", "fix or remove the link"),
         build=_link("0002_gone.sql", "../gone.sql")),
    Case("symlink-loop", 2, ("0002_loop.sql", "symbolic link"), build=_link("0002_loop.sql", "0002_loop.sql")),
    Case("named-pipe", 2, ("0002_pipe.sql", "not a regular file"),
         build=lambda folder: os.mkfifo(folder / "0002_pipe.sql")),
    Case("dir-missing", 2, ("migrations folder", "does not exist", "pass --dir"), dir="missing"),
    Case("dir-is-a-file", 2, ("0001_first.sql is not a folder",), dir="sql/0001_first.sql"),
    Case("dir-name-too-long", 2, ("migrations folder", "File name too long", "--dir"), dir="d" * 300),
    # psql features, and statements that cannot share the file's transaction: refused up front.
    Case("psql-set", 2, ("0002_meta.sql, line 2", "\\set is a psql meta-command", "Remove it"),
         files=(("0002_meta.sql", T2 + "\\set x 1\nSELECT :x;\n"),)),
    Case("psql-include", 2, ("0002_meta.sql, line 2", "\\i is a psql meta-command"),
         files=(("0002_meta.sql", T2 + "\\i other.sql\n"),)),
    Case("psql-variable-without-value", 2,
         ("0002_tenant.sql, line 2", "the variable :'tenant' has no value", "--set tenant=VALUE",
          "[tool.runner.variables]"),
         files=(("0002_tenant.sql", T2 + "COMMENT ON TABLE t2 IS :'tenant';\n"),)),
    Case("copy-from-stdin", 2, ("0002_copy.sql, line 2", "COPY ... FROM stdin", "psql feature", "INSERT"),
         files=(("0002_copy.sql", T2 + "COPY t2 FROM stdin;\n1\n2\n\\.\n"),)),
    Case("index-concurrently-in-transaction", 2,
         ("0002_index.sql, line 3", "CREATE INDEX CONCURRENTLY cannot run inside a transaction",
          "`-- runner: no-transaction`"),
         files=(("0002_index.sql", T2 + "\nCREATE INDEX CONCURRENTLY t2_a ON t2 (a);\n"),)),
    Case("commit-in-the-middle", 2,
         ("0002_commit.sql, line 2", "COMMIT in a file that runs in a transaction", "`-- runner: no-transaction`"),
         files=(("0002_commit.sql", T2 + "COMMIT;\nCREATE TABLE t3 (a int);\n"),)),
    Case("savepoint", 2, ("0002_savepoint.sql, line 2", "SAVEPOINT", "runs in a transaction"),
         files=(("0002_savepoint.sql", T2 + "SAVEPOINT before_t3;\nCREATE TABLE t3 (a int);\n"),)),
    # Directives and durations.
    Case("directive-typo", 2, ("0002_typo.sql, line 1", "unknown directive 'no-transactoin'", "no-transaction"),
         files=(("0002_typo.sql", "-- runner: no-transactoin\n" + T2),)),
    Case("directive-bad-duration", 2,
         ("0002_wait.sql, line 1", "lock-timeout", "'soon' is not a duration", "500ms, 10s"),
         files=(("0002_wait.sql", "-- runner: lock-timeout=soon\n" + T2),)),
    Case("option-bad-duration", 2, ("--lock-timeout", "'banana' is not a duration", "500ms, 10s"),
         args=("--lock-timeout", "banana")),
    Case("option-unknown", 2, ("No such option: --lock-timeot", "see `runner migrate --help`"),
         args=("--lock-timeot", "5s")),
    Case("option-out-of-range", 2, ("Invalid value for '--retries': -1",), args=("--retries", "-1")),
    # SQL the server rejects: the file is rolled back, the ones before it stay applied.
    Case("syntax-error-in-second-file", 3,
         ("0002_typo.sql failed at line 3, column 8", 'syntax error at or near "TABEL"', "rolled back"),
         files=(("0002_typo.sql", T2 + "INSERT INTO t2 VALUES (1);\nCREATE TABEL t3 (a int);\n"),
                ("0003_later.sql", "CREATE TABLE t3 (a int);\n")), recorded=(1,)),
    Case("runtime-error-in-second-file", 3,
         ("0002_zero.sql failed in the statement at line 2", "division by zero", "rolled back"),
         files=(("0002_zero.sql", T2 + "INSERT INTO t2 VALUES (1 / 0);\n"),), recorded=(1,)),
    Case("file-drops-the-tracking-table", 3,
         ("0002_drop.sql", "recording it in public.runner_migrations failed", "rolled back"),
         files=(("0002_drop.sql", T2 + "DO $$ BEGIN EXECUTE 'DROP TABLE runner_migrations'; END $$;\n"),),
         recorded=(1,)),  # dynamic SQL: a plain DROP TABLE of it is refused before anything runs
    Case("unterminated-quote", 3, ("0002_quote.sql failed at line 2", "unterminated quoted string"),
         files=(("0002_quote.sql", T2 + "INSERT INTO t2 VALUES ('oops);\n"),), recorded=(1,),
         never=("recording it",)),
    Case("unterminated-comment", 3, ("0002_comment.sql failed at line 2", "unterminated /* comment"),
         files=(("0002_comment.sql", T2 + "/* forgot to close\nINSERT INTO t2 VALUES (1);\n"),), recorded=(1,),
         never=("RESET ALL", "INSERT INTO")),
    Case("no-transaction-file-does-not-parse", 2,
         ("0002_ntx.sql", "cannot be split into statements", 'syntax error at or near "TABEL"', "Fix the SQL"),
         files=(("0002_ntx.sql", "-- runner: no-transaction\n" + T2 + "CREATE TABEL t3 (a int);\n"),)),
    Case("no-transaction-file-does-not-parse-names-the-line", 2, ("0002_ntx.sql", "line 3: syntax error"),
         files=(("0002_ntx.sql", "-- runner: no-transaction\n" + T2 + "CREATE TABEL t3 (a int);\n"),)),
    # A big file with a word that makes preflight parse it (begin) is checked, and applied.
    Case("big-file-with-a-suspect-word", 0, ("Completed: 0002_big.sql",),
         build=_inserts("0002_big.sql", 3, head="-- begin the data load\n"), recorded=(1, 2),
         check=("SELECT count(*) > 0 FROM big", [(True,)])),
    # Tracking tables made or altered by hand: never changed, nothing applied.
    Case("tracking-table-of-someone-else", 2,
         ("public.runner_migrations exists but is not runner's tracking table", "id integer, note text",
          "runner will not change it", "--table"),
         prepare="CREATE TABLE runner_migrations (id serial PRIMARY KEY, note text);"
                 "INSERT INTO runner_migrations (note) VALUES ('mine');"),
    Case("tracking-column-dropped", 2, ("public.runner_migrations exists but is not runner's tracking table",),
         prepare=RUNNER_TABLE + "INSERT INTO runner_migrations (version, name, checksum, execution_ms) "
                                "VALUES (0, '0000_old.sql', 'sha256:00', 1);"
                                "ALTER TABLE runner_migrations DROP COLUMN applied_by;"),
    Case("tracking-column-dropped-names-it", 2, ("applied_by",),
         prepare=RUNNER_TABLE + "ALTER TABLE runner_migrations DROP COLUMN applied_by;"),
    Case("tracking-name-is-a-view", 2, ("public.runner_migrations", "relation (not a table)", "--table"),
         prepare="CREATE VIEW runner_migrations AS SELECT 1::bigint AS version;"),
    Case("tracking-checksum-edited-strict", 1,
         ("--strict", "0001_first.sql (edited: checksum sha256:0000 when applied", "Nothing was applied",
          "runner verify"),
         files=(("0002_second.sql", T2),), args=("--strict",),
         prepare=RUNNER_TABLE + "INSERT INTO runner_migrations (version, name, checksum, execution_ms) "
                                "VALUES (1, '0001_first.sql', 'sha256:0000', 1);"),
    Case("tracking-row-newer-than-every-file", 1,
         ("0001_first.sql", "older than the newest applied version 99", "Nothing was applied", "--allow-out-of-order"),
         prepare=RUNNER_TABLE + "INSERT INTO runner_migrations (version, name, checksum, execution_ms) "
                                "VALUES (99, '0099_later.sql', 'sha256:00', 1);"),
    Case("tracking-null-checksum", 2, ("public.runner_migrations", "checksum"),
         prepare=RUNNER_TABLE + "ALTER TABLE runner_migrations ALTER checksum DROP NOT NULL;"
                                "INSERT INTO runner_migrations (version, name, checksum, execution_ms) "
                                "VALUES (1, '0001_first.sql', NULL, 1);"),
    Case("tracking-null-executed-at", 2, ("public.runner_migrations", "executed_at"),
         prepare=RUNNER_TABLE + "ALTER TABLE runner_migrations ALTER executed_at DROP NOT NULL;"
                                "INSERT INTO runner_migrations (version, name, checksum, executed_at, execution_ms) "
                                "VALUES (0, '0000_gone.sql', 'sha256:00', NULL, 1);"),
    Case("tracking-primary-key-dropped", 2, ("public.runner_migrations", "version is not the primary key"),
         prepare=RUNNER_TABLE + "ALTER TABLE runner_migrations DROP CONSTRAINT runner_migrations_pkey;"),
    # --table: a name, never SQL.
    Case("table-hostile-unquoted", 2, ("is not a plain identifier", "double quotes"), args=("--table", HOSTILE_TABLE)),
    Case("table-hostile-quoted", 0, ("Applied 1 migration(s)",),
         args=("--table", '"' + HOSTILE_TABLE.replace('"', '""') + '"'), tracking=("public", HOSTILE_TABLE),
         recorded=(1,)),
    Case("table-name-too-long", 2, ("--table", "1 to 63 bytes"), args=("--table", "t" * 64)),
    # Connections: exit 5 when the server cannot be reached, exit 2 when the string is wrong; never a password.
    Case("unreachable-port", 5,
         ("cannot connect to bob@127.0.0.1:1/app", "Connection refused", "check --dsn or DATABASE_URL"),
         dsn=f"postgresql://bob:{SECRET}@127.0.0.1:1/app", never=(SECRET,)),
    Case("unknown-host", 5, ("cannot connect to bob@nosuchhost.invalid/app", "failed to resolve host"),
         dsn=f"postgresql://bob:{SECRET}@nosuchhost.invalid/app", never=(SECRET,)),
    Case("malformed-dsn", 2, ("the connection string is not valid", "expected postgresql://user@host:port/dbname"),
         dsn=f"postgresql://bob:{SECRET}@[::1/app", never=(SECRET,)),
    Case("dsn-bad-option-value", 2, ("the connection string is not valid", "sslmode"),
         dsn=f"host=127.0.0.1 port=1 user=bob password={SECRET} sslmode=bogus", never=(SECRET,)),
    Case("dsn-password-with-raw-at-sign", 2, ("%40",),
         dsn="postgresql://bob:Hunter@2Secret@127.0.0.1:1/app", never=("2Secret",)),
    Case("dsn-password-with-bad-percent-escape", 2, ("the connection string is not valid", "percent-encoded", '"***"'),
         dsn=f"postgresql://bob:50%off{SECRET}@127.0.0.1:1/app", never=(SECRET,)),
    Case("dsn-password-with-unquoted-space", 2, ("the connection string is not valid", 'missing "=" after "***"'),
         dsn=f"host=127.0.0.1 port=1 user=bob password={SECRET[:5]} {SECRET[5:]} dbname=app",
         never=(SECRET[:5], SECRET[5:])),
    Case("dsn-port-out-of-range", 2, ("the connection string is not valid", 'invalid port number: "99999"'),
         dsn=f"postgresql://bob:{SECRET}@127.0.0.1:99999/app", never=(SECRET,)),
    Case("dsn-port-not-a-number-after-a-host-name", 2, ('invalid port number: "abc"',),
         dsn=f"postgresql://bob:{SECRET}@localhost:abc/app", never=(SECRET,)),
    # Odd but valid: applied and recorded.
    Case("empty-file", 0, ("Completed: 0002_empty.sql (empty file, recorded)",), files=(("0002_empty.sql", ""),),
         recorded=(1, 2)),
    Case("comment-only-file", 0, ("Completed: 0002_notes.sql (empty file, recorded)",),
         files=(("0002_notes.sql", "-- nothing yet\n/* a block\n   comment */\n\n"),), recorded=(1, 2)),
    Case("utf8-bom", 0, ("Completed: 0002_bom.sql",),
         files=(("0002_bom.sql", b"\xef\xbb\xbfINSERT INTO first_table VALUES (1);\n"),), recorded=(1, 2),
         check=("SELECT id FROM first_table", [(1,)])),
    Case("crlf-line-endings", 0, ("Completed: 0002_crlf.sql",),
         files=(("0002_crlf.sql", "INSERT INTO first_table\r\nVALUES (1), (2);\r\n"),),
         recorded=(1, 2), check=("SELECT id FROM first_table ORDER BY id", [(1,), (2,)])),
    Case("file-of-20-mb", 0, ("Completed: 0002_big.sql",), build=_inserts("0002_big.sql", 20), recorded=(1, 2),
         check=("SELECT count(*) FROM big", [(107_547,)])),  # every row of the file
    Case("symlink-to-a-file-inside", 0, ("Completed: 0002_seed.sql",), build=_link_to_file_inside, recorded=(1, 2),
         check=("SELECT id FROM first_table", [(7,)])),
    Case("begin-commit-wrapper", 0, ("Completed: 0002_wrapped.sql", "BEGIN/COMMIT wrapper ignored"),
         files=(("0002_wrapped.sql", "BEGIN;\nINSERT INTO first_table VALUES (1);\nCOMMIT;\n"),), recorded=(1, 2),
         check=("SELECT id FROM first_table", [(1,)])),
    # A file name reaches SQL only as a quoted literal.
    Case("file-name-with-sql-in-it", 0, ("Completed: 0002_it's; DROP TABLE first_table; --.sql",),
         files=(("0002_it's; DROP TABLE first_table; --.sql", "SELECT 1;\n"),), recorded=(1, 2),
         check=("SELECT name, to_regclass('first_table') IS NOT NULL FROM runner_migrations WHERE version = 2",
                [("0002_it's; DROP TABLE first_table; --.sql", True)])),
    Case("file-name-with-a-newline", 2, ("0002_two\\nlines.sql", "control character", "rename the file"),
         files=(("0002_two\nlines.sql", T2),)),
]
# fmt: on


# --- looking at the database ---------------------------------------------------------------------------------------


def _relations(dsn: str) -> set[str]:
    rows = query(
        dsn,
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname !~ '^pg_(toast|temp)'",
    )
    return {str(name) for (name,) in rows}


def _snapshot(dsn: str, table: tuple[str, str]) -> tuple[list[tuple[object, ...]], list[str]] | None:
    """Columns and rows of a tracking table (or of whatever has its name), None when there is none."""
    if f"{table[0]}.{table[1]}" not in _relations(dsn):
        return None
    columns = query(
        dsn,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        table,
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(sql.SQL("SELECT to_jsonb(t)::text FROM {} t").format(sql.Identifier(*table))).fetchall()
    return columns, sorted(str(row) for (row,) in rows)


def _versions(dsn: str, table: tuple[str, str]) -> tuple[int, ...]:
    if _snapshot(dsn, table) is None:
        return ()
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(sql.SQL("SELECT version FROM {} ORDER BY version").format(sql.Identifier(*table)))
        return tuple(int(version) for (version,) in rows.fetchall())


# --- the test ------------------------------------------------------------------------------------------------------


def _assert_one_clean_line(result: subprocess.CompletedProcess[str], case: Case) -> str:
    """One error line with the fragments; anything else on stderr is a warning or the server's DETAIL/HINT."""
    error = assert_clean_error(result, case.code, *case.says)
    others = [line for line in result.stderr.splitlines() if not line.startswith(("error: ", "warning: ", "  "))]
    assert not others, f"the error runs over several lines: {result.stderr}"
    return error


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_bad_input(case: Case, dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "0001_first.sql", FIRST)
    for name, content in case.files:
        write(folder, name, content)
    if case.build:
        case.build(folder)
    if case.prepare:
        query(dsn, case.prepare)
    before, tracking_before = _relations(dsn), _snapshot(dsn, case.tracking)

    command = ("migrate", "--dsn", case.dsn or dsn, "--dir", tmp_path / case.dir, *case.args)
    result = runner_cli(*command, timeout=case.timeout)
    shown = result.stdout + result.stderr
    assert "Traceback" not in shown, shown
    for secret in case.never:
        assert secret not in shown, (secret, shown)

    if case.code == 0:
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert result.stderr == ""
        for needle in case.says:
            assert needle in result.stdout, (needle, result.stdout)
    else:
        error = _assert_one_clean_line(result, case)
        # The --json document carries the same message, and no secret either.
        again = runner_cli(*command, "--json", timeout=case.timeout)
        assert again.returncode == case.code, (again.stdout, again.stderr)
        doc = json.loads(again.stdout)
        assert doc["ok"] is False and doc["error"]["exit_code"] == case.code
        assert doc["error"]["message"] == error.removeprefix("error: ")
        for secret in case.never:
            assert secret not in again.stdout + again.stderr

    after = _relations(dsn)
    assert not after & set(KEPT_NEVER), "a statement of the bad file, or of a file after it, was kept"
    if case.code in (0, 3):
        assert _versions(dsn, case.tracking) == case.recorded
        assert "public.first_table" in after
    elif tracking_before is not None:  # hand-made or hand-altered: untouched, nothing applied
        assert after == before
        assert _snapshot(dsn, case.tracking) == tracking_before
    else:  # nothing applied: at most an empty tracking table was created
        assert after - before <= {".".join(case.tracking)}
        assert _versions(dsn, case.tracking) == ()
    if case.check:
        statement, rows = case.check
        assert query(dsn, statement) == rows


def test_wrong_password_exits_5_shows_no_password_and_applies_nothing(tmp_path: Path) -> None:
    """A private embedded cluster with a password, as a real server would have."""
    right, wrong = "right-Horse-7", "Wr0ng-Battery-8"
    project = tmp_path / "project"
    write(project / "sql", "0001_first.sql", FIRST)
    lay = embedded.layout(project)
    try:
        embedded.init_cluster(lay, password=right)
        embedded.start(lay)
        url = f"postgresql://postgres:{wrong}@/postgres?host={lay.socket_dir}&port={embedded.PORT}"
        result = runner_cli("migrate", "--dsn", url, "--dir", project / "sql")
        error = assert_clean_error(result, 5, "cannot connect to postgres@", "password authentication failed",
                                   "check --dsn or DATABASE_URL")  # fmt: skip
        as_json = runner_cli("migrate", "--dsn", url, "--dir", project / "sql", "--json")
        assert as_json.returncode == 5
        doc = json.loads(as_json.stdout)
        assert doc["error"]["kind"] == "connection_failed" and doc["error"]["message"] == error.removeprefix("error: ")
        for output in (result.stdout, result.stderr, as_json.stdout, as_json.stderr):
            assert wrong not in output and right not in output
        assert _relations(url.replace(wrong, right)) == set()  # nothing applied, not even the tracking table
    finally:
        remove_embedded(project)
