"""The library core: migrate, status and verify, shared by the CLI, application code and tests.

Data flows one way: files and database state -> a plan -> execution -> a result. Nothing
here prints or exits; progress is reported through an optional ``on_event`` callback and
failures are raised as runner.errors types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg

from runner import db, down, history, manual, repeatable, schema, squash, tracking, undo
from runner import schema_file as dumps
from runner.apply import Applied, Skipped
from runner.db import Database
from runner.engine import (
    apply_all,
    checks,
    listed,
    live_schema,
    own_tables,
    record_kept,
    record_schema,
    refuse_read_otherwise,
    rewrite,
    schema_before,
    schema_drift,
    schema_file_text,
    settings_for,
    stopped_if_lost,
    tenant_path,
    undo_all,
)
from runner.errors import BadInput, MigrationFailed, RunnerError
from runner.errors import ConnectionFailed as ConnectionFailed
from runner.errors import LockLost as LockLost
from runner.errors import Refused as Refused
from runner.files import NAME_RULE
from runner.files import Migration as Migration
from runner.indexes import InvalidIndex as InvalidIndex
from runner.indexes import invalid_indexes
from runner.lock import DEFAULT_WAIT_S, migration_lock
from runner.plan import Entry as Entry
from runner.plan import Plan, State
from runner.preflight import Script, prepare
from runner.results import Applying as Applying
from runner.results import (
    DriftWarning,
    DryRun,
    Loaded,
    MigrateResult,
    Note,
    OnEvent,
    RedoResult,
    RollbackResult,
    SchemaCheck,
    SchemaWarning,
    Squashed,
    Starting,
    Step,
    VerifyResult,
)
from runner.results import Event as Event
from runner.target import (
    Table,
    connections,
    database_errors,
    locked,
    notes,
    one_state,
    plan_of,
    read_files,
    read_plan,
    reading,
)
from runner.undo import RolledBack as RolledBack
from runner.variables import check as check_variables

# The ``X as X`` imports above are re-exported: applications took them from runner.api before results.py and
# target.py held them (an on_event's isinstance checks, RollbackResult.rolled_back's type, the errors to catch).
DEFAULT_DIR = "sql"
# The tracking table: its name, ``[schema.]name``, or a tenant's tables (``TrackingTable.of_tenant``).
SCHEMA = "(schema)"  # the name of `runner accept --schema` in the history


def migrate(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    strict: bool = False,
    allow_out_of_order: bool = False,
    to: int | None = None,
    lock_wait: float = DEFAULT_WAIT_S,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    retries: int = 0,
    wait_for_db: float = 0,
    variables: Mapping[str, str] | None = None,
    schema_file: Path | None = None,
    on_event: OnEvent | None = None,
) -> MigrateResult:
    """Apply every pending file in version order (up to ``to``), each in its own transaction with its tracking row.

    ``lock_timeout`` and ``statement_timeout`` are durations such as ``"5s"``; ``retries`` re-runs a
    file that failed on lock_timeout; ``wait_for_db`` is how many seconds to wait for the server.
    ``variables`` are the values of the psql variables the files use (``:name``; see runner.variables):
    a pending file that uses one without a value is refused before anything runs. ``schema_file`` is rewritten
    (runner dump) once files are applied; a failure to write it is a warning, since the files are applied.
    """
    values = check_variables(variables or {}, "variables:")
    settings = settings_for(database, lock_timeout, statement_timeout)
    emit = on_event or (lambda event: None)
    with locked(database, directory, table, lock_wait, wait_for_db, on_event) as run:
        conn, target, plan = run.conn, run.target, run.plan
        tenant_path(run, settings)
        scripts, before = checks(conn, target, plan, strict, allow_out_of_order, to, values, checksums=True)
        warnings = plan.having(State.EDITED, State.MISSING)
        for entry in warnings:
            emit(DriftWarning(entry))
        for difference in before.differences or []:
            emit(SchemaWarning(difference))
        for entry in plan.having(State.PENDING):
            if entry.unmarked and any(s.migration is entry.file for s in scripts):
                emit(Note(f"{entry.name} was {entry.detail}"))
        emit(Starting(len(scripts)))
        try:
            done = apply_all(run, settings, scripts, retries, emit) if scripts else []
        except (RunnerError, KeyboardInterrupt) as stopped:
            record_kept(run, stopped, before)
            raise
        applied = [d for d in done if isinstance(d, Applied)]
        if applied or not schema.exists(conn, target.companion(schema.SUFFIX).identifier):
            stopped_if_lost(run.lock, applied, [])
            record_schema(conn, target, before, raced=lambda: stopped_if_lost(run.lock, applied, []))
        written = rewrite(conn, target, directory, schema_file, emit) if applied and schema_file else None
    return MigrateResult(plan, applied, warnings, [d for d in done if isinstance(d, Skipped)], written)


def _by_hand(
    what: Callable[[psycopg.Connection, tracking.TrackingTable, Plan], list[manual.Change]],
    database: Database, directory: str | Path, table: Table, on_event: OnEvent | None,
) -> list[manual.Change]:  # fmt: skip
    with locked(database, directory, table, DEFAULT_WAIT_S, 0, on_event) as run:
        conn, target, plan = run.conn, run.target, run.plan
        with database_errors(f"changing {target}"):
            tracking.upgrade(conn, target)
            history.ensure(conn, target)
            changes = what(conn, target, plan)
        if any(c.action != "unmark" for c in changes):  # the database now matches these files, as it is
            record_schema(conn, target)
        return changes


def accept(database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None,
           files: list[str] | None = None, *, on_event: OnEvent | None = None) -> list[manual.Change]:  # fmt: skip
    """Record the new checksum of applied files edited on purpose (all edited files when ``files`` is None)."""
    return _by_hand(lambda c, t, p: manual.accept(c, t, p, files), database, directory, table, on_event)


def accept_schema(database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None,
                  *, on_event: OnEvent | None = None) -> list[schema.Difference]:  # fmt: skip
    """Record the live schema as it is: the changes made outside runner are accepted on purpose, and verify stops
    reporting them. Returns those changes."""
    with locked(database, directory, table, DEFAULT_WAIT_S, 0, on_event) as run:
        accepted = schema_drift(run.conn, run.target) or []
        with database_errors(f"changing {run.target}"), one_state(run.conn):
            history.ensure(run.conn, run.target)
            run.conn.execute(history.insert_statement(run.conn, run.target, "accept", None, SCHEMA, None, None))
            record_schema(run.conn, run.target)
    return accepted


def mark(database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None,
         versions: list[str] | None = None, *, on_event: OnEvent | None = None) -> list[manual.Change]:  # fmt: skip
    """Record files as applied without running them: a DBA already ran them by hand."""
    return _by_hand(lambda c, t, p: manual.mark(c, t, p, versions or []), database, directory, table, on_event)


def baseline(database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None,
             version: int = 0, *, on_event: OnEvent | None = None) -> list[manual.Change]:  # fmt: skip
    """Adopt an existing database: mark every file up to and including ``version``."""
    return _by_hand(lambda c, t, p: manual.baseline(c, t, p, version), database, directory, table, on_event)


def unmark(database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None,
           versions: list[str] | None = None, *, on_event: OnEvent | None = None) -> list[manual.Change]:  # fmt: skip
    """Forget records, so their files run again."""
    return _by_hand(lambda c, t, p: manual.unmark(c, t, p, versions or []), database, directory, table, on_event)


def history_events(database: Database = None, table: Table = None, limit: int | None = None,
                   *, on_event: OnEvent | None = None) -> list[history.Event]:  # fmt: skip
    """The history, oldest first: what was applied, accepted, marked or unmarked, by whom and when."""
    target = tracking.TrackingTable.parse(table)
    with connections(database, 0, on_event) as (conn, _):
        with database_errors(f"reading the history of {target}"):
            return history.read(conn, target, limit)


def _step(script: Script) -> Step:
    """How a file would run; migrate lets the server judge the SQL, plan asks pglast, a part at a time."""
    from runner.preflight import parse_parts

    count, failure = parse_parts(script)
    return Step(script.migration.version, script.name, script.no_transaction, count, script.wrapper_removed,
                script.settings, failure)  # fmt: skip


def dry_run(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    strict: bool = False,
    allow_out_of_order: bool = False,
    to: int | None = None,
    wait_for_db: float = 0,
    variables: Mapping[str, str] | None = None,
    on_event: OnEvent | None = None,
) -> DryRun:
    """What migrate would do, with every check and warning it would give; changes nothing."""
    values = check_variables(variables or {}, "variables:")
    with reading(database, directory, table, wait_for_db, on_event) as (conn, target, plan):
        scripts, before = checks(conn, target, plan, strict, allow_out_of_order, to, values)
    return DryRun(plan, [_step(s) for s in scripts], plan.having(State.EDITED, State.MISSING), before.differences or [])


def lint(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    files: list[str] | None = None,
    *,
    project: Path | None = None,
    variables: Mapping[str, str] | None = None,
    on_event: OnEvent | None = None,
) -> list[Any]:
    """squawk's findings on ``files``, or on the pending files when none are named (that needs the database).

    The rule set comes from ``[tool.runner.lint]`` in the project's pyproject.toml. The files are linted
    with ``variables`` substituted, as migrate would send them; BadInput for a variable without a value.
    """
    values = check_variables(variables or {}, "variables:")
    from runner import lint as linter
    from runner.files import parse_name, read_migration

    if files:
        migrations = []
        for name in files:
            path = Path(name)
            again = path.parent.name == repeatable.FOLDER and path.suffix == ".sql"
            version = parse_name(path.name)
            if (version is None and not again) or not path.is_file():
                raise BadInput(f"{name}: not a migration file (expected an existing {NAME_RULE}, "
                               f"or a file of a {repeatable.FOLDER}/ folder)")  # fmt: skip
            prefix = repeatable.PREFIX if again else down.PREFIX if path.parent.name == down.FOLDER else ""
            migrations.append(read_migration(path, None if again else version, prefix + path.name))
    else:  # the pending files, and the down files that would undo them
        plan = plan_of(database, directory, table, 0, on_event)
        pending = [e.file for e in plan.to_run if e.file is not None]
        migrations = [*pending, *(f.down for f in pending if f.down is not None)]
    return linter.lint(migrations, values, **linter.config(project or Path.cwd()))


def shell(dsn: str | None = None, args: list[str] | None = None, *, on_event: OnEvent | None = None) -> int:
    """Run psql on the target database (the embedded server stays up while it runs); psql's exit code."""
    from runner import shell as psql

    with db.target(dsn, notes(on_event)) as url:
        return psql.run(url, args or [])


