"""``runner new``: the next numbered file, numbered and padded like its neighbours."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from runner.errors import BadInput
from runner.files import NAME_PATTERN, discover

DEFAULT_WIDTH = 4
# A file name has at most 255 bytes; a long description is kept whole in the file, and its start names it.
_SLUG_BYTES = 100
_TIMESTAMP = "%Y%m%d%H%M%S"

TEMPLATE = """\
-- {description}
--
-- Runs in one transaction together with its row in the tracking table.
-- Guard every statement (IF NOT EXISTS, CREATE OR REPLACE, or a DO block that
-- checks the catalog) so that running this file twice, or by hand in psql, is harmless.

"""

DOWN_TEMPLATE = """\
-- Undoes {name}: {description}
--
-- `runner rollback` runs it in one transaction together with the removal of that
-- file's row from the tracking table. Undo its changes newest first, guarded
-- (IF EXISTS) so that running this file by hand in psql is harmless too.

"""


def _looks_like_timestamp(digits: str) -> bool:
    try:
        datetime.strptime(digits, _TIMESTAMP)
    except ValueError:
        return False
    return True


def next_version(existing: list[str], now: datetime | None = None) -> str:
    """The version string after ``existing`` (the version digits of each file name, as written)."""
    if not existing:
        return f"{1:0{DEFAULT_WIDTH}d}"
    newest = max(existing, key=int)
    if _looks_like_timestamp(newest):
        stamp = (now or datetime.now(UTC)).strftime(_TIMESTAMP)
        return stamp if int(stamp) > int(newest) else str(int(newest) + 1)
    width = max(len(v) for v in existing)
    return f"{int(newest) + 1:0{width}d}"


def new_migration(
    directory: Path, description: str, now: datetime | None = None, down: bool | None = None
) -> list[Path]:
    """The new file, in ``directory``, which must exist: a mistyped --dir is refused, not created. With its down
    file in ``directory/down/`` when ``down``, or, when ``down`` is None, when the project keeps down files there."""
    from runner import down as downs

    slug = re.sub(r"\W+", "_", description.strip().lower()).strip("_")
    slug = slug.encode()[:_SLUG_BYTES].decode("utf-8", "ignore").rstrip("_")
    if not slug:
        raise BadInput("the description needs a letter or a digit, for example: runner new add_due_date")
    versions = [NAME_PATTERN.fullmatch(m.name)["version"] for m in discover(directory)]  # type: ignore[index]
    path = directory / f"{next_version(versions, now)}_{slug}.sql"
    folder = directory / downs.FOLDER
    with_down = down if down is not None else folder.is_dir()
    if with_down and (folder.exists() or folder.is_symlink()) and not folder.is_dir():
        raise BadInput(f"{folder} is not a folder; down files go in a folder of that name")
    said = " ".join(description.split())  # on one line: a line break would end the comment, and the rest be SQL
    _create(path, TEMPLATE.format(description=said), directory)
    if not with_down:
        return [path]
    undo = folder / path.name
    try:
        folder.mkdir(exist_ok=True)
        _create(undo, DOWN_TEMPLATE.format(name=path.name, description=said), folder)
    except (BadInput, OSError) as exc:
        path.unlink()  # both or neither: a migration is not left without the down file it was asked with
        if isinstance(exc, OSError):
            raise BadInput(f"cannot create {undo}: {exc.strerror}; check {folder}") from None
        raise
    return [path, undo]


def _create(path: Path, text: str, folder: Path) -> None:
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        raise BadInput(f"{path} already exists; try again") from None
    except OSError as exc:  # a folder this user cannot write to
        raise BadInput(f"cannot create {path}: {exc.strerror}; check the permissions of {folder}") from None
