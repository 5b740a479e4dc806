"""Faults during a run: what is kept, what is recorded, and that the next run just works.

Each test starts the real ``runner`` command in its own process against a real PostgreSQL and
really causes the fault while a migration runs on the server:

- Ctrl-C or SIGTERM to the runner: the statement is cancelled on the server, the file's
  transaction rolls back, the lock is freed, exit 130 or 143 with one line naming the file; a
  no-transaction file keeps the statements that had run, and says which.
- the server ending the session (pg_terminate_backend) or restarting: nothing of the file is
  kept or recorded, and exit 5 as a lost connection.
- SIGKILL of the runner: the orphaned backend notices within seconds and rolls back, and the
  lock is freed.
- ``--wait-for-db``: the first connection is retried until the server listens, and not without it.
- libpq's environment (PGHOST..., PGSERVICE, a pgpass file) names the server when no DSN is
  given, and the embedded server is then not started.

After every fault, the next ``runner migrate`` applies the file cleanly.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from helpers import ROOT, assert_clean_error, cli_env, query, remove_embedded, runner_cli, write
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from runner import embedded
from runner.apply import round_trip

T = TypeVar("T")

DEADLINE_S = 30.0  # generous: every wait below polls and returns as soon as its condition holds
SLOW = "CREATE TABLE slow_t (id int);\nSELECT pg_sleep(60);\n"
QUICK = "CREATE TABLE slow_t (id int);\nSELECT pg_sleep(0.1);\n"
NO_TX = "-- runner: no-transaction\n"
NO_TX_SLOW = NO_TX + "CREATE TABLE kept_t (id int);\nSELECT pg_sleep(60);\nCREATE TABLE never_t (id int);\n"
NO_TX_QUICK = NO_TX + "CREATE TABLE IF NOT EXISTS kept_t (id int);\nCREATE TABLE never_t (id int);\n"

# A backend of the runner (not of this test) in the current database, running a statement with the needle in it.
_RUNNING = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND application_name LIKE 'runner %%' AND state = 'active'
  AND pid <> pg_backend_pid() AND strpos(query, %s) > 0
"""
_ADVISORY_LOCKS = """
SELECT pid, classid, objid FROM pg_locks
WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


# --- helpers -------------------------------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """A runner environment with no DATABASE_URL and no PG* variable, plus ``extra``."""
    env = {k: v for k, v in cli_env().items() if not k.startswith("PG")}
    env.update(extra)
    return env


def _signals_as_on_a_terminal() -> None:
    """In the child, before runner starts: a shell that runs the suite in the background (`make test &`)
    ignores SIGINT, and its children inherit that, so the signals these tests send would not arrive."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


@contextmanager
def started(*args: str | Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """The real command, running in the background; killed on the way out if a test left it running."""
    with subprocess.Popen(
        [sys.executable, "-m", "runner", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env or clean_env(),
        preexec_fn=_signals_as_on_a_terminal,
    ) as proc:  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def finish(proc: subprocess.Popen[str], timeout: float = DEADLINE_S) -> subprocess.CompletedProcess[str]:
    """Wait for the runner to exit. Well under pg_sleep(60): a runner that waits for the statement fails here."""
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def eventually(check: Callable[[], T | None], what: str, deadline_s: float = DEADLINE_S) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up after {deadline_s:g}s waiting for {what}")
        time.sleep(0.1)


def running_backend(dsn: str, needle: str = "pg_sleep") -> int | None:
    """The pid of the runner's backend running a statement that contains ``needle``, if any."""
    rows = query(dsn, _RUNNING, (needle,))
    return int(str(rows[0][0])) if rows else None


def wait_for_backend(dsn: str, proc: subprocess.Popen[str], needle: str = "pg_sleep") -> int:
    """Wait until the runner's backend runs ``needle`` on the server; its pid."""

    def check() -> int | None:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"runner exited ({proc.returncode}) before it ran {needle}:\n{out}\n{err}")
        return running_backend(dsn, needle)

    return eventually(check, f"the runner's backend to run {needle}")


def backend_exists(dsn: str, pid: int) -> bool:
    return bool(query(dsn, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)))


