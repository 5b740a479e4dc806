"""Choosing the targets of a fleet run: ``[tool.runner.targets]``, ``${VAR}`` in its connection strings, targets
files, shards, and tenant schemas matched as psql's ``\\dn PATTERN`` matches them.

Most cases need no server: they are rows of input and what runner makes of it. The schema patterns are checked
against the real psql on a database with awkward schema names, and a query group against a real catalog table.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from helpers import assert_clean_error, cli_env, query, runner_cli, write
from psycopg.conninfo import make_conninfo

from runner import config
from runner.errors import BadInput, ConnectionFailed
from runner.targets import (
    Group,
    QueryGroup,
    Target,
    Tenants,
    parse_shard,
    read_targets_file,
    schema_regex,
    schemas_from_query,
    select,
    shard,
    shard_of,
    tenant_schemas,
    with_schemas,
)

SECRET = "Sw0rdf1sh-9"  # a password: it must appear in no message


def settings(folder: Path, targets: str) -> config.Settings:
    write(folder, "pyproject.toml", f'[project]\nname = "app"\n\n[tool.runner.targets]\n{targets}\n')
    return config.load(folder, environ={})


# [tool.runner.targets] is checked when the settings load.

ACCEPTED = {
    "a URL": ('staging = "postgresql://app@db.example/app"', {"staging": "postgresql://app@db.example/app"}),
    "a password from the environment": ('s = "postgresql://app:${PW}@h/db"', {"s": "postgresql://app:${PW}@h/db"}),
    "a whole string from the environment": ('eu = "${EU_URL}"', {"eu": "${EU_URL}"}),
    "a keyword string with a password variable": ('k = "host=h password=${PW}"', {"k": "host=h password=${PW}"}),
    "a service name": ('s = "service=app"', {"s": "service=app"}),
    "a table with only a dsn": ('s = {dsn = "postgresql://h/db"}', {"s": "postgresql://h/db"}),
    "a group of groups": (
        'a = "postgresql://h/a"\nb = "postgresql://h/b"\nab = ["a", "b"]\nall = ["ab", "a"]',
        {"a": "postgresql://h/a", "b": "postgresql://h/b", "ab": Group(("a", "b")), "all": Group(("ab", "a"))},
    ),
    "a query group": (
        'cat = {query = "SELECT dsn FROM tenants", dsn = "${CATALOG_URL}"}',
        {"cat": QueryGroup("SELECT dsn FROM tenants", "${CATALOG_URL}")},
    ),
    "tenant schemas": (
        'shop = {dsn = "postgresql://h/shop", schemas = "tenant_*"}',
        {"shop": Tenants("postgresql://h/shop", "tenant_*")},
    ),
}


@pytest.mark.parametrize(("body", "expected"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_each_shape_of_target_is_read_from_pyproject(tmp_path: Path, body: str, expected: dict[str, object]) -> None:
    assert settings(tmp_path, body).targets == expected


def test_a_project_without_targets_has_none(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.runner]\nretries = 1\n")
    assert config.load(tmp_path, environ={}).targets == {}


REFUSED = {
    "a literal password": (f'staging = "postgresql://app:{SECRET}@h/db"', ["[tool.runner.targets] staging",
                                                                         "holds a password", "${VARIABLE}"]),
    "a keyword password": (f'staging = "host=h password={SECRET}"', ["[tool.runner.targets] staging",
                                                                    "holds a password"]),
    "a password beside a variable": (f'k = "postgresql://app:{SECRET}${{PW}}@h/db"', ["targets] k holds a password"]),
    "a catalog password": (f'cat = {{query = "SELECT 1", dsn = "postgresql://a:{SECRET}@h/db"}}',
                           ["[tool.runner.targets] cat dsn holds a password"]),
    "not a connection string": ('s = "not a dsn"', ["[tool.runner.targets] s is not a valid connection string"]),
    "an empty string": ('s = ""', ["[tool.runner.targets] s is empty"]),
    "a number": ("s = 5", ["[tool.runner.targets] s must be a connection string, a list of target names"]),
    "an empty group": ("all = []", ["[tool.runner.targets] all must list target names"]),
    "a group of numbers": ("all = [1, 2]", ["[tool.runner.targets] all must list target names"]),
    "a group naming no target": ('a = "postgresql://h/a"\nall = ["a", "nope"]',
                                 ["[tool.runner.targets] all lists 'nope', which is not a target",
                                  "[tool.runner.targets] names a, all"]),
    "a cycle": ('a = ["b"]\nb = ["c"]\nc = ["a"]', ["[tool.runner.targets] a -> b -> c -> a is a cycle"]),
    "a group in itself": ('a = ["a"]', ["[tool.runner.targets] a -> a is a cycle"]),
    "an unknown key": ('s = {dsn = "postgresql://h/db", shcemas = "t_*"}',
                       ["[tool.runner.targets] s: unknown key 'shcemas'; a target's table takes dsn, query, schemas"]),
    "a query without a dsn": ('s = {query = "SELECT dsn FROM tenants"}', ["[tool.runner.targets] s has no dsn"]),
    "a query and schemas": ('s = {dsn = "postgresql://h/db", query = "SELECT 1", schemas = "t_*"}',
                            ["[tool.runner.targets] s has both query and schemas"]),
    "a query that is not text": ('s = {dsn = "postgresql://h/db", query = 1}',
                                 ["[tool.runner.targets] s: query must be a non-empty string"]),
    "a pattern with a database": ('s = {dsn = "postgresql://h/db", schemas = "db.tenant_*"}',
                                  ["[tool.runner.targets] s schemas: schema pattern 'db.tenant_*' has a dot"]),
}  # fmt: skip


@pytest.mark.parametrize(("body", "needles"), REFUSED.values(), ids=REFUSED.keys())
def test_a_malformed_target_is_refused_when_the_settings_load(tmp_path: Path, body: str, needles: list[str]) -> None:
    with pytest.raises(BadInput) as refused:
        settings(tmp_path, body)
    message = str(refused.value)
    assert message.startswith(str(tmp_path / "pyproject.toml"))
    assert SECRET not in message
    for needle in needles:
        assert needle in message


def test_targets_that_are_not_a_table_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.runner]\ntargets = 1\n")
    with pytest.raises(BadInput, match=r"targets in \[tool.runner\] must be a table, \[tool.runner.targets\]"):
        config.load(tmp_path, environ={})


def test_every_command_refuses_a_password_in_the_targets_with_one_clean_error(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", f'[tool.runner.targets]\nprod = "postgresql://app:{SECRET}@db/app"\n')
    result = runner_cli("status", cwd=tmp_path, env=cli_env(DATABASE_URL="postgresql://nobody@127.0.0.1:1/x"))
    assert_clean_error(result, 2, "pyproject.toml: [tool.runner.targets] prod holds a password")
    assert SECRET not in result.stdout + result.stderr


# Choosing targets: names, groups, ${VAR}, --dsn, duplicates.


def test_groups_resolve_to_their_members_in_order_and_each_target_once(tmp_path: Path) -> None:
    s = settings(tmp_path, 'a = "postgresql://h/a"\nb = "postgresql://h/b"\nab = ["b", "a"]\nall = ["ab", "a"]')
    chosen = select(s, ["all", "a"], ["postgresql://h/a", "postgresql://u@other:6432/c"])
    assert chosen == [Target("b", "postgresql://h/b"), Target("a", "postgresql://h/a"),
                      Target("other:6432/c", "postgresql://u@other:6432/c")]  # fmt: skip


def test_nothing_chosen_gives_no_targets(tmp_path: Path) -> None:
    assert select(settings(tmp_path, 'a = "postgresql://h/a"')) == []


def test_variables_are_expanded_when_the_targets_are_chosen(tmp_path: Path) -> None:
    s = settings(tmp_path, 'eu = "${EU_URL}"\nus = "postgresql://app:${US_PW}@us-db:${US_PORT}/app"')
    environ = {"EU_URL": f"postgresql://app:{SECRET}@eu-db/app", "US_PW": SECRET, "US_PORT": "6432"}
    eu, us = select(s, ["eu", "us"], environ=environ)
    assert eu == Target("eu", f"postgresql://app:{SECRET}@eu-db/app")
    assert us == Target("us", f"postgresql://app:{SECRET}@us-db:6432/app")
    assert SECRET not in repr(eu) + str(us)  # a Target printed by mistake shows no password


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_a_variable_unset_or_empty_is_named_with_its_target(tmp_path: Path, value: str | None) -> None:
    s = settings(tmp_path, 'eu = "${EU_URL}"\nall = ["eu"]')
    with pytest.raises(BadInput) as refused:
        select(s, ["all"], environ={} if value is None else {"EU_URL": value})
    assert str(refused.value) == (f"{tmp_path / 'pyproject.toml'}: [tool.runner.targets] eu: the variable EU_URL "
                                  "is not set; export it, or choose other targets")  # fmt: skip


def test_a_variable_that_makes_a_bad_connection_string_is_refused_without_its_password(tmp_path: Path) -> None:
    s = settings(tmp_path, 'eu = "${EU_URL}"')
    with pytest.raises(BadInput) as refused:
        select(s, ["eu"], environ={"EU_URL": f"postgresql://app:{SECRET}@x@eu-db/app"})
    assert "[tool.runner.targets] eu: the connection URL has more than one '@'" in str(refused.value)
    assert SECRET not in str(refused.value)


@pytest.mark.parametrize(
    ("body", "name", "needle"),
    [
        ('alpha = "postgresql://h/a"', "alpah", "--target 'alpah' is not a target (did you mean 'alpha'?); "
                                                "[tool.runner.targets] names alpha in "),
        ("", "alpha", "--target 'alpha': no targets are configured; name them in [tool.runner.targets] of "),
    ],
    ids=["a typo", "no targets at all"],
)  # fmt: skip
def test_an_unknown_target_name_is_refused(tmp_path: Path, body: str, name: str, needle: str) -> None:
    with pytest.raises(BadInput) as refused:
        select(settings(tmp_path, body), [name])
    assert needle in str(refused.value)


def test_a_bad_dsn_flag_is_refused_with_the_flag_named(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"^--dsn: the connection string is not valid"):
        select(settings(tmp_path, ""), dsns=["not a dsn"])


# Targets files.


def test_a_targets_file_has_one_connection_string_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "fleet.txt", "# the EU fleet\n\npostgresql://app@eu-1/app\n  # indented comment\n"
                                        "host=eu-2 dbname=app password=a#b\n${EU_3}\n")  # fmt: skip
    assert read_targets_file(path, {"EU_3": "postgresql://app@eu-3:6432/app"}) == [
        Target("eu-1/app", "postgresql://app@eu-1/app"),
        Target("eu-2/app", "host=eu-2 dbname=app password=a#b"),  # a '#' inside a line is no comment
        Target("eu-3:6432/app", "postgresql://app@eu-3:6432/app"),
    ]


def test_a_targets_file_from_standard_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("postgresql://app@eu-1/app\n"))
    assert select(settings(tmp_path, ""), targets_file=Path("-")) == [Target("eu-1/app", "postgresql://app@eu-1/app")]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (None, "--targets-file 'missing.txt': cannot read it (No such file or directory)"),
        (b"\xff\xfe", "--targets-file 'missing.txt': cannot read it ('utf-8' codec can't decode"),
        ("postgresql://app@eu-1/app\n\nnot a dsn\n", "missing.txt line 3: the connection string is not valid"),
        ("${NOPE}\n", "missing.txt line 1: the variable NOPE is not set"),
    ],
    ids=["missing", "not UTF-8", "a bad line", "an unset variable"],
)
def test_a_bad_targets_file_is_refused_with_the_line_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | bytes | None, needle: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if text is not None:
        write(tmp_path, "missing.txt", text)
    with pytest.raises(BadInput) as refused:
        read_targets_file(Path("missing.txt"), {})
    assert needle in str(refused.value)


# Shards.


def fleet(count: int) -> list[Target]:
    return [Target(f"db-{i}", f"postgresql://h/db_{i}") for i in range(count)]


@pytest.mark.parametrize("n", range(1, 8))
def test_every_target_is_in_exactly_one_shard(n: int) -> None:
    targets = fleet(50)
    shards = [shard(targets, k, n) for k in range(n)]
    assert sorted(t.name for part in shards for t in part) == sorted(t.name for t in targets)


def test_adding_a_target_moves_no_other_and_the_order_does_not_matter() -> None:
    before = {t.name: shard_of(t, 5) for t in fleet(40)}
    grown = [*reversed(fleet(41)), Target("new", "postgresql://h/new")]
    assert {t.name: shard_of(t, 5) for t in grown if t.name in before} == before


def test_a_shard_depends_on_the_name_only_not_on_a_password() -> None:
    assert shard_of(Target("eu", "postgresql://app:old@h/db"), 7) == shard_of(Target("eu", "postgresql://h/db"), 7)


def test_shards_are_about_even_and_the_same_in_every_process() -> None:
    sizes = [len(shard(fleet(400), k, 4)) for k in range(4)]
    assert all(70 <= size <= 130 for size in sizes), sizes
    # pinned: a change of hash would move targets between shards of jobs still running the old version
    assert [shard_of(Target(name, None), 4) for name in "abcdefgh"] == [3, 1, 3, 3, 3, 3, 0, 0]


@pytest.mark.parametrize(("text", "expected"), [("0/1", (0, 1)), ("3/4", (3, 4)), (" 2 / 10 ", (2, 10))])
def test_a_shard_is_k_of_n_counted_from_zero(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("4/4", "--shard '4/4': K counts from 0 to N-1 (as JOB_COMPLETION_INDEX does); the last of 4 shards is 3/4"),
        ("1/0", "--shard '1/0': N must be 1 or more"),
        ("/4", "--shard '/4' is not K/N; expected e.g. 0/4"),
        ("-1/4", "--shard '-1/4' is not K/N"),
        ("1", "--shard '1' is not K/N"),
        ("a/b", "--shard 'a/b' is not K/N"),
    ],
)
def test_a_malformed_shard_is_refused(text: str, needle: str) -> None:
    with pytest.raises(BadInput) as refused:
        parse_shard(text)
    assert str(refused.value).startswith(needle)


# Tenant schemas, matched as psql matches \dn PATTERN.

REGEXES = {
    "tenant_*": "^(tenant_.*)$",
    "Tenant_?": "^(tenant_.)$",
    '"Tenant_C"': "^(Tenant_C)$",
    '"a.b"': r"^(a\.b)$",
    '"quote""d"': '^(quote"d)$',
    '"x*"': r"^(x\*)$",
    "price$": r"^(price\$)$",
    "t[]": r"^(t\[])$",
    "t_(a|b)": "^(t_(a|b))$",  # outside quotes, a regular expression stays one
}


@pytest.mark.parametrize(("pattern", "regex"), REGEXES.items(), ids=REGEXES.keys())
def test_a_schema_pattern_becomes_psqls_regular_expression(pattern: str, regex: str) -> None:
    assert schema_regex(pattern) == regex


SCHEMAS = ["tenant_a", "tenant_b", "Tenant_C", "TENANT_UP", "tenant.dot", "ten ant", "tenant$1", 'quote"d',
           "tenantx", "tenant_é", "t[]", "other"]  # fmt: skip
PATTERNS = ["tenant_*", "TENANT_*", '"Tenant_C"', '"TENANT_UP"', "Tenant_?", '"tenant.dot"', '"ten ant"', "tenant$1",
            '"quote""d"', "tenant_(a|b)", "te?ant*", "*", "t[]", "*_É", '"tenant"_*', "p*", "nothing"]  # fmt: skip


def psql_schemas(dsn: str, pattern: str) -> list[str]:
    """What psql's \\dn PATTERN lists, without the system schemas (runner never takes them)."""
    result = subprocess.run(
        [shutil.which("psql") or "psql", "-X", "-A", "-t", "-F", "\x1f", "-d", dsn, "-c", f"\\dn {pattern}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    names = [line.split("\x1f")[0] for line in result.stdout.splitlines() if line]
    return [name for name in names if not name.startswith("pg_") and name != "information_schema"]


def test_tenant_schemas_are_those_psql_lists_for_each_pattern(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in SCHEMAS:
            conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(name)))
        for pattern in PATTERNS:
            assert tenant_schemas(conn, pattern) == psql_schemas(dsn, pattern), pattern
        assert tenant_schemas(conn, "tenant_*") == ["tenant_a", "tenant_b", "tenant_é"]
        assert "pg_catalog" not in tenant_schemas(conn, "*")  # psql lists it for "*"; runner never migrates it
        with pytest.raises(BadInput, match=r"schema pattern 'tenant_\(' is not valid: .*parentheses"):
            tenant_schemas(conn, "tenant_(")


def test_schemas_from_a_query_are_sorted_and_each_once(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert schemas_from_query(conn, "VALUES ('b'), ('a'), ('b')") == ["a", "b"]
        with pytest.raises(BadInput, match="must return one column of schema names"):
            schemas_from_query(conn, "VALUES ('a', 1)")
        with pytest.raises(BadInput, match="the schemas query failed: .*nope"):
            schemas_from_query(conn, "SELECT nope")


def test_a_target_of_tenant_schemas_is_one_target_per_schema(dsn: str, tmp_path: Path) -> None:
    query(dsn, "CREATE SCHEMA tenant_b; CREATE SCHEMA tenant_a; CREATE SCHEMA other")
    s = settings(tmp_path, 'shop = {dsn = "${SHOP_URL}", schemas = "tenant_*"}')
    assert select(s, ["shop"], environ={"SHOP_URL": dsn}) == [
        Target("shop/tenant_a", dsn, "tenant_a"), Target("shop/tenant_b", dsn, "tenant_b")]  # fmt: skip


# Query groups, on a real catalog.


def test_a_query_group_lists_the_rows_of_its_catalog(dsn: str, tmp_path: Path) -> None:
    query(dsn, "CREATE TABLE tenants (name text, dsn text, schema text, active bool); INSERT INTO tenants VALUES "
               "('acme', 'postgresql://app@db-1/acme', NULL, true), (NULL, 'postgresql://app@db-2:6432/bolt', NULL, "
               "true), ('gone', 'postgresql://app@db-1/gone', NULL, false), ('cola', 'postgresql://app@db-3/shared', "
               "'cola', true)")  # fmt: skip
    s = settings(tmp_path, 'active = {query = "SELECT name, dsn, schema FROM tenants WHERE active ORDER BY dsn", '
                           'dsn = "${CATALOG_URL}"}\nurls = {query = "SELECT dsn FROM tenants WHERE active ORDER BY '
                           'dsn DESC", dsn = "${CATALOG_URL}"}')  # fmt: skip
    catalog = {"CATALOG_URL": make_conninfo(dsn, password=SECRET)}
    assert select(s, ["active"], environ=catalog) == [
        Target("acme", "postgresql://app@db-1/acme"),
        Target("db-2:6432/bolt", "postgresql://app@db-2:6432/bolt"),  # no name: host:port/dbname
        Target("cola/cola", "postgresql://app@db-3/shared", "cola"),
    ]
    assert [t.name for t in select(s, ["urls"], environ=catalog)] == ["db-3/shared", "db-2:6432/bolt", "db-1/acme"]


@pytest.mark.parametrize(
    ("statement", "needle"),
    [
        ("SELECT nope FROM tenants", 'cat: the query failed: column "nope" does not exist'),
        ("INSERT INTO tenants VALUES ('x') RETURNING dsn", "cat: the query failed: cannot execute INSERT in a "
                                                           "read-only transaction"),
        ("SELECT 1", "cat row 1: a row must be dsn, (name, dsn) or (name, dsn, schema), all text"),
        ("SELECT NULL::text", "cat row 1: the dsn is null or empty"),
        ("SELECT 'not a dsn'", "cat row 1: the connection string is not valid"),
    ],
    ids=["a failing query", "a write", "not text", "null", "not a connection string"],
)  # fmt: skip
def test_a_bad_query_group_names_the_group_and_no_password(dsn: str, tmp_path: Path, statement: str,
                                                           needle: str) -> None:  # fmt: skip
    query(dsn, "CREATE TABLE tenants (dsn text)")
    s = settings(tmp_path, f'cat = {{query = "{statement}", dsn = "${{CATALOG_URL}}"}}')
    with pytest.raises(BadInput) as refused:
        select(s, ["cat"], environ={"CATALOG_URL": make_conninfo(dsn, password=SECRET)})
    assert f"{tmp_path / 'pyproject.toml'}: [tool.runner.targets] {needle}" in str(refused.value)
    assert SECRET not in str(refused.value)
    assert query(dsn, "SELECT count(*) FROM tenants") == [(0,)]


def test_an_unreachable_catalog_names_the_group(tmp_path: Path) -> None:
    s = settings(tmp_path, 'cat = {query = "SELECT dsn FROM tenants", dsn = "${CATALOG_URL}"}')
    with pytest.raises(ConnectionFailed) as failed:
        select(s, ["cat"], environ={"CATALOG_URL": f"postgresql://app:{SECRET}@127.0.0.1:1/catalog"})
    assert "[tool.runner.targets] cat: cannot connect to app@127.0.0.1:1/catalog" in str(failed.value)
    assert SECRET not in str(failed.value)


@pytest.mark.parametrize(
    ("body", "given"),
    [
        ('cat = {query = "SELECT dsn FROM tenants", dsn = "${DB}"}', "--target cat"),
        ('shop = {dsn = "${DB}", schemas = "tenant_*"}', "--target shop"),
    ],
    ids=["a catalog with no rows", "no schema that matches"],
)
def test_targets_named_but_none_found_never_fall_back_to_the_default(
    dsn: str, tmp_path: Path, body: str, given: str
) -> None:
    query(dsn, "CREATE TABLE tenants (dsn text)")
    with pytest.raises(BadInput, match=f"^{given} chose no target .*; there is nothing to migrate$"):
        select(settings(tmp_path, body), [given.split()[1]], environ={"DB": dsn})


def test_an_empty_targets_file_never_falls_back_to_the_default(tmp_path: Path) -> None:
    path = write(tmp_path, "fleet.txt", "# nobody yet\n")
    with pytest.raises(BadInput, match=r"^--targets-file .*fleet.txt chose no target"):
        select(settings(tmp_path, ""), targets_file=path)


def test_with_schemas_makes_each_database_one_target_per_tenant(dsn: str) -> None:
    query(dsn, "CREATE SCHEMA tenant_b; CREATE SCHEMA tenant_a; CREATE SCHEMA other")
    db, kept = Target("db", dsn), Target("kept", dsn, "other")
    assert with_schemas([db, kept], pattern="TENANT_*") == [
        Target("db/tenant_a", dsn, "tenant_a"), Target("db/tenant_b", dsn, "tenant_b"), kept]  # fmt: skip
    assert with_schemas([db], query="VALUES ('other')") == [Target("db/other", dsn, "other")]
    unreachable = Target("eu", f"postgresql://app:{SECRET}@127.0.0.1:1/app")
    with pytest.raises(ConnectionFailed, match=r"^eu: cannot connect to app@127.0.0.1:1/app") as failed:
        with_schemas([unreachable], pattern="*")
    assert SECRET not in str(failed.value)
