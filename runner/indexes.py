"""INVALID indexes: what a failed or cancelled CREATE INDEX CONCURRENTLY leaves behind.

Such an index exists but is never used, and ``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` skips
it on the next run, so the failure would go unnoticed. Builds still in progress (their index
is INVALID until they finish) are not reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

_INVALID = """
SELECT format('%I.%I', n.nspname, c.relname), format('%I.%I', tn.nspname, t.relname)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace tn ON tn.oid = t.relnamespace
WHERE NOT i.indisvalid
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
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


def invalid_indexes(conn: psycopg.Connection) -> list[InvalidIndex]:
    return [InvalidIndex(name, table) for name, table in conn.execute(_INVALID).fetchall()]
