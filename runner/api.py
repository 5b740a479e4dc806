"""The library core: migrate, status and verify, shared by the CLI, application code and tests.

Data flows one way: files and database state -> a plan -> execution -> a result. Nothing
here prints or exits; progress is reported through an optional ``on_event`` callback and
failures are raised as runner.errors types.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from runner import db, directives, tracking
from runner.apply import Applied, Session
from runner.errors import BadInput, ConnectionFailed, MigrationFailed, Refused
from runner.files import discover
from runner.indexes import InvalidIndex, invalid_indexes
from runner.lock import DEFAULT_WAIT_S, migration_lock
from runner.plan import Entry, Plan, State, make_plan
from runner.preflight import Script, prepare

DEFAULT_DIR = "sql"
LOCK_NOT_AVAILABLE = "55P03"  # the SQLSTATE of a lock_timeout
_MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class Note:
    """Something worth a line on the terminal: the embedded server, waiting for the lock."""

    text: str


@dataclass(frozen=True)
class DriftWarning:
    """An applied migration whose file was edited or is gone; the run goes on."""

    entry: Entry


@dataclass(frozen=True)
class Starting:
    count: int


Event = Note | DriftWarning | Starting | Applied
OnEvent = Callable[[Event], None]


@dataclass(frozen=True)
class MigrateResult:
    plan: Plan  # as found before this run
    applied: list[Applied] = field(default_factory=list)
    warnings: list[Entry] = field(default_factory=list)


@dataclass(frozen=True)
class VerifyResult:
    plan: Plan
    strict: bool = False
    invalid_indexes: list[InvalidIndex] = field(default_factory=list)

    @property
    def drift(self) -> list[Entry]:
        return self.plan.drift

    @property
    def pending(self) -> list[Entry]:
        return self.plan.having(State.PENDING)

    @property
    def clean(self) -> bool:
        """No drift and no INVALID index; with ``strict``, nothing pending either."""
        return not self.drift and not self.invalid_indexes and not (self.strict and self.pending)


@contextmanager
def _database_errors(what: str) -> Iterator[None]:
    """Turn an unexpected server error into one of our types, with a message that says what we did."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise ConnectionFailed(
            f"lost the connection while {what}: {db.error_text(exc)}; run `runner status` to see what was recorded"
        ) from None
    except psycopg.Error as exc:
        raise BadInput(f"the database refused {what}: {db.error_text(exc)}") from None


def _notes(on_event: OnEvent | None) -> Callable[[str], None] | None:
    return (lambda text: on_event(Note(text))) if on_event else None


def _refuse_drift(plan: Plan, strict: bool, allow_out_of_order: bool) -> None:
    changed = plan.having(State.EDITED, State.MISSING)
    if strict and changed:
        listed = "; ".join(f"{e.name} ({e.state}: {e.detail})" for e in changed)
        raise Refused(
            f"--strict: {len(changed)} applied migration(s) changed since they ran: {listed}. "
            "Nothing was applied; run `runner verify` for details"
        )
    late = plan.having(State.OUT_OF_ORDER)
    if late and not allow_out_of_order:
        listed = ", ".join(e.name for e in late)
        newest = max(e.version for e in plan.entries if e.record is not None)
        raise Refused(
            f"{listed}: not applied and older than the newest applied version {newest} (merged out of order). "
            f"Nothing was applied; give the file(s) a version above {newest}, or pass --allow-out-of-order"
        )


def _settings(lock_timeout: str | None, statement_timeout: str | None) -> dict[str, str]:
    given = {
        "lock_timeout": ("--lock-timeout", lock_timeout),
        "statement_timeout": ("--statement-timeout", statement_timeout),
    }
    return {name: directives.setting_value(value, option) for name, (option, value) in given.items() if value}


def _apply(session: Session, script: Script, retries: int, emit: OnEvent) -> Applied:
    """Apply one file, retrying from a fresh transaction when it only gave up waiting for a lock."""
    attempt = 1
    while True:
        try:
            with _lost_connection(script):
                return session.apply(script)
        except MigrationFailed as failure:
            retryable = failure.details.get("sqlstate") == LOCK_NOT_AVAILABLE and not failure.details.get(
                "statements_kept"
            )
            if not retryable or attempt > retries:
                raise
            delay = min(2.0 ** (attempt - 1), _MAX_BACKOFF_S)
            emit(Note(f"{script.name} gave up waiting for a lock (lock_timeout) and was rolled back; "
                      f"retrying in {delay:g}s (attempt {attempt + 1} of {retries + 1})"))  # fmt: skip
            time.sleep(delay)
            attempt += 1


