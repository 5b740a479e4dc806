"""One target database: the connections to it, the migration lock, and its plan read in one state.

The verbs of runner.api read a target with ``reading`` (no lock, nothing created) or change it under ``locked``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from runner import db, down, history, repeatable, squash, tracking
from runner.db import Database
from runner.errors import BadInput, ConnectionFailed
from runner.files import Migration, discover
from runner.lock import Held, migration_lock
from runner.plan import Plan, make_plan
from runner.results import Note, OnEvent

Table = str | tracking.TrackingTable | None


@contextmanager
def database_errors(what: str) -> Iterator[None]:
    """Turn an unexpected server error into one of our types, with a message that says what we did."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise ConnectionFailed(
            f"lost the connection while {what}: {db.error_text(exc)}; run `runner status` to see what was recorded"
        ) from None
    except psycopg.Error as exc:
        raise BadInput(f"the database refused {what}: {db.error_text(exc)}") from None


def notes(on_event: OnEvent | None) -> Callable[[str], None] | None:
    return (lambda text: on_event(Note(text))) if on_event else None


@contextmanager
def connections(
    database: Database, wait_for_db: float, on_event: OnEvent | None, *, lock: bool = False
) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """The connection to work on, and the one the migration lock is held on.

    A DSN gets a connection of each, so nothing a file does can touch the lock. An application's
    own connection serves as both, and is handed back open, as it came.
    """
    if isinstance(database, psycopg.Connection):
        with db.borrowed(database) as conn:
            yield conn, conn
        return
    with db.target(database, notes(on_event)) as url:
        db.wait_for(url, wait_for_db, notes(on_event))
        if lock:
            with db.lock_sessions(url) as (conn, holder):
                yield conn, holder
        else:
            with db.connect(url) as conn:
                yield conn, conn


@dataclass(frozen=True)
class Locked:
    """What a run that changes things works with, once the migration lock is ours."""

    conn: psycopg.Connection
    target: tracking.TrackingTable
    plan: Plan
    lock: Held


@contextmanager
def locked(
    database: Database, directory: str | Path, table: Table, lock_wait: float, wait_for_db: float,
    on_event: OnEvent | None, *, create: bool = True,
) -> Iterator[Locked]:  # fmt: skip
    """The state of things, read once the migration lock is ours: a runner that waited changes nothing twice.
    ``create`` makes the tracking table when there is none (not for a rollback: none means nothing to undo)."""
    files, again = read_files(directory)
    target = tracking.TrackingTable.parse(table)
    with connections(database, wait_for_db, on_event, lock=True) as (conn, holder):
        with migration_lock(holder, target.lock_key, lock_wait, notes(on_event), shared=holder is conn) as held:
            with database_errors(f"preparing the tracking table {target}"):
                plan = read_plan(conn, target, files, again, create=create)
            yield Locked(conn, target, plan, held)


def read_plan(
    conn: psycopg.Connection, target: tracking.TrackingTable, files: list[Migration], again: list[Migration],
    *, create: bool = False,
) -> Plan:  # fmt: skip
    """The plan from the tracking tables, and from the history for the files without a record (usually none),
    read in one snapshot: a file recorded between two reads would otherwise look like a record deleted by hand."""
    with one_state(conn):
        records = tracking.read(conn, target, create=create)
        recorded = {r.version for r in records}
        unrecorded = [f.version for f in files if f.version is not None and f.version not in recorded]
        again_records = repeatable.read(conn, target)
        last = history.last_actions(conn, target, unrecorded)
    return make_plan(files, records, again, again_records, last)


def read_files(directory: str | Path) -> tuple[list[Migration], list[Migration]]:
    """The numbered files, each with its down file, and the repeatable ones, all read before the database is
    touched: a stray down file is a bad input for every command, not only for the rollback that needs it."""
    folder = Path(directory)
    files = down.paired(folder, discover(folder))
    squash.check_folder(files)
    return files, repeatable.discover(folder)


@contextmanager
def one_state(conn: psycopg.Connection) -> Iterator[None]:
    """A REPEATABLE READ transaction: a snapshot and the fingerprint recorded with it describe one state of the
    catalogs, whatever commits meanwhile. Inside another transaction, that one (begun the same way): not a
    savepoint, whose rows would carry another transaction id than the one the fingerprint records."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        yield
        return
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


@contextmanager
def reading(
    database: Database, directory: str | Path, table: Table, wait_for_db: float, on_event: OnEvent | None
) -> Iterator[tuple[psycopg.Connection, tracking.TrackingTable, Plan]]:
    """The state of things, for the commands that only read: no lock, and nothing created."""
    files, again = read_files(directory)
    target = tracking.TrackingTable.parse(table)
    with connections(database, wait_for_db, on_event) as (conn, _):
        with database_errors(f"reading the tracking table {target}"):
            plan = read_plan(conn, target, files, again)
        yield conn, target, plan


def plan_of(
    database: Database, directory: str | Path, table: Table, wait_for_db: float, on_event: OnEvent | None
) -> Plan:
    with reading(database, directory, table, wait_for_db, on_event) as (_, _, plan):
        return plan
