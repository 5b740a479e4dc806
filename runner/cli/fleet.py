"""migrate, status, verify, plan and rollback over a fleet: the targets chosen, a line per target, one summary.

The commands in migrate.py hand over here when the Fleet options (or --dsn twice) choose targets.
On a terminal a bar counts the targets and each finished one gets a line above it; in a log, just the
lines. The summary counts the targets by how they ended and names those that need a look; --json
gives one entry per target with the document the command gives for one database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from runner import db, fleet, report, results, targets, tracking
from runner.cli.options import Fleet, Run
from runner.errors import BadInput, Refused
from runner.fleet import FleetResult, Outcome
from runner.plan import State
from runner.progress import MigrateProgress
from runner.targets import Target


@contextmanager
def chosen(run: Run, options: Fleet, dsns: list[str] | None, create_schema: bool = False) -> Iterator[list[Target]]:
    """The targets the options choose, in a block that keeps the default database (an embedded server) up."""
    s = run.settings
    several = dsns if dsns and len(dsns) > 1 else []
    found = targets.select(s, options.target or (), several, options.targets_file)
    with ExitStack() as stack:
        if not found:  # --schemas or --shard alone: the database runner would use
            url = stack.enter_context(db.target(s.database_url, run.out.note))
            # Named by its database alone: every target is in it, and its server would only make names long.
            found = [Target(str(db.parse(url).get("dbname") or "default database"), url)]
        if options.schemas is not None or options.schemas_query is not None:
            found = _tenants(found, options, create_schema)
        if options.shard is not None:
            k, n = targets.parse_shard(options.shard)
            found = targets.shard(found, k, n)
        yield found


def _tenants(found: list[Target], options: Fleet, create_schema: bool) -> list[Target]:
    if options.schemas is not None and options.schemas_query is not None:
        raise BadInput("--schemas and --schemas-query both choose the tenant schemas; give one of them")
    if create_schema:  # a tenant not made yet: named, not matched
        name = options.schemas or ""
        if not tracking.PLAIN_IDENTIFIER.fullmatch(name):
            raise BadInput(f"--create-schema makes one tenant: give its name as --schemas NAME, not {name!r}")
        return [t for target in found for t in targets.expand(target, [name.lower()])]
    tenants = targets.with_schemas(found, pattern=options.schemas, query=options.schemas_query)
    if not tenants:
        given = f"--schemas {options.schemas!r}" if options.schemas is not None else "--schemas-query"
        raise BadInput(f"{given} chose no schema in {fleet.named(found)}; check it (psql's \\dn PATTERN lists "
                       "the same schemas), or provision a tenant with --schemas NAME --create-schema")  # fmt: skip
    return tenants


# ---------------------------------------------------------------- lines


def _ended(outcome: Outcome[Any], done: Callable[[Any], str]) -> str:
    if outcome.error is not None:
        return f"{outcome.target.name}: error (exit {outcome.code}): {report.error_lines(outcome.error)[0]}"
    return f"{outcome.target.name}: {done(outcome.result)}"


def _applied(result: results.MigrateResult) -> str:
    if not result.applied:
        return "up to date"
    warned = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    return f"applied {len(result.applied)} migration(s){warned}"


def _summary(result: FleetResult[Any], kinds: dict[str, list[Outcome[Any]]], seconds: float | None = None) -> list[str]:
    """``N targets: 3 up to date, 1 behind (name), ...``, then why targets were left, if they were."""

    def count(kind: str, found: list[Outcome[Any]]) -> str:
        return f"{len(found)} {kind}" + ("" if kind in _QUIET_KINDS else f" ({fleet.named(o.target for o in found)})")

    counted = [count(kind, found) for kind, found in kinds.items() if found]
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    lines = [f"{len(result.outcomes)} target(s){took}: " + ", ".join(counted)]
    if result.stopped:
        lines.append(f"{len(result.not_started)} target(s) not started: {result.stopped}; run the command again to "
                     "go on from where each target stands")  # fmt: skip
    return lines


_QUIET_KINDS = (
    "up to date",
    "migrated",
    "clean",
    "nothing to do",
    "rolled back",
    "would roll back",
    "nothing to roll back",
)


def _doc(result: FleetResult[Any], doc: Callable[[Any], dict[str, Any]], kinds: dict[str, list[Outcome[Any]]]) -> dict:
    entries = []
    for o in result.outcomes:
        entry: dict[str, Any] = {"name": o.target.name, "schema": o.target.schema, "started": o.started,
                                 "exit_code": o.code, "seconds": round(o.seconds, 3)}  # fmt: skip
        if o.error is not None:
            entry.update(report.error_doc(o.error))
        elif o.result is not None:
            entry.update(doc(o.result))
        entries.append(entry)
    counts = {kind: len(found) for kind, found in kinds.items()}
    return {"ok": result.code == 0, "exit_code": result.code, "jobs": result.jobs, "counts": counts,
            "stopped": result.stopped, "targets": entries}  # fmt: skip


def _kinds(result: FleetResult[Any], judge: Callable[[Any], str], order: tuple[str, ...]) -> dict[str, list[Outcome]]:
    kinds: dict[str, list[Outcome[Any]]] = {kind: [] for kind in order}
    for o in result.outcomes:
        kind = "not started" if not o.started else "failed" if o.error is not None else judge(o.result)
        kinds.setdefault(kind, []).append(o)
    return kinds


# ---------------------------------------------------------------- the commands


def migrate(run: Run, options: Fleet, dsns: list[str] | None, *, canary: int, keep_going: bool,
            create_schema: bool, **given: Any) -> tuple[int, dict[str, Any]]:  # fmt: skip
    out, started = run.out, time.monotonic()
    with chosen(run, options, dsns, create_schema) as found, MigrateProgress.for_output(out) as progress:

        def on_event(event: fleet.FleetEvent) -> None:
            if isinstance(event, fleet.TargetDone):
                progress.line(_ended(event.outcome, _applied))
                progress.advance()
            elif isinstance(event, fleet.Stopping):
                out.note(f"no new target starts: {event.reason}" + (
                    f"; waiting for {event.running} running" if event.running else ""))  # fmt: skip
            elif isinstance(event.event, results.Note):
                out.detail(f"{event.target.name}: {event.event.text}")
            elif isinstance(event.event, results.DriftWarning):
                out.warn(f"{event.target.name}: {report.warning_line(event.event.entry)}")
            elif isinstance(event.event, results.SchemaWarning):
                out.warn(f"{event.target.name}: changed outside runner: {event.event.difference.describe()}")

        progress.start(len(found), f"Migrating {len(found)} target(s)")
        result = fleet.migrate(
            found,
            run.target[1],
            run.settings.table,
            jobs=options.jobs,
            canary=canary,
            keep_going=keep_going,
            create_schema=create_schema,
            on_event=on_event,
            **given,
        )
    kinds = _kinds(result, lambda r: "migrated" if r.applied else "up to date", ("migrated", "up to date"))
    for line in _summary(result, kinds, time.monotonic() - started):
        progress.line(line)
    return result.code, _doc(result, report.migrate_doc, kinds)


def _behind(plan: Any) -> str:
    drift = plan.having(State.EDITED, State.MISSING, State.OUT_OF_ORDER, State.DELETED, State.INCOMPLETE)
    return "drifted" if drift else "behind" if plan.having(State.PENDING) else "up to date"


def status(run: Run, options: Fleet, dsns: list[str] | None, each: bool) -> tuple[int, dict[str, Any]]:
    with chosen(run, options, dsns) as found:
        result = fleet.status(found, run.target[1], run.settings.table, jobs=options.jobs)
    kinds = _kinds(result, _behind, ("up to date", "behind", "drifted"))
    lines = [_ended(o, report.counts) for o in result.outcomes if each or o.error is not None]
    run.lines(lines + _summary(result, kinds))
    return result.code, _doc(result, report.status_doc, kinds)


def verify(run: Run, options: Fleet, dsns: list[str] | None, strict: bool, each: bool) -> tuple[int, dict[str, Any]]:
    with chosen(run, options, dsns) as found:
        result = fleet.verify(found, run.target[1], run.settings.table, strict=strict, jobs=options.jobs)
    kinds = _kinds(result, lambda r: "clean" if r.clean else "drifted", ("clean", "drifted"))
    lines = []
    for o in result.outcomes:
        if o.error is not None or (o.result is not None and (each or not o.result.clean)):
            lines += [_ended(o, lambda r: "clean" if r.clean else "drift")]
            lines += [f"  {line}" for line in (report.verify_lines(o.result) if o.result else [])]
    run.lines(lines + _summary(result, kinds))
    return result.code, _doc(result, report.verify_doc, kinds)


def plan(run: Run, options: Fleet, dsns: list[str] | None, each: bool, **given: Any) -> tuple[int, dict[str, Any]]:
    with chosen(run, options, dsns) as found:
        result = fleet.dry_run(found, run.target[1], run.settings.table, jobs=options.jobs, **given)

    def judged(dry: results.DryRun) -> str:
        if report.plan_failure(dry):
            return "would fail"
        if dry.warnings or dry.schema_warnings:
            return "drifted"
        return "would migrate" if dry.steps else "nothing to do"

    kinds = _kinds(result, judged, ("would migrate", "nothing to do", "drifted", "would fail"))
    lines = []
    for o in result.outcomes:
        if o.error is not None or (o.result is not None and (each or judged(o.result) != "nothing to do")):
            lines += [_ended(o, lambda r: judged(r) + (f" ({len(r.steps)} file(s))" if r.steps else ""))]
            lines += [f"  {line}" for line in (report.plan_lines(o.result) if each and o.result else [])]
    run.lines(lines + _summary(result, kinds))
    code = max(result.code, 3 if kinds["would fail"] else 0)  # 3: migrate would fail there, as it exits then
    return code, _doc(result, report.plan_doc, kinds)


def rollback(run: Run, options: Fleet, dsns: list[str] | None, *, dry_run: bool,
             ask: Callable[[list[str]], None], **given: Any) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """A preview on every target first, asked once; then each target rolls back what its preview showed (what its
    lock finds there is checked against it), or nothing."""

    def would(r: results.RollbackResult) -> str:
        return f"would roll back {', '.join(r.steps)}" if r.steps else "nothing to roll back"

    with chosen(run, options, dsns) as found:
        preview = fleet.rollback(found, run.target[1], run.settings.table, jobs=options.jobs, keep_going=True,
                                 dry_run=True, **given)  # fmt: skip
        shown = {o.target.name: o.result.steps for o in preview.outcomes if o.result is not None}
        if dry_run or preview.code or not any(shown.values()):
            kinds = _kinds(preview, lambda r: "would roll back" if r.steps else "nothing to roll back",
                           ("would roll back", "nothing to roll back"))  # fmt: skip
            run.lines([_ended(o, would) for o in preview.outcomes if o.started] + _summary(preview, kinds))
            return preview.code, _doc(preview, lambda r: {"would_roll_back": r.steps}, kinds)
        asked = [f"{name} ({', '.join(steps)})" for name, steps in shown.items() if steps]
        ask(asked[:5] + ([f"{len(asked) - 5} more target(s)"] if len(asked) > 5 else []))

        def confirm(target: Target, steps: list[str]) -> None:
            if steps != shown.get(target.name):
                before = ", ".join(shown.get(target.name) or ["nothing"])
                raise Refused(f"what there is to roll back changed since the preview ({', '.join(steps)}, not "
                              f"{before}); nothing was rolled back here")  # fmt: skip

        result = fleet.rollback(found, run.target[1], run.settings.table, jobs=options.jobs, confirm=confirm,
                                **given)  # fmt: skip
    kinds = _kinds(result, lambda r: "rolled back" if r.rolled_back else "nothing to roll back",
                   ("rolled back", "nothing to roll back"))  # fmt: skip
    lines = [_ended(o, lambda r: f"rolled back {', '.join(x.name for x in r.rolled_back)}" if r.rolled_back
                    else "nothing to roll back") for o in result.outcomes if o.started]  # fmt: skip
    run.lines(lines + _summary(result, kinds))
    return result.code, _doc(result, lambda r: {"rolled_back": [x.name for x in r.rolled_back]}, kinds)
