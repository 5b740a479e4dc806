"""The library core: migrate, status and verify, shared by the CLI, application code and tests.

Data flows one way: files and database state -> a plan -> execution -> a result. Nothing
here prints or exits; progress is reported through an optional ``on_event`` callback and
failures are raised as runner.errors types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from runner import db, tracking
from runner.apply import Applied, apply
from runner.errors import BadInput, ConnectionFailed, MigrationFailed, Refused
from runner.files import discover
from runner.lock import DEFAULT_WAIT_S, migration_lock
from runner.plan import Entry, Plan, State, make_plan

DEFAULT_DIR = "sql"


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

    @property
    def drift(self) -> list[Entry]:
        return self.plan.drift

    @property
    def pending(self) -> list[Entry]:
        return self.plan.having(State.PENDING)

    @property
    def clean(self) -> bool:
        """No drift; with ``strict``, nothing pending either."""
        return not self.drift and not (self.strict and self.pending)


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


def migrate(
    dsn: str | None = None,
    directory: str | Path = DEFAULT_DIR,
    table: str | None = None,
    *,
    strict: bool = False,
    allow_out_of_order: bool = False,
    lock_wait: float = DEFAULT_WAIT_S,
    on_event: OnEvent | None = None,
) -> MigrateResult:
    """Apply every pending file in version order, each in its own transaction with its tracking row."""
    files = discover(Path(directory))
    target = tracking.TrackingTable.parse(table)
    emit = on_event or (lambda event: None)
    with db.target(dsn, _notes(on_event)) as url:
        with migration_lock(url, target.lock_key, lock_wait, _notes(on_event)), db.connect(url) as conn:
            # State is read only once the lock is ours, so a runner that waited applies nothing twice.
            with _database_errors(f"preparing the tracking table {target}"):
                plan = make_plan(files, tracking.read(conn, target, create=True))
            _refuse_drift(plan, strict, allow_out_of_order)
            warnings = plan.having(State.EDITED, State.MISSING)
            for entry in warnings:
                emit(DriftWarning(entry))
            emit(Starting(len(plan.to_run)))
            applied: list[Applied] = []
            for entry in plan.to_run:
                assert entry.file is not None
                try:
                    with _database_errors(f"applying {entry.name}"):
                        done = apply(conn, target, entry.file)
                except MigrationFailed as failure:
                    failure.applied = list(applied)
                    raise
                applied.append(done)
                emit(done)
    return MigrateResult(plan, applied, warnings)


def _read_plan(dsn: str | None, directory: str | Path, table: str | None, on_event: OnEvent | None) -> Plan:
    files = discover(Path(directory))
    target = tracking.TrackingTable.parse(table)
    with db.target(dsn, _notes(on_event)) as url, db.connect(url) as conn:
        with _database_errors(f"reading the tracking table {target}"):
            return make_plan(files, tracking.read(conn, target))


def status(
    dsn: str | None = None,
    directory: str | Path = DEFAULT_DIR,
    table: str | None = None,
    *,
    on_event: OnEvent | None = None,
) -> Plan:
    """Every migration, file or record, with its state. Changes nothing."""
    return _read_plan(dsn, directory, table, on_event)


def verify(
    dsn: str | None = None,
    directory: str | Path = DEFAULT_DIR,
    table: str | None = None,
    *,
    strict: bool = False,
    on_event: OnEvent | None = None,
) -> VerifyResult:
    """Drift between the folder and the tracking table. Changes nothing."""
    return VerifyResult(_read_plan(dsn, directory, table, on_event), strict)
