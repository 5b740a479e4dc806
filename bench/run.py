"""Benchmark runner against the psql floor and its peers, side by side, on one server.

    /work/main/.venv/bin/python bench/run.py [--quick] [--only runner,psql,...] [--workloads W1,W4] [--reps N]

Every measured run is a whole process on a fresh database (CREATE DATABASE bench_<pid>_<tool>_<n>,
dropped WITH (FORCE) afterwards), and is followed by a check that the database holds the
tables and rows the workload creates: a tool that exits 0 with a wrong result fails the run.
See bench/README.md for what each workload measures.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
import tools as T  # noqa: E402
import workloads as W  # noqa: E402

WORK = T.BENCH / ".work"
PREFIX = f"bench_{os.getpid()}_"  # a run's databases; another run going on at the same time keeps its own
_serial = itertools.count(1)


@dataclass
class Row:
    workload: str  # "W1", "W4@1000", ...
    tool: str
    times: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    status: str = "ok"  # ok | FAILED | unavailable | skipped
    note: str = ""
    label: str = ""  # what the table calls the tool, when it is not its name (W9 and W10: how it runs)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def peak_mb(self) -> float | None:
        return max(self.rss_kb) / 1024 if self.rss_kb else None


@dataclass
class Sizes:
    w1: int
    w2: int
    w3_mb: int
    w7_mb: int
    noop: list[int]
    verify: list[int]
    api_files: int
    reps: int
    noop_reps: int
    api_calls: int
    timeout_s: float
    # Peers too slow to set up the biggest no-op folders are capped here, and the cap is reported.
    noop_cap: dict[str, int] = field(default_factory=dict)
    last_one: list[int] = field(default_factory=list)  # W8: files applied before the one more
    last_one_cap: dict[str, int] = field(default_factory=dict)
    fleet_dbs: int = 200  # W9: fresh databases each run
    fleet_files: int = 15  # W9 and W10: files per target
    tenants: int = 1000  # W10: tenant schemas in one database
    tenant_loop: int = 100  # W10: tenants the serial loop of single-tenant runs goes over (its time is scaled up)


FULL = Sizes(w1=1000, w2=200, w3_mb=50, w7_mb=250, noop=[100, 1000, 10000], verify=[1000, 10000], api_files=1000,
             reps=3, noop_reps=5, api_calls=200, timeout_s=600, noop_cap={}, last_one=[1000, 10000],
             last_one_cap={"sqitch": 1000}, fleet_dbs=200, tenants=1000, tenant_loop=100)  # fmt: skip
QUICK = Sizes(w1=100, w2=20, w3_mb=5, w7_mb=25, noop=[100, 1000], verify=[1000], api_files=1000, reps=3, noop_reps=3,
              api_calls=50, timeout_s=120, noop_cap={"sqitch": 100}, last_one=[100, 1000],
              last_one_cap={"sqitch": 100}, fleet_dbs=20, tenants=100, tenant_loop=20)  # fmt: skip


# ---------------------------------------------------------------- databases and processes


def admin() -> psycopg.Connection:
    return psycopg.connect(T.url("postgres"), autocommit=True)


def fresh_db(tool: str, template: str = "template1") -> str:
    """An empty database, or a copy of ``template``: its files are copied, no SQL is run again."""
    name = f"{PREFIX}{tool}_{next(_serial)}"
    with admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return name


def drop_db(name: str) -> None:
    with admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def drop_leftovers() -> None:
    """Databases an interrupted earlier run left behind, not those of a run still going on."""
    with admin() as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'")]
        for name in names:
            pid = name.split("_")[1]
            if not pid.isdigit():  # named before runs had their pid in the names: dropped unless in use
                with contextlib.suppress(psycopg.errors.ObjectInUse):
                    conn.execute(f"DROP DATABASE IF EXISTS {name}")
            elif not _alive(int(pid)):
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def check(workload: W.Workload, db: str) -> None:
    with psycopg.connect(T.url(db)) as conn:
        workload.check(conn)


class ToolFailed(Exception):
    pass


def timed(argv: list[str], env: dict[str, str], timeout: float, log: Path) -> tuple[float, int]:
    """Run one whole process; its wall time in seconds and its peak RSS in KiB.

    The RSS comes from /usr/bin/time -f %M: a child forked straight from this Python process
    would report at least this process's own RSS (the pre-exec copy counts in ru_maxrss).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log.with_suffix(".rss")
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **env},
                                start_new_session=True)  # fmt: skip
        killer = threading.Timer(timeout, lambda: os.killpg(proc.pid, 9))
        killer.start()
        proc.wait()
        elapsed = time.perf_counter() - start
        killer.cancel()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        why = f"timed out after {timeout:.0f}s" if proc.returncode == -9 else f"exit {proc.returncode}"
        raise ToolFailed(f"{why}: {' | '.join(tail)[:300]} (log: {log})")
    return elapsed, int(rss_file.read_text().split()[-1])


def apply_once(
    tool: T.Tool, workload: W.Workload, folder: Path, db: str, timeout: float, tag: str, argv: list[str] | None = None
) -> tuple[float, int]:
    """The tool's run on ``folder`` (or ``argv``), checked; its wall time and peak RSS."""
    argv = argv or T.command(tool.name, db, folder)
    seconds, rss = timed(argv, tool.env, timeout, WORK / "logs" / f"{tag}_{tool.name}.log")
    try:
        check(workload, db)
    except W.WrongResult as exc:
        raise ToolFailed(f"wrong result after exit 0: {exc}") from None
    return seconds, rss


