"""What the command prints while it works: how much (--quiet, --verbose, --json) and how (a bar or lines).

On a terminal, migrate draws a rich progress bar on stderr, where progress belongs (as tqdm, git
and curl do), and prints the line of each file above it; the bar is gone when the run ends. In a
pipe or a CI log, where a bar would be a mess of escape codes, each file gets one plain line.
NO_COLOR removes colour, and only colour (no-color.org): the bar still moves; TERM=dumb turns it off.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NamedTuple

import typer

from runner import report
from runner.apply import Applied, Skipped
from runner.results import Applying, Starting


def no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


def say(text: str, *, err: bool = False, prefix: str = "", color: str | None = None) -> None:
    """One line on stdout or stderr, the stream looked up now: while the bar is drawn, rich stands in for it."""
    stream = sys.stderr if err else sys.stdout
    use_color = stream.isatty() and not no_color()
    head = typer.style(prefix, fg=color, bold=True) if (prefix and use_color) else prefix
    print(f"{head}{text}", file=stream, flush=True)


class Output(NamedTuple):
    """How much a command says. Errors and warnings are always said; --quiet drops the rest but the
    answer to a question (status, verify, plan, ...); --verbose adds the details, on stderr."""

    quiet: bool = False
    verbose: bool = False
    as_json: bool = False

    def note(self, text: str) -> None:
        if not self.quiet:
            say(text, err=True)

    def detail(self, text: str) -> None:
        if self.verbose:
            say(text, err=True)

    def warn(self, text: str) -> None:
        say(text, err=True, prefix="warning: ", color="yellow")

    def error(self, text: str) -> None:
        say(text, err=True, prefix="error: ", color="red")


def bar_wanted(out: Output) -> bool:
    """A bar only where a person watches both streams: never in a pipe, a log, or with --json or --quiet."""
    terminal = sys.stdout.isatty() and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    return terminal and not (out.quiet or out.as_json)


def completed_line(event: Applied, verbose: bool) -> str:
    line = report.progress_line(event)
    if verbose and not event.empty:
        count = f"{event.statements} statement(s)"
        line = f"{line[:-1]}, {count})" if line.endswith(")") else f"{line}, {count}"
    return line


class MigrateProgress:
    """migrate's Starting, Applying and Applied events, shown as ``out`` asks; a context manager, so the
    bar is gone (and the cursor back) before an error is printed. A plain class: every run defines it, and a
    dataclass costs several times as much to define."""

    def __init__(self, out: Output, bar: bool = False) -> None:
        self.out, self.bar = out, bar
        self._progress: Any = None
        self._task: Any = None

    @classmethod
    def for_output(cls, out: Output) -> MigrateProgress:
        return cls(out, bar_wanted(out))

    def __enter__(self) -> MigrateProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self, text: str) -> None:
        """A line of progress: stdout, or stderr with --json (stdout is the document); none with --quiet."""
        if not self.out.quiet:
            say(text, err=self.out.as_json)

    def __call__(self, event: Starting | Applying | Applied | Skipped) -> None:
        if isinstance(event, Starting):
            self.line(report.progress_line(event))
            if event.count and self.bar:
                self._start(event.count)
        elif isinstance(event, Applying):
            if self._progress is not None:
                self._progress.update(self._task, description=f"Applying {event.name}")
            elif self.out.verbose:
                self.line(f"Applying {event.name} ({event.index}/{event.total})…")
        else:
            if isinstance(event, Skipped):
                self.line(report.progress_line(event))
            else:
                self.line(completed_line(event, self.out.verbose))
            if self._progress is not None:
                self._progress.advance(self._task)

    def start(self, total: int, description: str) -> None:
        """A bar over ``total`` things other than files (a fleet's targets), where a bar is wanted."""
        if total and self.bar:
            self._start(total, description)

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def _start(self, total: int, description: str = "Starting") -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(stderr=True, color_system=None if no_color() else "auto", highlight=False)
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True,
        )  # fmt: skip
        self._task = self._progress.add_task(description, total=total)
        self._progress.start()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
