"""Turning plans and results into lines for people and JSON documents for machines."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from runner.apply import Applied, Skipped
from runner.errors import LockLost, MigrationFailed, RunnerError
from runner.history import Event
from runner.manual import Change
from runner.plan import Entry, Plan, State, short
from runner.results import DryRun, MigrateResult, Starting, VerifyResult
from runner.schema import ADDED, DROPPED, Difference

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def warning_line(entry: Entry) -> str:
    if entry.state == State.MISSING:
        return f"{entry.name} was applied but its file is gone ({entry.detail})"
    return f"{entry.name} changed after it was applied ({entry.detail}); run `runner verify` for details"


def progress_line(event: Starting | Applied | Skipped) -> str:
    """The line migrate prints when it starts, and after each file."""
    if isinstance(event, Starting):
        return f"Running {event.count} pending migration(s)…" if event.count else "All migrations are up to date"
    if isinstance(event, Skipped):
        return f"Skipped: {event.name} (another runner applied it while this one waited; none of it ran here)"
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
    skipped = f", skipped {len(result.skipped)} another runner applied" if result.skipped else ""
    rewritten = f"; rewrote {result.schema_file}" if result.schema_file else ""
    if not (result.applied or result.skipped):
        return None
    return f"Applied {len(result.applied)} migration(s){skipped}{rewritten}"


def counts(plan: Plan) -> str:
    found = {state: len(plan.having(state)) for state in State}
    return ", ".join(f"{n} {state.value.replace('_', ' ')}" for state, n in found.items() if n) or "no migrations"


def verify_lines(result: VerifyResult) -> list[str]:
    labels = {State.EDITED: "edited", State.MISSING: "missing", State.OUT_OF_ORDER: "out of order",
              State.DELETED: "deleted", State.INCOMPLETE: "incomplete"}  # fmt: skip
    lines = [f"{labels[e.state]:<13}{e.name}: {e.detail}" for e in result.drift]
    lines += [f"{'harmless':<13}{e.name}: {e.detail}" for e in result.harmless]
    lines += [f"{e.state.value:<13}{e.name}{': ' + e.detail if e.detail else ''}" for e in result.pending]
    lines += [f"{'invalid':<13}{index.describe()}" for index in result.invalid_indexes]
    lines += [f"{'schema':<13}{d.describe()}" for d in result.schema_drift]
    if result.schema_drift:
        lines.append("Changes made outside runner stay drift until `runner accept --schema` records them")
    if not result.schema_recorded:
        lines.append("No schema recorded yet: the next `runner migrate` records it, and verify then compares with it")
    verdict = "Drift found" if not result.clean else "No drift"
    found = [counts(result.plan)]
    found += [f"{len(result.schema_drift)} schema change(s)"] if result.schema_drift else []
    found += [f"{len(result.invalid_indexes)} invalid index(es)"] if result.invalid_indexes else []
    lines.append(f"{verdict}: {', '.join(found)}")
    return lines


def print_status_table(plan: Plan, console: Console | None = None) -> None:
    from rich.text import Text

    styles = {State.APPLIED: "green", State.PENDING: "yellow", State.EDITED: "red",
              State.MISSING: "red", State.OUT_OF_ORDER: "magenta", State.OUTDATED: "yellow",
              State.DELETED: "red", State.INCOMPLETE: "red"}  # fmt: skip
    downs = any(e.file is not None and e.file.down is not None for e in plan.entries)  # the column, if any has one
    rows = [
        [Text("" if e.version is None else str(e.version)),  # a repeatable file has no version
         Text(e.name), Text(e.state.value, style=styles[e.state]),
         *([Text("yes" if e.file is not None and e.file.down is not None else "")] if downs else []),
         Text(f"{e.record.executed_at:%Y-%m-%d %H:%M:%S}" if e.record else "")]
        for e in plan.entries
    ]  # fmt: skip
    console = console or _console()
    headers = ["Version", "Name", "State", *(["Down"] if downs else []), "Executed at"]
    _print_table(console, headers, rows, [e.detail for e in plan.entries], name=1, time=len(headers) - 1)
    console.print(counts(plan))


# Tables that fit the terminal. What names a row (version, name, state, action, …) is never cut: a
# timestamp wraps to its date above its time, a detail wraps (in a column beside the row when it has
# room, else below the name), and a name folds only when nothing else is left to narrow.

DETAIL_BESIDE = 30  # a detail column narrower than this reads worse than lines below the name
NAME_FOLDED = 20
TIME_WRAPPED = 10  # "2026-11-25" above "17:35:02"


def _console() -> Console:
    """On a terminal, its width; in a pipe or a log, wide enough never to wrap a line."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 1000)


