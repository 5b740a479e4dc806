"""Helpers for tests: run the real command, query a database, write migration files."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = ROOT / "sql"


def query(dsn: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a runner subprocess: no DATABASE_URL unless a test gives one."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(extra)
    return env


def remove_embedded(project: Path) -> None:
    """Stop a test project's embedded server and, as root (the data then lives outside the project), remove it."""
    from runner import embedded

    lay = embedded.layout(project)
    embedded.stop(lay)
    if lay.uid is not None:
        shutil.rmtree(lay.data_dir.parent, ignore_errors=True)


def no_database_env(**extra: str) -> dict[str, str]:
    """The environment of a runner that has no database given, neither a URL nor libpq's PG* variables."""
    return {**{k: v for k, v in cli_env().items() if not k.startswith("PG")}, **extra}


def runner_cli(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the real ``runner`` command in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *map(str, args)],
        capture_output=True, text=True, cwd=cwd or ROOT, env=env or cli_env(), timeout=timeout,
    )  # fmt: skip


def write(folder: Path, name: str, text: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """A user mistake: the documented exit code, one error line, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def _terminal(columns: int) -> tuple[int, int]:
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    return main, side


def on_terminals(*args: str | Path, cwd: Path, env: dict[str, str], split: bool = False, columns: int = 120,
                 answer: str | signal.Signals | None = None, timeout: float = 120) -> tuple[int, str, str]:  # fmt: skip
    """Run the real command with stdout and stderr on a pseudo-terminal ``columns`` wide (each its own with
    ``split``, else one, as in a terminal window); its exit code, and what each terminal showed.

    With ``answer``, stdin is that terminal too, and ``answer`` is typed when a ``[y/N]`` question shows (a
    signal is sent instead, as Ctrl-C in the terminal would).
    """
    out_main, out_side = _terminal(columns)
    err_main, err_side = _terminal(columns) if split else (out_main, out_side)
    command = [sys.executable, "-m", "runner", *map(str, args)]
    stdin = out_side if answer is not None else subprocess.DEVNULL
    process = subprocess.Popen(command, stdin=stdin, stdout=out_side, stderr=err_side, cwd=cwd, env=env)
    os.close(out_side)
    if split:
        os.close(err_side)
    seen: dict[int, bytearray] = {out_main: bytearray(), err_main: bytearray()}
    open_ends, deadline = set(seen), time.monotonic() + timeout
    while open_ends and time.monotonic() < deadline:
        for end in select.select(list(open_ends), [], [], 0.5)[0]:
            try:
                chunk = os.read(end, 65536)
            except OSError:  # EIO: the command closed the terminal
                chunk = b""
            if chunk:
                seen[end] += chunk
            else:
                open_ends.discard(end)
            if answer is not None and b"[y/N]" in seen[end]:
                if isinstance(answer, signal.Signals):  # as a person would: a moment after the question shows,
                    time.sleep(0.5)  # when the command waits for the answer (a signal just before the read is
                    process.send_signal(answer)  # caught, but the read itself then waits on, in any program)
                else:
                    os.write(out_main, answer.encode() + b"\n")
                answer = None
    code = process.wait(timeout=max(deadline - time.monotonic(), 1))
    for end in seen:
        os.close(end)
    return code, seen[out_main].decode(), seen[err_main].decode() if split else ""


def scratch_databases(dsn: str) -> set[str]:
    """The scratch databases of `runner dump --check` and `runner squash` on the server of ``dsn``."""
    return {
        str(row[0])
        for row in query(dsn, "SELECT datname FROM pg_database WHERE starts_with(datname, 'runner_scratch_')")
    }
