"""The run that migrate, rollback and redo share: the checks before anything runs, the files (or down files)
one at a time with retries, the lock checked between them, and the schema recorded after them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg import sql

from runner import db, directives, down, history, repeatable, schema, squash, tracking, undo
from runner import schema_file as dumps
from runner.apply import LOCK_NOT_AVAILABLE, Applied, Session, Skipped, strings_standard
from runner.db import Database
from runner.errors import BadInput, ConnectionFailed, LockLost, MigrationFailed, Refused, RunnerError
from runner.files import Migration, discover
from runner.lock import Held
from runner.plan import Entry, Plan, State
from runner.preflight import Script, prepare, read_otherwise
from runner.results import Applying, Note, OnEvent, SchemaWarning
from runner.target import Locked, database_errors, one_state
from runner.undo import RolledBack

_MAX_BACKOFF_S = 30.0


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


def settings_for(database: Database, lock_timeout: str | None, statement_timeout: str | None) -> dict[str, str]:
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


def checks(
    conn: psycopg.Connection, target: tracking.TrackingTable, plan: Plan, strict: bool, allow_out_of_order: bool,
    to: int | None, values: Mapping[str, str], *, checksums: bool = False,
) -> tuple[list[Script], SchemaBefore]:  # fmt: skip
    """What migrate checks before anything runs, shared with plan so the two never disagree.

    Every file to run is checked, with ``values`` substituted for its psql variables, and the schema
    compared with the recorded one (only when something is to run: the no-op path reads no snapshot).
    With ``checksums``, the code checksums the records carry are worked out meanwhile.
    """
    _refuse_drift(plan, strict, allow_out_of_order)
    own = own_tables(target)
    scripts = [prepare(entry.file, own, values) for entry in _up_to(plan, to) if entry.file is not None]
    refuse_read_otherwise(conn, scripts, "Nothing was applied")
    if checksums and scripts:
        # The costliest part of a record (pglast is imported, then parses without the GIL): on another
        # thread, while the server compares the schema and runs the first files.
        threading.Thread(target=_code_checksums, args=([s.migration for s in scripts],), daemon=True).start()
    return scripts, schema_before(conn, target) if scripts else SchemaBefore([])


def refuse_read_otherwise(conn: psycopg.Connection, scripts: list[Script], nothing: str) -> None:
    """A file whose strings the server reads otherwise than runner's checks (preflight.read_otherwise) is refused
    before anything runs: what the checks passed is not what would run."""
    if strings_standard(conn):
        return
    for script in scripts:
        line = read_otherwise(script)
        if line is not None:
            raise BadInput(
                f"{script.migration.path}, line {line}: a backslash before a quote in a string, and this session has "
                "standard_conforming_strings off, which makes the backslash escape the quote. runner checks a file "
                "as PostgreSQL reads it with the setting on (its default), so it cannot tell where this file's "
                "statements end. Write the string as E'...' or double the quote (''), or turn the setting on for "
                f"runner's role (ALTER ROLE ... SET standard_conforming_strings = on). {nothing}"
            )


def record_kept(run: Locked, stopped: BaseException, before: SchemaBefore) -> list[Applied]:
    """After a run a failure stopped: the files it applied before that one did the files' work, not drift, so the
    schema is recorded for them (not after a lost lock: the runner holding it now records it). Those files."""
    applied = [a for a in getattr(stopped, "applied", []) if isinstance(a, Applied)]
    if applied and not isinstance(stopped, LockLost) and not (run.conn.broken or run.conn.closed):
        with suppress(RunnerError, psycopg.Error):
            record_schema(run.conn, run.target, before)
    return applied


def tenant_path(run: Locked, settings: dict[str, str]) -> None:
    """A tenant's files (and down files) run with its schema first on search_path: their unqualified names are its."""
    if run.target.tenant:
        settings["search_path"] = f"{sql.Identifier(run.target.schema).as_string(run.conn)}, public"


