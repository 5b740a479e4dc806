"""The library core: migrate, status and verify, shared by the CLI, application code and tests.

Data flows one way: files and database state -> a plan -> execution -> a result. Nothing
here prints or exits; progress is reported through an optional ``on_event`` callback and
failures are raised as runner.errors types.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from runner import db, directives, down, history, manual, repeatable, schema, squash, tracking, undo
from runner import schema_file as dumps
from runner.apply import LOCK_NOT_AVAILABLE, Applied, Session, Skipped
from runner.db import Database
from runner.errors import BadInput, ConnectionFailed, LockLost, MigrationFailed, Refused, RunnerError
from runner.files import NAME_RULE, Migration, discover
from runner.indexes import InvalidIndex, invalid_indexes
from runner.lock import DEFAULT_WAIT_S, Held, migration_lock
from runner.plan import Entry, Plan, State, make_plan
from runner.preflight import Script, prepare
from runner.undo import RolledBack
from runner.variables import check as check_variables

DEFAULT_DIR = "sql"
# The tracking table: its name, ``[schema.]name``, or a tenant's tables (``TrackingTable.of_tenant``).
Table = str | tracking.TrackingTable | None
SCHEMA = "(schema)"  # the name of `runner accept --schema` in the history
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
class SchemaWarning:
    """The schema changed outside runner since the last run: said before new files are applied."""

    difference: schema.Difference


@dataclass(frozen=True)
class Starting:
    count: int


@dataclass(frozen=True)
class Applying:
    """A file is about to be sent: a progress display can name it while the server runs it."""

    name: str
    index: int  # 1-based, of ``total`` in this run
    total: int


Event = Note | DriftWarning | SchemaWarning | Starting | Applying | Applied | Skipped
OnEvent = Callable[[Event], None]


@dataclass(frozen=True)
class MigrateResult:
    plan: Plan  # as found before this run
    applied: list[Applied] = field(default_factory=list)
    warnings: list[Entry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # applied by another runner while this one ran
    schema_file: Path | None = None  # rewritten after this run: the schema changed


@dataclass(frozen=True)
class VerifyResult:
    plan: Plan
    strict: bool = False
    invalid_indexes: list[InvalidIndex] = field(default_factory=list)
    schema_drift: list[schema.Difference] = field(default_factory=list)
    schema_recorded: bool = True  # False: no snapshot yet, so schema drift could not be checked

    @property
    def drift(self) -> list[Entry]:
        """Edits to comments or whitespace only are drift only with ``strict``."""
        return [e for e in self.plan.drift if self.strict or not e.harmless]

    @property
    def harmless(self) -> list[Entry]:
        return [e for e in self.plan.drift if e.harmless and not self.strict]

    @property
    def pending(self) -> list[Entry]:
        """Files the next migrate runs: new ones, and repeatable files changed since they last ran."""
        return self.plan.having(State.PENDING, State.OUTDATED)

    @property
    def clean(self) -> bool:
        """No drift and no INVALID index; with ``strict``, nothing pending either."""
        return not (self.drift or self.invalid_indexes or self.schema_drift or (self.strict and self.pending))


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
    for entry in plan.having(State.INCOMPLETE):
        raise Refused(f"{entry.name} (squashed): {entry.detail}. Nothing was applied")
    deleted = plan.having(State.DELETED)
    if deleted:
        first = deleted[0]
        raise Refused(
            f"{', '.join(e.name for e in deleted)}: {first.detail}. Nothing was applied. If its changes are in the "
            f"database, `runner mark {first.version}` restores the record; to run it again, `runner unmark "
            f"{first.version}` first"
        )
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
        newest = plan.newest
        raise Refused(
            f"{listed}: not applied and older than the newest applied version {newest} (merged out of order). "
            f"Nothing was applied; give the file(s) a version above {newest}, or pass --allow-out-of-order"
        )


def _settings(database: Database, lock_timeout: str | None, statement_timeout: str | None) -> dict[str, str]:
    """What each file (or down file) starts from, sent again after the reset that follows each one."""
    given = {
        "lock_timeout": ("--lock-timeout", lock_timeout),
        "statement_timeout": ("--statement-timeout", statement_timeout),
    }
    settings = {name: directives.setting_value(value, option) for name, (option, value) in given.items() if value}
    if isinstance(database, psycopg.Connection):  # RESET ALL takes it back to the encoding it was opened with
        settings["client_encoding"] = "UTF8"
    return settings


_Done = TypeVar("_Done")


def _retrying(script: Script, retries: int, emit: OnEvent, run: Callable[[], _Done]) -> _Done:
    """Run one file (``run``: apply it, or its down file), again from a fresh transaction when it only gave up
    waiting for a lock."""
    attempt = 1
    while True:
        try:
            with _lost_connection(script):
                return run()
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
        undoing = script.name.startswith(down.PREFIX)  # a down file, run by rollback
        kept = (
            "statements of it may have run and been kept (it runs without a transaction)"
            if script.no_transaction
            else "PostgreSQL rolls back a transaction whose connection is lost before it commits, so it is either "
            f"{'undone and unrecorded' if undoing else 'applied and recorded'} or not at all"
        )
        raise ConnectionFailed(
            f"lost the connection while {'running' if undoing else 'applying'} {script.name}: {db.error_text(exc)}; "
            f"{kept}. Run `runner status` to see what was recorded, then `runner "
            f"{'rollback' if undoing else 'migrate'}` again"
        ) from None
    except psycopg.Error as exc:
        raise BadInput(f"the database refused what runner sent for {script.name}: {db.error_text(exc)}") from None


@contextmanager
def _connections(
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
    with db.target(database, _notes(on_event)) as url:
        db.wait_for(url, wait_for_db, _notes(on_event))
        if lock:
            with db.lock_sessions(url) as (conn, holder):
                yield conn, holder
        else:
            with db.connect(url) as conn:
                yield conn, conn


@dataclass(frozen=True)
class _Locked:
    """What a run that changes things works with, once the migration lock is ours."""

    conn: psycopg.Connection
    target: tracking.TrackingTable
    plan: Plan
    lock: Held


@contextmanager
def _locked(
    database: Database, directory: str | Path, table: Table, lock_wait: float, wait_for_db: float,
    on_event: OnEvent | None, *, create: bool = True,
) -> Iterator[_Locked]:  # fmt: skip
    """The state of things, read once the migration lock is ours: a runner that waited changes nothing twice.
    ``create`` makes the tracking table when there is none (not for a rollback: none means nothing to undo)."""
    files, again = _files(directory)
    target = tracking.TrackingTable.parse(table)
    with _connections(database, wait_for_db, on_event, lock=True) as (conn, holder):
        with migration_lock(holder, target.lock_key, lock_wait, _notes(on_event), shared=holder is conn) as held:
            with _database_errors(f"preparing the tracking table {target}"):
                plan = _read_plan(conn, target, files, again, create=create)
            yield _Locked(conn, target, plan, held)


def _read_plan(
    conn: psycopg.Connection, target: tracking.TrackingTable, files: list[Migration], again: list[Migration],
    *, create: bool = False,
) -> Plan:  # fmt: skip
    """The plan from the tracking tables, and from the history for the files without a record (usually none),
    read in one snapshot: a file recorded between two reads would otherwise look like a record deleted by hand."""
    with _one_state(conn):
        records = tracking.read(conn, target, create=create)
        recorded = {r.version for r in records}
        unrecorded = [f.version for f in files if f.version is not None and f.version not in recorded]
        again_records = repeatable.read(conn, target)
        last = history.last_actions(conn, target, unrecorded)
    return make_plan(files, records, again, again_records, last)


def _files(directory: str | Path) -> tuple[list[Migration], list[Migration]]:
    """The numbered files, each with its down file, and the repeatable ones, all read before the database is
    touched: a stray down file is a bad input for every command, not only for the rollback that needs it."""
    folder = Path(directory)
    files = down.paired(folder, discover(folder))
    squash.check_folder(files)
    return files, repeatable.discover(folder)


def _up_to(plan: Plan, to: int | None) -> list[Entry]:
    """What to run: with ``to``, the numbered files up to it, and the repeatable files only if that
    leaves no numbered file behind (they are written against the newest schema)."""
    if to is None:
        return plan.to_run
    if not any(e.version == to and e.file is not None for e in plan.entries):
        raise BadInput(f"--to {to}: no migration file has this version; see `runner status`")
    numbered = [e for e in plan.to_run if e.version is not None and e.version <= to]
    held_back = any(e.version is not None and e.version > to for e in plan.to_run)
    return numbered + ([] if held_back else [e for e in plan.to_run if e.repeatable])


def _checks(
    conn: psycopg.Connection, target: tracking.TrackingTable, plan: Plan, strict: bool, allow_out_of_order: bool,
    to: int | None, values: Mapping[str, str], *, checksums: bool = False,
) -> tuple[list[Script], _SchemaCheck]:  # fmt: skip
    """What migrate checks before anything runs, shared with plan so the two never disagree.

    Every file to run is checked, with ``values`` substituted for its psql variables, and the schema
    compared with the recorded one (only when something is to run: the no-op path reads no snapshot).
    With ``checksums``, the code checksums the records carry are worked out meanwhile.
    """
    _refuse_drift(plan, strict, allow_out_of_order)
    own = _own(target)
    scripts = [prepare(entry.file, own, values) for entry in _up_to(plan, to) if entry.file is not None]
    if checksums and scripts:
        # The costliest part of a record (pglast is imported, then parses without the GIL): on another
        # thread, while the server compares the schema and runs the first files.
        threading.Thread(target=_code_checksums, args=([s.migration for s in scripts],), daemon=True).start()
    return scripts, _schema_check(conn, target) if scripts else _SchemaCheck([])


def migrate(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    strict: bool = False,
    allow_out_of_order: bool = False,
    to: int | None = None,
    lock_wait: float = DEFAULT_WAIT_S,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    retries: int = 0,
    wait_for_db: float = 0,
    variables: Mapping[str, str] | None = None,
    schema_file: Path | None = None,
    on_event: OnEvent | None = None,
) -> MigrateResult:
    """Apply every pending file in version order (up to ``to``), each in its own transaction with its tracking row.

    ``lock_timeout`` and ``statement_timeout`` are durations such as ``"5s"``; ``retries`` re-runs a
    file that failed on lock_timeout; ``wait_for_db`` is how many seconds to wait for the server.
    ``variables`` are the values of the psql variables the files use (``:name``; see runner.variables):
    a pending file that uses one without a value is refused before anything runs. ``schema_file`` is rewritten
    (runner dump) once files are applied; a failure to write it is a warning, since the files are applied.
    """
    values = check_variables(variables or {}, "variables:")
    settings = _settings(database, lock_timeout, statement_timeout)
    emit = on_event or (lambda event: None)
    with _locked(database, directory, table, lock_wait, wait_for_db, on_event) as run:
        conn, target, plan = run.conn, run.target, run.plan
        _tenant_path(run, settings)
        scripts, before = _checks(conn, target, plan, strict, allow_out_of_order, to, values, checksums=True)
        warnings = plan.having(State.EDITED, State.MISSING)
        for entry in warnings:
            emit(DriftWarning(entry))
        for difference in before.differences or []:
            emit(SchemaWarning(difference))
        for entry in plan.having(State.PENDING):
            if entry.unmarked and any(s.migration is entry.file for s in scripts):
                emit(Note(f"{entry.name} was {entry.detail}"))
        emit(Starting(len(scripts)))
        try:
            done = _apply_all(run, settings, scripts, retries, emit) if scripts else []
        except (RunnerError, KeyboardInterrupt) as stopped:
            _record_kept(run, stopped, before)
            raise
        applied = [d for d in done if isinstance(d, Applied)]
        if applied or not schema.exists(conn, target.companion(schema.SUFFIX).identifier):
            _stopped_if_lost(run.lock, applied, [])
            _record_schema(conn, target, before, raced=lambda: _stopped_if_lost(run.lock, applied, []))
        written = _rewrite(conn, target, directory, schema_file, emit) if applied and schema_file else None
    return MigrateResult(plan, applied, warnings, [d for d in done if isinstance(d, Skipped)], written)


def _record_kept(run: _Locked, stopped: BaseException, before: _SchemaCheck) -> list[Applied]:
    """After a run a failure stopped: the files it applied before that one did the files' work, not drift, so the
    schema is recorded for them (not after a lost lock: the runner holding it now records it). Those files."""
    applied = [a for a in getattr(stopped, "applied", []) if isinstance(a, Applied)]
    if applied and not isinstance(stopped, LockLost) and not (run.conn.broken or run.conn.closed):
        with suppress(RunnerError, psycopg.Error):
            _record_schema(run.conn, run.target, before)
    return applied


def _tenant_path(run: _Locked, settings: dict[str, str]) -> None:
    """A tenant's files (and down files) run with its schema first on search_path: their unqualified names are its."""
    if run.target.tenant:
        settings["search_path"] = f"{sql.Identifier(run.target.schema).as_string(run.conn)}, public"


