"""The command line itself: progress on a terminal and in a log, --quiet and --verbose, NO_COLOR,
--version, shell completion, help, the README's commands, and `runner db url/start/stop`.

A terminal is a real pseudo-terminal (Python's pty module) with the real command on it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import typer
from helpers import ROOT, assert_clean_error, cli_env, no_database_env, on_terminals, query, runner_cli, write

from runner import cli, embedded

SGR = re.compile(r"\x1b\[[0-9;]*m")  # colour and style: what NO_COLOR forbids
ESCAPE = re.compile(r"\x1b")
BIN = Path(sys.executable).parent


def terminal_env(**extra: str) -> dict[str, str]:
    """A colour terminal, whatever the environment the tests run in says."""
    env = {k: v for k, v in cli_env().items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS", "LINES")}
    return {**env, "TERM": "xterm-256color", **extra}


def slow_files(folder: Path, count: int = 3) -> list[str]:
    names = [f"{n}_step_{n}.sql" for n in range(1, count + 1)]
    for n, name in enumerate(names, 1):
        write(folder, name, f"SELECT pg_sleep(0.4);\nCREATE TABLE IF NOT EXISTS step_{n} (id int);\n")
    return names


def migrate(dsn: str, folder: Path, *extra: str):  # type: ignore[no-untyped-def]
    return runner_cli("migrate", "--dsn", dsn, "--dir", folder, *extra)


# Progress.


def test_a_terminal_gets_a_progress_bar_and_the_line_of_each_file(dsn: str, migrations: Path) -> None:
    names = slow_files(migrations)
    code, shown, _ = on_terminals("migrate", "--dsn", dsn, "--dir", migrations, cwd=ROOT, env=terminal_env())
    assert code == 0, shown
    assert "\x1b[?25l" in shown, "rich hid the cursor to draw the bar"
    assert "━" in shown and "Applying 2_step_2.sql" in shown and "1/3" in shown
    text = ESCAPE.sub("", shown)
    for name in names:
        assert f"Completed: {name} (" in text
    assert "Applied 3 migration(s)" in text
    assert SGR.search(shown), "a colour terminal gets colour"
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(3,)]


def test_no_color_on_a_terminal_keeps_the_bar_and_drops_every_colour(dsn: str, migrations: Path) -> None:
    slow_files(migrations)
    write(migrations, "9_fails.sql", "SELECT 1 / 0;\n")
    code, shown, _ = on_terminals("migrate", "--dsn", dsn, "--dir", migrations, cwd=ROOT,
                                  env=terminal_env(NO_COLOR="1"))  # fmt: skip
    assert code == 3, shown
    assert "━" in shown and "Applying 2_step_2.sql" in shown, "the bar is not colour: it stays"
    assert not SGR.search(shown), repr(SGR.findall(shown))
    assert "error: 9_fails.sql failed" in shown


def test_a_dumb_terminal_gets_plain_lines_and_no_escape_code(dsn: str, migrations: Path) -> None:
    slow_files(migrations, 2)
    code, shown, _ = on_terminals("migrate", "--dsn", dsn, "--dir", migrations, cwd=ROOT,
                                  env=terminal_env(TERM="dumb", NO_COLOR="1"))  # fmt: skip
    assert code == 0, shown
    assert not ESCAPE.search(shown), repr(shown)
    assert shown.replace("\r\n", "\n").splitlines()[0] == "Running 2 pending migration(s)…"


def test_a_pipe_gets_one_plain_line_per_file(dsn: str, migrations: Path) -> None:
    names = slow_files(migrations, 2)
    result = runner_cli("migrate", "--dsn", dsn, "--dir", migrations, env=terminal_env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Running 2 pending migration(s)…" and lines[-1] == "Applied 2 migration(s)"
    assert [line.split(" (")[0] for line in lines[1:-1]] == [f"Completed: {name}" for name in names]
    assert not ESCAPE.search(result.stdout + result.stderr)


def test_json_on_terminals_is_the_document_alone_and_no_bar(dsn: str, migrations: Path) -> None:
    slow_files(migrations, 2)
    code, out, err = on_terminals("migrate", "--dsn", dsn, "--dir", migrations, "--json", cwd=ROOT,
                                  env=terminal_env(), split=True)  # fmt: skip
    assert code == 0, out + err
    assert [a["name"] for a in json.loads(out)["applied"]] == ["1_step_1.sql", "2_step_2.sql"]
    assert "━" not in out + err and "\x1b[?25l" not in out + err
    assert "Completed: 1_step_1.sql" in err  # the progress lines go to stderr, as before


def test_quiet_says_only_warnings_and_errors(dsn: str, migrations: Path) -> None:
    slow_files(migrations, 1)
    first = migrate(dsn, migrations, "--quiet")
    assert (first.returncode, first.stdout, first.stderr) == (0, "", "")
    write(migrations, "1_step_1.sql", "SELECT 2;\n")  # edited after it was applied: a warning
    write(migrations, "2_next.sql", "SELECT 1 / 0;\n")
    second = migrate(dsn, migrations, "-q")
    assert second.stdout == ""
    assert second.stderr.startswith("warning: 1_step_1.sql changed after it was applied")
    assert_clean_error(second, 3, "2_next.sql failed")
    shown = runner_cli("status", "--dsn", dsn, "--dir", migrations, "-q")
    assert "1_step_1.sql" in shown.stdout, "the answer to the question stays"


def test_quiet_on_a_terminal_draws_no_bar(dsn: str, migrations: Path) -> None:
    slow_files(migrations, 2)
    code, shown, _ = on_terminals("migrate", "--dsn", dsn, "--dir", migrations, "-q", cwd=ROOT, env=terminal_env())
    assert (code, shown) == (0, "")


def test_verbose_adds_each_file_as_it_starts_its_statements_the_settings_and_the_time(
    dsn: str, migrations: Path
) -> None:
    names = slow_files(migrations, 2)
    with_password = f"{dsn} password=Never-Sh0wn"  # trust authentication: the password is not asked for
    result = migrate(with_password, migrations, "--verbose")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == f"Applying {names[0]} (1/2)…"
    assert re.fullmatch(r"Completed: 1_step_1\.sql \(\d+ ms, 2 statement\(s\)\)", result.stdout.splitlines()[2])
    assert "  database-url = " in result.stderr and "password=*** (--dsn)" in result.stderr
    assert "  lock-wait = 120 (default)" in result.stderr
    assert re.search(r"^Done in \d+\.\d\d s$", result.stderr, re.MULTILINE)
    assert "Never-Sh0wn" not in result.stdout + result.stderr


def test_quiet_and_verbose_together_is_a_usage_error(dsn: str, migrations: Path) -> None:
    result = migrate(dsn, migrations, "--quiet", "--verbose")
    assert_clean_error(result, 2, "--quiet and --verbose cannot be used together", "runner migrate --help")


# --version, completion, help.


def test_version() -> None:
    result = runner_cli("--version")
    assert (result.returncode, result.stdout) == (0, f"runner {importlib.metadata.version('runner')}\n")


SCRIPTS = {
    "bash": "complete -o default -F _runner_completion runner",
    "zsh": "#compdef runner",
    "fish": "complete --command runner",
}


@pytest.mark.parametrize("shell", sorted(SCRIPTS))
def test_the_completion_script_of_each_shell_is_for_the_runner_command(shell: str) -> None:
    """--show-completion prints the script of the shell it runs in; the variable asks for any shell's."""
    result = runner_cli(env=cli_env(_RUNNER_COMPLETE=f"source_{shell}"))
    assert result.returncode == 0, result.stderr
    assert SCRIPTS[shell] in result.stdout and "_RUNNER_COMPLETE=complete_" in result.stdout


