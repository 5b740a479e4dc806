"""The tools under test: how each is installed, how a workload is laid out for it, how it is run.

Peers are installed at run time into bench/.tools/ (git-ignored), never into the repo:
dbmate and postgrator-cli from npm, yoyo-migrations from PyPI into its own venv, sqitch from
Debian (apt-get, as root). Installing is idempotent: a tool already there is not installed again.
A tool that cannot be installed is kept with the reason, and reported as unavailable.
The two psql floors come with the machine's PostgreSQL client.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from workloads import Migration

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TOOLS = BENCH / ".tools"
NODE_BIN = TOOLS / "node_modules" / ".bin"
DBMATE = TOOLS / "node_modules" / "@dbmate" / "linux-x64" / "bin" / "dbmate"
YOYO_VENV = TOOLS / "yoyo-venv"
RUNNER = ROOT / ".venv" / "bin" / "runner"

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"
ALL = ["psql", "psql1tx", "runner", "dbmate", "yoyo", "sqitch", "postgrator"]
FLOOR = "psql"  # one psql process for the whole run
EACH = "psql1tx"  # one `psql -1 -f` process per file, as issue 13 measures
FLOORS = (FLOOR, EACH)
PEERS = [t for t in ALL if t not in (*FLOORS, "runner")]
LABELS = {EACH: "psql 1tx/file"}
PSQL = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]


def url(db: str) -> str:
    return f"postgresql://{USER}@{HOST}:{PORT}/{db}"


def psql_dir() -> str | None:
    """The folder of the psql binary that Debian's `psql` (a Perl wrapper, pg_wrapper) would run, if that is what
    `psql` is: W9 starts 3,000 psql processes, and the wrapper's ~25 ms each would be most of its floor."""
    found = shutil.which("psql")
    if found is None or Path(found).resolve().name != "pg_wrapper":
        return None
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), key=lambda p: int(p.parent.parent.name))
    return str(binaries[-1].parent) if binaries else None


@dataclass
class Tool:
    name: str
    available: bool = True
    reason: str = ""  # why it is unavailable
    version: str = ""
    env: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- install


def _run_quiet(argv: list[str], log: Path, **kw: object) -> bool:
    with log.open("a") as out:
        return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, **kw).returncode == 0  # type: ignore[call-overload]


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


def _install_npm(log: Path) -> str:
    if DBMATE.exists() and (NODE_BIN / "postgrator").exists():
        return ""
    if shutil.which("npm") is None:
        return "npm is not installed"
    package = TOOLS / "package.json"
    if not package.exists():
        package.write_text('{"name": "bench-tools", "private": true}\n')
    ok = _run_quiet(["npm", "install", "--no-audit", "--no-fund", "dbmate", "postgrator-cli", "pg"], log, cwd=TOOLS)
    return "" if ok else f"npm install failed (see {log})"


def _install_yoyo(log: Path) -> str:
    if (YOYO_VENV / "bin" / "yoyo").exists():
        return ""
    if not _run_quiet([sys.executable, "-m", "venv", "--clear", str(YOYO_VENV)], log):
        return f"python -m venv failed (see {log})"
    pip = [str(YOYO_VENV / "bin" / "pip"), "install", "--disable-pip-version-check",
           "yoyo-migrations", "psycopg2-binary"]  # fmt: skip
    return "" if _run_quiet(pip, log) else f"pip install yoyo-migrations failed (see {log})"


def _install_sqitch(log: Path) -> str:
    if shutil.which("sqitch") and Path("/usr/share/doc/libdbd-pg-perl").exists():
        return ""
    if os.geteuid() != 0:
        return "sqitch is not installed and apt-get needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run_quiet(["apt-get", "update", "-qq"], log, env=env)
    ok = _run_quiet(["apt-get", "install", "-y", "-qq", "sqitch", "libdbd-pg-perl"], log, env=env)
    return "" if ok and shutil.which("sqitch") else f"apt-get install sqitch libdbd-pg-perl failed (see {log})"


