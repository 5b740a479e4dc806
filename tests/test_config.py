"""Settings from flags, environment variables and ``[tool.runner]`` in pyproject.toml, in that order.

Each test runs the real command from a project folder of its own, against a database of its own,
and looks at where runner really put its tracking rows or what it really refused.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import assert_clean_error, cli_env, query, runner_cli, write

from runner import api, config, lock, tracking
from runner.errors import BadInput

SLOW = "SELECT pg_sleep(0.5);\n"


def tables(dsn: str) -> list[str]:
    """Every table in the database, schema-qualified: what runner created, if anything."""
    rows = query(dsn, "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                      "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")  # fmt: skip
    return [str(r[0]) for r in rows]


def recorded_in(dsn: str, table: str) -> list[str]:
    return [str(r[0]) for r in query(dsn, f"SELECT name FROM {table} ORDER BY version")]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose migrations live in db/migrations, with a sub-folder to run runner from."""
    folder = tmp_path / "project"
    write(folder / "db" / "migrations", "1_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    (folder / "docs").mkdir()
    return folder


def pyproject(folder: Path, body: str) -> None:
    write(folder, "pyproject.toml", f'[project]\nname = "app"\n\n[tool.runner]\n{body}\n')


def run(project: Path, *args: str | Path, cwd: Path | None = None, **env: str):  # type: ignore[no-untyped-def]
    return runner_cli(*args, cwd=cwd or project, env=cli_env(**env))


def test_pyproject_sets_the_folder_and_the_table(dsn: str, project: Path) -> None:
    pyproject(project, 'dir = "db/migrations"\ntable = "ops.schema_migrations"')
    result = run(project, "migrate", DATABASE_URL=dsn)
    assert result.returncode == 0, result.stderr
    assert "Completed: 1_things.sql" in result.stdout
    assert recorded_in(dsn, "ops.schema_migrations") == ["1_things.sql"]
    assert "public.runner_migrations" not in tables(dsn)


def test_a_relative_dir_is_read_from_the_pyproject_folder_even_from_a_sub_folder(dsn: str, project: Path) -> None:
    pyproject(project, 'dir = "db/migrations"')
    result = run(project, "migrate", cwd=project / "docs", DATABASE_URL=dsn)
    assert result.returncode == 0, result.stderr
    assert recorded_in(dsn, "public.runner_migrations") == ["1_things.sql"]
    # A folder from the environment or a flag is relative to where runner runs, as a shell path is.
    write(project / "docs" / "db" / "migrations", "2_docs_only.sql", "SELECT 1;\n")
    from_env = run(project, "status", "--json", cwd=project / "docs", DATABASE_URL=dsn, RUNNER_DIR="db/migrations")
    assert [m["name"] for m in json.loads(from_env.stdout)["migrations"]] == ["1_things.sql", "2_docs_only.sql"]


def test_without_any_setting_the_defaults_apply(dsn: str, project: Path) -> None:
    write(project / "sql", "1_default.sql", "SELECT 1;\n")
    result = run(project, "migrate", DATABASE_URL=dsn)
    assert result.returncode == 0, result.stderr
    assert recorded_in(dsn, "public.runner_migrations") == ["1_default.sql"]


def test_the_environment_wins_over_pyproject(dsn: str, project: Path) -> None:
    pyproject(project, 'dir = "nowhere"\ntable = "from_file"')
    result = run(project, "migrate", DATABASE_URL=dsn, RUNNER_DIR="db/migrations", RUNNER_TABLE="from_env")
    assert result.returncode == 0, result.stderr
    assert recorded_in(dsn, "from_env") == ["1_things.sql"]
    assert "public.from_file" not in tables(dsn)


def test_a_flag_wins_over_the_environment_and_pyproject(dsn: str, project: Path) -> None:
    pyproject(project, 'dir = "nowhere"\ntable = "from_file"')
    result = run(project, "migrate", "--dir", "db/migrations", "--table", "from_flag",
                 DATABASE_URL=dsn, RUNNER_DIR="elsewhere", RUNNER_TABLE="from_env")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert recorded_in(dsn, "from_flag") == ["1_things.sql"]
    assert not {"public.from_env", "public.from_file"} & set(tables(dsn))
    only_file = run(project, "migrate", "--table", "from_flag_2", "--dir", "db/migrations", DATABASE_URL=dsn)
    assert only_file.returncode == 0, only_file.stderr
    assert recorded_in(dsn, "from_flag_2") == ["1_things.sql"]


def test_the_database_url_layers(dsn: str, project: Path, tmp_path: Path) -> None:
    """database-url in pyproject.toml, under DATABASE_URL, under --dsn; libpq's PG* variables come after the file."""
    other = dsn.replace("dbname=", "dbname=nonexistent_") if "dbname=" in dsn else dsn + "_nonexistent"
    pyproject(project, f'dir = "db/migrations"\ndatabase-url = "{dsn}"')
    from_file = run(project, "migrate", PGHOST="203.0.113.1")  # the file names the database: no PG* guess
    assert from_file.returncode == 0, from_file.stderr
    assert recorded_in(dsn, "public.runner_migrations") == ["1_things.sql"]

    from_env = run(project, "status", DATABASE_URL=other)
    assert_clean_error(from_env, 5, "nonexistent_")
    from_flag = run(project, "status", "--dsn", dsn, DATABASE_URL=other)
    assert from_flag.returncode == 0, from_flag.stderr


def test_a_password_in_pyproject_database_url_is_refused_and_never_shown(dsn: str, project: Path) -> None:
    pyproject(project, 'dir = "db/migrations"\ndatabase-url = "postgresql://app:Hunter2-Secret@db.internal/app"')
    result = run(project, "migrate", DATABASE_URL=dsn)
    error = assert_clean_error(result, 2, "pyproject.toml: [tool.runner] database-url holds a password", "~/.pgpass")
    assert "Hunter2-Secret" not in result.stdout + result.stderr and error
    assert tables(dsn) == []


def test_a_boolean_setting_in_every_layer(dsn: str, project: Path) -> None:
    """strict = true in the file refuses an edited file; the variable or --no-strict turns it off again."""
    pyproject(project, 'dir = "db/migrations"\nstrict = true')
    assert run(project, "migrate", DATABASE_URL=dsn).returncode == 0
    write(project / "db" / "migrations", "1_things.sql", "CREATE TABLE IF NOT EXISTS things (id bigint);\n")
    assert_clean_error(run(project, "migrate", DATABASE_URL=dsn), 1, "--strict")
    assert run(project, "migrate", DATABASE_URL=dsn, RUNNER_STRICT="false").returncode == 0
    assert run(project, "migrate", "--no-strict", DATABASE_URL=dsn, RUNNER_STRICT="1").returncode == 0
    assert_clean_error(run(project, "migrate", "--strict", DATABASE_URL=dsn, RUNNER_STRICT="no"), 1, "--strict")


def test_a_timeout_in_every_layer(dsn: str, project: Path) -> None:
    """statement-timeout really reaches the server from the file, and the variable and the flag override it."""
    write(project / "db" / "migrations", "2_slow.sql", SLOW)
    pyproject(project, 'dir = "db/migrations"\nstatement-timeout = "100ms"')
    assert_clean_error(run(project, "migrate", DATABASE_URL=dsn), 3, "2_slow.sql", "statement timeout")
    assert run(project, "migrate", DATABASE_URL=dsn, RUNNER_STATEMENT_TIMEOUT="50ms").returncode == 3
    assert_clean_error(run(project, "migrate", "--statement-timeout", "100ms", DATABASE_URL=dsn,
                           RUNNER_STATEMENT_TIMEOUT="10s"), 3, "statement timeout")  # fmt: skip
    ok = run(project, "migrate", DATABASE_URL=dsn, RUNNER_STATEMENT_TIMEOUT="10s")
    assert ok.returncode == 0, ok.stderr
    assert recorded_in(dsn, "public.runner_migrations") == ["1_things.sql", "2_slow.sql"]


def test_verbose_names_the_source_of_every_setting(dsn: str, project: Path) -> None:
    pyproject(project, 'dir = "db/migrations"\nlock-wait = 7\nretries = 1\nallow-out-of-order = true')
    result = run(project, "migrate", "--verbose", "--retries", "3", DATABASE_URL=dsn, RUNNER_LOCK_WAIT="9",
                 RUNNER_TABLE="env_table")  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "Settings (pyproject.toml):" in lines
    for line in ["  dir = db/migrations (pyproject.toml)", "  table = env_table (RUNNER_TABLE)",
                 f"  database-url = {dsn} (DATABASE_URL)", "  lock-wait = 9 (RUNNER_LOCK_WAIT)",
                 "  retries = 3 (--retries)", "  allow-out-of-order = true (pyproject.toml)",
                 "  strict = false (default)", "  statement-timeout = none (default)"]:  # fmt: skip
        assert line in lines, (line, lines)


def test_the_nearest_pyproject_is_the_project_and_one_above_it_is_not_read(dsn: str, project: Path) -> None:
    pyproject(project.parent, 'table = "outer_project"')
    write(project, "pyproject.toml", '[project]\nname = "inner"\n')
    write(project / "sql", "1_inner.sql", "SELECT 1;\n")
    result = run(project, "migrate", cwd=project / "docs", DATABASE_URL=dsn, RUNNER_DIR="../sql")
    assert result.returncode == 0, result.stderr
    assert recorded_in(dsn, "public.runner_migrations") == ["1_inner.sql"]


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ('dirr = "db/migrations"', ("pyproject.toml: unknown key 'dirr' in [tool.runner]",
                                    "runner knows dir, table, database-url, lock-wait", "(did you mean 'dir'?)")),
        ("lock_wait = 5", ("unknown key 'lock_wait' in [tool.runner]", "(did you mean 'lock-wait'?)")),
        ('[tool.runner.lint]\nexclude = ["x"]\nrules = 1', ("unknown key 'rules' in [tool.runner.lint]",
                                                           "runner knows exclude, pg-version")),
    ],
)  # fmt: skip
def test_an_unknown_key_is_an_error_and_nothing_is_applied(
    dsn: str, project: Path, body: str, needles: tuple[str, ...]
) -> None:
    pyproject(project, 'dir = "db/migrations"\n' + body)
    result = run(project, "migrate", DATABASE_URL=dsn)
    assert_clean_error(result, 2, *needles)
    assert tables(dsn) == []
    assert_clean_error(run(project, "status", DATABASE_URL=dsn), 2, *needles)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("retries = '3'", 'pyproject.toml: [tool.runner] retries = "3" is not a whole number (0 or more)'),
        ("retries = -1", "retries = -1 is not a whole number"),
        ("strict = 'yes'", 'strict = "yes" is not a boolean; expected true or false'),
        ("lock-wait = true", "lock-wait = true is not a number of seconds"),
        ("lock-timeout = 'soon'", 'lock-timeout = "soon" is not a duration; expected a number with a unit'),
        ("statement-timeout = '600h'", 'statement-timeout = "600h" is longer than PostgreSQL allows'),
        ("table = 'a.b.c'", "[tool.runner] table: 'a.b.c': expected [schema.]name"),
        ("dir = 5", "dir = 5 is not a non-empty string"),
        ("lint = 5", "lint in [tool.runner] must be a table"),
        ("database-url = 'nonsense'", "[tool.runner] database-url is not a valid connection string"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_error(dsn: str, project: Path, body: str, needle: str) -> None:
    pyproject(project, body)
    result = run(project, "migrate", "--dir", "db/migrations", DATABASE_URL=dsn)
    assert_clean_error(result, 2, needle)
    assert tables(dsn) == []


def test_a_file_that_is_not_toml_is_an_error(dsn: str, project: Path) -> None:
    write(project, "pyproject.toml", "[tool.runner\ndir = 1\n")
    assert_clean_error(run(project, "migrate", DATABASE_URL=dsn), 2, "pyproject.toml: cannot read it")


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("RUNNER_RETRIES", "abc", "(env var: 'RUNNER_RETRIES'): 'abc'"),  # typer reads the typed ones
        ("RUNNER_LOCK_WAIT", "-3", "(env var: 'RUNNER_LOCK_WAIT'): -3"),
        ("RUNNER_STRICT", "maybe", "(env var: 'RUNNER_STRICT'): 'maybe' is not a valid boolean"),
        ("RUNNER_LOCK_TIMEOUT", "soon", "RUNNER_LOCK_TIMEOUT='soon' is not a duration"),
        ("RUNNER_LOCK_TIMEOUT", "25d", "RUNNER_LOCK_TIMEOUT='25d' is longer than PostgreSQL allows"),
        ("RUNNER_TABLE", "a.b.c", "RUNNER_TABLE: 'a.b.c': expected [schema.]name"),
    ],
)
def test_a_bad_environment_value_is_one_clear_error(
    dsn: str, project: Path, variable: str, value: str, needle: str
) -> None:
    result = run(project, "migrate", "--dir", "db/migrations", DATABASE_URL=dsn, **{variable: value})
    assert_clean_error(result, 2, needle)
    assert tables(dsn) == []
    as_json = run(project, "migrate", "--dir", "db/migrations", "--json", DATABASE_URL=dsn, **{variable: value})
    assert json.loads(as_json.stdout)["error"]["exit_code"] == 2