def status(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    wait_for_db: float = 0,
    on_event: OnEvent | None = None,
) -> Plan:
    """Every migration, file or record, with its state. Changes nothing."""
    return plan_of(database, directory, table, wait_for_db, on_event)


def verify(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    strict: bool = False,
    wait_for_db: float = 0,
    on_event: OnEvent | None = None,
) -> VerifyResult:
    """Drift between the folder and the tracking table, and INVALID indexes. Changes nothing."""
    with reading(database, directory, table, wait_for_db, on_event) as (conn, target, plan):
        with database_errors("looking for INVALID indexes"):
            invalid = invalid_indexes(conn, target.scope)
        drift = schema_drift(conn, target)
    return VerifyResult(plan, strict, invalid, drift or [], drift is not None)


def diff(
    dsn: str | None = None, against: str = "", table: Table = None, *, on_event: OnEvent | None = None
) -> list[schema.Difference]:
    """How the schema of the database ``against`` differs from this one's (runner's own tables left out)."""
    target = tracking.TrackingTable.parse(table)
    with db.target(dsn, notes(on_event)) as url, db.connect(url) as here, db.connect(against) as there:
        return schema.differences(live_schema(here, target), live_schema(there, target))


def dump(
    database: Database = None, table: Table = None, directory: str | Path | None = None, *,
    on_event: OnEvent | None = None,
) -> str:  # fmt: skip
    """The schema file of the target database: its schema as pg_dump 18 writes it, without the lines that vary
    from run to run, and the tracking rows, so that a database loaded from it is up to date. The rows are the
    ones a database built from the files of ``directory`` would hold (None: as recorded)."""
    target = tracking.TrackingTable.parse(table)
    with connections(database, 0, on_event) as (conn, _):
        return schema_file_text(conn, target, directory)


