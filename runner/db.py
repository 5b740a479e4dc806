"""Connecting to PostgreSQL, with errors a person can act on and no password in them."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from runner.errors import BadInput, ConnectionFailed

APPLICATION_NAME = "runner"
CONNECT_TIMEOUT_S = 10

_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
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
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    where = f"{host}:{params['port']}" if params.get("port") else host
    user = f"{params['user']}@" if params.get("user") else ""
    return f"{user}{where}/{params.get('dbname', '')}"


def error_text(exc: Exception, dsn: str | None = None) -> str:
    """A driver error as one line, without any password."""
    lines = [" ".join(line.split()) for line in str(exc).replace("connection failed: ", "").splitlines()]
    return redact("; ".join(line for line in lines if line), dsn)


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection; runner sends its own transaction boundaries."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise BadInput(
            f"the connection string is not valid: {error_text(exc, dsn)}; expected postgresql://user@host:port/dbname"
        ) from None
    defaults: dict[str, str | int] = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": APPLICATION_NAME}
    # Files are UTF-8 and are sent as bytes, so the session must read UTF-8 whatever the database encoding.
    conninfo = make_conninfo(dsn, **{k: v for k, v in defaults.items() if k not in params}, client_encoding="UTF8")
    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        raise ConnectionFailed(
            f"cannot connect to {describe(dsn)}: {error_text(exc, dsn)}; "
            "check --dsn or DATABASE_URL and that the server is running"
        ) from None
    except psycopg.Error as exc:
        raise BadInput(f"the connection string is not valid: {error_text(exc, dsn)}") from None


@contextmanager
def target(dsn: str | None, on_note: Callable[[str], None] | None = None) -> Iterator[str]:
    """The DSN to work on: the one given, else $DATABASE_URL, else the embedded server.

    The embedded server runs for as long as the block does (see runner.embedded).
    """
    dsn = dsn or os.environ.get("DATABASE_URL") or None
    if dsn:
        yield dsn
        return
    from runner import embedded  # only the no-server default needs it

    with embedded.server(on_note=on_note) as embedded_dsn:
        yield embedded_dsn
