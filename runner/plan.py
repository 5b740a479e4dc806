"""Comparing the files with the tracking table: the state of every migration.

This is pure: files and records in, a plan out. Migrate, status and verify all read the
same plan, so they can never disagree about what is pending or edited.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from runner import squash
from runner.files import Migration, checksum_matches
from runner.tracking import Record


class State(StrEnum):
    APPLIED = "applied"
    PENDING = "pending"
    EDITED = "edited"  # applied, but the file changed since
    MISSING = "missing"  # applied, but the file is gone
    OUT_OF_ORDER = "out_of_order"  # not applied, and older than the newest applied version
    OUTDATED = "outdated"  # a repeatable file changed since it last ran: migrate runs it again
    DELETED = "deleted"  # the history says it was applied, but its tracking row is gone: deleted by hand
    INCOMPLETE = "incomplete"  # a squashed file of which the database applied some of the files it replaces


# The history's actions after which a file is applied; after "unmark" it is to run again.
APPLIED_ACTIONS = ("apply", "mark", "baseline", "accept")


class Entry(NamedTuple):
    """One migration's state; a named tuple, as tracking.Record is, for the same reason."""

    version: int | None  # None: a repeatable file (see runner.repeatable)
    name: str
    state: State
    file: Migration | None
    record: Record | None
    detail: str = ""
    harmless: bool = False  # edited in comments or whitespace only: the SQL is what ran
    unmarked: bool = False  # pending because `runner unmark` or a rollback removed its record: it runs again

    @property
    def repeatable(self) -> bool:
        return self.version is None


@dataclass(frozen=True)
class Plan:
    entries: list[Entry]

    def having(self, *states: State) -> list[Entry]:
        return [e for e in self.entries if e.state in states]

    @property
    def to_run(self) -> list[Entry]:
        """Files not applied yet in version order (out-of-order ones only run when allowed), then the
        repeatable files that are new or changed, in name order."""
        return self.having(State.PENDING, State.OUT_OF_ORDER, State.OUTDATED)

    @property
    def newest(self) -> int | None:
        """The newest applied version."""
        return max((e.version for e in self.entries if e.record is not None and e.version is not None), default=None)

    @property
    def drift(self) -> list[Entry]:
        return self.having(State.EDITED, State.MISSING, State.OUT_OF_ORDER, State.DELETED, State.INCOMPLETE)


def short(checksum: str) -> str:
    """``sha256:`` and the first 12 hex digits: enough to tell two checksums apart in a message."""
    algorithm, _, digest = checksum.partition(":")
    return f"{algorithm}:{digest[:12]}" if digest else checksum[:19]


def make_plan(
    files: Sequence[Migration], records: Sequence[Record], repeatables: Sequence[Migration] = (),
    again: Sequence[Record] = (), last: Mapping[int, tuple[str, datetime]] | None = None,
) -> Plan:  # fmt: skip
    """Numbered files with the tracking table's records, then repeatable files with theirs (``again``).

    ``last`` is, for versions without a record, the history's last action and its time (history.last_actions):
    applied by the history but not by the table is a record deleted by hand; unmarked is pending by intent.
    """
    return Plan(_versioned(files, records, last or {}) + _repeatable(repeatables, again))


def _versioned(
    files: Sequence[Migration], records: Sequence[Record], last: Mapping[int, tuple[str, datetime]]
) -> list[Entry]:
    by_version = {r.version: r for r in records if r.version is not None}
    newest = max(by_version, default=None)
    entries: list[Entry] = []
    for f in files:
        assert f.version is not None
        record = by_version.pop(f.version, None)
        if record is None or not checksum_matches(record.checksum, f):
            squashed = _squashed(f, record, by_version)
            if squashed is not None:
                entries.append(squashed)
                continue
        action, at = last.get(f.version, ("", None))
        if record is None and action in APPLIED_ACTIONS:
            detail = (f"record deleted by hand: the history says it was applied ({action}, {at:%Y-%m-%d %H:%M:%S %Z}) "
                      "and no `runner unmark` removed its record")  # fmt: skip
            entries.append(Entry(f.version, f.name, State.DELETED, f, None, detail))
        elif record is None and action in ("unmark", "rollback"):
            done = "rolled back" if action == "rollback" else "unmarked"
            detail = f"{done} {at:%Y-%m-%d %H:%M:%S %Z}: migrate runs it again"
            entries.append(Entry(f.version, f.name, State.PENDING, f, None, detail, unmarked=True))
        elif record is None:
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
        elif record.down_checksum is not None and record.down_checksum != f.down_checksum:
            entries.append(Entry(f.version, f.name, State.EDITED, f, record, _down_edited(record, f)))
        else:
            entries.append(Entry(f.version, f.name, State.APPLIED, f, record))
    for record in by_version.values():
        entries.append(Entry(record.version, record.name, State.MISSING, None, record, _gone(record)))
    entries.sort(key=lambda e: e.version or 0)
    return entries


