"""The history: an append-only log beside the tracking table.

The tracking table is the current truth, one row per migration; the history explains how it
got there. Every file a migrate run applies, every failed attempt with its error, and every
change made by hand (accept, mark, baseline, unmark) adds a row; runner never updates or
deletes one. An apply row keeps the values of the psql variables the file used (runner.variables):
the file's checksum does not depend on them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from runner import db
from runner.errors import BadInput
from runner.tracking import TrackingTable, literals

SUFFIX = "_history"
_COLUMNS = ["id", "recorded_at", "action", "version", "name", "old_checksum", "new_checksum", "outcome", "error",
            "recorded_by", "variables"]  # fmt: skip
_BEFORE_VARIABLES = _COLUMNS[:-1]  # a table made by a runner before psql variables


class Event(NamedTuple):
    """A row of the history; a named tuple, as tracking.Record is, for the same reason."""

    id: int
    recorded_at: datetime
    action: str  # apply, accept, mark, baseline, unmark, load (of a schema file), rollback (of a down file)
    version: int | None  # None: a repeatable file
    name: str
    old_checksum: str | None
    new_checksum: str | None
    outcome: str  # ok or failed
    error: str | None
    recorded_by: str
    variables: dict[str, Any] | None = None  # of an apply: the values of the variables the file used, if any


def table_of(tracking: TrackingTable) -> TrackingTable:
    return tracking.companion(SUFFIX)


def ensure(conn: psycopg.Connection, tracking: TrackingTable) -> None:
    """Create the history table beside the tracking table, or check that the one there is ours."""
    table = table_of(tracking)
    found = conn.execute(
        "SELECT array_agg(a.attname::text ORDER BY a.attnum), bool_or(a.attname = 'version' AND a.attnotnull) "
        "FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
        (str(table.identifier.as_string(conn)),),
    ).fetchone()
    columns = found[0] if found else None
    if columns in (_COLUMNS, _BEFORE_VARIABLES):
        if found and found[1]:  # made by a runner before repeatable files, which have no version
            conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN version DROP NOT NULL").format(table.identifier))
        if columns == _BEFORE_VARIABLES:
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN variables jsonb").format(table.identifier))
        return
    if columns:
        raise BadInput(f"{table} exists but is not runner's history table (columns {', '.join(columns)}); "
                       "runner will not change it. Pass --table to use another name")  # fmt: skip
    db.create_if_missing(
        conn,
        sql.SQL(
            """
            CREATE TABLE IF NOT EXISTS {} (
                id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                recorded_at  timestamptz NOT NULL DEFAULT now(),
                action       text NOT NULL,
                version      bigint,
                name         text NOT NULL,
                old_checksum text,
                new_checksum text,
                outcome      text NOT NULL,
                error        text,
                recorded_by  text NOT NULL DEFAULT session_user,
                variables    jsonb
            )
            """
        ).format(table.identifier),
    )


def insert_statement(
    conn: psycopg.Connection,
    tracking: TrackingTable,
    action: str,
    version: int | None,
    name: str,
    old_checksum: str | None,
    new_checksum: str | None,
    *,
    error: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> bytes:
    """One history row, as SQL to send with the change it describes (in the same transaction).

    ``variables`` (the values a file's references took) go into a column ``ensure`` adds to an older table.
    """
    values = literals(conn, action, version, name, old_checksum, new_checksum, "failed" if error else "ok", error)
    columns = b"action, version, name, old_checksum, new_checksum, outcome, error"
    if variables:
        columns += b", variables"
        values += b", " + literals(conn, json.dumps(dict(variables), ensure_ascii=False)) + b"::jsonb"
    return b"INSERT INTO %b (%b) VALUES (%b)" % (table_of(tracking).identifier.as_bytes(conn), columns, values)


def _exists(conn: psycopg.Connection, table: TrackingTable) -> bool:
    return conn.execute("SELECT to_regclass(%s)", (table.identifier.as_string(conn),)).fetchone() != (None,)


def last_actions(
    conn: psycopg.Connection, tracking: TrackingTable, versions: list[int]
) -> dict[int, tuple[str, datetime]]:
    """For each of ``versions`` the history knows, its last successful action and when: what tells a
    tracking row deleted by hand (the history says applied) from one `runner unmark` removed."""
    table = table_of(tracking)
    if not versions or not _exists(conn, table):
        return {}
    query = sql.SQL(
        "SELECT DISTINCT ON (version) version, action, recorded_at FROM {} "
        "WHERE version = ANY(%s) AND outcome = 'ok' ORDER BY version, id DESC"
    ).format(table.identifier)
    return {version: (action, at) for version, action, at in conn.execute(query, (versions,)).fetchall()}


def read(conn: psycopg.Connection, tracking: TrackingTable, limit: int | None = None) -> list[Event]:
    """The newest ``limit`` events (all when None), oldest first."""
    table = table_of(tracking)
    if not _exists(conn, table):
        return []
    # The variables through to_jsonb: a table no migrate has upgraded yet lacks the column.
    query = sql.SQL("SELECT {}, to_jsonb(h) -> 'variables' FROM {} h ORDER BY id DESC LIMIT {}").format(
        sql.SQL(", ").join(map(sql.Identifier, _BEFORE_VARIABLES)), table.identifier, sql.Literal(limit)
    )
    return [Event(*row) for row in reversed(conn.execute(query).fetchall())]
