"""Rolling back: the down files of the newest applied migrations, newest first, each with its record.

Which migrations a rollback undoes is decided from the plan before anything runs (``steps``, pure): every
one needs a down file, and one edited since it was applied is refused unless forced, since its down file
may not match what ran. Each step is one transaction, sent in one message: the down file, then the
deletion of the migration's tracking row and a ``rollback`` history row, so a step is either undone and
unrecorded, or neither (a no-transaction down file runs a statement at a time, then that transaction). A
history whose last word on a version is ``rollback`` makes its file pending by intent (plan.py), as
``unmark`` does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import pq, sql
from psycopg.pq.abc import PGresult

from runner import history, squash, tracking
from runner.apply import (
    RESET,
    error_field,
    first_error,
    in_file,
    kept_statements,
    lines_of,
    read_otherwise_now,
    rollback_if_open,
    round_trip,
    settings_sql,
    strings_standard,
    turned_off,
)
from runner.errors import BadInput, Interrupted, LockLost, MigrationFailed, Refused, Terminated
from runner.files import Migration
from runner.locate import SEPARATOR, Location, locate, statement_offsets
from runner.lock import Held
from runner.plan import Entry, Plan, State
from runner.preflight import Script, Statement


@dataclass(frozen=True)
class Step:
    """One migration to undo, and the down file that undoes it."""

    entry: Entry
    down: Migration

    @property
    def name(self) -> str:
        return self.entry.name


@dataclass(frozen=True)
class RolledBack:
    version: int
    name: str  # the migration's
    down: str  # down/<file>
    duration_ms: float


def steps(plan: Plan, to: int | None, force: bool) -> list[Step]:
    """The migrations to undo, newest first: the newest applied one, or every one above ``to``.

    BadInput when one has no down file (nothing runs then, not even the steps above it); Refused for one
    edited since it was applied, unless ``force``.
    """
    applied = [e for e in plan.entries if e.version is not None and e.record is not None]
    if to is not None and to < 0:
        raise BadInput(f"--to {to}: a version is 0 or more (0 undoes every migration)")
    chosen = [e for e in applied if to is None or (e.version or 0) > to]
    if to is None:
        chosen = chosen[-1:]
    chosen.reverse()
    for e in chosen:
        if e.file is None:
            raise BadInput(f"{e.name}: its file is gone (it is applied, and missing), so its down file cannot be "
                           "found; restore the file to roll it back. Nothing was rolled back")  # fmt: skip
        if squash.replaced(e.file) and e.file.down is not None:
            raise BadInput(f"{e.file.down.name}: {e.name} is a squash, and nothing is rolled back past a squash (a "
                           "database may hold the records of the files it replaces); delete the down file. Nothing "
                           "was rolled back")  # fmt: skip
    missing = [e for e in chosen if e.file is None or e.file.down is None]
    if missing:
        names = ", ".join(e.name for e in missing[:3]) + (" and more" if len(missing) > 3 else "")
        raise BadInput(f"{names}: no down file (sql/down/<the same file name>), so it cannot be rolled back; "
                       "nothing was rolled back")  # fmt: skip
    for e in chosen:
        assert e.file is not None and e.file.down is not None
        if _blank(e.file.down):
            raise BadInput(f"{e.file.down.name} holds no SQL, only comments: write the SQL that undoes {e.name} "
                           "there (or delete the file); nothing was rolled back")  # fmt: skip
    edited = [e for e in chosen if e.state in (State.EDITED, State.MISSING)]
    if edited and not force:
        first = edited[0]
        raise Refused(f"{first.name} is not as it was applied ({first.detail}): its down file may not undo what "
                      "ran. Nothing was rolled back; check the down file, then pass --force")  # fmt: skip
    return [Step(e, e.file.down) for e in chosen if e.file is not None and e.file.down is not None]


def _blank(down: Migration) -> bool:
    """Comments and semicolons only, as `runner new` writes it: run, it would undo nothing and drop the record."""
    if not isinstance(down.sql, bytes):
        return False  # over 1 MB: not a file of comments
    return statement_offsets(down.text()) == []  # None: pglast cannot parse it, and the server will say why


def run(
    conn: psycopg.Connection, table: tracking.TrackingTable, step: Step, script: Script,
    settings: Mapping[str, str], lock: Held | None = None,
) -> RolledBack:  # fmt: skip
    """One step, in one transaction: the down file, the deletion of the record, and a history row. A down file
    marked ``-- runner: no-transaction`` runs a statement at a time instead (_run_each).

    The down file travels alone in its message (a big one in parts, as migrate sends it), so the server's line
    numbers are the file's, and only once it succeeded does runner send the record's removal and the COMMIT:
    what the server does is what runner saw.
    """
    if script.no_transaction:
        return _run_each(conn, table, step, script, settings, lock)
    record = step.entry.record
    assert record is not None and record.version is not None
    checked_on = strings_standard(conn)
    started = time.perf_counter()
    try:
        conn.execute(b"BEGIN;\n" + settings_sql({**settings, **script.settings}, "LOCAL ").encode())
        for part in script.parts():  # the whole file, or a big one's parts (preflight.Script.parts)
            if read_otherwise_now(conn, checked_on, part.data):
                line = script.body.count(b"\n", 0, part.where.start) + 1
                raise MigrationFailed(turned_off(script.name, f"its part from line {line}") + ". It was rolled back: "
                                      f"nothing of it was kept, and {step.name} is still applied")  # fmt: skip
            ended = SEPARATOR.encode() if script.cuts is None else b""
            failed = first_error(round_trip(conn, part.data + ended))  # COPY ... TO STDOUT drained
            if conn.info.transaction_status == pq.TransactionStatus.IDLE:  # failed or not, its COMMIT came first
                raise _left_transaction(script, step, part.where.stop)
            if failed:
                rollback_if_open(conn)
                outcome = "It was rolled back: {still}, and no later step ran"
                raise _failure(script, step, *failed, outcome, part=part.where)
            if conn.info.transaction_status != pq.TransactionStatus.INTRANS:
                raise _left_transaction(script, step, part.where.stop)
        _unrecord_and_commit(conn, table, step, script, "nothing of it was kept", settings)
    except MigrationFailed:  # a big file that changed while it was sent, too
        rollback_if_open(conn)
        raise
    except KeyboardInterrupt as stop:
        rollback_if_open(conn)
        cause = "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"
        still = _still_recorded(conn, table, step)
        if still is None:
            text = (f"{script.name} was interrupted ({cause}); {step.name} is either rolled back or still applied. "
                    "Run `runner status` to see which")  # fmt: skip
        elif still:
            text = f"{script.name} was interrupted ({cause}) and rolled back: {step.name} is still applied"
        else:
            text = f"interrupted ({cause}) just after {script.name} committed: {step.name} was rolled back"
        raise Interrupted(text, terminated=isinstance(stop, Terminated)) from None
    return RolledBack(record.version, step.name, script.name, (time.perf_counter() - started) * 1000)


def _still_recorded(conn: psycopg.Connection, table: tracking.TrackingTable, step: Step) -> bool | None:
    """Whether the migration's record is there after an interrupt: one that came too late lets the step commit."""
    record = step.entry.record
    assert record is not None and record.version is not None
    try:
        return tracking.recorded(conn, table, record.version, record.checksum)
    except (psycopg.Error, KeyboardInterrupt):
        return None


