"""runner's own exceptions: each kind of failure maps to one exit code at the CLI edge.

The library raises these and never exits; the CLI prints ``str(error)`` and exits with
``error.exit_code``. Messages are written for the person at the terminal: what is wrong and
how to fix it, on one line, with no password in them.
"""

from __future__ import annotations


class RunnerError(Exception):
    """Base class; carries the exit code the CLI uses."""

    exit_code: int = 1
    kind: str = "error"


class Refused(RunnerError):
    """A run refused by policy (``--strict`` drift, a file merged out of order)."""

    exit_code = 1
    kind = "refused"


class BadInput(RunnerError):
    """A problem with the files, the options or the tracking table; nothing was touched."""

    exit_code = 2
    kind = "bad_input"


class MigrationFailed(RunnerError):
    """A migration file failed; its transaction was rolled back and later files did not run."""

    exit_code = 3
    kind = "migration_failed"

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.details: dict[str, object] = details or {}
        self.applied: list[object] = []  # the files of this run that were committed before it


class LockTimeout(RunnerError):
    """Another runner held the migration lock for longer than we were willing to wait."""

    exit_code = 4
    kind = "lock_timeout"


class LockLost(RunnerError):
    """The session holding the migration lock ended mid-run; this runner stopped before its next file or statement.

    ``applied`` lists what this run committed before it stopped, as for MigrationFailed.
    """

    exit_code = 4
    kind = "lock_lost"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.applied: list[object] = []


class ConnectionFailed(RunnerError):
    """The server cannot be reached or refused the login."""

    exit_code = 5
    kind = "connection_failed"


class Terminated(KeyboardInterrupt):
    """Raised by the CLI's SIGTERM handler: psycopg cancels the running statement as it does for Ctrl-C."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while a migration ran; the message says what of it was kept.

    A KeyboardInterrupt, not a RunnerError, so ``except Exception`` in an application never swallows it.
    """

    def __init__(self, message: str, *, terminated: bool = False) -> None:
        super().__init__(message)
        self.terminated = terminated
