"""The tracking table: one row per applied migration, the database's side of the story.

The table is always addressed schema-qualified, so a migration that changes ``search_path``
cannot misplace a row. A table of the same name that runner did not create is never
altered or dropped: we refuse to run instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple

import psycopg
from psycopg import pq, sql

from runner import db
from runner.errors import BadInput
from runner.files import Migration

DEFAULT_TABLE = "public.runner_migrations"
# On every tracking table runner creates: how the schema snapshot of any runner tells runner's tables apart.
COMMENT = "Migrations applied by runner: one row per file."
# On a tenant's: the schema that holds it is the tenant's, and no other runner's schema record covers it.
TENANT_COMMENT = "Migrations applied by runner to this tenant schema: one row per file."
PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_MAX_IDENTIFIER_BYTES = 63  # PostgreSQL silently truncates longer names

# Column name -> type as format_type() prints it. The set is the signature of "our" table.
COLUMNS: dict[str, str] = {
    "version": "bigint",
    "name": "text",
    "checksum": "text",
    "executed_at": "timestamp with time zone",
    "execution_ms": "integer",
    "applied_by": "text",
    "sql_checksum": "text",  # added later: a table without it is upgraded by migrate
    "down_checksum": "text",  # of the down file when the migration was applied (runner.down); added later too
}
_NULLABLE = {"sql_checksum", "down_checksum"}  # the columns added later, in that order


# The columns a file's record takes from the file (file_values); the rest are the run's.
FILE_COLUMNS = "version, name, checksum, sql_checksum, down_checksum"


def file_values(migration: Migration) -> tuple[int | None, str, str, str | None, str | None]:
    """The values of FILE_COLUMNS for a migration's record."""
    return migration.version, migration.name, migration.checksum, migration.code_checksum, migration.down_checksum


class Record(NamedTuple):
    """A row of the tracking table, or of the table of repeatable files (no version).

    A named tuple, as the rows it is made from: a thousand of them cost a third of what frozen
    dataclasses do, and the class a sixth to define (every run of runner pays both).
    """

    version: int | None
    name: str
    checksum: str
    executed_at: datetime
    execution_ms: int
    applied_by: str
    sql_checksum: str | None = None  # of the SQL without comments (Migration.code_checksum); None before it existed
    down_checksum: str | None = None  # of its down file when it was applied; None without one


def _split_parts(text: str) -> list[str]:
    """Split ``[schema.]name`` the way PostgreSQL reads it: quoted parts verbatim, others folded."""
    parts: list[str] = []
    i = 0
    while True:
        if text.startswith('"', i):
            end = i + 1
            part = ""
            while True:
                close = text.find('"', end)
                if close < 0:
                    raise BadInput(f"--table {text!r}: unterminated double quote")
                part += text[end:close]
                if text.startswith('"', close + 1):  # "" is an escaped quote
                    part += '"'
                    end = close + 2
                    continue
                i = close + 1
                break
        else:
            dot = text.find(".", i)
            raw = text[i:] if dot < 0 else text[i:dot]
            if not PLAIN_IDENTIFIER.fullmatch(raw):
                raise BadInput(
                    f"--table {text!r}: {raw!r} is not a plain identifier; "
                    "write it in double quotes, for example --table '\"My Schema\".migrations'"
                )
            part = raw.lower()
            i += len(raw)
        if not part or len(part.encode()) > _MAX_IDENTIFIER_BYTES:
            raise BadInput(f"--table {text!r}: each name must have 1 to 63 bytes")
        parts.append(part)
        if i == len(text):
            break
        if text[i] != ".":
            raise BadInput(f"--table {text!r}: expected a dot after {part!r}")
        i += 1
    if len(parts) > 2:
        raise BadInput(f"--table {text!r}: expected [schema.]name")
    return parts


