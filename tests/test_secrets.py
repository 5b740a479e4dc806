"""No secret ever leaves: one password through every command, every way of giving it, and every path.

The database is a private cluster of the embedded binaries with SCRAM logins, so the password is
really checked: the right one works, a wrong one is refused. Every run is the real ``runner`` command,
called in this process (``runner.cli.main`` with ``sys.argv`` set) so that a thousand runs take
seconds, with psql's own output caught at the file descriptors. No piece of either password may
appear in any output, and each run must end with its expected exit code, so that a run which broke
early cannot pass by saying nothing.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from helpers import cli_env, no_database_env, remove_embedded, runner_cli, write
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from runner import db, embedded
from runner.cli import main
from runner.errors import RunnerError

A, B = "Kq7Tuba", "Zx9Oboe"
RIGHT = f"{A}-{B}"  # the cluster's password
WRONG = "Wr0ngKazoo-Vb4Fife"
NEVER = (A, B, "Wr0ngKazoo", "Vb4Fife")  # every piece of either password


# --- what libpq really says ---------------------------------------------------------------------------------------

# Connection strings whose error, as libpq words it, quotes the password or a piece of it (checked below,
# so each case is real), and what libpq says.
# fmt: off
QUOTED_BY_LIBPQ = [
    (f"postgresql://bob:50%off{A}@127.0.0.1:1/app", f'invalid percent-encoded token: "50%off{A}"'),
    (f"postgresql://bob:{A}%zz@127.0.0.1:1/app", f'invalid percent-encoded token: "{A}%zz"'),
    (f"postgresql://bob:{A}%00@127.0.0.1:1/app", f'forbidden value %00 in percent-encoded value: "{A}%00"'),
    (f"postgresql://bob@127.0.0.1:1/app?password={A}%zz", f'invalid percent-encoded token: "{A}%zz"'),
    (f"postgresql://bob:{A} {B}@127.0.0.1:1/app", f'unexpected spaces found in "{A} {B}", use percent-encoded'),
    (f"postgresql://bob@127.0.0.1:1/app?password={A} {B}", f'unexpected spaces found in "{A} {B}"'),
    # libpq decodes a parameter's name as well as its value
    (f"postgresql://bob@127.0.0.1:1/app?pass%77ord={A}%zz", f'invalid percent-encoded token: "{A}%zz"'),
    (f"postgresql://bob@127.0.0.1:1/app?%70assword={A} {B}", f'unexpected spaces found in "{A} {B}"'),
    (f"postgresql://bob@127.0.0.1:1/app?password={A}&{B}", f'missing key/value separator "=" in URI query '
                                                          f'parameter: "{B}"'),
    (f"postgresql://bob@127.0.0.1:1/app?password={A}&{B}=1", f'invalid URI query parameter: "{B}"'),
    (f"postgresql://bob:{A}@[::1/app", f'matching "]" in IPv6 host address in URI: "postgresql://bob:{A}@[::1/app"'),
    (f"host=127.0.0.1 user=bob password={A} {B} dbname=app", f'missing "=" after "{B}" in connection info string'),
    (f"host=127.0.0.1 user=bob password={A} {B}=1 dbname=app", f'invalid connection option "{B}"'),
    # libpq reads this one, with a piece of the password as the port, and says so when connecting
    (f"postgresql://bob:{B}/{A}@127.0.0.1:1/app", f'invalid integer value "{B}" for connection option "port"'),
]
# fmt: on


def _libpq_says(dsn: str) -> str:
    """libpq's own words, without psycopg in between (which resolves host names itself)."""
    conn = pq.PGconn.connect(f"{dsn} connect_timeout=2".encode() if "://" not in dsn else dsn.encode())
    try:
        assert conn.status == pq.ConnStatus.BAD, f"libpq accepted {dsn}"
        return conn.error_message.decode()
    finally:
        conn.finish()


@pytest.mark.parametrize(("dsn", "said"), QUOTED_BY_LIBPQ)
def test_what_libpq_quotes_of_a_bad_connection_string_is_redacted(dsn: str, said: str) -> None:
    message = _libpq_says(dsn)
    assert said in message, message  # libpq really quotes it: the case is not made up
    for text in (db.redact(message, dsn), db.error_text(Exception(message), dsn)):
        assert not [piece for piece in NEVER if piece in text], text
    with pytest.raises(RunnerError) as raised:
        db.connect(dsn).close()
    assert raised.value.exit_code == 2 and not [piece for piece in NEVER if piece in str(raised.value)]