def _rewrite(
    conn: psycopg.Connection, target: tracking.TrackingTable, directory: str | Path, path: Path, emit: OnEvent
) -> Path | None:
    """The schema file after a run that applied files, while the lock is held; the path if it changed."""
    try:
        return path if dumps.write(path, _schema_file(conn, target, directory)) else None
    except BadInput as failure:
        emit(Note(f"the run is done and recorded, but the schema file {path} was not rewritten: {failure}"))
        return None


def _own(target: tracking.TrackingTable) -> list[tracking.TrackingTable]:
    return [target, history.table_of(target), repeatable.table_of(target), target.companion(schema.SUFFIX)]


def _own_tables(target: tracking.TrackingTable) -> list[str]:
    return [str(t) for t in _own(target)]


def _live_schema(conn: psycopg.Connection, target: tracking.TrackingTable) -> schema.Snapshot:
    with _database_errors("reading the schema from the catalogs"):
        return schema.snapshot(conn, _own_tables(target), target.scope)


@dataclass(frozen=True)
class _SchemaCheck:
    """The recorded schema compared with the live one, before any file runs."""

    differences: list[schema.Difference] | None  # None: no schema is recorded yet
    recorded: schema.Snapshot | None = None  # both read only when the fingerprints differ
    live: schema.Snapshot | None = None
    since: schema.Since | None = None  # the catalogs were as recorded when this was read


