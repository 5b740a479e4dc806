"""The ``runner`` command: a thin layer over runner.api that prints and picks exit codes.

Each setting is a flag, else its environment variable (typer reads it, so ``--help`` names it),
else ``[tool.runner]`` in pyproject.toml, else the default: runner.config resolves all but the
flags, which are taken only when they were typed (the option's default is None).
"""

from __future__ import annotations

import copy
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from runner import api, config, report
from runner.errors import Interrupted, RunnerError, Terminated
from runner.progress import MigrateProgress, Output, say

EXIT_CODES = (
    "Exit codes: 0 success; 1 drift found or run refused (--strict, out-of-order file); "
    "2 bad input or usage (file names, encoding, options, settings, a tracking table that is not runner's); "
    "3 a migration failed and was rolled back; 4 the migration lock was not obtained in time; "
    "5 the database cannot be reached or refused the login; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM)."
)
SETTINGS = (
    "Settings: a flag wins over its environment variable, which wins over \\[tool.runner] in the nearest "
    "pyproject.toml, which wins over the default."
)
EPILOG = f"{SETTINGS}\n\n{EXIT_CODES}"

app = typer.Typer(
    help="Apply numbered plain-SQL migrations to PostgreSQL, and detect drift.\n\n"
    "Example: runner migrate && runner verify",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _env(field: str) -> str:
    return config.BY_FIELD[field].env


Dsn = Annotated[
    str | None,
    typer.Option("--dsn", envvar=_env("database_url"),
                 help="postgresql:// URL. Default: \\[tool.runner] database-url, else libpq's PG* variables, "
                      "else the embedded PostgreSQL in .runner/."),
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

_FIELDS = {"dsn": "database_url"}  # parameter -> Settings field, where the names differ


def _output(context: typer.Context, quiet: bool, verbose: bool, as_json: bool = False) -> Output:
    if quiet and verbose:
        _usage("--quiet and --verbose cannot be used together", context.command_path)
    return Output(quiet, verbose, as_json)


def _settings(context: typer.Context, out: Output) -> config.Settings:
    """The settings for this command: the flags typed, over what runner.config finds; --verbose shows them."""
    typed = {}
    for name, value in context.params.items():
        source = context.get_parameter_source(name)
        if _FIELDS.get(name, name) in config.BY_FIELD and source is not None and source.name == "COMMANDLINE":
            typed[_FIELDS.get(name, name)] = value
    settings = config.load(flags=typed)
    if out.verbose:
        found = config.shown(settings.pyproject) if settings.pyproject else f"no {config.PYPROJECT} found"
        out.detail(f"Settings ({found}):")
        used = {_FIELDS.get(name, name) for name in context.params}
        for key in config.KEYS:
            if key.field in used:
                out.detail(f"  {key.name} = {_shown_value(settings, key.field)} ({settings.sources[key.field]})")
        if "database_url" in used:  # which server, and why: a PGPASSWORD left set is enough to leave the embedded one
            from runner.db import choose

            out.detail(f"Database: {choose(settings.database_url, settings.sources['database_url'])}")
    return settings


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


def _folder(settings: config.Settings) -> Path:
    """The migrations folder as messages should name it: relative to here when it is inside."""
    return Path(config.shown(settings.dir)) if settings.dir.is_absolute() else settings.dir


def _run(out: Output, work: Callable[[], tuple[int, dict[str, Any] | None]]) -> None:
    """Run a command body; map our errors to one message and one exit code."""
    started = time.monotonic()
    try:
        code, doc = work()
    except RunnerError as error:
        lines = report.error_lines(error)
        out.error(lines[0])
        for line in lines[1:]:
            say(line, err=True)
        if out.as_json:
            print(json.dumps(report.error_doc(error), indent=2, default=str))
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt as stop:
        # A Terminated stop, or an Interrupted one raised while handling it, came from SIGTERM.
        terminated = isinstance(stop, Terminated) or (isinstance(stop, Interrupted) and stop.terminated)
        if isinstance(stop, Interrupted):
            text = str(stop)
        else:
            text = f"interrupted ({'SIGTERM' if terminated else 'Ctrl-C'}) while no migration was running; " \
                   "files applied before this point are recorded"  # fmt: skip
        out.error(text)
        if out.as_json:
            code = 143 if terminated else 130
            print(json.dumps({"ok": False, "error": {"kind": "interrupted", "exit_code": code, "message": text}}))
        raise typer.Exit(143 if terminated else 130) from None
    if out.as_json and doc is not None:
        print(json.dumps(doc, indent=2, default=str))
    out.detail(f"Done in {time.monotonic() - started:.2f} s")
    raise typer.Exit(code)


def _notes(out: Output) -> api.OnEvent:
    def on_event(event: api.Event) -> None:
        if isinstance(event, api.Note):
            out.note(event.text)

    return on_event


@app.command(epilog=EPILOG)
def migrate(
    context: typer.Context,
    dsn: Dsn = None,
    dir: Dir = None,
    table: Table = None,
    strict: Strict = None,
    allow_out_of_order: AllowOutOfOrder = None,
    to: To = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run, as `runner plan` does.")] = False,
    lock_wait: LockWait = None,
    lock_timeout: LockTimeout = None,
    retries: Retries = None,
    statement_timeout: StatementTimeout = None,
    wait_for_db: WaitForDb = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Apply the pending migrations in order, each in its own transaction with its tracking row.

    Example: runner migrate --dsn postgresql://app@db.internal/app
    """
    out = _output(context, quiet, verbose, as_json)
    if dry_run:
        _plan(context, out, to)
        return

    def work() -> tuple[int, dict[str, Any]]:
        s = _settings(context, out)
        with MigrateProgress.for_output(out) as progress:

            def on_event(event: api.Event) -> None:
                if isinstance(event, api.Note):
                    out.note(event.text)
                elif isinstance(event, api.DriftWarning):
                    out.warn(report.warning_line(event.entry))
                elif isinstance(event, api.SchemaWarning):
                    out.warn(f"changed outside runner: {event.difference.describe()}")
                else:
                    progress(event)

            result = api.migrate(s.database_url, _folder(s), s.table, strict=s.strict,
                                 allow_out_of_order=s.allow_out_of_order, to=to, lock_wait=s.lock_wait,
                                 lock_timeout=s.lock_timeout, statement_timeout=s.statement_timeout,
                                 retries=s.retries, wait_for_db=s.wait_for_db, on_event=on_event)  # fmt: skip
        summary = report.migrate_summary(result)
        if summary:
            progress.line(summary)
        return 0, report.migrate_doc(result)

    _run(out, work)


@app.command(epilog=EPILOG)
def status(
    context: typer.Context,
    dsn: Dsn = None,
    dir: Dir = None,
    table: Table = None,
    wait_for_db: WaitForDb = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Show every migration with its state: applied, pending, edited, missing, out_of_order, deleted or outdated.

    Example: runner status --json
    """
    out = _output(context, quiet, verbose, as_json)

    def work() -> tuple[int, dict[str, Any]]:
        s = _settings(context, out)
        plan = api.status(s.database_url, _folder(s), s.table, wait_for_db=s.wait_for_db, on_event=_notes(out))
        if not as_json:
            report.print_status_table(plan)
        return 0, report.status_doc(plan)

    _run(out, work)


@app.command(epilog=EPILOG)
def verify(
    context: typer.Context,
    dsn: Dsn = None,
    dir: Dir = None,
    table: Table = None,
    pending_is_drift: Annotated[bool, typer.Option("--strict", help="Count pending files as drift too.")] = False,
    wait_for_db: WaitForDb = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Detect drift between the files and the tracking table: exit 0 when clean, 1 when not.

    Edited, missing and out-of-order files are drift, and so is an INVALID index (left by a
    failed concurrent build) and any change to the schema made outside runner since the last
    migrate; pending files are listed, and are drift only with --strict. An edit to comments or
    whitespace only is harmless, and drift only with --strict.
    Example: runner verify --strict
    """
    out = _output(context, quiet, verbose, as_json)

    def work() -> tuple[int, dict[str, Any]]:
        s = _settings(context, out)
        result = api.verify(s.database_url, _folder(s), s.table, strict=pending_is_drift, wait_for_db=s.wait_for_db,
                            on_event=_notes(out))  # fmt: skip
        if not as_json:
            for line in report.verify_lines(result):
                say(line)
        return (0 if result.clean else 1), report.verify_doc(result)

    _run(out, work)


@app.command(epilog=EPILOG)
def plan(
    context: typer.Context,
    dsn: Dsn = None,
    dir: Dir = None,
    table: Table = None,
    strict: Strict = None,
    allow_out_of_order: AllowOutOfOrder = None,
    to: To = None,
    wait_for_db: WaitForDb = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Show what migrate would run, in order, how, and every warning it would give. Changes nothing.

    Example: runner plan --to 15
    """
    _plan(context, _output(context, quiet, verbose, as_json), to)


def _plan(context: typer.Context, out: Output, to: int | None) -> None:
    def work() -> tuple[int, dict[str, Any]]:
        s = _settings(context, out)
        result = api.dry_run(s.database_url, _folder(s), s.table, strict=s.strict,
                             allow_out_of_order=s.allow_out_of_order, to=to, wait_for_db=s.wait_for_db,
                             on_event=_notes(out))  # fmt: skip
        for entry in result.warnings:
            out.warn(report.warning_line(entry))
        for difference in result.schema_warnings:
            out.warn(f"changed outside runner: {difference.describe()}")
        if not out.as_json:
            for line in report.plan_lines(result):
                say(line)
        failure = report.plan_failure(result)
        if failure is not None:
            out.error(failure)
        return (3 if failure else 0), report.plan_doc(result)  # 3: migrate would fail, as it exits then

    _run(out, work)


Files = Annotated[list[str] | None, typer.Argument(help="Files, by path, name or version number.")]


def _changes(context: typer.Context, out: Output, work: Callable[[config.Settings], list[Any]], nothing: str) -> None:
    def run() -> tuple[int, dict[str, Any]]:
        changes = work(_settings(context, out))
        if not out.as_json:
            for line in [report.change_line(c) for c in changes] or [nothing]:
                say(line)
        return 0, {"ok": True, "changes": [report.change_doc(c) for c in changes]}

    _run(out, run)


@app.command(epilog=EPILOG)
def accept(
    context: typer.Context,
    files: Files = None,
    all_edited: Annotated[bool, typer.Option("--all", help="Accept every edited file.")] = False,
    whole_schema: Annotated[
        bool, typer.Option("--schema", help="Accept the schema as it is: changes made outside runner stop being drift.")
    ] = False,
    dsn: Dsn = None,
    dir: Dir = None,
    table: Table = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Record the new checksum of applied files that were edited on purpose (the SQL is not run), or, with
    --schema, the schema as it is now, so that verify stops reporting changes made outside runner.

    Example: runner accept sql/0003_create_participants.sql
    """
    out = _output(context, quiet, verbose, as_json)
    if not (files or all_edited or whole_schema):
        _usage("name the edited files to accept, or pass --all (every edited file) or --schema (changes made "
               "outside runner)", "runner accept")  # fmt: skip
    if not whole_schema:
        wanted = None if all_edited else files
        _changes(context, out, lambda s: api.accept(s.database_url, _folder(s), s.table, wanted, on_event=_notes(out)),
                 "Nothing to accept")  # fmt: skip
        return

    def work() -> tuple[int, dict[str, Any]]:
        s = _settings(context, out)
        changes = []
        if files or all_edited:
            changes = api.accept(s.database_url, _folder(s), s.table, None if all_edited else files,
                                 on_event=_notes(out))  # fmt: skip
        accepted = api.accept_schema(s.database_url, _folder(s), s.table, on_event=_notes(out))
        if not as_json:
            for line in [report.change_line(c) for c in changes] + report.schema_accepted_lines(accepted):
                say(line)
        return 0, {"ok": True, "changes": [report.change_doc(c) for c in changes],
                   "schema": [report.difference_doc(d) for d in accepted]}  # fmt: skip

    _run(out, work)


@app.command(epilog=EPILOG)
def mark(
    context: typer.Context,
    versions: Annotated[list[str], typer.Argument(help="Versions (or file names) to record as applied.")],
    dsn: Dsn = None,
    dir: Dir = None,
    table: Table = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Record files as applied without running them: you already ran them by hand.

    Example: psql -f sql/0015_add_index.sql && runner mark 15
    """
    out = _output(context, quiet, verbose, as_json)
    _changes(context, out, lambda s: api.mark(s.database_url, _folder(s), s.table, versions, on_event=_notes(out)),
             "Nothing to mark")  # fmt: skip


@app.command(epilog=EPILOG)
def baseline(
    context: typer.Context,
    version: Annotated[int, typer.Argument(help="The last version the database already has.")],
    dsn: Dsn = None,
    dir: Dir = None,
    table: Table = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Adopt an existing database: record every file up to VERSION as applied, without running it.

    Example: runner baseline 14
    """
    out = _output(context, quiet, verbose, as_json)
    _changes(context, out, lambda s: api.baseline(s.database_url, _folder(s), s.table, version, on_event=_notes(out)),
             f"Nothing to baseline: every file up to version {version} is applied")  # fmt: skip


@app.command(epilog=EPILOG)
def unmark(
    context: typer.Context,
    versions: Annotated[list[str], typer.Argument(help="Versions (or file names) whose record to forget.")],
    dsn: Dsn = None,
    dir: Dir = None,
    table: Table = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Forget the record of migrations, so the next migrate runs their files again.

    Example: runner unmark 15
    """
    out = _output(context, quiet, verbose, as_json)
    _changes(context, out, lambda s: api.unmark(s.database_url, _folder(s), s.table, versions, on_event=_notes(out)),
             "Nothing to unmark")  # fmt: skip


@app.command(epilog=EPILOG)
def history(
    context: typer.Context,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Show only the newest N events.")] = None,
    dsn: Dsn = None,
    table: Table = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Show the history: every file applied, every failed attempt, every accept, mark and unmark.

    Example: runner history --limit 20
    """
    out = _output(context, quiet, verbose, as_json)

    def work() -> tuple[int, dict[str, Any]]:
        s = _settings(context, out)
        events = api.history_events(s.database_url, s.table, limit, on_event=_notes(out))
        if not as_json:
            report.print_history(events)
        return 0, {"events": [report.event_doc(e) for e in events]}

    _run(out, work)


@app.command(epilog=EPILOG)
def lint(
    context: typer.Context,
    files: Annotated[list[str] | None, typer.Argument(help="Files to lint. Default: the pending ones.")] = None,
    warnings_fail: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too, not only errors.")] = False,
    dsn: Dsn = None,
    dir: Dir = None,
    table: Table = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Check migrations with the squawk linter: exit 1 on error-level findings (--strict: on any finding).

    Rules to leave out go in pyproject.toml: \\[tool.runner.lint] exclude = \\["prefer-text-field"].
    Example: runner lint sql/0015_add_index.sql
    """
    out = _output(context, quiet, verbose, as_json)

    def work() -> tuple[int, dict[str, Any]]:
        s = _settings(context, out)
        findings = api.lint(s.database_url, _folder(s), s.table, files, on_event=_notes(out))
        if not as_json:
            for line in report.lint_lines(findings):
                say(line)
        failing = [f for f in findings if warnings_fail or f.level == "error"]
        return (1 if failing else 0), report.lint_doc(findings)

    _run(out, work)


@app.command(epilog=EPILOG)
def diff(
    context: typer.Context,
    against: Annotated[str, typer.Option("--against", metavar="DSN", help="The database to compare with.")],
    dsn: Dsn = None,
    table: Table = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Compare the schema of two live databases (--dsn and --against): exit 0 when alike, 1 when not.

    Example: runner diff --dsn postgresql://db-staging/app --against postgresql://db-prod/app
    """
    out = _output(context, quiet, verbose, as_json)

    def work() -> tuple[int, dict[str, Any]]:
        s = _settings(context, out)
        found = api.diff(s.database_url, against, s.table, on_event=_notes(out))
        if not as_json:
            for line in report.diff_lines(found) or ["No differences"]:
                say(line)
        return (1 if found else 0), {"same": not found, "differences": [report.difference_doc(d) for d in found]}

    _run(out, work)


database = typer.Typer(
    help="The target database itself: psql on it, its URL, and keeping the embedded one running (or deleting it).\n\n"
    'Example: runner db start && psql "$(runner db url)"',
    no_args_is_help=True,
)
app.add_typer(database, name="db")


@database.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def shell(context: typer.Context, dsn: Dsn = None) -> None:
    """Open psql on the database runner migrates (the embedded one by default); extra arguments go to psql.

    Example: runner db shell -- -f sql/0015_add_index.sql
    """
    out = Output()

    def work() -> tuple[int, None]:
        s = _settings(context, out)
        return api.shell(s.database_url, list(context.args), on_event=_notes(out)), None

    _run(out, work)


@database.command(epilog=EPILOG)
def url(
    context: typer.Context,
    dsn: Dsn = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Print the URL of the database runner migrates, never with its password (it is shown as ***).

    With no database given that is the embedded PostgreSQL, which runs only while a runner uses it:
    `runner db start` keeps it up for other tools until `runner db stop`.
    Example: psql "$(runner db url)"
    """
    from runner import shell as psql

    out = _output(context, quiet, verbose, as_json)

    def work() -> tuple[int, dict[str, Any]]:
        s = _settings(context, out)
        target = psql.locate(s.database_url, s.sources["database_url"])
        if target.source == "embedded" and not target.running:
            out.note(f"note: the embedded PostgreSQL in {target.where} is not running, so this URL does not answer "
                     "yet; `runner db start` starts it and keeps it up until `runner db stop`")  # fmt: skip
        if target.source == "libpq environment":  # even a PGPASSWORD alone leaves the embedded server
            from runner.db import choose

            out.note(f"note: runner uses {choose(None, target.source)}")
        if not as_json:
            say(target.url)
        return 0, {"url": target.url, "source": target.source, "reason": target.reason, "running": target.running,
                   "kept": target.kept}  # fmt: skip

    _run(out, work)


def _elsewhere(settings: config.Settings) -> str | None:
    """Why the other commands would not use the embedded server, if they would not."""
    from runner.db import libpq_variables

    if settings.database_url:
        return f"{settings.sources['database_url']} is set, so the other commands use that database, not this one"
    if libpq_variables():
        return "libpq's PG* variables are set, so the other commands use that server, not this one"
    return None


@database.command(epilog=EPILOG)
def start(
    context: typer.Context,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Start the project's embedded PostgreSQL and keep it running between commands, until `runner db stop`.

    Example: runner db start && psql "$(runner db url)"
    """
    from runner import embedded

    out = _output(context, quiet, verbose, as_json)

    def work() -> tuple[int, dict[str, Any]]:
        elsewhere = _elsewhere(_settings(context, out))
        found = embedded.keep(on_note=out.note)
        if elsewhere:
            out.note(f"note: {elsewhere}")
        if not (as_json or quiet):
            say(f"The embedded PostgreSQL in {found.where} is running, and stays up until `runner db stop`")
        return 0, {"running": found.running, "kept": found.kept, "data": found.where}

    _run(out, work)


@database.command(epilog=EPILOG)
def stop(
    context: typer.Context,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Stop the embedded PostgreSQL that `runner db start` kept running (or let the last runner using it stop it).

    Example: runner db stop
    """
    from runner import embedded

    out = _output(context, quiet, verbose, as_json)
    said = {
        "stopped": "Stopped the embedded PostgreSQL in {}",
        "not running": "The embedded PostgreSQL in {} is not running",
        "in use": "The embedded PostgreSQL in {} is in use by another runner, which stops it when it finishes",
    }

    def work() -> tuple[int, dict[str, Any]]:
        _settings(context, out)  # a broken pyproject.toml is reported here too
        outcome = embedded.release()
        where = embedded.state().where
        if not (as_json or quiet):
            say(said[outcome].format(where))
        return 0, {"outcome": outcome, "data": where}

    _run(out, work)


@database.command(epilog=EPILOG)
def destroy(
    context: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking (for scripts).")] = False,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Stop the project's embedded PostgreSQL and delete it, with all its data; the next command creates a new one.

    It asks first on a terminal; without one, it deletes nothing unless given --yes.
    Example: runner db destroy --yes && runner migrate
    """
    from runner import embedded
    from runner.errors import BadInput, Refused

    out = _output(context, quiet, verbose, as_json)

    def work() -> tuple[int, dict[str, Any]]:
        elsewhere = _elsewhere(_settings(context, out))
        if elsewhere:
            out.note(f"note: {elsewhere}; `runner db destroy` deletes the embedded one only")
        found = embedded.existing()
        if found is None or not found.created:
            if found is not None:
                embedded.destroy()  # the notes of a server never created, such as its id
            if not (as_json or quiet):
                say("There is no embedded PostgreSQL in this project: nothing to delete")
            return 0, {"destroyed": False, "data": found.where if found else None}
        question = f"Delete the embedded PostgreSQL in {found.where}, with all its data?"
        if not yes and not sys.stdin.isatty():
            raise BadInput(f"`runner db destroy` deletes the embedded PostgreSQL in {found.where} with all its data, "
                           "and there is no terminal to confirm it on; pass --yes to delete it")  # fmt: skip
        if not yes and not _confirmed(question):
            raise Refused("not confirmed: nothing was deleted")
        embedded.destroy()
        if not (as_json or quiet):
            say(f"Deleted the embedded PostgreSQL in {found.where}; the next command that needs it creates a new one")
        return 0, {"destroyed": True, "data": found.where}

    _run(out, work)


def _confirmed(question: str) -> bool:
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:  # Ctrl-C or end of input at the question
        return False


@app.command(epilog=EPILOG)
def new(
    context: typer.Context,
    description: Annotated[str, typer.Argument(help="What the migration does, e.g. 'add due date'.")],
    dir: Dir = None,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Create the next numbered migration file from a short template.

    Example: runner new "add due date to tat alerts"  ->  sql/0015_add_due_date_to_tat_alerts.sql
    """
    from runner.scaffold import new_migration

    out = _output(context, quiet, verbose, as_json)

    def work() -> tuple[int, dict[str, Any]]:
        created = new_migration(_folder(_settings(context, out)), description)
        if not as_json:
            say(f"Created {created}")
        return 0, {"created": str(created)}

    _run(out, work)


def _version(given: bool) -> None:
    if given:
        import importlib.metadata  # only here: it costs every other run of the command about 25 ms

        try:
            found = importlib.metadata.version("runner")
        except importlib.metadata.PackageNotFoundError:
            found = "unknown (not installed)"
        say(f"runner {found}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Show runner's version and exit.")
    ] = False,
) -> None:
    pass


def _usage(problem: str, command: str) -> NoReturn:
    say(f"{problem}; see `{command} --help`", err=True, prefix="error: ", color="red")
    raise typer.Exit(2)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _without_stray_envvar(usage: Any) -> str:
    """typer's message names an option's variable even when the bad value was typed; say it only when it was read."""
    text: str = usage.format_message()
    context, param = getattr(usage, "ctx", None), getattr(usage, "param", None)
    envvar = getattr(param, "envvar", None)
    if context is not None and param is not None and isinstance(envvar, str):
        source = context.get_parameter_source(param.name)
        if source is None or source.name != "ENVIRONMENT":
            text = text.replace(f" (env var: '{envvar}')", "")
    return text


def _only(name: str | None) -> typer.Typer:
    """The app with only the command ``name``: typer builds every command's options before it runs one, which
    costs more than a run with nothing to do spends on its own work. Help and an unknown name get them all."""
    chosen = copy.copy(app)
    chosen.registered_commands = [c for c in app.registered_commands if _command_name(c) == name]
    chosen.registered_groups = [g for g in app.registered_groups if g.name == name]
    return chosen if chosen.registered_commands or chosen.registered_groups else app


def _command_name(command: typer.models.CommandInfo) -> str | None:
    return command.name or (typer.main.get_command_name(command.callback.__name__) if command.callback else None)


def main() -> None:
    # SIGTERM stops a run the way Ctrl-C does: the running statement is cancelled and rolled back.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)  # the root's options are all flags
        code = _only(command)(prog_name="runner", standalone_mode=False)
    except Exception as usage:  # typer's own errors: an unknown option, a value out of range, a bad variable
        if not hasattr(usage, "format_message"):
            raise
        code = getattr(usage, "exit_code", 2)
        if type(usage).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
            context = getattr(usage, "ctx", None)
            command = context.command_path if context else "runner"
            text = f"{_without_stray_envvar(usage).rstrip('.')}; see `{command} --help`"
            from runner.db import redact  # a DSN typed without --dsn is quoted back as an unexpected argument

            for argument in sys.argv[1:]:
                text = redact(text, argument)
            say(text, err=True, prefix="error: ", color="red")
            if "--json" in sys.argv[1:]:
                print(json.dumps({"ok": False, "error": {"kind": "usage", "exit_code": code, "message": text}}))
    sys.exit(code if isinstance(code, int) else 0)
