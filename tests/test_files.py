"""File rules and checksums: what counts as a migration, in what order, and what is an edit."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import assert_clean_error, runner_cli, write

from runner.errors import BadInput
from runner.files import discover

# A port nothing listens on: a command that reached the database would exit 5, not 2.
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres"


def test_order_is_numeric_and_non_sql_files_are_ignored(migrations: Path) -> None:
    for name in ["10_ten.sql", "2_two.sql", "0001-one.sql", "20251104120000_stamp.sql", "README.md",
                 "3_three.sql.bak", ".0004_hidden.sql"]:  # fmt: skip
        write(migrations, name, "select 1;\n")
    (migrations / "5_folder").mkdir()
    found = discover(migrations)
    assert [(m.version, m.name) for m in found] == [
        (1, "0001-one.sql"),
        (2, "2_two.sql"),
        (10, "10_ten.sql"),
        (20251104120000, "20251104120000_stamp.sql"),
    ]


@pytest.mark.parametrize(
    ("content_a", "content_b"),
    [
        (b"create table t (a int);\nselect 1;\n", b"create table t (a int);\r\nselect 1;\r\n"),
        (b"create table t (a int);\nselect 1;\n", b"\xef\xbb\xbfcreate table t (a int);\nselect 1;\n"),
        (b"create table t (a int);\nselect 1;\n", b"create table t (a int);\rselect 1;\r"),
    ],
    ids=["crlf", "bom", "cr"],
)
def test_line_endings_and_bom_do_not_change_the_checksum(tmp_path: Path, content_a: bytes, content_b: bytes) -> None:
    a = discover_one(tmp_path / "a", content_a)
    b = discover_one(tmp_path / "b", content_b)
    assert a.checksum == b.checksum
    assert a.checksum.startswith("sha256:") and len(a.checksum) == len("sha256:") + 64
    assert b.sql == content_a  # what runs is the normalised text


def test_a_real_edit_changes_the_checksum(tmp_path: Path) -> None:
    assert (
        discover_one(tmp_path / "a", b"select 1;\n").checksum != discover_one(tmp_path / "b", b"select 2;\n").checksum
    )


BASE = "CREATE TABLE t (id int, note text DEFAULT 'a  b');\nINSERT INTO t VALUES (1, '\"location\":5');\n"


@pytest.mark.parametrize(
    "edited",
    [
        "-- reviewed\n" + BASE,
        BASE.replace("(id int, ", "(\n    id   int, /* key */\n    "),
        BASE.replace("CREATE TABLE t", "create table T"),  # keywords and unquoted names fold case
        BASE.replace(";\nINSERT", ";\n\n\n  INSERT") + "\n\n",
    ],
    ids=["comment", "layout-and-inner-comment", "case", "blank-lines"],
)
def test_comments_layout_and_case_keep_the_code_checksum(tmp_path: Path, edited: str) -> None:
    base = discover_one(tmp_path / "a", BASE.encode())
    other = discover_one(tmp_path / "b", edited.encode())
    assert base.checksum != other.checksum
    assert base.code_checksum is not None and base.code_checksum == other.code_checksum


@pytest.mark.parametrize(
    "edited",
    [
        BASE.replace("'a  b'", "'a b'"),  # whitespace inside a string is data
        BASE.replace('"location":5', '"location":6'),  # a string that looks like a dropped position
        BASE.replace("CREATE TABLE t", 'CREATE TABLE "T"'),  # a quoted name keeps its case
        BASE.replace("VALUES (1,", "VALUES (1.0,"),
        BASE.replace("note text", "note varchar(10)"),
        BASE + "SELECT 1;\n",
    ],
    ids=["string-space", "string-like-position", "quoted-name", "number", "type", "statement-added"],
)
def test_any_change_to_the_sql_changes_the_code_checksum(tmp_path: Path, edited: str) -> None:
    base = discover_one(tmp_path / "a", BASE.encode())
    assert base.code_checksum != discover_one(tmp_path / "b", edited.encode()).code_checksum


def test_sql_the_parser_cannot_read_has_no_code_checksum(tmp_path: Path) -> None:
    assert discover_one(tmp_path / "a", b"CREATE TABLE t (id int;\n").code_checksum is None


def discover_one(folder: Path, content: bytes):  # type: ignore[no-untyped-def]
    write(folder, "1_x.sql", content)
    (migration,) = discover(folder)
    return migration


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("create_users.sql", b"select 1;", "not a migration file name"),
        ("0007.sql", b"select 1;", "not a migration file name"),
        ("0007_.sql", b"select 1;", "not a migration file name"),
        ("v7_users.sql", b"select 1;", "not a migration file name"),
        ("0007_users.SQL", b"select 1;", "lower-case .sql"),
        ("0007_latin1.sql", b"select 'caf\xe9';\n", "not valid UTF-8 (byte 0xe9 at line 1)"),
        ("0007_utf16.sql", "select 1;".encode("utf-16"), "UTF-16"),
        ("0007_nul.sql", b"select 1;\nselect\x00 2;", "NUL byte at line 2"),
        ("99999999999999999999_huge.sql", b"select 1;", "larger than"),
    ],
)
def test_bad_files_exit_2_naming_the_file_before_touching_the_database(
    migrations: Path, name: str, content: bytes, needle: str
) -> None:
    write(migrations, "0001_fine.sql", "select 1;\n")
    write(migrations, name, content)
    with pytest.raises(BadInput):
        discover(migrations)
    for command in ("migrate", "status", "verify"):
        result = runner_cli(command, "--dir", migrations, "--dsn", UNREACHABLE)
        assert_clean_error(result, 2, name, needle)


def test_two_files_with_one_version_exit_2_naming_both(migrations: Path) -> None:
    write(migrations, "0003_a.sql", "select 1;\n")
    write(migrations, "3_b.sql", "select 1;\n")
    result = runner_cli("migrate", "--dir", migrations, "--dsn", UNREACHABLE)
    assert_clean_error(result, 2, "0003_a.sql", "3_b.sql", "version 3")


def test_missing_folder_exits_2(tmp_path: Path) -> None:
    result = runner_cli("migrate", "--dir", tmp_path / "nope", "--dsn", UNREACHABLE)
    assert_clean_error(result, 2, "does not exist")


def test_dir_that_is_a_file_exits_2(tmp_path: Path) -> None:
    write(tmp_path, "sql", "not a folder")
    result = runner_cli("migrate", "--dir", tmp_path / "sql", "--dsn", UNREACHABLE)
    assert_clean_error(result, 2, "is not a folder")
