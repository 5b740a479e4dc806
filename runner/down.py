"""Down files: the SQL that undoes a migration, kept beside the migrations under ``<dir>/down/``.

A down file has the file name of the migration it undoes (``sql/down/0003_create_participants.sql``
undoes ``sql/0003_create_participants.sql``), so no one can take it for a migration, and psql runs it
as it is. It is optional: a migration without one cannot be rolled back. It is named ``down/<file>``
in messages and in the history. This module only finds and pairs them, before the database is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from runner.errors import BadInput
from runner.files import NAME_RULE, Migration, read_migration, sql_entries

FOLDER = "down"
PREFIX = FOLDER + "/"


def discover(directory: Path, files: Sequence[Migration]) -> dict[int, Migration]:
    """The down files of a migrations folder, by the version of the migration each undoes; none without the folder.

    BadInput for a down file whose name is no migration's: a typo would otherwise leave a migration that
    cannot be rolled back, found out only when it is needed.
    """
    folder = directory / FOLDER
    if not folder.is_dir():
        if folder.exists():
            raise BadInput(f"{folder} is not a folder; down files go in a folder of that name")
        return {}
    if folder.resolve() == directory.resolve():  # a link to the migrations: each would be its own down file
        raise BadInput(f"{folder} leads back to {directory}; down files go in a folder of their own")
    by_name = {f.name: f for f in files if f.version is not None}
    found: dict[int, Migration] = {}
    for entry in sql_entries(folder, NAME_RULE):
        undone = by_name.get(entry.name)
        if undone is None or undone.version is None:
            raise BadInput(f"{entry.path}: a down file with no migration of that name in {directory}; name it "
                           "after the migration it undoes, or delete it")  # fmt: skip
        found[undone.version] = read_migration(entry.path, undone.version, PREFIX + entry.name)
    return found


def paired(directory: Path, files: Sequence[Migration]) -> list[Migration]:
    """The migrations, each with its down file (``Migration.down``) where it has one."""
    downs = discover(directory, files)
    if not downs:
        return list(files)
    return [replace(f, down=downs[f.version]) if f.version in downs else f for f in files]
