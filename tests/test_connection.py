"""Reaching the database: exit 5 with a clear line, never a password, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import assert_clean_error, cli_env, runner_cli, write
from psycopg.conninfo import make_conninfo

from runner.db import redact

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://bob:{SECRET}@127.0.0.1:1/app",
        f"host=127.0.0.1 port=1 user=bob password={SECRET} dbname=app",
        f"postgresql://bob:{SECRET}@nosuchhost.invalid/app",
    ],
    ids=["url", "keywords", "unknown-host"],
)
@pytest.mark.parametrize("command", ["migrate", "status", "verify"])
def test_unreachable_server_exits_5_without_the_password(migrations: Path, dsn: str, command: str) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    result = runner_cli(command, "--dsn", dsn, "--dir", migrations)
    assert_clean_error(result, 5, "cannot connect to bob@", "--dsn")
    assert SECRET not in result.stdout + result.stderr


def test_database_url_is_used_and_not_shown(migrations: Path) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    env = cli_env(DATABASE_URL=f"postgresql://bob:{SECRET}@127.0.0.1:1/app")
    result = runner_cli("migrate", "--dir", migrations, env=env)
    assert_clean_error(result, 5, "bob@127.0.0.1:1/app")
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("dsn", ["nonsense", f"postgresql://bob:{SECRET}@[::1/app"])
def test_malformed_connection_string_exits_2(migrations: Path, dsn: str) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    result = runner_cli("migrate", "--dsn", dsn, "--dir", migrations)
    assert_clean_error(result, 2, "connection string is not valid")
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("dsn", "env", "says"),
    [
        ("postgresql://bob@127.0.0.1:99999/app", {}, 'is not valid: invalid port number: "99999"'),
        ("postgresql://bob@localhost:abc/app", {}, 'the connection string is not valid: invalid port number: "abc"'),
        ("host=127.0.0.1 port=1,2 user=bob", {}, "could not match 2 port numbers to 1 hosts"),
        (
            "",
            {"PGHOST": "127.0.0.1", "PGPORT": "-1"},
            'libpq\'s environment (its PG* variables) is not valid: invalid port number: "-1"',
        ),
    ],
    ids=["out-of-range", "not-a-number-after-a-host-name", "more-ports-than-hosts", "PGPORT"],
)
def test_an_invalid_port_is_a_bad_input_not_an_unreachable_server(
    migrations: Path, dsn: str, env: dict[str, str], says: str
) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    result = runner_cli("migrate", *(["--dsn", dsn] if dsn else []), "--dir", migrations, env=cli_env(**env))
    assert_clean_error(result, 2, says)


def test_missing_database_exits_5(server_dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    result = runner_cli("migrate", "--dsn", make_conninfo(server_dsn, dbname="no_such_db_here"), "--dir", migrations)
    assert_clean_error(result, 5, 'database "no_such_db_here" does not exist')


def test_redact_covers_urls_keywords_and_the_dsn_itself() -> None:
    assert redact(f"at postgresql://u:{SECRET}@h/db", None) == "at postgresql://u:***@h/db"
    assert redact(f"password={SECRET} host=h", None) == "password=*** host=h"
    assert redact(f"oops {SECRET} oops", f"postgresql://u:{SECRET}@h/db") == "oops *** oops"


def test_tracebacks_never_print_local_variables() -> None:
    # typer's pretty tracebacks list every local variable of every frame, a DSN with its password among them.
    from runner.cli import app

    assert app.pretty_exceptions_enable is False and app.pretty_exceptions_show_locals is False
