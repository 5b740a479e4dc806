"""The pytest plugin (runner/pytest_plugin.py): a freshly migrated database for each test.

Each test here runs pytest in a subprocess on a small project of its own, so the plugin is the
one installed through the ``pytest11`` entry point, and checks against the real server what the
inner tests saw and what is left on the server afterwards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import query, remove_embedded, write

from runner import embedded
from runner.pytest_plugin import PREFIX

pytest_plugins = ["pytester"]

# What the inner tests saw, one JSON line per test, for the outer test to compare.
RECORD = """
import json
from pathlib import Path

import psycopg


def record(dsn, **extra):
    with psycopg.connect(dsn) as conn:
        seen = {
            "db": conn.execute("SELECT current_database()").fetchone()[0],
            "tables": sorted(r[0] for r in conn.execute(
                "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
                "'information_schema')")),
            **extra,
        }
    with open(Path(__file__).parent / "seen.jsonl", "a") as out:
        out.write(json.dumps(seen, default=str) + "\\n")
"""

THREE_TESTS = """
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from conftest import record


def stamps(conn):
    return {
        "stamp": conn.execute("SELECT at, backend FROM stamp").fetchall(),
        "executed_at": [r[0] for r in conn.execute("SELECT executed_at FROM runner_migrations ORDER BY version")],
        "things": conn.execute("SELECT count(*) FROM things").fetchone()[0],
    }


def test_one(runner_db):
    with psycopg.connect(runner_db) as conn:
        conn.execute("INSERT INTO things VALUES (1, 'left by test_one')")
        record(runner_db, **stamps(conn))


def test_two(runner_conn):
    record(runner_conn.info.dsn, **stamps(runner_conn))
    assert runner_conn.execute("SELECT count(*) FROM things").fetchone() == (0,)


def test_three(runner_db, runner_template):
    with psycopg.connect(runner_db) as conn:
        record(runner_db, template=runner_template, **stamps(conn))
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(make_conninfo(runner_db, dbname=runner_template))
"""

THINGS = "CREATE TABLE things (id int PRIMARY KEY, note text);\n"
# The moment and the server process of the run that applied it: the same in every copy.
STAMP = (
    "CREATE TABLE stamp (at timestamptz, backend int);\n"
    "INSERT INTO stamp VALUES (clock_timestamp(), pg_backend_pid());\n"
)


@pytest.fixture
def inner(pytester: pytest.Pytester, server_dsn: str, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project of its own with conftest.py's ``record``; its pytest sees the server as $DATABASE_URL."""
    monkeypatch.setenv("DATABASE_URL", server_dsn)
    for variable in ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    pytester.makeini("[pytest]\n")  # the rootdir is the project
    pytester.makeconftest(RECORD)
    return pytester