def _schema_check(conn: psycopg.Connection, target: tracking.TrackingTable) -> _SchemaCheck:
    """How the live schema differs from the recorded one.

    The usual answer, nothing, comes from comparing fingerprints, without reading either snapshot. The
    tables of other runners in the database are left out of both sides, even of a snapshot recorded
    before runner left them out.
    """
    table = target.companion(schema.SUFFIX).identifier
    with _database_errors("reading the recorded schema"):
        since = schema.unchanged(conn, table, target.scope)
        if since is not None:
            return _SchemaCheck([], since=since)
        recorded = schema.load(conn, table)
        if recorded is None:
            return _SchemaCheck(None)
        recorded = schema.without(recorded, *schema.runners(conn, target.scope))
    live = _live_schema(conn, target)
    return _SchemaCheck(schema.differences(recorded, live), recorded, live)


def _schema_drift(conn: psycopg.Connection, target: tracking.TrackingTable) -> list[schema.Difference] | None:
    """How the live schema differs from the recorded one; None when none is recorded."""
    return _schema_check(conn, target).differences


def _record_schema(
    conn: psycopg.Connection, target: tracking.TrackingTable, before: _SchemaCheck | None = None,
    raced: Callable[[], None] = lambda: None,
) -> None:  # fmt: skip
    """The schema as the files leave it: what verify compares the live catalog with.

    When the record was the live schema before this run (``before.since``), only the objects written
    since are read again. A change made outside runner before this run is not the files' work, and stays
    drift until `runner accept --schema`: the objects this run changed are recorded as they are now, the
    rest as they were recorded, with no fingerprint (it would say the live schema is the recorded one).
    Another runner recording at the same moment (one of the two lost its lock) fails this transaction:
    ``raced`` stops a runner whose lock is gone, and one that holds it reads the schema whole.
    """
    table = target.companion(schema.SUFFIX).identifier
    with _database_errors("recording the schema"):
        try:
            with _one_state(conn):
                _record(conn, target, table, before)
        except psycopg.errors.SerializationFailure:
            raced()
            with _one_state(conn):
                _record(conn, target, table, replace(before, since=None) if before is not None else None)


def _record(
    conn: psycopg.Connection, target: tracking.TrackingTable, table: sql.Identifier, before: _SchemaCheck | None
) -> None:
    if before is not None and before.since is not None:
        schema.refresh(conn, table, _own_tables(target), before.since, target.scope)
        return
    live, anchors = schema.taken(conn, _own_tables(target), target.scope)
    if before is not None and before.differences and before.recorded is not None and before.live is not None:
        schema.save(conn, table, schema.carried(before.recorded, before.live, live))
        return
    schema.save(conn, table, live, anchors, target.scope)