def test_redact_keeps_what_is_not_secret() -> None:
    assert db.redact(f"postgresql://bob:{A}@h/app?sslmode=require&password={B}&application_name=x") == (
        "postgresql://bob:***@h/app?sslmode=require&password=***&application_name=x"
    )
    assert db.redact(f"host=h password='{A} {B}' sslpassword={B} user=bob") == (
        "host=h password=*** sslpassword=*** user=bob"
    )
    said = 'connection to server at "127.0.0.1", port 1 failed: Connection refused'
    assert db.redact(said, "host=127.0.0.1 port=1 password=pw") == said  # a short password spares other words


# --- the matrix ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    socket: str
    port: int

    def url(self, password: str | None, dbname: str = "app", port: object = None) -> str:
        auth = f"postgres:{password}" if password is not None else "postgres"
        return f"postgresql://{auth}@/{dbname}?host={self.socket}&port={port or self.port}"

    def keywords(self, password: str, dbname: str = "app", port: object = None) -> str:
        return f"host={self.socket} port={port or self.port} user=postgres password={password} dbname={dbname}"

    def query(self, password: str, dbname: str = "app", port: object = None) -> str:
        return f"{self.url(None, dbname, port)}&password={password}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A private cluster that checks passwords (SCRAM), with a database ``app`` to migrate."""
    project = tmp_path_factory.mktemp("secrets") / "cluster"
    project.mkdir()
    lay = embedded.layout(project)
    try:
        embedded.init_cluster(lay, password=RIGHT)
        embedded.start(lay)
        found = Cluster(str(lay.socket_dir), embedded.PORT)
        with psycopg.connect(found.url(RIGHT, "postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
        yield found
    finally:
        remove_embedded(project)


@dataclass(frozen=True)
class Way:
    """One way the password reaches runner, and how that run should end."""

    form: str
    outcome: str  # ok; refused (the server says no); bad (runner refuses the string); value (a bad option value)
    dsn: str | None = None  # given with --dsn
    env: dict[str, str] = field(default_factory=dict)  # DATABASE_URL, PGPASSWORD
    pyproject: str | None = None  # database-url in pyproject.toml


def _ways(c: Cluster) -> list[Way]:
    ways: list[Way] = []
    for name, build in (("url", c.url), ("keywords", c.keywords), ("query", c.query)):
        give = (lambda dsn: {"dsn": dsn}) if name != "query" else (lambda dsn: {"env": {"DATABASE_URL": dsn}})
        ways += [
            Way(name, "ok", **give(build(RIGHT))),
            Way(name, "refused", **give(build(WRONG))),
            Way(name, "refused", **give(build(RIGHT, dbname="no_such_database"))),
            Way(name, "refused", **give(build(RIGHT, port=1))),  # no server there
            Way(name, "value", **give(build(RIGHT, port="abc"))),
        ]
    bad = [c.url(f"{A}%zz{B}"), c.url(f"50%off{A}-{B}"), c.url(f"{A}%00{B}"), c.url(f"{A} {B}"),
           f"postgresql://postgres:{RIGHT}@[::1/app", c.keywords(f"{A} {B}"), c.keywords(f"'{A} {B}"),
           c.keywords(f"{A} {B}=1"), c.query(f"{A}%zz"), c.query(f"{A}&{B}"), c.query(f"{A} {B}")]  # fmt: skip
    ways += [Way("bad string", "bad", dsn=dsn) for dsn in bad]
    ways += [Way("bad string", "bad", env={"DATABASE_URL": dsn}) for dsn in bad[::3]]
    plain = c.url(None)
    for password, outcome in ((RIGHT, "ok"), (WRONG, "refused"), (f"{A} {B}", "refused")):
        ways.append(Way("PGPASSWORD", outcome, env={"DATABASE_URL": plain, "PGPASSWORD": password}))
        ways.append(Way("pyproject and PGPASSWORD", outcome, env={"PGPASSWORD": password}, pyproject=plain))
    ways += [Way("pyproject", "bad", pyproject=c.url(RIGHT)), Way("pyproject", "bad", pyproject=c.url(f"{A}%zz")),
             Way("pyproject", "bad", pyproject=c.keywords(f"{A} {B}"))]  # fmt: skip
    return ways


COMMANDS = {  # the arguments that make each command succeed on a migrated database, run in this order
    "migrate": [], "status": [], "verify": [], "plan": [], "accept": ["--all"], "unmark": ["1"], "mark": ["1"],
    "baseline": ["1"], "history": [], "lint": [], "diff": ["--against", "{plain}"], "diff --against": [],
    "db url": [], "db shell": ["--", "-c", "SELECT 1"],
}  # fmt: skip


def _expected(command: str, way: Way) -> int:
    if way.outcome == "ok":
        return 0
    if way.outcome == "bad":
        return 2
    if command == "db url":
        return 0  # it only prints the URL: nothing to connect to
    if command == "db shell":
        return 2  # psql's own code for a connection that failed, or a bad option value
    return 5 if way.outcome == "refused" else 2


@dataclass
class Run:
    args: list[str]
    code: int
    out: str
    err: str


def _run(args: list[str], capfd: pytest.CaptureFixture[str]) -> Run:
    """``runner ARGS`` in this process; what psql prints is caught at the file descriptors."""
    out, err = io.StringIO(), io.StringIO()
    handler = signal.getsignal(signal.SIGTERM)
    sys.argv = ["runner", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    finally:
        signal.signal(signal.SIGTERM, handler)
    psql = capfd.readouterr()
    return Run(args, code, out.getvalue() + psql.out, err.getvalue() + psql.err)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name == "DATABASE_URL" or name.startswith(("PG", "RUNNER_")):
            monkeypatch.delenv(name)


def _check(run: Run, expected: int, way: Way) -> list[str]:
    """What is wrong with a run: a secret shown, a wrong exit code, a traceback, an error not on one line."""
    problems = [f"shows {piece!r}" for piece in NEVER if piece in run.out + run.err]
    if run.code != expected:
        problems.append(f"exit {run.code}, expected {expected}")
    if "Traceback" in run.out + run.err:
        problems.append("traceback")
    if run.code not in (0, 1) and run.args[:2] != ["db", "shell"]:
        if len([line for line in run.err.splitlines() if line.startswith("error: ")]) != 1:
            problems.append("not one error line")
    if "--json" in run.args and run.args[:2] != ["db", "shell"]:
        try:
            json.loads(run.out)
        except ValueError:
            problems.append("stdout is not one JSON document")
    return [f"{way.form} ({way.outcome}) `runner {' '.join(run.args)}`: {p}\n{run.out}{run.err}" for p in problems]


def test_no_password_appears_in_any_output_of_any_command(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_environment: None,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    project = tmp_path / "project"
    write(project / "sql", "0001_create_a.sql", "CREATE TABLE IF NOT EXISTS a (id int);\n")
    monkeypatch.chdir(project)
    plain = cluster.url(RIGHT)
    problems: list[str] = []
    runs = 0
    for way in _ways(cluster):
        header = "[project]\nname = 'app'\n"
        write(project, "pyproject.toml", header + (f'[tool.runner]\ndatabase-url = "{way.pyproject}"\n'
                                                   if way.pyproject else ""))  # fmt: skip
        with monkeypatch.context() as env:
            for name, value in way.env.items():
                env.setenv(name, value)
            modes = [["-v"], ["--json"]] if way.outcome == "ok" else [["-v", "--json"]]
            for mode in modes:
                for command, extra in COMMANDS.items():
                    given = ["--dsn", way.dsn] if way.dsn else []
                    if command == "diff --against":
                        if not way.dsn:
                            continue
                        args = ["diff", "--dsn", plain, "--against", way.dsn]
                    else:
                        args = [*command.split(), *given, *[a.format(plain=plain) for a in extra]]
                    if command == "db shell":
                        if mode != modes[0]:
                            continue  # it takes neither -v nor --json: what follows "--" goes to psql
                    else:
                        args += mode
                    run = _run(args, capfd)
                    runs += 1
                    problems += _check(run, _expected(command, way), way)
        if way.dsn and way.outcome in ("ok", "bad"):  # typed without --dsn: a usage error that quotes it
            problems += _check(_run(["migrate", way.dsn], capfd), 2, way)
    assert not problems, f"{len(problems)} of {runs} runs:\n" + "\n".join(problems[:10])
    assert runs > 500


# --- db shell: the password is on no command line -----------------------------------------------------------------


def _psql_args_while(process: subprocess.Popen[str]) -> list[str]:
    """Every command line of the machine, in full (ww), sampled until psql shows up among them."""
    while process.poll() is None:
        seen = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
        if any("psql" in line and "--dbname=" in line for line in seen):
            return seen
        time.sleep(0.05)
    raise AssertionError("psql never ran")


@pytest.mark.parametrize("form", ["url", "keywords", "query"])
def test_db_shell_hands_psql_the_password_where_ps_cannot_see_it(cluster: Cluster, tmp_path: Path, form: str) -> None:
    dsn = getattr(cluster, form)(RIGHT)
    env = no_database_env(DATABASE_URL=dsn)
    command = [sys.executable, "-m", "runner", "db", "shell", "--", "-c", "SELECT pg_sleep(1.5) IS NULL AS slept"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    seen = _psql_args_while(process)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err  # psql logged in: it found the password in its environment
    assert "slept" in out
    ours = [line for line in seen if "psql" in line and "--dbname=" in line]
    assert ours and all(piece not in line for line in seen for piece in NEVER), ours


def test_db_shell_refuses_a_string_libpq_cannot_read_without_quoting_it(tmp_path: Path) -> None:
    result = runner_cli("db", "shell", "--dsn", f"postgresql://bob:{A}%zz@127.0.0.1:1/app", cwd=tmp_path,
                        env=no_database_env())  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("error: the connection string is not valid: ")
    assert 'invalid percent-encoded token: "***"' in result.stderr and A not in result.stdout + result.stderr


# --- which database -----------------------------------------------------------------------------------------------


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def test_verbose_says_a_pgpassword_alone_chose_libpqs_server_over_the_embedded_one(tmp_path: Path) -> None:
    env = no_database_env(PGPASSWORD=RIGHT)
    result = runner_cli("status", "-v", "--dir", "missing", cwd=tmp_path, env=env)  # stops before connecting
    user = _user()
    assert f"Database: {user}@[local]:5432/{user} from libpq's environment (PGPASSWORD is set), not the " \
           "embedded PostgreSQL\n" in result.stderr  # fmt: skip
    assert RIGHT not in result.stdout + result.stderr


def test_verbose_names_the_server_and_where_it_came_from(tmp_path: Path) -> None:
    given = runner_cli("status", "-v", "--dir", "missing", "--dsn", f"postgresql://bob:{RIGHT}@db.internal:6432/app",
                       cwd=tmp_path, env=no_database_env())  # fmt: skip
    assert "Database: bob@db.internal:6432/app (from --dsn)\n" in given.stderr and RIGHT not in given.stderr
    libpq = runner_cli("status", "-v", "--dir", "missing", cwd=tmp_path,
                       env=no_database_env(PGHOST="db.internal", PGUSER="app", PGDATABASE="app"))  # fmt: skip
    assert "Database: app@db.internal:5432/app from libpq's environment (PGHOST, PGDATABASE, PGUSER are set), " \
           "not the embedded PostgreSQL\n" in libpq.stderr  # fmt: skip
    nothing = runner_cli("status", "-v", "--dir", "missing", cwd=tmp_path, env=no_database_env())
    assert "Database: the embedded PostgreSQL (no --dsn, DATABASE_URL, database-url or PG* variable is set)\n" \
           in nothing.stderr  # fmt: skip


def test_db_url_says_why_libpqs_environment_was_chosen(tmp_path: Path) -> None:
    env = no_database_env(PGPASSWORD=RIGHT)
    shown = runner_cli("db", "url", cwd=tmp_path, env=env)
    user = _user()
    assert (shown.returncode, shown.stdout) == (0, "postgresql:///\n")
    assert shown.stderr == f"note: runner uses {user}@[local]:5432/{user} from libpq's environment (PGPASSWORD is " \
                           "set), not the embedded PostgreSQL\n"  # fmt: skip
    doc = json.loads(runner_cli("db", "url", "--json", cwd=tmp_path, env=env).stdout)
    assert doc == {"url": "postgresql:///", "source": "libpq environment", "reason": "PGPASSWORD is set",
                   "running": None, "kept": False}  # fmt: skip


def test_db_url_refuses_a_string_libpq_cannot_read(tmp_path: Path) -> None:
    result = runner_cli("db", "url", "--dsn", f"host=h user=bob password={A} {B} dbname=app", cwd=tmp_path,
                        env=cli_env())  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == 'error: the connection string is not valid: missing "=" after "***" in connection ' \
                            "info string; expected postgresql://user@host:port/dbname\n"  # fmt: skip


def test_the_password_list_covers_each_part_libpq_may_quote() -> None:
    assert set(db.secrets(f"host=h password={A} {B} dbname=app")) >= {A, B}
    assert set(db.secrets(f"postgresql://u:{A}/{B}@h/app")) >= {A, B, f"{A}/{B}"}
    assert set(db.secrets(f"postgresql://u@h/app?password={A}%zz&{B}&sslmode=require")) >= {f"{A}%zz", B}
    assert "app" not in db.secrets(f"host=h password={A} dbname=app")
    assert conninfo_to_dict(f"password='{A} {B}'")["password"] in db.secrets(f"password='{A} {B}'")