def advisory_locks(dsn: str) -> list[tuple[object, ...]]:
    return query(dsn, _ADVISORY_LOCKS)


def wait_until_lock_free(dsn: str) -> None:
    """The lock connection's backend ends a moment after the runner's process; then no advisory lock is left."""
    eventually(lambda: not advisory_locks(dsn), "no advisory lock in the database")
    assert advisory_locks(dsn) == []


def recorded(dsn: str) -> list[int]:
    return [int(str(row[0])) for row in query(dsn, "SELECT version FROM runner_migrations ORDER BY version")]


def table_exists(dsn: str, name: str) -> bool:
    return query(dsn, "SELECT to_regclass(%s) IS NOT NULL", (name,)) == [(True,)]


def slow_project(folder: Path) -> None:
    """A quick first file, then one that creates a table and sleeps on the server."""
    write(folder, "0001_base.sql", "CREATE TABLE base_t (id int);\n")
    write(folder, "0002_slow.sql", SLOW)


def assert_only_the_first_file_kept(dsn: str) -> None:
    assert table_exists(dsn, "base_t"), "the file before the fault was committed"
    assert not table_exists(dsn, "slow_t"), "nothing of the interrupted file was kept"
    assert recorded(dsn) == [1], "the interrupted file was not recorded"


def assert_next_run_applies_it(dsn: str, folder: Path) -> None:
    """The same file, now with a short sleep, applies cleanly: nothing half-done is in its way."""
    write(folder, "0002_slow.sql", QUICK)
    again = runner_cli("migrate", "--dsn", dsn, "--dir", folder, "--lock-wait", "0", env=clean_env())
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert "Applied 1 migration(s)" in again.stdout
    assert table_exists(dsn, "slow_t")
    assert recorded(dsn) == [1, 2]


def unix_socket(dsn: str) -> tuple[str, int]:
    params = conninfo_to_dict(dsn)
    return str(params.get("host") or ""), int(str(params.get("port") or 5432))


