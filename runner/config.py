"""Project settings: flags, then environment variables, then ``[tool.runner]`` in pyproject.toml, then defaults.

The pyproject.toml is the nearest one at or above the folder runner starts from, as ruff and
pytest find theirs: runner then behaves the same from any sub-folder of the project, and a
relative ``dir`` in it is read from the folder that holds the file, not from where runner runs; so is
the default, ``sql`` beside the pyproject.toml. ``RUNNER_DIR`` and ``--dir`` are read from the current
folder, as a shell path is.
The search stops at the first pyproject.toml found, with or without a ``[tool.runner]`` table:
that file marks the project, and the settings of an enclosing project must not leak into it.

An unknown key is an error, never ignored, so a typo cannot silently leave a default in force.
``database-url`` is accepted, for a development database or a libpq service name, but not with
a password in it: pyproject.toml is committed, and a password belongs in ``~/.pgpass``,
``PGPASSWORD`` or ``DATABASE_URL``.

This module only reads: the CLI passes the flags it was given, and the library and the pytest
plugin call ``load()`` to see what the project configured.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from runner.errors import BadInput

if TYPE_CHECKING:
    from runner.targets import TargetSpec

DEFAULT_DIR = "sql"  # the same as runner.api.DEFAULT_DIR (a test holds them equal), without importing the API
DEFAULT_TABLE = "public.runner_migrations"  # runner.tracking.DEFAULT_TABLE, likewise
DEFAULT_LOCK_WAIT_S = 120.0  # runner.lock.DEFAULT_WAIT_S, likewise
PYPROJECT = "pyproject.toml"
URL_FORM = "postgresql://user@host:port/dbname"
TABLE = "[tool.runner]"
LINT_TABLE = "[tool.runner.lint]"
LINT_KEYS = ("exclude", "pg-version")
VARIABLES_TABLE = "[tool.runner.variables]"
DEFAULT = "default"  # the source of a value nobody set
_TRUE = {"1", "true", "t", "yes", "y", "on"}  # what click accepts for a boolean flag's variable, so both agree
_FALSE = {"0", "false", "f", "no", "n", "off"}


class LintSettings(NamedTuple):
    exclude: tuple[str, ...] = ()
    pg_version: str | None = None


@dataclass(frozen=True)
class Settings:
    """What a command runs with. ``dir`` is absolute when it came from pyproject.toml or is the default of a
    project (the ``sql`` beside its pyproject.toml), else as given."""

    dir: Path = Path(DEFAULT_DIR)
    table: str = DEFAULT_TABLE
    database_url: str | None = None  # None: libpq's environment, else the embedded server
    lock_wait: float = DEFAULT_LOCK_WAIT_S
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    retries: int = 0
    wait_for_db: float = 0.0
    strict: bool = False
    allow_out_of_order: bool = False
    schema_file: Path | None = None  # rewritten by migrate after it applies files (runner.schema_file)
    rollback: bool = True  # false: `runner rollback` and `redo` refuse to run (a production target)
    lint: LintSettings = LintSettings()
    targets: Mapping[str, TargetSpec] = field(default_factory=dict, hash=False)  # [tool.runner.targets], checked
    variables: Mapping[str, str] = field(default_factory=dict, hash=False)  # psql variables' values, by name
    pyproject: Path | None = None  # the file read, if one was found
    # field -> where its value came from: a flag, an environment variable, the pyproject.toml, or DEFAULT
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)


Parse = Callable[[Any, str, bool], Any]  # (value, where it was set, whether it is text from the environment)


def _said(where: str, value: object, from_env: bool) -> str:
    """How a message names a value: ``RUNNER_RETRIES='abc'`` or ``pyproject.toml: [tool.runner] retries = -1``."""
    return f"{where}={value!r}" if from_env else f"{where} = {json.dumps(value, default=str)}"


def _text(value: object, where: str, from_env: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{_said(where, value, from_env)} is not a non-empty string")
    return value


def _path(value: object, where: str, from_env: bool) -> Path:
    return Path(_text(value, where, from_env))


def _table(value: object, where: str, from_env: bool) -> str:
    from runner.tracking import TrackingTable

    text = _text(value, where, from_env)
    try:
        TrackingTable.parse(text)
    except BadInput as error:  # its message starts "--table 'text': ..."
        raise BadInput(f"{where}: {str(error).removeprefix('--table ')}") from None
    return text


def _url(value: object, where: str, from_env: bool) -> str:
    """A connection string; in the committed file, a valid one without a password (no message shows it)."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    text = _text(value, where, from_env)
    if from_env:
        return text  # connecting checks it, with the messages runner gives for --dsn
    try:
        password = conninfo_to_dict(text).get("password")
    except Error:
        raise BadInput(f"{where} is not a valid connection string; expected {URL_FORM}") from None
    if password:
        raise BadInput(
            f"{where} holds a password, and {PYPROJECT} is committed: leave it out of the URL and put it in "
            "~/.pgpass or PGPASSWORD, or give the whole URL in DATABASE_URL"
        )
    return text


