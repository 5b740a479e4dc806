"""Fleets through the library: many targets (tenant schemas, databases), each on its own lock and tracking.

The CLI's fleet options, kill -9 and shards in separate processes are in tests/test_fleet_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from helpers import query, write

from runner import api, fleet, schema
from runner.targets import Target

FILES = {
    "0001_create_accounts.sql": "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, name text NOT NULL);\n",
    "0002_index_names.sql": "CREATE INDEX IF NOT EXISTS accounts_name ON accounts (name);\n",
    "0003_create_notes.sql": "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, account bigint "
    "REFERENCES accounts, body text);\nCREATE VIEW recent AS SELECT * FROM notes ORDER BY id DESC LIMIT 10;\n",
}


@pytest.fixture
def folder(migrations: Path) -> Path:
    for name, text in FILES.items():
        write(migrations, name, text)
    return migrations


def tenants(dsn: str, count: int, prefix: str = "tenant_") -> list[Target]:
    names = [f"{prefix}{i:04}" for i in range(count)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(";".join(f"CREATE SCHEMA {name}" for name in names))
    return [Target(f"db/{name}", dsn, name) for name in names]


def tenant_schema(dsn: str, name: str) -> schema.Snapshot:
    """A tenant's objects, named as if it were the only one, to compare tenants with each other."""
    own = [f"{name}.runner_migrations{suffix}" for suffix in ("", "_history", "_schema", "_repeatable")]
    with psycopg.connect(dsn, autocommit=True) as conn:
        snap = schema.snapshot(conn, own, only=name)

    def named(text: str) -> str:
        return "T" if text == name else text.replace(f"{name}.", "T.")

    return {kind: {named(key): {a: named(v) for a, v in attributes.items()} for key, attributes in objects.items()}
            for kind, objects in snap.items()}  # fmt: skip