def _seen(project: Path) -> list[dict[str, Any]]:
    path = project / "seen.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _existing(server_dsn: str, names: list[str]) -> list[str]:
    return [str(r[0]) for r in query(server_dsn, "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,))]


def test_each_test_gets_its_own_copy_of_one_migrated_database(inner: pytest.Pytester, server_dsn: str) -> None:
    write(inner.path / "sql", "0001_create_things.sql", THINGS)
    write(inner.path / "sql", "0002_stamp.sql", STAMP)
    inner.makepyfile(test_things=THREE_TESTS)
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=3)

    seen = _seen(inner.path)
    assert len(seen) == 3
    names = [s["db"] for s in seen]
    assert len(set(names)) == 3 and all(name.startswith(PREFIX) for name in names), names
    for s in seen:
        assert {"public.things", "public.stamp", "public.runner_migrations"} <= set(s["tables"])
    # Migrated once: the row the migration stamped, and runner's own records, are the same in every copy.
    assert seen[0]["stamp"] == seen[1]["stamp"] == seen[2]["stamp"] and len(seen[0]["stamp"]) == 1
    assert seen[0]["executed_at"] == seen[1]["executed_at"] == seen[2]["executed_at"]
    assert len(seen[0]["executed_at"]) == 2
    # test_one's row stayed in test_one's database
    assert [s["things"] for s in seen] == [1, 0, 0]
    template = seen[2]["template"]
    assert template.startswith(PREFIX) and template not in names
    assert _existing(server_dsn, [*names, template]) == [], "the databases and the template are dropped"


def test_the_folder_and_table_come_from_the_ini_file_or_the_command_line(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(inner.path / "db" / "main", "0001_from_ini.sql", "CREATE TABLE from_ini (id int);\n")
    write(inner.path / "db" / "other", "0001_from_option.sql", "CREATE TABLE from_option (id int);\n")
    inner.makeini("[pytest]\nrunner_dir = db/main\nrunner_table = audit.applied\n")
    inner.makepyfile(test_tables="from conftest import record\n\ndef test_it(runner_db):\n    record(runner_db)\n")

    by_ini = inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    by_ini.assert_outcomes(passed=1)
    # On the command line, a folder is relative to where pytest starts (the ini's is to the rootdir).
    monkeypatch.chdir(inner.path / "db")
    by_option = inner.runpytest_subprocess("-p", "no:cacheprovider", "--runner-dir", "other",
                                           "--runner-table", "ops.done", inner.path, timeout=120)  # fmt: skip
    by_option.assert_outcomes(passed=1)
    first, second = (s["tables"] for s in _seen(inner.path))
    assert set(first) == {"public.from_ini", "audit.applied", "audit.applied_history", "audit.applied_schema"}
    assert set(second) == {"public.from_option", "ops.done", "ops.done_history", "ops.done_schema"}


def test_without_options_the_folder_and_table_are_the_ones_runner_uses(inner: pytest.Pytester) -> None:
    write(inner.path / "db" / "main", "0001_from_pyproject.sql", "CREATE TABLE from_pyproject (id int);\n")
    write(inner.path / "db" / "other", "0001_from_ini.sql", "CREATE TABLE from_ini (id int);\n")
    write(inner.path, "pyproject.toml", '[tool.runner]\ndir = "db/main"\ntable = "audit.applied"\n')
    inner.makepyfile(test_tables="from conftest import record\n\ndef test_it(runner_db):\n    record(runner_db)\n")
    inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=120).assert_outcomes(passed=1)
    inner.makeini("[pytest]\nrunner_dir = db/other\n")  # the plugin's own setting wins
    inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=120).assert_outcomes(passed=1)
    first, second = (s["tables"] for s in _seen(inner.path))
    assert set(first) == {"public.from_pyproject", "audit.applied", "audit.applied_history", "audit.applied_schema"}
    assert set(second) == {"public.from_ini", "audit.applied", "audit.applied_history", "audit.applied_schema"}

    write(inner.path, "pyproject.toml", '[tool.runner]\ndirr = "db/main"\n')
    typo = inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    typo.assert_outcomes(errors=1)
    typo.stdout.fnmatch_lines(["runner: reading runner's settings: pyproject.toml: unknown key 'dirr' in *"])


def test_the_psql_variables_of_the_pyproject_reach_the_migrations(inner: pytest.Pytester) -> None:
    write(inner.path / "sql", "0001_tenant.sql", 'CREATE SCHEMA :"schema";\nCREATE TABLE :"schema".things (id int);\n')
    write(inner.path, "pyproject.toml", '[tool.runner.variables]\nschema = "acme"\n')
    inner.makepyfile(test_tables="from conftest import record\n\ndef test_it(runner_db):\n    record(runner_db)\n")
    inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=120).assert_outcomes(passed=1)
    [seen] = _seen(inner.path)
    assert "acme.things" in seen["tables"]


def test_a_failing_migration_fails_the_tests_that_need_it_with_runners_message(
    inner: pytest.Pytester, server_dsn: str
) -> None:
    write(inner.path / "sql", "0001_create_things.sql", THINGS)
    write(inner.path / "sql", "0002_bad.sql", "INSERT INTO things VALUES ('one', 'two');\n")
    inner.makepyfile(
        test_things="def test_a(runner_db): pass\n\ndef test_b(runner_conn): pass\n\ndef test_without_db(): pass\n"
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1, errors=2)
    output = result.stdout.str()
    assert not [needle for needle in ("Traceback", "During handling", "psycopg") if needle in output], output
    failures = [line for line in result.stdout.lines if line.startswith("runner: migrating sql into the template ")]
    assert len(failures) == 2 and failures[0] == failures[1], output
    assert failures[0].endswith(
        ': 0002_bad.sql failed at line 1, column 28: invalid input syntax for type integer: "one" (SQLSTATE 22P02). '
        "It was rolled back: nothing of it was kept, and later files did not run"
    ), failures[0]
    template = failures[0].split()[6].rstrip(":")
    assert template.startswith(PREFIX) and template.endswith("_template")
    assert _existing(server_dsn, [template]) == [], "a template that failed to migrate is dropped"