def install(wanted: list[str]) -> dict[str, Tool]:
    """Install the peers asked for (idempotent) and say which are available and why not."""
    TOOLS.mkdir(parents=True, exist_ok=True)
    log = TOOLS / "install.log"
    problems: dict[str, str] = {}
    if {"dbmate", "postgrator"} & set(wanted):
        problems["dbmate"] = problems["postgrator"] = _install_npm(log)
    if "yoyo" in wanted:
        problems["yoyo"] = _install_yoyo(log)
    if "sqitch" in wanted:
        problems["sqitch"] = _install_sqitch(log)
    if not RUNNER.exists():
        problems["runner"] = f"{RUNNER} is missing: run `make install` first"
    elif "runner" in wanted:
        # Measured as installed from a wheel, with bytecode: the editable install under
        # PYTHONDONTWRITEBYTECODE (set on these machines) would compile every module on every start.
        subprocess.run([str(RUNNER.parent / "python"), "-m", "compileall", "-q", str(ROOT / "runner")], check=True)
    if shutil.which("psql") is None:
        problems["psql"] = problems[EACH] = "psql is not installed"
    tools = {}
    for name in wanted:
        reason = problems.get(name, "")
        tools[name] = Tool(name, available=not reason, reason=reason)
        if not reason:
            tools[name].version = _version(command(name, "bench_x", Path("."), version=True))
    sqitch_home = TOOLS / "sqitch-home"
    sqitch_home.mkdir(exist_ok=True)
    if "sqitch" in tools:
        tools["sqitch"].env = {"HOME": str(sqitch_home), "SQITCH_FULLNAME": "Bench", "SQITCH_EMAIL": "bench@localhost"}
    return tools


# ---------------------------------------------------------------- layouts


def _v(m: Migration) -> str:
    return f"{m.version:05d}"


def one_tx(path: Path) -> list[str]:
    """psql applying one file in one transaction (add -d URL): the per-file floor's process."""
    return [*PSQL, "-1", "-f", str(path)]


def sql_name(m: Migration) -> str:
    """The file name runner, yoyo and the psql floors give a migration."""
    return f"{_v(m)}_{m.slug}.sql"


def layout(tool: str, migrations: list[Migration], folder: Path) -> None:
    """Write the workload in the tool's own format under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    writers = {"runner": _runner_files, "psql": _psql_files, EACH: _psql_files, "dbmate": _dbmate_files,
               "yoyo": _runner_files, "sqitch": _sqitch_files, "postgrator": _postgrator_files}  # fmt: skip
    writers[tool](migrations, folder)


def _runner_files(migrations: list[Migration], folder: Path) -> None:
    """runner's and yoyo's (yoyo sorts by file name; a migration's id is the file's stem)."""
    for m in migrations:
        (folder / sql_name(m)).write_text(m.sql)


def _psql_files(migrations: list[Migration], folder: Path) -> None:
    """The floors (no tracking table): all.psql for one psql process, each file between BEGIN and
    COMMIT; each.sh for one `psql -1 -f` process per file, the database's URL as its argument."""
    script, each = [], ["set -e"]
    for m in migrations:
        path = folder / sql_name(m)
        path.write_text(m.sql)
        script.append(f"BEGIN;\n\\i '{path}'\nCOMMIT;\n")
        each.append(shlex.join(one_tx(path)) + ' -d "$1"')
    (folder / "all.psql").write_text("".join(script))
    (folder / "each.sh").write_text("\n".join(each) + "\n")


def _dbmate_files(migrations: list[Migration], folder: Path) -> None:
    target = folder / "db" / "migrations"
    target.mkdir(parents=True, exist_ok=True)
    for m in migrations:
        (target / f"{_v(m)}_{m.slug}.sql").write_text(f"-- migrate:up\n{m.sql}\n-- migrate:down\n")


def _sqitch_files(migrations: list[Migration], folder: Path) -> None:
    """A sqitch project; deploy scripts carry their own BEGIN/COMMIT, as `sqitch add` templates do."""
    for sub in ("deploy", "revert", "verify"):
        (folder / sub).mkdir(exist_ok=True)
    (folder / "sqitch.conf").write_text("[core]\n\tengine = pg\n")
    plan = ["%syntax-version=1.0.0", "%project=bench", ""]
    for m in migrations:
        change = f"c{_v(m)}"
        (folder / "deploy" / f"{change}.sql").write_text(f"BEGIN;\n{m.sql}\nCOMMIT;\n")
        (folder / "revert" / f"{change}.sql").write_text("SELECT 1;\n")
        (folder / "verify" / f"{change}.sql").write_text("SELECT 1;\n")
        plan.append(f"{change} 2024-01-01T00:00:00Z Bench <bench@localhost> # {m.slug}")
    (folder / "sqitch.plan").write_text("\n".join(plan) + "\n")