@dataclass(frozen=True)
class TrackingTable:
    schema: str
    name: str
    # The schema is a tenant's: the schema record covers it alone, and files run with it first on search_path.
    tenant: bool = False

    @classmethod
    def parse(cls, text: str | TrackingTable | None) -> TrackingTable:
        if isinstance(text, TrackingTable):
            return text
        parts = _split_parts((text or DEFAULT_TABLE).strip())
        return cls("public", parts[0]) if len(parts) == 1 else cls(parts[0], parts[1])

    @classmethod
    def of_tenant(cls, schema: str, table: str | TrackingTable | None = None) -> TrackingTable:
        """The tables of a tenant's schema: ``table``'s name (the default's without one), in that schema."""
        return cls(schema, cls.parse(table).name, tenant=True)

    @property
    def scope(self) -> str | None:
        """The schema a schema record covers: a tenant's, or None for the whole database."""
        return self.schema if self.tenant else None

    def __str__(self) -> str:
        return ".".join(
            p if PLAIN_IDENTIFIER.fullmatch(p) and p == p.lower() else '"' + p.replace('"', '""') + '"'
            for p in (self.schema, self.name)
        )

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def companion(self, suffix: str) -> TrackingTable:
        """A table that belongs with this one (its history, its schema snapshot), named after it."""
        name = self.name + suffix
        if len(name.encode()) > _MAX_IDENTIFIER_BYTES:
            raise BadInput(f"--table {self}: too long to name its companion table {name!r}; use a shorter name")
        return replace(self, name=name)

    @property
    def lock_key(self) -> int:
        """The advisory-lock key: derived from the table, so two projects don't block each other."""
        digest = hashlib.sha256(f"runner:{self.schema}.{self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


class _Column(NamedTuple):
    type: str
    not_null: bool
    primary_key: bool  # the table's primary key is this column alone


def _columns(conn: psycopg.Connection, table: TrackingTable) -> tuple[str, dict[str, _Column]] | None:
    rows = conn.execute(
        """
        SELECT c.relkind::text, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary
                       AND i.indnatts = 1 AND i.indkey[0] = a.attnum)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = %s AND c.relname = %s
        ORDER BY a.attnum
        """,
        (table.schema, table.name),
    ).fetchall()
    if not rows:
        return None
    return rows[0][0], {name: _Column(type_, notnull, key) for _, name, type_, notnull, key in rows if name}


def _differences(columns: dict[str, _Column]) -> list[str]:
    """How a table that has some of our columns differs from ours: what to undo by hand."""
    problems = [f"no column {name}" for name in COLUMNS if name not in columns and name not in _NULLABLE]
    problems += [f"an extra column {name}" for name in columns if name not in COLUMNS]
    for name, column in columns.items():
        wanted = COLUMNS.get(name)
        if wanted is None:
            continue
        if column.type != wanted:
            problems.append(f"{name} is {column.type}, not {wanted}")
        elif not column.not_null and name not in _NULLABLE:
            problems.append(f"{name} allows NULL")
    if "version" in columns and not columns["version"].primary_key:
        problems.append("version is not the primary key")
    return problems


def check(conn: psycopg.Connection, table: TrackingTable) -> set[str] | None:
    """The columns of our table; None when nothing has that name; BadInput for a stranger."""
    found = _columns(conn, table)
    if found is None:
        return None
    relkind, columns = found
    problems = _differences(columns)
    if relkind in ("r", "p") and not problems:
        return set(columns)
    stranger = f"{table} exists but is not runner's tracking table"
    have = ", ".join(f"{name} {column.type}" for name, column in columns.items()) or "no columns"
    if relkind not in ("r", "p"):
        raise BadInput(f"{stranger}: a relation (not a table) with {have}; runner will not change it. "
                       "Pass --table to use another name")  # fmt: skip
    if set(columns) & set(COLUMNS):
        raise BadInput(f"{stranger} as runner created it: {'; '.join(problems)}. Undo that change by hand "
                       "(runner will not alter the table), or pass --table to use another name")  # fmt: skip
    raise BadInput(f"{stranger}: a table with {have}; runner will not change it. Pass --table to use another name")


def create_statement(table: TrackingTable) -> sql.Composed:
    """The table as runner creates it; a schema file (runner.schema_file) holds the same statement."""
    return sql.SQL(
        """CREATE TABLE IF NOT EXISTS {} (
    version      bigint PRIMARY KEY,
    name         text NOT NULL,
    checksum     text NOT NULL,
    executed_at  timestamptz NOT NULL DEFAULT now(),
    execution_ms integer NOT NULL,
    applied_by   text NOT NULL DEFAULT session_user,
    sql_checksum text,
    down_checksum text
)"""
    ).format(table.identifier)


def comment_statement(table: TrackingTable) -> sql.Composed:
    comment = TENANT_COMMENT if table.tenant else COMMENT
    return sql.SQL("COMMENT ON TABLE {} IS {}").format(table.identifier, sql.Literal(comment))


def _create(conn: psycopg.Connection, table: TrackingTable) -> None:
    """Called once the catalog shows no such table: IF NOT EXISTS alone would still need CREATE rights."""
    exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (table.schema,)).fetchone()
    if not exists:
        db.create_if_missing(conn, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(table.schema)))
    db.create_if_missing(conn, create_statement(table))
    conn.execute(comment_statement(table))


