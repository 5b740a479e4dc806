"""The run-wide migration lock: a session-level advisory lock.

It is taken by polling ``pg_try_advisory_lock``, never by blocking in ``pg_advisory_lock``:
a backend blocked there holds a snapshot, and a lock holder's ``CREATE INDEX CONCURRENTLY``
would wait for that snapshot forever. The lock ends with the session, so a killed runner
never leaves it behind; runner holds it on a connection of its own unless it was handed one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import psycopg
from psycopg import pq

from runner.errors import LockTimeout

DEFAULT_WAIT_S = 120.0
_POLL_S = 0.2

_HOLDER = """
SELECT a.pid, coalesce(nullif(a.application_name, ''), 'unknown application'),
       to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = %(high)s::oid AND l.objid = %(low)s::oid
"""


def _holder(conn: psycopg.Connection, key: int) -> str:
    unsigned = key & 0xFFFFFFFFFFFFFFFF  # pg_locks shows a bigint key as two unsigned halves
    row = conn.execute(_HOLDER, {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF}).fetchone()
    return f"pid {row[0]} ({row[1]}, connected since {row[2]})" if row else "another session"


def _try_lock(conn: psycopg.Connection, key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


@contextmanager
def migration_lock(
    conn: psycopg.Connection, key: int, wait_s: float = DEFAULT_WAIT_S, on_note: Callable[[str], None] | None = None
) -> Iterator[None]:
    deadline = time.monotonic() + wait_s
    told = False
    while not _try_lock(conn, key):
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"the migration lock is held by {_holder(conn, key)}; gave up after {wait_s:g}s. "
                "Wait for that run to finish, or raise --lock-wait"
            )
        if not told and on_note:
            on_note(f"Waiting for the migration lock, held by {_holder(conn, key)}")
            told = True
        time.sleep(_POLL_S)
    try:
        yield
    finally:
        # A session that is gone took the lock with it; a borrowed one lives on and must let it go.
        if not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE:
            with suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