@contextmanager
def _one_state(conn: psycopg.Connection) -> Iterator[None]:
    """A REPEATABLE READ transaction: a snapshot and the fingerprint recorded with it describe one state of the
    catalogs, whatever commits meanwhile. Inside another transaction, that one (begun the same way): not a
    savepoint, whose rows would carry another transaction id than the one the fingerprint records."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        yield
        return
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _apply_all(
    run: _Locked, settings: dict[str, str], scripts: list[Script], retries: int, emit: OnEvent
) -> list[Applied | Skipped]:
    """Apply the scripts in order; a failure carries the files this run had applied before it.

    The lock is checked before each file: a runner whose lock session ended stops there (LockLost),
    since another runner may hold the lock by now.
    """
    conn, target = run.conn, run.target
    with _database_errors("setting up the session"):
        tracking.upgrade(conn, target)
        history.ensure(conn, target)
        if any(s.migration.version is None for s in scripts):
            repeatable.ensure(conn, target)
        session = Session(conn, target, settings, run.lock, lambda text: emit(Note(text)))
    done: list[Applied | Skipped] = []
    applied: list[Applied] = []
    for index, script in enumerate(scripts, 1):
        _stopped_if_lost(run.lock, applied, scripts[index - 1 :])
        try:
            emit(Applying(script.name, index, len(scripts)))
            result = _retrying(script, retries, emit, partial(session.apply, script))
        except MigrationFailed as failure:
            failure.applied = list(applied)
            _log_failure(conn, target, script, failure)
            raise
        except LockLost as lost:  # inside a no-transaction file, before one of its statements
            _log_failure(conn, target, script, lost)
            raise _stopped(lost, applied, scripts[index - 1 :]) from None
        done.append(result)
        if isinstance(result, Applied):
            applied.append(result)
        emit(result)
    return done


def _stopped_if_lost(lock: Held, applied: list[Applied], left: list[Script]) -> None:
    try:
        lock.check()
    except LockLost as lost:
        raise _stopped(lost, applied, left) from None


def _stopped(lost: LockLost, applied: list[Applied], left: list[Script]) -> LockLost:
    """What a runner that lost its lock did and did not do, in one message."""
    names = [a.name for a in applied]
    did = f"this run applied {_listed(names)}" if names else "this run applied nothing"
    if left:
        more = f" and {len(left) - 1} later file(s)" if len(left) > 1 else ""
        rest = f"; {left[0].name}{more} were not applied by it, and another runner may be applying them now"
    else:
        rest = ", every file it had to run, but did not record the schema: the runner that holds the lock now does"
    stopped = LockLost(f"lost the migration lock: {lost}. Stopped: {did}{rest}. See `runner status`")
    stopped.applied = list(applied)
    return stopped


def _listed(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _code_checksums(migrations: list[Migration]) -> None:
    for migration in migrations:
        _ = migration.code_checksum  # computed once and kept by the Migration


def _log_failure(
    conn: psycopg.Connection, target: tracking.TrackingTable, script: Script, failure: Exception,
    action: str = "apply", step: undo.Step | None = None,
) -> None:  # fmt: skip
    """A failed attempt goes into the history too; if even that fails, the error itself is what matters. For a
    rollback (``step``), the row names the migration its down file failed to undo."""
    migration = step.entry.file if step is not None and step.entry.file is not None else script.migration
    old, new = (migration.checksum, None) if step is not None else (None, migration.checksum)
    try:
        conn.execute(history.insert_statement(conn, target, action, migration.version, migration.name, old, new,
                                              error=str(failure), variables=script.variables))  # fmt: skip
    except psycopg.Error:
        pass


def _by_hand(
    what: Callable[[psycopg.Connection, tracking.TrackingTable, Plan], list[manual.Change]],
    database: Database, directory: str | Path, table: Table, on_event: OnEvent | None,
) -> list[manual.Change]:  # fmt: skip
    with _locked(database, directory, table, DEFAULT_WAIT_S, 0, on_event) as run:
        conn, target, plan = run.conn, run.target, run.plan
        with _database_errors(f"changing {target}"):
            tracking.upgrade(conn, target)
            history.ensure(conn, target)
            changes = what(conn, target, plan)
        if any(c.action != "unmark" for c in changes):  # the database now matches these files, as it is
            _record_schema(conn, target)
        return changes


def accept(database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None,
           files: list[str] | None = None, *, on_event: OnEvent | None = None) -> list[manual.Change]:  # fmt: skip
    """Record the new checksum of applied files edited on purpose (all edited files when ``files`` is None)."""
    return _by_hand(lambda c, t, p: manual.accept(c, t, p, files), database, directory, table, on_event)


def accept_schema(database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None,
                  *, on_event: OnEvent | None = None) -> list[schema.Difference]:  # fmt: skip
    """Record the live schema as it is: the changes made outside runner are accepted on purpose, and verify stops
    reporting them. Returns those changes."""
    with _locked(database, directory, table, DEFAULT_WAIT_S, 0, on_event) as run:
        accepted = _schema_drift(run.conn, run.target) or []
        with _database_errors(f"changing {run.target}"), _one_state(run.conn):
            history.ensure(run.conn, run.target)
            run.conn.execute(history.insert_statement(run.conn, run.target, "accept", None, SCHEMA, None, None))
            _record_schema(run.conn, run.target)
    return accepted


def mark(database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None,
         versions: list[str] | None = None, *, on_event: OnEvent | None = None) -> list[manual.Change]:  # fmt: skip
    """Record files as applied without running them: a DBA already ran them by hand."""
    return _by_hand(lambda c, t, p: manual.mark(c, t, p, versions or []), database, directory, table, on_event)


def baseline(database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None,
             version: int = 0, *, on_event: OnEvent | None = None) -> list[manual.Change]:  # fmt: skip
    """Adopt an existing database: mark every file up to and including ``version``."""
    return _by_hand(lambda c, t, p: manual.baseline(c, t, p, version), database, directory, table, on_event)


def unmark(database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None,
           versions: list[str] | None = None, *, on_event: OnEvent | None = None) -> list[manual.Change]:  # fmt: skip
    """Forget records, so their files run again."""
    return _by_hand(lambda c, t, p: manual.unmark(c, t, p, versions or []), database, directory, table, on_event)


def history_events(database: Database = None, table: Table = None, limit: int | None = None,
                   *, on_event: OnEvent | None = None) -> list[history.Event]:  # fmt: skip
    """The history, oldest first: what was applied, accepted, marked or unmarked, by whom and when."""
    target = tracking.TrackingTable.parse(table)
    with _connections(database, 0, on_event) as (conn, _):
        with _database_errors(f"reading the history of {target}"):
            return history.read(conn, target, limit)


@dataclass(frozen=True)
class Step:
    """One file a migrate run would apply, and how."""

    version: int | None  # None: a repeatable file
    name: str
    no_transaction: bool
    statements: int | None  # None when the parser cannot split the file: see failure
    wrapper_removed: bool
    settings: dict[str, str]
    failure: str | None = None  # why the parser rejects the file, with the line: migrate would fail there


@dataclass(frozen=True)
class DryRun:
    plan: Plan
    steps: list[Step]
    warnings: list[Entry]
    schema_warnings: list[schema.Difference] = field(default_factory=list)


def _step(script: Script) -> Step:
    """How a file would run; migrate lets the server judge the SQL, plan asks pglast, a part at a time."""
    from runner.preflight import parse_parts

    count, failure = parse_parts(script)
    return Step(script.migration.version, script.name, script.no_transaction, count, script.wrapper_removed,
                script.settings, failure)  # fmt: skip


def dry_run(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    strict: bool = False,
    allow_out_of_order: bool = False,
    to: int | None = None,
    wait_for_db: float = 0,
    variables: Mapping[str, str] | None = None,
    on_event: OnEvent | None = None,
) -> DryRun:
    """What migrate would do, with every check and warning it would give; changes nothing."""
    values = check_variables(variables or {}, "variables:")
    with _connected(database, directory, table, wait_for_db, on_event) as (conn, target, plan):
        scripts, before = _checks(conn, target, plan, strict, allow_out_of_order, to, values)
    return DryRun(plan, [_step(s) for s in scripts], plan.having(State.EDITED, State.MISSING), before.differences or [])


def lint(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    files: list[str] | None = None,
    *,
    project: Path | None = None,
    variables: Mapping[str, str] | None = None,
    on_event: OnEvent | None = None,
) -> list[Any]:
    """squawk's findings on ``files``, or on the pending files when none are named (that needs the database).

    The rule set comes from ``[tool.runner.lint]`` in the project's pyproject.toml. The files are linted
    with ``variables`` substituted, as migrate would send them; BadInput for a variable without a value.
    """
    values = check_variables(variables or {}, "variables:")
    from runner import lint as linter
    from runner.files import parse_name, read_migration

    if files:
        migrations = []
        for name in files:
            path = Path(name)
            again = path.parent.name == repeatable.FOLDER and path.suffix == ".sql"
            version = parse_name(path.name)
            if (version is None and not again) or not path.is_file():
                raise BadInput(f"{name}: not a migration file (expected an existing {NAME_RULE}, "
                               f"or a file of a {repeatable.FOLDER}/ folder)")  # fmt: skip
            prefix = repeatable.PREFIX if again else down.PREFIX if path.parent.name == down.FOLDER else ""
            migrations.append(read_migration(path, None if again else version, prefix + path.name))
    else:  # the pending files, and the down files that would undo them
        plan = _read(database, directory, table, 0, on_event)
        pending = [e.file for e in plan.to_run if e.file is not None]
        migrations = [*pending, *(f.down for f in pending if f.down is not None)]
    return linter.lint(migrations, values, **linter.config(project or Path.cwd()))


def shell(dsn: str | None = None, args: list[str] | None = None, *, on_event: OnEvent | None = None) -> int:
    """Run psql on the target database (the embedded server stays up while it runs); psql's exit code."""
    from runner import shell as psql

    with db.target(dsn, _notes(on_event)) as url:
        return psql.run(url, args or [])