def test_show_completion_in_bash_prints_the_bash_script() -> None:
    command = f"{shlex.quote(sys.executable)} -m runner --show-completion; true"  # `; true`: bash stays the parent
    done = subprocess.run(["bash", "--norc", "-c", command], capture_output=True, text=True, env=cli_env(), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert SCRIPTS["bash"] in done.stdout


def test_completion_completes_commands_sub_commands_and_options() -> None:
    def complete(words: str) -> list[str]:
        env = cli_env(_RUNNER_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1))
        return runner_cli(env=env).stdout.split()

    assert complete("runner mi") == ["migrate"]
    assert complete("runner db s") == ["shell", "start", "stop"]
    assert "--lock-timeout" in complete("runner migrate --lock")


def test_bash_completes_with_the_script_it_was_given(tmp_path: Path) -> None:
    """The real protocol: bash sources the script and asks it, the way a terminal's Tab does."""
    assert shutil.which("runner", path=str(BIN)), "the runner script is installed beside this Python"
    script = runner_cli(env=cli_env(_RUNNER_COMPLETE="source_bash")).stdout
    write(tmp_path, "completion.bash", script)
    asks = f"source {tmp_path / 'completion.bash'}; COMP_WORDS=(runner db u); COMP_CWORD=2; " \
           "_runner_completion runner; echo ${COMPREPLY[@]}"  # fmt: skip
    env = {**cli_env(), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "--norc", "-c", asks], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.split() == ["url"], done.stderr


