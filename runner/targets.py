"""The targets of a fleet run: which databases, and which tenant schemas in them, one run migrates.

They come from ``[tool.runner.targets]`` in pyproject.toml (picked with ``--target NAME``), from
``--dsn`` and from ``--targets-file``, and a database becomes one target per tenant schema with
``--schemas``. ``--shard K/N`` then keeps a stable slice: K counts from 0 to N-1, as Kubernetes'
JOB_COMPLETION_INDEX and GitHub's strategy.job-index do, and a target's shard follows from its name
alone, so adding a target moves no other. Each target is migrated on its own, with its own lock and
tracking table, so a target given twice, or run by two shards, is safe.

``[tool.runner.targets]`` maps a name to one of:

- a connection string: ``staging = "postgresql://app@staging-db/app"``;
- a list of names, a group: ``all = ["staging", "eu", "tenants"]`` (groups may hold groups);
- a query on a catalog database, a group whose members are its rows:
  ``tenants = {query = "SELECT dsn FROM tenants WHERE active", dsn = "${CATALOG_URL}"}``;
  a row is ``dsn``, ``(name, dsn)`` or ``(name, dsn, schema)``;
- a database's tenant schemas, a psql pattern: ``shop = {dsn = "${SHOP_URL}", schemas = "tenant_*"}``.

pyproject.toml is committed, so a connection string there has no password: ``${NAME}`` takes a
whole string, or a part of one, from the environment when the targets are chosen, as in a line of a
targets file. Those of ``--dsn`` (the shell expands its variables) and of a catalog are used as given.
A connection string may then hold a password: names and messages go through runner.db.describe
and runner.db.redact, never the string itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import BadInput, ConnectionFailed

if TYPE_CHECKING:
    import psycopg

    from runner.config import Settings

TABLE = "[tool.runner.targets]"
_VARIABLE = r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}"
_SPEC_KEYS = ("dsn", "query", "schemas")
_SHAPES = (
    'a connection string, a list of target names, {query = "SELECT dsn FROM ...", dsn = "..."} '
    'or {dsn = "...", schemas = "tenant_*"}'
)


@dataclass(frozen=True)
class Target:
    """One database, or one tenant schema in one, that a fleet run migrates on its own (own lock, own tracking)."""

    name: str  # how reports name it: the config name, else host:port/dbname (no password), + "/schema"
    # None: the default choice (DATABASE_URL, libpq's PG* variables, the embedded server). Out of repr: it may
    # hold a password, from the environment or a targets file.
    dsn: str | None = field(repr=False)
    schema: str | None = None  # a tenant schema: its tracking tables live in it and its files run with it first


@dataclass(frozen=True)
class Group:
    """A list of target names, in ``[tool.runner.targets]``: its members in order."""

    members: tuple[str, ...]


@dataclass(frozen=True)
class QueryGroup:
    """A group whose members are the rows of ``query`` on the catalog database ``dsn``."""

    query: str
    dsn: str


@dataclass(frozen=True)
class Tenants:
    """The schemas of the database ``dsn`` that match the psql pattern ``schemas``, one target each."""

    dsn: str
    schemas: str


TargetSpec = str | Group | QueryGroup | Tenants


# Reading [tool.runner.targets]: every mistake is found when the settings load, before anything runs.


def read_specs(table: object, where: str) -> dict[str, TargetSpec]:
    """``[tool.runner.targets]`` checked: each value's shape, no password in a connection string, every name a
    group lists defined, no group inside itself. ``where`` names the file in messages (``pyproject.toml: ...``)."""
    if not isinstance(table, dict):
        raise BadInput(f"{where}targets in [tool.runner] must be a table, {TABLE}")
    specs = {name: _spec(value, f"{where}{TABLE} {name}") for name, value in table.items()}
    for name, spec in specs.items():
        for member in spec.members if isinstance(spec, Group) else ():
            if member not in specs:
                raise BadInput(f"{where}{TABLE} {name} lists {member!r}, which is not a target; {_known(specs)}")
    for name in specs:
        _no_cycle(specs, name, (), where)
    return specs


def _spec(value: object, where: str) -> TargetSpec:
    if isinstance(value, str):
        return _literal_dsn(value, where)
    if isinstance(value, list):
        if not value or not all(isinstance(member, str) and member for member in value):
            raise BadInput(f'{where} must list target names, e.g. ["staging", "eu"]')
        return Group(tuple(value))
    if isinstance(value, dict):
        for key in value:
            if key not in _SPEC_KEYS:
                raise BadInput(f"{where}: unknown key {key!r}; a target's table takes {', '.join(_SPEC_KEYS)}")
        texts = {key: value[key] for key in _SPEC_KEYS if key in value}
        for key, text in texts.items():
            if not isinstance(text, str) or not text.strip():
                raise BadInput(f"{where}: {key} must be a non-empty string")
        if "dsn" not in texts:
            raise BadInput(f"{where} has no dsn; the catalog or tenant database needs one (it may be ${{VAR}})")
        dsn = _literal_dsn(texts["dsn"], f"{where} dsn")
        if "query" in texts and "schemas" in texts:
            raise BadInput(f"{where} has both query and schemas; write two targets, one for each")
        if "query" in texts:
            return QueryGroup(texts["query"], dsn)
        return Tenants(dsn, _checked_pattern(texts["schemas"], f"{where} schemas")) if "schemas" in texts else dsn
    raise BadInput(f"{where} must be {_SHAPES}")


def _literal_dsn(dsn: str, where: str) -> str:
    """A connection string of the committed file: one that parses, with no secret that is not ``${VAR}``."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from runner.config import URL_FORM
    from runner.db import SECRET_KEYS

    if not dsn.strip():
        raise BadInput(f"{where} is empty; expected {URL_FORM}")
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        if re.search(_VARIABLE, dsn):  # "${URL}" parses once expanded, and is checked then
            return dsn
        raise BadInput(f"{where} is not a valid connection string; expected {URL_FORM}") from None
    if any(params.get(key) and not re.fullmatch(f"(?:{_VARIABLE})+", str(params[key])) for key in SECRET_KEYS):
        raise BadInput(
            f"{where} holds a password, and pyproject.toml is committed: write the password as ${{VARIABLE}} "
            "or the whole string as ${VARIABLE}, or leave it to ~/.pgpass or PGPASSWORD"
        )
    return dsn


