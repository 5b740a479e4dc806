"""`runner verify` and `runner status`: drift between the folder and the tracking table."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import query, runner_cli, write

import runner


def _setup(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE a (id int);\n")
    write(migrations, "2_b.sql", "CREATE TABLE b (id int);\n")
    write(migrations, "3_c.sql", "CREATE TABLE c (id int);\n")
    assert runner_cli("migrate", "--dsn", dsn, "--dir", migrations).returncode == 0


def test_clean_folder_verifies_with_exit_0(dsn: str, migrations: Path) -> None:
    _setup(dsn, migrations)
    result = runner_cli("verify", "--dsn", dsn, "--dir", migrations)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "No drift: 3 applied"


def test_verify_reports_edited_missing_and_out_of_order_with_exit_1(dsn: str, migrations: Path) -> None:
    _setup(dsn, migrations)
    write(migrations, "2_b.sql", "CREATE TABLE b (id bigint);\n")
    (migrations / "3_c.sql").unlink()
    write(migrations, "0_early.sql", "SELECT 1;\n")
    write(migrations, "9_new.sql", "SELECT 1;\n")

    result = runner_cli("verify", "--dsn", dsn, "--dir", migrations)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("out of order 0_early.sql: version 0 is older than the newest applied version 3")
    assert lines[1].startswith("edited       2_b.sql: checksum sha256:")
    assert lines[2].startswith("missing      3_c.sql: applied ")
    assert lines[3] == "pending      9_new.sql"
    assert lines[4] == "Drift found: 1 applied, 1 pending, 1 edited, 1 missing, 1 out of order"

    doc = json.loads(runner_cli("verify", "--dsn", dsn, "--dir", migrations, "--json").stdout)
    assert doc["clean"] is False
    assert [(d["name"], d["state"]) for d in doc["drift"]] == [
        ("0_early.sql", "out_of_order"), ("2_b.sql", "edited"), ("3_c.sql", "missing")
    ]  # fmt: skip
    assert [p["name"] for p in doc["pending"]] == ["9_new.sql"]


def test_pending_files_are_drift_only_with_strict(dsn: str, migrations: Path) -> None:
    _setup(dsn, migrations)
    write(migrations, "4_d.sql", "SELECT 1;\n")
    assert runner_cli("verify", "--dsn", dsn, "--dir", migrations).returncode == 0
    strict = runner_cli("verify", "--dsn", dsn, "--dir", migrations, "--strict")
    assert strict.returncode == 1
    assert "pending      4_d.sql" in strict.stdout


def test_crlf_and_bom_checkouts_are_not_edits(dsn: str, migrations: Path) -> None:
    _setup(dsn, migrations)
    write(migrations, "1_a.sql", b"\xef\xbb\xbfCREATE TABLE a (id int);\r\n")
    write(migrations, "2_b.sql", b"CREATE TABLE b (id int);\r")
    result = runner_cli("verify", "--dsn", dsn, "--dir", migrations)
    assert result.returncode == 0, result.stdout


def test_renamed_file_is_reported(dsn: str, migrations: Path) -> None:
    _setup(dsn, migrations)
    (migrations / "2_b.sql").rename(migrations / "2_bee.sql")
    result = runner_cli("verify", "--dsn", dsn, "--dir", migrations)
    assert result.returncode == 1
    assert "edited       2_bee.sql: renamed from 2_b.sql (same content)" in result.stdout


def test_status_json_shape(dsn: str, migrations: Path) -> None:
    _setup(dsn, migrations)
    write(migrations, "4_d.sql", "SELECT 1;\n")
    result = runner_cli("status", "--dsn", dsn, "--dir", migrations, "--json")
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    rows = doc["migrations"]
    assert [(r["version"], r["name"], r["state"]) for r in rows] == [
        (1, "1_a.sql", "applied"), (2, "2_b.sql", "applied"), (3, "3_c.sql", "applied"), (4, "4_d.sql", "pending")
    ]  # fmt: skip
    assert all(r["checksum"].startswith("sha256:") for r in rows)
    assert rows[0]["executed_at"] is not None and rows[3]["executed_at"] is None


def test_status_table_for_people(dsn: str, migrations: Path) -> None:
    _setup(dsn, migrations)
    write(migrations, "2_b.sql", "-- edited\nCREATE TABLE b (id int);\n")
    result = runner_cli("status", "--dsn", dsn, "--dir", migrations)
    assert result.returncode == 0
    table = result.stdout
    for fragment in ("Version", "Name", "State", "Executed at", "1_a.sql", "edited", "applied"):
        assert fragment in table
    assert table.strip().splitlines()[-1] == "2 applied, 1 edited"


def test_status_and_verify_do_not_create_the_tracking_table(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    plan = runner.status(dsn, migrations)
    assert [(e.name, e.state.value) for e in plan.entries] == [("1_a.sql", "pending")]
    assert runner.verify(dsn, migrations).clean
    assert not runner.verify(dsn, migrations, strict=True).clean
    assert query(dsn, "SELECT to_regclass('public.runner_migrations')") == [(None,)]
