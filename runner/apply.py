"""Running one migration and its tracking row as a single transaction, in one round trip.

The file's text, a reset of the session and the INSERT of its tracking row are sent together
as one simple-protocol message. PostgreSQL runs a multi-statement message as one implicit
transaction, so the file is either applied and recorded, or neither. It also returns one
result per statement, which is how a failure is placed in the file without parsing it first.
A big file goes inside BEGIN ... COMMIT instead, a part per message (see preflight._cuts).

A ``-- runner: no-transaction`` file is sent one statement at a time instead, and its record
follows the last statement; what had run before a failure is kept, and the report says so.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from types import ModuleType

import psycopg
from psycopg import generators, pq, sql
from psycopg.pq.abc import PGresult

from runner import history, repeatable, tracking
from runner.errors import Interrupted, LockLost, MigrationFailed, Terminated
from runner.files import FileView
from runner.indexes import InvalidIndex, invalid_among, invalid_indexes
from runner.locate import SEPARATOR, Location, locate, unterminated
from runner.lock import Held, file_key, file_lock
from runner.preflight import Part, Script, Statement, escaped_quote

_Status = pq.ExecStatus
_Field = pq.DiagnosticField
_SYNTAX_ERROR = "42601"
LOCK_NOT_AVAILABLE = "55P03"  # the SQLSTATE of a lock_timeout
_QUERY_CANCELED = "57014"
_CLAIM_POLL_S = 0.2
_SETTLE_S = 5.0  # as long as psycopg gives a cancel of its own
_CANCEL_AGAIN_S = 0.5
_WHOLE = slice(0, None)
_CLAIM = slice(0, 0)  # a failure in the claim sent ahead of a big file, before any of it

# Sent after every file, inside its transaction: whatever session state the file changed
# (SET, SET ROLE, temporary tables, prepared statements, cursors, LISTEN) is gone before the
# tracking row is written, and the next file starts from a clean session.
RESET = (
    "RESET ALL;\nRESET SESSION AUTHORIZATION;\nRESET ROLE;\nDISCARD TEMP;\nDISCARD SEQUENCES;\n"
    "DEALLOCATE ALL;\nCLOSE ALL;\nUNLISTEN *;\n"
)
# A backend whose runner was killed notices within this time and rolls back (PostgreSQL 14+),
# instead of finishing a long statement for nobody while it holds its locks. And no idle_session_timeout
# (a role's or a database's) ends the session while it waits between files, for a retry's backoff.
_CLIENT_CHECK = {"client_connection_check_interval": "1000ms", "idle_session_timeout": "0"}


@dataclass(frozen=True)
class Applied:
    version: int | None  # None: a repeatable file
    name: str
    checksum: str
    statements: int
    duration_ms: float
    no_transaction: bool = False
    wrapper_removed: bool = False

    @property
    def empty(self) -> bool:
        """An empty or comment-only file: recorded like any other, reported as such."""
        return self.statements == 0


@dataclass(frozen=True)
class Skipped:
    """A file another runner applied while this one was on its way to it: none of it ran here."""

    version: int | None
    name: str


def round_trip(conn: psycopg.Connection, message: bytes) -> list[PGresult]:
    """Send a multi-statement message and collect every result, errors included.

    psycopg's cursor raises on the first error and drops the results before it, which we need
    to count; so this uses psycopg's libpq layer. ``conn.wait`` keeps psycopg's handling of
    Ctrl-C (it cancels the running statement on the server).
    """
    pgconn = conn.pgconn
    try:
        pgconn.send_query(message)
        results: list[PGresult] = conn.wait(generators.execute(pgconn))
        while results and results[-1].status in (_Status.COPY_IN, _Status.COPY_OUT, _Status.COPY_BOTH):
            if results[-1].status == _Status.COPY_OUT:  # COPY ... TO STDOUT: drain and drop the data
                while pgconn.get_copy_data(0)[0] > 0:
                    pass
            else:  # COPY FROM STDIN: refused before sending, but a file may still reach it (EXECUTE of a string)
                pgconn.put_copy_end(b"COPY FROM STDIN is a psql feature; runner has no data to send")
            results[-1:] = conn.wait(generators.execute(pgconn))
    except KeyboardInterrupt:
        _settle(conn)
        raise
    if pgconn.status == pq.ConnStatus.BAD:  # the server ended the session: a lost connection, not a failed file
        failed = first_error(results)
        raise psycopg.OperationalError(
            (error_field(failed[1], _Field.MESSAGE_PRIMARY) if failed else None) or "connection lost"
        )
    return results


def _settle(conn: psycopg.Connection) -> None:
    """A Ctrl-C that lands outside psycopg's wait (just after the message was sent) escapes psycopg's own
    cancel: the statement runs on and the connection stays busy, so neither a ROLLBACK nor a look at what was
    recorded could be sent on it. Cancel the statement and read the rest of the results; again, since a cancel
    that reaches the server before it starts the statement cancels nothing."""
    deadline = time.monotonic() + _SETTLE_S
    while conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE and time.monotonic() < deadline:
        try:
            conn.cancel_safe(timeout=_SETTLE_S)
        except psycopg.Error:
            return  # the outcome stays unknown, and the report says so
        try:
            conn.wait(generators.execute(conn.pgconn), timeout=_CANCEL_AGAIN_S)
        except psycopg.OperationalError:  # not done yet (or the connection is gone, which ends the loop)
            continue
        except psycopg.Error:
            return


def _claim_xid(results: list[PGresult]) -> str | None:
    """The id of the transaction the claim (the first result) wrote its row in: the last column of its row."""
    claim = results[0] if results else None
    if claim is None or claim.status != _Status.TUPLES_OK or not claim.ntuples:
        return None
    value = claim.get_value(0, claim.nfields - 1)
    return value.decode() if value is not None else None


def _gave_up_waiting(result: PGresult) -> bool:
    """A lock_timeout or a statement_timeout ended the statement while it waited (here: a claim, on another
    runner's row)."""
    sqlstate = error_field(result, _Field.SQLSTATE)
    return sqlstate == LOCK_NOT_AVAILABLE or (
        sqlstate == _QUERY_CANCELED and "statement timeout" in (error_field(result, _Field.MESSAGE_PRIMARY) or "")
    )


def first_error(results: list[PGresult]) -> tuple[int, PGresult] | None:
    return next(((i, r) for i, r in enumerate(results) if r.status == _Status.FATAL_ERROR), None)


def error_field(result: PGresult, field: pq.DiagnosticField) -> str | None:
    value = result.error_field(field)
    return value.decode("utf-8", "replace") if value is not None else None


def settings_sql(settings: Mapping[str, str], scope: str = "") -> str:
    # Values are validated durations such as "10000ms"; names are ours. A search_path is a list of quoted
    # names: quoted whole, it would be one name.
    quoted = {name: value if name == "search_path" else f"'{value}'" for name, value in settings.items()}
    return "".join(f"SET {scope}{name} = {value};\n" for name, value in quoted.items())


def in_file(where: Location, body: bytes | FileView, start: int) -> Location:
    """A place in the part of ``body`` that begins at byte ``start``, as a place in the whole file."""
    if not start:
        return where
    lines = body.count(b"\n", 0, start)
    column = where.column
    if where.line == 1 and column is not None:  # the part began in the middle of this line
        column += len(body[body.rfind(b"\n", 0, start) + 1 : start].decode("utf-8"))
    return replace(where, line=where.line and where.line + lines, column=column,
                   statement_line=where.statement_line and where.statement_line + lines)  # fmt: skip


def _ahead(parts: Iterator[Part]) -> Generator[Part, None, None]:
    """``parts``, the next one always looked for on a thread while the caller sends the one before.

    Finding where to cut is PostgreSQL's scanner at work, in C without the GIL, and reading a
    part is a system call: on the other core, while the server runs a part, they add next to
    nothing to the time.
    """
    with ThreadPoolExecutor(1) as pool:
        following = pool.submit(next, parts, None)
        while (part := following.result()) is not None:
            following = pool.submit(next, parts, None)
            yield part


def lines_of(statements: Sequence[Statement], shown: int = 5) -> str:
    """``2, 3, 5``; past ``shown`` statements, ``2 to 16001`` (a big file's would fill a screen)."""
    if len(statements) > shown:
        return f"{statements[0].line} to {statements[-1].line}"
    return ", ".join(str(s.line) for s in statements)


def strings_standard(conn: psycopg.Connection) -> bool:
    """Whether the session has standard_conforming_strings on, as the server reported it after the last message."""
    return conn.info.parameter_status("standard_conforming_strings") != "off"


def read_otherwise_now(conn: psycopg.Connection, checked_on: bool, data: bytes) -> bool:
    """The file turned standard_conforming_strings off (it was on, ``checked_on``, when it started) and ``data`` has a
    backslash before a quote: the server would not read it as the checks did. A file held in memory travels whole,
    read as the session was when it was checked; this is for a big file's parts and a no-transaction file's
    statements. (With it off from the start, engine.refuse_read_otherwise has refused such a file.)"""
    return checked_on and not strings_standard(conn) and escaped_quote(data)


def turned_off(name: str, where: str) -> str:
    return (
        f"{name} turned standard_conforming_strings off, and {where} has a backslash before a quote, which the "
        "server would then read otherwise than runner's checks did (write such strings as E'...' or '')"
    )


def kept_statements(statements: Sequence[Statement], running: Statement | None = None) -> str:
    """What of a no-transaction file stays after it stopped: statements that ran cannot be undone. An interrupt
    cancels the ``running`` one, unless it came as that one finished: whether it did, the server does not say."""
    text = f"the statement(s) at line(s) {lines_of(statements)} had already run and were kept" if statements else (
        "nothing ran")  # fmt: skip
    if running is not None:
        text += (f"; the one at line {running.line} was running and was cancelled, unless it had just finished "
                 "(then it was kept too)")  # fmt: skip
    return text


def _rows(script: Script) -> ModuleType:
    """Where the file's record lives: the table of repeatable files, or the tracking table."""
    return repeatable if script.migration.version is None else tracking


def rollback_if_open(conn: psycopg.Connection) -> None:
    """End a transaction a failure or an interrupt left open; a lost connection has rolled back on its own."""
    if conn.info.transaction_status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR):
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            pass