def _squashed(f: Migration, record: Record | None, by_version: dict[int, Record]) -> Entry | None:
    """A squashed file on a database that applied the files it replaces: applied when each of them was applied
    (or the squashed file that stood for it); incomplete when only some were. None for a file that is no squash,
    or a database that applied none of them. The records it stands for are taken from ``by_version``: none of
    them is missing."""
    replaced = squash.replaced(f)
    if not replaced:
        return None
    versions = set().union(*(r.versions() for r in replaced))
    found = {v: by_version.pop(v) for v in sorted(versions) if v in by_version}
    if record is not None:
        found[record.version or 0] = record
    if not found:
        return None
    known = set().union(*(r.checksums() for r in replaced))
    wrong = [r for r in found.values() if (r.version, r.checksum) not in known]
    recorded = {v: r.checksum for v, r in found.items()}
    missing = [r for r in replaced if not r.covered(recorded)]
    if not wrong and not missing:
        return Entry(f.version, f.name, State.APPLIED, f, record, f"applied as the {len(found)} files it replaces")
    if wrong:
        first = wrong[0]
        detail = (f"{first.name} was applied with checksum {short(first.checksum)}, not the one {f.name} replaces; "
                  "the database was not built from the files that were squashed")  # fmt: skip
    else:
        detail = (f"the database applied {len(replaced) - len(missing)} of the {len(replaced)} files it replaces, "
                  f"not {missing[0].name}; apply the rest with the files from before the squash (git checkout "
                  "them into another folder and run migrate --dir there), then migrate")  # fmt: skip
    return Entry(f.version, f.name, State.INCOMPLETE, f, record, detail)


def _repeatable(files: Sequence[Migration], records: Sequence[Record]) -> list[Entry]:
    by_name = {r.name: r for r in records}
    entries: list[Entry] = []
    for f in files:
        record = by_name.pop(f.name, None)
        if record is None:
            entries.append(Entry(None, f.name, State.PENDING, f, None))
        elif not checksum_matches(record.checksum, f):
            detail = f"checksum {short(record.checksum)} when last run, {short(f.checksum)} now; migrate runs it again"
            entries.append(Entry(None, f.name, State.OUTDATED, f, record, detail))
        else:
            entries.append(Entry(None, f.name, State.APPLIED, f, record))
    for record in by_name.values():
        detail = f"{_gone(record)}; if it was removed on purpose, `runner unmark {record.name}` forgets it"
        entries.append(Entry(None, record.name, State.MISSING, None, record, detail))
    entries.sort(key=lambda e: e.name)
    return entries


def _down_edited(record: Record, f: Migration) -> str:
    """An applied migration whose down file changed or went since: what a rollback would run is not what was
    reviewed with it. A down file added later is not this: there was none to compare with."""
    assert record.down_checksum is not None
    if f.down is None:
        return f"its down file down/{f.name} is gone since it was applied; restore it, or `runner accept` that"
    return (f"its down file {f.down.name} changed: checksum {short(record.down_checksum)} when applied, "
            f"{short(f.down.checksum)} now")  # fmt: skip


def _gone(record: Record) -> str:
    return f"applied {record.executed_at:%Y-%m-%d %H:%M:%S %Z}, file not found"
