"""INVALID indexes: what a failed or cancelled CREATE INDEX CONCURRENTLY leaves behind.

Such an index exists but is never used, and ``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` skips
it on the next run, so the failure would go unnoticed. Builds still in progress (their index
is INVALID until they finish) are not reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

_INVALID = """
SELECT format('%%I.%%I', n.nspname, c.relname), format('%%I.%%I', tn.nspname, t.relname), c.relname, t.relname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace tn ON tn.oid = t.relnamespace
WHERE NOT i.indisvalid
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND (%(only)s::name IS NULL OR n.nspname = %(only)s)  -- a tenant's own, when one is asked about
  AND i.indexrelid NOT IN (SELECT index_relid FROM pg_stat_progress_create_index WHERE index_relid <> 0)
ORDER BY 1
"""


@dataclass(frozen=True)
class InvalidIndex:
    name: str  # schema-qualified and quoted where needed
    table: str

    @property
    def fix(self) -> str:
        return f"DROP INDEX CONCURRENTLY {self.name};"

    def describe(self) -> str:
        return (
            f"index {self.name} on {self.table} is INVALID (left by a failed concurrent build) and IF NOT EXISTS "
            f"would skip it: run `{self.fix}`, then `runner migrate` again"
        )


def invalid_indexes(conn: psycopg.Connection, only: str | None = None) -> list[InvalidIndex]:
    """Every INVALID index of the database, or of the tenant schema ``only``."""
    rows = conn.execute(_INVALID, {"only": only}).fetchall()
    return [InvalidIndex(name, table) for name, table, _, _ in rows]


def _built_by(statements: list[str]) -> tuple[set[str], set[str]]:
    """The names of the indexes that ``statements`` build (CREATE INDEX, REINDEX INDEX), and the tables of
    those built without a name (PostgreSQL names them)."""
    from pglast import ast, enums, parse_sql

    names: set[str] = set()
    tables: set[str] = set()
    for text in statements:
        if "index" not in text.lower():
            continue
        try:
            nodes = [raw.stmt for raw in parse_sql(text)]
        except Exception:  # it ran, so the server parsed it; pglast may lag behind the server's grammar
            continue
        for node in nodes:
            if isinstance(node, ast.IndexStmt):
                if node.idxname:
                    names.add(node.idxname)
                else:
                    tables.add(node.relation.relname)
            elif isinstance(node, ast.ReindexStmt) and node.relation is not None:
                if node.kind == enums.ReindexObjectType.REINDEX_OBJECT_INDEX:
                    names.add(node.relation.relname)
                else:
                    tables.add(node.relation.relname)
    return names, tables


def invalid_among(conn: psycopg.Connection, statements: list[str], only: str | None = None) -> list[InvalidIndex]:
    """The INVALID indexes among those ``statements`` build: a build that failed in an earlier run, which
    CREATE INDEX CONCURRENTLY IF NOT EXISTS then skips without a word."""
    names, tables = _built_by(statements)
    if not (names or tables):
        return []
    return [InvalidIndex(name, table) for name, table, index, on in conn.execute(_INVALID, {"only": only}).fetchall()
            if index in names or on in tables]  # fmt: skip
