"""The commands of the schema file: dump (and dump --check), load, squash."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runner import api, results
from runner.cli import EPILOG, Answer, _run, app
from runner.cli.options import Connection, Printing, Run, Sets, project_schema_file, shown_path, uses
from runner.errors import BadInput


def _schema_file(run: Run, given: Path | None, what: str) -> Path:
    """The file a command reads or writes: the one given, else ``schema-file`` of [tool.runner]."""
    if given is not None:
        return given
    if run.settings.schema_file is None:
        raise BadInput(f"{what}: no schema file given; pass its path, or set schema-file = \"sql/schema.sql\" "
                       "in [tool.runner] of pyproject.toml")  # fmt: skip
    return shown_path(run.settings.schema_file)


@app.command(epilog=EPILOG)
@uses
def dump(
    context: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="PATH",
                      help="The schema file to write (- for the standard output). Default: schema-file of "
                           "\\[tool.runner] for the project's own database (no --dsn), else the standard "
                           "output.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Build the folder in a scratch database and compare its "
                                        "dump with the schema file: exit 1, with a diff, when they differ. "
                                        "The target database is not touched.")] = False,
    sets: Sets = None,
    *,
    where: Connection,
    shown: Printing,
) -> None:  # fmt: skip
    """Write the database's schema as plain SQL, with its tracking rows, using the pg_dump runner ships.

    Example: runner dump --output sql/schema.sql; in CI: runner dump --check
    """

    def work(run: Run) -> Answer:
        dsn, directory, table = run.target
        if check:
            path = _schema_file(run, output, "runner dump --check")
            found = api.check_dump(dsn, directory, table, schema_file=path, variables=run.variables(sets),
                                   on_event=run.notes)  # fmt: skip
            run.lines(_check_lines(found, directory))
            return (0 if found.same else 1), {
                "same": found.same,
                "schema_file": str(path),
                "diff": [] if found.same else found.differences,
            }
        folder = directory if directory.is_dir() else None  # the rows as its files name them, if there is one
        text = api.dump(dsn, table, folder, on_event=run.notes)
        chosen = output if output is not None else project_schema_file(run.settings)
        if chosen is None or str(chosen) == "-":
            if not run.out.as_json:  # with --json, the text is in the document
                typer.echo(text, nl=False)
            return 0, {"schema_file": None, "text": text}
        from runner.schema_file import write

        changed = write(chosen, text)
        run.lines([f"Wrote {chosen}" if changed else f"{chosen} is up to date"])
        return 0, {"schema_file": str(chosen), "changed": changed}

    _run(context, shown, work)


def _check_lines(found: results.SchemaCheck, directory: Path) -> list[str]:
    if found.same:
        how = " (the same once the server reprints both: a load or a squash prints some expressions another way)" \
            if found.reprinted else ""  # fmt: skip
        return [f"{found.path} is what the files of {directory} build{how}"]
    lines = [*found.differences, "", f"{found.path} differs from what the files of {directory} build "
             "(above: - the file, + built)."]  # fmt: skip
    if found.written_from is not None and found.written_from != found.built_on:
        lines.append(f"It was written from PostgreSQL {found.written_from}, and this check built on "
                     f"{found.built_on}: each version prints views and defaults its own way. Check against a "
                     f"server of version {found.written_from}, or write the file again on this one.")  # fmt: skip
    else:
        lines.append("Run `runner dump` (or migrate) on a database the files built, and commit the file.")
    return lines


@app.command(epilog=EPILOG)
@uses
def load(
    context: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="The schema file. Default: schema-file of \\[tool.runner].",
                                                show_default=False)] = None,
    *,
    where: Connection,
    shown: Printing,
) -> None:  # fmt: skip
    """Load a schema file into an empty database, which is then up to date with the files it lists.

    Example: createdb app_test && runner load sql/schema.sql --dsn postgresql://localhost/app_test
    """

    def work(run: Run) -> Answer:
        chosen = _schema_file(run, path, "runner load")
        loaded = api.load(*run.target, schema_file=chosen, on_event=run.notes)
        applied = [e for e in loaded.plan.entries if e.record is not None]
        pending = loaded.plan.to_run
        lines = [f"Loaded {chosen}: {len(applied)} migration(s) recorded as applied"]
        if pending:
            lines.append(f"{len(pending)} file(s) are newer than the schema file: run `runner migrate`")
        run.lines(lines)
        return 0, {"schema_file": str(chosen), "applied": len(applied), "pending": [e.name for e in pending]}

    _run(context, shown, work)


@app.command(epilog=EPILOG)
@uses
def squash(
    context: typer.Context,
    to: Annotated[int, typer.Option("--to", metavar="VERSION", min=0,
                                    help="Replace every file up to this version (included).")],
    sets: Sets = None,
    *,
    where: Connection,
    shown: Printing,
) -> None:  # fmt: skip
    """Replace the files up to --to by one generated file that builds the same database, rows included.

    Every file up to --to must be applied on the target database.
    A database that applied them takes the squashed file as applied; a new one runs it, then the rest.
    Example: runner squash --to 120
    """

    def work(run: Run) -> Answer:
        dsn, directory, table = run.target
        done = api.squash_files(dsn, directory, table, to=to, variables=run.variables(sets),
                                schema_file=project_schema_file(run.settings), on_event=run.notes)  # fmt: skip
        first, last = done.replaced[0], done.replaced[-1]
        downs = sum(f.down is not None for f in done.replaced)
        lines = [f"Wrote {done.path}: it replaces {len(done.replaced)} files, {first.name} to {last.name}, "
                 f"which were deleted{f', with their {downs} down file(s)' if downs else ''}"]  # fmt: skip
        if done.schema_file:
            lines.append(f"Rewrote {done.schema_file}: its tracking rows name {done.path.name}")
        run.lines([*lines, "Commit the change; databases that applied them run nothing new"])
        return 0, {"path": str(done.path), "replaced": [f.name for f in done.replaced],
                   "schema_file": str(done.schema_file) if done.schema_file else None}  # fmt: skip

    _run(context, shown, work)
