"""A pytest plugin: each test gets a freshly migrated PostgreSQL database, migrated once per session.

pytest loads it from the ``pytest11`` entry point of the installed package, but it does nothing
until a test asks for one of its fixtures: no server is started and no database created before.

The migrations run once per session, into a template database of their own (loaded from the schema file of
``schema-file`` in ``[tool.runner]`` instead, when it lists every file of the folder: see runner.schema_file; it holds
no rows but runner's, so the rows the files insert are in a migrated template only); each test's database
is then a copy of it (``CREATE DATABASE ... TEMPLATE``), which costs milliseconds whatever the
number of files. Every name carries a random token of the session, so pytest-xdist workers or two
CI jobs on one server never meet. ``-p no:runner_migrations`` turns the plugin off altogether (its
entry point is not named ``runner``: that is pytest's own ``_pytest.runner``, which would shadow it).

Fixtures:

- ``runner_db``: the DSN of a database of the test's own, migrated, dropped after the test;
- ``runner_conn``: an open psycopg connection to it (psycopg's defaults: not autocommit);
- ``runner_template``: the name of the session's migrated template database;
- ``runner_server_dsn``: the server the databases are created on, as given (or the embedded one's).

Options (command line, else ini key, else default):

- ``--runner-dsn`` / ``runner_dsn``: the server; default as ``runner`` finds it: ``$DATABASE_URL``,
  ``database-url`` of ``[tool.runner]``, libpq's ``PG*`` variables, else the embedded PostgreSQL of
  the project at pytest's rootdir;
- ``--runner-dir`` / ``runner_dir``: the migrations folder (relative to the current folder on the
  command line, to the rootdir in the ini file); default as ``runner`` finds it (``RUNNER_DIR``,
  ``dir`` of ``[tool.runner]``), else ``sql``;
- ``--runner-table`` / ``runner_table``: the tracking table; default ``RUNNER_TABLE``, ``table`` of
  ``[tool.runner]``, else ``public.runner_migrations``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

if TYPE_CHECKING:  # psycopg and runner's modules are imported by the fixtures that use them
    import psycopg

PREFIX = "pytest_runner_"  # every database the plugin creates is named so

_TOKEN = pytest.StashKey[str]()
_COUNTER = pytest.StashKey["itertools.count[int]"]()


class Settings(NamedTuple):
    """What the plugin was told; everything it reads from the options goes through ``_settings``."""

    dsn: str | None  # None: $DATABASE_URL, libpq's environment, else the embedded server
    directory: Path
    table: str | None  # None: runner's default
    variables: Mapping[str, str]  # of psql variables, from [tool.runner.variables]
    schema_file: Path | None  # schema-file of [tool.runner]: loaded into the template when it is current


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options only: registering them costs nothing, and ``pytest --help`` lists them."""
    group = parser.getgroup("runner", "runner: a freshly migrated PostgreSQL database for each test")
    group.addoption("--runner-dsn", metavar="DSN",
                    help="server to create the test databases on (ini runner_dsn); default $DATABASE_URL, "
                         "else libpq's PG* variables, else the project's embedded PostgreSQL")  # fmt: skip
    group.addoption("--runner-dir", metavar="PATH",
                    help="migrations folder (ini runner_dir, relative to the rootdir); default sql")  # fmt: skip
    group.addoption("--runner-table", metavar="[SCHEMA.]NAME",
                    help="tracking table (ini runner_table); default public.runner_migrations")  # fmt: skip
    parser.addini("runner_dsn", "runner: server to create the test databases on", default="")
    parser.addini("runner_dir", "runner: migrations folder, relative to the rootdir (default sql)", default="")
    parser.addini("runner_table", "runner: tracking table (default public.runner_migrations)", default="")


def _settings(config: pytest.Config) -> Settings:
    """Where the options are read, in one place: the command line, then the ini file, then what
    ``runner`` itself would use from the rootdir (RUNNER_DIR, DATABASE_URL, [tool.runner], ...)."""
    from runner import config as project

    def value(name: str) -> str | None:
        given = config.getoption(f"--runner-{name}") or config.getini(f"runner_{name}")
        return str(given) if given else None

    with _failing_clearly("reading runner's settings"):
        runner_settings = project.load(config.rootpath)
    given_dir = config.getoption("--runner-dir")
    if given_dir:  # a path typed on the command line is relative to where pytest was started
        directory = config.invocation_params.dir / given_dir
    else:  # relative to the rootdir; a dir from [tool.runner] is already absolute
        directory = config.rootpath / (value("dir") or runner_settings.dir)
    return Settings(value("dsn") or runner_settings.database_url, directory, value("table") or runner_settings.table,
                    runner_settings.variables, runner_settings.schema_file)  # fmt: skip


def _name(config: pytest.Config, suffix: str) -> str:
    """A database name unique to this session: parallel sessions on one server never collide."""
    token = config.stash.setdefault(_TOKEN, uuid.uuid4().hex[:10])
    return f"{PREFIX}{token}_{suffix}"


