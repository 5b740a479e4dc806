"""``runner lint``: the real squawk binary on real files; no database needed."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import SQL_DIR, assert_clean_error, runner_cli, write

from runner.errors import BadInput, RunnerError
from runner.files import discover
from runner.lint import Finding, config, lint

NO_TRANSACTION = "-- runner: no-transaction\n"
CONCURRENT = "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx ON t (a);\nALTER TABLE t ADD COLUMN IF NOT EXISTS b text;\n"

# What squawk reports on the project's own files: rule -> "version:lines" per file. All are warnings.
PROJECT_FINDINGS = {
    "ban-char-field": "0004:18",
    "prefer-bigint-over-int": "0001:55,56 0002:25 0004:20,24 0005:17 0008:16 0009:66 0013:22",
    "prefer-bigint-over-smallint": "0010:24",
    "prefer-text-field": "0001:46,47,49,54 0002:26,28,29 0003:20,21 0004:11,12,13,14,16,17,19 0006:13,14,16 "
    "0007:12,13,15 0008:10,11,13,14 0012:12,14 0013:11,12,14,15",
    "require-concurrent-index-creation": "0009:50,55,88 0014:34",
    "require-lock-timeout": "0001:35 0002:21 0003:15 0004:6 0005:25 0006:8 0007:7 0008:6 0009:11 0010:16 0011:10 "
    "0012:27 0013:45 0014:8",
    "require-statement-timeout": "0001:35 0002:21 0003:15 0004:6 0005:25 0006:8 0007:7 0008:6 0009:11 0010:16 "
    "0011:10 0012:27 0013:45 0014:8",
}


def lint_folder(folder: Path, **options: object) -> list[Finding]:
    return lint(discover(folder), **options)  # type: ignore[arg-type]


def rules(findings: list[Finding]) -> list[tuple[str, int, str]]:
    return [(Path(f.file).name, f.line, f.rule) for f in findings]


def test_the_project_sql_files() -> None:
    findings = lint(discover(SQL_DIR))
    summary: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for f in findings:
        summary[f.rule][Path(f.file).name[:4]].append(str(f.line))
    shown = {rule: " ".join(f"{v}:{','.join(lines)}" for v, lines in files.items()) for rule, files in summary.items()}
    assert shown == PROJECT_FINDINGS
    assert {f.level for f in findings} == {"warning"}
    assert [Path(f.file).name for f in findings] == sorted(Path(f.file).name for f in findings)


def test_the_project_guards_satisfy_robust_statements_outside_a_transaction(migrations: Path) -> None:
    """In a transaction squawk does not ask for guards (the file is rerunnable), so check the guards without one."""
    for path in SQL_DIR.glob("[0-9]*.sql"):
        write(migrations, path.name, NO_TRANSACTION + path.read_text())
    assert [f for f in lint_folder(migrations) if f.rule == "prefer-robust-stmts"] == []


def test_an_index_built_without_concurrently(migrations: Path) -> None:
    write(migrations, "1_index.sql", "-- an index\nSELECT 1;\n\nCREATE INDEX IF NOT EXISTS idx ON t (a);\n")
    [finding] = [f for f in lint_folder(migrations) if f.rule == "require-concurrent-index-creation"]
    assert finding == Finding(
        file=str(migrations / "1_index.sql"), line=4, column=1, rule="require-concurrent-index-creation",
        level="warning", help="Use `concurrently` to avoid blocking writes.",
        message="During normal index creation, table updates are blocked, but reads are still allowed.",
    )  # fmt: skip


def test_a_table_without_if_not_exists_is_reported_only_outside_a_transaction(migrations: Path) -> None:
    write(migrations, "1_table.sql", "CREATE TABLE t (a bigint);\n")
    write(migrations, "2_table.sql", NO_TRANSACTION + "SELECT 1;\nCREATE TABLE u (a bigint);\n")
    assert rules(lint_folder(migrations)) == [("2_table.sql", 3, "prefer-robust-stmts")]


def test_concurrent_index_is_a_finding_only_in_a_transaction(migrations: Path) -> None:
    write(migrations, "1_in_transaction.sql", CONCURRENT)
    write(migrations, "2_outside.sql", NO_TRANSACTION + CONCURRENT)
    findings = lint_folder(migrations, exclude=["require-lock-timeout", "require-statement-timeout"])
    assert rules(findings) == [("1_in_transaction.sql", 1, "ban-concurrent-index-creation-in-transaction")]
    assert findings[0].column == 14  # the CONCURRENTLY keyword


def test_exclude_silences_a_rule(migrations: Path) -> None:
    write(migrations, "1_index.sql", "CREATE INDEX IF NOT EXISTS idx ON t (a);\n")
    assert "require-concurrent-index-creation" in {f.rule for f in lint_folder(migrations)}
    assert lint_folder(migrations, exclude=["require-concurrent-index-creation", "require-lock-timeout",
                                            "require-statement-timeout"]) == []  # fmt: skip


def test_an_unknown_rule_name_is_bad_input(migrations: Path) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    with pytest.raises(BadInput, match="no-such-rule"):
        lint_folder(migrations, exclude=["no-such-rule"])


def test_line_numbers_and_order_in_multi_statement_files(migrations: Path) -> None:
    write(migrations, "2_second.sql", "-- two indexes\n\nCREATE INDEX IF NOT EXISTS i1 ON t (a);\nSELECT 1;\n"
                                      "CREATE INDEX IF NOT EXISTS i2\n    ON t (b);\n")  # fmt: skip
    write(migrations, "10_third.sql", "SELECT 1;\nCREATE INDEX IF NOT EXISTS i3 ON t (c);\n")
    write(migrations, "1_first.sql", "SELECT 1;\nSELECT 2;\nCREATE INDEX IF NOT EXISTS i0 ON t (d);\n")
    findings = lint_folder(migrations, exclude=["require-lock-timeout", "require-statement-timeout"])
    assert rules(findings) == [
        ("1_first.sql", 3, "require-concurrent-index-creation"),
        ("2_second.sql", 3, "require-concurrent-index-creation"),
        ("2_second.sql", 5, "require-concurrent-index-creation"),
        ("10_third.sql", 2, "require-concurrent-index-creation"),
    ]


def test_sql_squawk_cannot_parse_is_an_error_finding(migrations: Path) -> None:
    write(migrations, "1_bad.sql", "SELECT 1;\nCREATE TABLE IF NOT EXISTS t (a bigint\n;\n")
    [finding] = lint_folder(migrations)
    assert (finding.line, finding.level, finding.rule) == (2, "error", "syntax-error")
    assert finding.message == "expected R_PAREN"


def test_config_reads_pyproject_and_pg_version_reaches_squawk(tmp_path: Path, migrations: Path) -> None:
    assert config(tmp_path) == {"exclude": [], "pg_version": None}
    write(tmp_path, "pyproject.toml", '[project]\nname = "app"\n')
    assert config(tmp_path) == {"exclude": [], "pg_version": None}
    write(tmp_path, "pyproject.toml", '[tool.runner.lint]\nexclude = ["require-lock-timeout", '
                                      '"require-statement-timeout"]\npg-version = "10"\n')  # fmt: skip
    settings = config(tmp_path)
    assert settings == {"exclude": ["require-lock-timeout", "require-statement-timeout"], "pg_version": "10"}
    write(migrations, "1_default.sql", "ALTER TABLE t ADD COLUMN IF NOT EXISTS b bigint DEFAULT 0;\n")
    assert rules(lint_folder(migrations, **settings)) == [("1_default.sql", 1, "adding-field-with-default")]
    assert lint_folder(migrations, exclude=settings["exclude"]) == []  # PostgreSQL 11+ adds it without a rewrite


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ('excluded = ["x"]', "unknown key 'excluded' in [tool.runner.lint]; runner knows exclude, pg-version"),
        ('exclude = "ban-drop-column"', "exclude must be a list"),
        ("pg-version = 16", "pg-version must be a string"),
    ],
)
def test_config_rejects_a_bad_table(tmp_path: Path, table: str, needle: str) -> None:
    write(tmp_path, "pyproject.toml", f"[tool.runner.lint]\n{table}\n")
    with pytest.raises(BadInput) as raised:
        config(tmp_path)
    assert needle in str(raised.value)


def test_missing_squawk_says_how_to_install(tmp_path: Path, migrations: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BadInput, match="pip install squawk-cli"):
        lint_folder(migrations)


@pytest.mark.parametrize("code", [101, 1])  # a crash; findings promised but no JSON
def test_a_failing_squawk_is_a_one_line_error(
    tmp_path: Path, migrations: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    write(migrations, "1_a.sql", "SELECT 1;\n")
    write(tmp_path / "bin", "squawk", f"#!/bin/sh\necho \"thread 'main' panicked\" >&2\necho '[{{'\nexit {code}\n")
    (tmp_path / "bin" / "squawk").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    with pytest.raises(RunnerError) as raised:
        lint_folder(migrations)
    assert type(raised.value) is RunnerError
    assert str(raised.value) == f"squawk failed (exit code {code}): thread 'main' panicked"


def test_a_squawk_toml_does_not_apply(tmp_path: Path, migrations: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[tool.runner.lint] is the one place the rules are chosen."""
    write(tmp_path, ".squawk.toml", 'excluded_rules = ["prefer-robust-stmts"]\nassume_in_transaction = true\n')
    write(migrations, "1_table.sql", NO_TRANSACTION + "CREATE TABLE t (a bigint);\n")
    monkeypatch.chdir(tmp_path)
    assert rules(lint_folder(migrations)) == [("1_table.sql", 2, "prefer-robust-stmts")]


