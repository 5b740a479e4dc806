"""runner squash: files 1..V replaced by one generated file, on real databases, compared by real dumps."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from runner import api, shell
from runner import schema_file as dump
from tests.conftest import fresh_database
from tests.helpers import SQL_DIR, assert_clean_error, cli_env, query, runner_cli, scratch_databases, write


def seed(tmp_path: Path) -> Path:
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder, ignore=shutil.ignore_patterns("schema.sql"))
    return folder


def everything(dsn: str) -> str:
    """Schema and rows, runner's tables and pg_dump's varying lines left out. A column whose default differs at
    each run (a random uuid, now()) is left out of the rows: no two builds of the original files agree on it."""
    done = subprocess.run([dump.pg_dump(), "--no-owner", "--schema-only",
                           "--exclude-table=public.runner_migrations*", dsn],
                          capture_output=True, text=True, check=True)  # fmt: skip
    schema = [line for line in done.stdout.splitlines()
              if not line.startswith(("\\restrict", "\\unrestrict")) and "pg_attver=" not in line]  # fmt: skip
    volatile = query(
        dsn,
        r"""
        SELECT table_name::text, array_agg(column_name::text) FILTER (
                   WHERE column_default ~ '(now|random|uuid)\(|CURRENT_TIMESTAMP')
        FROM information_schema.columns c
        JOIN pg_tables t ON t.schemaname = c.table_schema AND t.tablename = c.table_name
        WHERE table_schema = 'public' AND NOT starts_with(table_name, 'runner_migrations')
        GROUP BY table_name ORDER BY table_name""",
    )
    rows = [(name, query(dsn, f"SELECT coalesce(jsonb_agg(r ORDER BY r::text), '[]') FROM "
                              f"(SELECT to_jsonb(t) - %s::text[] AS r FROM public.{name} t) rows", (left or [],)))
            for name, left in volatile]  # fmt: skip
    return "\n".join(schema) + "\n" + repr(rows)


def psql_file(dsn: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shell.psql(), "-X", "-q", "--set=ON_ERROR_STOP=1", "--file", str(path), dsn],
                          capture_output=True, text=True)  # fmt: skip


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.sql"))}


def test_a_squashed_folder_builds_the_same_database_and_an_old_one_runs_nothing(
    dsn: str, another_dsn: str, server_dsn: str, tmp_path: Path
) -> None:
    folder = seed(tmp_path)
    api.migrate(dsn, folder)  # the old database: it applied the 14 files
    done = runner_cli("squash", "--to", "13", "--dsn", dsn, "--dir", folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0013_squashed.sql: it replaces 13 files, 0001_create_workflow_requests.sql to " \
           "0013_create_admin_config.sql" in done.stdout  # fmt: skip
    assert sorted(listing(folder)) == ["0013_squashed.sql", "0014_add_skip_fields_to_approval_levels.sql"]
    squashed = (folder / "0013_squashed.sql").read_text("utf-8")
    assert squashed.startswith("-- runner squash: replaces 13 files, versions 1 to 13")
    assert "-- replaces 1 sha256:" in squashed and "INSERT INTO public.admin_config" in squashed

    for command in ("status", "verify", "migrate"):  # the old database: nothing missing, no drift, nothing to run
        old = runner_cli(command, "--dsn", dsn, "--dir", folder)
        assert old.returncode == 0, old.stdout + old.stderr
        assert "missing" not in old.stdout and "pending" not in old.stdout
    assert "No drift: 3 applied" in runner_cli("verify", "--dsn", dsn, "--dir", folder).stdout

    new = runner_cli("migrate", "--dsn", another_dsn, "--dir", folder)  # a new one: the squash, then the rest
    assert new.returncode == 0 and "Applied 3 migration(s)" in new.stdout, new.stdout + new.stderr
    with fresh_database(server_dsn) as original, fresh_database(server_dsn) as reprinted:
        api.migrate(original, SQL_DIR)
        # The original build, dumped and loaded once more: PostgreSQL reads some of what it prints back as an
        # equivalent expression (see runner.schema_file.reprinted), as the squashed file was.
        dumped = tmp_path / "original.sql"
        whole = subprocess.run([dump.pg_dump(), "--no-owner", "--exclude-table=public.runner_migrations*", original],
                               capture_output=True, text=True, check=True)  # fmt: skip
        # Without the setting pg_dump 18 writes for servers from 17 on: a server 15 would refuse it.
        dumped.write_text(whole.stdout.replace("SET transaction_timeout = 0;\n", ""), "utf-8")
        assert psql_file(reprinted, dumped).returncode == 0
        assert everything(another_dsn) == everything(reprinted)
        assert query(another_dsn, "SELECT count(*) FROM admin_config") == query(
            original, "SELECT count(*) FROM admin_config"
        )
    with fresh_database(server_dsn) as by_hand:  # plain SQL that psql runs
        ran = psql_file(by_hand, folder / "0013_squashed.sql")
        assert ran.returncode == 0, ran.stderr


def test_a_squash_of_a_squash_covers_databases_of_either_age(dsn: str, another_dsn: str, tmp_path: Path) -> None:
    folder = seed(tmp_path)
    api.migrate(dsn, folder)
    api.squash_files(dsn, folder, to=13)
    api.migrate(another_dsn, folder)  # built from the first squash
    api.squash_files(another_dsn, folder, to=14)
    assert sorted(listing(folder)) == ["0014_squashed.sql"]
    for database in (dsn, another_dsn):
        plan = api.status(database, folder)
        assert [(e.name, e.state.value) for e in plan.entries] == [
            ("0014_squashed.sql", "applied"),
            ("repeatable/kpi_views.sql", "applied"),
        ]
        assert api.verify(database, folder).clean


def test_a_database_that_applied_only_some_of_the_files_is_refused(dsn: str, another_dsn: str, tmp_path: Path) -> None:
    folder = seed(tmp_path)
    api.migrate(dsn, folder)
    api.migrate(another_dsn, folder, to=5)  # deployed long ago, up to 5
    api.squash_files(dsn, folder, to=13)
    before = query(another_dsn, "SELECT version FROM runner_migrations ORDER BY version")
    result = runner_cli("migrate", "--dsn", another_dsn, "--dir", folder)
    assert_clean_error(result, 1, "0013_squashed.sql (squashed): the database applied 5 of the 13 files it replaces",
                       "files from before the squash", "Nothing was applied")  # fmt: skip
    assert query(another_dsn, "SELECT version FROM runner_migrations ORDER BY version") == before
    verify = runner_cli("verify", "--dsn", another_dsn, "--dir", folder)
    assert verify.returncode == 1 and "incomplete" in verify.stdout


def test_squash_refuses_what_it_cannot_replace_and_changes_nothing(dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "0001_create_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    write(folder, "0002_seed.sql", "INSERT INTO things VALUES (1);\n")
    concurrently = "-- runner: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON things (id);\n"
    write(folder, "0003_index.sql", concurrently)
    write(folder, "0004_more.sql", "ALTER TABLE things ADD COLUMN IF NOT EXISTS owner text DEFAULT :'who';\n")
    write(folder / "repeatable", "views.sql", "CREATE OR REPLACE VIEW v AS SELECT * FROM things;\n")
    api.migrate(dsn, folder, to=3)
    files, before = listing(folder), scratch_databases(dsn)

    def refused(*args: str, needles: tuple[str, ...]) -> None:
        assert_clean_error(runner_cli("squash", *args, "--dsn", dsn, "--dir", folder), 2, *needles)
        assert listing(folder) == files

    refused("--to", "3", needles=("0003_index.sql runs without a transaction", "squash up to a version below 3"))
    refused("--to", "4", "--set", "who=me", needles=("0003_index.sql runs without a transaction",))
    refused("--to", "9", needles=("--to 9: no migration file has this version",))
    refused("--to", "1", needles=("a squash replaces two files or more",))
    write(folder, "0003_index.sql", "CREATE INDEX IF NOT EXISTS i ON things (id);\n")
    api.unmark(dsn, folder, versions=["3"])
    files = listing(folder)
    refused("--to", "3", needles=("not every file up to it is applied", "0003_index.sql (pending)"))
    refused("--to", "4", "--set", "who=me", needles=("0004_more.sql uses psql variables",))
    refused("--to", "repeatable/views.sql", needles=())  # not a version: a usage error, exit 2
    assert scratch_databases(dsn) <= before  # none was made and left


def test_a_replaced_file_left_beside_its_squash_is_refused(dsn: str, tmp_path: Path) -> None:
    folder = seed(tmp_path)
    api.migrate(dsn, folder)
    kept = (folder / "0003_create_participants.sql").read_bytes()
    api.squash_files(dsn, folder, to=13)
    write(folder, "0003_create_participants.sql", kept)  # a merge brought it back
    assert_clean_error(runner_cli("migrate", "--dsn", dsn, "--dir", folder), 2,
                       "0003_create_participants.sql is replaced by 0013_squashed.sql")  # fmt: skip


def test_after_a_squash_the_schema_file_of_an_old_database_is_what_the_folder_builds(dsn: str, tmp_path: Path) -> None:
    """The old database keeps the records of the files it ran; its schema file names the squashed file instead,
    as a database built from the folder records it, and the check passes."""
    folder = seed(tmp_path)
    api.migrate(dsn, folder)
    api.squash_files(dsn, folder, to=13)
    path = folder / "schema.sql"
    path.write_text(api.dump(dsn, directory=folder), "utf-8")
    rows = path.read_text("utf-8").partition("-- runner's tracking rows")[2]
    assert "(13, '0013_squashed.sql'" in rows and "0001_create_workflow_requests.sql" not in rows
    assert api.check_dump(dsn, folder, schema_file=path).same


def test_a_tracking_table_in_a_schema_of_its_own_is_not_in_the_squashed_file(
    dsn: str, another_dsn: str, tmp_path: Path
) -> None:
    folder = tmp_path / "sql"
    write(folder, "0001_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    write(folder, "0002_more.sql", "CREATE TABLE IF NOT EXISTS more_things (id int);\n")
    api.migrate(dsn, folder, "ops.migrations")
    api.squash_files(dsn, folder, "ops.migrations", to=2)
    assert "CREATE SCHEMA ops" not in (folder / "0002_squashed.sql").read_text("utf-8")
    done = runner_cli("migrate", "--dsn", another_dsn, "--dir", folder, "--table", "ops.migrations")
    assert done.returncode == 0, done.stdout + done.stderr
    assert query(another_dsn, "SELECT version, name FROM ops.migrations") == [(2, "0002_squashed.sql")]


def test_a_squash_header_edited_by_hand_is_one_error(dsn: str, tmp_path: Path) -> None:
    folder = seed(tmp_path)
    api.migrate(dsn, folder)
    api.squash_files(dsn, folder, to=13)
    path = folder / "0013_squashed.sql"
    lines = path.read_text("utf-8").split("\n")
    lines[5] = "-- replaces one " + lines[5].split(" ", 3)[3]
    path.write_text("\n".join(lines), "utf-8")
    for command in ("status", "verify", "migrate"):
        assert_clean_error(runner_cli(command, "--dsn", dsn, "--dir", folder), 2,
                           "0013_squashed.sql, line 6: not a line runner squash writes")  # fmt: skip


def test_database_settings_a_dump_does_not_hold_refuse_the_squash(dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "0001_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    write(folder, "0002_settings.sql", "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET work_mem = %L', "
                                       "current_database(), '7MB'); END $$;\n")  # fmt: skip
    api.migrate(dsn, folder)
    files, before = listing(folder), scratch_databases(dsn)
    result = runner_cli("squash", "--to", "2", "--dsn", dsn, "--dir", folder)
    assert_clean_error(result, 2, "the files set database settings (work_mem=7MB)", "Squash up to a version below")
    assert listing(folder) == files and scratch_databases(dsn) <= before


def test_a_squash_writes_the_projects_schema_file_again_so_the_check_passes(dsn: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project, "pyproject.toml", '[tool.runner]\nschema-file = "sql/schema.sql"\n')
    shutil.copytree(SQL_DIR, project / "sql", ignore=shutil.ignore_patterns("schema.sql"))
    own = cli_env(DATABASE_URL=dsn)
    assert runner_cli("migrate", cwd=project, env=own).returncode == 0
    done = runner_cli("squash", "--to", "13", cwd=project, env=own)
    assert done.returncode == 0 and "Rewrote sql/schema.sql: its tracking rows name 0013_squashed.sql" in done.stdout
    check = runner_cli("dump", "--check", cwd=project, env=own)
    assert check.returncode == 0 and "sql/schema.sql is what the files of sql build" in check.stdout, check.stdout