def _commands() -> Iterator[tuple[list[str], object]]:
    """Every command and group under runner, with its path: ['db', 'url'] and so on."""

    def walk(path: list[str], command: object) -> Iterator[tuple[list[str], object]]:
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk([*path, name], sub)

    yield from walk([], typer.main.get_command(cli.app))


def test_every_command_has_help_and_an_example() -> None:
    found = list(_commands())
    assert {" ".join(p) for p, _ in found} >= {"", "migrate", "db", "db shell", "db url", "db start", "db stop"}
    for path, command in found:
        assert (getattr(command, "help", None) or "").strip(), f"runner {' '.join(path)} has no help text"
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda p: runner_cli(*p, "--help"), [p for p, _ in found]))
    for (path, _), result in zip(found, results, strict=True):
        assert result.returncode == 0, (path, result.stderr)
        assert re.search(r"^\s*Example: \S", result.stdout, re.MULTILINE), f"runner {' '.join(path)} --help: no Example"


def readme_commands(text: str) -> list[list[str]]:
    """Every `runner ...` command of a fenced block, as words from `runner` on (after any VAR=value),
    cut at the first shell operator. In a ``console`` block only `$ ` lines are commands: the rest
    is their output (`runner 0.1.0`)."""
    found: list[list[str]] = []
    block = None  # the info string of the fenced block we are in
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            block = line.strip().removeprefix("```") if block is None else None
            continue
        command = line.strip()
        if block is None or (block == "console" and not command.startswith("$ ")):
            continue
        try:
            words = shlex.split(re.split(r"\s(?:\||&&|;|>|2>|<)\s", command.removeprefix("$ "))[0])
        except ValueError:  # not shell: an unbalanced quote
            continue
        while words and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words.pop(0)
        if len(words) > 1 and words[0] == "runner" and words not in found:
            found.append(words)
    return found


def test_every_runner_command_in_the_readme_exists() -> None:
    """Its options too: --help goes right after the command's name, and an unknown option fails first.
    An option of runner itself (--version, --show-completion ...) must be listed by `runner --help`."""
    asked: list[tuple[list[str], str]] = []  # (what to run, what its output must contain)
    for words in readme_commands((ROOT / "README.md").read_text("utf-8")):
        if words[1].startswith("-"):
            asked.append((["--help"], words[1]))
        else:
            path = words[1:3] if words[1] == "db" else words[1:2]
            asked.append(([*path, "--help", *words[1 + len(path) :]], "Usage: runner"))
    assert len(asked) > 10
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda item: runner_cli(*item[0]), asked))
    missing = [" ".join(["runner", *args]) for (args, needle), result in zip(asked, results, strict=True)
               if result.returncode != 0 or needle not in result.stdout]  # fmt: skip
    assert not missing, f"README commands that runner does not have: {missing}"


# runner db url / start / stop.


SECRET = "Hunter2-Secret"
LIBPQ = {"PGHOST": "db.internal", "PGPORT": "6432", "PGUSER": "app", "PGDATABASE": "app", "PGPASSWORD": SECRET}