def _failure(
    script: Script,
    step: Step,
    index: int,
    result: PGresult,
    outcome: str,
    statement: Statement | None = None,
    kept: Sequence[Statement] = (),
    part: slice | None = None,
) -> MigrationFailed:
    """Where in the down file the server failed (in ``statement``, of a no-transaction one), and what that left
    (``outcome``, with ``{still}``)."""
    sqlstate = error_field(result, pq.DiagnosticField.SQLSTATE) or "?????"
    message = " ".join((error_field(result, pq.DiagnosticField.MESSAGE_PRIMARY) or "unknown error").split())
    position = error_field(result, pq.DiagnosticField.STATEMENT_POSITION)
    offset = int(position) if position else None
    if statement is not None:
        text = script.body.decode("utf-8") if isinstance(script.body, bytes) else ""
        where = locate(text, offset and offset + statement.start, None)
        where = where if where.line is not None else Location(statement_line=statement.line)
    else:  # in the message that held ``part`` of the file
        part = part or slice(0, len(script.body))
        where = in_file(locate(script.body[part].decode("utf-8"), offset, index), script.body, part.start)
    place = f" {where.describe()}" if where.describe() else ""
    still = f"{step.name} is still {'recorded as ' if script.no_transaction else ''}applied"
    outcome = outcome.replace("{still}", still)  # not str.format: a file name may hold braces
    return MigrationFailed(f"{script.name} failed{place}: {message} (SQLSTATE {sqlstate}). {outcome}",
                           details={"file": str(script.migration.path), "version": step.entry.version,
                                    "line": where.line or where.statement_line, "sqlstate": sqlstate,
                                    "server_message": message,  # a file that kept statements is not tried again
                                    "statements_kept": [s.line for s in kept]})  # fmt: skip


def _left_transaction(script: Script, step: Step, sent: int) -> MigrationFailed:
    """The file ended the step's transaction though the checks found no COMMIT or ROLLBACK in it: it changed while
    it was sent (a server that reads its strings otherwise has been refused it: engine.refuse_read_otherwise).
    Runner cannot say what of it was kept."""
    return MigrationFailed(f"{script.name} ended the step's transaction before its byte {sent} (a COMMIT or ROLLBACK "
                           "runner's checks did not see: the file changed while it was sent): what ran of it before "
                           f"that may have been kept, and {step.name} is still applied. Check the database against "
                           "the down file",
                           details={"file": str(script.migration.path), "statements_kept": ["unknown"]})  # fmt: skip


def _reset(settings: Mapping[str, str]) -> bytes:
    """After a down file, as after a migration (apply.Session's tail): a clean session, then the run's settings
    again (an application's connection is UTF-8 only by them), for runner's own statements and the next step."""
    return (RESET + settings_sql(settings)).encode()