def say(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------- workloads


def lay_out(workload: W.Workload, tools: list[T.Tool]) -> dict[str, Path]:
    """Each tool's folder of the workload, written once and kept in bench/.work/workloads/."""
    label = f"{workload.key}-{len(workload.migrations)}-{workload.size_bytes}"
    folders = {}
    for tool in tools:
        folder = WORK / "workloads" / label / tool.name
        if not (folder / ".complete").exists():
            if folder.exists():
                subprocess.run(["rm", "-rf", str(folder)], check=True)
            T.layout(tool.name, workload.migrations, folder)
            (folder / ".complete").write_text(workload.title)
        folders[tool.name] = folder
    return folders


def bench_apply(workload: W.Workload, tools: list[T.Tool], sizes: Sizes, rows: list[Row]) -> None:
    """W1-W3: apply the whole workload to an empty database; fresh database per repetition."""
    label = workload.key
    say(f"\n== {label}: {workload.title} ({workload.size_bytes / 1e6:.1f} MB of SQL)")
    usable = [t for t in tools if t.available]
    folders = lay_out(workload, usable)
    results = {t.name: Row(label, t.name) for t in tools}
    for t in tools:
        if not t.available:
            results[t.name].status, results[t.name].note = "unavailable", t.reason
    for rep in range(sizes.reps):
        for tool in usable:  # interleaved, so a slow patch of the machine hits every tool alike
            row = results[tool.name]
            if row.status != "ok":
                continue
            _measured(row, tool, workload, folders[tool.name], fresh_db(tool.name), sizes, f"{label}_r{rep}",
                      f"  {label} rep {rep + 1}/{sizes.reps} {tool.name:<10}", rss_too=True)  # fmt: skip
    rows.extend(results.values())


class AppliedDbs:
    """Databases with N files applied by a tool, set up once: of tiny files for W4, W5 and W6, of
    W1's files for W8 (its templates)."""

    def __init__(self, sizes: Sizes, files: Callable[[int], W.Workload] = W.applied_files) -> None:
        self.sizes = sizes
        self.files = files
        self.dbs: dict[tuple[str, int], tuple[str, Path]] = {}

    def get(self, tool: T.Tool, count: int) -> tuple[str, Path]:
        key = (tool.name, count)
        if key not in self.dbs:
            workload = self.files(count)
            folder = lay_out(workload, [tool])[tool.name]
            db = fresh_db(tool.name)
            try:
                seconds, _ = apply_once(tool, workload, folder, db, self.sizes.timeout_s * 2, f"setup{count}")
            except ToolFailed:
                drop_db(db)
                raise
            say(f"  setup: {tool.name} applied {count:,} files ({workload.key}) in {seconds:.1f}s")
            self.dbs[key] = (db, folder)
        return self.dbs[key]

    def drop_all(self) -> None:
        for db, _ in self.dbs.values():
            drop_db(db)


def bench_noop(tools: list[T.Tool], sizes: Sizes, applied: AppliedDbs, rows: list[Row]) -> None:
    """W4: the whole process when nothing is pending, after N files were applied by the same tool."""
    for count in sizes.noop:
        label = f"W4@{count}"
        say(f"\n== {label}: no-op run, {count:,} files already applied")
        for tool in tools:
            if tool.name in T.FLOORS:
                continue  # psql has no notion of "already applied"
            row = Row(label, tool.name)
            rows.append(row)
            why_not = _unmeasured(tool, count, sizes.noop_cap)
            if why_not:
                row.status, row.note = why_not
            else:
                _noop_reps(tool, count, sizes, applied, row)


def _unmeasured(tool: T.Tool, count: int, caps: dict[str, int]) -> tuple[str, str] | None:
    """Why ``tool`` is not measured with ``count`` applied files (status, note), if it is not."""
    if not tool.available:
        return "unavailable", tool.reason
    cap = caps.get(tool.name)
    if cap is not None and count > cap:
        return "skipped", f"setting up {count:,} applied files with {tool.name} is too slow (cap {cap:,})"
    return None


def _noop_reps(tool: T.Tool, count: int, sizes: Sizes, applied: AppliedDbs, row: Row) -> None:
    try:
        db, folder = applied.get(tool, count)
        for rep in range(sizes.noop_reps):
            seconds, rss = apply_once(tool, W.applied_files(count), folder, db, sizes.timeout_s, f"noop{count}_r{rep}")
            row.times.append(seconds)
            row.rss_kb.append(rss)
        say(f"  {row.workload} {tool.name:<10} median {row.median:8.3f}s  ({len(row.times)} runs)")
    except ToolFailed as exc:
        row.status, row.note = "FAILED", str(exc)
        say(f"  {row.workload} {tool.name}: FAILED {exc}")


NOOP = "runner no-op"  # W8's row of runner's run with nothing pending, on a copy of the same database


def bench_last_one(tools: list[T.Tool], sizes: Sizes, rows: list[Row]) -> None:
    """W8: the whole process applying one more W1 file where the same tool applied N of them.

    Each tool sets up its N-applied database once; every repetition runs on a copy of it
    (CREATE DATABASE ... TEMPLATE, much faster than applying 10,000 files again), dropped after.
    psql, which keeps no history, sets up with its single-process floor and applies the one file
    with `psql -1 -f`. runner's no-op (nothing pending) runs on a copy of runner's database
    beside the others: the target is relative to it.
    """
    for count in sizes.last_one:
        label = f"W8@{count}"
        workload = W.w8_last_one(count)
        new_file = T.sql_name(workload.migrations[-1])
        say(f"\n== {label}: {workload.title}; a copy of the tool's database each run")
        templates = AppliedDbs(sizes, W.w1_schema)
        runs: list[tuple[Row, T.Tool, str, Path, W.Workload]] = []  # row, tool, template, folder, expected
        try:
            for tool in tools:
                if tool.name == T.EACH:
                    continue  # the psql row is one `psql -1 -f` already
                own = [Row(label, tool.name)] + ([Row(label, NOOP)] if tool.name == "runner" else [])
                rows.extend(own)
                why_not = _unmeasured(tool, count, sizes.last_one_cap)
                if not why_not:
                    try:
                        template, applied = templates.get(tool, count)
                    except ToolFailed as exc:
                        why_not = "FAILED", f"setup: {exc}"
                if why_not:
                    for row in own:
                        row.status, row.note = why_not
                    continue
                runs.append((own[0], tool, template, lay_out(workload, [tool])[tool.name], workload))
                if len(own) > 1:
                    runs.append((own[1], tool, template, applied, W.w1_schema(count)))
            for rep in range(sizes.noop_reps):
                for row, tool, template, folder, expected in runs:  # interleaved, as in bench_apply
                    if row.status == "ok":
                        _last_one_run(row, tool, template, folder, expected, new_file, rep, sizes)
        finally:
            templates.drop_all()
        for row, *_ in runs:
            if row.status == "ok":
                say(f"  {label} {row.tool:<12} median {row.median:8.3f}s  ({len(row.times)} runs)")


def _last_one_run(row: Row, tool: T.Tool, template: str, folder: Path, expected: W.Workload, new_file: str,
                  rep: int, sizes: Sizes) -> None:  # fmt: skip
    db = fresh_db(tool.name, template)
    argv = [*T.one_tx(folder / new_file), "-d", T.url(db)] if tool.name == T.FLOOR else None
    tag = f"{row.workload.replace('@', '_')}_r{rep}" + ("_noop" if row.tool == NOOP else "")
    _measured(row, tool, expected, folder, db, sizes, tag, f"  {row.workload} rep {rep + 1}/{sizes.noop_reps} "
              f"{row.tool:<12}", argv=argv)  # fmt: skip


def _measured(row: Row, tool: T.Tool, workload: W.Workload, folder: Path, db: str, sizes: Sizes, tag: str,
              line: str, argv: list[str] | None = None, rss_too: bool = False) -> None:  # fmt: skip
    """One timed, checked run on ``db``, which is dropped after: its time goes into ``row``, or its failure."""
    try:
        seconds, rss = apply_once(tool, workload, folder, db, sizes.timeout_s, tag, argv)
        row.times.append(seconds)
        row.rss_kb.append(rss)
        say(f"{line} {seconds:8.3f}s" + (f"  rss {rss / 1024:6.1f} MB" if rss_too else ""))
    except ToolFailed as exc:
        row.status, row.note = "FAILED", str(exc)
        say(f"  {row.workload} {row.tool}: FAILED {exc}")
    finally:
        drop_db(db)


def bench_verify(runner: T.Tool, sizes: Sizes, applied: AppliedDbs, rows: list[Row]) -> None:
    """W5: `runner verify` (whole process) on a clean database with N applied files."""
    for count in sizes.verify:
        row = Row(f"W5@{count}", "runner")
        rows.append(row)
        say(f"\n== {row.workload}: runner verify, {count:,} files applied")
        try:
            db, folder = applied.get(runner, count)
            argv = [str(T.RUNNER), "verify", "--dsn", T.url(db), "--dir", str(folder)]
            for rep in range(sizes.noop_reps):
                seconds, rss = timed(argv, {}, sizes.timeout_s, WORK / "logs" / f"verify{count}_r{rep}.log")
                row.times.append(seconds)
                row.rss_kb.append(rss)
            say(f"  {row.workload} runner     median {row.median:8.3f}s")
        except ToolFailed as exc:
            row.status, row.note = "FAILED", str(exc)
            say(f"  {row.workload} runner: FAILED {exc}")


def bench_api(runner: T.Tool, sizes: Sizes, applied: AppliedDbs, rows: list[Row]) -> None:
    """W6: the library's nothing-pending path in this process, on an open connection, after a warm-up.

    runner.status(conn, dir) is the check (the files, the tracking table and the plan);
    runner.migrate(conn, dir) is what an application's start-up pays once it has its
    connection: the same, plus taking and releasing the migration lock and the schema check.
    """
    import runner as runner_api  # the project's venv runs this script

    count = sizes.api_files
    calls = {"status": runner_api.status, "migrate": runner_api.migrate}
    for name, call in calls.items():
        workload = f"W6@{count}" if name == "status" else f"W6m@{count}"
        row = Row(workload, "runner", note=f"runner.{name}(conn, dir) on an open connection, nothing pending")
        rows.append(row)
        say(f"\n== {workload}: in-process runner.{name}(), {count:,} files applied, {sizes.api_calls} calls")
        try:
            db, folder = applied.get(runner, count)
            with psycopg.connect(T.url(db)) as conn:
                for _ in range(5):
                    call(conn, folder)
                for _ in range(sizes.api_calls):
                    start = time.perf_counter()
                    result = call(conn, folder)
                    row.times.append(time.perf_counter() - start)
            plan = result if name == "status" else result.plan
            pending = [e for e in plan.entries if e.record is None]
            if len(plan.entries) != count or pending:
                raise ToolFailed(f"{name} saw {len(plan.entries)} entries, {len(pending)} pending; expected {count}, 0")
            say(f"  {workload} runner     median {statistics.median(row.times) * 1000:8.2f} ms")
        except ToolFailed as exc:
            row.status, row.note = "FAILED", str(exc)
            say(f"  {workload} runner: FAILED {exc}")


# ---------------------------------------------------------------- the schema file


def bench_load(runner: T.Tool, sizes: Sizes, rows: list[Row]) -> None:
    """W11: a new database from W1's files, by `runner load` of their schema file or by `runner migrate` from
    scratch, interleaved, on a fresh database each run; psql -f of the same file is the floor of loading.
    The schema file is written once, by `runner dump` of a database runner migrated."""
    workload = W.w1_schema(sizes.w1)
    say(f"\n== W11: a new database of {workload.title}: load its schema file, or migrate it from scratch")
    folder = lay_out(workload, [runner])["runner"]
    schema_file = WORK / f"W11-{sizes.w1}-schema.sql"
    built = fresh_db("runner")
    try:
        apply_once(runner, workload, folder, built, sizes.timeout_s, "W11_setup")
        timed([str(T.RUNNER), "dump", "--dsn", T.url(built), "--output", str(schema_file)], {}, sizes.timeout_s,
              WORK / "logs" / "W11_dump.log")  # fmt: skip
    except ToolFailed as exc:
        say(f"  W11 set-up: FAILED {exc}")
        return
    finally:
        drop_db(built)
    ways = {
        "runner": ("runner migrate (from scratch)", lambda db: T.command("runner", db, folder)),
        "runner-load": ("runner load (the schema file)",
                        lambda db: [str(T.RUNNER), "load", str(schema_file), "--dsn", T.url(db), "--dir", str(folder)]),
        T.FLOOR: ("psql -f (the schema file)", lambda db: [*T.PSQL, "-d", T.url(db), "-f", str(schema_file)]),
    }  # fmt: skip
    found = {key: Row("W11", key, label=label) for key, (label, _) in ways.items()}
    for rep in range(sizes.reps):
        for key, (label, argv) in ways.items():  # interleaved, as W1-W3
            db = fresh_db("w11")
            _measured(found[key], runner, workload, folder, db, sizes, f"W11_r{rep}_{key}",
                      f"  W11 rep {rep + 1}/{sizes.reps} {label:<32}", argv(db), rss_too=True)  # fmt: skip
    rows.extend(found.values())


# ---------------------------------------------------------------- fleets


FLEET_JOBS = 8  # W9's second runner fleet run, beside the default --jobs
FLEET_TOOLS = ("runner", "dbmate", T.FLOOR, T.EACH)


def _in_parallel(statements: list[str], connections: int = 8) -> None:
    """Run ``statements`` on ``connections`` connections at once: dropping a database waits for a checkpoint,
    and several drops at once share one."""

    def run(part: list[str]) -> None:
        with admin() as conn:
            for statement in part:
                conn.execute(statement)

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(run, [statements[i::connections] for i in range(connections)]))


