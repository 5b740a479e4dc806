"""The options commands share, declared once; the settings they resolve to, and the --verbose display of them.

Each setting is a flag, else its environment variable (typer reads it, so ``--help`` names it),
else ``[tool.runner]`` in pyproject.toml, else the default: runner.config resolves all but the
flags, which are taken only when they were typed (the option's default is None).

Option sets: a NamedTuple whose fields are options (``Connection``, ``Printing``, ``Pending``). A command
takes one by naming it in its signature (``where: Connection``); ``@uses`` puts the set's options in
that place, so ``--help`` lists them there, and hands the body one instance. A command that takes
only some of a set's options says which: ``where: Annotated[Connection, Only("dsn", "table")]``.
To add a set (``Fleet``: --target, --jobs ...), declare one more such NamedTuple here and name it in
the commands that take it; nothing else changes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, NamedTuple, get_args, get_origin, get_type_hints

import typer

from runner import config, results
from runner.errors import BadInput
from runner.progress import Output, say


def _env(field: str) -> str:
    return config.BY_FIELD[field].env


# Repeatable (migrate, status, verify, plan and rollback run on each database given), so $DATABASE_URL is read by
# runner.config, not by click: click would split a variable of a repeatable option at its spaces.
Dsn = Annotated[
    list[str] | None,
    typer.Option("--dsn", metavar="<str>",
                 help="postgresql:// URL. Default: \\[tool.runner] database-url, else libpq's PG* variables, "
                      f"else the embedded PostgreSQL in .runner/. \\[env var: {_env('database_url')}]"),
]  # fmt: skip
Dir = Annotated[
    Path | None,
    typer.Option("--dir", envvar=_env("dir"),
                 help="Folder of the migration files. Default: sql, beside the nearest pyproject.toml."),
]  # fmt: skip
Table = Annotated[
    str | None,
    typer.Option("--table", envvar=_env("table"),
                 help="Tracking table: name or schema.name. Default: public.runner_migrations."),
]  # fmt: skip
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")]
Quiet = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Print only warnings and errors, and the answer the command was asked for."),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v",
                 help="Also print, on stderr, the settings in use and where each came from, and the time taken; "
                      "migrate adds each file as it starts and its statement count."),
]  # fmt: skip
Strict = Annotated[
    bool | None,
    typer.Option("--strict/--no-strict", envvar=_env("strict"),
                 help="Refuse to run (exit 1) if an applied file was edited or is gone."),
]  # fmt: skip
AllowOutOfOrder = Annotated[
    bool | None,
    typer.Option("--allow-out-of-order/--no-allow-out-of-order", envvar=_env("allow_out_of_order"),
                 help="Apply files older than the newest applied one."),
]  # fmt: skip
To = Annotated[
    int | None, typer.Option("--to", metavar="VERSION", help="Stop after this version (pending files up to it run).")
]
WaitForDb = Annotated[
    float | None,
    typer.Option("--wait-for-db", min=0, metavar="SECONDS", envvar=_env("wait_for_db"),
                 help="Retry the first connection this long until the server accepts it (containers). Default: 0."),
]  # fmt: skip
LockWait = Annotated[
    float | None,
    typer.Option("--lock-wait", min=0, metavar="SECONDS", envvar=_env("lock_wait"),
                 help="Seconds to wait for another runner's lock (exit 4 after). Default: 120."),
]  # fmt: skip
LockTimeout = Annotated[
    str | None,
    typer.Option("--lock-timeout", metavar="DURATION", envvar=_env("lock_timeout"),
                 help="PostgreSQL lock_timeout for each migration, e.g. 5s: fail fast instead of queueing "
                      "traffic behind an ALTER. A file's `-- runner: lock-timeout=...` overrides it."),
]  # fmt: skip
Retries = Annotated[
    int | None,
    typer.Option("--retries", min=0, envvar=_env("retries"),
                 help="Retry a migration that hit lock_timeout this many times, with backoff. Default: 0."),
]  # fmt: skip
StatementTimeout = Annotated[
    str | None,
    typer.Option("--statement-timeout", metavar="DURATION", envvar=_env("statement_timeout"),
                 help="PostgreSQL statement_timeout for each statement of a migration, e.g. 10min."),
]  # fmt: skip


Sets = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="NAME=VALUE",
                 help="The value of a psql variable the files use (:NAME, :'NAME', :\"NAME\"), as psql -v sets "
                      "it; repeat for more. Over \\[tool.runner.variables]."),
]  # fmt: skip


class Connection(NamedTuple):
    """Where a command works: the database, the migrations folder and the tracking table.

    The body reads them resolved, from ``Run.settings`` (a flag only where it was typed)."""

    dsn: Dsn = None
    dir: Dir = None
    table: Table = None


class Printing(NamedTuple):
    """How much a command says: --json, --quiet, --verbose."""

    as_json: Json = False
    quiet: Quiet = False
    verbose: Verbose = False


class Pending(NamedTuple):
    """Which pending files a run takes, what refuses it, and the values of their variables: migrate and plan."""

    strict: Strict = None
    allow_out_of_order: AllowOutOfOrder = None
    to: To = None
    sets: Sets = None


TargetNames = Annotated[
    list[str] | None,
    typer.Option("--target", metavar="NAME", rich_help_panel="Many databases",
                 help="A target or group of \\[tool.runner.targets]; repeat for more. With any option of this "
                      "panel, or --dsn given twice, the command runs on each target on its own (a fleet)."),
]  # fmt: skip
TargetsFile = Annotated[
    Path | None,
    typer.Option("--targets-file", metavar="FILE", rich_help_panel="Many databases",
                 help="Targets, one connection string per line (# comments, ${NAME} from the environment); "
                      "- reads standard input."),
]  # fmt: skip
Schemas = Annotated[
    str | None,
    typer.Option("--schemas", metavar="PATTERN", rich_help_panel="Many databases",
                 help="Each schema of the database(s) that matches, as psql's \\dn PATTERN does (tenant_*), is a "
                      "target: its own tracking tables in it, its files run with it first on search_path."),
]  # fmt: skip
SchemasQuery = Annotated[
    str | None,
    typer.Option("--schemas-query", metavar="SQL", rich_help_panel="Many databases",
                 help="The tenant schemas: the names this query returns on each database."),
]  # fmt: skip
Jobs = Annotated[
    int | None,
    typer.Option("--jobs", "-j", min=1, rich_help_panel="Many databases",
                 help="Targets at once. Default: 4, fewer when the server has no room for their connections."),
]  # fmt: skip
Shard = Annotated[
    str | None,
    typer.Option("--shard", metavar="K/N", rich_help_panel="Many databases",
                 help="Only the targets of shard K of N (K from 0, as $JOB_COMPLETION_INDEX): N jobs on N machines "
                      "split a fleet; a target's shard follows from its name alone."),
]  # fmt: skip


class Fleet(NamedTuple):
    """Which targets a command runs on: the one database, unless one of these (or --dsn twice) is given."""

    target: TargetNames = None
    targets_file: TargetsFile = None
    schemas: Schemas = None
    schemas_query: SchemasQuery = None
    shard: Shard = None
    jobs: Jobs = None

    def chosen(self, dsns: list[str] | None) -> bool:
        given = (self.target, self.targets_file, self.schemas, self.schemas_query, self.shard)
        return any(value is not None for value in given) or len(dsns or ()) > 1


class Only:
    """Take only these options of a set: ``Annotated[Connection, Only("dsn")]``; the others keep their default."""

    def __init__(self, *names: str) -> None:
        self.names = names


def uses(body: Callable[..., None]) -> Callable[..., None]:
    """The command ``body`` with each option-set parameter spread into the set's options (see the module's
    docstring)."""
    return _Spread(body)


class _Spread:
    """A command body whose signature, as typer reads it, has its option sets spread into their options.

    The signature is worked out when typer first asks for it, not at import: that evaluates the
    annotations (typer's ``Annotated`` options are built then), which a run needs for its own command
    only, as it would without sets. typer reads ``__signature__``, whose ``Annotated`` annotations carry the
    options, and ``__annotations__``, where it finds the others (``typer.Context``) by their type.
    """

    def __init__(self, body: Callable[..., None]) -> None:
        functools.update_wrapper(self, body, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
        self.body = body

    @functools.cached_property
    def _spread(self) -> tuple[inspect.Signature, dict[str, tuple[Any, list[str]]]]:
        """The signature with the sets spread, and by parameter the set and the option names it takes."""
        given = inspect.signature(self.body, eval_str=True)
        keyword = inspect.Parameter.KEYWORD_ONLY
        spread: list[inspect.Parameter] = []
        sets: dict[str, tuple[Any, list[str]]] = {}
        for parameter in given.parameters.values():
            kind, only = _option_set(parameter.annotation)
            if kind is None:
                spread.append(parameter.replace(kind=keyword))
                continue
            hints = get_type_hints(kind, include_extras=True)
            names = [name for name in kind._fields if only is None or name in only.names]
            sets[parameter.name] = (kind, names)
            defaults = kind._field_defaults
            spread += [inspect.Parameter(n, keyword, default=defaults[n], annotation=hints[n]) for n in names]
        return given.replace(parameters=spread), sets

    @property
    def __signature__(self) -> inspect.Signature:
        return self._spread[0]

    @property
    def __annotations__(self) -> dict[str, Any]:  # type: ignore[override]
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **values: Any) -> None:
        for name, (kind, names) in self._spread[1].items():
            values[name] = kind(**{option: values.pop(option) for option in names})
        self.body(**values)


def _option_set(annotation: Any) -> tuple[Any, Only | None]:
    """The option set an annotation names, and the Only it was given, if it names one."""
    only = None
    if get_origin(annotation) is Annotated:
        annotation, *extras = get_args(annotation)
        only = next((e for e in extras if isinstance(e, Only)), None)
    is_set = isinstance(annotation, type) and issubclass(annotation, tuple) and hasattr(annotation, "_fields")
    return (annotation, only) if is_set else (None, None)


_FIELDS = {"dsn": "database_url"}  # parameter -> Settings field, where the names differ


def settings(context: typer.Context, out: Output) -> config.Settings:
    """The settings for this command: the flags typed, over what runner.config finds; --verbose shows them."""
    typed = {}
    for name, value in context.params.items():
        source = context.get_parameter_source(name)
        if _FIELDS.get(name, name) in config.BY_FIELD and source is not None and source.name == "COMMANDLINE":
            typed[_FIELDS.get(name, name)] = value
    dsns = context.params.get("dsn") or []
    if len(dsns) > 1 and "target" not in context.params:
        raise BadInput(f"--dsn is given {len(dsns)} times; {context.command_path} works on one database "
                       "(migrate, status, verify, plan and rollback take several)")  # fmt: skip
    if dsns:
        typed["database_url"] = dsns[0] if len(dsns) == 1 else None
    found = config.load(flags=typed)
    if out.verbose:
        read = config.shown(found.pyproject) if found.pyproject else f"no {config.PYPROJECT} found"
        out.detail(f"Settings ({read}):")
        used = {_FIELDS.get(name, name) for name in context.params}
        for key in config.KEYS:
            if key.field in used:
                out.detail(f"  {key.name} = {_shown_value(found, key.field)} ({found.sources[key.field]})")
        if "database_url" in used:  # which server, and why: a PGPASSWORD left set is enough to leave the embedded one
            from runner.db import choose

            out.detail(f"Database: {choose(found.database_url, found.sources['database_url'])}")
    return found


def _shown_value(settings: config.Settings, field: str) -> str:
    from runner.db import redact

    value = getattr(settings, field)
    if field == "database_url":
        return redact(value, value) if value else "none: libpq's PG* variables if set, else the embedded PostgreSQL"
    if field == "dir":
        return config.shown(value) if value.is_absolute() else str(value)
    if value is None or isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def folder(settings: config.Settings) -> Path:
    """The migrations folder as messages should name it: relative to here when it is inside."""
    return shown_path(settings.dir)


def project_schema_file(s: config.Settings) -> Path | None:
    """The schema file of the project's own database, which migrate rewrites and dump writes: none when --dsn
    names another database (a deploy, a copy), or --dir or RUNNER_DIR another folder than the project's, unless
    RUNNER_SCHEMA_FILE names the file all the same."""
    elsewhere = s.sources.get("database_url") == "--dsn" or s.sources.get("dir") in ("--dir", "RUNNER_DIR")
    if s.schema_file is None or (elsewhere and s.sources.get("schema_file") != "RUNNER_SCHEMA_FILE"):
        return None
    return shown_path(s.schema_file)


def shown_path(path: Path) -> Path:
    """A path of the settings as messages name it: relative to here when it is inside."""
    return Path(config.shown(path)) if path.is_absolute() else path


class Run:
    """What a command's work is given: its settings, resolved, and how much to say."""

    def __init__(self, settings: config.Settings, out: Output) -> None:
        self.settings = settings
        self.out = out

    @property
    def target(self) -> tuple[str | None, Path, str | None]:
        """The database, folder and tracking table, as runner.api takes them first."""
        return self.settings.database_url, folder(self.settings), self.settings.table

    def variables(self, sets: list[str] | None) -> dict[str, str]:
        """The psql variables' values: ``--set NAME=VALUE`` over ``[tool.runner.variables]``."""
        given = {}
        for text in sets or ():
            name, equals, value = text.partition("=")
            if not equals:
                raise BadInput(f"--set {text!r}: expected NAME=VALUE, as psql -v takes it")
            given[name] = value
        if not given:
            return dict(self.settings.variables)
        from runner.variables import check

        return {**self.settings.variables, **check(given, "--set")}

    def notes(self, event: results.Event) -> None:
        """The ``on_event`` of a command that shows only notes (and a change made outside runner, which a
        command that changes the schema warns of, as migrate does)."""
        if isinstance(event, results.Note):
            self.out.note(event.text)
        elif isinstance(event, results.SchemaWarning):
            self.out.warn(f"changed outside runner: {event.difference.describe()}")

    def lines(self, lines: Iterable[str]) -> None:
        """Print the answer, unless --json asked for the document alone."""
        if not self.out.as_json:
            for line in lines:
                say(line)
