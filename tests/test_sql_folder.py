"""The project's own migrations: the workflow-approval schema in sql/."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
from helpers import SQL_DIR, query, runner_cli

from runner import repeatable
from runner.files import discover

EXPECTED = [
    "0001_create_workflow_requests.sql",
    "0002_create_approval_levels.sql",
    "0003_create_participants.sql",
    "0004_create_documents.sql",
    "0005_create_subscriptions.sql",
    "0006_create_activities.sql",
    "0007_create_work_notes.sql",
    "0008_create_work_note_attachments.sql",
    "0009_add_tat_alert_fields.sql",
    "0010_create_tat_alerts.sql",
    "0011_create_kpi_views.sql",
    "0012_create_holidays.sql",
    "0013_create_admin_config.sql",
    "0014_add_skip_fields_to_approval_levels.sql",
]


def test_the_fourteen_files_in_their_order() -> None:
    assert [m.name for m in discover(SQL_DIR)] == EXPECTED
    assert [m.name for m in repeatable.discover(SQL_DIR)] == ["repeatable/kpi_views.sql"]


def test_all_files_apply_to_an_empty_database_then_each_runs_again_harmlessly(dsn: str) -> None:
    result = runner_cli("migrate", "--dsn", dsn, "--dir", SQL_DIR)
    assert result.returncode == 0, result.stderr
    assert "Applied 15 migration(s)" in result.stdout
    tables = {r[0] for r in query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"workflow_requests", "approval_levels", "participants", "documents", "subscriptions", "activities",
            "work_notes", "work_note_attachments", "tat_alerts", "holidays", "admin_config",
            "runner_migrations"} <= tables  # fmt: skip
    skip_columns = query(
        dsn,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'approval_levels' "
        "AND column_name IN ('is_skipped', 'skipped_by', 'skipped_at', 'skip_reason') ORDER BY 1",
    )
    assert [r[0] for r in skip_columns] == ["is_skipped", "skip_reason", "skipped_at", "skipped_by"]
    assert query(dsn, "SELECT count(*) > 0 FROM pg_views WHERE schemaname = 'public'") == [(True,)]

    # Each file again, directly, bypassing the tracking table: the guards make it harmless,
    # in one transaction per file (as runner runs it) and outside one (as psql does).
    with psycopg.connect(dsn, autocommit=True) as conn:
        for migration in discover(SQL_DIR) + repeatable.discover(SQL_DIR):
            with conn.transaction():
                conn.execute(migration.sql)  # type: ignore[call-overload]
            conn.execute(migration.sql)  # type: ignore[call-overload]

    again = runner_cli("migrate", "--dsn", dsn, "--dir", SQL_DIR)
    assert again.stdout.strip() == "All migrations are up to date"
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(14,)]
    assert query(dsn, "SELECT name FROM runner_migrations_repeatable") == [("repeatable/kpi_views.sql",)]


def _views(dsn: str) -> list[tuple[object, ...]]:
    return query(dsn, "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1")


def test_a_database_migrated_before_the_views_became_repeatable_keeps_them_as_they_were(
    dsn: str, tmp_path: Path
) -> None:
    numbered = tmp_path / "sql"  # the folder as it was: the fourteen numbered files, no repeatable/
    shutil.copytree(SQL_DIR, numbered, ignore=shutil.ignore_patterns(repeatable.FOLDER))
    assert runner_cli("migrate", "--dsn", dsn, "--dir", numbered).returncode == 0
    views = _views(dsn)
    assert len(views) == 6

    now = runner_cli("migrate", "--dsn", dsn, "--dir", SQL_DIR)
    assert now.returncode == 0, now.stderr
    completed = [line.split()[1] for line in now.stdout.splitlines() if line.startswith("Completed:")]
    assert completed == ["repeatable/kpi_views.sql"]
    assert _views(dsn) == views
    verify = runner_cli("verify", "--dsn", dsn, "--dir", SQL_DIR)
    assert verify.returncode == 0 and "No drift" in verify.stdout, verify.stdout
