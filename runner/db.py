"""Connecting to PostgreSQL, with errors a person can act on and no password in them."""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeAlias
from urllib.parse import unquote

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from runner.errors import BadInput, ConnectionFailed

APPLICATION_NAME = "runner"
CONNECT_TIMEOUT_S = 10
# libpq reads these when no DSN is given, as psql does; any of them names a server to use.
LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE")
_WAIT_POLL_S = 0.5

# The options whose value is a secret: the password, and the keys and passphrases beside it.
SECRET_KEYS = ("password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key")
_SECRET_KEY = r"(?:ssl)?password|oauth_client_secret|scram_(?:client|server)_key"
# Patterns, not compiled ones: re compiles each when first used and keeps it, and most runs redact nothing.
_URL_SCHEME = r"(?i)^\s*postgres(?:ql)?://"
_URL_PASSWORD = r"(?i)(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@"
_URL_AUTHORITY = r"(?i)[a-z][a-z0-9+.-]*://(?P<authority>[^/?#]*)"
_QUERY_SECRET = rf"(?i)(?P<head>[?&](?:{_SECRET_KEY})=)[^&#\s]*"
_KEYWORD_SECRET = rf"(?i)(?P<head>(?<![?&\w])(?:{_SECRET_KEY})\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|(?:[^\s\\]|\\.)+)"
_KEYWORD = r"(?i)^\s*(?P<key>[a-z_]+)\s*="
# Where libpq may cut a secret and quote only a part of it: a '/' ends a URL's authority, a space
# a key=value word, '&' and '=' a query parameter.
_CUTS = r"[\s/&=]+"
_SHORTEST_PART = 3  # shorter parts of a secret are not worth blanking out of every message
# libpq's complaints about an option's value (a port that is not a number, an unknown sslmode, a
# service that is not defined): the connection string is wrong, whether or not a server is there.
_BAD_OPTION = (
    r'invalid [^:"]*("[^"]*" )?value|invalid port number|could not match \d+ (port numbers|host names) to \d+'
    r'|could not parse network address|definition of service "[^"]*" not found|service file "[^"]*" not found'
    r"|weak sslmode|is specified more than once|invalid SSL protocol version range|SSL support is not compiled in"
    r"|Servname not supported"  # psycopg resolving a host name with a port that is not a number
)


@functools.cache
def _libpq_keywords() -> frozenset[str]:
    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


def _words_after(text: str) -> list[str]:
    """The words that follow a secret up to the next ``key=``: libpq reads an unquoted space as the end of
    the value, so a password with a space in it spills into what it takes for more options, and quotes them."""
    words = []
    while text.strip():
        key = re.match(_KEYWORD, text)
        if key and key["key"] in _libpq_keywords():
            break
        word, _, text = text.lstrip().partition(" ")
        words.append(word)
    return words


def _keyword_value(text: str) -> tuple[str, str]:
    """The value at the start of ``text`` as libpq reads a key=value word (quoted or not), and what follows."""
    quoted = text.startswith("'")
    end = 1 if quoted else 0
    while end < len(text):
        if text[end] == "\\":
            end += 2
        elif quoted and text[end] == "'":
            return text[: end + 1], text[end + 1 :]
        elif not quoted and text[end].isspace():
            break
        else:
            end += 1
    return text[:end], text[end:]


def _keyword_secrets(dsn: str) -> list[str]:
    found = []
    for match in re.finditer(rf"(?:^|\s)(?:{_SECRET_KEY})\s*=\s*", dsn, re.IGNORECASE):
        raw, rest = _keyword_value(dsn[match.end() :])
        found += [raw, re.sub(r"\\(.)", r"\1", raw.strip("'")), *_words_after(rest)]
    return found


def _url_secrets(dsn: str) -> list[str]:
    rest = re.sub(_URL_SCHEME, "", dsn, count=1)
    found = []
    # libpq's userinfo ends at the first '@'; the writer's may run to the last one (an unencoded '@' or '/')
    for end in {rest.find("@"), rest.rfind("@")} - {-1}:
        _, colon, password = rest[:end].partition(":")
        if colon:
            found.append(password)
    # libpq decodes a query parameter's name too: ?pass%77ord= is a password
    for match in re.finditer(r"[?&](?P<key>[^=&#]*)=", rest):
        if not re.fullmatch(_SECRET_KEY, unquote(match["key"]), re.IGNORECASE):
            continue
        value, *others = rest[match.end() :].split("&")
        found.append(value)
        for other in others:  # an unencoded '&' in the value: libpq quotes what follows it
            if other.partition("=")[0] in _libpq_keywords():
                break
            found.append(other)
    return found + [unquote(piece) for piece in found]


