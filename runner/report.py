"""Turning plans and results into lines for people and JSON documents for machines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from runner.api import MigrateResult, Starting, VerifyResult
from runner.apply import Applied
from runner.errors import MigrationFailed, RunnerError
from runner.plan import Entry, Plan, State


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def warning_line(entry: Entry) -> str:
    if entry.state == State.MISSING:
        return f"{entry.name} was applied but its file is gone ({entry.detail})"
    return f"{entry.name} changed after it was applied ({entry.detail}); run `runner verify` for details"


def progress_line(event: Starting | Applied) -> str:
    """The line migrate prints when it starts, and after each file."""
    if isinstance(event, Starting):
        return f"Running {event.count} pending migration(s)…" if event.count else "All migrations are up to date"
    if event.empty:
        return f"Completed: {event.name} (empty file, recorded)"
    how = (
        ", no transaction"
        if event.no_transaction
        else ", BEGIN/COMMIT wrapper ignored"
        if event.wrapper_removed
        else ""
    )
    return f"Completed: {event.name} ({event.duration_ms:.0f} ms{how})"


def migrate_summary(result: MigrateResult) -> str | None:
    return f"Applied {len(result.applied)} migration(s)" if result.applied else None


def counts(plan: Plan) -> str:
    found = {state: len(plan.having(state)) for state in State}
    return ", ".join(f"{n} {state.value.replace('_', ' ')}" for state, n in found.items() if n) or "no migrations"


def verify_lines(result: VerifyResult) -> list[str]:
    labels = {State.EDITED: "edited", State.MISSING: "missing", State.OUT_OF_ORDER: "out of order"}
    lines = [f"{labels[e.state]:<13}{e.name}: {e.detail}" for e in result.drift]
    lines += [f"{'pending':<13}{e.name}" for e in result.pending]
    lines += [f"{'invalid':<13}{index.describe()}" for index in result.invalid_indexes]
    verdict = "Drift found" if not result.clean else "No drift"
    lines.append(f"{verdict}: {counts(result.plan)}")
    return lines


def print_status_table(plan: Plan) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    styles = {State.APPLIED: "green", State.PENDING: "yellow", State.EDITED: "red",
              State.MISSING: "red", State.OUT_OF_ORDER: "magenta"}  # fmt: skip
    columns = ["Version", "Name", "State", "Executed at"]
    with_detail = any(e.detail for e in plan.entries)
    table = Table(show_edge=False, header_style="bold")
    for column in columns + (["Detail"] if with_detail else []):
        table.add_column(column, justify="right" if column == "Version" else "left", no_wrap=column != "Detail")
    for e in plan.entries:
        executed = f"{e.record.executed_at:%Y-%m-%d %H:%M:%S}" if e.record else ""
        row = [str(e.version), e.name, f"[{styles[e.state]}]{e.state.value}[/]", executed]
        table.add_row(*row, *([e.detail] if with_detail else []))
    # On a terminal, fit its width; in a pipe or a log, never cut a file name short.
    console = Console(width=None if sys.stdout.isatty() else 1000)
    console.print(table)
    console.print(counts(plan))


# JSON documents: one per command, and nothing else on stdout.


def entry_doc(e: Entry) -> dict[str, Any]:
    return {
        "version": e.version,
        "name": e.name,
        "state": e.state.value,
        "checksum": e.file.checksum if e.file else e.record.checksum if e.record else None,
        "applied_checksum": e.record.checksum if e.record else None,
        "executed_at": _when(e.record.executed_at if e.record else None),
        "detail": e.detail or None,
    }


def status_doc(plan: Plan) -> dict[str, Any]:
    return {"migrations": [entry_doc(e) for e in plan.entries]}


def verify_doc(result: VerifyResult) -> dict[str, Any]:
    return {
        "clean": result.clean,
        "strict": result.strict,
        "drift": [entry_doc(e) for e in result.drift],
        "pending": [entry_doc(e) for e in result.pending],
        "invalid_indexes": [{"index": i.name, "table": i.table, "fix": i.fix} for i in result.invalid_indexes],
    }


def applied_doc(a: Applied) -> dict[str, Any]:
    return {"version": a.version, "name": a.name, "checksum": a.checksum, "statements": a.statements,
            "empty": a.empty, "duration_ms": round(a.duration_ms, 1), "no_transaction": a.no_transaction,
            "wrapper_removed": a.wrapper_removed}  # fmt: skip


def migrate_doc(result: MigrateResult) -> dict[str, Any]:
    return {
        "ok": True,
        "applied": [applied_doc(a) for a in result.applied],
        "warnings": [entry_doc(e) for e in result.warnings],
        "up_to_date": not result.applied,
    }


def error_doc(error: RunnerError) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ok": False,
        "error": {"kind": error.kind, "exit_code": error.exit_code, "message": str(error)},
    }
    if isinstance(error, MigrationFailed):
        doc["error"].update(error.details)
        doc["applied"] = [applied_doc(a) for a in error.applied if isinstance(a, Applied)]
    return doc


def error_lines(error: RunnerError) -> list[str]:
    """The error itself on one line; for a failed migration, the server's own DETAIL/HINT/CONTEXT below."""
    lines = [str(error)]
    if isinstance(error, MigrationFailed):
        for key in ("detail", "hint", "context"):
            value = error.details.get(key)
            if value:
                lines += [f"  {key.upper()}: {part}" for part in str(value).splitlines()]
    return lines
