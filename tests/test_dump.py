"""The schema file: runner dump, dump --check, load, and migrate rewriting it, on real servers and real dumps."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from runner import api, shell
from runner import schema_file as dump
from tests.conftest import fresh_database
from tests.helpers import ROOT, SQL_DIR, assert_clean_error, cli_env, query, runner_cli, scratch_databases, write
from tests.test_faults import eventually


def schema_only(dsn: str) -> str:
    """pg_dump's own schema dump, runner's tables and the varying lines left out: what two databases share."""
    done = subprocess.run([dump.pg_dump(), "--schema-only", "--no-owner", "--exclude-table=public.runner_migrations*",
                           dsn], capture_output=True, text=True, check=True)  # fmt: skip
    return "\n".join(line for line in done.stdout.splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict")) and "pg_attver=" not in line)  # fmt: skip


def seed(tmp_path: Path) -> Path:
    """A copy of the project's migrations, to change without touching the project's."""
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder, ignore=shutil.ignore_patterns("schema.sql"))
    return folder


def test_a_dump_is_the_same_bytes_each_time_and_holds_the_tracking_rows_not_runners_tables(dsn: str) -> None:
    api.migrate(dsn, SQL_DIR)
    text = api.dump(dsn)
    assert text == api.dump(dsn)
    assert text.startswith(dump.MARKER)
    for varying in ("\\restrict", "Dumped from", "Dumped by", "transaction_timeout", "pg_attver"):
        assert varying not in text
    tables, _, rest = text.partition("-- PostgreSQL database dump\n")  # runner's tables come first, then pg_dump's
    body, _, rows = rest.partition("-- runner's tracking rows")
    assert 'CREATE TABLE IF NOT EXISTS "public"."runner_migrations" (' in tables
    assert "CREATE TABLE public.workflow_requests" in body and "runner_migrations" not in body
    assert "OWNER TO" not in body and "GRANT" not in body  # another login can load it
    recorded = [row[0] for row in query(dsn, "SELECT name FROM runner_migrations ORDER BY version")]
    assert len(recorded) == 14 and all(f"'{name}'" in rows for name in recorded)
    assert "'repeatable/kpi_views.sql'" in rows
    assert not re.search(r"20\d\d-\d\d-\d\d", rows)  # no time of this database in the rows


def test_a_loaded_database_is_what_psql_loads_and_is_up_to_date(
    dsn: str, another_dsn: str, server_dsn: str, tmp_path: Path
) -> None:
    """A DBA can load the file by hand with psql (no transaction_timeout that PostgreSQL 15 would refuse):
    runner's load gives that database, and one runner sees as up to date."""
    api.migrate(dsn, SQL_DIR)
    path = tmp_path / "schema.sql"
    path.write_text(api.dump(dsn), "utf-8")
    loaded = runner_cli("load", path, "--dsn", another_dsn, "--dir", SQL_DIR)
    assert loaded.returncode == 0, loaded.stderr
    assert "Loaded" in loaded.stdout and "15 migration(s) recorded as applied" in loaded.stdout
    with fresh_database(server_dsn) as by_psql:
        done = subprocess.run([shell.psql(), "-X", "-q", "--set=ON_ERROR_STOP=1", "--file", str(path), by_psql],
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert schema_only(another_dsn) == schema_only(by_psql)
        assert [e.state.value for e in api.status(by_psql, SQL_DIR).entries] == ["applied"] * 15
    verify = runner_cli("verify", "--dsn", another_dsn, "--dir", SQL_DIR)
    assert verify.returncode == 0 and "No drift: 15 applied" in verify.stdout, verify.stdout + verify.stderr
    migrate = runner_cli("migrate", "--dsn", another_dsn, "--dir", SQL_DIR)
    assert migrate.returncode == 0 and "All migrations are up to date" in migrate.stdout + migrate.stderr
    actions = query(another_dsn, "SELECT action, name FROM runner_migrations_history")
    assert actions == [("load", "schema.sql")]


def test_a_schema_file_of_a_loaded_database_passes_the_check(dsn: str, another_dsn: str, tmp_path: Path) -> None:
    """PostgreSQL prints `x IN (...)` on a varchar column in a form it reads back as another expression: a file
    dumped from a loaded database, with a file migrated since, differs from the folder's build only in that."""
    folder = seed(tmp_path)
    api.migrate(dsn, folder)
    path = tmp_path / "schema.sql"
    path.write_text(api.dump(dsn), "utf-8")
    api.load(another_dsn, folder, schema_file=path)
    write(folder, "0015_add_due_date.sql", "ALTER TABLE tat_alerts ADD COLUMN IF NOT EXISTS due_date date;\n")
    api.migrate(another_dsn, folder, schema_file=path)
    text = path.read_text("utf-8")
    assert "due_date date" in text and "ANY (ARRAY[('INFO'::character varying)::text" in text  # the reprinted form
    found = api.check_dump(dsn, folder, schema_file=path)
    assert found.differences and found.reprinted and found.same
    write(folder, "0016_add_owner.sql", "ALTER TABLE tat_alerts ADD COLUMN IF NOT EXISTS owner text;\n")
    assert not api.check_dump(dsn, folder, schema_file=path).same  # a real difference is one still


def test_load_refuses_a_database_that_is_not_empty_and_changes_nothing(dsn: str, tmp_path: Path) -> None:
    api.migrate(dsn, SQL_DIR)
    path = tmp_path / "schema.sql"
    path.write_text(api.dump(dsn), "utf-8")
    other = seed(tmp_path)
    query(dsn, "CREATE TABLE someone_elses (id int)")
    before = schema_only(dsn)
    result = runner_cli("load", path, "--dsn", dsn, "--dir", other)
    assert_clean_error(result, 2, "the database is not empty (table public.", "createdb")
    assert schema_only(dsn) == before


def test_load_refuses_a_schema_file_of_other_files_and_leaves_the_database_empty(
    dsn: str, another_dsn: str, tmp_path: Path
) -> None:
    api.migrate(dsn, SQL_DIR)
    path = tmp_path / "schema.sql"
    path.write_text(api.dump(dsn), "utf-8")
    other = tmp_path / "other"
    write(other, "0001_create_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    result = runner_cli("load", path, "--dsn", another_dsn, "--dir", other)
    assert_clean_error(result, 2, "does not match the files of this folder", "nothing was loaded")
    assert dump.contents(psycopg.connect(another_dsn)) == []


def test_load_says_what_is_wrong_with_a_schema_file(dsn: str, tmp_path: Path) -> None:
    missing = runner_cli("load", tmp_path / "nowhere.sql", "--dsn", dsn)
    assert_clean_error(missing, 2, "nowhere.sql: no such schema file", "runner dump --output")
    folder = tmp_path / "a_folder.sql"
    folder.mkdir()
    assert_clean_error(runner_cli("load", folder, "--dsn", dsn), 2, "a_folder.sql is a folder")
    latin1 = write(tmp_path, "latin1.sql", "-- caf\xe9\n".encode("latin-1"))
    assert_clean_error(runner_cli("load", latin1, "--dsn", dsn), 2, "not UTF-8")
    foreign = write(tmp_path, "structure.sql", "CREATE TABLE x (id int);\n")
    assert_clean_error(runner_cli("load", foreign, "--dsn", dsn), 2, "not a schema file written by `runner dump`")
    project = tmp_path / "project"
    write(project, "pyproject.toml", "[tool.runner]\n")
    none = runner_cli("load", "--dsn", dsn, cwd=project)
    assert_clean_error(none, 2, "no schema file given", 'schema-file = "sql/schema.sql"')
    assert dump.contents(psycopg.connect(dsn)) == []


def test_check_passes_on_the_file_the_folder_builds_and_shows_the_diff_of_an_edit(dsn: str, tmp_path: Path) -> None:
    folder = seed(tmp_path)
    api.migrate(dsn, folder)
    path = folder / "schema.sql"  # among the migrations, as the project keeps its own
    path.write_text(api.dump(dsn), "utf-8")
    target, before = schema_only(dsn), scratch_databases(dsn)
    same = runner_cli("dump", "--check", "--output", path, "--dsn", dsn, "--dir", folder)
    assert same.returncode == 0, same.stdout + same.stderr
    assert f"{path} is what the files of {folder} build" in same.stdout
    write(folder, "0015_add_due_date.sql", "ALTER TABLE tat_alerts ADD COLUMN IF NOT EXISTS due_date date;\n")
    changed = runner_cli("dump", "--check", "--output", path, "--dsn", dsn, "--dir", folder)
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert any(line.startswith("+    due_date date") for line in changed.stdout.splitlines()), changed.stdout
    assert any(line.startswith("+(15, '0015_add_due_date.sql'") for line in changed.stdout.splitlines())
    assert "differs from what the files of" in changed.stdout
    assert schema_only(dsn) == target and scratch_databases(dsn) <= before  # the target and the server as they were


def test_the_projects_schema_file_is_what_its_migrations_build(server_dsn: str) -> None:
    """sql/schema.sql is committed from the embedded PostgreSQL 18. A server of another version prints views its
    own way: the file differs from its build there, and is the same schema once both are reprinted by it."""
    found = api.check_dump(server_dsn, SQL_DIR, schema_file=ROOT / "sql" / "schema.sql")
    assert found.written_from == 18
    if found.built_on == 18:
        assert found.same and not found.differences, "\n".join(found.differences)
    else:
        assert found.differences and found.reprinted and found.same


def test_migrate_rewrites_the_schema_file_of_the_projects_database_when_it_applies_files(
    dsn: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    write(project, "pyproject.toml", '[tool.runner]\nschema-file = "sql/schema.sql"\n')
    write(project / "sql", "0001_create_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    own = cli_env(DATABASE_URL=dsn)  # the project's own database, as a developer sets it
    first = runner_cli("migrate", cwd=project / "sql", env=own)  # from a sub-folder: the project's file all the same
    assert first.returncode == 0 and "Applied 1 migration(s); rewrote" in first.stdout, first.stdout + first.stderr
    schema_file = project / "sql" / "schema.sql"
    text = schema_file.read_text("utf-8")
    assert "CREATE TABLE public.things" in text and "'0001_create_things.sql'" in text
    os.utime(schema_file, (0, 0))
    again = runner_cli("migrate", cwd=project, env=own)
    assert again.returncode == 0 and schema_file.stat().st_mtime == 0  # nothing applied: not written
    status = runner_cli("status", cwd=project, env=own)  # the schema file is no migration
    assert status.returncode == 0 and "schema.sql" not in status.stdout, status.stdout + status.stderr
    write(project / "sql", "0002_add_flag.sql", "ALTER TABLE things ADD COLUMN IF NOT EXISTS flag boolean;\n")
    elsewhere = runner_cli("migrate", "--dir", project / "sql", cwd=project, env=own)
    assert elsewhere.returncode == 0 and schema_file.stat().st_mtime == 0  # --dir: another folder's file, not this
    write(project / "sql", "0003_add_note.sql", "ALTER TABLE things ADD COLUMN IF NOT EXISTS note text;\n")
    deploy = runner_cli("migrate", "--dsn", dsn, cwd=project)
    assert deploy.returncode == 0 and schema_file.stat().st_mtime == 0  # --dsn: another database, not this one
    write(project / "sql", "0004_add_owner.sql", "ALTER TABLE things ADD COLUMN IF NOT EXISTS owner text;\n")
    forced = runner_cli("migrate", "--dsn", dsn, cwd=project, env=cli_env(RUNNER_SCHEMA_FILE="sql/schema.sql"))
    assert forced.returncode == 0 and "owner text" in schema_file.read_text("utf-8"), forced.stdout + forced.stderr


def test_a_schema_file_that_cannot_be_written_leaves_the_files_applied_with_a_note(dsn: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project, "pyproject.toml", '[tool.runner]\nschema-file = "pyproject.toml/schema.sql"\n')
    write(project / "sql", "0001_create_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    done = runner_cli("migrate", cwd=project, env=cli_env(DATABASE_URL=dsn))
    assert done.returncode == 0, done.stderr
    assert (
        "the run is done and recorded, but the schema file" in done.stderr
        and "cannot write the schema file" in done.stderr
    )
    assert query(dsn, "SELECT name FROM runner_migrations") == [("0001_create_things.sql",)]


def test_a_file_that_is_neither_migration_nor_schema_file_is_still_refused(dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "0001_create_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    write(folder, "schema.sql", "-- written by hand\nCREATE TABLE x (id int);\n")
    assert_clean_error(runner_cli("migrate", "--dsn", dsn, "--dir", folder), 2, "schema.sql: not a migration file")


def test_a_pg_dump_failure_is_one_line_without_the_password(dsn: str) -> None:
    """pg_dump reads each table with the target's login; one it may not read stops it, and says which."""
    role = f"runner_dump_{uuid.uuid4().hex[:8]}"
    query(dsn, f"CREATE ROLE {role} LOGIN PASSWORD 'hunter2-dump'; CREATE TABLE secret_things (id int); "
               f"REVOKE ALL ON secret_things FROM PUBLIC")  # fmt: skip
    try:
        url = psycopg.conninfo.make_conninfo(dsn, user=role, password="hunter2-dump")
        result = runner_cli("dump", "--dsn", url)
        line = assert_clean_error(result, 2, "pg_dump could not dump", "permission denied", "secret_things")
        assert "hunter2" not in result.stderr + result.stdout and line
    finally:
        query(dsn, f"DROP OWNED BY {role}; DROP ROLE {role}")


@pytest.mark.parametrize(
    ("version", "readable"),
    [(90200, True), (150020, True), (180006, True), (90100, False), (190000, False)],
)
def test_the_servers_pg_dump_18_reads(version: int, readable: bool) -> None:
    if readable:
        assert dump.refusal(version) is None
    else:
        assert "which the pg_dump runner ships (PostgreSQL 18) cannot read" in (dump.refusal(version) or "")


def test_dump_writes_the_projects_file_only_for_its_own_database(dsn: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project, "pyproject.toml", '[tool.runner]\nschema-file = "sql/schema.sql"\n')
    write(project / "sql", "0001_create_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    api.migrate(dsn, project / "sql")
    other = runner_cli("dump", "--dsn", dsn, cwd=project)  # another database: the standard output
    assert other.returncode == 0 and other.stdout.startswith(dump.MARKER), other.stderr
    as_json = runner_cli("dump", "--dsn", dsn, "--json", cwd=project)
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == {"schema_file": None, "text": other.stdout}
    assert "CREATE TABLE public.things" in other.stdout and not (project / "sql" / "schema.sql").exists()
    own = runner_cli("dump", cwd=project, env=cli_env(DATABASE_URL=dsn))
    assert own.returncode == 0 and own.stdout == "Wrote sql/schema.sql\n", own.stdout + own.stderr
    assert (project / "sql" / "schema.sql").read_text("utf-8") == other.stdout
    again = runner_cli("dump", cwd=project, env=cli_env(DATABASE_URL=dsn))
    assert again.stdout == "sql/schema.sql is up to date\n"


def test_a_load_killed_half_way_leaves_the_database_empty_and_loadable(
    dsn: str, another_dsn: str, tmp_path: Path
) -> None:
    """One transaction: the tables already created when the process dies are not kept, nor half a file."""
    folder = seed(tmp_path)
    api.migrate(dsn, folder)
    whole = tmp_path / "schema.sql"
    whole.write_text(api.dump(dsn), "utf-8")
    head, _, rest = whole.read_text("utf-8").partition("CREATE TABLE public.approval_levels")
    slow = write(tmp_path, "slow.sql", head + "SELECT pg_sleep(60);\n\nCREATE TABLE public.approval_levels" + rest)
    argv = [sys.executable, "-m", "runner", "load", str(slow), "--dsn", another_dsn, "--dir", str(folder)]
    load = subprocess.Popen(argv, cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sleeping = "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'"
        eventually(lambda: query(another_dsn, sleeping), "the load to reach the pause, its first tables created")
        load.send_signal(signal.SIGKILL)
        load.wait()
    finally:
        load.kill()
    with psycopg.connect(another_dsn, autocommit=True) as conn:
        assert dump.contents(conn) == []  # nothing of it is visible
    # The server ends the orphaned session of this database (it would once it wrote to the dead client): a
    # session that ends rolls its transaction back.
    query(another_dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()")  # fmt: skip
    again = runner_cli("load", whole, "--dsn", another_dsn, "--dir", folder)
    assert again.returncode == 0, again.stderr
    assert [e.state.value for e in api.status(another_dsn, folder).entries] == ["applied"] * 15


def test_a_server_short_of_lock_space_is_told_how_to_grow_it(dsn: str, embedded_project: Path) -> None:
    """pg_dump locks every table it dumps, and a load creates every object in one transaction: a private server
    with a small lock table (max_locks_per_transaction = 10) refuses both, and runner says what to raise."""
    from psycopg.conninfo import make_conninfo

    from runner import embedded

    folder = embedded_project / "sql"
    for n in range(1, 9):  # 800 tables, 100 a file: each file's transaction fits, the whole schema does not
        tables = "\n".join(
            f"CREATE TABLE IF NOT EXISTS t{n}_{i} (id bigint PRIMARY KEY, name text);" for i in range(100)
        )
        write(folder, f"000{n}_tables.sql", tables + "\n")
    api.migrate(dsn, folder)
    schema_file = embedded_project / "schema.sql"
    schema_file.write_text(api.dump(dsn), "utf-8")  # on the test server, whose lock table is the default
    lay = embedded.layout(embedded_project)
    embedded.init_cluster(lay)
    with open(lay.data_dir / "postgresql.conf", "a") as conf:
        conf.write("max_locks_per_transaction = 10\nmax_connections = 5\n")
    embedded.start(lay)
    with psycopg.connect(lay.dsn(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE built")
        admin.execute("CREATE DATABASE loaded")
    built, loaded = make_conninfo(lay.dsn(), dbname="built"), make_conninfo(lay.dsn(), dbname="loaded")
    api.migrate(built, folder)
    dumped = runner_cli("dump", "--dsn", built)
    assert_clean_error(dumped, 2, "pg_dump could not dump", "out of shared memory", "raise max_locks_per_transaction")
    load = runner_cli("load", schema_file, "--dsn", loaded, "--dir", folder)
    assert_clean_error(load, 2, "ran out of lock space", "raise max_locks_per_transaction", "nothing was loaded")
    with psycopg.connect(loaded, autocommit=True) as conn:
        assert dump.contents(conn) == []


def test_a_schema_file_with_transaction_control_is_refused_whole(dsn: str, another_dsn: str, tmp_path: Path) -> None:
    """A COMMIT would end the one transaction a load runs in, keeping what came before it."""
    folder = seed(tmp_path)
    api.migrate(dsn, folder)
    text = api.dump(dsn, directory=folder)
    lines = text.split("\n")
    tampered = write(
        tmp_path, "tampered.sql", "\n".join([*lines[:5], "CREATE TABLE evil (x int); COMMIT;", *lines[5:]])
    )
    result = runner_cli("load", tampered, "--dsn", another_dsn, "--dir", folder)
    assert_clean_error(result, 2, "tampered.sql, line 6: transaction control", "write the file again")
    with psycopg.connect(another_dsn, autocommit=True) as conn:
        assert dump.contents(conn) == []


def test_a_view_of_the_tracking_table_loads(dsn: str, another_dsn: str, tmp_path: Path) -> None:
    """runner's tables come first in the file: a view may read them."""
    folder = tmp_path / "sql"
    write(folder, "0001_last.sql", "CREATE VIEW last_migration AS SELECT max(version) AS v FROM runner_migrations;\n")
    api.migrate(dsn, folder)
    path = write(tmp_path, "schema.sql", api.dump(dsn, directory=folder))
    assert runner_cli("load", path, "--dsn", another_dsn, "--dir", folder).returncode == 0
    assert query(another_dsn, "SELECT v FROM last_migration") == [(1,)]


def test_dump_writes_through_a_link_and_to_a_pipe(dsn: str, tmp_path: Path) -> None:
    query(dsn, "CREATE TABLE things (id int)")
    (tmp_path / "shared").mkdir()
    (tmp_path / "link.sql").symlink_to(tmp_path / "shared" / "real.sql")
    linked = runner_cli("dump", "--dsn", dsn, "--output", tmp_path / "link.sql", cwd=tmp_path)
    assert linked.returncode == 0 and (tmp_path / "link.sql").is_symlink(), linked.stderr
    assert (tmp_path / "shared" / "real.sql").read_text("utf-8").startswith(dump.MARKER)
    piped = runner_cli("dump", "--dsn", dsn, "--output", "/dev/stdout", cwd=tmp_path)  # a pipe here
    assert piped.returncode == 0 and piped.stdout.startswith(dump.MARKER), piped.stderr


def test_a_scratch_database_left_by_a_killed_check_is_dropped_by_the_next(dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "0001_slow.sql", "SELECT pg_sleep(60);\nCREATE TABLE IF NOT EXISTS things (id int);\n")
    schema_file = write(tmp_path, "schema.sql", api.dump(dsn))
    before = scratch_databases(dsn)
    argv = [sys.executable, "-m", "runner", "dump", "--check", "--output", str(schema_file), "--dsn", dsn, "--dir",
            str(folder)]  # fmt: skip
    check = subprocess.Popen(argv, cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sleeping = "SELECT 1 FROM pg_stat_activity WHERE datname = ANY(%s) AND wait_event = 'PgSleep'"

        def running() -> set[str]:  # the new scratch database, once it runs the slow file
            new = scratch_databases(dsn) - before
            return new if new and query(dsn, sleeping, (list(new),)) else set()

        left = eventually(running, "the check to run the slow file in its scratch database")
        check.send_signal(signal.SIGKILL)
        check.wait()
    finally:
        check.kill()
    assert left <= scratch_databases(dsn)  # nothing dropped it
    write(folder, "0001_slow.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    again = runner_cli("dump", "--check", "--output", schema_file, "--dsn", dsn, "--dir", folder)
    assert again.returncode == 1, again.stderr  # the file differs: what matters is what is left
    assert not left & scratch_databases(dsn)
