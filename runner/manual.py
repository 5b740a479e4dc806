"""Writing down what a DBA did by hand, so the files and the tracking table agree again.

``accept`` re-records an applied file that was edited on purpose; ``mark`` records a file as
applied without running it (it was run in psql); ``baseline`` marks every file up to a version
when runner adopts an existing database; ``unmark`` forgets a record so the file runs again (a repeatable file's too).
Each call changes the tracking table and appends to the history in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from runner import history, repeatable, tracking
from runner.errors import BadInput
from runner.plan import Entry, Plan, State
from runner.tracking import TrackingTable


@dataclass(frozen=True)
class Change:
    action: str
    version: int | None  # None: a repeatable file
    name: str
    old_checksum: str | None
    new_checksum: str | None


def _pick(plan: Plan, wanted: list[str]) -> list[Entry]:
    """The entries named by version number, file name or path, in plan order; BadInput for an unknown one."""
    by_version = {e.version: e for e in plan.entries if e.version is not None}
    by_name = {e.name: e for e in plan.entries}
    picked: set[str] = set()
    for item in wanted:
        path = Path(item)
        entry = (
            by_version.get(int(item))
            if item.isdigit()
            else by_name.get(f"{repeatable.PREFIX}{path.name}" if path.parent.name == repeatable.FOLDER else path.name)
        )
        if entry is None:
            raise BadInput(f"{item}: no migration file or record has this version or name; see `runner status`")
        picked.add(entry.name)
    return [e for e in plan.entries if e.name in picked]


def _refuse(entries: list[Entry], allowed: tuple[State, ...], why: str) -> None:
    wrong = [e for e in entries if e.state not in allowed]
    if wrong:
        listed = ", ".join(f"{e.name} ({e.state})" for e in wrong)
        raise BadInput(f"{listed}: {why}; nothing was changed. See `runner status`")


def _write(
    conn: psycopg.Connection, table: TrackingTable, changes: list[Change], statements: list[sql.Composed]
) -> None:
    with conn.transaction():
        for change, statement in zip(changes, statements, strict=True):
            conn.execute(statement)
            conn.execute(history.insert_statement(conn, table, change.action, change.version, change.name,
                                                  change.old_checksum, change.new_checksum))  # fmt: skip


def accept(conn: psycopg.Connection, table: TrackingTable, plan: Plan, wanted: list[str] | None) -> list[Change]:
    """Record the current checksum (and name) of edited files; ``None`` accepts every edited file."""
    entries = plan.having(State.EDITED) if wanted is None else _pick(plan, wanted)
    _refuse(entries, (State.EDITED,), "only an applied file that was edited can be accepted")
    changes, statements = [], []
    for e in entries:
        assert e.file is not None and e.record is not None
        if (e.record.checksum, e.record.name) == (e.file.checksum, e.file.name):  # only its down file changed
            down = e.file.down.name if e.file.down else f"down/{e.file.name}"
            changes.append(Change("accept", e.version, down, e.record.down_checksum, e.file.down_checksum))
        else:
            changes.append(Change("accept", e.version, e.file.name, e.record.checksum, e.file.checksum))
        statements.append(
            sql.SQL("UPDATE {} SET ({}) = ({}) WHERE version = {}").format(
                table.identifier,
                sql.SQL(tracking.FILE_COLUMNS),
                sql.SQL(", ").join(map(sql.Literal, tracking.file_values(e.file))),
                sql.Literal(e.version),
            )
        )
    _write(conn, table, changes, statements)
    return changes


def _insert(table: TrackingTable, e: Entry) -> sql.Composed:
    assert e.file is not None
    return sql.SQL("INSERT INTO {} ({}, execution_ms) VALUES ({}, 0)").format(
        table.identifier,
        sql.SQL(tracking.FILE_COLUMNS),
        sql.SQL(", ").join(map(sql.Literal, tracking.file_values(e.file))),
    )


def mark(
    conn: psycopg.Connection, table: TrackingTable, plan: Plan, wanted: list[str], action: str = "mark"
) -> list[Change]:
    """Record files as applied without running them."""
    entries = _pick(plan, wanted)
    _refuse([e for e in entries if e.repeatable], (), "a repeatable file is not marked: migrate runs it whenever it "
            "is new or changed, and running it again is harmless")  # fmt: skip
    _refuse(
        entries, (State.PENDING, State.OUT_OF_ORDER, State.DELETED), "only a file that is not applied can be marked"
    )
    changes = [Change(action, e.version, e.name, None, e.file.checksum if e.file else None) for e in entries]
    _write(conn, table, changes, [_insert(table, e) for e in entries])
    return changes


def baseline(conn: psycopg.Connection, table: TrackingTable, plan: Plan, version: int) -> list[Change]:
    """Mark every file up to and including ``version`` that is not applied yet: adopting an existing database."""
    if not any(e.version is not None and e.version <= version for e in plan.entries if e.file is not None):
        raise BadInput(f"no migration file has a version of {version} or less; nothing was changed")
    wanted = [str(e.version) for e in plan.having(State.PENDING, State.OUT_OF_ORDER)
              if e.version is not None and e.version <= version]  # fmt: skip
    return mark(conn, table, plan, wanted, action="baseline")


def unmark(conn: psycopg.Connection, table: TrackingTable, plan: Plan, wanted: list[str]) -> list[Change]:
    """Forget records, so their files run again on the next migrate."""
    entries = _pick(plan, wanted)
    _refuse(
        entries,
        (State.APPLIED, State.EDITED, State.MISSING, State.OUTDATED, State.DELETED),
        "only a recorded migration can be unmarked",
    )
    changes = [Change("unmark", e.version, e.name, e.record.checksum if e.record else None, None) for e in entries]
    statements = [
        repeatable.forget_statement(table, e.name) if e.version is None else tracking.forget_statement(table, e.version)
        for e in entries
    ]
    _write(conn, table, changes, statements)
    return changes
