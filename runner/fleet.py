"""Fleets: one folder of SQL, many targets (databases, tenant schemas), each migrated on its own.

Nothing here reaches inside the single-target core: a target is one call of a runner.api verb, on a
bounded pool of threads, with its own connections, lock and tracking tables. Exactly-once therefore holds
per target as it does for one database, and a re-run after a failure, an interrupt or a kill picks up
where each target's own tracking says it stands: there is no fleet state to corrupt.

Policy: canaries first, the rest only if every canary succeeded; on a failure no new target starts
(running ones finish) unless ``keep_going``; Ctrl-C likewise stops new targets, and a second one
stops the running ones (their current files roll back, as a killed runner's do).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import sql

from runner import api, db, results, tracking
from runner.errors import BadInput, ConnectionFailed, RunnerError, Terminated
from runner.plan import Plan
from runner.targets import Target

R = TypeVar("R")
DEFAULT_JOBS = 4
# Connections a migrating target holds: it works on one and holds its lock on another, and its thread keeps
# one to read from (a verb that only reads holds that one alone).
_MIGRATE_CONNECTIONS = 3


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What became of one target: its verb's result, or the error that stopped it, or not started at all."""

    target: Target
    result: R | None = None
    error: RunnerError | None = None
    started: bool = True
    code: int = 0  # the exit code this target alone would give
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class FleetResult(Generic[R]):
    outcomes: list[Outcome[R]]  # in the targets' order
    stopped: str | None = None  # why targets were left unstarted, if they were
    jobs: int = 1
    interrupted: int | None = None  # 130 (Ctrl-C) or 143 (SIGTERM) stopped new targets

    @property
    def code(self) -> int:
        """The worst of the targets' exit codes (the highest); an interrupt's, when one stopped the fleet."""
        return self.interrupted or max((o.code for o in self.outcomes), default=0)

    @property
    def failed(self) -> list[Outcome[R]]:
        return [o for o in self.outcomes if o.failed]

    @property
    def not_started(self) -> list[Outcome[R]]:
        return [o for o in self.outcomes if not o.started]


@dataclass(frozen=True)
class TargetEvent:
    """An event of one target's run (a note, a warning, a file applied), tagged with its target."""

    target: Target
    event: results.Event


@dataclass(frozen=True)
class TargetDone:
    outcome: Outcome[Any]
    done: int  # targets finished so far, this one included
    total: int


@dataclass(frozen=True)
class Stopping:
    """No new target starts: ``reason`` says why; ``running`` are still finishing."""

    reason: str
    running: int


FleetEvent = TargetEvent | TargetDone | Stopping
OnFleetEvent = Callable[[FleetEvent], None]
Verb = Callable[[Target, str, results.OnEvent], R]  # (target, its resolved DSN, its events) -> result


def table_of(target: Target, table: api.Table) -> api.Table:
    """A tenant's tracking tables are in its schema, under the name the project uses."""
    return tracking.TrackingTable.of_tenant(target.schema, table) if target.schema else table


def _outcome(target: Target, work: Callable[[], R], judge: Callable[[R], int]) -> Outcome[R]:
    started = time.monotonic()
    try:
        result = work()
    except (RunnerError, psycopg.Error) as exc:
        # The api words what it expects; any other psycopg error is the server's answer about this target.
        error = exc if isinstance(exc, RunnerError) else ConnectionFailed(db.error_text(exc, target.dsn))
        return Outcome(target, error=error, code=error.exit_code, seconds=time.monotonic() - started)
    return Outcome(target, result, code=judge(result), seconds=time.monotonic() - started)


@contextmanager
def _resolved(targets: Sequence[Target], on_note: Callable[[str], None] | None) -> Iterator[dict[str | None, str]]:
    """Each target's DSN as libpq takes it: a target with none gets the default database, whose embedded
    server (when that is what it is) starts once for the whole fleet."""
    with ExitStack() as stack:
        urls: dict[str | None, str] = {}
        for dsn in dict.fromkeys(t.dsn for t in targets):
            urls[dsn] = stack.enter_context(db.target(dsn, on_note)) if dsn is None else dsn
        yield urls


