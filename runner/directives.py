"""Per-file instructions in a migration's leading comments, and the durations they take.

A file opts out of the transaction, or sets its own timeouts, with lines such as::

    -- runner: no-transaction
    -- runner: lock-timeout=10s, statement-timeout=5min

Only the comment lines at the top of the file are read (blank lines may sit between them),
so reading directives costs nothing on a big file, and psql treats them as comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runner.errors import BadInput
from runner.files import Migration

PREFIX = "runner:"
NO_TRANSACTION = "no-transaction"
# directive name -> the PostgreSQL setting it controls
SETTINGS = {"lock-timeout": "lock_timeout", "statement-timeout": "statement_timeout"}
_DURATION = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s|min|h|d)?", re.IGNORECASE)
_MS_PER_UNIT = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
DURATION_RULE = "a number with a unit: 500ms, 10s, 2min, 1h (a bare number means seconds; 0 means no limit)"
# PostgreSQL's lock_timeout and statement_timeout are ints of milliseconds: a longer one is refused by
# the server only when the SET runs, after earlier files were applied, so it is refused here first.
MAX_MS = 2_147_483_647


@dataclass(frozen=True)
class Directives:
    no_transaction: bool = False
    settings: dict[str, str] = field(default_factory=dict)  # PostgreSQL setting -> value, e.g. "10000ms"


def duration_ms(text: str) -> int | None:
    """Milliseconds of a duration like ``10s``; None when ``text`` is not one."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    return round(float(match["number"]) * _MS_PER_UNIT[(match["unit"] or "s").lower()])


def setting_value(text: str, what: str) -> str:
    """A duration as the value of a PostgreSQL setting; BadInput naming ``what`` when malformed or too long."""
    ms = duration_ms(text)
    if ms is None:
        raise BadInput(f"{what}: {text!r} is not a duration; expected {DURATION_RULE}")
    if ms > MAX_MS:
        raise BadInput(
            f"{what}: {text!r} is longer than PostgreSQL allows ({MAX_MS}ms, about 24 days); "
            "use a shorter duration, or 0 for no limit"
        )
    return f"{ms}ms"


def _leading_comments(text: str) -> list[tuple[int, str]]:
    lines = []
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if stripped.startswith("--"):
            lines.append((number, stripped[2:].strip()))
        elif stripped:
            break
    return lines


def read(migration: Migration) -> Directives:
    """The directives of one file; BadInput on one we don't know, so a typo is never ignored."""
    head = migration.sql[:65536].decode("utf-8", "ignore")  # directives live at the top of the file
    if not head.lstrip().startswith("--"):
        return Directives()  # no leading comment: the lines of a big file need not be split
    no_transaction, settings = False, {}
    for number, comment in _leading_comments(head):
        if not comment.lower().startswith(PREFIX):
            continue
        where = f"{migration.path}, line {number}"
        for item in filter(None, (part.strip() for part in re.split(r"[,\s]+", comment[len(PREFIX) :]))):
            name, _, value = item.partition("=")
            name = name.lower()
            if name == NO_TRANSACTION and not value:
                no_transaction = True
            elif name in SETTINGS and value:
                settings[SETTINGS[name]] = setting_value(value, f"{where}: {name}")
            else:
                known = ", ".join([NO_TRANSACTION, *(f"{n}=DURATION" for n in SETTINGS)])
                raise BadInput(f"{where}: unknown directive {item!r}; runner knows {known}")
    return Directives(no_transaction, settings)