def upgrade(conn: psycopg.Connection, table: TrackingTable) -> None:
    """Add what later versions of runner record to a table made by an earlier one; called before writing."""
    columns = check(conn, table) or set(COLUMNS)
    for name in sorted(_NULLABLE - columns, key=list(COLUMNS).index):
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} text").format(table.identifier, sql.Identifier(name))
        )


def read(conn: psycopg.Connection, table: TrackingTable, *, create: bool = False) -> list[Record]:
    """The recorded migrations. A missing table means none; with ``create`` it is created first."""
    columns = check(conn, table)
    if columns is None:
        if not create:
            return []
        _create(conn, table)
        columns = set(COLUMNS)
    later = sql.SQL(", ").join(sql.SQL(name if name in columns else "NULL") for name in COLUMNS if name in _NULLABLE)
    rows = conn.execute(
        sql.SQL(
            "SELECT version, name, checksum, executed_at, execution_ms, applied_by, {} FROM {} ORDER BY version"
        ).format(later, table.identifier)
    ).fetchall()
    return [Record(*row) for row in rows]


def duration_ms(elapsed_ms: float | None) -> sql.Composable:
    """The time a file took: measured by the server when the file and its record travel in one message.

    statement_timestamp() is when the whole message arrived, clock_timestamp() is now, after the
    file ran. A file sent in several messages passes the time it took instead.
    """
    if elapsed_ms is not None:
        return sql.Literal(elapsed_ms)
    return sql.SQL("(extract(epoch FROM pg_catalog.clock_timestamp() - pg_catalog.statement_timestamp()) * 1000)")


# The SQLSTATEs of a claim that found its row taken: a file's row already there (unique_violation), or the
# checksum of a repeatable file already recorded (division by zero, see repeatable.claim_statement).
CLAIMED_ELSEWHERE = ("23505", "22012")


def literals(conn: psycopg.Connection, *values: str | int | None) -> bytes:
    """``values`` as SQL, comma-separated: quoted by libpq, without the adapters sql.Literal sets up for each
    value, which cost more than the rest of a file's record."""
    encoding, escaping = conn.info.encoding, pq.Escaping(conn.pgconn)
    return b", ".join(
        b"NULL" if value is None
        else str(value).encode() if isinstance(value, int)
        else escaping.escape_literal(value.encode(encoding))
        for value in values
    )  # fmt: skip


def claim_statement(conn: psycopg.Connection, table: TrackingTable, migration: Migration) -> bytes:
    """The file's row, written before the file runs, in its transaction; its time follows (timing_statement).

    Sent first in the file's transaction, it claims the file: a second runner that reaches the same
    file waits on the row until the first commits, then fails here (unique_violation), before any of
    the file runs. It returns the id of the transaction that wrote the row (see apply.Session._forget_claim).
    """
    values = literals(conn, *file_values(migration))
    return b"INSERT INTO %b (%b, execution_ms) VALUES (%b, 0) RETURNING xmin::text" % (
        table.identifier.as_bytes(conn),
        FILE_COLUMNS.encode(),
        values,
    )


def timing_statement(
    conn: psycopg.Connection, table: TrackingTable, migration: Migration, elapsed_ms: float | None = None
) -> bytes:
    """The time the file took, into the row its claim wrote."""
    return b"UPDATE %b SET execution_ms = %b::integer WHERE version = %b" % (
        table.identifier.as_bytes(conn),
        duration_ms(elapsed_ms).as_bytes(conn),
        literals(conn, migration.version),
    )


def recorded(conn: psycopg.Connection, table: TrackingTable, version: int, checksum: str) -> bool:
    """Whether this very record is there: after an interrupt, whether the file's (or down file's) step committed."""
    query = sql.SQL("SELECT 1 FROM {} WHERE version = %s AND checksum = %s").format(table.identifier)
    return conn.execute(query, (version, checksum)).fetchone() is not None


def forget_statement(table: TrackingTable, version: int) -> sql.Composed:
    return sql.SQL("DELETE FROM {} WHERE version = {}").format(table.identifier, sql.Literal(version))


def insert_statement(
    conn: psycopg.Connection, table: TrackingTable, migration: Migration, elapsed_ms: float | None = None
) -> bytes:
    """The INSERT that travels with the migration, in the same transaction."""
    return (
        sql.SQL("INSERT INTO {} ({}, execution_ms) VALUES ({}, {}::integer)")
        .format(
            table.identifier,
            sql.SQL(FILE_COLUMNS),
            sql.SQL(", ").join(map(sql.Literal, file_values(migration))),
            duration_ms(elapsed_ms),
        )
        .as_bytes(conn)
    )