def check_dump(
    dsn: str | None = None, directory: str | Path = DEFAULT_DIR, table: Table = None, *, schema_file: Path,
    variables: Mapping[str, str] | None = None, on_event: OnEvent | None = None,
) -> SchemaCheck:  # fmt: skip
    """Build the folder in a scratch database on the server of ``dsn`` (the embedded one without), dump it and
    compare with ``schema_file``. The target database itself is not touched.

    A file written from a database that was loaded from a schema file prints some expressions another way
    (dump.reprinted): when the two differ, both are loaded and dumped again, and equal then is equal.
    """
    import difflib

    committed = dumps.read_file(schema_file)
    target = tracking.TrackingTable.parse(table)
    with db.target(dsn, notes(on_event)) as url:
        with dumps.scratch(url) as scratch:
            _build(scratch, directory, target, variables)
            with db.connect(scratch) as conn:
                built, major = schema_file_text(conn, target, directory), conn.info.server_version // 10000
        lines = difflib.unified_diff(committed.splitlines(keepends=True), built.splitlines(keepends=True),
                                     str(schema_file), f"built from {directory}")  # fmt: skip
        differences = [line.rstrip("\n") for line in lines]
        alike = bool(differences) and _reprinted_alike(url, committed, built, target)
    return SchemaCheck(Path(schema_file), differences, dumps.written_by(committed), major, alike)