def rewrite(
    conn: psycopg.Connection, target: tracking.TrackingTable, directory: str | Path, path: Path, emit: OnEvent
) -> Path | None:
    """The schema file after a run that applied files, while the lock is held; the path if it changed."""
    try:
        return path if dumps.write(path, schema_file_text(conn, target, directory)) else None
    except BadInput as failure:
        emit(Note(f"the run is done and recorded, but the schema file {path} was not rewritten: {failure}"))
        return None


def own_tables(target: tracking.TrackingTable) -> list[tracking.TrackingTable]:
    return [target, history.table_of(target), repeatable.table_of(target), target.companion(schema.SUFFIX)]


def _own_names(target: tracking.TrackingTable) -> list[str]:
    return [str(t) for t in own_tables(target)]


def live_schema(conn: psycopg.Connection, target: tracking.TrackingTable) -> schema.Snapshot:
    with database_errors("reading the schema from the catalogs"):
        return schema.snapshot(conn, _own_names(target), target.scope)


@dataclass(frozen=True)
class SchemaBefore:
    """The recorded schema compared with the live one, before any file runs."""

    differences: list[schema.Difference] | None  # None: no schema is recorded yet
    recorded: schema.Snapshot | None = None  # both read only when the fingerprints differ
    live: schema.Snapshot | None = None
    since: schema.Since | None = None  # the catalogs were as recorded when this was read


def schema_before(conn: psycopg.Connection, target: tracking.TrackingTable) -> SchemaBefore:
    """How the live schema differs from the recorded one.

    The usual answer, nothing, comes from comparing fingerprints, without reading either snapshot. The
    tables of other runners in the database are left out of both sides, even of a snapshot recorded
    before runner left them out.
    """
    table = target.companion(schema.SUFFIX).identifier
    with database_errors("reading the recorded schema"):
        since = schema.unchanged(conn, table, target.scope)
        if since is not None:
            return SchemaBefore([], since=since)
        recorded = schema.load(conn, table)
        if recorded is None:
            return SchemaBefore(None)
        recorded = schema.without(recorded, *schema.runners(conn, target.scope))
    live = live_schema(conn, target)
    return SchemaBefore(schema.differences(recorded, live), recorded, live)


def schema_drift(conn: psycopg.Connection, target: tracking.TrackingTable) -> list[schema.Difference] | None:
    """How the live schema differs from the recorded one; None when none is recorded."""
    return schema_before(conn, target).differences


