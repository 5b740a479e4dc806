"""The library API with an application's own open connection: used, then handed back as it came."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from helpers import query, write
from psycopg import pq
from psycopg.conninfo import make_conninfo

import runner
from runner.errors import LockTimeout
from runner.files import read_migration

ADVISORY_LOCKS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"


def _two(migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    write(migrations, "2_b.sql", "CREATE TABLE b (id int, note text DEFAULT 'café');\n")


def test_migrate_on_an_open_connection_hands_it_back_as_it_came(dsn: str, migrations: Path) -> None:
    _two(migrations)
    with psycopg.connect(make_conninfo(dsn, client_encoding="LATIN1")) as conn:
        assert conn.execute("SELECT %s::int", (1,), prepare=True).fetchone() == (1,)
        conn.commit()
        result = runner.migrate(conn, migrations)
        assert [a.name for a in result.applied] == ["1_a.sql", "2_b.sql"]
        assert not conn.closed and conn.autocommit is False
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
        assert conn.info.parameter_status("client_encoding") == "LATIN1"
        assert conn.execute(ADVISORY_LOCKS).fetchone() == (0,)  # the migration lock was let go
        # Each file ran from a clean session (DEALLOCATE ALL), and psycopg knows it.
        assert conn.execute("SELECT %s::int", (2,), prepare=True).fetchone() == (2,)
        conn.rollback()
        assert [e.record is not None for e in runner.status(conn, migrations).entries] == [True, True]
        assert runner.verify(conn, migrations).clean
        assert runner.migrate(conn, migrations).applied == []
    # The files were sent as UTF-8 whatever the connection's encoding was.
    assert query(dsn, "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'b'::regclass") == [
        ("'café'::text",)
    ]


def test_the_lock_is_held_on_the_given_connection(dsn: str, migrations: Path) -> None:
    _two(migrations)
    seen: list[object] = []
    with psycopg.connect(dsn, autocommit=True) as conn:

        def other_runner(event: object) -> None:
            if isinstance(event, runner.results.Starting) and not seen:  # the lock is ours now
                with pytest.raises(LockTimeout, match="the migration lock is held by server backend pid"):
                    runner.migrate(dsn, migrations, lock_wait=0.5)
                seen.append(event)

        runner.migrate(conn, migrations, on_event=other_runner)
    assert seen, "the second runner was not tried while the first held the lock"


@pytest.mark.parametrize("state", ["in a transaction", "closed"])
def test_a_connection_runner_cannot_use_is_refused_and_nothing_runs(dsn: str, migrations: Path, state: str) -> None:
    _two(migrations)
    conn = psycopg.connect(dsn)
    if state == "closed":
        conn.close()
    else:
        conn.execute("SELECT 1")
    with pytest.raises(runner.BadInput, match="inside a transaction; commit or roll back first|is closed"):
        runner.migrate(conn, migrations)
    conn.close()
    assert query(dsn, "SELECT count(*) FROM pg_class WHERE relname IN ('a', 'b', 'runner_migrations')") == [(0,)]


def test_every_record_carries_its_own_files_code_checksum(dsn: str, migrations: Path) -> None:
    # Worked out ahead, on another thread, while the server runs the file before.
    for version in range(1, 6):
        write(migrations, f"{version}_t.sql", f"-- {version}\nCREATE TABLE t{version} (n int DEFAULT {version});\n")
    runner.migrate(dsn, migrations)
    entries = runner.status(dsn, migrations).entries
    assert [e.record.sql_checksum for e in entries if e.record] == [
        read_migration(migrations / f"{v}_t.sql", v).code_checksum for v in range(1, 6)
    ]
    assert len({e.record.sql_checksum for e in entries if e.record}) == 5


def test_importing_runner_or_its_pytest_plugin_costs_no_driver_import() -> None:
    """pytest loads the plugin in every session of a project that installs runner: it must stay cheap."""
    code = "import sys, runner, runner.pytest_plugin; print(sorted(m for m in sys.modules if m.startswith('psycopg')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "[]\n"
    code = "import sys, runner; runner.migrate; print('psycopg' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "True\n"


def test_the_names_applications_took_from_runner_api_are_still_there() -> None:
    """api.py was split (results.py, target.py, engine.py); what an application imported from it still imports."""
    from runner import api, errors, results, undo

    assert (api.Applying, api.Event, api.Note, api.MigrateResult) == (
        results.Applying, results.Event, results.Note, results.MigrateResult)  # fmt: skip
    assert (api.RolledBack, api.Refused, api.LockLost, api.ConnectionFailed) == (
        undo.RolledBack, errors.Refused, errors.LockLost, errors.ConnectionFailed)  # fmt: skip
    assert all(hasattr(api, name) for name in ("Entry", "InvalidIndex", "Migration", "Table", "DEFAULT_DIR"))