def _no_cycle(specs: Mapping[str, TargetSpec], name: str, path: tuple[str, ...], where: str) -> None:
    if name in path:
        raise BadInput(f"{where}{TABLE} {' -> '.join((*path[path.index(name) :], name))} is a cycle; "
                       "a group cannot hold itself")  # fmt: skip
    spec = specs[name]
    for member in spec.members if isinstance(spec, Group) else ():
        _no_cycle(specs, member, (*path, name), where)


def _known(specs: Mapping[str, TargetSpec]) -> str:
    return f"{TABLE} names {', '.join(specs)}" if specs else f"{TABLE} names none"


# Choosing the targets.


def select(
    settings: Settings,
    names: Iterable[str] = (),
    dsns: Iterable[str] = (),
    targets_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[Target]:
    """The targets that ``--target`` names (groups in full, a query group's rows read from its catalog), then
    ``--dsn``'s, then those of ``--targets-file`` (``-``: standard input), each once, in the order first seen.

    Empty when none is given: the run then has the one default target. When they are given but name no target (a
    catalog with no rows, a pattern that matches no schema, an empty file), BadInput: a fleet run never falls back
    to the default database. A query group connects to its catalog, tenant schemas to their database.
    """
    environ = os.environ if environ is None else environ
    names, dsns = list(names), list(dsns)
    file = _shown(settings.pyproject) if settings.pyproject else "pyproject.toml"
    found: list[Target] = []
    for name in names:
        if not settings.targets:
            raise BadInput(f"--target {name!r}: no targets are configured; name them in {TABLE} of {file}")
        if name not in settings.targets:
            hint = _did_you_mean(name, settings.targets)
            raise BadInput(f"--target {name!r} is not a target{hint}; {_known(settings.targets)} in {file}")
        found += _resolve(settings.targets, name, f"{file}: ", environ)
    found += [of_dsn(dsn, "--dsn") for dsn in dsns]
    if targets_file is not None:
        found += read_targets_file(targets_file, environ)
    if not found and (names or targets_file is not None):
        given = [f"--target {name}" for name in names] + [f"--targets-file {targets_file}"] * bool(targets_file)
        raise BadInput(f"{', '.join(given)} chose no target (a catalog with no rows, no schema that matches, or an "
                       "empty file); there is nothing to migrate")  # fmt: skip
    return unique(found)


def _resolve(specs: Mapping[str, TargetSpec], name: str, file: str, environ: Mapping[str, str]) -> list[Target]:
    """The targets of the config name ``name``; ``file`` starts each message (``pyproject.toml: ``)."""
    spec, where = specs[name], f"{file}{TABLE} {name}"
    if isinstance(spec, str):
        return [Target(name, _dsn(spec, where, environ))]
    if isinstance(spec, Group):
        return [target for member in spec.members for target in _resolve(specs, member, file, environ)]
    if isinstance(spec, QueryGroup):
        return _catalog(spec.query, _dsn(spec.dsn, f"{where} dsn", environ), where)
    return with_schemas([Target(name, _dsn(spec.dsn, f"{where} dsn", environ))], pattern=spec.schemas, where=where)


def _dsn(text: str, where: str, environ: Mapping[str, str]) -> str:
    """``text`` with each ``${NAME}`` replaced by that variable, checked to be a connection string."""
    from runner.db import parse

    def value(match: re.Match[str]) -> str:
        if not environ.get(match[1]):  # empty counts as unset, as for runner's other variables
            raise BadInput(f"{where}: the variable {match[1]} is not set; export it, or choose other targets")
        return environ[match[1]]

    dsn = re.sub(_VARIABLE, value, text)
    try:
        parse(dsn)
    except BadInput as error:  # "the connection string is not valid: ...", without its secrets
        raise BadInput(f"{where}: {error}") from None
    return dsn


def of_dsn(dsn: str, where: str) -> Target:
    """The target of a connection string, named host:port/dbname: the user is no part of its name."""
    from runner.db import describe, parse

    try:
        parse(dsn)
    except BadInput as error:
        raise BadInput(f"{where}: {error}") from None
    return Target(describe(dsn).rpartition("@")[2], dsn)


def read_targets_file(path: Path, environ: Mapping[str, str] | None = None) -> list[Target]:
    """One connection string a line, ``${NAME}`` expanded; blank lines and lines that start with ``#`` are skipped.
    A ``#`` later in a line is part of the string (a password may hold one). ``-`` reads standard input."""
    environ = os.environ if environ is None else environ
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadInput(f"--targets-file {str(path)!r}: cannot read it ({reason})") from None
    targets = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            where = f"{_shown(path)} line {number}"
            targets.append(of_dsn(_dsn(line.strip(), where, environ), where))
    return targets


def _catalog(query: str, dsn: str, where: str) -> list[Target]:
    """The members a query group's catalog lists, read in a read-only transaction."""
    import psycopg

    from runner.db import connect, error_text

    try:
        with connect(dsn) as conn, conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            rows = conn.execute(query).fetchall()  # type: ignore[arg-type]  # the project's own SQL
    except psycopg.Error as exc:
        raise BadInput(f"{where}: the query failed: {error_text(exc, dsn)}; fix query in {TABLE}") from None
    except (BadInput, ConnectionFailed) as error:  # cannot connect: say which group needed the catalog
        raise type(error)(f"{where}: {error}") from None
    return [_row_target(row, f"{where} row {number}") for number, row in enumerate(rows, 1)]


def _row_target(row: tuple[object, ...], where: str) -> Target:
    if not 1 <= len(row) <= 3 or not all(value is None or isinstance(value, str) for value in row):
        raise BadInput(f"{where}: a row must be dsn, (name, dsn) or (name, dsn, schema), all text")
    name, dsn, schema = (None, row[0], None) if len(row) == 1 else (*row, None)[:3]
    if not dsn:
        raise BadInput(f"{where}: the dsn is null or empty")
    target = of_dsn(str(dsn), where)
    named = Target(str(name) if name else target.name, target.dsn)
    return expand(named, [str(schema)])[0] if schema else named


def unique(targets: Iterable[Target]) -> list[Target]:
    """Each database and schema once, as first seen (under the name it was first given)."""
    seen: dict[tuple[str | None, str | None], Target] = {}
    for target in targets:
        seen.setdefault((target.dsn, target.schema), target)
    return list(seen.values())


# Tenant schemas.


def expand(target: Target, schemas: Iterable[str]) -> list[Target]:
    """``target`` once for each schema, named ``name/schema``."""
    return [Target(f"{target.name}/{schema}", target.dsn, schema) for schema in schemas]


def with_schemas(
    targets: Iterable[Target], *, pattern: str | None = None, query: str | None = None, where: str = ""
) -> list[Target]:
    """Each target once for each of its database's schemas that ``pattern`` (``--schemas``) matches or ``query``
    (``--schemas-query``) returns; a target that names its schema already stays as it is. Connects to each
    database in turn, so a target needs its ``dsn``. ``where`` starts messages, else the target's name does.
    """
    from runner.db import connect

    if (pattern is None) == (query is None):
        raise ValueError("with_schemas takes a pattern or a query")
    found = []
    for target in targets:
        if target.schema is not None:
            found.append(target)
            continue
        if target.dsn is None:
            raise ValueError("with_schemas needs each target's dsn: pass the default database's")
        try:
            with connect(target.dsn) as conn:
                schemas = schemas_from_query(conn, query) if query is not None else tenant_schemas(conn, str(pattern))
        except (BadInput, ConnectionFailed) as error:
            raise type(error)(f"{where or target.name}: {error}") from None
        found += expand(target, schemas)
    return found


def schema_regex(pattern: str) -> str:
    """The regular expression psql's ``\\dn PATTERN`` matches names with (processSQLNamePattern in PostgreSQL's
    src/fe_utils/string_utils.c): ``*`` and ``?`` are wildcards and letters are lower-cased, except inside double
    quotes, where ``""`` is one quote; other characters outside quotes keep their regular-expression meaning.

    psql reads a dot outside quotes as ``database.schema``; here it is refused, and ``"a.b"`` matches a dot.
    """
    out, quoted, i = [], False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == '"':
            if quoted and pattern[i + 1 : i + 2] == '"':
                out.append('"')
                i += 1
            else:
                quoted = not quoted
        elif not quoted and "A" <= ch <= "Z":  # psql's isupper() in the C locale: ASCII letters only
            out.append(ch.lower())
        elif not quoted and ch in "*?":
            out.append(".*" if ch == "*" else ".")
        elif not quoted and ch == ".":
            raise BadInput(f"schema pattern {pattern!r} has a dot outside double quotes; write it as "
                           'tenant_* (one schema name, no database), or "a.b" for a dot in a name')  # fmt: skip
        elif ch == "$" or (quoted and ch in "|*+?()[]{}.^\\") or (ch == "[" and pattern[i + 1 : i + 2] == "]"):
            out.append("\\" + ch)
        else:
            out.append(ch)
        i += 1
    return f"^({''.join(out)})$"


def _checked_pattern(pattern: str, where: str) -> str:
    try:
        schema_regex(pattern)
    except BadInput as error:
        raise BadInput(f"{where}: {error}") from None
    return pattern


_NOT_SYSTEM = "nspname !~ '^pg_' AND nspname <> 'information_schema'"


def tenant_schemas(conn: psycopg.Connection, pattern: str) -> list[str]:
    """The schemas of ``conn``'s database that ``\\dn PATTERN`` lists, sorted, never a system schema (pg_*,
    information_schema), which psql would list when the pattern matches them."""
    import psycopg

    from runner.db import error_text

    statement = ("SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.~) %s "
                 f"COLLATE pg_catalog.default AND {_NOT_SYSTEM} ORDER BY nspname")  # fmt: skip
    try:
        rows = conn.execute(statement, (schema_regex(pattern),)).fetchall()  # type: ignore[arg-type]
    except psycopg.errors.InvalidRegularExpression as exc:
        raise BadInput(f"schema pattern {pattern!r} is not valid: {error_text(exc)}") from None
    return [str(row[0]) for row in rows]


def schemas_from_query(conn: psycopg.Connection, query: str) -> list[str]:
    """The schema names ``query`` returns (one text column), sorted, each once, in a read-only transaction."""
    import psycopg

    from runner.db import error_text

    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            rows = conn.execute(query).fetchall()  # type: ignore[arg-type]  # the user's own SQL
    except psycopg.Error as exc:
        raise BadInput(
            f"the schemas query failed: {error_text(exc)}; it must return one column of schema names"
        ) from None
    if any(len(row) != 1 or not isinstance(row[0], str) or not row[0] for row in rows):
        raise BadInput("the schemas query must return one column of schema names (text, not null)")
    return sorted({str(row[0]) for row in rows})


# Shards.


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N``, K counted from 0 as Kubernetes' JOB_COMPLETION_INDEX and GitHub's strategy.job-index are:
    ``--shard $JOB_COMPLETION_INDEX/4`` runs the shards 0/4 to 3/4."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise BadInput(f"--shard {text!r} is not K/N; expected e.g. 0/4 (K counts from 0 to N-1)")
    k, n = int(match[1]), int(match[2])
    if n < 1:
        raise BadInput(f"--shard {text!r}: N must be 1 or more")
    if k >= n:
        raise BadInput(f"--shard {text!r}: K counts from 0 to N-1 (as JOB_COMPLETION_INDEX does); "
                       f"the last of {n} shards is {n - 1}/{n}")  # fmt: skip
    return k, n


def shard_of(target: Target, n: int) -> int:
    """The shard (0..n-1) of ``target``: from a hash of its name alone, so it does not depend on the other targets
    or their order, nor on a password in its connection string, and is the same on every machine."""
    digest = hashlib.blake2b(target.name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def shard(targets: Iterable[Target], k: int, n: int) -> list[Target]:
    """The targets of shard ``k`` of ``n``, in their order."""
    return [target for target in targets if shard_of(target, n) == k]


# Small helpers.


def _shown(path: Path | None) -> str:
    from runner.config import shown

    return shown(path) if path and str(path) != "-" else "standard input"


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