def secrets(dsn: str | None) -> list[str]:
    """Every secret in ``dsn`` (and in PGPASSWORD), and each part of one that libpq may quote alone, longest first.

    libpq's own parser finds them only in a string it can parse, and the strings it cannot parse
    are the very ones whose errors quote them. So they are also looked for by hand: the userinfo
    and the query of a URL, as written and decoded, and the value of a key=value secret, quoted or
    not, with the words an unquoted space spilled it into.
    """
    found = {os.environ.get("PGPASSWORD", "")}
    if dsn:
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error:
            params = {}
        found.update(str(params[key]) for key in SECRET_KEYS if params.get(key))
        found.update(_url_secrets(dsn) if re.match(_URL_SCHEME, dsn) else _keyword_secrets(dsn))
    parts = {part for whole in found for part in re.split(_CUTS, whole) if len(part) >= _SHORTEST_PART}
    return sorted((found | parts) - {""}, key=len, reverse=True)


def _blank(text: str, secret: str) -> str:
    if len(secret) > _SHORTEST_PART:
        return text.replace(secret, "***")
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)  # not inside a word


def redact(text: str, dsn: str | None = None) -> str:
    """``text`` without any secret of ``dsn`` or PGPASSWORD, nor any other URL or key=value password in it."""
    for secret in secrets(dsn):
        text = _blank(text, secret)
    text = re.sub(_URL_PASSWORD, lambda m: m["head"] + "***@", text)
    text = re.sub(_QUERY_SECRET, lambda m: m["head"] + "***", text)
    return re.sub(_KEYWORD_SECRET, lambda m: m["head"] + "***", text)


def describe(dsn: str, *, defaults: bool = False) -> str:
    """A short, password-free name of the target: user@host:port/dbname.

    With ``defaults``, libpq's own choice fills in what neither the DSN nor its PG* variables say:
    the user runner runs as, port 5432, the database named after the user, and its default Unix
    socket, which psql's prompt calls [local].
    """
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return redact(dsn, dsn)
    service = params.get("service") or os.environ.get("PGSERVICE")
    if service and not params.get("host"):
        return f"service {service}"

    def param(key: str, variable: str) -> str:  # libpq takes what the DSN lacks from the environment
        return str(params.get(key) or os.environ.get(variable) or "")

    host = param("host", "PGHOST") or param("hostaddr", "PGHOSTADDR") or ("[local]" if defaults else "localhost")
    port, user, dbname = param("port", "PGPORT"), param("user", "PGUSER"), param("dbname", "PGDATABASE")
    if defaults:
        import pwd  # libpq names the user after the effective uid, not $USER

        user = user or pwd.getpwuid(os.geteuid()).pw_name
        port, dbname = port or "5432", dbname or user
    # redacted too: a URL with an unencoded '/' in its password is read with a part of it as the port
    return redact(f"{user + '@' if user else ''}{host}{':' + port if port else ''}/{dbname}", dsn)


def libpq_variables() -> list[str]:
    """The PG* variables that are set: with no DSN, any of them makes runner use libpq's environment."""
    return [variable for variable in LIBPQ_ENV if os.environ.get(variable)]


class Choice(NamedTuple):
    """Which server the commands use, and why, as --verbose and `runner db url` say it."""

    source: str  # where the DSN came from (--dsn, DATABASE_URL, a pyproject.toml), "libpq environment", "embedded"
    name: str  # user@host:port/dbname, never with a password; empty for the embedded server
    reason: str

    def __str__(self) -> str:
        if self.source == "embedded":
            return f"the embedded PostgreSQL ({self.reason})"
        if self.source == "libpq environment":
            return f"{self.name} from libpq's environment ({self.reason}), not the embedded PostgreSQL"
        return f"{self.name} ({self.reason})"


def choose(dsn: str | None, source: str) -> Choice:
    """The server of ``dsn`` (set in ``source``), else the one db.target() falls back to, and why."""
    if dsn:
        return Choice(source, describe(dsn), f"from {source}")
    variables = libpq_variables()
    if variables:
        said = f"{', '.join(variables)} {'is' if len(variables) == 1 else 'are'} set"
        return Choice("libpq environment", describe("", defaults=True), said)
    return Choice("embedded", "", "no --dsn, DATABASE_URL, database-url or PG* variable is set")


