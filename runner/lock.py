"""The run-wide migration lock: a session-level advisory lock, and the check that it is still held.

It is taken by polling ``pg_try_advisory_lock``, never by blocking in ``pg_advisory_lock``:
a backend blocked there holds a snapshot, and a lock holder's ``CREATE INDEX CONCURRENTLY``
would wait for that snapshot forever. The lock ends with the session, so a killed runner
never leaves it behind; runner holds it on a connection of its own unless it was handed one.

That session can end under a running runner (``pg_terminate_backend``, a proxy or network cut),
and another runner then takes the lock at once. So the lock is checked before each file and each
statement of a no-transaction file (``Held.check``), and each file is also claimed on its own (a
tracking row written first, or for a no-transaction file a lock of its own, ``file_lock``): a file
two runners reach together still runs once.
"""

from __future__ import annotations

import re
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import psycopg
from psycopg import pq

from runner.errors import ConnectionFailed, LockLost, LockTimeout

DEFAULT_WAIT_S = 120.0
_POLL_S = 0.2
# A session that ended says so on its socket at once; a round trip confirms it at most this often
# (a cut network says nothing until TCP gives up).
_CONFIRM_EVERY_S = 1.0

_HOLDER = """
SELECT a.pid, coalesce(nullif(a.application_name, ''), 'unknown application'),
       to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = %(subid)s
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = %(high)s::oid AND l.objid = %(low)s::oid
"""
_HELD = """
SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
               AND pid = pg_backend_pid() AND classid = %(high)s::oid AND objid = %(low)s::oid)
"""
# runner's application_name (see db.connect): its own process id and host, which the server's pid is not.
_RUNNER = r"runner (?P<pid>[0-9]+)@(?P<host>.+)"  # compiled by re when a message first needs it


def _halves(key: int) -> dict[str, int]:
    unsigned = key & 0xFFFFFFFFFFFFFFFF  # pg_locks shows a bigint key as two unsigned halves
    return {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF}


def _describe_holder(backend_pid: int, application: str, since: str) -> str:
    """Who holds a lock, as a person can act on it: runner's own process and host, not the server's pid."""
    found = re.fullmatch(_RUNNER, application)
    if found:
        return (f"runner process {found['pid']} on {found['host']} (connected since {since}; "
                f"server backend pid {backend_pid})")  # fmt: skip
    return f"server backend pid {backend_pid} ({application}, connected since {since})"


def _holder(conn: psycopg.Connection, halves: dict[str, int], subid: int = 1) -> str:
    """Who holds the advisory lock whose two halves are ``halves``; ``subid`` 1 for a bigint key, 2 for two int4."""
    row = conn.execute(_HOLDER, {"subid": subid, **halves}).fetchone()
    return _describe_holder(row[0], row[1], row[2]) if row else "another session"


def _try_lock(conn: psycopg.Connection, key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


class Held:
    """The migration lock while it is ours. ``check`` says whether it still is."""

    def __init__(self, conn: psycopg.Connection, key: int, shared: bool, wait_s: float = DEFAULT_WAIT_S) -> None:
        self.conn = conn
        self.key = key
        self.shared = shared  # held on the connection the files run on: losing it loses that one too
        self.wait_s = wait_s  # --lock-wait: also how long to wait for a file another runner is applying
        self._confirmed = time.monotonic()

    def waited_too_long(self, name: str, since: float) -> None:
        """LockTimeout once a file another runner is applying has kept this one waiting for --lock-wait."""
        if time.monotonic() - since > self.wait_s:
            raise LockTimeout(
                f"{name} was still being applied by another runner (or its row locked by another session) after "
                f"{self.wait_s:g}s; none of it ran here. Wait for that run to finish, or raise --lock-wait"
            )

    def _said_something(self) -> bool:
        """The idle lock session has something to read: a session that ended sends its reason and closes."""
        try:
            return bool(select.select([self.conn.fileno()], [], [], 0)[0])
        except (OSError, ValueError, psycopg.Error):
            return True

    def check(self) -> None:
        """Raise LockLost if the session holding the lock has ended; cheap enough to call before every statement."""
        if self.shared:
            return  # the files' own connection: its loss is a lost connection, reported as such
        if not self._said_something() and time.monotonic() - self._confirmed < _CONFIRM_EVERY_S:
            return
        reason = "the server no longer lists it"
        try:
            row = self.conn.execute(_HELD, _halves(self.key)).fetchone()
            held = bool(row and row[0])
        except psycopg.Error as exc:
            held, reason = False, " ".join(str(exc).split()) or "its session ended"
        if not held:
            raise LockLost(f"the session holding the migration lock ended ({reason})")
        self._confirmed = time.monotonic()


@contextmanager
def migration_lock(
    conn: psycopg.Connection, key: int, wait_s: float = DEFAULT_WAIT_S, on_note: Callable[[str], None] | None = None,
    *, shared: bool = False,
) -> Iterator[Held]:  # fmt: skip
    deadline = time.monotonic() + wait_s
    told = False
    try:
        while not _try_lock(conn, key):
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"the migration lock is held by {_holder(conn, _halves(key))}; gave up after {wait_s:g}s. "
                    "Wait for that run to finish, or raise --lock-wait"
                )
            if not told and on_note:
                on_note(f"Waiting for the migration lock, held by {_holder(conn, _halves(key))}")
                told = True
            time.sleep(_POLL_S)
    except psycopg.OperationalError as exc:
        from runner.db import error_text

        raise ConnectionFailed(
            f"lost the connection while waiting for the migration lock: {error_text(exc)}; nothing was applied. "
            "Run `runner migrate` again"
        ) from None
    try:
        yield Held(conn, key, shared, wait_s)
    finally:
        # A session that is gone took the lock with it; a borrowed one lives on and must let it go.
        if not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE:
            with suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def file_key(table_key: int, version: int) -> tuple[int, int]:
    """The two int4 keys of one file's own lock: a key space apart from the run-wide bigint key."""
    return (table_key >> 32) & 0x7FFFFFFF, version % 0x7FFFFFFF


@contextmanager
def file_lock(
    conn: psycopg.Connection, key: tuple[int, int], name: str, run_lock: Held, on_note: Callable[[str], None]
) -> Iterator[bool]:
    """A lock on one no-transaction file, held on the connection it runs on, for as long as it runs;
    yields whether another session had it first.

    A runner that lost the run-wide lock may still be inside such a file; the runner that took the
    lock over waits here for it to stop (it stops before its next statement), and then reads the
    tracking table again. Polled, like the run-wide lock, so waiting holds no snapshot.
    """
    told, since = False, time.monotonic()
    while not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()[0]:  # type: ignore[index]
        run_lock.check()
        run_lock.waited_too_long(name, since)
        if not told:
            holder = _holder(conn, {"high": key[0], "low": key[1]}, 2)
            on_note(f"{name} is being run by {holder}; waiting for it to stop")
            told = True
        time.sleep(_POLL_S)
    try:
        yield told
    finally:
        if not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE:
            with suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
