"""runner: numbered plain-SQL migrations for PostgreSQL.

The library API, the same code the ``runner`` command uses::

    import runner
    result = runner.migrate("postgresql://app@localhost/app", "sql")
"""

from runner.api import MigrateResult, VerifyResult, migrate, status, verify
from runner.errors import (
    BadInput,
    ConnectionFailed,
    LockTimeout,
    MigrationFailed,
    Refused,
    RunnerError,
)

__all__ = [
    "BadInput",
    "ConnectionFailed",
    "LockTimeout",
    "MigrateResult",
    "MigrationFailed",
    "Refused",
    "RunnerError",
    "VerifyResult",
    "migrate",
    "status",
    "verify",
]