def _duration(value: object, where: str, from_env: bool) -> str:
    from runner.directives import DURATION_RULE, MAX_MS, duration_ms

    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value  # bare: seconds
    if not isinstance(text, str) or duration_ms(text) is None:
        raise BadInput(f"{_said(where, value, from_env)} is not a duration; expected {DURATION_RULE}")
    if (duration_ms(text) or 0) > MAX_MS:  # checked here too, so the message names the key, not the flag
        raise BadInput(f"{_said(where, value, from_env)} is longer than PostgreSQL allows ({MAX_MS}ms, about "
                       "24 days); use a shorter duration, or 0 for no limit")  # fmt: skip
    return text


def _number(value: object, from_env: bool, kind: type[int] | type[float]) -> int | float | None:
    """``value`` as a number of ``kind`` that is 0 or more, else None; TOML gives numbers, the environment text."""
    if from_env:
        try:
            value = kind(str(value))
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int if kind is int else int | float):
        return None
    return value if value >= 0 else None


def _seconds(value: object, where: str, from_env: bool) -> float:
    number = _number(value, from_env, float)
    if number is None:
        raise BadInput(f"{_said(where, value, from_env)} is not a number of seconds (0 or more)")
    return float(number)


def _count(value: object, where: str, from_env: bool) -> int:
    number = _number(value, from_env, int)
    if number is None:
        raise BadInput(f"{_said(where, value, from_env)} is not a whole number (0 or more)")
    return int(number)


def _bool(value: object, where: str, from_env: bool) -> bool:
    if from_env and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, bool) and not from_env:
        return value
    expected = "1, true, yes or on; 0, false, no or off" if from_env else "true or false"
    raise BadInput(f"{_said(where, value, from_env)} is not a boolean; expected {expected}")


class Key(NamedTuple):
    """One setting, under each of its names."""

    name: str  # in [tool.runner]
    field: str  # of Settings
    env: str
    flag: str
    parse: Parse