TABLE_AND_INDEX = "CREATE TABLE IF NOT EXISTS a (id bigint);\nCREATE INDEX IF NOT EXISTS a_id ON a (id);\n"


def test_runner_lint_groups_findings_by_file_and_fails_only_on_errors(migrations: Path) -> None:
    write(migrations, "1_a.sql", TABLE_AND_INDEX)
    shown = runner_cli("lint", migrations / "1_a.sql")
    assert shown.returncode == 0, shown.stderr  # squawk's rule findings are warnings
    assert [line.split(":")[0] for line in shown.stdout.splitlines()] == [
        str(migrations / "1_a.sql"),
        "  line 2",
        "      help",
        "  line 2",
        "      help",
        "2 finding(s)",
    ]
    assert "warning require-lock-timeout: Missing `set lock_timeout`" in shown.stdout
    assert runner_cli("lint", migrations / "1_a.sql", "--strict").returncode == 1
    write(migrations, "2_bad.sql", "CREATE TABLE (;\n")
    assert runner_cli("lint", migrations / "2_bad.sql").returncode == 1
    assert_clean_error(runner_cli("lint", migrations / "nope.sql"), 2, "nope.sql: not a migration file")


def test_runner_lint_checks_the_pending_files_by_default(dsn: str, migrations: Path) -> None:
    write(migrations, "1_a.sql", "CREATE TABLE IF NOT EXISTS a (id bigint);\n")
    assert runner_cli("migrate", "--dsn", dsn, "--dir", migrations).returncode == 0
    write(migrations, "1_a.sql", TABLE_AND_INDEX)  # edited after it was applied: not pending, not linted
    write(migrations, "2_b.sql", TABLE_AND_INDEX.replace(" a", " b"))
    write(migrations / "down", "2_b.sql", "DROP TABLE b;\n")  # and the down file of a pending one
    shown = runner_cli("lint", "--dsn", dsn, "--dir", migrations, "--json")
    assert shown.returncode == 0, shown.stderr
    findings = json.loads(shown.stdout)["findings"]
    assert {f["file"] for f in findings} == {str(migrations / "2_b.sql"), str(migrations / "down" / "2_b.sql")}
    assert "ban-drop-table" in {f["rule"] for f in findings if "down" in f["file"]}
    named = runner_cli("lint", migrations / "down" / "2_b.sql", "--dir", migrations, "--json")
    assert "ban-drop-table" in [f["rule"] for f in json.loads(named.stdout)["findings"]], named.stderr
