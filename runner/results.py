"""What the library reports: the events of a run, passed to ``on_event``, and the results its verbs return.

Plain data, apart from the orchestrator: the CLI's renderers (report, progress) depend on these, not on api.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runner import schema
from runner.apply import Applied, Skipped
from runner.files import Migration
from runner.indexes import InvalidIndex
from runner.plan import Entry, Plan, State
from runner.undo import RolledBack


@dataclass(frozen=True)
class Note:
    """Something worth a line on the terminal: the embedded server, waiting for the lock."""

    text: str


@dataclass(frozen=True)
class DriftWarning:
    """An applied migration whose file was edited or is gone; the run goes on."""

    entry: Entry


@dataclass(frozen=True)
class SchemaWarning:
    """The schema changed outside runner since the last run: said before new files are applied."""

    difference: schema.Difference


@dataclass(frozen=True)
class Starting:
    count: int


@dataclass(frozen=True)
class Applying:
    """A file is about to be sent: a progress display can name it while the server runs it."""

    name: str
    index: int  # 1-based, of ``total`` in this run
    total: int


Event = Note | DriftWarning | SchemaWarning | Starting | Applying | Applied | Skipped
OnEvent = Callable[[Event], None]


@dataclass(frozen=True)
class MigrateResult:
    plan: Plan  # as found before this run
    applied: list[Applied] = field(default_factory=list)
    warnings: list[Entry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # applied by another runner while this one ran
    schema_file: Path | None = None  # rewritten after this run: the schema changed


@dataclass(frozen=True)
class VerifyResult:
    plan: Plan
    strict: bool = False
    invalid_indexes: list[InvalidIndex] = field(default_factory=list)
    schema_drift: list[schema.Difference] = field(default_factory=list)
    schema_recorded: bool = True  # False: no snapshot yet, so schema drift could not be checked

    @property
    def drift(self) -> list[Entry]:
        """Edits to comments or whitespace only are drift only with ``strict``."""
        return [e for e in self.plan.drift if self.strict or not e.harmless]

    @property
    def harmless(self) -> list[Entry]:
        return [e for e in self.plan.drift if e.harmless and not self.strict]

    @property
    def pending(self) -> list[Entry]:
        """Files the next migrate runs: new ones, and repeatable files changed since they last ran."""
        return self.plan.having(State.PENDING, State.OUTDATED)

    @property
    def clean(self) -> bool:
        """No drift and no INVALID index; with ``strict``, nothing pending either."""
        return not (self.drift or self.invalid_indexes or self.schema_drift or (self.strict and self.pending))


@dataclass(frozen=True)
class Step:
    """One file a migrate run would apply, and how."""

    version: int | None  # None: a repeatable file
    name: str
    no_transaction: bool
    statements: int | None  # None when the parser cannot split the file: see failure
    wrapper_removed: bool
    settings: dict[str, str]
    failure: str | None = None  # why the parser rejects the file, with the line: migrate would fail there


@dataclass(frozen=True)
class DryRun:
    plan: Plan
    steps: list[Step]
    warnings: list[Entry]
    schema_warnings: list[schema.Difference] = field(default_factory=list)


@dataclass(frozen=True)
class SchemaCheck:
    """The committed schema file compared with the one the folder builds."""

    path: Path
    differences: list[str]  # a unified diff, committed -> built; empty when they are equal
    written_from: int | None  # the server major version of the committed file
    built_on: int  # of the scratch database
    reprinted: bool = False  # equal only once both were loaded and dumped again (see schema_file.reprinted)

    @property
    def same(self) -> bool:
        return not self.differences or self.reprinted


@dataclass(frozen=True)
class Loaded:
    plan: Plan  # after the load: pending files are the ones newer than the schema file


@dataclass(frozen=True)
class Squashed:
    path: Path  # the file written
    replaced: list[Migration]  # the files it replaces, deleted
    schema_file: Path | None = None  # written again: its rows name the squashed file


@dataclass(frozen=True)
class RollbackResult:
    plan: Plan  # as found before this run
    steps: list[str]  # the migrations it undoes (with dry_run) or undid, newest first
    rolled_back: list[RolledBack] = field(default_factory=list)  # in order


@dataclass(frozen=True)
class RedoResult:
    rolled_back: RolledBack | None  # None when no migration was applied
    migrated: MigrateResult | None = None
