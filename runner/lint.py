"""``runner lint``: the squawk migration linter (PyPI ``squawk-cli``), its findings in runner's terms.

squawk does all the SQL analysis; runner tells it which files run in a transaction (every file
not marked ``-- runner: no-transaction``), so a transaction-only rule gives no false alarm, and
turns its JSON report into findings. squawk reports rule violations as warnings and SQL it
cannot parse as a ``syntax-error`` at error level. A file with psql variables is linted as migrate
would send it, with their values substituted, from a copy in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runner import directives
from runner.errors import BadInput, RunnerError
from runner.files import Migration


@dataclass(frozen=True)
class Finding:
    file: str  # the path as given to squawk
    line: int  # 1-based
    column: int | None  # 1-based, in bytes of the line
    rule: str  # squawk's rule name, e.g. "prefer-robust-stmts"
    level: str  # "error" or "warning", as squawk reports it
    message: str
    help: str | None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _executable() -> str:
    """The squawk installed with runner first, so a venv's own squawk wins over another on PATH."""
    found = shutil.which("squawk", path=str(Path(sys.executable).parent)) or shutil.which("squawk")
    if found is None:
        raise BadInput("the squawk linter is not installed; install it with `pip install squawk-cli`")
    return found


def _finding(item: dict[str, Any]) -> Finding:
    """squawk's JSON counts lines and columns from 0."""
    column = item.get("column")
    return Finding(
        file=item["file"], line=item["line"] + 1, column=None if column is None else column + 1,
        rule=item["rule_name"], level=item["level"].lower(), message=_one_line(item["message"]),
        help=_one_line(item["help"]) if item.get("help") else None,
    )  # fmt: skip


def _run(squawk: str, paths: list[str], in_transaction: bool, options: list[str]) -> list[Finding]:
    # --config: runner's config decides, not a .squawk.toml found above the working directory;
    # stdin closed: squawk lints its stdin too when it is not a terminal.
    mode = "--assume-in-transaction" if in_transaction else "--no-assume-in-transaction"
    command = [squawk, "--reporter=json", f"--config={os.devnull}", mode, *options, "--", *paths]
    env = {**os.environ, "SQUAWK_DISABLE_GITHUB_ANNOTATIONS": "1"}  # they would go into the JSON on stdout
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    except OSError as exc:
        raise RunnerError(f"cannot run {squawk} ({exc.strerror})") from None
    said = next((line.strip() for line in done.stderr.splitlines() if line.strip()), "no message")
    if done.returncode == 2:  # squawk refused its arguments: a rule name or pg-version from the config
        raise BadInput(f"squawk: {said.removeprefix('error: ')}")
    try:
        if done.returncode not in (0, 1):  # 1 means findings
            raise ValueError
        return [_finding(item) for item in json.loads(done.stdout)]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RunnerError(f"squawk failed (exit code {done.returncode}): {said}") from None


def lint(
    migrations: list[Migration], values: Mapping[str, str] | None = None, *, exclude: Sequence[str] = (),
    pg_version: str | None = None,
) -> list[Finding]:  # fmt: skip
    """Run squawk once per transaction mode and return its findings ordered by file, then line.

    ``values`` are substituted for the files' psql variables (BadInput for one without a value).
    """
    squawk = _executable()
    options = [f"--exclude={','.join(exclude)}"] if exclude else []
    if pg_version:
        options.append(f"--pg-version={pg_version}")
    no_transaction = {str(m.path): directives.read(m).no_transaction for m in migrations}
    order = {path: index for index, path in enumerate(no_transaction)}
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="runner-lint-") as folder:
        given = {_linted(m, values or {}, Path(folder, str(i))): str(m.path) for i, m in enumerate(migrations)}
        for in_transaction in (True, False):
            paths = [path for path, own in given.items() if no_transaction[own] != in_transaction]
            if paths:
                found = _run(squawk, paths, in_transaction, options)
                findings += [replace(f, file=given.get(f.file, f.file)) for f in found]
    return sorted(findings, key=lambda f: (order.get(f.file, len(order)), f.file, f.line, f.column or 0))


def _linted(migration: Migration, values: Mapping[str, str], folder: Path) -> str:
    """The path of the file as migrate would send it: its own, or a copy in ``folder`` with its variables
    substituted (and the same name, which squawk's messages may show)."""
    from runner.preflight import substituted

    sql, _ = substituted(migration, values)
    if sql is migration.sql:
        return str(migration.path)
    folder.mkdir()
    copy = folder / Path(migration.path).name
    copy.write_bytes(sql[0 : len(sql)])
    return str(copy)


def config(project: Path) -> dict[str, Any]:
    """``[tool.runner.lint]`` (read by runner.config, with the rest of the project's settings) as keyword
    arguments of lint(); the defaults without it."""
    from runner.config import lint_settings

    found = lint_settings(project)
    return {"exclude": list(found.exclude), "pg_version": found.pg_version}