class Session:
    """The connection migrations run on, and the settings each migration starts from."""

    def __init__(
        self, conn: psycopg.Connection, table: tracking.TrackingTable, settings: dict[str, str],
        lock: Held | None = None, on_note: Callable[[str], None] = lambda text: None,
    ) -> None:  # fmt: skip
        self.conn = conn
        self.table = table
        self.lock = lock  # checked before each statement of a no-transaction file
        self.on_note = on_note
        baseline = dict(settings)
        if conn.info.server_version >= 140000:
            baseline.update(_CLIENT_CHECK)
        conn.prepare_threshold = None  # the reset deallocates prepared statements
        self._baseline = settings_sql(baseline)
        self._tail = RESET + self._baseline
        self._tail_results = self._tail.count(";")
        if self._baseline:
            self._send(self._baseline)

    def _send(self, text: str) -> None:
        self.conn.execute(text.encode())  # no parameters: the simple protocol, several statements allowed

    def apply(self, script: Script) -> Applied | Skipped:
        """Apply one file with its tracking row; MigrationFailed says what, if anything, was kept.

        Skipped when another runner applied the file first: it claimed the file's row before this one.
        """
        if script.settings:
            self._send(settings_sql(script.settings))
        if script.no_transaction:
            return self._apply_each(script)
        return self._apply_whole(script)

    def _history(self, script: Script) -> bytes:
        migration = script.migration
        return history.insert_statement(self.conn, self.table, "apply", migration.version, migration.name, None,
                                        migration.checksum, variables=script.variables)  # fmt: skip

    def _record(self, script: Script, elapsed_ms: float | None = None) -> bytes:
        """The tracking row and its history row, sent after the last statement of a no-transaction file."""
        migration = script.migration
        if migration.version is None:
            row = repeatable.record_statement(self.conn, self.table, migration, elapsed_ms)
        else:
            row = tracking.insert_statement(self.conn, self.table, migration, elapsed_ms)
        return row + b";\n" + self._history(script)

    def _claim(self, script: Script) -> bytes:
        """The file's row, sent first in its transaction: a second runner at the same file stops here."""
        return _rows(script).claim_statement(self.conn, self.table, script.migration) + b";\n"

    def _finish(self, script: Script) -> bytes:
        """After the file, in its transaction: the time it took into its row, and its history row."""
        timing = _rows(script).timing_statement(self.conn, self.table, script.migration)
        return timing + b";\n" + self._history(script)

    def _apply_whole(self, script: Script) -> Applied | Skipped:
        """The file with its claim first; while another runner is applying the same file, its claim waits.

        A ``lock_timeout`` or ``statement_timeout`` that ends that wait is no failure of the file, none of
        which ran: the claim is sent again until the other runner's transaction ends, which either applied
        the file (Skipped) or rolled it back (this runner applies it).
        """
        told, since = False, time.monotonic()
        while (done := self._try_whole(script)) is None:
            if self.lock is not None:
                self.lock.check()
                self.lock.waited_too_long(script.name, since)
            if not told:
                self.on_note(f"{script.name} is being applied by another runner; waiting for it to finish")
                told = True
            time.sleep(_CLAIM_POLL_S)
        return done

    def _try_whole(self, script: Script) -> Applied | Skipped | None:
        """The file with its claim first; None when the claim gave up waiting for another runner's row."""
        claim = self._claim(script)
        after = (SEPARATOR + self._tail).encode() + self._finish(script)
        started = time.perf_counter()
        part: slice | None
        try:
            if script.cuts is None:
                results, part, ran = round_trip(self.conn, claim + script.body + after), _WHOLE, None  # type: ignore[operator]
            else:  # joined to its record, a big file would be copied whole once more
                results, part, ran = self._in_parts(script, claim, after)
        except KeyboardInterrupt as stop:
            self._rollback_if_open()
            raise self._interrupted(script, stop, []) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        failed = first_error(results)
        if failed:
            self._rollback_if_open()
            index, result = failed
            shift = 0
            if part is _WHOLE:  # that message began with the claim; the server counts from its start
                shift = len(claim.decode("utf-8"))
                position = error_field(result, _Field.STATEMENT_POSITION)
                if index == 0 and position and int(position) > shift:
                    index = 1  # a syntax error in the file: the message as a whole did not parse
                index -= 1
            if part is _CLAIM or index < 0:
                if error_field(result, _Field.SQLSTATE) in tracking.CLAIMED_ELSEWHERE:
                    return Skipped(script.migration.version, script.name)
                if _gave_up_waiting(result):
                    return None
                raise self._failure(script, result, claim_failed=True)
            if part is None:
                raise self._failure(script, result, after_file=True)
            raise self._failure(script, result, statement_index=index, part=part, shift=shift)
        # Every statement returns a result: the claim, the file's, then the reset, the timing and history rows.
        statements = ran if ran is not None else len(results) - self._tail_results - 3
        return Applied(script.migration.version, script.name, script.migration.checksum, statements, elapsed_ms,
                       wrapper_removed=script.wrapper_removed)  # fmt: skip

    def _in_parts(self, script: Script, claim: bytes, after: bytes) -> tuple[list[PGresult], slice | None, int]:
        """BEGIN and the claim, the file a part per message, then its record and COMMIT: no message holds much
        of a big file.

        Returns the last message's results, the part of the file it held (None: the record; _CLAIM: the
        claim), and how many of the file's statements ran.
        """
        self._send("BEGIN")
        results = round_trip(self.conn, claim)
        if first_error(results) is not None:
            return results, _CLAIM, 0
        claimed = _claim_xid(results)
        ran = 0
        checked_on = strings_standard(self.conn)
        try:
            with closing(_ahead(script.parts())) as parts:
                for part in parts:
                    if read_otherwise_now(self.conn, checked_on, part.data):
                        line = script.body.count(b"\n", 0, part.where.start) + 1
                        raise MigrationFailed(
                            turned_off(script.name, f"its part from line {line}") + ". It was rolled back: nothing of "
                            "it was kept, and later files did not run",
                            details={"file": str(script.migration.path), "version": script.migration.version},
                        )  # fmt: skip
                    results = round_trip(self.conn, part.data)
                    if first_error(results) is not None:
                        if self._forget_claim(script, claimed):  # it outlived the failure: the part committed it
                            where = f" before its byte {part.where.stop}"
                            raise self._ended_early(script, claimed, where, forgotten=True)
                        return results, part.where, ran
                    if self.conn.info.transaction_status != pq.TransactionStatus.INTRANS:
                        raise self._ended_early(script, claimed, f" before its byte {part.where.stop}")
                    ran += len(results)
        except MigrationFailed:  # the file changed while it was sent
            self._rollback_if_open()
            raise
        return round_trip(self.conn, after + b";\nCOMMIT"), None, ran

    def _ended_early(self, script: Script, claimed: str | None, where: str, forgotten: bool = False) -> MigrationFailed:
        """A COMMIT or ROLLBACK runner's checks did not see (a big file edited while it was sent) ended the file's
        transaction: a COMMIT took the claim with it, which goes, since the file did not run as one transaction
        (``forgotten``: it went already). A file held in memory is sent as it was checked, and cannot."""
        if not forgotten:
            forgotten = self._forget_claim(script, claimed) is not None
        recorded = "it was not recorded" if forgotten else (
            f"its record may be left: check `runner status`, and `runner unmark {script.name}` if it is")  # fmt: skip
        return MigrationFailed(
            f"{script.name} ended runner's transaction{where} (a COMMIT or ROLLBACK runner's checks did not see: the "
            f"file changed while it was sent): what ran of it before that may have been kept, and {recorded}. Check "
            "the database against the file",
            details={"file": str(script.migration.path), "version": script.migration.version,
                     "statements_kept": ["unknown"]},
        )  # fmt: skip

    def _forget_claim(self, script: Script, claimed: str | None) -> bool | None:
        """Delete this run's claim of the file if it outlived its transaction: whether it did (None: unknown). Only
        the row ``claimed``, the id of this run's transaction, wrote: another runner that took the lock over may
        have applied the file since, and its record stays."""
        if claimed is None:
            return False
        migration = script.migration
        forget = (repeatable.forget_statement(self.table, migration.name) if migration.version is None
                  else tracking.forget_statement(self.table, migration.version))  # fmt: skip
        try:
            self._rollback_if_open()
            ours = sql.SQL(" AND xmin::text = {}").format(sql.Literal(claimed))
            return self.conn.execute(forget + ours).rowcount == 1
        except psycopg.Error:
            return None

    def _rollback_if_open(self) -> None:
        rollback_if_open(self.conn)

    def _apply_each(self, script: Script) -> Applied | Skipped:
        """A statement at a time, under a lock of the file's own (see lock.file_lock), and with the run-wide
        lock checked before each statement: a runner that lost it stops before it runs anything more."""
        migration = script.migration
        version = migration.version if migration.version is not None else zlib.crc32(migration.name.encode())
        if self.lock is None:
            return self._run_each(script)
        key = file_key(self.table.lock_key, version)
        with file_lock(self.conn, key, script.name, self.lock, self.on_note) as waited:
            if waited and self._recorded(script):
                return Skipped(migration.version, script.name)  # the runner it waited for finished the file
            return self._run_each(script)

    def _run_each(self, script: Script) -> Applied:
        kept: list[Statement] = []
        started = time.perf_counter()
        checked_on = strings_standard(self.conn)
        for statement in script.statements:
            if read_otherwise_now(self.conn, checked_on, statement.text.encode()):
                raise MigrationFailed(
                    turned_off(script.name, f"its statement at line {statement.line}") + ". It runs without a "
                    f"transaction: {kept_statements(kept)}; the file was not recorded",
                    details={"file": str(script.migration.path), "version": script.migration.version,
                             "statements_kept": [s.line for s in kept]},
                )  # fmt: skip
            try:
                if self.lock is not None:
                    self.lock.check()
                results = round_trip(self.conn, statement.text.encode())
            except KeyboardInterrupt as stop:
                raise self._interrupted(script, stop, kept, statement) from None
            except LockLost as lost:
                raise LockLost(f"{lost}; {script.name} (no transaction) stopped before its statement at line "
                               f"{statement.line}: {kept_statements(kept)}; the file was not recorded"
                               ) from None  # fmt: skip
            failed = first_error(results)
            if failed:
                raise self._failure(script, failed[1], statement=statement, kept=kept)
            kept.append(statement)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if self.conn.info.transaction_status != pq.TransactionStatus.IDLE:
            self._send("ROLLBACK")
            raise MigrationFailed(
                f"{script.name} ends inside a transaction it opened and never committed; that transaction was rolled "
                f"back and the file was not recorded. Statements outside it (lines {lines_of(kept)}) may have been "
                "kept: end the file with COMMIT",
                details={"file": str(script.migration.path), "version": script.migration.version},
            )
        self._refuse_invalid_indexes(script, kept)
        results = round_trip(self.conn, self._tail.encode() + self._record(script, elapsed_ms))
        failed = first_error(results)
        if failed:
            raise self._failure(script, failed[1], kept=kept, after_file=True)
        return Applied(script.migration.version, script.name, script.migration.checksum, len(kept), elapsed_ms,
                       no_transaction=True)  # fmt: skip

    def _refuse_invalid_indexes(self, script: Script, kept: list[Statement]) -> None:
        """An index the file builds that is INVALID now was left by an earlier failed build, which the file's
        IF NOT EXISTS skipped: the file did not do its work, so it is not recorded."""
        left = invalid_among(self.conn, [s.text for s in kept], self.table.scope)
        if left:
            raise MigrationFailed(
                f"{script.name} ran, but " + "; ".join(index.describe() for index in left)
                + f". It runs without a transaction: {kept_statements(kept)}; the file was not recorded",
                details={"file": str(script.migration.path), "version": script.migration.version,
                         "invalid_indexes": [index.name for index in left], "statements_kept": [s.line for s in kept]},
            )  # fmt: skip

    def _recorded(self, script: Script) -> bool | None:
        """Whether the file's record exists: a cancel that came too late lets the transaction commit."""
        migration = script.migration
        try:
            if migration.version is None:
                return repeatable.recorded(self.conn, self.table, migration)
            return tracking.recorded(self.conn, self.table, migration.version, migration.checksum)
        except (psycopg.Error, KeyboardInterrupt):
            return None

    def _interrupted(
        self, script: Script, stop: KeyboardInterrupt, kept: list[Statement], running: Statement | None = None
    ) -> Interrupted:
        terminated = isinstance(stop, Terminated)
        cause = "SIGTERM" if terminated else "Ctrl-C"
        recorded = None if script.no_transaction else self._recorded(script)
        if script.no_transaction:
            text = (
                f"{script.name} was interrupted ({cause}): {kept_statements(kept, running)}; the file was not recorded"
            )
            text += "".join(f". Also: {index.describe()}" for index in self._invalid_indexes())
        elif recorded:
            text = f"interrupted ({cause}) just after {script.name} committed: it was applied and recorded"
        elif recorded is None:
            text = (
                f"{script.name} was interrupted ({cause}); it is either applied and recorded or not at all. "
                "Run `runner status` to see which"
            )
        else:
            text = (
                f"{script.name} was interrupted ({cause}) and rolled back: nothing of it was kept, and it was not "
                "recorded"
            )
        return Interrupted(text, terminated=terminated)

    def _failure(
        self,
        script: Script,
        result: PGresult,
        *,
        statement_index: int | None = None,
        statement: Statement | None = None,
        kept: list[Statement] | None = None,
        after_file: bool = False,
        claim_failed: bool = False,
        part: slice = _WHOLE,
        shift: int = 0,
    ) -> MigrationFailed:
        """Why the file failed and where; ``part`` is the part of the file the failing message held, and
        ``shift`` the characters of it that came before the file (the claim)."""
        sqlstate = error_field(result, _Field.SQLSTATE) or "?????"
        message = error_field(result, _Field.MESSAGE_PRIMARY) or "unknown error"
        position = error_field(result, _Field.STATEMENT_POSITION)
        offset = int(position) - shift if position else None
        if statement is not None and offset is not None:
            offset += statement.start  # the server counts from the start of the statement sent
        if after_file or claim_failed:  # a position in what followed the file, or came before it
            offset = statement_index = None
        text = "" if after_file or claim_failed else script.body[part].decode("utf-8")
        where = locate(text, offset, statement_index)
        if statement is not None and where.line is None:
            where = Location(statement_line=statement.line)
        if sqlstate == _SYNTAX_ERROR and (where.after_file or (offset or 0) > len(text)):
            opened = unterminated(text)  # the server saw the string end inside runner's own statements
            if opened is not None:
                where, message = opened
        where = in_file(where, script.body, part.start)
        if sqlstate == _SYNTAX_ERROR and message.startswith("unterminated"):
            message = message.split(" at or near ")[0]  # what follows quotes runner's own statements
        message = " ".join(message.split())  # one line, whatever the server quoted
        if claim_failed:
            summary = (f"{script.name} did not run: writing its row into {self.table}, which comes first, failed: "
                       f"{message} (SQLSTATE {sqlstate})")  # fmt: skip
        elif after_file or where.after_file:
            summary = f"{script.name} ran, but recording it in {self.table} failed: {message} (SQLSTATE {sqlstate})"
        else:
            place = where.describe()
            summary = f"{script.name} failed{' ' + place if place else ''}: {message} (SQLSTATE {sqlstate})"
        if script.no_transaction:
            outcome = f"It runs without a transaction: {kept_statements(kept or [])}; the file was not recorded"
            outcome += "".join(f". Also: {index.describe()}" for index in self._invalid_indexes())
        else:
            outcome = "It was rolled back: nothing of it was kept, and later files did not run"
        details: dict[str, object] = {
            "file": str(script.migration.path),
            "version": script.migration.version,
            "line": where.line or where.statement_line,
            "column": where.column,
            "sqlstate": sqlstate,
            "server_message": message,
            "detail": error_field(result, _Field.MESSAGE_DETAIL),
            "hint": error_field(result, _Field.MESSAGE_HINT),
            "context": error_field(result, _Field.CONTEXT),
            "statements_kept": [s.line for s in kept or []],
        }
        return MigrationFailed(f"{summary}. {outcome}", details=details)

    def _invalid_indexes(self) -> list[InvalidIndex]:
        try:
            return invalid_indexes(self.conn, self.table.scope)
        except (psycopg.Error, KeyboardInterrupt):
            return []
