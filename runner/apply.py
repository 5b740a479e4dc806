"""Running one migration and its tracking row as a single transaction, in one round trip.

The file's text and the INSERT of its tracking row are sent together as one simple-protocol
message. PostgreSQL runs a multi-statement message as one implicit transaction, so the file
is either applied and recorded, or neither. It also returns one result per statement,
which is how a failure is placed in the file without parsing it first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg import generators, pq
from psycopg.pq.abc import PGresult

from runner import tracking
from runner.errors import MigrationFailed
from runner.files import Migration
from runner.locate import SEPARATOR, locate

_Status = pq.ExecStatus
_Field = pq.DiagnosticField


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    checksum: str
    statements: int
    duration_ms: float

    @property
    def empty(self) -> bool:
        """An empty or comment-only file: recorded like any other, reported as such."""
        return self.statements == 0


def _round_trip(conn: psycopg.Connection, message: bytes) -> list[PGresult]:
    """Send a multi-statement message and collect every result, errors included.

    psycopg's cursor raises on the first error and drops the results before it, which we need
    to count; so this uses psycopg's libpq layer. ``conn.wait`` keeps psycopg's handling of
    Ctrl-C (it cancels the running statement on the server).
    """
    pgconn = conn.pgconn
    pgconn.send_query(message)
    results: list[PGresult] = conn.wait(generators.execute(pgconn))
    while results and results[-1].status in (_Status.COPY_IN, _Status.COPY_OUT, _Status.COPY_BOTH):
        if results[-1].status == _Status.COPY_OUT:  # COPY ... TO STDOUT: drain and drop the data
            while pgconn.get_copy_data(0)[0] > 0:
                pass
        else:  # COPY ... FROM STDIN: the data would follow in psql's input, which we don't have
            pgconn.put_copy_end(b"COPY FROM STDIN is a psql feature; runner has no data to send")
        results[-1:] = conn.wait(generators.execute(pgconn))
    return results


def _field(result: PGresult, field: pq.DiagnosticField) -> str | None:
    value = result.error_field(field)
    return value.decode("utf-8", "replace") if value is not None else None


def _failure(migration: Migration, table: tracking.TrackingTable, result: PGresult, index: int) -> MigrationFailed:
    sqlstate = _field(result, _Field.SQLSTATE) or "?????"
    message = _field(result, _Field.MESSAGE_PRIMARY) or "unknown error"
    position = _field(result, _Field.STATEMENT_POSITION)
    text = migration.text()
    where = locate(text, int(position) if position else None, index)
    if where.after_file:
        summary = f"{migration.name} ran, but recording it in {table} failed: {message} (SQLSTATE {sqlstate})"
    else:
        place = where.describe()
        summary = f"{migration.name} failed{' ' + place if place else ''}: {message} (SQLSTATE {sqlstate})"
    details = {
        "file": str(migration.path),
        "version": migration.version,
        "line": where.line or where.statement_line,
        "column": where.column,
        "sqlstate": sqlstate,
        "server_message": message,
        "detail": _field(result, _Field.MESSAGE_DETAIL),
        "hint": _field(result, _Field.MESSAGE_HINT),
        "context": _field(result, _Field.CONTEXT),
    }
    return MigrationFailed(
        f"{summary}. It was rolled back: nothing of it was kept, and later files did not run",
        details=details,
    )


def apply(conn: psycopg.Connection, table: tracking.TrackingTable, migration: Migration) -> Applied:
    """Apply one file with its tracking row; raise MigrationFailed (nothing kept) when it fails."""
    message = migration.sql + SEPARATOR.encode() + tracking.insert_statement(conn, table, migration)
    started = time.perf_counter()
    results = _round_trip(conn, message)
    elapsed_ms = (time.perf_counter() - started) * 1000
    for index, result in enumerate(results):
        if result.status == _Status.FATAL_ERROR:
            raise _failure(migration, table, result, index)
    # Every statement returns one result; the last one is our INSERT.
    return Applied(migration.version, migration.name, migration.checksum, len(results) - 1, elapsed_ms)