@contextmanager
def _connected(
    database: Database, directory: str | Path, table: Table, wait_for_db: float, on_event: OnEvent | None
) -> Iterator[tuple[psycopg.Connection, tracking.TrackingTable, Plan]]:
    """The state of things, for the commands that only read: no lock, and nothing created."""
    files, again = _files(directory)
    target = tracking.TrackingTable.parse(table)
    with _connections(database, wait_for_db, on_event) as (conn, _):
        with _database_errors(f"reading the tracking table {target}"):
            plan = _read_plan(conn, target, files, again)
        yield conn, target, plan


def _read(
    database: Database, directory: str | Path, table: Table, wait_for_db: float, on_event: OnEvent | None
) -> Plan:
    with _connected(database, directory, table, wait_for_db, on_event) as (_, _, plan):
        return plan


def status(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    wait_for_db: float = 0,
    on_event: OnEvent | None = None,
) -> Plan:
    """Every migration, file or record, with its state. Changes nothing."""
    return _read(database, directory, table, wait_for_db, on_event)


def verify(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    strict: bool = False,
    wait_for_db: float = 0,
    on_event: OnEvent | None = None,
) -> VerifyResult:
    """Drift between the folder and the tracking table, and INVALID indexes. Changes nothing."""
    with _connected(database, directory, table, wait_for_db, on_event) as (conn, target, plan):
        with _database_errors("looking for INVALID indexes"):
            invalid = invalid_indexes(conn, target.scope)
        drift = _schema_drift(conn, target)
    return VerifyResult(plan, strict, invalid, drift or [], drift is not None)