def _table_width(widths: list[int]) -> int:
    """What rich draws without outer edges: a space on each side of every cell, a rule between cells."""
    return sum(widths) + 3 * len(widths) - 1


class Narrow(NamedTuple):
    """One step of fitting a table: ``column`` may get as narrow as ``narrowest``; ``at_once`` when it
    only ever wraps at one place (a timestamp at its space), so partway would waste room."""

    column: int
    narrowest: int
    at_once: bool = False


def narrowed(widths: list[int], steps: list[Narrow], room: int) -> list[int]:
    """The widths after each step in order, each narrowing only as far as the table needs to fit ``room``;
    columns no step names keep their width."""
    widths = list(widths)
    for step in steps:
        excess = _table_width(widths) - room
        if excess <= 0:
            break
        narrowest = min(step.narrowest, widths[step.column])
        widths[step.column] = narrowest if step.at_once else max(narrowest, widths[step.column] - excess)
    return widths


class Fit(NamedTuple):
    widths: list[int]  # of each column, and of the detail column last when ``beside``
    beside: bool  # the details get a column of their own; else they go below the name


def fit(headers: list[str], natural: list[int], detail: int, room: int, name: int, time: int) -> Fit:
    """How a table whose columns are ``natural`` cells wide at most (headers included), and whose longest
    detail is ``detail`` cells, fits ``room`` cells; only columns ``name`` and ``time`` narrow. A table
    that does not fit even then is as wide as it must be, and the terminal wraps its lines."""
    wrap_time = Narrow(time, max(TIME_WRAPPED, len(headers[time])), at_once=True)
    fold_name = Narrow(name, max(NAME_FOLDED, len(headers[name])))
    if not detail:
        return Fit(narrowed(natural, [wrap_time, fold_name], room), beside=False)
    wide = max(detail, len("Detail"))
    widths = narrowed([*natural, wide], [Narrow(len(natural), DETAIL_BESIDE), wrap_time], room)
    flexible = len(natural)  # the column that takes back the room a wrapped time leaves
    beside = _table_width(widths) <= room
    if not beside:  # the name column takes the room the details need, down to DETAIL_BESIDE
        flexible, wide = name, max(natural[name], detail + 2)
        steps = [Narrow(name, max(natural[name], min(wide, DETAIL_BESIDE))), wrap_time, fold_name]
        widths = narrowed([*natural[:name], wide, *natural[name + 1 :]], steps, room)
    widths[flexible] += max(0, min(room - _table_width(widths), wide - widths[flexible]))
    return Fit(widths, beside)


def _print_table(console: Console, headers: list[str], rows: list[list[Text]], details: list[str], *,
                 name: int, time: int) -> None:  # fmt: skip
    from rich.cells import cell_len
    from rich.console import Group, RenderableType
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    natural = [max([cell_len(header), *(row[i].cell_len for row in rows)]) for i, header in enumerate(headers)]
    widths, beside = fit(headers, natural, max(map(cell_len, details), default=0), console.width, name, time)
    console.width = max(console.width, _table_width(widths))  # never let rich cut what does not fit
    table = Table(show_edge=False, header_style="bold")
    for header, width in zip([*headers, "Detail"] if beside else headers, widths, strict=True):
        table.add_column(header, justify="right" if header == "Version" else "left", width=width, overflow="fold")
    for row, detail in zip(rows, details, strict=True):
        cells: list[RenderableType] = [*row, Text(detail)] if beside else list(row)
        if detail and not beside:
            cells[name] = Group(row[name], Padding(Text(detail), (0, 0, 0, 2)))
        table.add_row(*cells)
    console.print(table)


