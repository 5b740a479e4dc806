"""The commands around the migrations: lint, diff, new."""

from __future__ import annotations

from typing import Annotated

import typer

from runner import api, report
from runner.cli import EPILOG, Answer, _run, app
from runner.cli.options import Connection, Only, Printing, Run, Sets, folder, uses
from runner.progress import say


@app.command(epilog=EPILOG)
@uses
def lint(
    context: typer.Context,
    files: Annotated[list[str] | None, typer.Argument(help="Files to lint. Default: the pending ones.")] = None,
    warnings_fail: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too, not only errors.")] = False,
    sets: Sets = None,
    *,
    where: Connection,
    shown: Printing,
) -> None:
    """Check migrations with the squawk linter: exit 1 on error-level findings (--strict: on any finding).

    Rules to leave out go in pyproject.toml: \\[tool.runner.lint] exclude = \\["prefer-text-field"].
    Example: runner lint sql/0015_add_index.sql
    """

    def work(run: Run) -> Answer:
        findings = api.lint(*run.target, files, variables=run.variables(sets), on_event=run.notes)
        run.lines(report.lint_lines(findings))
        failing = [f for f in findings if warnings_fail or f.level == "error"]
        return (1 if failing else 0), report.lint_doc(findings)

    _run(context, shown, work)


@app.command(epilog=EPILOG)
@uses
def diff(
    context: typer.Context,
    against: Annotated[str, typer.Option("--against", metavar="DSN", help="The database to compare with.")],
    *,
    where: Annotated[Connection, Only("dsn", "table")],
    shown: Printing,
) -> None:
    """Compare the schema of two live databases (--dsn and --against): exit 0 when alike, 1 when not.

    Example: runner diff --dsn postgresql://db-staging/app --against postgresql://db-prod/app
    """

    def work(run: Run) -> Answer:
        found = api.diff(run.settings.database_url, against, run.settings.table, on_event=run.notes)
        run.lines(report.diff_lines(found) or ["No differences"])
        return (1 if found else 0), {"same": not found, "differences": [report.difference_doc(d) for d in found]}

    _run(context, shown, work)


@app.command(epilog=EPILOG)
@uses
def new(
    context: typer.Context,
    description: Annotated[str, typer.Argument(help="What the migration does, e.g. 'add due date'.")],
    where: Annotated[Connection, Only("dir")],
    down: Annotated[bool | None, typer.Option("--down/--no-down", help="Create its down file in sql/down/ too. "
                                              "Default: when that folder exists.", show_default=False)] = None,
    *,
    shown: Printing,
) -> None:  # fmt: skip
    """Create the next numbered migration file from a short template, and its down file.

    Example: runner new "add due date to tat alerts"  ->  sql/0015_add_due_date_to_tat_alerts.sql
    """
    from runner.scaffold import new_migration

    def work(run: Run) -> Answer:
        created = new_migration(folder(run.settings), description, down=down)
        if not run.out.as_json:
            for path in created:
                say(f"Created {path}")
        return 0, {"created": str(created[0]), "down": str(created[1]) if len(created) > 1 else None}

    _run(context, shown, work)
