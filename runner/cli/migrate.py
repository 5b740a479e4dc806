"""The commands that apply and read the state of the migrations: migrate, status, verify, plan."""

from __future__ import annotations

from typing import Annotated

import typer

from runner import api, report, results
from runner.cli import EPILOG, Answer, _run, app
from runner.cli.options import (
    Connection,
    Fleet,
    LockTimeout,
    LockWait,
    Pending,
    Printing,
    Retries,
    Run,
    StatementTimeout,
    WaitForDb,
    project_schema_file,
    uses,
)
from runner.progress import MigrateProgress

# One line per target and the summary is what a fleet run prints; this asks for each target's own report too.
Each = Annotated[
    bool,
    typer.Option(
        "--each",
        rich_help_panel="Many databases",
        help="With many targets: each target's own report, not only the summary.",
    ),
]


@app.command(epilog=EPILOG)
@uses
def migrate(
    context: typer.Context,
    where: Connection,
    pending: Pending,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run, as `runner plan` does.")] = False,
    lock_wait: LockWait = None,
    lock_timeout: LockTimeout = None,
    retries: Retries = None,
    statement_timeout: StatementTimeout = None,
    wait_for_db: WaitForDb = None,
    *,
    shown: Printing,
    targets: Fleet,
    canary: Annotated[int, typer.Option("--canary", min=0, metavar="N", rich_help_panel="Many databases",
                                        help="Migrate the first N targets first; the rest only if all of them "
                                             "succeeded.")] = 0,
    keep_going: Annotated[bool, typer.Option("--keep-going", rich_help_panel="Many databases",
                                             help="Go on with the other targets after one fails (by default no new "
                                                  "target starts; running ones finish).")] = False,
    create_schema: Annotated[bool, typer.Option("--create-schema", rich_help_panel="Many databases",
                                                help="Create the tenant schema --schemas NAME first: provisions a "
                                                     "new tenant.")] = False,
) -> None:  # fmt: skip
    """Apply the pending migrations in order, each in its own transaction with its tracking row.

    Example: runner migrate --dsn postgresql://app@db.internal/app
    """
    if dry_run:
        _plan(context, shown, pending, targets, where.dsn, each=False)
        return

    def work(run: Run) -> Answer:
        s, out = run.settings, run.out
        if targets.chosen(where.dsn) or create_schema:
            from runner.cli import fleet  # threads and targets: only a fleet run needs them

            return fleet.migrate(run, targets, where.dsn, canary=canary, keep_going=keep_going,
                                     create_schema=create_schema, strict=s.strict,
                                     allow_out_of_order=s.allow_out_of_order, to=pending.to, lock_wait=s.lock_wait,
                                     lock_timeout=s.lock_timeout, statement_timeout=s.statement_timeout,
                                     retries=s.retries, wait_for_db=s.wait_for_db,
                                     variables=run.variables(pending.sets))  # fmt: skip
        with MigrateProgress.for_output(out) as progress:

            def on_event(event: results.Event) -> None:
                if isinstance(event, results.Note):
                    out.note(event.text)
                elif isinstance(event, results.DriftWarning):
                    out.warn(report.warning_line(event.entry))
                elif isinstance(event, results.SchemaWarning):
                    out.warn(f"changed outside runner: {event.difference.describe()}")
                else:
                    progress(event)

            result = api.migrate(*run.target, strict=s.strict, allow_out_of_order=s.allow_out_of_order,
                                 to=pending.to, lock_wait=s.lock_wait, lock_timeout=s.lock_timeout,
                                 statement_timeout=s.statement_timeout, retries=s.retries, wait_for_db=s.wait_for_db,
                                 variables=run.variables(pending.sets), schema_file=project_schema_file(s),
                                 on_event=on_event)  # fmt: skip
        summary = report.migrate_summary(result)
        if summary:
            progress.line(summary)
        return 0, report.migrate_doc(result)

    _run(context, shown, work)


@app.command(epilog=EPILOG)
@uses
def status(
    context: typer.Context, where: Connection, wait_for_db: WaitForDb = None, *, shown: Printing, targets: Fleet,
    each: Each = False,
) -> None:  # fmt: skip
    """Show every migration with its state: applied, pending, edited, missing, out_of_order, deleted or outdated.

    Example: runner status --json
    """

    def work(run: Run) -> Answer:
        if targets.chosen(where.dsn):
            from runner.cli import fleet  # threads and targets: only a fleet run needs them

            return fleet.status(run, targets, where.dsn, each)
        plan = api.status(*run.target, wait_for_db=run.settings.wait_for_db, on_event=run.notes)
        if not run.out.as_json:
            report.print_status_table(plan)
        return 0, report.status_doc(plan)

    _run(context, shown, work)


@app.command(epilog=EPILOG)
@uses
def verify(
    context: typer.Context,
    where: Connection,
    pending_is_drift: Annotated[bool, typer.Option("--strict", help="Count pending files as drift too.")] = False,
    wait_for_db: WaitForDb = None,
    *,
    shown: Printing,
    targets: Fleet,
    each: Each = False,
) -> None:
    """Detect drift between the files and the tracking table: exit 0 when clean, 1 when not.

    Edited, missing and out-of-order files are drift, and so is an INVALID index (left by a
    failed concurrent build) and any change to the schema made outside runner since the last
    migrate; pending files are listed, and are drift only with --strict. An edit to comments or
    whitespace only is harmless, and drift only with --strict.
    Example: runner verify --strict
    """

    def work(run: Run) -> Answer:
        if targets.chosen(where.dsn):
            from runner.cli import fleet  # threads and targets: only a fleet run needs them

            return fleet.verify(run, targets, where.dsn, pending_is_drift, each)
        result = api.verify(*run.target, strict=pending_is_drift, wait_for_db=run.settings.wait_for_db,
                            on_event=run.notes)  # fmt: skip
        run.lines(report.verify_lines(result))
        return (0 if result.clean else 1), report.verify_doc(result)

    _run(context, shown, work)


@app.command(epilog=EPILOG)
@uses
def plan(
    context: typer.Context,
    where: Connection,
    pending: Pending,
    wait_for_db: WaitForDb = None,
    *,
    shown: Printing,
    targets: Fleet,
    each: Each = False,
) -> None:
    """Show what migrate would run, in order, how, and every warning it would give. Changes nothing.

    Example: runner plan --to 15
    """
    _plan(context, shown, pending, targets, where.dsn, each)


def _plan(context: typer.Context, shown: Printing, pending: Pending, targets: Fleet, dsns: list[str] | None,
          each: bool) -> None:  # fmt: skip
    def work(run: Run) -> Answer:
        s, out, to, values = run.settings, run.out, pending.to, run.variables(pending.sets)
        if targets.chosen(dsns):
            from runner.cli import fleet  # threads and targets: only a fleet run needs them

            return fleet.plan(
                run,
                targets,
                dsns,
                each,
                strict=s.strict,
                allow_out_of_order=s.allow_out_of_order,
                to=to,
                variables=values,
            )
        result = api.dry_run(*run.target, strict=s.strict, allow_out_of_order=s.allow_out_of_order, to=to,
                             wait_for_db=s.wait_for_db, variables=values, on_event=run.notes)  # fmt: skip
        for entry in result.warnings:
            out.warn(report.warning_line(entry))
        for difference in result.schema_warnings:
            out.warn(f"changed outside runner: {difference.describe()}")
        run.lines(report.plan_lines(result))
        failure = report.plan_failure(result)
        if failure is not None:
            out.error(failure)
        return (3 if failure else 0), report.plan_doc(result)  # 3: migrate would fail, as it exits then

    _run(context, shown, work)
