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


def _squashed(versions: list[int], wrong: int | None = None) -> Migration:
    """A squashed file of ``versions``, as runner squash writes its header; ``wrong`` is listed with another
    checksum than the one its file was applied with."""
    from runner.squash import header

    replaced = [_file(v) for v in versions]
    if wrong is not None:
        other = b"-- another file\n"
        replaced = [Migration(v, f"{v}_t.sql", "", other, checksum(other)) if v == wrong else f for v, f in
                    zip(versions, replaced, strict=True)]  # fmt: skip
    sql = (header(replaced, "runner squash") + "CREATE TABLE t (id int);\n").encode()
    last = versions[-1]
    return Migration(last, f"{last}_squashed.sql", f"sql/{last}_squashed.sql", sql, checksum(sql))


def _own_record(f: Migration) -> Record:
    return Record(f.version, f.name, f.checksum, _AT, 1, "postgres")


@pytest.mark.parametrize(
    ("recorded", "state"),
    [
        ([1, 2, 3], "applied"),  # applied the three files before they were squashed
        ([], "pending"),  # a new database runs the squashed file
        ([1], "incomplete"),  # it applied only some of them: neither applied nor to run
        ([1, 2], "incomplete"),
        ([3], "incomplete"),  # the last only (the others were merged later): still not what the squash stands for
        ([1, 2, 3, 4], "applied"),  # and a later file, which keeps its state
    ],
    ids=["applied before", "new database", "one of three", "two of three", "the last only", "a later file too"],
)
def test_a_squashed_file_stands_for_the_files_it_replaces(recorded: list[int], state: str) -> None:
    squashed, later = _squashed([1, 2, 3]), _file(4)
    plan = make_plan([squashed, later], [_record(v) for v in recorded])
    assert [(e.version, e.state.value) for e in plan.entries] == [
        (3, state),
        (4, "applied" if 4 in recorded else "pending"),
    ]
    assert not plan.having(State.MISSING)  # the replaced files' records are the squashed file's
    assert (state == "incomplete") == bool(plan.drift)


def test_a_database_built_from_the_squashed_file_has_its_own_record() -> None:
    squashed = _squashed([1, 2, 3])
    assert [e.state for e in make_plan([squashed], [_own_record(squashed)]).entries] == [State.APPLIED]


def test_a_replaced_file_applied_with_another_checksum_is_not_covered() -> None:
    squashed = _squashed([1, 2, 3], wrong=2)
    [entry] = make_plan([squashed], [_record(v) for v in (1, 2, 3)]).entries
    assert entry.state == State.INCOMPLETE and "2_t.sql was applied with checksum" in entry.detail


def test_a_squash_of_a_squash_covers_databases_of_either_age() -> None:
    from runner.squash import header

    first = _squashed([1, 2, 3])
    later = [first, _file(4), _file(5)]
    sql = (header(later, "runner squash") + "SELECT 1;\n").encode()
    second = Migration(5, "5_squashed.sql", "sql/5_squashed.sql", sql, checksum(sql))
    oldest = [_record(v) for v in (1, 2, 3, 4, 5)]  # applied the original five
    newer = [_own_record(first), _record(4), _record(5)]  # built from the first squash
    for records in (oldest, newer):
        assert [e.state for e in make_plan([second], records).entries] == [State.APPLIED]


@pytest.mark.parametrize(
    "line",
    [
        "-- replaces one sha256:ab 1_t.sql",
        "-- replaces 1",
        "-- replaces the old users table",
        "--   replaces 1 sha256:ab x",
    ],
)
def test_a_squash_header_runner_did_not_write_is_refused_by_line(line: str) -> None:
    from runner.errors import BadInput
    from runner.squash import replaced

    sql = f"-- runner squash: replaces 1 files, versions 1 to 1\n{line}\n\nSELECT 1;\n".encode()
    with pytest.raises(BadInput, match=r"sql/1_squashed.sql(, line 2: not a line runner squash writes|: a squash)"):
        replaced(Migration(1, "1_squashed.sql", "sql/1_squashed.sql", sql, checksum(sql)))
