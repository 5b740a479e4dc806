"""The commands that undo: rollback and redo, over runner.api.rollback and the down files of sql/down/."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from runner import api, report, results
from runner.cli import EPILOG, Answer, _run, app, confirmed
from runner.cli.options import (
    Connection,
    Fleet,
    LockTimeout,
    LockWait,
    Printing,
    Retries,
    Run,
    Sets,
    StatementTimeout,
    project_schema_file,
    uses,
)
from runner.errors import BadInput, Refused
from runner.undo import RolledBack

Force = Annotated[bool, typer.Option("--force", help="Roll back a migration (or down file) edited since it was "
                                                     "applied.")]  # fmt: skip
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Roll back without asking (for scripts).")]


def _allowed(run: Run, yes: bool, what: str, command: str = "rollback") -> Callable[[list[str]], None]:
    """Refused where the project turned rollback off (production); then, once the steps are known, under the
    lock (api.rollback's ``confirm``), asked on a terminal, else --yes: what is asked is what runs."""

    if not run.settings.rollback:
        raise Refused(f"rollback is turned off for this target ({run.settings.sources.get('rollback')}: "
                      "rollback = false); nothing was rolled back")  # fmt: skip

    def confirm(steps: list[str]) -> None:
        if yes or not steps:
            return
        if not sys.stdin.isatty():
            raise BadInput(f"runner {command} runs down files and deletes records, and there is no terminal to "
                           "confirm it on; pass --yes")  # fmt: skip
        if not confirmed(f"{what} {', '.join(steps)}: go on?", "nothing was rolled back"):
            raise Refused("not confirmed: nothing was rolled back")

    return confirm


def _session(run: Run, sets: list[str] | None) -> dict[str, Any]:
    """The keywords of api.rollback and api.redo (and a fleet's rollback) that this command's settings give."""
    s = run.settings
    return {"lock_wait": s.lock_wait, "lock_timeout": s.lock_timeout, "statement_timeout": s.statement_timeout,
            "retries": s.retries, "variables": run.variables(sets)}  # fmt: skip


def _line(step: RolledBack) -> str:
    return f"Rolled back: {step.name} ({step.duration_ms:.0f} ms, {step.down})"


def _rollback(run: Run, sets: list[str] | None, **how: Any) -> results.RollbackResult:
    """api.rollback with this command's settings."""
    schema_file = None if how.get("dry_run") else project_schema_file(run.settings)
    return api.rollback(*run.target, schema_file=schema_file, on_event=run.notes, **(_session(run, sets) | how))


@app.command(epilog=EPILOG)
@uses
def rollback(
    context: typer.Context,
    to: Annotated[int | None, typer.Option("--to", metavar="VERSION",
                                           help="Undo every migration above this version, newest first "
                                                "(0: all of them). Default: the newest one.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be undone, and run nothing.")] = False,
    force: Force = False,
    yes: Yes = False,
    sets: Sets = None,
    lock_wait: LockWait = None,
    lock_timeout: LockTimeout = None,
    statement_timeout: StatementTimeout = None,
    retries: Retries = None,
    *,
    where: Connection,
    shown: Printing,
    targets: Fleet,
) -> None:  # fmt: skip
    """Undo the newest applied migration with its down file (sql/down/<its file name>), or all above --to.

    Each down file runs in one transaction with the removal of its record and a history row.
    Example: runner rollback --dry-run, then runner rollback
    """

    def work(run: Run) -> Answer:
        if targets.chosen(where.dsn):
            from runner.cli import fleet  # threads and targets: only a fleet run needs them

            ask = (lambda shown: None) if dry_run else _allowed(run, yes, "Rolling back on")
            return fleet.rollback(run, targets, where.dsn, dry_run=dry_run, ask=ask, to=to, force=force,
                                  **_session(run, sets))  # fmt: skip
        if dry_run:
            planned = _rollback(run, sets, to=to, force=force, dry_run=True)
            run.lines([f"Would roll back {name}" for name in planned.steps] or ["Nothing to roll back"])
            return 0, {"would_roll_back": planned.steps}
        done = _rollback(run, sets, to=to, force=force, confirm=_allowed(run, yes, "Rolling back"))
        if not done.steps:
            run.lines(["Nothing to roll back"])
            return 0, {"rolled_back": []}
        run.lines([*map(_line, done.rolled_back), f"Rolled back {len(done.rolled_back)} migration(s)"])
        return 0, {"rolled_back": [r.name for r in done.rolled_back]}

    _run(context, shown, work)


@app.command(epilog=EPILOG)
@uses
def redo(
    context: typer.Context,
    force: Force = False,
    yes: Yes = False,
    sets: Sets = None,
    lock_wait: LockWait = None,
    lock_timeout: LockTimeout = None,
    statement_timeout: StatementTimeout = None,
    retries: Retries = None,
    *,
    where: Connection,
    shown: Printing,
) -> None:  # fmt: skip
    """Roll back the newest applied migration and apply it again: the loop of writing one.

    Example: runner redo --yes
    """

    def work(run: Run) -> Answer:
        done = api.redo(
            *run.target,
            force=force,
            schema_file=project_schema_file(run.settings),
            confirm=_allowed(run, yes, "Redoing", "redo"),
            on_event=run.notes,
            **_session(run, sets),
        )
        undone = done.rolled_back
        if undone is None or done.migrated is None:
            run.lines(["Nothing to redo: no migration is applied"])
            return 0, {"redone": None}
        run.lines([_line(undone), *map(report.progress_line, done.migrated.applied)])
        return 0, {"redone": undone.name}

    _run(context, shown, work)