def test_a_bad_variable_is_named_even_by_a_command_without_that_option(project: Path) -> None:
    """Reading the settings checks them all: a mistake does not wait for the one command that uses it."""
    assert_clean_error(run(project, "new", "x", RUNNER_STATEMENT_TIMEOUT="soon"), 2, "RUNNER_STATEMENT_TIMEOUT")
    assert not (project / "sql").exists()


def test_new_and_lint_read_the_project_settings_from_a_sub_folder(project: Path) -> None:
    write(project / "db" / "migrations", "2_column.sql", "ALTER TABLE things ADD COLUMN IF NOT EXISTS b bigint;\n")
    write(project, "pyproject.toml", "")
    found = run(project, "lint", "../db/migrations/2_column.sql", cwd=project / "docs")
    assert "require-lock-timeout" in found.stdout, found.stdout

    pyproject(project, 'dir = "db/migrations"\n\n[tool.runner.lint]\n'
                       'exclude = ["require-lock-timeout", "require-statement-timeout"]')  # fmt: skip
    excluded = run(project, "lint", "../db/migrations/2_column.sql", cwd=project / "docs")
    assert excluded.returncode == 0 and excluded.stdout == "No findings\n", excluded.stdout + excluded.stderr
    created = run(project, "new", "add index", cwd=project / "docs")
    assert created.returncode == 0, created.stderr
    assert (project / "db" / "migrations" / "3_add_index.sql").is_file(), created.stdout


