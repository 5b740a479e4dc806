"""``runner db``: the target database itself (psql on it, its URL) and the embedded PostgreSQL's life."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from runner import api, config
from runner.cli import EPILOG, Answer, _run, app, confirmed
from runner.cli.options import Connection, Only, Printing, Run, uses
from runner.progress import Output, say

database = typer.Typer(
    help="The target database itself: psql on it, its URL, and keeping the embedded one running (or deleting it).\n\n"
    'Example: runner db start && psql "$(runner db url)"',
    no_args_is_help=True,
)
app.add_typer(database, name="db")


@database.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@uses
def shell(context: typer.Context, where: Annotated[Connection, Only("dsn")]) -> None:
    """Open psql on the database runner migrates (the embedded one by default); extra arguments go to psql.

    Example: runner db shell -- -f sql/0015_add_index.sql
    """
    _run(context, Output(), lambda run: (api.shell(run.settings.database_url, list(context.args),
                                                   on_event=run.notes), None))  # fmt: skip


@database.command(epilog=EPILOG)
@uses
def url(context: typer.Context, where: Annotated[Connection, Only("dsn")], shown: Printing) -> None:
    """Print the URL of the database runner migrates, never with its password (it is shown as ***).

    With no database given that is the embedded PostgreSQL, which runs only while a runner uses it:
    `runner db start` keeps it up for other tools until `runner db stop`.
    Example: psql "$(runner db url)"
    """
    from runner import shell as psql

    def work(run: Run) -> Answer:
        s, out = run.settings, run.out
        target = psql.locate(s.database_url, s.sources["database_url"])
        if target.source == "embedded" and not target.running:
            out.note(f"note: the embedded PostgreSQL in {target.where} is not running, so this URL does not answer "
                     "yet; `runner db start` starts it and keeps it up until `runner db stop`")  # fmt: skip
        if target.source == "libpq environment":  # even a PGPASSWORD alone leaves the embedded server
            from runner.db import choose

            out.note(f"note: runner uses {choose(None, target.source)}")
        run.lines([target.url])
        return 0, {"url": target.url, "source": target.source, "reason": target.reason, "running": target.running,
                   "kept": target.kept}  # fmt: skip

    _run(context, shown, work)


def _elsewhere(settings: config.Settings) -> str | None:
    """Why the other commands would not use the embedded server, if they would not."""
    from runner.db import libpq_variables

    if settings.database_url:
        return f"{settings.sources['database_url']} is set, so the other commands use that database, not this one"
    if libpq_variables():
        return "libpq's PG* variables are set, so the other commands use that server, not this one"
    return None


def _said(run: Run, text: str) -> None:
    """A line that neither --json nor --quiet wants."""
    if not (run.out.as_json or run.out.quiet):
        say(text)


@database.command(epilog=EPILOG)
@uses
def start(context: typer.Context, shown: Printing) -> None:
    """Start the project's embedded PostgreSQL and keep it running between commands, until `runner db stop`.

    Example: runner db start && psql "$(runner db url)"
    """
    from runner import embedded

    def work(run: Run) -> Answer:
        elsewhere = _elsewhere(run.settings)
        found = embedded.keep(on_note=run.out.note)
        if elsewhere:
            run.out.note(f"note: {elsewhere}")
        _said(run, f"The embedded PostgreSQL in {found.where} is running, and stays up until `runner db stop`")
        return 0, {"running": found.running, "kept": found.kept, "data": found.where}

    _run(context, shown, work)


_STOPPED = {
    "stopped": "Stopped the embedded PostgreSQL in {}",
    "not running": "The embedded PostgreSQL in {} is not running",
    "in use": "The embedded PostgreSQL in {} is in use by another runner, which stops it when it finishes",
}


@database.command(epilog=EPILOG)
@uses
def stop(context: typer.Context, shown: Printing) -> None:
    """Stop the embedded PostgreSQL that `runner db start` kept running (or let the last runner using it stop it).

    Example: runner db stop
    """
    from runner import embedded

    def work(run: Run) -> Answer:  # the settings are read all the same: a broken pyproject.toml is reported here too
        outcome = embedded.release()
        where = embedded.state().where
        _said(run, _STOPPED[outcome].format(where))
        return 0, {"outcome": outcome, "data": where}

    _run(context, shown, work)


@database.command(epilog=EPILOG)
@uses
def destroy(
    context: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking (for scripts).")] = False,
    *,
    shown: Printing,
) -> None:
    """Stop the project's embedded PostgreSQL and delete it, with all its data; the next command creates a new one.

    It asks first on a terminal; without one, it deletes nothing unless given --yes.
    Example: runner db destroy --yes && runner migrate
    """
    from runner import embedded
    from runner.errors import BadInput, Refused

    def work(run: Run) -> Answer:
        elsewhere = _elsewhere(run.settings)
        if elsewhere:
            run.out.note(f"note: {elsewhere}; `runner db destroy` deletes the embedded one only")
        found = embedded.existing()
        if found is None or not found.created:
            if found is not None:
                embedded.destroy()  # the notes of a server never created, such as its id
            _said(run, "There is no embedded PostgreSQL in this project: nothing to delete")
            return 0, {"destroyed": False, "data": found.where if found else None}
        question = f"Delete the embedded PostgreSQL in {found.where}, with all its data?"
        if not yes and not sys.stdin.isatty():
            raise BadInput(f"`runner db destroy` deletes the embedded PostgreSQL in {found.where} with all its data, "
                           "and there is no terminal to confirm it on; pass --yes to delete it")  # fmt: skip
        if not yes and not confirmed(question, "nothing was deleted"):
            raise Refused("not confirmed: nothing was deleted")
        embedded.destroy()
        _said(run, f"Deleted the embedded PostgreSQL in {found.where}; "
                   "the next command that needs it creates a new one")  # fmt: skip
        return 0, {"destroyed": True, "data": found.where}

    _run(context, shown, work)
