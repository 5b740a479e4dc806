"""Every command's ``--help``, as a user sees it at 80 columns, is the one kept in tests/help/.

The files are what the help said when they were written: a change to the code that changes a help
text, an option's place or its default fails here, on purpose. When a help text changes on purpose,
write the files again and commit them with the change:

    .venv/bin/python tests/test_help.py
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import typer
from helpers import cli_env, runner_cli

from runner import cli

KEPT = Path(__file__).parent / "help"


def _paths() -> list[list[str]]:
    """Every command and group under runner, as words: [], ['migrate'], ['db', 'url'] ..."""

    def walk(path: list[str], command: object) -> list[list[str]]:
        found = [path]
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            found += walk([*path, name], sub)
        return found

    return walk([], typer.main.get_command(cli.app))


def _file(path: list[str]) -> Path:
    return KEPT / f"{'_'.join(['runner', *path])}.txt"


def _helps() -> dict[Path, str]:
    """Each command's --help at 80 columns, by the file it is kept in."""
    env = {**cli_env(COLUMNS="80"), "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    paths = _paths()
    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(lambda p: runner_cli(*p, "--help", env=env), paths))
    for path, result in zip(paths, done, strict=True):
        assert result.returncode == 0, (path, result.stderr)
    return {_file(path): result.stdout for path, result in zip(paths, done, strict=True)}


def test_every_commands_help_is_the_one_kept_in_tests_help() -> None:
    helps = _helps()
    assert sorted(helps) == sorted(KEPT.glob("*.txt")), "a command was added or removed: write the files again"
    changed = [path.name for path, text in helps.items() if path.read_text("utf-8") != text]
    assert not changed, f"--help changed for {changed}; if on purpose: .venv/bin/python tests/test_help.py"


if __name__ == "__main__":
    KEPT.mkdir(exist_ok=True)
    for old in KEPT.glob("*.txt"):
        old.unlink()
    for path, text in _helps().items():
        path.write_text(text, "utf-8")
    print(f"wrote {len(list(KEPT.glob('*.txt')))} files in {KEPT}")
