"""Option sets (runner/cli/options.py): a command names a set once, and gets its options in that place."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer

from runner.cli.options import Connection, Only, Printing, uses

Limit = Annotated[int | None, typer.Option("--limit")]


def test_a_set_is_spread_into_its_options_where_the_command_names_it_and_the_body_gets_one_instance() -> None:
    got: dict[str, Any] = {}

    @uses
    def command(context: typer.Context, where: Connection, limit: Limit = None, *, shown: Printing) -> None:
        got.update(where=where, limit=limit, shown=shown)

    names = list(inspect.signature(command).parameters)
    assert names == ["context", "dsn", "dir", "table", "limit", "as_json", "quiet", "verbose"]
    command(context=None, dsn="postgresql://db/app", dir=None, table="t", limit=3, as_json=True, quiet=False,
            verbose=False)  # fmt: skip
    assert got == {"where": Connection("postgresql://db/app", None, "t"), "limit": 3, "shown": Printing(True)}


def test_only_takes_some_options_of_a_set_and_the_others_keep_their_default() -> None:
    got: list[Connection] = []

    @uses
    def command(where: Annotated[Connection, Only("dsn", "table")]) -> None:
        got.append(where)

    assert list(inspect.signature(command).parameters) == ["dsn", "table"]
    command(dsn="postgresql://db/app", table=None)
    assert got == [Connection(dsn="postgresql://db/app")]


def test_typer_reads_the_options_of_a_spread_command_with_their_help_and_variables() -> None:
    @uses
    def command(where: Annotated[Connection, Only("dir")], *, shown: Printing) -> None:
        """A command."""

    app = typer.Typer(add_completion=False)
    app.command()(command)
    params = {p.name: p for p in typer.main.get_command(app).params}
    assert list(params) == ["dir", "as_json", "quiet", "verbose"]
    assert params["dir"].envvar == "RUNNER_DIR" and params["quiet"].opts == ["--quiet", "-q"]
