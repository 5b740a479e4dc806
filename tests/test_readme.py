"""The README is tested: its console sessions, run in order on a fresh clone, give the output shown.

Every ```console block of README.md is taken in order. Each ``$ `` line is a command (a line ending
in ``\\`` goes on to the next), and the lines below it, up to the next ``$ ``, are its output. The
commands run one after the other in ONE bash, so ``source .venv/bin/activate``, ``cd`` and variables
carry over, with stdout and stderr on one pseudo-terminal of 80 columns, as a terminal window shows
them (TERM=dumb and NO_COLOR: no progress bar and no colour, the text is the same).

The fresh clone is a git repository of the project's tracked files, copied from the working tree (so
an uncommitted README is what is tested), with the project's .venv linked in and already installed,
and no DATABASE_URL, PG* or RUNNER_* variables: runner uses an embedded PostgreSQL of its own there,
removed afterwards. HOME is a folder of its own.

What may differ, and how it is compared:

- ``…`` alone on a line stands for any number of lines, none included.
- Durations (``(13 ms``, ``Done in 0.42 s``, ``2 target(s) in 0.7 s:``), dates and times are normalised;
  checksums are not (they are stable for the same file text).
- The embedded server's home (``.runner`` of the project; as root ``/var/lib/runner-pg/<hash>``,
  with ``, run by user runner-pg`` in the note) reads the same either way, so the README may show
  either one.
- libpq's default role and database, the user the test runs as (``root@[local]:5432/root``), read
  the same for any user.
- The note ``Using the embedded PostgreSQL in … (no --dsn or DATABASE_URL given)`` is compared only
  where the README shows it; the README says where it is left out.
- The clone's .venv is installed already, so make does not print its pip install line; the README's
  line must still be the Makefile's own recipe.
- Trailing spaces and trailing empty lines do not count.

A block that cannot run here has, on the line before it, ``<!-- not run by tests/test_readme.py:
REASON -->``, and must be listed in NOT_RUN below.

To refresh the README after a change of output: run this test, and read the failure: for each
command whose output differs it names the README line, the section and the command, with a diff
(normalised) and the output as printed. Or let the test write the whole README with every output
that differs replaced by what was printed:

    README_TEST_WRITE=/tmp/README.md .venv/bin/python -m pytest tests/test_readme.py
    diff README.md /tmp/README.md

then copy what is right, putting back ``…`` where the README leaves lines out.
"""

from __future__ import annotations

import difflib
import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from helpers import ROOT, remove_embedded

README = ROOT / "README.md"
NOT_RUN_MARK = re.compile(r"<!-- not run by tests/test_readme\.py: (.+?) -->")
# The blocks deliberately not run, by their first command, and why (the README says it too).
NOT_RUN = {
    "make test": "recursion",
    "DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres make test": "another server",
    "DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres pytest -v --durations=4": "another project",
    "pytest -q": "another project",
}
COLUMNS = 80
COMMAND_TIMEOUT_S = 180


@dataclass
class Command:
    text: str
    line: int  # in README.md, 1-based
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    section: str
    line: int
    not_run: str | None  # why, when it is not run
    commands: list[Command]


def console_blocks(text: str) -> list[Block]:
    """The ```console blocks of the README, with the section each is in."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section, previous, index = "", "", 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            section = line.lstrip("#").strip().replace("`", "")
        elif line.strip().startswith("```") and line.strip() != "```console":  # another language: skip it
            index = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        elif line.strip() == "```console":
            start, commands, index = index + 1, [], index + 1
            while lines[index].strip() != "```":
                body = lines[index]
                if body.startswith("$ "):
                    command = Command(body[2:], index + 1)
                    while command.text.endswith("\\"):
                        index += 1
                        command.text += "\n" + lines[index]
                    commands.append(command)
                elif commands:
                    commands[-1].expected.append(body)
                else:
                    raise AssertionError(f"README.md line {index + 1}: a console block starts with a command (`$ `)")
                index += 1
            mark = NOT_RUN_MARK.search(previous)
            blocks.append(Block(section, start, mark.group(1) if mark else None, commands))
        if line.strip():
            previous = line
        index += 1
    return blocks


# Comparing outputs.

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NOTE = re.compile(r"^Using the embedded PostgreSQL in .* \(no --dsn or DATABASE_URL given\)$")


def normalise(lines: list[str], clone: Path | None = None) -> list[str]:
    """What varies from run to run made the same; see the module's docstring."""
    out = []
    for line in lines:
        line = ANSI.sub("", line).rstrip()
        if clone is not None:
            line = line.replace(f"{clone}/.runner", "<embedded>")
        line = re.sub(r"/var/lib/runner-pg/[0-9a-f]{12}", "<embedded>", line)
        line = re.sub(r"(?<![\w/])\.runner(?=/pgdata\b)", "<embedded>", line)
        line = line.replace(", run by user runner-pg", "")
        line = re.sub(r"\b(\w+)@\[local\]:5432/\1\b", "<user>@[local]:5432/<user>", line)  # libpq's default role
        line = re.sub(r"\(\d+ ms\b", "(N ms", line)
        line = re.sub(r"\bDone in \d+\.\d+ s\b", "Done in N s", line)
        line = re.sub(r"\btarget\(s\) in \d+\.\d+ s:", "target(s) in N s:", line)  # a fleet's summary
        line = re.sub(r"(?<!\d)\d{4}-\d\d-\d\d(?!\d)", "YYYY-MM-DD", line)
        line = re.sub(r"(?<!\d)\d\d:\d\d:\d\d(\.\d+)?", lambda m: "hh:mm:ss" + (".f" if m.group(1) else ""), line)
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return out