# The module itself, as the pytest plugin and applications call it.


def test_load_gives_the_settings_and_where_each_came_from(project: Path) -> None:
    pyproject(project, 'dir = "db/migrations"\nretries = 2\n\n[tool.runner.lint]\npg-version = "13"')
    settings = config.load(project / "docs", environ={"RUNNER_TABLE": "t", "RUNNER_RETRIES": ""},
                           flags={"lock_wait": 3.0})  # fmt: skip
    assert settings.dir == project / "db" / "migrations" and settings.dir.is_absolute()
    assert (settings.table, settings.retries, settings.lock_wait, settings.strict) == ("t", 2, 3.0, False)
    assert settings.lint == config.LintSettings((), "13")
    assert settings.pyproject == project / "pyproject.toml"
    assert settings.sources["retries"].endswith("pyproject.toml")  # an empty variable is unset
    assert (settings.sources["table"], settings.sources["lock_wait"], settings.sources["strict"]) == (
        "RUNNER_TABLE", "--lock-wait", "default",
    )  # fmt: skip
    with pytest.raises(BadInput, match="RUNNER_WAIT_FOR_DB='x'"):
        config.load(project, environ={"RUNNER_WAIT_FOR_DB": "x"})


def test_load_without_a_pyproject_gives_the_defaults_of_the_library(tmp_path: Path) -> None:
    settings = config.load(tmp_path, environ={})
    assert settings == config.Settings()
    assert str(settings.dir) == api.DEFAULT_DIR == config.DEFAULT_DIR
    assert settings.table == tracking.DEFAULT_TABLE
    assert settings.lock_wait == lock.DEFAULT_WAIT_S
    assert settings.database_url is None and settings.pyproject is None


