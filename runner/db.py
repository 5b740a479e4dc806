"""Connecting to PostgreSQL, with errors a person can act on and no password in them."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from runner.errors import BadInput, ConnectionFailed

APPLICATION_NAME = "runner"
CONNECT_TIMEOUT_S = 10
# libpq reads these when no DSN is given, as psql does; any of them names a server to use.
LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE")
_WAIT_POLL_S = 0.5

_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
_URL_AUTHORITY = re.compile(r"[a-z][a-z0-9+.-]*://(?P<authority>[^/?#]*)", re.IGNORECASE)
# libpq's complaint about an option's value, found before any connection is tried
_BAD_OPTION = re.compile(r"^(connection is bad: )?invalid .*value", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(?P<head>password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def _password(dsn: str) -> str | None:
    try:
        return conninfo_to_dict(dsn).get("password")  # type: ignore[return-value]
    except psycopg.Error:
        return None


def redact(text: str, dsn: str | None = None) -> str:
    """Remove any password (from a URL, a key=value string or the DSN itself) from ``text``."""
    password = _password(dsn) if dsn else None
    if password:
        text = text.replace(password, "***")
    text = _URL_PASSWORD.sub(lambda m: m["head"] + "***@", text)
    return _KEYWORD_PASSWORD.sub(lambda m: m["head"] + "***", text)


def describe(dsn: str) -> str:
    """A short, password-free name of the target: user@host:port/dbname."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return redact(dsn, dsn)
    service = params.get("service") or os.environ.get("PGSERVICE")
    if service and not params.get("host"):
        return f"service {service}"

    def param(key: str, variable: str) -> str:  # libpq takes what the DSN lacks from the environment
        return str(params.get(key) or os.environ.get(variable) or "")

    host = param("host", "PGHOST") or param("hostaddr", "PGHOSTADDR") or "localhost"
    port, user = param("port", "PGPORT"), param("user", "PGUSER")
    return f"{user + '@' if user else ''}{host}{':' + port if port else ''}/{param('dbname', 'PGDATABASE')}"


def error_text(exc: Exception, dsn: str | None = None) -> str:
    """A driver error as one line, without any password."""
    lines = [" ".join(line.split()) for line in re.sub(r"^connection (failed|is bad): ", "", str(exc)).splitlines()]
    return redact("; ".join(line for line in lines if line), dsn)


# What the library takes: a DSN, an application's open connection, or None for the default
# ($DATABASE_URL, libpq's environment, the embedded server).
Database = str | psycopg.Connection | None


@contextmanager
def borrowed(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An application's open connection, in autocommit and UTF-8 while runner uses it, then as it came.

    It must be idle: runner's transactions cannot nest in the application's.
    """
    if conn.closed:
        raise BadInput("the connection given to runner is closed; pass an open one, or a DSN")
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise BadInput("the connection given to runner is inside a transaction; commit or roll back first")
    autocommit, prepare_threshold = conn.autocommit, conn.prepare_threshold
    encoding = conn.info.parameter_status("client_encoding")
    conn.autocommit = True
    if encoding != "UTF8":  # files are sent as UTF-8 bytes
        conn.execute("SET client_encoding TO 'UTF8'")
    try:
        yield conn
    finally:
        if not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE:
            if encoding not in ("UTF8", None):
                conn.execute("SELECT set_config('client_encoding', %s, false)", (encoding,))
            files_ran = conn.prepare_threshold != prepare_threshold  # apply.Session turns preparing off
            conn.prepare_threshold = prepare_threshold
            if files_ran:  # their reset deallocated prepared statements behind psycopg's back:
                conn.execute("DEALLOCATE ALL")  # said through psycopg, it forgets them too
            conn.autocommit = autocommit


def application_name() -> str:
    """``runner <pid>@<host>``: what a DBA needs to find the process, in pg_stat_activity and in lock messages."""
    name = f"{APPLICATION_NAME} {os.getpid()}@{os.uname().nodename}"
    return name.encode("ascii", "replace").decode()[:63]  # the server keeps 63 bytes of ASCII


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection; runner sends its own transaction boundaries."""
    url = _URL_AUTHORITY.match(dsn)
    if url and url["authority"].count("@") > 1:  # the part after the first @ would be taken for the host
        raise BadInput(
            "the connection URL has more than one '@' before the host; write an '@' in the user name or password as %40"
        )
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise BadInput(
            f"the connection string is not valid: {error_text(exc, dsn)}; expected postgresql://user@host:port/dbname"
        ) from None
    defaults: dict[str, str | int] = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": application_name()}
    # Files are UTF-8 and are sent as bytes, so the session must read UTF-8 whatever the database encoding.
    conninfo = make_conninfo(dsn, **{k: v for k, v in defaults.items() if k not in params}, client_encoding="UTF8")
    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        if _BAD_OPTION.match(str(exc)):
            raise BadInput(f"the connection string is not valid: {error_text(exc, dsn)}") from None
        raise ConnectionFailed(
            f"cannot connect to {describe(dsn)}: {error_text(exc, dsn)}; "
            "check --dsn or DATABASE_URL and that the server is running"
        ) from None
    except psycopg.Error as exc:
        raise BadInput(f"the connection string is not valid: {error_text(exc, dsn)}") from None


def wait_for(dsn: str, seconds: float, on_note: Callable[[str], None] | None = None) -> None:
    """Retry connecting until the server accepts, for containers that start together (--wait-for-db)."""
    if seconds <= 0:
        return  # the first real connection reports any problem
    deadline = time.monotonic() + seconds
    told = False
    while True:
        try:
            connect(dsn).close()
            return
        except ConnectionFailed as failure:
            if time.monotonic() >= deadline:
                raise ConnectionFailed(f"{failure} (waited {seconds:g}s, --wait-for-db)") from None
            if not told and on_note:
                on_note(f"Waiting up to {seconds:g}s for the database at {describe(dsn)} to accept connections")
                told = True
            time.sleep(_WAIT_POLL_S)


@contextmanager
def target(dsn: str | None, on_note: Callable[[str], None] | None = None) -> Iterator[str]:
    """The DSN to work on: the one given, else $DATABASE_URL, else libpq's environment (PGHOST,
    PGSERVICE, ...), else the embedded server.

    An empty DSN lets libpq take everything from its environment and files (the service file,
    ~/.pgpass), as psql does. The embedded server runs for as long as the block does.
    """
    dsn = dsn or os.environ.get("DATABASE_URL") or None
    if dsn:
        yield dsn
        return
    if any(os.environ.get(variable) for variable in LIBPQ_ENV):
        yield ""
        return
    from runner import embedded  # only the no-server default needs it

    with embedded.server(on_note=on_note) as embedded_dsn:
        yield embedded_dsn
