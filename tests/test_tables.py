"""The status and history tables on a terminal of 80 columns: no version, name or state is ever cut
("…"); a timestamp wraps to date above time, a detail wraps, and a name folds only as a last resort.

The layout rule is pure (report.fit) and tested from a table; the rendering with rich's own Console at
a given width, which is what a terminal of that width gets; and once through the real command on a
real pseudo-terminal.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from pathlib import Path

import pytest
from helpers import ROOT, cli_env, on_terminals, runner_cli, write
from rich.console import Console

from runner import report
from runner.history import Event
from runner.plan import Entry, Plan, State
from runner.tracking import Record

AT = datetime(2026, 11, 25, 17, 35, 2)
LONG = "0015_a_file_name_of_sixty_characters_that_goes_on_for_ever.sql"
EDITED = "checksum sha256:8761bcc02c86 when applied, sha256:33f76a4c373c now"
FAILED = ("0015_seed_holidays.sql failed in the statement at line 9: division by zero (SQLSTATE 22012). It was "
          "rolled back: nothing of it was kept, and later files did not run")  # fmt: skip
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _record(version: int | None, name: str) -> Record:
    return Record(version, name, "sha256:00", AT, 1, "postgres")


def _plan() -> Plan:
    return Plan([
        Entry(1, "0001_create_things.sql", State.APPLIED, None, _record(1, "0001_create_things.sql")),
        Entry(14, "0014_add_skip_fields_to_approval_levels.sql", State.EDITED, None,
              _record(14, "0014_add_skip_fields_to_approval_levels.sql"), detail=EDITED),
        Entry(20251104120000, LONG, State.OUT_OF_ORDER, None, None),
        Entry(None, "repeatable/kpi_views.sql", State.OUTDATED, None, _record(None, "repeatable/kpi_views.sql"),
              detail="checksum sha256:54fdeedeffd7 when last run, sha256:4f20dbce496c now; migrate runs it again"),
    ])  # fmt: skip


def _events() -> list[Event]:
    return [
        Event(1, AT, "apply", None, "repeatable/kpi_views.sql", None, "sha256:54", "ok", None, "postgres"),
        Event(2, AT, "apply", 15, LONG, None, "sha256:aa", "failed", FAILED, "postgres"),
        Event(3, AT, "baseline", 15, "0015_index_request_priority.sql", None, None, "ok", None, "deploy_bot"),
        Event(4, AT, "accept", 15, "0015_index_request_priority.sql", "sha256:189f4e1cc519aa", "sha256:eb04f5d21c68bb",
              "ok", None, "postgres"),
    ]  # fmt: skip


def _shown(width: int, draw) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    draw(Console(width=width, file=out, color_system=None))
    return out.getvalue()


def _column(shown: str, index: int) -> str:
    """The text of one column, top to bottom, with each cell's lines joined: a folded name reads whole."""
    return "".join(line.split("│")[index].strip() for line in shown.splitlines() if line.count("│") >= index)


def _assert_nothing_cut(shown: str, width: int, columns: dict[int, list[str]]) -> None:
    assert "…" not in shown, shown
    assert max(len(line.rstrip()) for line in shown.splitlines()) <= width, shown
    for index, texts in columns.items():
        joined = _column(shown, index)
        for text in texts:
            assert text.replace(" ", "") in joined.replace(" ", ""), (text, shown)


def test_on_80_columns_status_cuts_no_version_name_or_state_and_wraps_each_detail() -> None:
    plan = _plan()
    shown = _shown(80, lambda console: report.print_status_table(plan, console))
    _assert_nothing_cut(shown, 80, {0: ["1", "14", "20251104120000"], 1: [e.name for e in plan.entries] + [EDITED],
                                    2: ["applied", "edited", "out_of_order", "outdated"]})  # fmt: skip
    assert "│   checksum sha256:8761bcc02c86" in shown, "a detail goes below its name, indented"
    assert shown.rstrip().endswith("1 applied, 1 edited, 1 out of order, 1 outdated")


def test_on_80_columns_history_cuts_no_action_name_outcome_or_role_and_wraps_the_error() -> None:
    events = _events()
    shown = _shown(80, lambda console: report.print_history(events, console))
    _assert_nothing_cut(shown, 80, {1: ["apply", "baseline", "accept"], 2: [e.name for e in events] + [FAILED],
                                    3: ["ok", "failed"], 4: ["postgres", "deploy_bot"]})  # fmt: skip
    assert "sha256:189f4e1cc519 ->" in shown