def test_every_command_from_a_sub_folder_uses_the_projects_sql_folder(dsn: str, tmp_path: Path) -> None:
    """The default folder is the project's sql/, beside its pyproject.toml, wherever runner runs in the project."""
    project = tmp_path / "app"
    write(project, "pyproject.toml", '[project]\nname = "app"\n')
    write(project / "sql", "0001_things.sql", "CREATE TABLE IF NOT EXISTS things (id int);\n")
    (project / "tests").mkdir()

    def here(*args: str) -> subprocess.CompletedProcess[str]:
        result = runner_cli(*args, cwd=project / "tests", env=cli_env(DATABASE_URL=dsn))
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    assert [step["name"] for step in json.loads(here("plan", "--json").stdout)["would_run"]] == ["0001_things.sql"]
    assert "Completed: 0001_things.sql" in here("migrate").stdout
    assert [m["state"] for m in json.loads(here("status", "--json").stdout)["migrations"]] == ["applied"]
    assert "No drift: 1 applied" in here("verify").stdout
    created = here("new", "add flag").stdout
    assert created == f"Created {project / 'sql' / '0002_add_flag.sql'}\n"
    write(project / "sql", "0002_add_flag.sql", "ALTER TABLE things ADD COLUMN IF NOT EXISTS flag boolean;\n")
    assert "0002_add_flag.sql" in here("lint", "--json").stdout
    assert "Marked 0002_add_flag.sql" in here("mark", "2").stdout
    assert "Unmarked 0002_add_flag.sql" in here("unmark", "2").stdout
    assert "Marked 0002_add_flag.sql" in here("baseline", "2").stdout
    write(project / "sql", "0001_things.sql", "CREATE TABLE IF NOT EXISTS things (id int); -- reviewed\n")
    assert "Accepted 0001_things.sql" in here("accept", "--all").stdout
    assert recorded_in(dsn, "public.runner_migrations") == ["0001_things.sql", "0002_add_flag.sql"]


def test_load_gives_the_sql_folder_beside_the_pyproject_by_default(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[project]\nname = "app"\n')
    (tmp_path / "tests").mkdir()
    settings = config.load(tmp_path / "tests", environ={})
    assert (settings.dir, settings.sources["dir"]) == (tmp_path / "sql", config.DEFAULT)
    assert config.load(tmp_path / "tests", environ={"RUNNER_DIR": "here"}).dir == Path("here")
