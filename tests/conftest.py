"""Shared fixtures: a real PostgreSQL, and a fresh database for every test.

The server is runner's own pytest plugin's (runner/pytest_plugin.py): $DATABASE_URL when set,
else the project's embedded PostgreSQL. Each test gets a database of its own, created here and
dropped afterwards, so no test depends on another. A test that needs the project's sql/ folder
applied asks for the plugin's ``runner_db`` instead: migrated once per session, copied per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from helpers import remove_embedded
from psycopg import sql
from psycopg.conninfo import make_conninfo


@pytest.fixture(scope="session")
def server_dsn(runner_server_dsn: str) -> str:
    """The plugin's server, under the name the tests have always used."""
    return runner_server_dsn


@contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    name = f"runner_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server_dsn, dbname=name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def dsn(server_dsn: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    with fresh_database(server_dsn) as url:
        yield url


@pytest.fixture
def another_dsn(server_dsn: str) -> Iterator[str]:
    """A second fresh database, for a test that compares two (psql's and runner's work on the same file)."""
    with fresh_database(server_dsn) as url:
        yield url


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    return tmp_path / "sql"


@pytest.fixture
def embedded_project(tmp_path: Path) -> Iterator[Path]:
    """A project folder inside a private (0700) folder, as a home directory would be; its embedded
    server is stopped and, as root, its data removed afterwards."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    project = private / "project"
    project.mkdir()
    yield project
    remove_embedded(project)