def _build(
    scratch: str, directory: str | Path, target: tracking.TrackingTable, variables: Mapping[str, str] | None
) -> None:  # fmt: skip
    """The folder migrated into a scratch database; a failure says it happened there."""
    try:
        migrate(scratch, directory, target, variables=variables)
    except MigrationFailed as failure:
        raise MigrationFailed(f"building the files in a scratch database ({db.describe(scratch)}): {failure}. "
                              "A file that changes the server rather than a database (CREATE ROLE) cannot be "
                              "built twice on one server", details=failure.details) from None  # fmt: skip


def _reprinted_alike(url: str, committed: str, built: str, target: tracking.TrackingTable) -> bool:
    with database_errors("reprinting the schema files"):
        ours = dumps.reprinted(url, built, target, own_tables(target))
        theirs = dumps.reprinted(url, committed, target, own_tables(target))
    return ours is not None and ours == theirs


def load(
    database: Database = None, directory: str | Path = DEFAULT_DIR, table: Table = None, *, schema_file: Path,
    on_event: OnEvent | None = None,
) -> Loaded:  # fmt: skip
    """Load a schema file into an empty database, in one transaction, with a history row; refused, and nothing
    kept, when its tracking rows do not match the folder's files (edited or missing ones)."""
    text = dumps.read_file(schema_file)
    files, again = read_files(directory)
    target = tracking.TrackingTable.parse(table)
    with connections(database, 0, on_event, lock=True) as (conn, holder):
        with migration_lock(holder, target.lock_key, DEFAULT_WAIT_S, notes(on_event), shared=holder is conn):
            with database_errors("looking at what the database holds"):
                found = dumps.contents(conn)
            if found:
                listed = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
                raise BadInput(f"the database is not empty ({listed}): runner load fills a new, empty one "
                               "(createdb); to bring this one up to date, run `runner migrate`")  # fmt: skip
            with database_errors(f"loading {schema_file}"), conn.transaction():
                dumps.execute(conn, text, schema_file)
                conn.execute("RESET ALL")  # the file empties search_path, as pg_dump's files do
                plan = read_plan(conn, target, files, again)
                _refuse_foreign(plan, schema_file, target)
                history.ensure(conn, target)
                conn.execute(history.insert_statement(conn, target, "load", None, Path(schema_file).name, None,
                                                      None))  # fmt: skip
            record_schema(conn, target)
    return Loaded(plan)