def diff(
    dsn: str | None = None, against: str = "", table: Table = None, *, on_event: OnEvent | None = None
) -> list[schema.Difference]:
    """How the schema of the database ``against`` differs from this one's (runner's own tables left out)."""
    target = tracking.TrackingTable.parse(table)
    with db.target(dsn, _notes(on_event)) as url, db.connect(url) as here, db.connect(against) as there:
        return schema.differences(_live_schema(here, target), _live_schema(there, target))


def _schema_file(conn: psycopg.Connection, target: tracking.TrackingTable, directory: str | Path | None) -> str:
    """The schema file of the database of ``conn`` (see runner.schema_file), with the tracking rows a database
    built from the files of ``directory`` would have (after a squash, the squashed file's)."""
    with _database_errors(f"reading the tracking table {target}"):
        records, again = tracking.read(conn, target), repeatable.read(conn, target)
    if directory is not None:
        records = squash.as_built(discover(Path(directory)), records)
    return dumps.schema_text(conn, target, _own(target), records, again)


def dump(
    database: Database = None, table: Table = None, directory: str | Path | None = None, *,
    on_event: OnEvent | None = None,
) -> str:  # fmt: skip
    """The schema file of the target database: its schema as pg_dump 18 writes it, without the lines that vary
    from run to run, and the tracking rows, so that a database loaded from it is up to date. The rows are the
    ones a database built from the files of ``directory`` would hold (None: as recorded)."""
    target = tracking.TrackingTable.parse(table)
    with _connections(database, 0, on_event) as (conn, _):
        return _schema_file(conn, target, directory)


@dataclass(frozen=True)
class SchemaCheck:
    """The committed schema file compared with the one the folder builds."""

    path: Path
    differences: list[str]  # a unified diff, committed -> built; empty when they are equal
    written_from: int | None  # the server major version of the committed file
    built_on: int  # of the scratch database
    reprinted: bool = False  # equal only once both were loaded and dumped again (see schema_file.reprinted)

    @property
    def same(self) -> bool:
        return not self.differences or self.reprinted


def check_dump(
    dsn: str | None = None, directory: str | Path = DEFAULT_DIR, table: Table = None, *, schema_file: Path,
    variables: Mapping[str, str] | None = None, on_event: OnEvent | None = None,
) -> SchemaCheck:  # fmt: skip
    """Build the folder in a scratch database on the server of ``dsn`` (the embedded one without), dump it and
    compare with ``schema_file``. The target database itself is not touched.

    A file written from a database that was loaded from a schema file prints some expressions another way
    (dump.reprinted): when the two differ, both are loaded and dumped again, and equal then is equal.
    """
    import difflib

    committed = dumps.read_file(schema_file)
    target = tracking.TrackingTable.parse(table)
    with db.target(dsn, _notes(on_event)) as url:
        with dumps.scratch(url) as scratch:
            _build(scratch, directory, target, variables)
            with db.connect(scratch) as conn:
                built, major = _schema_file(conn, target, directory), conn.info.server_version // 10000
        lines = difflib.unified_diff(committed.splitlines(keepends=True), built.splitlines(keepends=True),
                                     str(schema_file), f"built from {directory}")  # fmt: skip
        differences = [line.rstrip("\n") for line in lines]
        alike = bool(differences) and _reprinted_alike(url, committed, built, target)
    return SchemaCheck(Path(schema_file), differences, dumps.written_by(committed), major, alike)


def _build(
    scratch: str, directory: str | Path, target: tracking.TrackingTable, variables: Mapping[str, str] | None
) -> None:  # fmt: skip
    """The folder migrated into a scratch database; a failure says it happened there."""
    try:
        migrate(scratch, directory, target, variables=variables)
    except MigrationFailed as failure:
        raise MigrationFailed(f"building the files in a scratch database ({db.describe(scratch)}): {failure}. "
                              "A file that changes the server rather than a database (CREATE ROLE) cannot be "
                              "built twice on one server", details=failure.details) from None  # fmt: skip


def _reprinted_alike(url: str, committed: str, built: str, target: tracking.TrackingTable) -> bool:
    with _database_errors("reprinting the schema files"):
        ours = dumps.reprinted(url, built, target, _own(target))
        theirs = dumps.reprinted(url, committed, target, _own(target))
    return ours is not None and ours == theirs


@dataclass(frozen=True)
class Loaded:
    plan: Plan  # after the load: pending files are the ones newer than the schema file


def load(
    database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None, *, schema_file: Path,
    on_event: OnEvent | None = None,
) -> Loaded:  # fmt: skip
    """Load a schema file into an empty database, in one transaction, with a history row; refused, and nothing
    kept, when its tracking rows do not match the folder's files (edited or missing ones)."""
    text = dumps.read_file(schema_file)
    files, again = _files(directory)
    target = tracking.TrackingTable.parse(table)
    with _connections(database, 0, on_event, lock=True) as (conn, holder):
        with migration_lock(holder, target.lock_key, DEFAULT_WAIT_S, _notes(on_event), shared=holder is conn):
            with _database_errors("looking at what the database holds"):
                found = dumps.contents(conn)
            if found:
                listed = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
                raise BadInput(f"the database is not empty ({listed}): runner load fills a new, empty one "
                               "(createdb); to bring this one up to date, run `runner migrate`")  # fmt: skip
            with _database_errors(f"loading {schema_file}"), conn.transaction():
                dumps.execute(conn, text, schema_file)
                conn.execute("RESET ALL")  # the file empties search_path, as pg_dump's files do
                plan = _read_plan(conn, target, files, again)
                _refuse_foreign(plan, schema_file, target)
                history.ensure(conn, target)
                conn.execute(history.insert_statement(conn, target, "load", None, Path(schema_file).name, None,
                                                      None))  # fmt: skip
            _record_schema(conn, target)
    return Loaded(plan)


