"""A run that found the recorded schema unchanged reads again only what its files wrote: the record it leaves
must be exactly what reading the whole schema gives, whatever the files did."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
from helpers import query, runner_cli, write
from psycopg import sql

from runner import schema

OWN = [f"public.runner_migrations{suffix}" for suffix in ("", "_history", "_repeatable", "_schema")]
TABLE = sql.Identifier("public", "runner_migrations_schema")

# Objects of every kind a snapshot holds, depending on each other across schemas.
FIRST = """
CREATE SCHEMA IF NOT EXISTS billing;
CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a integer, b text);
CREATE TYPE span AS RANGE (subtype = integer);
CREATE SEQUENCE invoice_no;
CREATE TABLE customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE, feeling mood);
CREATE TABLE billing.invoices (
    id integer PRIMARY KEY DEFAULT nextval('invoice_no'), customer bigint REFERENCES customers (id),
    amount positive, doubled integer GENERATED ALWAYS AS (amount * 2) STORED, note text CHECK (note <> ''));
CREATE INDEX invoices_amount ON billing.invoices (amount) WHERE amount > 10;
CREATE VIEW big_invoices AS SELECT i.id, c.name FROM billing.invoices i JOIN customers c ON c.id = i.customer;
CREATE MATERIALIZED VIEW customer_names AS SELECT name FROM customers;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER customers_touch BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION touch();
CREATE FUNCTION total(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1 * 2';
CREATE AGGREGATE summed (integer) (SFUNC = int4pl, STYPE = integer);
CREATE TABLE events (at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE events_2027 (at date NOT NULL, what text);
CREATE TABLE leftover (id integer);
CREATE TABLE counters (n integer);
"""
# Renames that change how other objects print, alterations, drops, and additions.
SECOND = """
ALTER TABLE customers RENAME TO clients;
ALTER TABLE clients RENAME COLUMN name TO full_name;
ALTER TYPE mood ADD VALUE 'glad';
ALTER TYPE pair RENAME TO couple;
ALTER DOMAIN positive ADD CONSTRAINT below_million CHECK (VALUE < 1000000);
ALTER SCHEMA billing RENAME TO accounts;
ALTER SEQUENCE invoice_no OWNED BY counters.n;
CREATE OR REPLACE FUNCTION total(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1 * 3';
ALTER FUNCTION touch() RENAME TO touched;
ALTER TABLE clients DISABLE TRIGGER customers_touch;
ALTER TABLE accounts.invoices RENAME CONSTRAINT invoices_note_check TO note_not_empty;
ALTER TABLE accounts.invoices ALTER COLUMN note TYPE varchar(200);
ALTER TABLE accounts.invoices ADD COLUMN paid boolean NOT NULL DEFAULT false;
DROP INDEX accounts.invoices_amount;
CREATE INDEX invoices_paid ON accounts.invoices (paid);
DROP TABLE leftover;
ALTER TABLE events ATTACH PARTITION events_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
CREATE TABLE accounts.refunds (id integer PRIMARY KEY, invoice integer REFERENCES accounts.invoices (id));
"""


def _record_is_a_full_read(dsn: str) -> None:
    """The rows runner recorded are the objects, attributes and catalog rows a whole read finds now."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        recorded = schema.load(conn, TABLE)
        live, anchors = schema.taken(conn, OWN)
        rows = conn.execute("SELECT kind, name, catalog, objid FROM runner_migrations_schema WHERE kind <> ''")
        where = {(kind, name): [catalog, objid] for kind, name, catalog, objid in rows}
    assert recorded == live
    assert where == anchors


def _unchanged(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return schema.unchanged(conn, TABLE) is not None


def _migrate(dsn: str, folder: Path) -> None:
    result = runner_cli("migrate", "--dsn", dsn, "--dir", folder)
    assert result.returncode == 0, result.stderr


def test_a_run_records_what_reading_the_whole_schema_gives(dsn: str, migrations: Path) -> None:
    write(migrations, "1_first.sql", FIRST)
    _migrate(dsn, migrations)
    _record_is_a_full_read(dsn)
    for version, text in ((2, SECOND), (3, "CREATE TABLE IF NOT EXISTS added (id integer);\n"), (4, "SELECT 1;\n")):
        assert _unchanged(dsn)  # so the run reads again only what its file wrote
        write(migrations, f"{version}_more.sql", text)
        _migrate(dsn, migrations)
        _record_is_a_full_read(dsn)
        assert runner_cli("verify", "--dsn", dsn, "--dir", migrations).stdout == f"No drift: {version} applied\n"
    names = {name for (name,) in query(dsn, "SELECT name FROM runner_migrations_schema")}
    assert {"clients", "accounts.invoices", "couple", "added", "clients.full_name"} <= names
    assert not names & {"customers", "leftover", "billing.invoices", "pair", "accounts.invoices_amount"}


def test_a_change_made_by_hand_after_a_run_is_found(dsn: str, migrations: Path) -> None:
    write(migrations, "1_first.sql", FIRST)
    _migrate(dsn, migrations)
    query(dsn, "ALTER TABLE customers RENAME COLUMN name TO label")  # rewrites a row: the row count stays
    result = runner_cli("verify", "--dsn", dsn, "--dir", migrations)
    assert result.returncode == 1
    assert "schema       column customers.label: not created by any migration" in result.stdout


def test_a_change_committed_while_a_run_records_the_schema_is_found(dsn: str, migrations: Path) -> None:
    """A transaction older than the record, committed after it, writes rows with an older id than the
    recording transaction's: the fingerprint must count them still."""
    write(migrations, "1_first.sql", FIRST)
    _migrate(dsn, migrations)
    write(migrations, "2_more.sql", "CREATE TABLE IF NOT EXISTS later (id integer);\n")
    with psycopg.connect(dsn) as hand:
        hand.execute("ALTER TABLE leftover RENAME COLUMN id TO renamed")  # begun, and holding its xid
        done = threading.Event()
        thread = threading.Thread(target=lambda: (_migrate(dsn, migrations), done.set()))
        thread.start()
        thread.join(timeout=60)
        assert done.is_set()
        hand.commit()
    result = runner_cli("verify", "--dsn", dsn, "--dir", migrations)
    assert result.returncode == 1, result.stdout
    assert "schema       column leftover.renamed: not created by any migration" in result.stdout