KEYS = (
    Key("dir", "dir", "RUNNER_DIR", "--dir", _path),
    Key("table", "table", "RUNNER_TABLE", "--table", _table),
    Key("database-url", "database_url", "DATABASE_URL", "--dsn", _url),
    Key("lock-wait", "lock_wait", "RUNNER_LOCK_WAIT", "--lock-wait", _seconds),
    Key("lock-timeout", "lock_timeout", "RUNNER_LOCK_TIMEOUT", "--lock-timeout", _duration),
    Key("statement-timeout", "statement_timeout", "RUNNER_STATEMENT_TIMEOUT", "--statement-timeout", _duration),
    Key("retries", "retries", "RUNNER_RETRIES", "--retries", _count),
    Key("wait-for-db", "wait_for_db", "RUNNER_WAIT_FOR_DB", "--wait-for-db", _seconds),
    Key("strict", "strict", "RUNNER_STRICT", "--strict", _bool),  # of migrate and plan; verify's and lint's differ
    Key("allow-out-of-order", "allow_out_of_order", "RUNNER_ALLOW_OUT_OF_ORDER", "--allow-out-of-order", _bool),
    Key("schema-file", "schema_file", "RUNNER_SCHEMA_FILE", "--schema-file", _path),
    Key("rollback", "rollback", "RUNNER_ROLLBACK", "rollback = false", _bool),  # no flag: a target's setting
)
BY_FIELD = {key.field: key for key in KEYS}
_PATHS = ("dir", "schema_file")  # in the pyproject.toml, relative to its folder


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` (default: the current folder)."""
    folder = (start or Path.cwd()).absolute()
    for candidate in (folder, *folder.parents):
        path = candidate / PYPROJECT
        if path.is_file():
            return path
    return None


def shown(path: Path) -> str:
    """A path as a person reads it in a message: relative to the current folder when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _unknown(key: str, table: str, path: Path, known: tuple[str, ...]) -> BadInput:
    import difflib  # only for a mistake: it costs every run that makes none a few milliseconds

    close = difflib.get_close_matches(key.replace("_", "-"), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return BadInput(f"{shown(path)}: unknown key {key!r} in {table}; runner knows {', '.join(known)}{hint}")


def _read(path: Path) -> dict[str, Any]:
    """``[tool.runner]`` of ``path``, checked for unknown keys; empty when the file has none."""
    import tomllib  # only when there is a file to read

    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"{shown(path)}: cannot read it ({exc})") from None
    tool = document.get("tool", {})
    table = tool.get("runner", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise BadInput(f"{shown(path)}: tool.runner must be a table, {TABLE}")
    known = tuple(key.name for key in KEYS) + ("lint", "targets", "variables")
    for name in table:
        if name not in known:
            raise _unknown(name, TABLE, path, known)
    return table


def _lint(table: dict[str, Any], path: Path) -> LintSettings:
    lint = table.get("lint", {})
    if not isinstance(lint, dict):
        raise BadInput(f"{shown(path)}: lint in {TABLE} must be a table, {LINT_TABLE}")
    for name in lint:
        if name not in LINT_KEYS:
            raise _unknown(name, LINT_TABLE, path, LINT_KEYS)
    exclude, pg_version = lint.get("exclude", []), lint.get("pg-version")
    if not (isinstance(exclude, list) and all(isinstance(rule, str) for rule in exclude)):
        raise BadInput(
            f'{shown(path)}: {LINT_TABLE} exclude must be a list of squawk rule names, e.g. ["ban-drop-column"]'
        )
    if pg_version is not None and not isinstance(pg_version, str):
        raise BadInput(f'{shown(path)}: {LINT_TABLE} pg-version must be a string, e.g. "16"')
    return LintSettings(tuple(exclude), pg_version)


def _targets(table: dict[str, Any], path: Path) -> Mapping[str, TargetSpec]:
    from runner.targets import read_specs  # only a project that names targets reads them

    return read_specs(table["targets"], f"{shown(path)}: ") if "targets" in table else {}


def _variables(table: dict[str, Any], path: Path) -> dict[str, str]:
    """``[tool.runner.variables]``: a value for each psql variable the files use (``:name``), as text."""
    found = table.get("variables", {})
    if not isinstance(found, dict):
        raise BadInput(f'{shown(path)}: variables in {TABLE} must be a table, {VARIABLES_TABLE} with name = "value"')
    if not found:
        return {}
    from runner.variables import check  # only for a project that has some: it compiles psql's rules

    return check(found, f"{shown(path)}: {VARIABLES_TABLE}")


def lint_settings(start: Path | None = None) -> LintSettings:
    """``[tool.runner.lint]``: the rules runner lint leaves out, and the PostgreSQL version squawk assumes."""
    path = find_pyproject(start)
    return _lint(_read(path), path) if path else LintSettings()


def load(
    start: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Settings:
    """The settings in force: ``flags`` (Settings field -> a value typed on the command line, None for
    none), then the environment, then the pyproject.toml nearest ``start``, then the defaults.

    Raises BadInput naming the variable or the key for a value that is unknown or malformed.
    """
    environ = os.environ if environ is None else environ
    path = find_pyproject(start)
    lint, variables, from_file = LintSettings(), {}, {}
    targets: Mapping[str, TargetSpec] = {}
    # Every value set is checked, even one a higher layer overrides: a mistake is never left for later.
    if path is not None:
        table = _read(path)
        lint = _lint(table, path)
        targets = _targets(table, path)
        variables = _variables(table, path)
        from_file = {key.field: _from_file(key, table[key.name], path) for key in KEYS if key.name in table}
    from_env = {key.field: key.parse(environ[key.env], key.env, True) for key in KEYS if environ.get(key.env)}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in KEYS:
        if flags and flags.get(key.field) is not None:  # checked by typer, and by the library with the flag's name
            value = flags[key.field]
            values[key.field], sources[key.field] = Path(str(value)) if key.field in _PATHS else value, key.flag
        elif key.field in from_env:  # an empty variable counts as unset, as `VAR= runner ...` means in a shell
            values[key.field], sources[key.field] = from_env[key.field], key.env
        elif key.field in from_file:
            values[key.field], sources[key.field] = from_file[key.field], shown(path or Path(PYPROJECT))
        else:
            sources[key.field] = DEFAULT
            if key.field == "dir" and path is not None:  # the project's own folder, from any of its sub-folders
                values["dir"] = path.parent / DEFAULT_DIR
    return Settings(**values, lint=lint, targets=targets, variables=variables, pyproject=path, sources=sources)


def _from_file(key: Key, value: object, path: Path) -> Any:
    """A value of [tool.runner]; a relative ``dir`` is read from the file's folder."""
    parsed = key.parse(value, f"{shown(path)}: {TABLE} {key.name}", False)
    return path.parent / parsed if key.field in _PATHS and not parsed.is_absolute() else parsed