def error_text(exc: Exception, dsn: str | None = None) -> str:
    """A driver error as one line, without any password."""
    lines = [" ".join(line.split()) for line in re.sub(r"^connection (failed|is bad): ", "", str(exc)).splitlines()]
    return redact("; ".join(line for line in lines if line), dsn)


# What the library takes: a DSN, an application's open connection, or None for the default
# ($DATABASE_URL, libpq's environment, the embedded server).
Database: TypeAlias = str | psycopg.Connection | None


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


def create_if_missing(conn: psycopg.Connection, statement: sql.Composable) -> None:
    """Run a CREATE ... IF NOT EXISTS that another runner may be running at the same moment (one whose lock
    session was lost): the loser of that race gets unique_violation from the catalog's own index, which
    means the object now exists. In a savepoint, so a caller's transaction goes on."""
    try:
        with conn.transaction():
            conn.execute(statement)
    except psycopg.errors.UniqueViolation:
        pass


def application_name() -> str:
    """``runner <pid>@<host>``: what a DBA needs to find the process, in pg_stat_activity and in lock messages."""
    name = f"{APPLICATION_NAME} {os.getpid()}@{os.uname().nodename}"
    return name.encode("ascii", "replace").decode()[:63]  # the server keeps 63 bytes of ASCII


def parse(dsn: str) -> dict[str, Any]:
    """The options of a connection string; BadInput, without its secrets, when libpq cannot read it."""
    url = re.match(_URL_AUTHORITY, dsn)
    if url and url["authority"].count("@") > 1:  # the part after the first @ would be taken for the host
        raise BadInput(
            "the connection URL has more than one '@' before the host; write an '@' in the user name or password as %40"
        )
    try:
        return conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise BadInput(
            f"the connection string is not valid: {error_text(exc, dsn)}; expected postgresql://user@host:port/dbname"
        ) from None


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection; runner sends its own transaction boundaries."""
    params = parse(dsn)
    defaults: dict[str, str | int] = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": application_name()}
    # Files are UTF-8 and are sent as bytes, so the session must read UTF-8 whatever the database encoding.
    conninfo = make_conninfo(dsn, **{k: v for k, v in defaults.items() if k not in params}, client_encoding="UTF8")
    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        if re.search(_BAD_OPTION, str(exc)):  # a port that is no number is the string's fault, not the server's
            where = "the connection string" if dsn else "libpq's environment (its PG* variables)"
            text = error_text(exc, dsn)
            if "Servname not supported" in text:  # psycopg's words for it, where libpq's are clearer
                text = redact(f'invalid port number: "{params.get("port") or os.environ.get("PGPORT")}"', dsn)
            raise BadInput(f"{where} is not valid: {text}") from None
        raise ConnectionFailed(
            f"cannot connect to {describe(dsn, defaults=not dsn)}: {error_text(exc, dsn)}; "
            "check --dsn or DATABASE_URL and that the server is running"
        ) from None
    except psycopg.Error as exc:
        raise BadInput(f"the connection string is not valid: {error_text(exc, dsn)}") from None


def _idle_proof(dsn: str) -> psycopg.Connection | Exception:
    """A connection that may sit idle on purpose, which no idle_session_timeout ends; or why there is none."""
    try:
        conn = connect(dsn)
        if conn.info.server_version >= 140000:
            conn.execute("SET idle_session_timeout = 0")
        return conn
    except Exception as exc:  # handed to the thread that asked
        return exc


@contextmanager
def lock_sessions(dsn: str) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """The connection files run on, and the one that holds the migration lock: both idle on purpose (the lock's,
    and the other while it waits for the lock). The second is opened while the first is, as a connection is
    mostly waiting for a new server process: the pair costs the time of one.
    """
    other: list[psycopg.Connection | Exception] = []
    opening = threading.Thread(target=lambda: other.append(_idle_proof(dsn)), daemon=True)
    opening.start()
    try:
        opened = [_idle_proof(dsn)]
    finally:
        opening.join()
    connections = [c for c in opened + other if isinstance(c, psycopg.Connection)]
    failures = [c for c in opened + other if isinstance(c, Exception)]
    if failures:
        for conn in connections:
            conn.close()
        raise failures[0]
    with connections[0] as conn, connections[1] as holder:
        yield conn, holder


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
    if libpq_variables():
        yield ""
        return
    from runner import embedded  # only the no-server default needs it

    with embedded.server(on_note=on_note) as embedded_dsn:
        yield embedded_dsn