@pytest.mark.parametrize(
    ("args", "env", "shown"),
    [
        (("--dsn", f"postgresql://app:{SECRET}@db.internal:6432/app"), {}, "postgresql://app:***@db.internal:6432/app"),
        ((), {"DATABASE_URL": f"postgresql://app:{SECRET}@db.internal/app"}, "postgresql://app:***@db.internal/app"),
        (("--dsn", f"host=db.internal password='{SECRET}' user=app"), {}, "host=db.internal password=*** user=app"),
        ((), LIBPQ, "postgresql://app@db.internal:6432/app"),
    ],
)
def test_db_url_never_prints_a_password(tmp_path: Path, args: tuple[str, ...], env: dict[str, str], shown: str) -> None:
    result = runner_cli("db", "url", *args, cwd=tmp_path, env=no_database_env(**env))
    assert (result.returncode, result.stdout) == (0, shown + "\n"), result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_db_url_of_the_pyproject_database_names_its_source(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[tool.runner]\ndatabase-url = "postgresql://app@db.internal/app"\n')
    result = runner_cli("db", "url", "--json", cwd=tmp_path, env=no_database_env())
    assert json.loads(result.stdout) == {"url": "postgresql://app@db.internal/app", "source": "pyproject.toml",
                                         "reason": "from pyproject.toml", "running": None, "kept": False}  # fmt: skip


@pytest.fixture
def project(embedded_project: Path) -> Path:
    write(embedded_project / "sql", "0001_create_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    return embedded_project


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_db_start_keeps_the_embedded_server_up_for_db_url_until_db_stop(project: Path) -> None:
    env = no_database_env()
    before = runner_cli("db", "url", cwd=project, env=env)
    assert before.returncode == 0, before.stderr
    url = before.stdout.strip()
    assert url.startswith("postgresql://postgres@/postgres?host=/") and url.endswith(f"&port={embedded.PORT}")
    assert "is not running" in before.stderr and "`runner db start`" in before.stderr
    assert not _answers(url)

    started = runner_cli("db", "start", cwd=project, env=env, timeout=300)
    assert started.returncode == 0, started.stderr
    assert "is running, and stays up until `runner db stop`" in started.stdout
    assert _answers(url), "the server outlives the command that started it"
    after = runner_cli("db", "url", "--json", cwd=project, env=env)
    assert json.loads(after.stdout) == {
        "url": url,
        "source": "embedded",
        "running": True,
        "kept": True,
        "reason": "no --dsn, DATABASE_URL, database-url or PG* variable is set",
    }
    assert after.stderr == ""

    migrated = runner_cli("migrate", cwd=project, env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert _answers(url), "a runner leaving does not stop a kept server"
    assert query(url, "SELECT name FROM runner_migrations") == [("0001_create_things.sql",)]

    again = runner_cli("db", "start", cwd=project, env=no_database_env(DATABASE_URL="postgresql://app@db/app"))
    assert again.returncode == 0, again.stderr
    assert "note: DATABASE_URL is set, so the other commands use that database, not this one" in again.stderr

    stopped = runner_cli("db", "stop", cwd=project, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith("Stopped the embedded PostgreSQL in ")
    assert not _answers(url)
    twice = runner_cli("db", "stop", cwd=project, env=env)
    assert (twice.returncode, "is not running" in twice.stdout) == (0, True)


def test_db_stop_leaves_a_server_in_use_to_its_last_user(project: Path) -> None:
    env = no_database_env()
    assert runner_cli("db", "start", cwd=project, env=env, timeout=300).returncode == 0
    with embedded.server(project) as url:  # another runner, still working
        stopping = runner_cli("db", "stop", cwd=project, env=env)
        assert stopping.returncode == 0, stopping.stderr
        assert "in use by another runner, which stops it when it finishes" in stopping.stdout
        assert _answers(url)
    assert not embedded._running(embedded.layout(project)), "the last one out stopped it, as db stop asked"


def test_a_keep_note_from_an_earlier_server_keeps_nothing_up(project: Path) -> None:
    """After a reboot or a crash the note names a server that is gone; the next one stops as usual."""
    env = no_database_env()
    assert runner_cli("db", "start", cwd=project, env=env, timeout=300).returncode == 0
    lay = embedded.layout(project)
    embedded.stop(lay)  # as a reboot would
    assert (lay.state_dir / embedded.KEEP_FILE).read_text().strip()
    migrated = runner_cli("migrate", cwd=project, env=env, timeout=300)
    assert migrated.returncode == 0, migrated.stderr
    assert not embedded._running(lay)