def test_names_that_fit_never_fold_a_time_wraps_first() -> None:
    plan = Plan([Entry(14, "0014_add_skip_fields_to_approval_levels.sql", State.APPLIED, None,
                       _record(14, "0014_add_skip_fields_to_approval_levels.sql"))])  # fmt: skip
    lines = _shown(80, lambda console: report.print_status_table(plan, console)).splitlines()
    assert "│ 0014_add_skip_fields_to_approval_levels.sql │ applied │ 2026-11-25" in lines[2]
    assert lines[3].rstrip().endswith("│ 17:35:02")


def test_a_wide_terminal_gives_the_details_a_column_and_each_row_one_line() -> None:
    plan = _plan()
    shown = _shown(250, lambda console: report.print_status_table(plan, console))
    header, _, *rows, _ = shown.splitlines()
    assert header.split("┃")[-1].strip() == "Detail"
    assert len(rows) == len(plan.entries)
    assert rows[1].split("│")[-1].strip() == EDITED and "2026-11-25 17:35:02" in rows[1]


@pytest.mark.parametrize(
    ("natural", "detail", "room", "fitted"),
    [
        ([7, 43, 7, 19], 0, 80, ([7, 43, 7, 11], False)),  # the time wraps, the name stays whole
        ([7, 43, 7, 19], 0, 120, ([7, 43, 7, 19], False)),  # room enough: nothing narrows
        ([7, 60, 12, 19], 0, 80, ([7, 39, 12, 11], False)),  # then the name folds
        ([7, 43, 7, 19], 66, 200, ([7, 43, 7, 19, 66], True)),  # the detail beside
        ([7, 43, 7, 19], 66, 120, ([7, 43, 7, 19, 30], True)),  # beside, wrapped
        ([7, 30, 7, 19], 66, 80, ([7, 36, 7, 19], False)),  # below the name, which takes the room left
        ([7, 43, 7, 19], 66, 80, ([7, 44, 7, 11], False)),  # and then the time wraps
        ([7, 60, 12, 5, 19], 0, 20, ([7, 20, 12, 5, 11], False)),  # no room at all: the least of each
    ],
)
def test_the_columns_that_narrow_and_in_what_order(
    natural: list[int], detail: int, room: int, fitted: tuple[list[int], bool]
) -> None:
    headers = ["Version", "Name", *["State"] * (len(natural) - 3), "Executed at"]
    assert report.fit(headers, natural, detail, room, name=1, time=len(natural) - 1) == fitted


def _on_terminal(*args: str, columns: int, env: dict[str, str]) -> str:
    """What the real command shows on a pseudo-terminal ``columns`` wide."""
    shown = on_terminals(*args, cwd=ROOT, env=env, columns=columns)[1]
    return ANSI.sub("", shown).replace("\r\n", "\n")


def test_status_and_history_on_an_80_column_terminal_show_every_name_whole(dsn: str, migrations: Path) -> None:
    write(migrations, "0001_create_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    write(migrations, LONG, "SELECT 1 / 0;\n")
    assert runner_cli("migrate", "--dsn", dsn, "--dir", migrations).returncode == 3
    write(migrations, LONG, "SELECT 1;\n")
    assert runner_cli("migrate", "--dsn", dsn, "--dir", migrations).returncode == 0
    write(migrations, "0001_create_things.sql", "CREATE TABLE IF NOT EXISTS things (id bigint);\n")
    env = {**cli_env(), "TERM": "xterm-256color"}
    status = _on_terminal("status", "--dsn", dsn, "--dir", str(migrations), columns=80, env=env)
    _assert_nothing_cut(status, 80, {0: ["1", "15"], 1: ["0001_create_things.sql", LONG], 2: ["edited", "applied"]})
    assert "checksum sha256:" in _column(status, 1), "the detail of the edited file, below its name"
    history = _on_terminal("history", "--dsn", dsn, columns=80, env=env)
    _assert_nothing_cut(history, 80, {2: [LONG, "division by zero (SQLSTATE 22012)"], 3: ["failed", "ok"]})
    piped = runner_cli("status", "--dsn", dsn, "--dir", migrations).stdout  # a pipe: one line per row
    assert re.search(rf"│ {re.escape(LONG)} +│ applied +│ \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d +│ *$", piped, re.M), piped