def test_each_tenant_schema_gets_its_own_tables_and_they_end_in_the_same_schema(dsn: str, folder: Path) -> None:
    targets = tenants(dsn, 3)
    result = fleet.migrate(targets, folder, jobs=3)
    assert result.code == 0 and not result.failed and not result.not_started
    assert all(len(o.result.applied) == 3 for o in result.outcomes if o.result)
    for target in targets:  # each its own record, in its own schema; nothing in public
        rows = query(dsn, f"SELECT version FROM {target.schema}.runner_migrations ORDER BY 1")
        assert rows == [(1,), (2,), (3,)]
    assert query(dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    first = tenant_schema(dsn, "tenant_0000")
    assert first["view"] and first["index"]
    assert all(tenant_schema(dsn, t.schema or "") == first for t in targets[1:])
    # A second run has nothing to do anywhere, and verify finds every tenant clean.
    again = fleet.migrate(targets, folder)
    assert [len(o.result.applied) for o in again.outcomes if o.result] == [0, 0, 0]
    assert [o.code for o in fleet.verify(targets, folder).outcomes] == [0, 0, 0]


def test_a_change_by_hand_in_one_tenant_is_drift_of_that_tenant_alone(dsn: str, folder: Path) -> None:
    targets = tenants(dsn, 3)
    fleet.migrate(targets, folder)
    query(dsn, "ALTER TABLE tenant_0001.accounts ADD COLUMN extra int")
    fleet.migrate(targets[2:], folder)  # another tenant's run records nothing of it
    result = fleet.verify(targets, folder)
    assert [o.code for o in result.outcomes] == [0, 1, 0]
    drift = result.outcomes[1].result
    assert drift is not None
    assert [d.describe() for d in drift.schema_drift] == [
        "column tenant_0001.accounts.extra: not created by any migration"
    ]


def test_a_failure_stops_new_targets_and_keep_going_migrates_the_rest(dsn: str, folder: Path) -> None:
    targets = tenants(dsn, 4)
    query(dsn, "CREATE TABLE tenant_0001.accounts (id bigint)")  # 0002's index needs a name column
    result = fleet.migrate(targets, folder, jobs=1)
    assert result.code == 3
    assert [o.started for o in result.outcomes] == [True, True, False, False]
    assert result.failed[0].target.name == "db/tenant_0001" and "0002_index_names.sql" in str(result.failed[0].error)
    assert result.stopped == "db/tenant_0001 failed"
    assert query(dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'tenant_0002'") == [(0,)]
    # A re-run picks up where each target stands; with keep_going the failure no longer holds the rest back.
    again = fleet.migrate(targets, folder, jobs=2, keep_going=True)
    assert [o.code for o in again.outcomes] == [0, 3, 0, 0]
    assert [len(o.result.applied) for o in again.outcomes if o.result] == [0, 3, 3]
    applied = query(dsn, "SELECT count(*) FROM tenant_0001.runner_migrations")
    assert applied == [(1,)]  # 0001 (IF NOT EXISTS skipped the table) is recorded; 0002 rolled back


def test_a_failed_canary_leaves_the_other_targets_unstarted(dsn: str, folder: Path) -> None:
    targets = tenants(dsn, 5)
    query(dsn, "CREATE TABLE tenant_0000.accounts (id bigint)")
    result = fleet.migrate(targets, folder, canary=2, jobs=4, keep_going=True)
    assert [o.started for o in result.outcomes] == [True, True, False, False, False]
    assert result.stopped is not None and result.stopped.startswith("a canary target failed (db/tenant_0000)")
    assert result.code == 3
    fine = fleet.migrate(targets[1:], folder, canary=2, jobs=4)
    assert fine.code == 0 and all(o.started for o in fine.outcomes)


def test_a_thousand_tenant_schemas_in_one_database(dsn: str, migrations: Path) -> None:
    write(migrations, "0001_create_accounts.sql", FILES["0001_create_accounts.sql"])  # one file: the count is the point
    targets = tenants(dsn, 1000)
    result = fleet.migrate(targets, migrations, jobs=4)
    assert result.code == 0 and sum(len(o.result.applied) for o in result.outcomes if o.result) == 1000
    status = fleet.status(targets, migrations, jobs=4)
    assert {e.state.value for o in status.outcomes if o.result for e in o.result.entries} == {"applied"}
    shapes = query(
        dsn,
        "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_name = 'accounts' GROUP BY table_schema",
    )
    assert len(shapes) == 1000 and len(set(shapes)) == 1
    assert query(dsn, "SELECT count(*) FROM pg_tables WHERE tablename = 'runner_migrations'") == [(1000,)]
    assert tenant_schema(dsn, "tenant_0999") == tenant_schema(dsn, "tenant_0000")


def test_a_tenant_whose_schema_is_missing_is_created_only_when_asked(dsn: str, folder: Path) -> None:
    target = Target("db/new_tenant", dsn, "new_tenant")
    refused = fleet.migrate([target], folder)
    assert refused.code == 2 and "schema new_tenant does not exist" in str(refused.failed[0].error)
    assert query(dsn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'new_tenant'") == [(0,)]
    result = fleet.migrate([target], folder, create_schema=True)
    assert result.code == 0
    assert query(dsn, "SELECT count(*) FROM new_tenant.runner_migrations") == [(3,)]
    single = api.status(dsn, folder, "new_tenant.runner_migrations")
    assert all(e.state.value == "applied" for e in single.entries)


def test_a_database_migrated_whole_and_its_tenants_do_not_see_each_other_as_drift(dsn: str, folder: Path) -> None:
    targets = tenants(dsn, 2)
    api.migrate(dsn, folder)  # the database's own public schema, beside its tenants
    assert fleet.migrate(targets, folder).code == 0
    api.migrate(dsn, folder)
    assert api.verify(dsn, folder).clean
    assert [o.code for o in fleet.verify(targets, folder).outcomes] == [0, 0]
    query(dsn, "ALTER TABLE public.accounts ADD COLUMN extra int")
    assert [d.describe() for d in api.verify(dsn, folder).schema_drift] == [
        "column accounts.extra: not created by any migration"
    ]
    assert [o.code for o in fleet.verify(targets, folder).outcomes] == [0, 0]


def test_an_invalid_index_in_one_tenant_is_that_tenants_alone(dsn: str, folder: Path) -> None:
    targets = tenants(dsn, 2)
    fleet.migrate(targets, folder)
    query(dsn, "INSERT INTO tenant_0000.accounts VALUES (1, 'same'), (2, 'same')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        query(dsn, "CREATE UNIQUE INDEX CONCURRENTLY accounts_unique_name ON tenant_0000.accounts (name)")
    result = fleet.verify(targets, folder)
    assert [o.code for o in result.outcomes] == [1, 0]
    first = result.outcomes[0].result
    assert first is not None and [i.name for i in first.invalid_indexes] == ["tenant_0000.accounts_unique_name"]