def _unrecord_and_commit(
    conn: psycopg.Connection, table: tracking.TrackingTable, step: Step, script: Script, kept: str,
    settings: Mapping[str, str],
) -> None:  # fmt: skip
    """After the down file, in its transaction: the record's removal, its history row, COMMIT. The removal fails
    (division by zero) when the record is gone: another runner, whose lock was lost, rolled the step back."""
    failed = first_error(round_trip(conn, _reset(settings) + _unrecord(conn, table, step) + b";\nCOMMIT"))
    if failed is None:
        return
    rollback_if_open(conn)
    sqlstate = error_field(failed[1], pq.DiagnosticField.SQLSTATE)
    details: dict[str, object] = {"sqlstate": sqlstate}
    if sqlstate == "22012":
        raise MigrationFailed(f"{step.name} was rolled back by another runner meanwhile; {script.name}: {kept}",
                              details=details)  # fmt: skip
    message = error_field(failed[1], pq.DiagnosticField.MESSAGE_PRIMARY) or "unknown error"
    raise MigrationFailed(f"{script.name} ran, but removing the record of {step.name} failed: {message} (SQLSTATE "
                          f"{sqlstate}); {kept}, and {step.name} is still applied", details=details)  # fmt: skip


def _unrecord(conn: psycopg.Connection, table: tracking.TrackingTable, step: Step) -> bytes:
    """The deletion of the migration's record, which fails (division by zero) if it is gone, and a history row."""
    record = step.entry.record
    assert record is not None and record.version is not None
    gone = sql.SQL("WITH gone AS (DELETE FROM {} WHERE version = {} AND checksum = {} RETURNING 1) "
                   "SELECT 1 / count(*) FROM gone").format(table.identifier, sql.Literal(record.version),
                                                           sql.Literal(record.checksum))  # fmt: skip
    row = history.insert_statement(conn, table, "rollback", record.version, step.name, record.checksum, None)
    return gone.as_bytes(conn) + b";\n" + row


def _run_each(
    conn: psycopg.Connection, table: tracking.TrackingTable, step: Step, script: Script,
    settings: Mapping[str, str], lock: Held | None,
) -> RolledBack:  # fmt: skip
    """A no-transaction down file (CREATE INDEX CONCURRENTLY's undo: DROP INDEX CONCURRENTLY): a statement at a
    time, the run-wide lock checked before each, then the record's removal and its history row in one
    transaction. What ran of it stays when it stops; the record stays too, so the migration still counts as
    applied, and a guarded down file (IF EXISTS) can simply be rolled back again."""
    record = step.entry.record
    assert record is not None and record.version is not None
    kept: list[Statement] = []
    running: Statement | None = None
    still = f"{step.name} is still recorded as applied"
    started = time.perf_counter()
    try:
        conn.execute(settings_sql({**settings, **script.settings}).encode())
        checked_on = strings_standard(conn)
        for statement in script.statements:
            if read_otherwise_now(conn, checked_on, statement.text.encode()):
                raise MigrationFailed(turned_off(script.name, f"its statement at line {statement.line}") + ". It runs "
                                      f"without a transaction: {kept_statements(kept)}; {still}",
                                      details={"statements_kept": [k.line for k in kept]})  # fmt: skip
            if lock is not None:
                lock.check()
            running = statement
            failed = first_error(round_trip(conn, statement.text.encode()))
            running = None
            if failed:
                rollback_if_open(conn)
                outcome = (f"It runs without a transaction: {kept_statements(kept)}; {{still}}. Fix the down file "
                           f"and roll back again, or finish undoing it by hand and `runner unmark {record.version}`"
                           )  # fmt: skip
                raise _failure(script, step, 0, failed[1], outcome, statement, kept) from None
            kept.append(statement)
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            rollback_if_open(conn)
            raise MigrationFailed(f"{script.name} ends inside a transaction it opened and never committed; that "
                                  f"transaction was rolled back, and statements outside it (lines "
                                  f"{lines_of(kept)}) may have been kept; {still}. End the "
                                  "transaction with COMMIT",
                                  details={"statements_kept": [k.line for k in kept]})  # fmt: skip
        conn.execute(b"BEGIN")
        _unrecord_and_commit(conn, table, step, script, kept_statements(kept), settings)
    except KeyboardInterrupt as stop:
        rollback_if_open(conn)
        cause = "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"
        raise Interrupted(f"{script.name} (no transaction) was interrupted ({cause}): "
                          f"{kept_statements(kept, running)}; {still}", terminated=isinstance(stop, Terminated)
                          ) from None  # fmt: skip
    except LockLost as lost:
        raise LockLost(f"{lost}; {script.name} (no transaction) stopped: {kept_statements(kept)}; {still}") from None
    finally:
        if not (conn.broken or conn.closed) and conn.pgconn.status == pq.ConnStatus.OK:
            conn.execute(_reset(settings))  # the file's settings, and whatever it set
    return RolledBack(record.version, step.name, script.name, (time.perf_counter() - started) * 1000)