def _refuse_foreign(plan: Plan, schema_file: Path, target: tracking.TrackingTable) -> None:
    """A schema file whose rows are not this folder's files: of another project, or of edited files."""
    wrong = plan.having(State.EDITED, State.MISSING, State.INCOMPLETE)
    if not wrong:
        if not any(e.record is not None for e in plan.entries):
            raise BadInput(f"{schema_file} has no rows for the tracking table {target}: its first line names the "
                           "table it was dumped with; pass that one with --table. Nothing was loaded")  # fmt: skip
        return
    shown = "; ".join(f"{e.name} ({e.state}: {e.detail})" for e in wrong[:3])
    raise BadInput(f"{schema_file} does not match the files of this folder: {shown}. It is from another project or "
                   "from edited files; nothing was loaded. Write it again with `runner dump`")  # fmt: skip


def squash_files(
    dsn: str | None = None, directory: str | Path = DEFAULT_DIR, table: Table = None, *, to: int,
    variables: Mapping[str, str] | None = None, schema_file: Path | None = None, on_event: OnEvent | None = None,
) -> Squashed:  # fmt: skip
    """Replace the files up to ``to`` by one that builds the same database, rows included (see runner.squash).

    Every one of them must be applied on the target database, unchanged: the files and the databases that
    ran them then agree on what the squashed file stands for. ``schema_file`` is then written again, its rows
    naming the squashed file, so that the change commits with a schema file `dump --check` passes.
    """
    import tempfile

    folder = Path(directory)
    files, _ = read_files(folder)
    taken = squash.chosen(files, to)
    with reading(dsn, folder, table, 0, on_event) as (_, target, plan):
        behind = [e for e in plan.entries if e.version is not None and e.version <= to and e.state != State.APPLIED]
    if behind:
        shown = ", ".join(f"{e.name} ({e.state.value.replace('_', ' ')})" for e in behind[:3])
        raise BadInput(f"--to {to}: not every file up to it is applied, unchanged, on the target database: {shown}. "
                       "Apply a pending one with `runner migrate` and accept an edited one with `runner accept`, or "
                       "squash to a lower version; nothing was changed")  # fmt: skip
    with db.target(dsn, notes(on_event)) as url, dumps.scratch(url) as scratch, \
            tempfile.TemporaryDirectory() as built:  # fmt: skip
        for f in taken:
            Path(built, f.name).write_bytes(f.sql[0 : len(f.sql)])
        _build(scratch, built, target, variables)
        with db.connect(scratch) as conn:
            settings = dumps.database_settings(conn)
            if settings:
                raise BadInput(f"--to {to}: the files set database settings ({settings}), which a dump of the "
                               "database does not hold: a squashed file would lose them. Squash up to a version "
                               "below the file that sets them; nothing was changed")  # fmt: skip
            body = dumps.data_text(conn, target, own_tables(target))
    path = folder / squash.name_for(taken[-1])
    dumps.write(path, squash.header(taken, f"runner squash --to {to}") + body)
    # After the squashed file is whole: a stop here leaves both, which migrate refuses, by name. The down files
    # go first, with their migrations: nothing is undone past a squash, which has none.
    for f in [*(f.down for f in taken if f.down is not None), *taken]:
        try:
            if Path(f.path) != path:
                Path(f.path).unlink()
        except OSError as exc:
            raise BadInput(f"wrote {path}, but could not delete {f.path} ({exc.strerror}): delete it, and the other "
                           f"files up to version {to} and their down files, by hand") from None  # fmt: skip
    written = None
    if schema_file is not None:
        with connections(dsn, 0, on_event) as (conn, _):
            written = rewrite(conn, target, folder, schema_file, on_event or (lambda event: None))
    return Squashed(path, taken, written)