# JSON documents: one per command, and nothing else on stdout.


def entry_doc(e: Entry) -> dict[str, Any]:
    return {
        "version": e.version,
        "name": e.name,
        "repeatable": e.repeatable,
        "state": e.state.value,
        "checksum": e.file.checksum if e.file else e.record.checksum if e.record else None,
        "applied_checksum": e.record.checksum if e.record else None,
        "executed_at": _when(e.record.executed_at if e.record else None),
        "detail": e.detail or None,
        "harmless": e.harmless,
        "down": e.file.down.name if e.file is not None and e.file.down is not None else None,
    }


def status_doc(plan: Plan) -> dict[str, Any]:
    return {"migrations": [entry_doc(e) for e in plan.entries]}


def verify_doc(result: VerifyResult) -> dict[str, Any]:
    return {
        "clean": result.clean,
        "strict": result.strict,
        "drift": [entry_doc(e) for e in result.drift],
        "harmless": [entry_doc(e) for e in result.harmless],
        "pending": [entry_doc(e) for e in result.pending],
        "invalid_indexes": [{"index": i.name, "table": i.table, "fix": i.fix} for i in result.invalid_indexes],
        "schema_drift": [difference_doc(d) for d in result.schema_drift],
        "schema_recorded": result.schema_recorded,
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
        "skipped": [{"version": s.version, "name": s.name} for s in result.skipped],
        "schema_file": str(result.schema_file) if result.schema_file else None,
        "up_to_date": not result.applied,
    }


def error_doc(error: RunnerError) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ok": False,
        "error": {"kind": error.kind, "exit_code": error.exit_code, "message": str(error)},
    }
    if isinstance(error, MigrationFailed):
        doc["error"].update(error.details)
    if isinstance(error, MigrationFailed | LockLost):
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


def _short(checksum: str | None) -> str:
    return short(checksum) if checksum else "none"


def change_line(change: Change) -> str:
    if change.action == "accept":
        return f"Accepted {change.name}: checksum {_short(change.old_checksum)} -> {_short(change.new_checksum)}"
    if change.action == "unmark":
        return f"Unmarked {change.name}: its record is gone, and the next migrate runs it"
    return f"Marked {change.name} as applied ({change.action}; the file was not run)"


def schema_accepted_lines(accepted: list[Difference]) -> list[str]:
    if not accepted:
        return ["Recorded the schema as it is; it had no changes made outside runner"]
    return [f"Accepted {len(accepted)} change(s) made outside runner into the recorded schema:",
            *(f"  {d.describe()}" for d in accepted)]  # fmt: skip


def change_doc(change: Change) -> dict[str, Any]:
    return {"action": change.action, "version": change.version, "name": change.name,
            "old_checksum": change.old_checksum, "new_checksum": change.new_checksum}  # fmt: skip


def plan_lines(result: DryRun) -> list[str]:
    if not result.steps:
        return ["Nothing to run: all migrations are up to date"]
    lines = []
    for step in result.steps:
        if step.failure is not None:
            lines.append(f"{step.name}: would fail at {step.failure}")
            continue
        count = f"{step.statements} statement(s)"
        how = "no transaction, one statement at a time" if step.no_transaction else "one transaction"
        extras = [f"{k.replace('_', '-')}={v}" for k, v in step.settings.items()]
        extras += ["BEGIN/COMMIT wrapper ignored"] if step.wrapper_removed else []
        lines.append(f"{step.name}: {count}, {how}" + "".join(f", {e}" for e in extras))
    failing = sum(step.failure is not None for step in result.steps)
    would_fail = f", {failing} of which would fail" if failing else ""
    lines.append(f"{len(result.steps)} migration(s) would run{would_fail}; nothing was changed")
    return lines