def fresh_dbs(count: int) -> list[str]:
    """``count`` empty databases. FILE_COPY copies template0's files and syncs them (twice as fast here as the
    default, which writes them through shared buffers and the WAL); the checkpoint after leaves the timed run
    nothing of theirs to flush."""
    names = [f"{PREFIX}w9_{next(_serial)}" for _ in range(count)]
    _in_parallel([f"CREATE DATABASE {name} TEMPLATE template0 STRATEGY FILE_COPY" for name in names])
    with admin() as conn:
        conn.execute("CHECKPOINT")
    return names


def drop_dbs(names: list[str]) -> None:
    _in_parallel([f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" for name in names])


def bench_fleet_dbs(tools: list[T.Tool], sizes: Sizes, rows: list[Row]) -> None:
    """W9: the same files applied to many fresh databases: runner's fleet run, and serial loops of each tool.

    Every loop is one bash process going over the targets file, so it pays a process per target (per file for
    psql 1tx/file), not a shell start-up. The psql floors run the psql binary itself, not Debian's Perl wrapper.
    """
    from runner.fleet import DEFAULT_JOBS  # the project's venv runs this script

    workload, count = W.fleet_files(sizes.fleet_files), sizes.fleet_dbs
    say(f"\n== W9: {count} databases x {workload.title}; {count} fresh databases each run")
    chosen = [t for t in tools if t.name in FLEET_TOOLS]
    folders = lay_out(workload, [t for t in chosen if t.available])
    psql_dir = T.psql_dir()
    psql_env = {"PATH": f"{psql_dir}:{os.environ['PATH']}"} if psql_dir else {}
    runs: list[tuple[Row, T.Tool, Path]] = []
    for tool in chosen:
        if tool.name == "runner":
            ways = [("runner", f"runner fleet (--jobs {DEFAULT_JOBS}, the default)"),
                    (f"runner-j{FLEET_JOBS}", f"runner fleet --jobs {FLEET_JOBS}"),
                    ("runner-loop", "runner loop")]  # fmt: skip
        else:
            ways = [(tool.name, f"{T.LABELS.get(tool.name, tool.name)} loop")]
        for key, label in ways:
            row = Row("W9", key, label=label)
            if not tool.available:
                row.status, row.note = "unavailable", tool.reason
            rows.append(row)
            runs.append((row, tool, folders.get(tool.name, Path("."))))
    for rep in range(sizes.reps):
        for row, tool, folder in runs:  # interleaved, as in bench_apply
            if row.status == "ok":
                env = {**tool.env, **(psql_env if tool.name in T.FLOORS else {})}
                _fleet_run(row, tool, folder, env, sizes, rep)
    for row, *_ in runs:
        if row.status == "ok":
            say(f"  W9 {row.label:<34} median {row.median:8.3f}s  ({len(row.times)} runs)")


def _fleet_argv(row: Row, folder: Path, targets: Path) -> list[str]:
    """The command of a W9 row: runner's fleet run, or a tool's serial loop over ``targets``."""
    if row.tool == "runner" or row.tool == f"runner-j{FLEET_JOBS}":
        jobs = ["--jobs", str(FLEET_JOBS)] if row.tool != "runner" else []
        return [str(T.RUNNER), "migrate", "--targets-file", str(targets), "--dir", str(folder), *jobs]
    return T.loop(row.tool.removesuffix("-loop"), targets, folder)


def _fleet_run(row: Row, tool: T.Tool, folder: Path, env: dict[str, str], sizes: Sizes, rep: int) -> None:
    """One timed run over fresh databases, each checked (tables, indexes and tracking rows), all dropped after."""
    dbs = fresh_dbs(sizes.fleet_dbs)
    targets = WORK / "w9-targets.txt"
    targets.write_text("".join(f"{T.url(db)}\n" for db in dbs))
    try:
        log = WORK / "logs" / f"W9_r{rep}_{row.tool}.log"
        seconds, rss = timed(_fleet_argv(row, folder, targets), env, sizes.timeout_s * 2, log)
        for db in dbs:
            with psycopg.connect(T.url(db)) as conn:
                W.check_target(conn, sizes.fleet_files, tracking=T.TRACKING.get(tool.name))
        row.times.append(seconds)
        row.rss_kb.append(rss)
        say(f"  W9 rep {rep + 1}/{sizes.reps} {row.label:<34} {seconds:8.3f}s  rss {rss / 1024:6.1f} MB")
    except (ToolFailed, W.WrongResult) as exc:
        row.status, row.note = "FAILED", str(exc) if isinstance(exc, ToolFailed) else f"wrong result: {exc}"
        say(f"  W9 {row.label}: FAILED {row.note}")
    finally:
        drop_dbs(dbs)


def bench_tenants(runner: T.Tool, sizes: Sizes, rows: list[Row]) -> None:
    """W10: tenant schemas in one database. Set up by one `runner migrate --schemas 'tenant_*'` (timed: W10m);
    measured, nothing pending: `runner status --schemas 'tenant_*'` beside a bash loop of single-tenant
    `runner status --schemas NAME` over the first tenants, its time scaled to all of them."""
    workload, count, some = W.fleet_files(sizes.fleet_files), sizes.tenants, min(sizes.tenant_loop, sizes.tenants)
    scale = count / some
    say(f"\n== W10: {count:,} tenant schemas in one database x {workload.title}")
    folder = str(lay_out(workload, [runner])["runner"])
    schemas = [f"tenant_{i:04d}" for i in range(1, count + 1)]
    setup = Row("W10m", "runner", label=f"runner migrate --schemas 'tenant_*' (the set-up, {count:,} tenants)")
    fleet = Row("W10", "runner", label="runner status --schemas 'tenant_*'")
    loop = Row("W10", "runner-loop", label=f"runner status --schemas NAME loop ({some} tenants, x{scale:g})")
    rows.extend((setup, fleet, loop))
    db = fresh_db("w10", "template0")
    try:
        with psycopg.connect(T.url(db), autocommit=True) as conn:
            conn.execute("; ".join(f"CREATE SCHEMA {s}" for s in schemas))
        migrate = [str(T.RUNNER), "migrate", "--dsn", T.url(db), "--schemas", "tenant_*", "--dir", folder]
        try:
            seconds, rss = timed(migrate, {}, sizes.timeout_s * 2, WORK / "logs" / "W10_setup.log")
            with psycopg.connect(T.url(db)) as conn:
                W.check_tenants(conn, sizes.fleet_files, schemas, T.TRACKING["runner"])
        except (ToolFailed, W.WrongResult) as exc:
            for row in (setup, fleet, loop):
                row.status, row.note = "FAILED", f"set-up: {exc}"
            say(f"  W10 set-up: FAILED {exc}")
            return
        setup.times.append(seconds)
        setup.rss_kb.append(rss)
        say(f"  W10 set-up: runner migrate --schemas applied {count:,} x {sizes.fleet_files} files in {seconds:.1f}s"
            f"  rss {rss / 1024:.1f} MB")  # fmt: skip
        names = WORK / "w10-tenants.txt"
        names.write_text("".join(f"{s}\n" for s in schemas[:some]))
        status = [str(T.RUNNER), "status", "--dsn", T.url(db), "--dir", folder, "--schemas"]
        each = T.each_line(" ".join(map(shlex.quote, status)) + ' "$line"', names)
        for rep in range(sizes.noop_reps):
            _tenant_run(fleet, [*status, "tenant_*"], f"{count} target(s): {count} up to date", 1, sizes, rep)
            if rep < sizes.reps:
                _tenant_run(loop, each, "1 target(s): 1 up to date", some, sizes, rep, scale)
        for row in (fleet, loop):
            if row.status == "ok":
                say(f"  W10 {row.label:<50} median {row.median:8.3f}s")
    finally:
        drop_db(db)


def _tenant_run(row: Row, argv: list[str], summary: str, times: int, sizes: Sizes, rep: int,
                scale: float = 1) -> None:  # fmt: skip
    """One timed status run (nothing pending), checked by its summary lines: ``times`` of ``summary``."""
    if row.status != "ok":
        return
    log = WORK / "logs" / f"W10_r{rep}_{row.tool}.log"
    try:
        seconds, rss = timed(argv, {}, sizes.timeout_s, log)
        found = log.read_text().count(summary)
        if found != times:
            raise ToolFailed(f"wrong result: {found} of {times} summary line(s) {summary!r} (log: {log})")
    except ToolFailed as exc:
        row.status, row.note = "FAILED", str(exc)
        say(f"  W10 {row.label}: FAILED {exc}")
        return
    row.times.append(seconds * scale)
    row.rss_kb.append(rss)
    say(f"  W10 rep {rep + 1} {row.label:<50} {seconds:8.3f}s" + (f" (x{scale:g}: {seconds * scale:.3f}s)"
        if scale != 1 else "") + f"  rss {rss / 1024:6.1f} MB")  # fmt: skip


# ---------------------------------------------------------------- report


def find(rows: list[Row], workload: str, tool: str) -> Row | None:
    return next((r for r in rows if r.workload == workload and r.tool == tool), None)


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.2f} ms" if value < 0.1 else f"{value:.3f} s"


def table(rows: list[Row]) -> str:
    lines = ["| workload | tool | median | x floor (psql) | x psql 1tx/file | x runner | peak RSS | runs | status |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in rows:
        ratios = [_ratio(r, find(rows, r.workload, tool)) for tool in (T.FLOOR, T.EACH, "runner")]
        rss = f"{r.peak_mb:.0f} MB" if r.peak_mb is not None and not r.workload.startswith("W6") else "-"
        status = r.status + (f": {r.note}" if r.note and r.status != "ok" else "")
        cells = [r.workload, r.label or T.LABELS.get(r.tool, r.tool), _fmt_s(r.median),
                 *(f"{x:.2f}x" if x else "-" for x in ratios), rss, str(len(r.times)), status]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(a: Row | None, b: Row | None) -> float | None:
    return a.median / b.median if a and b and a.median and b.median else None


def _median(row: Row | None) -> str:
    return _fmt_s(row.median if row else None)


def targets(rows: list[Row], sizes: Sizes) -> list[tuple[str, str, str]]:
    """(target, met/not met/not measured/reported, the numbers it compares): issue 13's first."""
    out = []

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "not met")

    def judged(fails: bool, measured: bool) -> str:
        """Not met as soon as one comparison fails, even when another could not be made."""
        return verdict(False if fails else (True if measured else None))

    ours, noop, yoyo = (find(rows, "W8@1000", tool) for tool in ("runner", NOOP, "yoyo"))
    gap = ours.median - noop.median if ours and noop and ours.median and noop.median else None
    behind = _ratio(ours, yoyo)
    out.append(("W8@1000 last-1: runner <= its no-op + 30 ms, and faster than yoyo",
                judged((gap is not None and gap > 0.030) or (behind is not None and behind >= 1),
                       gap is not None and behind is not None),
                f"runner {_median(ours)}, its no-op {_median(noop)}"
                + (f" (+{gap * 1000:.0f} ms)" if gap is not None else "") + f"; yoyo {_median(yoyo)}"))  # fmt: skip
    ours, noop = find(rows, "W8@10000", "runner"), find(rows, "W8@10000", NOOP)
    r = _ratio(ours, noop)
    out.append(("W8@10000 last-1: runner <= 1.5x its no-op", verdict(None if r is None else r <= 1.5),
                f"runner {_median(ours)}, its no-op {_median(noop)}" + (f" = {r:.2f}x" if r else "")))  # fmt: skip
    for key in ("W1", "W2"):
        ours, each = find(rows, key, "runner"), find(rows, key, T.EACH)
        r = _ratio(ours, each)
        peers = [row for tool in T.PEERS if (row := find(rows, key, tool)) and row.median]
        missing = [tool for tool in T.PEERS if tool not in {row.tool for row in peers}]
        ahead = [row for row in peers if (x := _ratio(row, ours)) is not None and x <= 1]
        one = _ratio(ours, find(rows, key, T.FLOOR))
        numbers = [f"runner {_median(ours)} = " + (f"{r:.2f}x" if r else "-") + f" psql 1tx/file ({_median(each)})"
                   + (f", {one:.2f}x the one-process floor" if one else ""),
                   *(f"{row.tool} {_median(row)} ({_ratio(row, ours) or 0:.2f}x runner)" for row in peers)]  # fmt: skip
        if missing:
            numbers.append("not measured: " + ", ".join(missing))
        out.append((f"{key}: runner faster than every peer and <= 1.05x psql 1tx/file",
                    judged((r is not None and r > 1.05) or bool(ahead), r is not None and not missing),
                    "; ".join(numbers)))  # fmt: skip
    noop_at = f"W4@{sizes.api_files}"
    ours, yoyo = find(rows, noop_at, "runner"), find(rows, noop_at, "yoyo")
    r = _ratio(ours, yoyo)
    out.append((f"no-op with {sizes.api_files:,} applied (W4): runner <= 0.85x yoyo",
                verdict(None if r is None else r <= 0.85),
                f"runner {_median(ours)}, yoyo {_median(yoyo)}" + (f" = {r:.2f}x" if r else "")))  # fmt: skip
    for key, call, goal in (("W6", "status", "< 5 ms"), ("W6m", "migrate", "no slower than before")):
        api = find(rows, f"{key}@{sizes.api_files}", "runner")
        ms = api.median * 1000 if api and api.median else None
        status = verdict(None if ms is None else ms < 5) if key == "W6" else ("reported" if ms else "not measured")
        out.append((f"{key} in-process runner.{call}(conn, dir), nothing pending: {goal}", status,
                    f"{ms:.2f} ms median on an open connection" if ms else "-"))  # fmt: skip
    ours3 = find(rows, "W3", "runner")
    r3 = _ratio(ours3, find(rows, "W3", T.FLOOR))
    mb = ours3.peak_mb if ours3 else None
    ok3 = None if r3 is None or mb is None else r3 <= 1.1 and mb <= 150
    out.append(
        (
            f"W3 ({sizes.w3_mb} MB): <= 1.1x floor, peak RSS <= 150 MB",
            verdict(ok3),
            f"{r3:.2f}x floor, {mb:.0f} MB" if r3 and mb else "-",
        )
    )
    for key in W.W7_KINDS:
        ours7 = find(rows, key, "runner")
        r7 = _ratio(ours7, find(rows, key, T.FLOOR))
        mb7 = ours7.peak_mb if ours7 else None
        out.append((f"{key} ({sizes.w7_mb} MB{', ' + W.W7_KINDS[key] if W.W7_KINDS[key] else ''}): "
                    "<= 1.1x floor, peak RSS <= 150 MB",
                    verdict(None if r7 is None or mb7 is None else r7 <= 1.1 and mb7 <= 150),
                    f"{r7:.2f}x floor, {mb7:.0f} MB" if r7 and mb7 else "-"))  # fmt: skip
    out += _fleet_targets(rows, sizes)
    migrate, load = find(rows, "W11", "runner"), find(rows, "W11", "runner-load")
    r11 = _ratio(load, migrate)
    out.append((f"W11 ({sizes.w1:,} files): runner load of the schema file <= 0.2x runner migrate from scratch",
                verdict(None if r11 is None else r11 <= 0.2),
                f"load {_median(load)}, migrate {_median(migrate)}" + (f" = {r11:.2f}x" if r11 else "")
                + f"; psql -f {_median(find(rows, 'W11', T.FLOOR))}"))  # fmt: skip
    for kind in ("W4", "W5"):
        small, big = find(rows, f"{kind}@1000", "runner"), find(rows, f"{kind}@10000", "runner")
        rs = _ratio(big, small)
        out.append(
            (
                f"{kind} scaling: 10,000 files <= 2x the time at 1,000",
                verdict(None if rs is None else rs <= 2),
                f"{_fmt_s(big.median)} vs {_fmt_s(small.median)} = {rs:.2f}x" if rs and big and small else "-",
            )
        )
    return out


def _fleet_targets(rows: list[Row], sizes: Sizes) -> list[tuple[str, str, str]]:
    """Issue 14's: a tenant fleet's status in seconds, a database fleet's migrate against the serial psql loop,
    and the fleet process's memory."""
    out = []
    status, migrate = find(rows, "W10", "runner"), find(rows, "W10m", "runner")
    loop = find(rows, "W10", "runner-loop")
    out.append((f"W10 ({sizes.tenants:,} tenants): runner status --schemas, nothing pending, <= 3 s",
                "not measured" if not status or status.median is None else "met" if status.median <= 3 else "not met",
                f"{_median(status)}; the serial loop of single-tenant runs {_median(loop)}"
                + (f" ({_ratio(loop, status):.1f}x)" if _ratio(loop, status) else "")))  # fmt: skip
    ours, each = find(rows, "W9", "runner"), find(rows, "W9", T.EACH)
    r = _ratio(ours, each)
    others = [row for row in rows if row.workload == "W9" and row is not ours and row.median]
    out.append((f"W9 ({sizes.fleet_dbs} databases x {sizes.fleet_files} files): runner fleet <= 0.5x the psql "
                "1tx/file loop", "not measured" if r is None else "met" if r <= 0.5 else "not met",
                f"runner fleet {_median(ours)} = " + (f"{r:.2f}x" if r else "-") + f" psql 1tx/file loop "
                f"({_median(each)}); " + "; ".join(f"{row.label} {_median(row)}" for row in others
                                                   if row is not each)))  # fmt: skip
    fleets = [row for row in (status, migrate) if row and row.peak_mb is not None]
    peak = max((row.peak_mb or 0 for row in fleets), default=None)
    w9 = ours.peak_mb if ours else None
    out.append((f"peak RSS of the runner fleet process at {sizes.tenants:,} targets (W10 status and migrate) "
                "<= 200 MB", "not measured" if len(fleets) < 2 or peak is None else "met" if peak <= 200 else "not met",
                "; ".join(f"{row.label} {row.peak_mb:.0f} MB" for row in fleets)
                + (f"; W9's fleet ({sizes.fleet_dbs} databases) {w9:.0f} MB" if w9 else "")))  # fmt: skip
    return out


def machine() -> dict[str, str]:
    def sh(cmd: str) -> str:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

    with admin() as conn:
        pg = conn.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
    return {"date": sh("date"), "nproc": sh("nproc"), "memory": sh("free -g | sed -n 2p"), "postgres": pg,
            "kernel": platform.release(), "python": platform.python_version()}  # fmt: skip


def report(rows: list[Row], tools: dict[str, T.Tool], sizes: Sizes, mode: str, elapsed: float) -> str:
    info = machine()
    parts = [f"## {mode} run, {info['date']}", "",
             f"Machine: {info['nproc']} cores; `free -g`: `{info['memory']}`; {info['postgres']}; "
             f"kernel {info['kernel']}; Python {info['python']}. Took {elapsed:.0f} s.", "",
             "Tools:", ""]  # fmt: skip
    for t in tools.values():
        parts.append(f"- {t.name}: " + (t.version if t.available else f"UNAVAILABLE: {t.reason}"))
    reps = (f"Medians of {sizes.reps} runs (W1-W3, W7, W9, W10's loop), {sizes.noop_reps} runs (W4, W5, W8, "
            f"W10's status), {sizes.api_calls} calls (W6); W10m is one run.")  # fmt: skip
    parts += ["", reps,
              "", table(rows), "", "Targets:", "", "| target | status | numbers |", "|---|---|---|"]  # fmt: skip
    parts += [f"| {t} | {v} | {n} |" for t, v, n in targets(rows, sizes)]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller workloads, 3 runs; about five minutes")
    floors = f"psql brings both floors: one process, and {T.EACH}"
    parser.add_argument("--only", default=",".join(T.ALL), help=f"tools, comma-separated ({floors})")
    parser.add_argument("--workloads", default="W1,W2,W3,W4,W5,W6,W7,W8,W9,W10,W11", help="comma-separated")
    parser.add_argument("--reps", type=int, help="repetitions per measurement (overrides the mode's)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.reps:
        sizes.reps = sizes.noop_reps = args.reps
    wanted = [t for t in args.only.split(",") if t]
    unknown = set(wanted) - set(T.ALL)
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(sorted(unknown))}; choose from {', '.join(T.ALL)}")
    if T.FLOOR in wanted and T.EACH not in wanted:
        wanted.insert(wanted.index(T.FLOOR) + 1, T.EACH)
    chosen = set(args.workloads.upper().split(","))

    started = time.perf_counter()
    tools = T.install(wanted)
    for t in tools.values():
        say(f"{t.name:<11} {t.version if t.available else 'UNAVAILABLE: ' + t.reason}")
    drop_leftovers()
    rows: list[Row] = []
    applied = AppliedDbs(sizes)
    listed = list(tools.values())
    runner = tools.get("runner")
    try:
        if "W1" in chosen:
            bench_apply(W.w1_schema(sizes.w1), listed, sizes, rows)
        if "W2" in chosen:
            bench_apply(W.w2_data(sizes.w2), listed, sizes, rows)
        if "W3" in chosen:  # one file: the per-file floor would be the floor again
            bench_apply(W.w3_big_file(sizes.w3_mb), [t for t in listed if t.name != T.EACH], sizes, rows)
        if "W4" in chosen:
            bench_noop(listed, sizes, applied, rows)
        if "W8" in chosen:
            bench_last_one(listed, sizes, rows)
        if runner and runner.available and "W5" in chosen:
            bench_verify(runner, sizes, applied, rows)
        if runner and runner.available and "W6" in chosen:
            bench_api(runner, sizes, applied, rows)
        if "W7" in chosen:  # runner beside the floor only: the peers' W3 says enough of them
            pair = [t for t in listed if t.name in (T.FLOOR, "runner")]
            for key in W.W7_KINDS:
                bench_apply(W.w7_words(sizes.w7_mb, key), pair, sizes, rows)
        if "W9" in chosen:
            bench_fleet_dbs(listed, sizes, rows)
        if runner and runner.available and "W10" in chosen:
            bench_tenants(runner, sizes, rows)
        if runner and runner.available and "W11" in chosen:
            bench_load(runner, sizes, rows)
    finally:
        applied.drop_all()
    mode = "quick" if args.quick else "full"
    text = report(rows, tools, sizes, mode, time.perf_counter() - started)
    WORK.mkdir(exist_ok=True)
    (WORK / f"report-{mode}.md").write_text(text)
    (WORK / f"results-{mode}.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    say("\n" + text)
    say(f"(written to {WORK / f'report-{mode}.md'} and results-{mode}.json)")
    failed = [r for r in rows if r.status == "FAILED"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