def _refuse_foreign(plan: Plan, schema_file: Path, target: tracking.TrackingTable) -> None:
    """A schema file whose rows are not this folder's files: of another project, or of edited files."""
    wrong = plan.having(State.EDITED, State.MISSING, State.INCOMPLETE)
    if not wrong:
        if not any(e.record is not None for e in plan.entries):
            raise BadInput(f"{schema_file} has no rows for the tracking table {target}: its first line names the "
                           "table it was dumped with; pass that one with --table. Nothing was loaded")  # fmt: skip
        return
    shown = "; ".join(f"{e.name} ({e.state}: {e.detail})" for e in wrong[:3])
    raise BadInput(f"{schema_file} does not match the files of this folder: {shown}. It is from another project or "
                   "from edited files; nothing was loaded. Write it again with `runner dump`")  # fmt: skip


@dataclass(frozen=True)
class Squashed:
    path: Path  # the file written
    replaced: list[Migration]  # the files it replaces, deleted
    schema_file: Path | None = None  # written again: its rows name the squashed file


def squash_files(
    dsn: str | None = None, directory: str | Path = DEFAULT_DIR, table: Table = None, *, to: int,
    variables: Mapping[str, str] | None = None, schema_file: Path | None = None, on_event: OnEvent | None = None,
) -> Squashed:  # fmt: skip
    """Replace the files up to ``to`` by one that builds the same database, rows included (see runner.squash).

    Every one of them must be applied on the target database, unchanged: the files and the databases that
    ran them then agree on what the squashed file stands for. ``schema_file`` is then written again, its rows
    naming the squashed file, so that the change commits with a schema file `dump --check` passes.
    """
    import tempfile

    folder = Path(directory)
    files, _ = _files(folder)
    taken = squash.chosen(files, to)
    with _connected(dsn, folder, table, 0, on_event) as (_, target, plan):
        behind = [e for e in plan.entries if e.version is not None and e.version <= to and e.state != State.APPLIED]
    if behind:
        shown = ", ".join(f"{e.name} ({e.state.value.replace('_', ' ')})" for e in behind[:3])
        raise BadInput(f"--to {to}: not every file up to it is applied, unchanged, on the target database: {shown}. "
                       "Apply a pending one with `runner migrate` and accept an edited one with `runner accept`, or "
                       "squash to a lower version; nothing was changed")  # fmt: skip
    with db.target(dsn, _notes(on_event)) as url, dumps.scratch(url) as scratch, \
            tempfile.TemporaryDirectory() as built:  # fmt: skip
        for f in taken:
            Path(built, f.name).write_bytes(f.sql[0 : len(f.sql)])
        _build(scratch, built, target, variables)
        with db.connect(scratch) as conn:
            settings = dumps.database_settings(conn)
            if settings:
                raise BadInput(f"--to {to}: the files set database settings ({settings}), which a dump of the "
                               "database does not hold: a squashed file would lose them. Squash up to a version "
                               "below the file that sets them; nothing was changed")  # fmt: skip
            body = dumps.data_text(conn, target, _own(target))
    path = folder / squash.name_for(taken[-1])
    dumps.write(path, squash.header(taken, f"runner squash --to {to}") + body)
    # After the squashed file is whole: a stop here leaves both, which migrate refuses, by name. The down files
    # go first, with their migrations: nothing is undone past a squash, which has none.
    for f in [*(f.down for f in taken if f.down is not None), *taken]:
        try:
            if Path(f.path) != path:
                Path(f.path).unlink()
        except OSError as exc:
            raise BadInput(f"wrote {path}, but could not delete {f.path} ({exc.strerror}): delete it, and the other "
                           f"files up to version {to} and their down files, by hand") from None  # fmt: skip
    written = None
    if schema_file is not None:
        with _connections(dsn, 0, on_event) as (conn, _):
            written = _rewrite(conn, target, folder, schema_file, on_event or (lambda event: None))
    return Squashed(path, taken, written)


@dataclass(frozen=True)
class RollbackResult:
    plan: Plan  # as found before this run
    steps: list[str]  # the migrations it undoes (with dry_run) or undid, newest first
    rolled_back: list[RolledBack] = field(default_factory=list)  # in order


def rollback(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    to: int | None = None,
    force: bool = False,
    dry_run: bool = False,
    lock_wait: float = DEFAULT_WAIT_S,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    retries: int = 0,
    variables: Mapping[str, str] | None = None,
    schema_file: Path | None = None,
    confirm: Callable[[list[str]], None] | None = None,
    on_event: OnEvent | None = None,
) -> RollbackResult:
    """Undo the newest applied migration, or every one above ``to``, newest first, with their down files
    (runner.down): each in one transaction with the removal of its record and a history row.

    Everything is checked before anything runs (runner.undo.steps, and each down file's pre-flight). The
    repeatable files' records are forgotten after a rollback, so the next migrate runs them again: they are
    written to be run again, and what they made may have gone with the migrations undone. ``schema_file``
    is written again afterwards, as migrate writes it. ``confirm`` is called with the names of the migrations
    to undo (none, too), under the lock, before anything runs: it raises to stop (the CLI asks there), and
    what it was shown is what runs.
    """

    values = check_variables(variables or {}, "variables:")
    settings = _settings(database, lock_timeout, statement_timeout)
    emit = on_event or (lambda event: None)
    with _locked(database, directory, table, lock_wait, 0, on_event, create=False) as run:
        _tenant_path(run, settings)
        chosen = undo.steps(run.plan, to, force)
        scripts = [prepare(step.down, _own(run.target), values) for step in chosen]
        if confirm is not None and not dry_run:  # with no step too: a caller that previewed some learns they went
            confirm([s.name for s in chosen])
        if dry_run or not chosen:
            return RollbackResult(run.plan, [s.name for s in chosen])
        done = _undo_all(run, chosen, scripts, settings, retries, emit)
        if schema_file is not None:  # as after a migrate: the schema changed
            _rewrite(run.conn, run.target, directory, schema_file, emit)
    return RollbackResult(run.plan, [s.name for s in chosen], done)


