"""Comparing the files with the tracking table: the state of every migration.

This is pure: files and records in, a plan out. Migrate, status and verify all read the
same plan, so they can never disagree about what is pending or edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runner.files import Migration, checksum_matches
from runner.tracking import Record


class State(StrEnum):
    APPLIED = "applied"
    PENDING = "pending"
    EDITED = "edited"  # applied, but the file changed since
    MISSING = "missing"  # applied, but the file is gone
    OUT_OF_ORDER = "out_of_order"  # not applied, and older than the newest applied version


@dataclass(frozen=True)
class Entry:
    version: int
    name: str
    state: State
    file: Migration | None
    record: Record | None
    detail: str = ""
    harmless: bool = False  # edited in comments or whitespace only: the SQL is what ran


@dataclass(frozen=True)
class Plan:
    entries: list[Entry]

    def having(self, *states: State) -> list[Entry]:
        return [e for e in self.entries if e.state in states]

    @property
    def to_run(self) -> list[Entry]:
        """Files not applied yet, in version order (out-of-order ones only run when allowed)."""
        return self.having(State.PENDING, State.OUT_OF_ORDER)

    @property
    def drift(self) -> list[Entry]:
        return self.having(State.EDITED, State.MISSING, State.OUT_OF_ORDER)


def short(checksum: str) -> str:
    """``sha256:`` and the first 12 hex digits: enough to tell two checksums apart in a message."""
    algorithm, _, digest = checksum.partition(":")
    return f"{algorithm}:{digest[:12]}" if digest else checksum[:19]


def make_plan(files: list[Migration], records: list[Record]) -> Plan:
    by_version = {r.version: r for r in records}
    newest = max(by_version, default=None)
    entries: list[Entry] = []
    for f in files:
        record = by_version.pop(f.version, None)
        if record is None:
            if newest is not None and f.version < newest:
                detail = f"version {f.version} is older than the newest applied version {newest}"
                entries.append(Entry(f.version, f.name, State.OUT_OF_ORDER, f, None, detail))
            else:
                entries.append(Entry(f.version, f.name, State.PENDING, f, None))
        elif not checksum_matches(record.checksum, f):
            detail = f"checksum {short(record.checksum)} when applied, {short(f.checksum)} now"
            if record.name != f.name:
                detail += f"; recorded as {record.name}"
            # Only now, for an edited file, is it worth parsing the SQL.
            harmless = record.sql_checksum is not None and f.code_checksum == record.sql_checksum
            if harmless:
                detail += "; comments or whitespace only, the SQL is the same"
            entries.append(Entry(f.version, f.name, State.EDITED, f, record, detail, harmless))
        elif record.name != f.name:
            detail = f"renamed from {record.name} (same content)"
            entries.append(Entry(f.version, f.name, State.EDITED, f, record, detail))
        else:
            entries.append(Entry(f.version, f.name, State.APPLIED, f, record))
    for record in by_version.values():
        detail = f"applied {record.executed_at:%Y-%m-%d %H:%M:%S %Z}, file not found"
        entries.append(Entry(record.version, record.name, State.MISSING, None, record, detail))
    entries.sort(key=lambda e: e.version)
    return Plan(entries)
