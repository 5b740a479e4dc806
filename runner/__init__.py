"""runner: numbered plain-SQL migrations for PostgreSQL.

The library API, the same code the ``runner`` command uses::

    import runner
    result = runner.migrate("postgresql://app@localhost/app", "sql")

The names below are loaded when first used: pytest loads this package for its plugin
(runner.pytest_plugin) in every session, and should not pay for psycopg unless a test uses it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.api import (
        dump,
        load,
        migrate,
        redo,
        rollback,
        status,
        verify,
    )
    from runner.errors import BadInput, ConnectionFailed, LockLost, LockTimeout, MigrationFailed, Refused, RunnerError
    from runner.results import MigrateResult, RedoResult, RollbackResult, VerifyResult

_WHERE = {
    "MigrateResult": "runner.results",
    "VerifyResult": "runner.results",
    "RollbackResult": "runner.results",
    "RedoResult": "runner.results",
    "rollback": "runner.api",
    "redo": "runner.api",
    "dump": "runner.api",
    "load": "runner.api",
    "migrate": "runner.api",
    "status": "runner.api",
    "verify": "runner.api",
    "BadInput": "runner.errors",
    "ConnectionFailed": "runner.errors",
    "LockLost": "runner.errors",
    "LockTimeout": "runner.errors",
    "MigrationFailed": "runner.errors",
    "Refused": "runner.errors",
    "RunnerError": "runner.errors",
}
__all__ = ["BadInput", "ConnectionFailed", "LockLost", "LockTimeout", "MigrateResult", "MigrationFailed", "RedoResult",
           "Refused", "RollbackResult", "RunnerError", "VerifyResult", "dump", "load", "migrate", "redo", "rollback",
           "status", "verify"]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name]), name)
    globals()[name] = value  # once only
    return value