def _undo_all(
    run: _Locked, chosen: list[undo.Step], scripts: list[Script], settings: dict[str, str], retries: int,
    emit: OnEvent,
) -> list[RolledBack]:  # fmt: skip
    """The steps in order, then what follows a rollback: the repeatable files' records forgotten and the schema
    recorded. A step that stops the run is reported with the steps rolled back before it, which the follow-up
    still covers (unless the lock or the connection is gone). A change made outside runner before this run is
    warned of, as migrate does, and stays drift: only what the down files changed is recorded."""
    conn, target = run.conn, run.target
    conn.prepare_threshold = None  # the reset after each down file deallocates prepared statements (apply.RESET)
    with _database_errors("setting up the session"):
        history.ensure(conn, target)
        before = _schema_check(conn, target)
    for difference in before.differences or []:
        emit(SchemaWarning(difference))
    done: list[RolledBack] = []
    try:
        for index, (step, script) in enumerate(zip(chosen, scripts, strict=True)):
            _undo_stopped_if_lost(run.lock, done, chosen[index:])
            try:
                done.append(_retrying(script, retries, emit,
                                      partial(undo.run, conn, target, step, script, settings, run.lock)))  # fmt: skip
            except MigrationFailed as failure:
                _log_failure(conn, target, script, failure, "rollback", step)
                raise
        _undo_stopped_if_lost(run.lock, done, [])
    except (RunnerError, KeyboardInterrupt) as stopped:
        if done and not isinstance(stopped, LockLost):  # a lost lock says what it did itself
            stopped.args = (f"rolled back {_listed([d.name for d in done])}; then {stopped.args[0]}",)
            if not (conn.broken or conn.closed):
                with suppress(RunnerError, psycopg.Error):
                    _after_undo(conn, target, before)
        raise
    _after_undo(conn, target, before)
    return done


def _after_undo(conn: psycopg.Connection, target: tracking.TrackingTable, before: _SchemaCheck) -> None:
    """The repeatable files run again at the next migrate (what they made may have gone with what was undone),
    and the schema as it is now is recorded, so that verify does not take runner's own change for drift."""
    with _database_errors("forgetting the repeatable files' records"):
        if repeatable.read(conn, target):
            conn.execute(sql.SQL("DELETE FROM {}").format(repeatable.table_of(target).identifier))
    _record_schema(conn, target, before)


def _undo_stopped_if_lost(lock: Held, done: list[RolledBack], left: list[undo.Step]) -> None:
    """What a rollback that lost its lock did and did not do, in one message (as _stopped says it for migrate)."""
    try:
        lock.check()
    except LockLost as lost:
        did = f"this run rolled back {_listed([d.name for d in done])}" if done else "this run rolled back nothing"
        more = f" and {len(left) - 1} later step(s)" if len(left) > 1 else ""
        rest = (f"; {left[0].name}{more} were not rolled back by it" if left
                else ", every step, but did not record the schema")  # fmt: skip
        stopped = LockLost(f"lost the migration lock: {lost}. Stopped: {did}{rest}. See `runner status`")
        raise stopped from None


@dataclass(frozen=True)
class RedoResult:
    rolled_back: RolledBack | None  # None when no migration was applied
    migrated: MigrateResult | None = None


def redo(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    force: bool = False,
    lock_wait: float = DEFAULT_WAIT_S,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    retries: int = 0,
    variables: Mapping[str, str] | None = None,
    schema_file: Path | None = None,
    confirm: Callable[[list[str]], None] | None = None,
    on_event: OnEvent | None = None,
) -> RedoResult:
    """Roll the newest applied migration back (``rollback``) and apply it again (``migrate`` up to it): the loop
    of writing one. Both happen under one hold of the migration lock, and everything is checked first: the down
    file, the migration (and the repeatable files, which run again after it) as migrate would check them. Only
    that one migration is applied again, whatever else is pending. A failure after the rollback says so."""
    values = check_variables(variables or {}, "variables:")
    settings = _settings(database, lock_timeout, statement_timeout)
    emit = on_event or (lambda event: None)
    with _locked(database, directory, table, lock_wait, 0, on_event, create=False) as run:
        _tenant_path(run, settings)
        chosen = undo.steps(run.plan, None, force)
        if not chosen:
            return RedoResult(None)
        [step] = chosen
        assert step.entry.file is not None  # undo.steps refuses a migration whose file is gone
        down_script = prepare(step.down, _own(run.target), values)
        again = [prepare(step.entry.file, _own(run.target), values)]
        again += [prepare(e.file, _own(run.target), values) for e in run.plan.entries if e.repeatable and e.file]
        if confirm is not None:
            confirm([step.name])
        [undone] = _undo_all(run, chosen, [down_script], settings, retries, emit)
        with _database_errors("reading the schema"):
            before = _schema_check(run.conn, run.target)
        try:
            applied = [d for d in _apply_all(run, settings, again, retries, emit) if isinstance(d, Applied)]
            _stopped_if_lost(run.lock, applied, [])
        except (RunnerError, KeyboardInterrupt) as stopped:
            kept = _record_kept(run, stopped, before)
            then = f"applied {_listed([a.name for a in kept])} again; then " if kept else "then "
            stopped.args = (f"rolled back {step.name} ({undone.down}); {then}{stopped.args[0]}",)
            raise
        _record_schema(run.conn, run.target, before, raced=lambda: _stopped_if_lost(run.lock, applied, []))
        written = _rewrite(run.conn, run.target, directory, schema_file, emit) if schema_file else None
    return RedoResult(undone, MigrateResult(run.plan, applied, [], [], written))