def matches(expected: list[str], got: list[str]) -> bool:
    """Line by line, with ``…`` alone on a line standing for any lines."""
    pattern = "".join(r"(?:[^\n]*\n)*?" if line.strip() == "…" else re.escape(line + "\n") for line in expected)
    return re.fullmatch(pattern, "".join(line + "\n" for line in got)) is not None


def makefile_pip_line() -> str:
    """make's echo of its install recipe, as it prints it on a fresh clone."""
    recipe = next(line for line in (ROOT / "Makefile").read_text().splitlines() if "pip install" in line)
    return recipe.strip().replace("$(BIN)", ".venv/bin")


def comparable(command: Command, printed: list[str]) -> list[str]:
    """What the command printed, less the embedded server's note where the README leaves it out."""
    if any(NOTE.match(line) for line in command.expected):
        return printed
    return [line for line in printed if not NOTE.match(ANSI.sub("", line).rstrip())]


def compare(command: Command, printed: list[str], clone: Path | None = None) -> str | None:
    """None when the command printed what the README shows, else what differs, ready to read."""
    expected = list(command.expected)
    pip = [line for line in expected if ".venv/bin/python -m pip install" in line]
    if pip and pip != [makefile_pip_line()]:
        return f"the README's pip line is not the Makefile's: {pip} != {[makefile_pip_line()]}"
    expected = [line for line in expected if line not in pip]  # the clone's .venv is installed already
    want, got = normalise(expected, clone), normalise(comparable(command, printed), clone)
    if matches(want, got):
        return None
    diff = difflib.unified_diff(want, got, "README (normalised)", "printed (normalised)", lineterm="", n=2)
    return "\n".join(diff)


# Running the sessions.


def fresh_clone(where: Path) -> Path:
    """The tracked files of the project as they are in the working tree, committed in a new repository,
    with the project's installed .venv linked in (and its install stamp, so make does not reinstall)."""
    clone = where / "runner"
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, names.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    git = ["git", "-c", "user.name=README test", "-c", "user.email=readme@test", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "fresh clone"]):
        subprocess.run([*git, *args], cwd=clone, check=True, capture_output=True)
    venv = Path(sys.prefix)
    assert venv != Path(sys.base_prefix), "run the tests with the project's .venv (make test)"
    (clone / ".venv").mkdir()
    for entry in venv.iterdir():
        if entry.name != ".installed":
            (clone / ".venv" / entry.name).symlink_to(entry)
    (clone / ".venv" / ".installed").touch()  # after pyproject.toml was copied: newer, so make skips pip
    return clone