def rollback(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    to: int | None = None,
    force: bool = False,
    dry_run: bool = False,
    lock_wait: float = DEFAULT_WAIT_S,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    retries: int = 0,
    variables: Mapping[str, str] | None = None,
    schema_file: Path | None = None,
    confirm: Callable[[list[str]], None] | None = None,
    on_event: OnEvent | None = None,
) -> RollbackResult:
    """Undo the newest applied migration, or every one above ``to``, newest first, with their down files
    (runner.down): each in one transaction with the removal of its record and a history row.

    Everything is checked before anything runs (runner.undo.steps, and each down file's pre-flight). The
    repeatable files' records are forgotten after a rollback, so the next migrate runs them again: they are
    written to be run again, and what they made may have gone with the migrations undone. ``schema_file``
    is written again afterwards, as migrate writes it. ``confirm`` is called with the names of the migrations
    to undo (none, too), under the lock, before anything runs: it raises to stop (the CLI asks there), and
    what it was shown is what runs.
    """

    values = check_variables(variables or {}, "variables:")
    settings = settings_for(database, lock_timeout, statement_timeout)
    emit = on_event or (lambda event: None)
    with locked(database, directory, table, lock_wait, 0, on_event, create=False) as run:
        tenant_path(run, settings)
        chosen = undo.steps(run.plan, to, force)
        scripts = [prepare(step.down, own_tables(run.target), values) for step in chosen]
        refuse_read_otherwise(run.conn, scripts, "Nothing was rolled back")
        if confirm is not None and not dry_run:  # with no step too: a caller that previewed some learns they went
            confirm([s.name for s in chosen])
        if dry_run or not chosen:
            return RollbackResult(run.plan, [s.name for s in chosen])
        done = undo_all(run, chosen, scripts, settings, retries, emit)
        if schema_file is not None:  # as after a migrate: the schema changed
            rewrite(run.conn, run.target, directory, schema_file, emit)
    return RollbackResult(run.plan, [s.name for s in chosen], done)


def redo(
    database: Database = None,
    directory: str | Path = DEFAULT_DIR,
    table: Table = None,
    *,
    force: bool = False,
    lock_wait: float = DEFAULT_WAIT_S,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    retries: int = 0,
    variables: Mapping[str, str] | None = None,
    schema_file: Path | None = None,
    confirm: Callable[[list[str]], None] | None = None,
    on_event: OnEvent | None = None,
) -> RedoResult:
    """Roll the newest applied migration back (``rollback``) and apply it again (``migrate`` up to it): the loop
    of writing one. Both happen under one hold of the migration lock, and everything is checked first: the down
    file, the migration (and the repeatable files, which run again after it) as migrate would check them. Only
    that one migration is applied again, whatever else is pending. A failure after the rollback says so."""
    values = check_variables(variables or {}, "variables:")
    settings = settings_for(database, lock_timeout, statement_timeout)
    emit = on_event or (lambda event: None)
    with locked(database, directory, table, lock_wait, 0, on_event, create=False) as run:
        tenant_path(run, settings)
        chosen = undo.steps(run.plan, None, force)
        if not chosen:
            return RedoResult(None)
        [step] = chosen
        assert step.entry.file is not None  # undo.steps refuses a migration whose file is gone
        own = own_tables(run.target)
        down_script = prepare(step.down, own, values)
        again = [prepare(step.entry.file, own, values)]
        again += [prepare(e.file, own, values) for e in run.plan.entries if e.repeatable and e.file]
        refuse_read_otherwise(run.conn, [down_script, *again], "Nothing was rolled back")
        if confirm is not None:
            confirm([step.name])
        [undone] = undo_all(run, chosen, [down_script], settings, retries, emit)
        with database_errors("reading the schema"):
            before = schema_before(run.conn, run.target)
        try:
            applied = [d for d in apply_all(run, settings, again, retries, emit) if isinstance(d, Applied)]
            stopped_if_lost(run.lock, applied, [])
        except (RunnerError, KeyboardInterrupt) as stopped:
            kept = record_kept(run, stopped, before)
            then = f"applied {listed([a.name for a in kept])} again; then " if kept else "then "
            stopped.args = (f"rolled back {step.name} ({undone.down}); {then}{stopped.args[0]}",)
            raise
        record_schema(run.conn, run.target, before, raced=lambda: stopped_if_lost(run.lock, applied, []))
        written = rewrite(run.conn, run.target, directory, schema_file, emit) if schema_file else None
    return RedoResult(undone, MigrateResult(run.plan, applied, [], [], written))