def plan_failure(result: DryRun) -> str | None:
    """The error line of a plan with files the parser rejects: migrate would stop at the first."""
    failing = [step for step in result.steps if step.failure is not None]
    if not failing:
        return None
    listed = "; ".join(f"{step.name} at {step.failure}" for step in failing)
    return f"{len(failing)} migration(s) would fail: {listed}. Fix the SQL; nothing was changed"


def plan_doc(result: DryRun) -> dict[str, Any]:
    steps = [{"version": s.version, "name": s.name, "transaction": not s.no_transaction, "statements": s.statements,
              "wrapper_removed": s.wrapper_removed, "settings": s.settings, "failure": s.failure}
             for s in result.steps]  # fmt: skip
    return {"would_run": steps, "warnings": [entry_doc(e) for e in result.warnings],
            "schema_warnings": [difference_doc(d) for d in result.schema_warnings]}  # fmt: skip


def event_doc(event: Event) -> dict[str, Any]:
    return {"id": event.id, "at": _when(event.recorded_at), "action": event.action, "version": event.version,
            "name": event.name, "old_checksum": event.old_checksum, "new_checksum": event.new_checksum,
            "outcome": event.outcome, "error": event.error, "by": event.recorded_by,
            "variables": event.variables}  # fmt: skip


def print_history(events: list[Event], console: Console | None = None) -> None:
    """The version is left out: the name starts with it, and the room goes to the name and the detail."""
    from rich.text import Text

    console = console or _console()
    if not events:
        console.print("No history yet")
        return
    rows = [
        [Text(f"{e.recorded_at:%Y-%m-%d %H:%M:%S}"), Text(e.action), Text(e.name),
         Text(e.outcome, style="green" if e.outcome == "ok" else "red"), Text(e.recorded_by)]
        for e in events
    ]  # fmt: skip
    details = [e.error or (f"{_short(e.old_checksum)} -> {_short(e.new_checksum)}" if e.old_checksum else "")
               or ", ".join(f"{name}={value}" for name, value in (e.variables or {}).items())
               for e in events]  # fmt: skip
    _print_table(console, ["At", "Action", "Name", "Outcome", "By"], rows, details, name=2, time=0)


def lint_lines(findings: list[Any]) -> list[str]:
    """Findings grouped by file (they come ordered by file, then line), each with squawk's help below it."""
    lines: list[str] = []
    current = None
    for f in findings:
        if f.file != current:
            lines.append(f.file)
            current = f.file
        column = f":{f.column}" if f.column else ""
        lines.append(f"  line {f.line}{column}: {f.level} {f.rule}: {f.message}")
        if f.help:
            lines.append(f"      help: {f.help}")
    errors = sum(f.level == "error" for f in findings)
    lines.append(f"{len(findings)} finding(s): {errors} error(s), {len(findings) - errors} warning(s)"
                 if findings else "No findings")  # fmt: skip
    return lines


def lint_doc(findings: list[Any]) -> dict[str, Any]:
    errors = sum(f.level == "error" for f in findings)
    return {"findings": [vars(f) for f in findings], "errors": errors, "warnings": len(findings) - errors}


def difference_doc(d: Difference) -> dict[str, Any]:
    return {"kind": d.kind, "name": d.name, "change": d.change, "text": d.describe()}


def diff_lines(found: list[Difference]) -> list[str]:
    """Between two live databases: "added" means only in the other, "dropped" missing from it."""
    words = {ADDED: "only in --against", DROPPED: "missing from --against"}
    return [f"{d.kind} {d.name}: {words.get(d.change, d.change)}" for d in found]
