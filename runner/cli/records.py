"""The commands that change or read the records without running SQL: accept, mark, baseline, unmark, history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from runner import api, report
from runner.cli import EPILOG, Answer, _output, _run, _usage, app
from runner.cli.options import Connection, Only, Printing, Run, uses

Files = Annotated[list[str] | None, typer.Argument(help="Files, by path, name or version number.")]


def _changes(context: typer.Context, shown: Printing, work: Callable[[Run], list[Any]], nothing: str) -> None:
    """Run a command that changes records, and list the changes (or say ``nothing``)."""

    def changed(run: Run) -> Answer:
        changes = work(run)
        run.lines([report.change_line(c) for c in changes] or [nothing])
        return 0, {"ok": True, "changes": [report.change_doc(c) for c in changes]}

    _run(context, shown, changed)


@app.command(epilog=EPILOG)
@uses
def accept(
    context: typer.Context,
    files: Files = None,
    all_edited: Annotated[bool, typer.Option("--all", help="Accept every edited file.")] = False,
    whole_schema: Annotated[
        bool, typer.Option("--schema", help="Accept the schema as it is: changes made outside runner stop being drift.")
    ] = False,
    *,
    where: Connection,
    shown: Printing,
) -> None:
    """Record the new checksum of applied files that were edited on purpose (the SQL is not run), or, with
    --schema, the schema as it is now, so that verify stops reporting changes made outside runner.

    Example: runner accept sql/0003_create_participants.sql
    """
    out = _output(context, shown)  # --quiet with --verbose is the first mistake to name
    if not (files or all_edited or whole_schema):
        _usage("name the edited files to accept, or pass --all (every edited file) or --schema (changes made "
               "outside runner)", "runner accept")  # fmt: skip
    wanted = None if all_edited else files
    if not whole_schema:
        _changes(context, shown, lambda run: api.accept(*run.target, wanted, on_event=run.notes), "Nothing to accept")
        return

    def work(run: Run) -> Answer:
        changes = api.accept(*run.target, wanted, on_event=run.notes) if files or all_edited else []
        accepted = api.accept_schema(*run.target, on_event=run.notes)
        run.lines([report.change_line(c) for c in changes] + report.schema_accepted_lines(accepted))
        return 0, {"ok": True, "changes": [report.change_doc(c) for c in changes],
                   "schema": [report.difference_doc(d) for d in accepted]}  # fmt: skip

    _run(context, out, work)


@app.command(epilog=EPILOG)
@uses
def mark(
    context: typer.Context,
    versions: Annotated[list[str], typer.Argument(help="Versions (or file names) to record as applied.")],
    where: Connection,
    *,
    shown: Printing,
) -> None:
    """Record files as applied without running them: you already ran them by hand.

    Example: psql -f sql/0015_add_index.sql && runner mark 15
    """
    _changes(context, shown, lambda run: api.mark(*run.target, versions, on_event=run.notes), "Nothing to mark")


@app.command(epilog=EPILOG)
@uses
def baseline(
    context: typer.Context,
    version: Annotated[int, typer.Argument(help="The last version the database already has.")],
    where: Connection,
    *,
    shown: Printing,
) -> None:
    """Adopt an existing database: record every file up to VERSION as applied, without running it.

    Example: runner baseline 14
    """
    _changes(context, shown, lambda run: api.baseline(*run.target, version, on_event=run.notes),
             f"Nothing to baseline: every file up to version {version} is applied")  # fmt: skip


@app.command(epilog=EPILOG)
@uses
def unmark(
    context: typer.Context,
    versions: Annotated[list[str], typer.Argument(help="Versions (or file names) whose record to forget.")],
    where: Connection,
    *,
    shown: Printing,
) -> None:
    """Forget the record of migrations, so the next migrate runs their files again.

    Example: runner unmark 15
    """
    _changes(context, shown, lambda run: api.unmark(*run.target, versions, on_event=run.notes), "Nothing to unmark")


@app.command(epilog=EPILOG)
@uses
def history(
    context: typer.Context,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Show only the newest N events.")] = None,
    *,
    where: Annotated[Connection, Only("dsn", "table")],
    shown: Printing,
) -> None:
    """Show the history: every file applied, every failed attempt, every accept, mark and unmark.

    Example: runner history --limit 20
    """

    def work(run: Run) -> Answer:
        events = api.history_events(run.settings.database_url, run.settings.table, limit, on_event=run.notes)
        if not run.out.as_json:
            report.print_history(events)
        return 0, {"events": [report.event_doc(e) for e in events]}

    _run(context, shown, work)