def record_schema(
    conn: psycopg.Connection, target: tracking.TrackingTable, before: SchemaBefore | None = None,
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
    with database_errors("recording the schema"):
        try:
            with one_state(conn):
                _record(conn, target, table, before)
        except psycopg.errors.SerializationFailure:
            raced()
            with one_state(conn):
                _record(conn, target, table, replace(before, since=None) if before is not None else None)


def _record(
    conn: psycopg.Connection, target: tracking.TrackingTable, table: sql.Identifier, before: SchemaBefore | None
) -> None:
    if before is not None and before.since is not None:
        schema.refresh(conn, table, _own_names(target), before.since, target.scope)
        return
    live, anchors = schema.taken(conn, _own_names(target), target.scope)
    if before is not None and before.differences and before.recorded is not None and before.live is not None:
        schema.save(conn, table, schema.carried(before.recorded, before.live, live))
        return
    schema.save(conn, table, live, anchors, target.scope)


def apply_all(
    run: Locked, settings: dict[str, str], scripts: list[Script], retries: int, emit: OnEvent
) -> list[Applied | Skipped]:
    """Apply the scripts in order; a failure carries the files this run had applied before it.

    The lock is checked before each file: a runner whose lock session ended stops there (LockLost),
    since another runner may hold the lock by now.
    """
    conn, target = run.conn, run.target
    with database_errors("setting up the session"):
        tracking.upgrade(conn, target)
        history.ensure(conn, target)
        if any(s.migration.version is None for s in scripts):
            repeatable.ensure(conn, target)
        session = Session(conn, target, settings, run.lock, lambda text: emit(Note(text)))
    done: list[Applied | Skipped] = []
    applied: list[Applied] = []
    for index, script in enumerate(scripts, 1):
        stopped_if_lost(run.lock, applied, scripts[index - 1 :])
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


def stopped_if_lost(lock: Held, applied: list[Applied], left: list[Script]) -> None:
    try:
        lock.check()
    except LockLost as lost:
        raise _stopped(lost, applied, left) from None


def _stopped(lost: LockLost, applied: list[Applied], left: list[Script]) -> LockLost:
    """What a runner that lost its lock did and did not do, in one message."""
    names = [a.name for a in applied]
    did = f"this run applied {listed(names)}" if names else "this run applied nothing"
    if left:
        more = f" and {len(left) - 1} later file(s)" if len(left) > 1 else ""
        rest = f"; {left[0].name}{more} were not applied by it, and another runner may be applying them now"
    else:
        rest = ", every file it had to run, but did not record the schema: the runner that holds the lock now does"
    stopped = LockLost(f"lost the migration lock: {lost}. Stopped: {did}{rest}. See `runner status`")
    stopped.applied = list(applied)
    return stopped


def listed(names: list[str], shown: int = 3) -> str:
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


def schema_file_text(conn: psycopg.Connection, target: tracking.TrackingTable, directory: str | Path | None) -> str:
    """The schema file of the database of ``conn`` (see runner.schema_file), with the tracking rows a database
    built from the files of ``directory`` would have (after a squash, the squashed file's)."""
    with database_errors(f"reading the tracking table {target}"):
        records, again = tracking.read(conn, target), repeatable.read(conn, target)
    if directory is not None:
        records = squash.as_built(discover(Path(directory)), records)
    return dumps.schema_text(conn, target, own_tables(target), records, again)


def undo_all(
    run: Locked, chosen: list[undo.Step], scripts: list[Script], settings: dict[str, str], retries: int,
    emit: OnEvent,
) -> list[RolledBack]:  # fmt: skip
    """The steps in order, then what follows a rollback: the repeatable files' records forgotten and the schema
    recorded. A step that stops the run is reported with the steps rolled back before it, which the follow-up
    still covers (unless the lock or the connection is gone). A change made outside runner before this run is
    warned of, as migrate does, and stays drift: only what the down files changed is recorded."""
    conn, target = run.conn, run.target
    conn.prepare_threshold = None  # the reset after each down file deallocates prepared statements (apply.RESET)
    with database_errors("setting up the session"):
        history.ensure(conn, target)
        before = schema_before(conn, target)
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
            stopped.args = (f"rolled back {listed([d.name for d in done])}; then {stopped.args[0]}",)
            if not (conn.broken or conn.closed):
                with suppress(RunnerError, psycopg.Error):
                    _after_undo(conn, target, before)
        raise
    _after_undo(conn, target, before)
    return done


def _after_undo(conn: psycopg.Connection, target: tracking.TrackingTable, before: SchemaBefore) -> None:
    """The repeatable files run again at the next migrate (what they made may have gone with what was undone),
    and the schema as it is now is recorded, so that verify does not take runner's own change for drift."""
    with database_errors("forgetting the repeatable files' records"):
        if repeatable.read(conn, target):
            conn.execute(sql.SQL("DELETE FROM {}").format(repeatable.table_of(target).identifier))
    record_schema(conn, target, before)


def _undo_stopped_if_lost(lock: Held, done: list[RolledBack], left: list[undo.Step]) -> None:
    """What a rollback that lost its lock did and did not do, in one message (as _stopped says it for migrate)."""
    try:
        lock.check()
    except LockLost as lost:
        did = f"this run rolled back {listed([d.name for d in done])}" if done else "this run rolled back nothing"
        more = f" and {len(left) - 1} later step(s)" if len(left) > 1 else ""
        rest = (f"; {left[0].name}{more} were not rolled back by it" if left
                else ", every step, but did not record the schema")  # fmt: skip
        stopped = LockLost(f"lost the migration lock: {lost}. Stopped: {did}{rest}. See `runner status`")
        raise stopped from None