def _room(urls: Sequence[str]) -> int | None:
    """Connections the servers can still take (the least of them); None when it cannot be told."""
    servers: dict[tuple[object, object], str] = {}
    for url in urls:
        try:
            parts = db.parse(url)
        except BadInput:
            continue
        servers.setdefault((parts.get("host"), parts.get("port")), url)
    room = None
    for url in servers.values():
        try:
            with db.connect(url) as conn:
                row = conn.execute(
                    "SELECT current_setting('max_connections')::int"
                    " - current_setting('superuser_reserved_connections')::int"
                    " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
                ).fetchone()
        except RunnerError:
            continue  # that target reports it itself
        if row is not None:
            room = row[0] if room is None else min(room, row[0])
    return room


def _jobs(wanted: int | None, targets: int, per_target: int, urls: Sequence[str]) -> int:
    jobs = max(1, min(wanted or DEFAULT_JOBS, targets))
    room = _room(urls) if jobs > 1 else None
    return jobs if room is None else max(1, min(jobs, room // per_target))


class _Workers(Generic[R]):
    """``count`` daemon threads that run ``one(index)`` for the indexes they are given. Daemons, so that a
    second Ctrl-C ends the process at once (the server rolls back what they were doing), and long-lived, so
    that a thread keeps its connections from one target to the next."""

    def __init__(self, count: int, one: Callable[[int], Outcome[R]]) -> None:
        self.tasks: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[tuple[int, Outcome[R]]] = queue.SimpleQueue()
        self.count, self.running = count, 0
        for n in range(count):
            threading.Thread(target=self._work, args=(one,), name=f"runner-fleet-{n}", daemon=True).start()

    def _work(self, one: Callable[[int], Outcome[R]]) -> None:
        while (index := self.tasks.get()) is not None:
            self.done.put((index, one(index)))

    def submit(self, index: int) -> None:
        self.running += 1
        self.tasks.put(index)

    def finished(self) -> tuple[int, Outcome[R]]:
        """The next target to finish; a signal's KeyboardInterrupt reaches the wait (it polls)."""
        while True:
            try:
                found = self.done.get(timeout=0.2)
            except queue.Empty:
                continue
            self.running -= 1
            return found

    def close(self) -> None:
        for _ in range(self.count):
            self.tasks.put(None)


def run(
    targets: Sequence[Target],
    verb: Verb[R],
    *,
    jobs: int | None = None,
    canary: int = 0,
    keep_going: bool = False,
    judge: Callable[[R], int] = lambda result: 0,
    connections: int = 1,
    on_event: OnFleetEvent | None = None,
    on_note: Callable[[str], None] | None = None,
) -> FleetResult[R]:
    """Run ``verb`` for every target, ``jobs`` at a time (fewer if the server has no room for them).

    The first ``canary`` targets run first; the rest start only if all of them succeeded. A failure
    stops new targets unless ``keep_going``. A KeyboardInterrupt (Ctrl-C, or the CLI's SIGTERM) while
    targets run stops new ones and waits for those running; a second one is raised.
    """
    emit = on_event or (lambda event: None)
    if canary < 0 or canary > len(targets):
        raise BadInput(f"--canary {canary}: expected 0 to {len(targets)}, the number of targets")
    results: dict[int, Outcome[R]] = {}
    stop = _Stop()
    with _resolved(targets, on_note) as urls:
        count = _jobs(jobs, len(targets), connections, list(urls.values()))

        def one(index: int) -> Outcome[R]:
            target = targets[index]
            return _outcome(target, lambda: verb(target, urls[target.dsn], lambda e: emit(TargetEvent(target, e))),
                            judge)  # fmt: skip

        workers = _Workers(count, one)
        try:
            for batch in (range(canary), range(canary, len(targets))):
                canaries = bool(canary) and batch.start == 0
                if stop.reason is None:
                    _phase(workers, batch, results, keep_going and not canaries, len(targets), emit, stop, canaries)
                if stop.reason is None and canaries and any(results[i].failed for i in batch):
                    stop.reason = (
                        f"a canary target failed ({named(results[i].target for i in batch if results[i].failed)})"
                    )
                    emit(Stopping(stop.reason, 0))
        finally:
            workers.close()
    outcomes = [results.get(i) or Outcome(t, started=False) for i, t in enumerate(targets)]
    left = any(not o.started for o in outcomes)
    return FleetResult(outcomes, stop.reason if left else None, count, stop.interrupted)


class _Stop:
    """Why no new target starts (None: they do), and the exit code of the signal that said so, if one did."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.interrupted: int | None = None


def named(targets: Iterable[Target], shown: int = 5) -> str:
    """The targets' names for a line of text: the first few, and how many more."""
    names = [t.name for t in targets]
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _phase(
    workers: _Workers[R], batch: range, results: dict[int, Outcome[R]], keep_going: bool, total: int,
    emit: OnFleetEvent, stop: _Stop, canaries: bool = False,
) -> None:  # fmt: skip
    """Run one batch of targets, ``workers.count`` at a time, until done or stopped."""
    waiting = iter(batch)
    while True:
        while stop.reason is None and workers.running < workers.count and (index := next(waiting, None)) is not None:
            workers.submit(index)
        if not workers.running:
            return
        try:
            index, outcome = workers.finished()
        except KeyboardInterrupt as signal:
            if stop.interrupted is not None:
                raise
            stop.interrupted = 143 if isinstance(signal, Terminated) else 130
            stop.reason = f"interrupted ({'SIGTERM' if stop.interrupted == 143 else 'Ctrl-C'})"
            emit(Stopping(stop.reason, workers.running))
            continue
        results[index] = outcome
        emit(TargetDone(outcome, len(results), total))
        if outcome.failed and not keep_going and stop.reason is None:
            stop.reason = (
                f"a canary target failed ({outcome.target.name})" if canaries else f"{outcome.target.name} failed"
            )
            emit(Stopping(stop.reason, workers.running))


# ---------------------------------------------------------------- the verbs over a fleet


class _Connection(threading.local):
    """A thread's connection for the verbs that only read, kept while its targets are in one database: a
    thousand tenant schemas cost a connection per thread, not a thousand, and a fleet of databases never
    holds more than one per thread."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.conn: psycopg.Connection | None = None


@contextmanager
def _reader() -> Iterator[Callable[[str], psycopg.Connection]]:
    local, made, guard = _Connection(), [], threading.Lock()

    def connection(url: str) -> psycopg.Connection:
        if local.conn is None or local.url != url or local.conn.closed or local.conn.broken:
            if local.conn is not None:
                local.conn.close()
            local.conn, local.url = db.connect(url), url
            with guard:
                made.append(local.conn)
        return local.conn

    try:
        yield connection
    finally:
        for conn in made:
            conn.close()


def _tenant(conn: psycopg.Connection, target: Target, create: bool) -> None:
    """A tenant's schema must be there: one made by mistake would take a mistyped tenant's files."""
    name = sql.Identifier(target.schema or "")
    if create:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
    elif conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (name.as_string(conn),)).fetchone() != (True,):
        raise BadInput(f"{target.name}: schema {target.schema} does not exist; check the name, or pass "
                       "--create-schema to provision the tenant")  # fmt: skip


def values_of(target: Target, variables: Mapping[str, str] | None) -> dict[str, str]:
    """The variables' values for one target: ``target`` (its name) and, for a tenant, ``schema``, over those given."""
    own = {"target": target.name} | ({"schema": target.schema} if target.schema else {})
    return {**(variables or {}), **own}


def migrate(
    targets: Sequence[Target],
    directory: str | Path = api.DEFAULT_DIR,
    table: api.Table = None,
    *,
    jobs: int | None = None,
    canary: int = 0,
    keep_going: bool = False,
    create_schema: bool = False,
    on_event: OnFleetEvent | None = None,
    **options: Any,
) -> FleetResult[results.MigrateResult]:
    """``runner.api.migrate`` on every target; ``options`` are its keyword arguments (strict, to, retries, ...).

    A tenant's schema must exist, unless ``create_schema`` (provisioning a new tenant) creates it first.
    """
    variables = options.pop("variables", None)
    with _reader() as connection:

        def verb(target: Target, url: str, events: results.OnEvent) -> results.MigrateResult:
            if target.schema:
                _tenant(connection(url), target, create_schema)
            values = values_of(target, variables)
            return api.migrate(url, directory, table_of(target, table), on_event=events, variables=values, **options)

        return run(targets, verb, jobs=jobs, canary=canary, keep_going=keep_going,
                   connections=_MIGRATE_CONNECTIONS, on_event=on_event)  # fmt: skip


def rollback(
    targets: Sequence[Target],
    directory: str | Path = api.DEFAULT_DIR,
    table: api.Table = None,
    *,
    jobs: int | None = None,
    keep_going: bool = False,
    confirm: Callable[[Target, list[str]], None] | None = None,
    on_event: OnFleetEvent | None = None,
    **options: Any,
) -> FleetResult[results.RollbackResult]:
    """``runner.api.rollback`` on every target; ``options`` are its keyword arguments (to, force, dry_run, ...).
    ``confirm`` is asked per target, with the steps found there under its lock. A tenant's schema must exist."""
    variables = options.pop("variables", None)
    with _reader() as connection:

        def verb(target: Target, url: str, events: results.OnEvent) -> results.RollbackResult:
            if target.schema:
                _tenant(connection(url), target, False)
            asked = None if confirm is None else (lambda steps: confirm(target, steps))
            return api.rollback(url, directory, table_of(target, table), on_event=events, confirm=asked,
                                variables=values_of(target, variables), **options)  # fmt: skip

        return run(targets, verb, jobs=jobs, keep_going=keep_going, connections=_MIGRATE_CONNECTIONS,
                   on_event=on_event)  # fmt: skip


def _read(
    targets: Sequence[Target], call: Callable[[psycopg.Connection, Target, api.Table, results.OnEvent], R],
    table: api.Table,
    jobs: int | None, judge: Callable[[R], int], on_event: OnFleetEvent | None,
) -> FleetResult[R]:  # fmt: skip
    with _reader() as connection:
        return run(targets, lambda t, url, events: call(connection(url), t, table_of(t, table), events), jobs=jobs,
                   keep_going=True, judge=judge, on_event=on_event)  # fmt: skip


def status(
    targets: Sequence[Target], directory: str | Path = api.DEFAULT_DIR, table: api.Table = None, *,
    jobs: int | None = None, on_event: OnFleetEvent | None = None,
) -> FleetResult[Plan]:  # fmt: skip
    """``runner.api.status`` of every target."""
    return _read(targets, lambda conn, _, t, events: api.status(conn, directory, t, on_event=events), table, jobs,
                 lambda plan: 0, on_event)  # fmt: skip


def verify(
    targets: Sequence[Target], directory: str | Path = api.DEFAULT_DIR, table: api.Table = None, *,
    strict: bool = False, jobs: int | None = None, on_event: OnFleetEvent | None = None,
) -> FleetResult[results.VerifyResult]:  # fmt: skip
    """``runner.api.verify`` of every target; a target with drift counts 1, as verify exits."""
    return _read(targets, lambda conn, _, t, events: api.verify(conn, directory, t, strict=strict, on_event=events),
                 table, jobs, lambda result: 0 if result.clean else 1, on_event)  # fmt: skip


def dry_run(
    targets: Sequence[Target], directory: str | Path = api.DEFAULT_DIR, table: api.Table = None, *,
    jobs: int | None = None, on_event: OnFleetEvent | None = None, **options: Any,
) -> FleetResult[results.DryRun]:  # fmt: skip
    """``runner.api.dry_run`` of every target: what migrate would run on each."""
    variables = options.pop("variables", None)

    def call(conn: psycopg.Connection, target: Target, its: api.Table, events: results.OnEvent) -> results.DryRun:
        return api.dry_run(conn, directory, its, variables=values_of(target, variables), on_event=events, **options)

    return _read(targets, call, table, jobs, lambda result: 0, on_event)