def _postgrator_files(migrations: list[Migration], folder: Path) -> None:
    for m in migrations:
        (folder / f"{_v(m)}.do.{m.slug}.sql").write_text(m.sql)


# ---------------------------------------------------------------- commands


def _dist_version(venv: Path, dist: str) -> list[str]:
    code = f"import importlib.metadata as m; print('{dist}', m.version('{dist}'))"
    return [str(venv / "bin" / "python"), "-c", code]


def command(tool: str, db: str, folder: Path, *, version: bool = False) -> list[str]:
    """The whole-process command that applies whatever is pending in ``folder`` to ``db``."""
    if tool == "runner":
        if version:
            return _dist_version(ROOT / ".venv", "runner")
        return [str(RUNNER), "migrate", "--dsn", url(db), "--dir", str(folder)]
    if tool in FLOORS and version:
        return ["psql", "--version"]
    if tool == FLOOR:
        return [*PSQL, "-d", url(db), "-f", str(folder / "all.psql")]
    if tool == EACH:
        return ["sh", str(folder / "each.sh"), url(db)]
    if tool == "dbmate":
        if version:
            return [str(DBMATE), "--version"]
        migrations = str(folder / "db" / "migrations")
        return [str(DBMATE), "--url", url(db) + "?sslmode=disable", "--migrations-dir", migrations,
                "--no-dump-schema", "migrate"]  # fmt: skip
    if tool == "yoyo":
        yoyo = str(YOYO_VENV / "bin" / "yoyo")
        if version:
            return _dist_version(YOYO_VENV, "yoyo-migrations")
        return [yoyo, "apply", "--batch", "--no-config-file", "--database", url(db), str(folder)]
    if tool == "sqitch":
        if version:
            return ["sqitch", "--version"]
        return ["sqitch", "--chdir", str(folder), "deploy", "--no-verify", f"db:pg://{USER}@{HOST}:{PORT}/{db}"]
    if tool == "postgrator":
        postgrator = str(NODE_BIN / "postgrator")
        if version:
            return [postgrator, "--version"]
        return [postgrator, "--no-config", "-r", "pg", "-h", HOST, "-o", str(PORT), "-d", db, "-u", USER,
                "-p", "bench", "-m", f"{folder}/*.sql"]  # fmt: skip
    raise ValueError(tool)


# ---------------------------------------------------------------- fleets (W9, W10)

TRACKING = {"runner": "runner_migrations", "dbmate": "schema_migrations"}  # a row per applied file


def loop(tool: str, targets_file: Path, folder: Path) -> list[str]:
    """The serial fleet run: ``folder`` applied to each database of ``targets_file`` (a URL a line) in turn."""
    body = {
        "runner": f'{shlex.quote(str(RUNNER))} migrate --dsn "$line" --dir {shlex.quote(str(folder))}',
        "dbmate": f'{shlex.quote(str(DBMATE))} --url "$line?sslmode=disable" --migrations-dir '
        f"{shlex.quote(str(folder / 'db' / 'migrations'))} --no-dump-schema migrate",
        FLOOR: shlex.join([*PSQL, "-f", str(folder / "all.psql")]) + ' -d "$line"',
        EACH: f'set -- "$line"; . {shlex.quote(str(folder / "each.sh"))}',
    }[tool]
    return each_line(body, targets_file)


def each_line(body: str, lines: Path) -> list[str]:
    """One bash process running ``body`` for each line of ``lines`` (as $line) in turn, stopping at the first
    failure: a loop that pays no shell start-up per line."""
    script = f'set -e\nwhile IFS= read -r line <&3; do\n  {body}\ndone 3< "$1"\n'
    return ["bash", "-c", script, "fleet-loop", str(lines)]
