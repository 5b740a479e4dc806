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

from collections.abc import Sequence
from typing import NamedTuple

from runner import directives, variables
from runner.errors import BadInput
from runner.files import NAME_PATTERN, Migration

HEAD = "-- runner squash: "
_REPLACES = "-- replaces "
SUFFIX = "_squashed.sql"


class Replaced(NamedTuple):
    """A file a squashed file stands for, as a database recorded it."""

    version: int
    checksum: str
    name: str


def replaced(migration: Migration) -> list[Replaced]:
    """What ``migration`` replaces: none unless it is a squashed file. Only its leading comments are read."""
    if migration.sql[: len(HEAD)] != HEAD.encode():
        return []
    found: list[Replaced] = []
    offset = 0
    while True:
        end = migration.sql[offset : offset + 4096].find(b"\n")
        line = migration.sql[offset : offset + (end if end >= 0 else 4096)].decode("utf-8", "replace")
        if not line.startswith("--"):
            return found
        if line.startswith(_REPLACES):
            version, checksum, name = line[len(_REPLACES) :].split(" ", 2)
            found.append(Replaced(int(version), checksum, name))
        if end < 0:
            return found
        offset += end + 1


def header(files: Sequence[Migration], command: str) -> str:
    """The leading comments of a squashed file that replaces ``files`` (a squashed one among them included)."""
    lines = [f"{HEAD}replaces {len(files)} files, versions {files[0].version} to {files[-1].version}",
             f"-- Written by `{command}`: it builds, in one transaction, the database those files built,",
             "-- rows included. A database that applied them takes this file as applied; a new one runs it,",
             "-- then the files after it."]  # fmt: skip
    for f in files:
        lines += [f"{_REPLACES}{r.version} {r.checksum} {r.name}" for r in replaced(f)]
        lines.append(f"{_REPLACES}{f.version} {f.checksum} {f.name}")
    return "\n".join(lines) + "\n\n"


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
    """A squashed file and a file it replaces cannot both be in the folder: a new database would run both."""
    present = {f.version: f for f in files}
    for f in files:
        for r in replaced(f):
            kept = present.get(r.version)
            if kept is not None and kept is not f:
                raise BadInput(f"{kept.path} is replaced by {f.name} (squashed); delete it, or delete {f.name}")
