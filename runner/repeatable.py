"""Repeatable migrations: files under ``<dir>/repeatable/``, applied again whenever they change.

Views, functions, triggers and grants are easier to keep as one file holding their current
definition than as a trail of numbered files. Such a file has no version: it runs after the
numbered ones, in name order, the first time it is seen and again each time its checksum
differs from the one recorded, and never otherwise. It is named ``repeatable/<file>``
everywhere (status, history, ``runner unmark``), which no numbered file can be called.

Its record lives beside the tracking table, in ``<table>_repeatable``: one row per file,
replaced in the same transaction as each run of the file.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from runner import db, tracking
from runner.errors import BadInput
from runner.files import Migration, read_migration, sql_entries
from runner.tracking import Record, TrackingTable

FOLDER = "repeatable"
PREFIX = FOLDER + "/"
SUFFIX = "_repeatable"
_COLUMNS = ["name", "checksum", "executed_at", "execution_ms", "applied_by"]


def discover(directory: Path) -> list[Migration]:
    """The repeatable files of a migrations folder, in name order; none when it has no such folder."""
    folder = directory / FOLDER
    if not folder.is_dir():
        if folder.exists():
            raise BadInput(f"{folder} is not a folder; repeatable migrations go in a folder of that name")
        return []
    return [read_migration(e.path, None, PREFIX + e.name) for e in sql_entries(folder, "for example views.sql")]


def table_of(target: TrackingTable) -> TrackingTable:
    return target.companion(SUFFIX)


def _columns(conn: psycopg.Connection, table: TrackingTable) -> list[str] | None:
    """The table's column names, or None when there is no such table; BadInput for one that is not ours."""
    row = conn.execute(
        "SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
        (table.identifier.as_string(conn),),
    ).fetchone()
    columns: list[str] | None = row[0] if row else None
    if columns is not None and columns != _COLUMNS:
        listed = ", ".join(columns)
        raise BadInput(f"{table} exists but is not runner's table of repeatable migrations (columns {listed}); "
                       "runner will not change it. Pass --table to use another name")  # fmt: skip
    return columns


def read(conn: psycopg.Connection, target: TrackingTable) -> list[Record]:
    """What was recorded of each repeatable file, by name; none before the first one ran."""
    table = table_of(target)
    if _columns(conn, table) is None:
        return []
    rows = conn.execute(
        sql.SQL("SELECT {} FROM {} ORDER BY name").format(
            sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), table.identifier
        )
    ).fetchall()
    return [Record(None, *row) for row in rows]


def create_statement(target: TrackingTable) -> sql.Composed:
    """The table as runner creates it; a schema file (runner.schema_file) holds the same statement."""
    return sql.SQL(
        """CREATE TABLE IF NOT EXISTS {} (
    name         text PRIMARY KEY,
    checksum     text NOT NULL,
    executed_at  timestamptz NOT NULL DEFAULT now(),
    execution_ms integer NOT NULL,
    applied_by   text NOT NULL DEFAULT session_user
)"""
    ).format(table_of(target).identifier)


def ensure(conn: psycopg.Connection, target: TrackingTable) -> None:
    """Create the table beside the tracking table, before the first repeatable file is recorded."""
    if _columns(conn, table_of(target)) is None:
        db.create_if_missing(conn, create_statement(target))


def record_statement(
    conn: psycopg.Connection, target: TrackingTable, migration: Migration, elapsed_ms: float | None = None
) -> bytes:
    """The row of a file that just ran, replacing the one of its previous run, in the file's transaction."""
    return (
        sql.SQL(
            "INSERT INTO {} (name, checksum, execution_ms) VALUES ({}, {}, {}::integer) ON CONFLICT (name) DO UPDATE "
            "SET checksum = excluded.checksum, executed_at = excluded.executed_at, "
            "execution_ms = excluded.execution_ms, applied_by = excluded.applied_by"
        )
        .format(
            table_of(target).identifier,
            sql.Literal(migration.name),
            sql.Literal(migration.checksum),
            tracking.duration_ms(elapsed_ms),
        )
        .as_bytes(conn)
    )


def claim_statement(conn: psycopg.Connection, target: TrackingTable, migration: Migration) -> bytes:
    """The file's row with its new checksum, before it runs (see tracking.claim_statement).

    When another runner has recorded this very checksum meanwhile, nothing is written and the
    claim fails: the upsert returns no row, so the count it divides by is zero. Its last column is
    the id of the transaction that wrote the row, as tracking.claim_statement returns it.
    """
    upsert = sql.SQL(
        "INSERT INTO {} AS old (name, checksum, execution_ms) VALUES ({}, {}, 0) ON CONFLICT (name) DO UPDATE "
        "SET checksum = excluded.checksum, executed_at = excluded.executed_at, execution_ms = 0, "
        "applied_by = excluded.applied_by WHERE old.checksum IS DISTINCT FROM excluded.checksum RETURNING xmin::text"
    ).format(table_of(target).identifier, sql.Literal(migration.name), sql.Literal(migration.checksum))
    return sql.SQL("WITH claim (xid) AS ({}) SELECT 1 / count(*), min(xid) FROM claim").format(upsert).as_bytes(conn)


def timing_statement(
    conn: psycopg.Connection, target: TrackingTable, migration: Migration, elapsed_ms: float | None = None
) -> bytes:
    return (
        sql.SQL("UPDATE {} SET execution_ms = {}::integer WHERE name = {}")
        .format(table_of(target).identifier, tracking.duration_ms(elapsed_ms), sql.Literal(migration.name))
        .as_bytes(conn)
    )


def forget_statement(target: TrackingTable, name: str) -> sql.Composed:
    return sql.SQL("DELETE FROM {} WHERE name = {}").format(table_of(target).identifier, sql.Literal(name))


def recorded(conn: psycopg.Connection, target: TrackingTable, migration: Migration) -> bool:
    query = sql.SQL("SELECT 1 FROM {} WHERE name = %s AND checksum = %s").format(table_of(target).identifier)
    return conn.execute(query, (migration.name, migration.checksum)).fetchone() is not None