class DelayedServer:
    """A local TCP port that refuses connections until ``open()``, then forwards each one to the real server.

    The port is bound from the start but not listening, so a connection to it is refused and
    nothing else can take it meanwhile.
    """

    def __init__(self, server_dsn: str) -> None:
        host, port = unix_socket(server_dsn)
        self._upstream: str | tuple[str, int] = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def dsn(self, dsn: str) -> str:
        return make_conninfo(dsn, host="127.0.0.1", port=str(self.port))

    def open(self) -> None:
        self._listener.listen()
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=DEADLINE_S)
        for sock in [self._listener, *self._sockets]:
            sock.close()

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self._upstream, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self._upstream)
            return upstream
        return socket.create_connection(self._upstream)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            client.settimeout(None)
            upstream = self._connect_upstream()
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def refused_port() -> socket.socket:
    """A local port bound but not listening: every connection to it is refused while the socket is open."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """An empty folder to run from; should runner wrongly start an embedded server there, it is stopped."""
    folder = tmp_path / "work"
    folder.mkdir()
    yield folder
    if (folder / embedded.STATE_DIR).exists():
        remove_embedded(folder)


def libpq_variables(dsn: str) -> dict[str, str]:
    params = conninfo_to_dict(dsn)
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE", "password": "PGPASSWORD"}
    return {variable: str(params[key]) for key, variable in names.items() if params.get(key)}


# --- interrupted by the user ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "code", "cause"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")], ids=["int", "term"]
)
def test_a_signal_cancels_the_statement_rolls_the_file_back_and_frees_the_lock(
    dsn: str, migrations: Path, signum: signal.Signals, code: int, cause: str
) -> None:
    slow_project(migrations)
    with started("migrate", "--dsn", dsn, "--dir", migrations) as proc:
        pid = wait_for_backend(dsn, proc)
        proc.send_signal(signum)
        result = finish(proc)

    assert_clean_error(result, code, f"0002_slow.sql was interrupted ({cause}) and rolled back",
                       "nothing of it was kept", "not recorded")  # fmt: skip
    assert "Completed: 0001_base.sql" in result.stdout
    # The runner waits for the cancelled statement to end before it exits: the server is not still sleeping
    # for a client that has gone (without the cancel, it would sleep on until it noticed the closed socket).
    assert running_backend(dsn) != pid, "the server still runs the statement of a runner that has exited"
    eventually(lambda: not backend_exists(dsn, pid), f"the runner's backend {pid} to end")
    wait_until_lock_free(dsn)
    assert_only_the_first_file_kept(dsn)
    assert_next_run_applies_it(dsn, migrations)


class _InterruptedBeforeWaiting(psycopg.Connection):
    """A Ctrl-C that arrives in the instant between sending a message and waiting for its results."""

    armed = True

    def wait(self, *args: Any, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            signal.raise_signal(signal.SIGINT)
        return super().wait(*args, **kwargs)


def test_a_ctrl_c_just_after_the_message_was_sent_still_cancels_the_statement(dsn: str) -> None:
    """psycopg cancels a statement on a Ctrl-C only while it waits for it; round_trip cancels one that came
    earlier, so the file can still be rolled back and its record looked up on the same connection."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _InterruptedBeforeWaiting.connect(dsn, autocommit=True) as conn:
            with pytest.raises(KeyboardInterrupt):
                round_trip(conn, b"BEGIN; CREATE TABLE t (id int); SELECT pg_sleep(60); COMMIT;")
            assert conn.info.transaction_status == pq.TransactionStatus.INERROR, "the statement was cancelled"
            conn.execute("ROLLBACK")
            assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(
    ("signum", "code", "cause"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")], ids=["int", "term"]
)
def test_a_signal_during_a_no_transaction_file_keeps_what_ran_and_records_nothing(
    dsn: str, migrations: Path, signum: signal.Signals, code: int, cause: str
) -> None:
    write(migrations, "0001_no_tx.sql", NO_TX_SLOW)
    with started("migrate", "--dsn", dsn, "--dir", migrations) as proc:
        pid = wait_for_backend(dsn, proc)
        proc.send_signal(signum)
        result = finish(proc)

    kept = "the statement(s) at line(s) 2 had already run and were kept"
    running = "the one at line 3 was running and was cancelled, unless it had just finished (then it was kept too)"
    assert_clean_error(result, code, f"0001_no_tx.sql was interrupted ({cause})", kept, running,
                       "the file was not recorded")  # fmt: skip
    assert running_backend(dsn) != pid, "the server still runs the statement of a runner that has exited"
    eventually(lambda: not backend_exists(dsn, pid), f"the runner's backend {pid} to end")
    wait_until_lock_free(dsn)
    assert table_exists(dsn, "kept_t"), "the statement that had run is kept, as the message says"
    assert not table_exists(dsn, "never_t"), "the statements after the interrupted one did not run"
    assert recorded(dsn) == []

    write(migrations, "0001_no_tx.sql", NO_TX_QUICK)
    again = runner_cli("migrate", "--dsn", dsn, "--dir", migrations, "--lock-wait", "0", env=clean_env())
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert table_exists(dsn, "never_t") and recorded(dsn) == [1]


def test_a_signal_reaches_the_runner_even_when_the_suite_runs_in_the_background(dsn: str, migrations: Path) -> None:
    # `make test &` from a script: the shell ignores SIGINT for the suite, and so would every runner it starts.
    slow_project(migrations)
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with started("migrate", "--dsn", dsn, "--dir", migrations) as proc:
            wait_for_backend(dsn, proc)
            proc.send_signal(signal.SIGINT)
            result = finish(proc)
    finally:
        signal.signal(signal.SIGINT, ignored)
    assert_clean_error(result, 130, "0002_slow.sql was interrupted (Ctrl-C) and rolled back")


# --- the server ends the session --------------------------------------------------------------------------------------


def terminate_mid_migration(dsn: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """Run the slow project and have the server end the runner's session while it sleeps."""
    slow_project(folder)
    with started("migrate", "--dsn", dsn, "--dir", folder) as proc:
        pid = wait_for_backend(dsn, proc)
        assert query(dsn, "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
        result = finish(proc)
    eventually(lambda: not backend_exists(dsn, pid), f"the terminated backend {pid} to end")
    return result


def restart_mid_migration(project: Path) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Run the slow project on a cluster of its own, and restart that server while the file runs."""
    lay = embedded.layout(project)
    embedded.init_cluster(lay)
    embedded.start(lay)
    dsn = lay.dsn()
    slow_project(project / "sql")
    with started("migrate", "--dsn", dsn, "--dir", project / "sql") as proc:
        wait_for_backend(dsn, proc)
        embedded.stop(lay)  # a fast shutdown: every session is ended and its transaction rolled back
        embedded.start(lay)
        result = finish(proc)
    return dsn, result


def test_the_server_terminating_the_session_keeps_nothing_and_the_next_run_applies(dsn: str, migrations: Path) -> None:
    result = terminate_mid_migration(dsn, migrations)
    assert_clean_error(result, 5, "lost the connection while applying 0002_slow.sql")
    wait_until_lock_free(dsn)
    assert_only_the_first_file_kept(dsn)
    assert_next_run_applies_it(dsn, migrations)


def test_a_server_restart_mid_migration_keeps_nothing_and_the_next_run_applies(embedded_project: Path) -> None:
    dsn, result = restart_mid_migration(embedded_project)
    assert_clean_error(result, 5, "lost the connection while applying 0002_slow.sql")
    wait_until_lock_free(dsn)
    assert_only_the_first_file_kept(dsn)
    assert_next_run_applies_it(dsn, embedded_project / "sql")


# --- the runner dies without a word -----------------------------------------------------------------------------------


def test_sigkill_leaves_no_lock_and_nothing_of_the_file(dsn: str, migrations: Path) -> None:
    slow_project(migrations)
    with started("migrate", "--dsn", dsn, "--dir", migrations) as proc:
        pid = wait_for_backend(dsn, proc)
        proc.kill()
        assert proc.wait(timeout=DEADLINE_S) == -signal.SIGKILL

    # Nobody cancels pg_sleep(60) now: the backend must notice on its own that its client is gone
    # (client_connection_check_interval) and roll back, well before the minute is up.
    eventually(lambda: not backend_exists(dsn, pid), f"the orphaned backend {pid} to end")
    wait_until_lock_free(dsn)
    assert_only_the_first_file_kept(dsn)
    assert_next_run_applies_it(dsn, migrations)


# --- waiting for the server -------------------------------------------------------------------------------------------


def test_wait_for_db_retries_until_the_server_listens(server_dsn: str, dsn: str, migrations: Path) -> None:
    write(migrations, "0001_a.sql", "CREATE TABLE a (id int);\n")
    server = DelayedServer(server_dsn)
    try:
        with started("migrate", "--dsn", server.dsn(dsn), "--dir", migrations, "--wait-for-db", "30") as proc:
            # The server starts listening once the runner has been refused and says it waits (no fixed delay).
            assert proc.stderr is not None
            note = proc.stderr.readline()
            assert "Waiting up to 30s for the database" in note, note
            assert server.accepted == 0
            server.open()
            result = finish(proc)
    finally:
        server.close()

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Applied 1 migration(s)" in result.stdout
    assert server.accepted >= 1, "the run went through the late listener"
    assert table_exists(dsn, "a") and recorded(dsn) == [1]


def test_without_wait_for_db_an_unreachable_server_fails_at_once(dsn: str, migrations: Path) -> None:
    write(migrations, "0001_a.sql", "CREATE TABLE a (id int);\n")
    port = refused_port()
    try:
        target = make_conninfo(dsn, host="127.0.0.1", port=str(port.getsockname()[1]))
        result = runner_cli("migrate", "--dsn", target, "--dir", migrations, env=clean_env())
    finally:
        port.close()
    assert_clean_error(result, 5, "cannot connect to", "Connection refused")
    assert "Waiting" not in result.stderr, "no retry without --wait-for-db"


def test_wait_for_db_gives_up_after_its_time_and_says_so(dsn: str, migrations: Path) -> None:
    write(migrations, "0001_a.sql", "CREATE TABLE a (id int);\n")
    port = refused_port()
    try:
        target = make_conninfo(dsn, host="127.0.0.1", port=str(port.getsockname()[1]))
        result = runner_cli("migrate", "--dsn", target, "--dir", migrations, "--wait-for-db", "1", env=clean_env())
    finally:
        port.close()
    assert_clean_error(result, 5, "cannot connect to", "waited 1s, --wait-for-db")
    assert "Waiting up to 1s for the database" in result.stderr


# --- libpq's environment ----------------------------------------------------------------------------------------------


def test_libpq_environment_variables_name_the_server(dsn: str, migrations: Path, workdir: Path) -> None:
    write(migrations, "0001_a.sql", "CREATE TABLE a (id int);\n")
    env = clean_env(**libpq_variables(dsn))
    assert "PGDATABASE" in env
    result = runner_cli("migrate", "--dir", migrations, cwd=workdir, env=env)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "embedded" not in result.stderr.lower()
    assert not (workdir / embedded.STATE_DIR).exists(), "the embedded server was not even set up"
    assert table_exists(dsn, "a") and recorded(dsn) == [1], "applied to the database PGDATABASE names"


def test_pgservice_names_the_server(dsn: str, migrations: Path, workdir: Path, tmp_path: Path) -> None:
    write(migrations, "0001_a.sql", "CREATE TABLE a (id int);\n")
    params = conninfo_to_dict(dsn)
    lines = [f"{key}={params[key]}" for key in ("host", "port", "user", "dbname", "password") if params.get(key)]
    service_file = write(tmp_path, "pg_service.conf", "[runner_faults]\n" + "\n".join(lines) + "\n")
    env = clean_env(PGSERVICE="runner_faults", PGSERVICEFILE=str(service_file))
    result = runner_cli("migrate", "--dir", migrations, cwd=workdir, env=env)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "embedded" not in result.stderr.lower()
    assert not (workdir / embedded.STATE_DIR).exists()
    assert table_exists(dsn, "a") and recorded(dsn) == [1], "applied to the database of the service"


def test_a_password_from_the_pgpass_file_is_used_and_never_shown(embedded_project: Path, tmp_path: Path) -> None:
    secret = "pgpass-Only-S3cret"
    lay = embedded.layout(embedded_project)
    embedded.init_cluster(lay, password=secret)
    embedded.start(lay)
    dsn = lay.dsn()  # no password in it
    assert "password" not in conninfo_to_dict(dsn)
    folder = embedded_project / "sql"
    write(folder, "0001_a.sql", "CREATE TABLE a (id int);\n")

    # Without the file, the login fails: the password below really comes from it.
    missing = runner_cli("migrate", "--dsn", dsn, "--dir", folder, env=clean_env(PGPASSFILE=str(tmp_path / "none")))
    assert_clean_error(missing, 5, "cannot connect to postgres@")

    pgpass = write(tmp_path, "pgpass", f"*:{embedded.PORT}:*:postgres:{secret}\n")
    pgpass.chmod(0o600)  # libpq ignores a pgpass file that others can read
    result = runner_cli("migrate", "--dsn", dsn, "--dir", folder, env=clean_env(PGPASSFILE=str(pgpass)))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Applied 1 migration(s)" in result.stdout
    assert secret not in result.stdout + result.stderr + missing.stdout + missing.stderr
    applied = query(make_conninfo(dsn, password=secret), "SELECT version FROM runner_migrations")
    assert applied == [(1,)]
