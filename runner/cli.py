"""The ``runner`` command: a thin layer over runner.api that prints and picks exit codes."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO

import typer

from runner import api, report
from runner.errors import Interrupted, RunnerError, Terminated
from runner.lock import DEFAULT_WAIT_S
from runner.tracking import DEFAULT_TABLE

EXIT_CODES = (
    "Exit codes: 0 success; 1 drift found or run refused (--strict, out-of-order file); "
    "2 bad input or usage (file names, encoding, options, a tracking table that is not runner's); "
    "3 a migration failed and was rolled back; 4 the migration lock was not obtained in time; "
    "5 the database cannot be reached or refused the login; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM)."
)

app = typer.Typer(
    help="Apply numbered plain-SQL migrations to PostgreSQL, and detect drift.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Dsn = Annotated[
    str | None,
    typer.Option("--dsn", help="postgresql:// URL. Default: $DATABASE_URL, else the embedded PostgreSQL in .runner/."),
]
Dir = Annotated[Path, typer.Option("--dir", help="Folder of the migration files.")]
Table = Annotated[str, typer.Option("--table", help="Tracking table: name or schema.name.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")]
Strict = Annotated[
    bool, typer.Option("--strict", help="Refuse to run (exit 1) if an applied file was edited or is gone.")
]
AllowOutOfOrder = Annotated[
    bool, typer.Option("--allow-out-of-order", help="Apply files older than the newest applied one.")
]
To = Annotated[
    int | None, typer.Option("--to", metavar="VERSION", help="Stop after this version (pending files up to it run).")
]
WaitForDb = Annotated[
    float,
    typer.Option("--wait-for-db", min=0, metavar="SECONDS",
                 help="Retry the first connection this long until the server accepts it (containers)."),
]  # fmt: skip


def _say(text: str, stream: TextIO, prefix: str = "", color: str | None = None) -> None:
    use_color = stream.isatty() and not os.environ.get("NO_COLOR")
    head = typer.style(prefix, fg=color, bold=True) if (prefix and use_color) else prefix
    print(f"{head}{text}", file=stream, flush=True)


def _run(as_json: bool, work: Callable[[], tuple[int, dict[str, Any] | None]]) -> None:
    """Run a command body; map our errors to one message and one exit code."""
    try:
        code, doc = work()
    except RunnerError as error:
        lines = report.error_lines(error)
        _say(lines[0], sys.stderr, "error: ", "red")
        for line in lines[1:]:
            _say(line, sys.stderr)
        if as_json:
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
        _say(text, sys.stderr, "error: ", "red")
        if as_json:
            code = 143 if terminated else 130
            print(json.dumps({"ok": False, "error": {"kind": "interrupted", "exit_code": code, "message": text}}))
        raise typer.Exit(143 if terminated else 130) from None
    if as_json and doc is not None:
        print(json.dumps(doc, indent=2, default=str))
    raise typer.Exit(code)


def _notes_to_stderr(event: api.Event) -> None:
    if isinstance(event, api.Note):
        _say(event.text, sys.stderr)


@app.command(epilog=EXIT_CODES)
def migrate(
    dsn: Dsn = None,
    dir: Dir = Path(api.DEFAULT_DIR),
    table: Table = DEFAULT_TABLE,
    strict: Strict = False,
    allow_out_of_order: AllowOutOfOrder = False,
    to: To = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run, as `runner plan` does.")] = False,
    lock_wait: Annotated[
        float, typer.Option("--lock-wait", min=0, help="Seconds to wait for another runner's lock (exit 4 after).")
    ] = DEFAULT_WAIT_S,
    lock_timeout: Annotated[
        str | None,
        typer.Option(
            "--lock-timeout",
            metavar="DURATION",
            help="PostgreSQL lock_timeout for each migration, e.g. 5s: fail fast instead of queueing "
            "traffic behind an ALTER. A file's `-- runner: lock-timeout=...` overrides it.",
        ),
    ] = None,
    retries: Annotated[
        int,
        typer.Option("--retries", min=0, help="Retry a migration that hit lock_timeout this many times, with backoff."),
    ] = 0,
    statement_timeout: Annotated[
        str | None,
        typer.Option(
            "--statement-timeout",
            metavar="DURATION",
            help="PostgreSQL statement_timeout for each statement of a migration, e.g. 10min.",
        ),
    ] = None,
    wait_for_db: WaitForDb = 0,
    as_json: Json = False,
) -> None:
    """Apply the pending migrations in order, each in its own transaction with its tracking row.

    Example: runner migrate --dsn postgresql://app@db.internal/app
    """
    if dry_run:
        plan(dsn, dir, table, strict, allow_out_of_order, to, wait_for_db, as_json)
        return
    progress = sys.stderr if as_json else sys.stdout

    def on_event(event: api.Event) -> None:
        if isinstance(event, api.Note):
            _say(event.text, sys.stderr)
        elif isinstance(event, api.DriftWarning):
            _say(report.warning_line(event.entry), sys.stderr, "warning: ", "yellow")
        elif isinstance(event, api.SchemaWarning):
            line = f"changed outside runner: {event.difference.describe()}"
            _say(line, sys.stderr, "warning: ", "yellow")
        elif not isinstance(event, api.Applying):  # plain output says what was done, not what is starting
            _say(report.progress_line(event), progress)

    def work() -> tuple[int, dict[str, Any]]:
        result = api.migrate(dsn, dir, table, strict=strict, allow_out_of_order=allow_out_of_order, to=to,
                             lock_wait=lock_wait, lock_timeout=lock_timeout, statement_timeout=statement_timeout,
                             retries=retries, wait_for_db=wait_for_db, on_event=on_event)  # fmt: skip
        summary = report.migrate_summary(result)
        if summary:
            _say(summary, progress)
        return 0, report.migrate_doc(result)

    _run(as_json, work)


@app.command(epilog=EXIT_CODES)
def status(
    dsn: Dsn = None,
    dir: Dir = Path(api.DEFAULT_DIR),
    table: Table = DEFAULT_TABLE,
    wait_for_db: WaitForDb = 0,
    as_json: Json = False,
) -> None:
    """Show every migration with its state: applied, pending, edited, missing or out_of_order.

    Example: runner status --json
    """

    def work() -> tuple[int, dict[str, Any]]:
        plan = api.status(dsn, dir, table, wait_for_db=wait_for_db, on_event=_notes_to_stderr)
        if not as_json:
            report.print_status_table(plan)
        return 0, report.status_doc(plan)

    _run(as_json, work)


@app.command(epilog=EXIT_CODES)
def verify(
    dsn: Dsn = None,
    dir: Dir = Path(api.DEFAULT_DIR),
    table: Table = DEFAULT_TABLE,
    strict: Annotated[bool, typer.Option("--strict", help="Count pending files as drift too.")] = False,
    wait_for_db: WaitForDb = 0,
    as_json: Json = False,
) -> None:
    """Detect drift between the files and the tracking table: exit 0 when clean, 1 when not.

    Edited, missing and out-of-order files are drift, and so is an INVALID index (left by a
    failed concurrent build) and any change to the schema made outside runner since the last
    migrate; pending files are listed, and are drift only with --strict. An edit to comments or
    whitespace only is harmless, and drift only with --strict.
    Example: runner verify --strict
    """

    def work() -> tuple[int, dict[str, Any]]:
        result = api.verify(dsn, dir, table, strict=strict, wait_for_db=wait_for_db, on_event=_notes_to_stderr)
        if not as_json:
            for line in report.verify_lines(result):
                _say(line, sys.stdout)
        return (0 if result.clean else 1), report.verify_doc(result)

    _run(as_json, work)


@app.command(epilog=EXIT_CODES)
def plan(
    dsn: Dsn = None,
    dir: Dir = Path(api.DEFAULT_DIR),
    table: Table = DEFAULT_TABLE,
    strict: Strict = False,
    allow_out_of_order: AllowOutOfOrder = False,
    to: To = None,
    wait_for_db: WaitForDb = 0,
    as_json: Json = False,
) -> None:
    """Show what migrate would run, in order, how, and every warning it would give. Changes nothing.

    Example: runner plan --to 15
    """

    def work() -> tuple[int, dict[str, Any]]:
        result = api.dry_run(dsn, dir, table, strict=strict, allow_out_of_order=allow_out_of_order, to=to,
                             wait_for_db=wait_for_db, on_event=_notes_to_stderr)  # fmt: skip
        for entry in result.warnings:
            _say(report.warning_line(entry), sys.stderr, "warning: ", "yellow")
        for difference in result.schema_warnings:
            _say(f"changed outside runner: {difference.describe()}", sys.stderr, "warning: ", "yellow")
        if not as_json:
            for line in report.plan_lines(result):
                _say(line, sys.stdout)
        return 0, report.plan_doc(result)

    _run(as_json, work)


Files = Annotated[list[str] | None, typer.Argument(help="Files, by path, name or version number.")]


def _changes(as_json: bool, work: Callable[[], list[Any]], nothing: str) -> None:
    def run() -> tuple[int, dict[str, Any]]:
        changes = work()
        if not as_json:
            for line in [report.change_line(c) for c in changes] or [nothing]:
                _say(line, sys.stdout)
        return 0, {"ok": True, "changes": [report.change_doc(c) for c in changes]}

    _run(as_json, run)


@app.command(epilog=EXIT_CODES)
def accept(
    files: Files = None,
    all_edited: Annotated[bool, typer.Option("--all", help="Accept every edited file.")] = False,
    dsn: Dsn = None,
    dir: Dir = Path(api.DEFAULT_DIR),
    table: Table = DEFAULT_TABLE,
    as_json: Json = False,
) -> None:
    """Record the new checksum of applied files that were edited on purpose (the SQL is not run).

    Example: runner accept sql/0003_create_participants.sql
    """
    if not files and not all_edited:
        _usage("name the edited files to accept, or pass --all", "runner accept")
    wanted = None if all_edited else files
    _changes(as_json, lambda: api.accept(dsn, dir, table, wanted, on_event=_notes_to_stderr), "Nothing to accept")


@app.command(epilog=EXIT_CODES)
def mark(
    versions: Annotated[list[str], typer.Argument(help="Versions (or file names) to record as applied.")],
    dsn: Dsn = None,
    dir: Dir = Path(api.DEFAULT_DIR),
    table: Table = DEFAULT_TABLE,
    as_json: Json = False,
) -> None:
    """Record files as applied without running them: you already ran them by hand.

    Example: psql -f sql/0015_add_index.sql && runner mark 15
    """
    _changes(as_json, lambda: api.mark(dsn, dir, table, versions, on_event=_notes_to_stderr), "Nothing to mark")


@app.command(epilog=EXIT_CODES)
def baseline(
    version: Annotated[int, typer.Argument(help="The last version the database already has.")],
    dsn: Dsn = None,
    dir: Dir = Path(api.DEFAULT_DIR),
    table: Table = DEFAULT_TABLE,
    as_json: Json = False,
) -> None:
    """Adopt an existing database: record every file up to VERSION as applied, without running it.

    Example: runner baseline 14
    """
    _changes(as_json, lambda: api.baseline(dsn, dir, table, version, on_event=_notes_to_stderr),
             f"Nothing to baseline: every file up to version {version} is applied")  # fmt: skip


@app.command(epilog=EXIT_CODES)
def unmark(
    versions: Annotated[list[str], typer.Argument(help="Versions (or file names) whose record to forget.")],
    dsn: Dsn = None,
    dir: Dir = Path(api.DEFAULT_DIR),
    table: Table = DEFAULT_TABLE,
    as_json: Json = False,
) -> None:
    """Forget the record of migrations, so the next migrate runs their files again.

    Example: runner unmark 15
    """
    _changes(as_json, lambda: api.unmark(dsn, dir, table, versions, on_event=_notes_to_stderr), "Nothing to unmark")


@app.command(epilog=EXIT_CODES)
def history(
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Show only the newest N events.")] = None,
    dsn: Dsn = None,
    table: Table = DEFAULT_TABLE,
    as_json: Json = False,
) -> None:
    """Show the history: every file applied, every failed attempt, every accept, mark and unmark.

    Example: runner history --limit 20
    """

    def work() -> tuple[int, dict[str, Any]]:
        events = api.history_events(dsn, table, limit, on_event=_notes_to_stderr)
        if not as_json:
            report.print_history(events)
        return 0, {"events": [report.event_doc(e) for e in events]}

    _run(as_json, work)


@app.command(epilog=EXIT_CODES)
def lint(
    files: Annotated[list[str] | None, typer.Argument(help="Files to lint. Default: the pending ones.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too, not only errors.")] = False,
    dsn: Dsn = None,
    dir: Dir = Path(api.DEFAULT_DIR),
    table: Table = DEFAULT_TABLE,
    as_json: Json = False,
) -> None:
    """Check migrations with the squawk linter: exit 1 on error-level findings (--strict: on any finding).

    Rules to leave out go in pyproject.toml: [tool.runner.lint] exclude = ["prefer-text-field"].
    Example: runner lint sql/0015_add_index.sql
    """

    def work() -> tuple[int, dict[str, Any]]:
        findings = api.lint(dsn, dir, table, files, on_event=_notes_to_stderr)
        if not as_json:
            for line in report.lint_lines(findings):
                _say(line, sys.stdout)
        failing = [f for f in findings if strict or f.level == "error"]
        return (1 if failing else 0), report.lint_doc(findings)

    _run(as_json, work)


@app.command(epilog=EXIT_CODES)
def diff(
    against: Annotated[str, typer.Option("--against", metavar="DSN", help="The database to compare with.")],
    dsn: Dsn = None,
    table: Table = DEFAULT_TABLE,
    as_json: Json = False,
) -> None:
    """Compare the schema of two live databases (--dsn and --against): exit 0 when alike, 1 when not.

    Example: runner diff --dsn postgresql://db-staging/app --against postgresql://db-prod/app
    """

    def work() -> tuple[int, dict[str, Any]]:
        found = api.diff(dsn, against, table, on_event=_notes_to_stderr)
        if not as_json:
            for line in report.diff_lines(found) or ["No differences"]:
                _say(line, sys.stdout)
        return (1 if found else 0), {"same": not found, "differences": [report.difference_doc(d) for d in found]}

    _run(as_json, work)


database = typer.Typer(help="The target database itself.", no_args_is_help=True)
app.add_typer(database, name="db")


@database.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def shell(context: typer.Context, dsn: Dsn = None) -> None:
    """Open psql on the database runner migrates (the embedded one by default); extra arguments go to psql.

    Example: runner db shell -- -f sql/0015_add_index.sql
    """

    def work() -> tuple[int, None]:
        return api.shell(dsn, list(context.args), on_event=_notes_to_stderr), None

    _run(False, work)


@app.command(epilog=EXIT_CODES)
def new(
    description: Annotated[str, typer.Argument(help="What the migration does, e.g. 'add due date'.")],
    dir: Dir = Path(api.DEFAULT_DIR),
    as_json: Json = False,
) -> None:
    """Create the next numbered migration file from a short template.

    Example: runner new "add due date to tat alerts"  ->  sql/0015_add_due_date_to_tat_alerts.sql
    """
    from runner.scaffold import new_migration

    def work() -> tuple[int, dict[str, Any]]:
        created = new_migration(dir, description)
        if not as_json:
            _say(f"Created {created}", sys.stdout)
        return 0, {"created": str(created)}

    _run(as_json, work)


def _usage(problem: str, command: str) -> NoReturn:
    _say(f"{problem}; see `{command} --help`", sys.stderr, "error: ", "red")
    raise typer.Exit(2)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main() -> None:
    # SIGTERM stops a run the way Ctrl-C does: the running statement is cancelled and rolled back.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = app(prog_name="runner", standalone_mode=False)
    except Exception as usage:  # typer's own errors: an unknown option, a value out of range
        if not hasattr(usage, "format_message"):
            raise
        code = getattr(usage, "exit_code", 2)
        if type(usage).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
            context = getattr(usage, "ctx", None)
            command = context.command_path if context else "runner"
            text = f"{usage.format_message().rstrip('.')}; see `{command} --help`"
            _say(text, sys.stderr, "error: ", "red")
            if "--json" in sys.argv[1:]:
                print(json.dumps({"ok": False, "error": {"kind": "usage", "exit_code": code, "message": text}}))
    sys.exit(code if isinstance(code, int) else 0)
