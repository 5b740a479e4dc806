"""The plan, pure: files, records and the history in, a state per migration out (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runner.files import Migration, checksum
from runner.plan import State, make_plan
from runner.tracking import Record

_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _file(version: int) -> Migration:
    sql = f"CREATE TABLE t{version} (id int);\n".encode()
    return Migration(version, f"{version}_t.sql", f"sql/{version}_t.sql", sql, checksum(sql))


def _record(version: int) -> Record:
    return Record(version, f"{version}_t.sql", _file(version).checksum, _AT, 1, "postgres")


@pytest.mark.parametrize(
    ("recorded", "last", "states"),
    [
        ([1, 2, 3], {}, ["applied", "applied", "applied"]),
        ([1, 3], {}, ["applied", "out_of_order", "applied"]),
        ([1], {}, ["applied", "pending", "pending"]),
        # The history says applied, the table has no row: deleted by hand, whatever its place.
        ([1, 3], {2: ("apply", _AT)}, ["applied", "deleted", "applied"]),
        ([1, 2], {3: ("mark", _AT)}, ["applied", "applied", "deleted"]),
        ([1, 2], {3: ("baseline", _AT)}, ["applied", "applied", "deleted"]),
        # `runner unmark` removed it: pending by intent, not out of order.
        ([1, 3], {2: ("unmark", _AT)}, ["applied", "pending", "applied"]),
    ],
    ids=["all applied", "gap", "two new", "deleted in the middle", "deleted last (mark)", "deleted (baseline)",
         "unmarked"],
)  # fmt: skip
def test_states_from_files_records_and_history(
    recorded: list[int], last: dict[int, tuple[str, datetime]], states: list[str]
) -> None:
    plan = make_plan([_file(v) for v in (1, 2, 3)], [_record(v) for v in recorded], last=last)
    assert [e.state.value for e in plan.entries] == states


def test_a_deleted_record_is_drift_and_never_to_run() -> None:
    plan = make_plan([_file(1), _file(2)], [_record(1)], last={2: ("apply", _AT)})
    assert [e.name for e in plan.drift] == ["2_t.sql"]
    assert plan.to_run == []
    assert plan.entries[1].detail.startswith("record deleted by hand: the history says it was applied (apply, 2026-12")


def test_an_unmarked_file_is_to_run_and_says_why() -> None:
    plan = make_plan([_file(1), _file(2), _file(3)], [_record(1), _record(3)], last={2: ("unmark", _AT)})
    assert [e.name for e in plan.to_run] == ["2_t.sql"]
    assert plan.to_run[0].unmarked and plan.to_run[0].state == State.PENDING
    assert plan.drift == []
