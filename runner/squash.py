"""Squashed files: one generated file that stands for the numbered files up to its version.

``runner squash --to V`` builds files 1..V in a scratch database, dumps it (data rows included) and
writes the dump as ``<V>_squashed.sql`` in their place. Its leading comments say what it replaces,
one line per file with the checksum it was applied with::

    -- runner squash: replaces 14 files, versions 1 to 14
    -- replaces 1 sha256:3f2a... 0001_create_workflow_requests.sql

A database that applied those files takes the squashed file as applied (plan.py); a new one runs it.
This module is pure: reading and writing those lines, and choosing the files a squash may take.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from runner import directives, variables
from runner.errors import BadInput
from runner.files import NAME_PATTERN, Migration
from runner.tracking import Record

HEAD = "-- runner squash: "
_LINE = re.compile(
    r"-- (?P<indent>(?:  )*)replaces (?P<version>[0-9]+) (?P<checksum>[a-z0-9]+:[0-9a-f]+) (?P<name>\S.*)"
)
SUFFIX = "_squashed.sql"


class Replaced(NamedTuple):
    """A file a squashed file stands for, as a database recorded it; a squashed one, with the files it stood for."""

    version: int
    checksum: str
    name: str
    within: tuple[Replaced, ...] = ()

    def covered(self, recorded: Mapping[int, str]) -> bool:
        """Whether a database with these checksums by version applied this file: itself, or all it stood for."""
        if recorded.get(self.version) == self.checksum:
            return True
        return bool(self.within) and all(r.covered(recorded) for r in self.within)

    def versions(self) -> set[int]:
        return {self.version}.union(*(r.versions() for r in self.within))

    def checksums(self) -> set[tuple[int, str]]:
        return {(self.version, self.checksum)}.union(*(r.checksums() for r in self.within))


def replaced(migration: Migration) -> list[Replaced]:
    """What ``migration`` replaces: none unless it is a squashed file. Only its leading comments are read.

    A line ``-- replaces VERSION CHECKSUM NAME`` per file; the files a squashed one among them stood for come
    just before it, two spaces further in. BadInput for a line of the header that is not one of these.
    """
    if migration.sql[: len(HEAD)] != HEAD.encode():
        return []
    waiting: dict[int, list[Replaced]] = {}  # by depth: files whose squashed file comes later
    offset, number = 0, 0
    while True:
        end = migration.sql[offset : offset + 4096].find(b"\n")
        line = migration.sql[offset : offset + (end if end >= 0 else 4096)].decode("utf-8", "replace")
        number += 1
        if not line.startswith("--"):
            break
        if line.lstrip("- ").startswith("replaces "):
            found = _LINE.fullmatch(line)
            if found is None:
                raise BadInput(f"{migration.path}, line {number}: not a line runner squash writes ({line[:60]!r}); "
                               "the header says what the file replaces: restore it from version control")  # fmt: skip
            depth = len(found["indent"]) // 2
            within = tuple(waiting.pop(depth + 1, []))
            waiting.setdefault(depth, []).append(
                Replaced(int(found["version"]), found["checksum"], found["name"], within)
            )
        if end < 0:
            break
        offset += end + 1
    if not waiting.get(0) or set(waiting) != {0}:
        raise BadInput(f"{migration.path}: a squashed file's header lists no file it replaces, or lists one "
                       "without the squashed file it belongs to; restore it from version control")  # fmt: skip
    return waiting[0]


def _lines(files: Sequence[Replaced], depth: int = 0) -> list[str]:
    out = []
    for r in files:
        out += _lines(r.within, depth + 1)
        out.append(f"-- {'  ' * depth}replaces {r.version} {r.checksum} {r.name}")
    return out


def of(migration: Migration) -> Replaced:
    """A file as a squashed file lists it: with what it stood for, if it is a squashed one itself."""
    return Replaced(migration.version or 0, migration.checksum, migration.name, tuple(replaced(migration)))


def header(files: Sequence[Migration], command: str) -> str:
    """The leading comments of a squashed file that replaces ``files`` (a squashed one among them included)."""
    listed = [of(f) for f in files]
    versions = set().union(*(r.versions() for r in listed))
    lines = [f"{HEAD}replaces {len(files)} files, versions {min(versions)} to {max(versions)}",
             f"-- Written by `{command}`: it builds, in one transaction, the database those files built,",
             "-- rows included. A database that applied them takes this file as applied; a new one runs it,",
             "-- then the files after it."]  # fmt: skip
    return "\n".join(lines + _lines(listed)) + "\n\n"


def as_built(files: Sequence[Migration], records: Sequence[Record]) -> list[Record]:
    """The tracking rows as a database built from ``files`` would hold them: the records of the files a squashed
    file stands for give way to one of the squashed file, so that a schema file is the same from either."""
    rows = {r.version: r for r in records if r.version is not None}
    for f in files:
        roots = replaced(f)
        own = rows.get(f.version) if f.version is not None else None
        if not roots or own is None or own.checksum == f.checksum:
            continue
        versions = set().union(*(r.versions() for r in roots))
        if all(r.covered({v: rows[v].checksum for v in versions if v in rows}) for r in roots):
            for version in versions:
                rows.pop(version, None)
            rows[f.version or 0] = own._replace(
                name=f.name, checksum=f.checksum, sql_checksum=f.code_checksum, down_checksum=f.down_checksum
            )
    return [rows[v] for v in sorted(rows)]


def name_for(last: Migration) -> str:
    """``0014_squashed.sql`` for a squash up to ``0014_...sql``: the version written as the last file writes it."""
    match = NAME_PATTERN.fullmatch(last.name)
    return (match["version"] if match else str(last.version)) + SUFFIX


def chosen(files: Sequence[Migration], to: int) -> list[Migration]:
    """The files ``--to`` squashes: every numbered file up to it. BadInput for one a single transaction cannot
    hold (no-transaction), one whose psql variables would be fixed at one value, or a range of fewer than two."""
    if not any(f.version == to for f in files):
        raise BadInput(f"--to {to}: no migration file has this version; see `runner status`")
    taken = [f for f in files if f.version is not None and f.version <= to]
    if len(taken) < 2:
        raise BadInput(f"--to {to}: only {taken[0].name} is at or below it; a squash replaces two files or more")
    for f in taken:
        if directives.read(f).no_transaction:
            raise BadInput(f"{f.name} runs without a transaction (-- runner: no-transaction), and a squashed file "
                           f"runs in one; squash up to a version below {f.version}")  # fmt: skip
        if variables.may_reference(f.sql) and variables.references(f.text()):
            raise BadInput(f"{f.name} uses psql variables, whose values a squashed file would fix; "
                           f"squash up to a version below {f.version}")  # fmt: skip
    return taken


def check_folder(files: Sequence[Migration]) -> None:
    """A squashed file and a file it replaces cannot both be in the folder: a new database would run both.
    BadInput too for a squashed file whose header is not as runner squash wrote it."""
    present = {f.version: f for f in files}
    for f in files:
        for version in set().union(*(r.versions() for r in replaced(f))):
            kept = present.get(version)
            if kept is not None and kept is not f:
                raise BadInput(f"{kept.path} is replaced by {f.name} (squashed); delete it, or delete {f.name}")