def test_nothing_happens_unless_a_test_asks_for_a_database(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner.makepyfile(test_plain="def test_a(): pass\n\ndef test_b(): pass\n")
    # A server that is not there: the plugin never tries it while no test needs it ...
    nowhere = "postgresql://nobody@127.0.0.1:1/nowhere"
    inner.runpytest_subprocess("-p", "no:cacheprovider", "--runner-dsn", nowhere).assert_outcomes(passed=2)
    # ... and with no server given at all, it starts no embedded one.
    monkeypatch.delenv("DATABASE_URL")
    inner.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
    assert not (inner.path / ".runner").exists()

    # When one does ask, it is told in one line what went wrong.
    inner.makepyfile(test_db="def test_c(runner_db): pass\n")
    asked = inner.runpytest_subprocess("-p", "no:cacheprovider", "--runner-dsn", nowhere, "test_db.py")
    asked.assert_outcomes(errors=1)
    assert "Traceback" not in asked.stdout.str()
    asked.stdout.fnmatch_lines(["runner: creating the template database pytest_runner_*_template: "
                                "cannot connect to nobody@127.0.0.1:1/nowhere: *"])  # fmt: skip


def test_the_plugin_comes_from_the_entry_point(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_db="def test_c(runner_db): pass\n")
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:runner_migrations")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'runner_db' not found*"])
    assert "--runner-dsn=DSN" in inner.runpytest_subprocess("--help").stdout.str()


@pytest.fixture
def embedded_project(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No server given: the inner session uses the embedded PostgreSQL of its own project, removed afterwards."""
    for variable in [v for v in os.environ if v == "DATABASE_URL" or v.startswith("PG")]:
        monkeypatch.delenv(variable)
    yield inner.path
    remove_embedded(inner.path)


def test_without_a_server_the_projects_embedded_postgresql_is_used(
    inner: pytest.Pytester, embedded_project: Path
) -> None:
    write(embedded_project / "sql", "0001_create_things.sql", THINGS)
    inner.makepyfile(test_things="from conftest import record\n\n"
                                 "def test_a(runner_db):\n    record(runner_db)\n\n"
                                 "def test_b(runner_db):\n    record(runner_db)\n")  # fmt: skip
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=2)
    seen = _seen(embedded_project)
    assert [set(s["tables"]) for s in seen] == [{"public.things", "public.runner_migrations",
                                                 "public.runner_migrations_history",
                                                 "public.runner_migrations_schema"}] * 2  # fmt: skip
    lay = embedded.layout(embedded_project)
    assert (lay.data_dir / "PG_VERSION").exists(), "the embedded server of the inner project was the one used"
    assert not embedded._running(lay), "and it stopped when the session ended"


HISTORY = """
from conftest import record


def test_it(runner_conn):
    actions = runner_conn.execute("SELECT action, name FROM runner_migrations_history ORDER BY id").fetchall()
    record(runner_conn.info.dsn, actions=actions)
"""


def test_the_template_is_loaded_from_a_current_schema_file_and_migrated_otherwise(
    inner: pytest.Pytester, server_dsn: str
) -> None:
    from conftest import fresh_database

    import runner

    write(inner.path, "pyproject.toml", '[tool.runner]\nschema-file = "sql/schema.sql"\n')
    write(inner.path / "sql", "0001_create_things.sql", THINGS)
    with fresh_database(server_dsn) as built:
        runner.migrate(built, inner.path / "sql")
        (inner.path / "sql" / "schema.sql").write_text(runner.dump(built), "utf-8")
    inner.makepyfile(test_history=HISTORY)
    inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=120).assert_outcomes(passed=1)
    write(inner.path / "sql", "0002_stamp.sql", STAMP)  # the schema file is now behind the folder
    inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=120).assert_outcomes(passed=1)
    write(inner.path / "sql", "0001_create_things.sql", THINGS + "-- edited\n")  # and of other files
    inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=120).assert_outcomes(passed=1)
    loaded, behind, foreign = (s["actions"] for s in _seen(inner.path))
    assert loaded == [["load", "schema.sql"]]
    assert behind == foreign == [["apply", "0001_create_things.sql"], ["apply", "0002_stamp.sql"]]