def _shown(path: Path, config: pytest.Config) -> str:
    """The folder as the user wrote it, in messages: relative to the rootdir when it is inside."""
    try:
        return str(path.relative_to(config.rootpath))
    except ValueError:
        return str(path)


@contextmanager
def _failing_clearly(what: str) -> Iterator[None]:
    """runner's one-line message as the test's failure, instead of a traceback from deep inside."""
    import psycopg

    from runner import RunnerError, db

    try:
        yield
    except RunnerError as error:
        raise pytest.fail.Exception(f"runner: {what}: {error}", pytrace=False) from None
    except psycopg.Error as error:
        raise pytest.fail.Exception(f"runner: {what}: {db.error_text(error)}", pytrace=False) from None


def _admin(server_dsn: str, statement: Any, *params: object) -> None:
    """One statement on the server's own database (CREATE/DROP DATABASE cannot run inside a transaction)."""
    from runner import db

    with db.connect(server_dsn) as conn:
        conn.execute(statement, params or None)


def _drop(server_dsn: str, name: str) -> None:
    """FORCE: a connection a test forgot to close must not keep its database alive."""
    from psycopg import sql

    _admin(server_dsn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def runner_server_dsn(pytestconfig: pytest.Config) -> Iterator[str]:
    """The server to create databases on; an embedded one runs until the session ends."""
    dsn = _settings(pytestconfig).dsn
    if dsn:
        yield dsn
        return
    from runner import db, embedded

    if db.libpq_variables():
        yield ""  # libpq takes the server from its environment, as psql and runner do
        return
    with _failing_clearly("starting the embedded PostgreSQL"), embedded.server(pytestconfig.rootpath) as url:
        yield url


@pytest.fixture(scope="session")
def runner_template(pytestconfig: pytest.Config, runner_server_dsn: str) -> Iterator[str]:
    """The migrations, run once for the whole session into a database that each test's is copied from.

    Nobody may be connected to a template while it is copied, so once migrated it accepts no
    connection at all. A failed setup drops it again.
    """
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    import runner

    settings = _settings(pytestconfig)
    name = _name(pytestconfig, "template")
    ident = sql.Identifier(name)
    with _failing_clearly(f"creating the template database {name}"):
        _admin(runner_server_dsn, sql.SQL("CREATE DATABASE {}").format(ident))
    try:
        template = make_conninfo(runner_server_dsn, dbname=name)
        if not _loaded(settings, template, runner_server_dsn, name):
            with _failing_clearly(f"migrating {_shown(settings.directory, pytestconfig)} into the template {name}"):
                runner.migrate(template, settings.directory, settings.table, variables=settings.variables)
        with _failing_clearly(f"closing the template {name} to connections"):
            _admin(runner_server_dsn, sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(ident))
            _admin(runner_server_dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE datname = %s AND pid <> pg_backend_pid()", name)  # fmt: skip
    except BaseException:
        try:
            _drop(runner_server_dsn, name)
        except Exception:  # the failure to report is the first one
            pass
        raise
    try:
        yield name
    finally:
        with _failing_clearly(f"dropping the template {name}"):
            _drop(runner_server_dsn, name)


def _loaded(settings: Settings, template: str, server_dsn: str, name: str) -> bool:
    """Load the schema file into the new template when it is current: its tracking rows are the folder's files,
    all of them. One that is not, or that this server cannot load, leaves the template to be migrated, as new.

    A schema file holds the schema and runner's rows only: rows the files insert are in a migrated template."""
    from psycopg import sql

    import runner

    if settings.schema_file is None or not settings.schema_file.is_file():
        return False
    try:
        loaded = runner.load(template, settings.directory, settings.table, schema_file=settings.schema_file)
    except runner.RunnerError:  # rolled back whole: the template is as empty as it was
        return False
    if loaded.plan.to_run:  # older than the folder: a template of its own, migrated from the start
        _drop(server_dsn, name)
        _admin(server_dsn, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return False
    return True


@pytest.fixture
def runner_db(pytestconfig: pytest.Config, runner_server_dsn: str, runner_template: str) -> Iterator[str]:
    """The DSN of a migrated database for this test alone, copied from the template and dropped afterwards."""
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    counter = pytestconfig.stash.setdefault(_COUNTER, itertools.count(1))
    name = _name(pytestconfig, str(next(counter)))
    with _failing_clearly(f"creating the test database {name} from {runner_template}"):
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
        _admin(runner_server_dsn, statement.format(sql.Identifier(name), sql.Identifier(runner_template)))
    try:
        yield make_conninfo(runner_server_dsn, dbname=name)
    finally:
        with _failing_clearly(f"dropping the test database {name}"):
            _drop(runner_server_dsn, name)


@pytest.fixture
def runner_conn(runner_db: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """An open connection to ``runner_db``, with psycopg's defaults; closed after the test."""
    import psycopg

    conn = psycopg.connect(runner_db)
    try:
        yield conn
    finally:
        conn.close()
