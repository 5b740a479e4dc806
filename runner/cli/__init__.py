"""The ``runner`` command: a thin layer over runner.api that prints and picks exit codes.

Here: the app, the entry point, the error edge (``_run``: our errors to one message and one exit
code) and usage errors. The options commands share are in options.py; the commands, by family, in
migrate.py, records.py, tools.py and db.py, which register themselves on ``app`` when imported below.
"""

from __future__ import annotations

import copy
import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import typer

from runner import report
from runner.cli.options import Printing, Run, settings
from runner.errors import Interrupted, RunnerError, Terminated
from runner.progress import Output, say

EXIT_CODES = (
    "Exit codes: 0 success; 1 drift found or run refused (--strict, out-of-order file); "
    "2 bad input or usage (file names, encoding, options, settings, a tracking table that is not runner's); "
    "3 a migration failed and was rolled back; 4 the migration lock was not obtained in time; "
    "5 the database cannot be reached or refused the login; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM)."
)
SETTINGS = (
    "Settings: a flag wins over its environment variable, which wins over \\[tool.runner] in the nearest "
    "pyproject.toml, which wins over the default."
)
EPILOG = f"{SETTINGS}\n\n{EXIT_CODES}"

app = typer.Typer(
    help="Apply numbered plain-SQL migrations to PostgreSQL, and detect drift.\n\n"
    "Example: runner migrate && runner verify",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Answer = tuple[int, dict[str, Any] | None]  # a command's exit code, and its --json document (None: no document)


def _output(context: typer.Context, shown: Printing) -> Output:
    if shown.quiet and shown.verbose:
        _usage("--quiet and --verbose cannot be used together", context.command_path)
    return Output(shown.quiet, shown.verbose, shown.as_json)


def _run(context: typer.Context, shown: Printing | Output, work: Callable[[Run], Answer]) -> None:
    """Run a command's work with its settings; map our errors to one message and one exit code."""
    out = shown if isinstance(shown, Output) else _output(context, shown)
    started = time.monotonic()
    try:
        try:
            code, doc = work(Run(settings(context, out), out))
        finally:
            settled()
    except RunnerError as error:
        lines = report.error_lines(error)
        out.error(lines[0])
        for line in lines[1:]:
            say(line, err=True)
        if out.as_json:
            print(json.dumps(report.error_doc(error), indent=2, default=str))
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt as stop:
        # A Terminated stop, or an Interrupted one raised while handling it, came from SIGTERM.
        terminated = isinstance(stop, Terminated) or (isinstance(stop, Interrupted) and stop.terminated)
        if isinstance(stop, Interrupted):
            text = str(stop)
        else:
            text = f"interrupted ({'SIGTERM' if terminated else 'Ctrl-C'}) while no file was running; " \
                   "what was applied or rolled back before this point is recorded"  # fmt: skip
        out.error(text)
        if out.as_json:
            code = 143 if terminated else 130
            print(json.dumps({"ok": False, "error": {"kind": "interrupted", "exit_code": code, "message": text}}))
        raise typer.Exit(143 if terminated else 130) from None
    if out.as_json and doc is not None:
        print(json.dumps(doc, indent=2, default=str))
    out.detail(f"Done in {time.monotonic() - started:.2f} s")
    raise typer.Exit(code)


def confirmed(question: str, nothing: str) -> bool:
    """y/N on the terminal; end of input is a no. click turns Ctrl-C into the same Abort, which would exit 1 as a
    no: it is an interrupt (130, or 143 for SIGTERM), and ``nothing`` says that nothing was done."""
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort as abort:
        stop = abort.__context__
        if isinstance(stop, KeyboardInterrupt):
            say("", err=True)  # the error starts a line of its own, not after the question
            terminated = isinstance(stop, Terminated)
            raise Interrupted(f"interrupted ({'SIGTERM' if terminated else 'Ctrl-C'}) at the question: {nothing}",
                              terminated=terminated) from None  # fmt: skip
        return False


def _version(given: bool) -> None:
    if given:
        import importlib.metadata  # only here: it costs every other run of the command about 25 ms

        try:
            found = importlib.metadata.version("runner")
        except importlib.metadata.PackageNotFoundError:
            found = "unknown (not installed)"
        say(f"runner {found}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Show runner's version and exit.")
    ] = False,
) -> None:
    pass


def _usage(problem: str, command: str) -> NoReturn:
    say(f"{problem}; see `{command} --help`", err=True, prefix="error: ", color="red")
    raise typer.Exit(2)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def settled() -> None:
    """The outcome is decided: a Ctrl-C or SIGTERM from here on would only cut its report short (or print a
    traceback on the way out), so both are ignored; main() puts back what it found."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _without_stray_envvar(usage: Any) -> str:
    """typer's message names an option's variable even when the bad value was typed; say it only when it was read."""
    text: str = usage.format_message()
    context, param = getattr(usage, "ctx", None), getattr(usage, "param", None)
    envvar = getattr(param, "envvar", None)
    if context is not None and param is not None and isinstance(envvar, str):
        source = context.get_parameter_source(param.name)
        if source is None or source.name != "ENVIRONMENT":
            text = text.replace(f" (env var: '{envvar}')", "")
    return text


def _only(name: str | None) -> typer.Typer:
    """The app with only the command ``name``: typer builds every command's options before it runs one, which
    costs more than a run with nothing to do spends on its own work. Help and an unknown name get them all."""
    chosen = copy.copy(app)
    chosen.registered_commands = [c for c in app.registered_commands if _command_name(c) == name]
    chosen.registered_groups = [g for g in app.registered_groups if g.name == name]
    return chosen if chosen.registered_commands or chosen.registered_groups else app


def _command_name(command: typer.models.CommandInfo) -> str | None:
    return command.name or (typer.main.get_command_name(command.callback.__name__) if command.callback else None)


def main() -> None:
    # SIGTERM stops a run the way Ctrl-C does: the running statement is cancelled and rolled back.
    found = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        _main()
    finally:  # for a caller in this process (tests); the command itself exits ignoring both (__main__.run)
        signal.signal(signal.SIGINT, found[0])
        signal.signal(signal.SIGTERM, found[1])


def _main() -> None:
    try:
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)  # the root's options are all flags
        code = _only(command)(prog_name="runner", standalone_mode=False)
    except Exception as usage:  # typer's own errors: an unknown option, a value out of range, a bad variable
        if not hasattr(usage, "format_message"):
            raise
        code = getattr(usage, "exit_code", 2)
        if type(usage).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
            context = getattr(usage, "ctx", None)
            command = context.command_path if context else "runner"
            text = f"{_without_stray_envvar(usage).rstrip('.')}; see `{command} --help`"
            from runner.db import redact  # a DSN typed without --dsn is quoted back as an unexpected argument

            for argument in sys.argv[1:]:
                text = redact(text, argument)
            say(text, err=True, prefix="error: ", color="red")
            if "--json" in sys.argv[1:]:
                print(json.dumps({"ok": False, "error": {"kind": "usage", "exit_code": code, "message": text}}))
    sys.exit(code if isinstance(code, int) else 0)


# The commands, registered on app in this order (the order `runner --help` lists them in).
from runner.cli import migrate, records, undo, tools, schema, db  # noqa: E402, F401, I001