def session_env(home: Path) -> dict[str, str]:
    """A user's shell before `source .venv/bin/activate`: no database given, nothing of pytest or make."""
    dropped = ("DATABASE_URL", "VIRTUAL_ENV", "COLUMNS", "LINES", "FORCE_COLOR", "MAKEFLAGS", "MFLAGS", "MAKELEVEL",
               "MAKEOVERRIDES", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST")  # fmt: skip
    env = {k: v for k, v in os.environ.items()
           if k not in dropped and not k.startswith(("PG", "RUNNER_", "GIT_"))}  # fmt: skip
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    who = {
        f"GIT_{role}_{what}": value
        for role in ("AUTHOR", "COMMITTER")
        for what, value in (("NAME", "Dev"), ("EMAIL", "dev@example.com"))
    }  # a developer's git identity
    return {**env, **who, "HOME": str(home), "TERM": "dumb", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}


class Shell:
    """One bash, its stdin a pipe we write commands to, its stdout and stderr one terminal of 80 columns."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.main, side = pty.openpty()
        fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 200, COLUMNS, 0, 0))
        self.process = subprocess.Popen(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE, stdout=side,
                                        stderr=side, cwd=cwd, env=env, start_new_session=True)  # fmt: skip
        os.close(side)
        self.marker = f"__readme_done_{uuid.uuid4().hex}__"

    def run(self, command: str) -> list[str]:
        """What the command printed; its exit status is $? for the next one, as in a terminal."""
        assert self.process.stdin is not None
        script = f"{{ {command}\n}} </dev/null\n__rc=$?; printf '%s\\n' {self.marker}; (exit $__rc)\n"
        self.process.stdin.write(script.encode())
        self.process.stdin.flush()
        seen, deadline = bytearray(), time.monotonic() + COMMAND_TIMEOUT_S
        end = f"{self.marker}\r\n".encode()  # the whole line: a newline left over would start the next output
        while end not in seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"no end after {COMMAND_TIMEOUT_S} s; printed so far:\n{seen.decode()}")
            if select.select([self.main], [], [], 1)[0]:
                try:
                    seen += os.read(self.main, 65536)
                except OSError:  # EIO: the shell is gone (an `exit` in the README?)
                    raise AssertionError(f"the shell ended; it printed:\n{seen.decode()}") from None
        text = seen.decode().replace("\r\n", "\n").split(self.marker)[0]
        return text.splitlines()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self.main)


def write_refreshed(text: str, outputs: dict[int, list[str]]) -> str:
    """The README with the output of each command that differed replaced by what it printed."""
    lines = text.splitlines()
    for block in reversed(console_blocks(text)):
        for command in reversed(block.commands):
            if command.line in outputs:
                start = command.line + command.text.count("\n")  # index of the first output line
                lines[start : start + len(command.expected)] = [line.rstrip() for line in outputs[command.line]]
    return "\n".join(lines) + "\n"


def test_every_console_session_of_the_readme_gives_the_output_shown(tmp_path: Path) -> None:
    text = README.read_text("utf-8")
    blocks = [b for b in console_blocks(text) if b.not_run is None]
    clone = fresh_clone(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    shell = Shell(clone, session_env(home))
    failures: list[str] = []
    differing: dict[int, list[str]] = {}
    try:
        for block in blocks:
            for command in block.commands:
                printed = shell.run(command.text)
                found = compare(command, printed, clone)
                if found is not None:
                    differing[command.line] = comparable(command, printed)
                    failures.append(f"README.md line {command.line} ({block.section}): $ {command.text}\n{found}\n"
                                    "-- printed:\n" + "\n".join(printed))  # fmt: skip
    finally:
        shell.close()
        for state in clone.rglob(".runner"):
            remove_embedded(state.parent)
    if os.environ.get("README_TEST_WRITE"):
        Path(os.environ["README_TEST_WRITE"]).write_text(write_refreshed(text, differing), "utf-8")
    assert not failures, f"{len(failures)} command(s) of the README print something else:\n\n" + "\n\n".join(failures)


def test_the_blocks_not_run_are_the_few_listed_each_saying_why() -> None:
    """A block left out of the run above says so in the README, and is listed here: never by accident."""
    found = {b.commands[0].text: b.not_run for b in console_blocks(README.read_text("utf-8")) if b.not_run}
    assert found == NOT_RUN


def test_an_ellipsis_stands_for_any_lines_and_only_what_varies_is_normalised() -> None:
    shown = ["Running 2 pending migration(s)…", "…", "Applied 2 migration(s)"]
    assert matches(shown, ["Running 2 pending migration(s)…", "Completed: a", "Completed: b", "Applied 2 migration(s)"])
    assert matches(shown, ["Running 2 pending migration(s)…", "Applied 2 migration(s)"])
    assert not matches(shown, ["Running 2 pending migration(s)…", "Applied 1 migration(s)"])
    command = Command("make migrate", 1, ["Completed: 0001_a.sql (13 ms)", " 1 │ 0001_a.sql │ 2026-11-25 17:35:02"])
    assert compare(command, ["Completed: 0001_a.sql (2 ms)", " 1 │ 0001_a.sql │ 2027-01-02 03:04:05  "]) is None
    edited = Command("runner verify", 1, ["edited 0003.sql: checksum sha256:8761bcc02c86 when applied"])
    assert "+edited 0003.sql: checksum sha256:33f76a4c373c" in (
        compare(edited, ["edited 0003.sql: checksum sha256:33f76a4c373c when applied"]) or ""
    )
    root = "Using the embedded PostgreSQL in /var/lib/runner-pg/84a8cd7d7a26/pgdata, run by user runner-pg (no --dsn"
    user = "Using the embedded PostgreSQL in .runner/pgdata (no --dsn"
    assert normalise([root + " or DATABASE_URL given)"]) == normalise([user + " or DATABASE_URL given)"])
    assert compare(Command("runner verify", 1, ["No drift"]), [user + " or DATABASE_URL given)", "No drift"]) is None
    chosen = "Database: {0}@[local]:5432/{0} from libpq's environment"
    assert normalise([chosen.format("root")]) == normalise([chosen.format("tester")])
    assert normalise(["app@[local]:5432/other"]) == ["app@[local]:5432/other"]  # not libpq's default: kept