@contextmanager
def _lost_connection(script: Script) -> Iterator[None]:
    try:
        yield
    except psycopg.OperationalError as exc:
        kept = (
            "statements of it may have run and been kept (it runs without a transaction)"
            if script.no_transaction
            else "PostgreSQL rolls back a transaction whose connection is lost before it commits, so it is either "
            "applied and recorded or not at all"
        )
        raise ConnectionFailed(
            f"lost the connection while applying {script.name}: {db.error_text(exc)}; {kept}. "
            "Run `runner status` to see what was recorded, then `runner migrate` again"
        ) from None
    except psycopg.Error as exc:
        raise BadInput(f"the database refused what runner sent for {script.name}: {db.error_text(exc)}") from None


def migrate(
    dsn: str | None = None,
    directory: str | Path = DEFAULT_DIR,
    table: str | None = None,
    *,
    strict: bool = False,
    allow_out_of_order: bool = False,
    lock_wait: float = DEFAULT_WAIT_S,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    retries: int = 0,
    wait_for_db: float = 0,
    on_event: OnEvent | None = None,
) -> MigrateResult:
    """Apply every pending file in version order, each in its own transaction with its tracking row.

    ``lock_timeout`` and ``statement_timeout`` are durations such as ``"5s"``; ``retries`` re-runs a
    file that failed on lock_timeout; ``wait_for_db`` is how many seconds to wait for the server.
    """
    files = discover(Path(directory))
    target = tracking.TrackingTable.parse(table)
    settings = _settings(lock_timeout, statement_timeout)
    emit = on_event or (lambda event: None)
    with db.target(dsn, _notes(on_event)) as url:
        db.wait_for(url, wait_for_db, _notes(on_event))
        with migration_lock(url, target.lock_key, lock_wait, _notes(on_event)), db.connect(url) as conn:
            # State is read only once the lock is ours, so a runner that waited applies nothing twice.
            with _database_errors(f"preparing the tracking table {target}"):
                plan = make_plan(files, tracking.read(conn, target, create=True))
            _refuse_drift(plan, strict, allow_out_of_order)
            # Every pending file is checked before the first one runs.
            scripts = [prepare(entry.file) for entry in plan.to_run if entry.file is not None]
            warnings = plan.having(State.EDITED, State.MISSING)
            for entry in warnings:
                emit(DriftWarning(entry))
            emit(Starting(len(scripts)))
            applied = _apply_all(conn, target, settings, scripts, retries, emit) if scripts else []
    return MigrateResult(plan, applied, warnings)


def _apply_all(
    conn: psycopg.Connection, target: tracking.TrackingTable, settings: dict[str, str], scripts: list[Script],
    retries: int, emit: OnEvent,
) -> list[Applied]:  # fmt: skip
    """Apply the scripts in order; a failure carries the files this run had applied before it."""
    with _database_errors("setting up the session"):
        session = Session(conn, target, settings)
    applied: list[Applied] = []
    for script in scripts:
        try:
            done = _apply(session, script, retries, emit)
        except MigrationFailed as failure:
            failure.applied = list(applied)
            raise
        applied.append(done)
        emit(done)
    return applied


def _read(
    dsn: str | None, directory: str | Path, table: str | None, wait_for_db: float, on_event: OnEvent | None,
    *, indexes: bool = False,
) -> tuple[Plan, list[InvalidIndex]]:  # fmt: skip
    files = discover(Path(directory))
    target = tracking.TrackingTable.parse(table)
    with db.target(dsn, _notes(on_event)) as url:
        db.wait_for(url, wait_for_db, _notes(on_event))
        with db.connect(url) as conn, _database_errors(f"reading the tracking table {target}"):
            return make_plan(files, tracking.read(conn, target)), invalid_indexes(conn) if indexes else []


def status(
    dsn: str | None = None,
    directory: str | Path = DEFAULT_DIR,
    table: str | None = None,
    *,
    wait_for_db: float = 0,
    on_event: OnEvent | None = None,
) -> Plan:
    """Every migration, file or record, with its state. Changes nothing."""
    return _read(dsn, directory, table, wait_for_db, on_event)[0]


def verify(
    dsn: str | None = None,
    directory: str | Path = DEFAULT_DIR,
    table: str | None = None,
    *,
    strict: bool = False,
    wait_for_db: float = 0,
    on_event: OnEvent | None = None,
) -> VerifyResult:
    """Drift between the folder and the tracking table, and INVALID indexes. Changes nothing."""
    plan, invalid = _read(dsn, directory, table, wait_for_db, on_event, indexes=True)
    return VerifyResult(plan, strict, invalid)
