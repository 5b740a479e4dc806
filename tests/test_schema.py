"""Schema snapshots (runner/schema.py): what `runner verify` and `runner diff --against` report.

Every test works on a real database built from the project's own sql/ folder, changes it by
hand the way a DBA would, and asserts the exact report.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator

import psycopg
import pytest
from helpers import SQL_DIR, query
from psycopg import sql
from psycopg.conninfo import make_conninfo

from runner.schema import ADDED, DROPPED, Difference, Snapshot, _view_definition, differences, load, save, snapshot


def _migrate(dsn: str) -> None:
    """The sql/ folder, file by file, as runner would apply it (each file is several statements)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for path in sorted(SQL_DIR.glob("[0-9]*.sql")):
            conn.execute(path.read_text())


def _snapshot(dsn: str, exclude: Iterable[str] = ()) -> Snapshot:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return snapshot(conn, exclude)


def _run(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _drift(dsn: str, recorded: Snapshot) -> list[str]:
    return [d.describe() for d in differences(recorded, _snapshot(dsn))]


@pytest.fixture
def migrated(dsn: str) -> str:
    _migrate(dsn)
    return dsn


@pytest.fixture
def other_dsn(dsn: str) -> Iterator[str]:
    """A second database on the same server, dropped at the end whatever happens."""
    admin_dsn = make_conninfo(dsn, dbname="postgres")
    name = f"runner_test_other_{uuid.uuid4().hex[:12]}"
    _run(admin_dsn, f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        _run(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_freshly_migrated_database_reports_no_drift(migrated: str) -> None:
    first = _snapshot(migrated)
    assert differences(first, _snapshot(migrated)) == []
    assert json.loads(json.dumps(first)) == first
    # What the catalogs say, spelled as a DBA would (sql/0014 adds skip_reason as text).
    assert first["column"]["approval_levels.skip_reason"] == {"not null": "false", "table": "approval_levels",
                                                              "type": "text"}  # fmt: skip
    assert first["index"]["idx_tat_alerts_due"]["valid"] == "true"
    assert first["type"]["workflow_priority"]["labels"] == "STANDARD, EXPRESS"
    assert "set_updated_at()" in first["function"]
    assert len(first["view"]) == 6 and "vw_tat_alerts_by_month" in first["view"]
    # Counted once: the index of a primary key or unique constraint is the constraint's.
    assert "workflow_requests.uq_workflow_requests_number" in first["constraint"]
    assert "uq_workflow_requests_number" not in first["index"]
    # PostgreSQL 18 catalogs NOT NULL as constraints too; it stays a column attribute here.
    assert not [name for name in first["constraint"] if name.endswith("_not_null")]


def test_save_and_load_round_trip_and_keep_one_row_per_object(migrated: str) -> None:
    table = sql.Identifier("public", "runner_migrations_schema")
    snap = _snapshot(migrated)
    with psycopg.connect(migrated, autocommit=True) as conn:
        assert load(conn, table) is None  # no table yet
        save(conn, table, snap)
        save(conn, table, snap)
        assert load(conn, table) == snap
    rows = query(migrated, "SELECT attributes ->> 'server_version' = current_setting('server_version_num') "
                           "FROM runner_migrations_schema WHERE kind = ''")  # fmt: skip
    assert rows == [(True,)]
    objects = sum(len(objects) for objects in snap.values())
    assert query(migrated, "SELECT count(*) FROM runner_migrations_schema WHERE kind <> ''") == [(objects,)]
    _run(migrated, "DELETE FROM runner_migrations_schema")
    with psycopg.connect(migrated, autocommit=True) as conn:
        assert load(conn, table) is None  # the table, but no row


def test_changes_made_by_hand_are_reported_in_a_dbas_words(migrated: str) -> None:
    recorded = _snapshot(migrated)
    _run(
        migrated,
        "ALTER TABLE approval_levels ALTER COLUMN skip_reason TYPE varchar(100)",
        "ALTER TABLE holidays ALTER COLUMN holiday_name DROP NOT NULL",
        "ALTER TABLE activities ALTER COLUMN severity SET DEFAULT 'WARN'",
        "ALTER TABLE holidays ADD COLUMN region text",
        "ALTER TABLE documents DROP CONSTRAINT chk_documents_version",
        "ALTER TABLE documents DISABLE TRIGGER trg_documents_updated_at",
        "DROP INDEX idx_tat_alerts_due",
        "CREATE TABLE tmp_fix (id int PRIMARY KEY, note text)",
        "CREATE INDEX tmp_fix_note ON tmp_fix (note)",
        "DROP TABLE work_note_attachments",
        "ALTER TYPE workflow_priority ADD VALUE 'URGENT'",
        """CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               NEW.updated_at := clock_timestamp();
               RETURN NEW;
           END
           $$""",
        """CREATE OR REPLACE VIEW vw_request_status_summary AS
           SELECT r.status, count(*) AS request_count,
                  count(*) FILTER (WHERE r.priority = 'EXPRESS') AS express_count,
                  count(*) FILTER (WHERE r.tat_breached) AS breached_count,
                  min(r.submission_date) AS oldest_submission
           FROM workflow_requests r
           WHERE NOT r.is_deleted AND r.status <> 'DRAFT'
           GROUP BY r.status""",
    )
    assert _drift(migrated, recorded) == [
        "type workflow_priority: labels STANDARD, EXPRESS -> STANDARD, EXPRESS, URGENT",
        "table tmp_fix: not created by any migration",
        "table work_note_attachments: dropped",
        "column activities.severity: default 'INFO'::character varying -> 'WARN'::character varying",
        "column approval_levels.skip_reason: type text -> character varying(100)",
        "column holidays.holiday_name: not null true -> false",
        "column holidays.region: not created by any migration",
        "constraint documents.chk_documents_version: dropped",
        "index idx_tat_alerts_due: dropped",
        "view vw_request_status_summary: definition changed",
        "function set_updated_at(): definition changed",
        "trigger documents.trg_documents_updated_at: enabled true -> false",
    ]


def test_an_index_left_invalid_by_a_failed_concurrent_rebuild(migrated: str) -> None:
    recorded = _snapshot(migrated)
    with psycopg.connect(migrated, autocommit=True) as app, psycopg.connect(migrated, autocommit=True) as dba:
        dba.execute("DROP INDEX idx_admin_config_category")
        app.execute("BEGIN")
        app.execute("LOCK TABLE admin_config IN ROW EXCLUSIVE MODE")  # a writer the rebuild must wait for
        dba.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            dba.execute(
                "CREATE INDEX CONCURRENTLY idx_admin_config_category ON admin_config (config_category, sort_order)"
            )
        app.execute("ROLLBACK")
    assert _drift(migrated, recorded) == ["index idx_admin_config_category: valid true -> false"]


def test_rebuilt_and_reformatted_objects_are_not_drift(migrated: str) -> None:
    """New OIDs, another layout of the same SQL, another search_path: none of it is a change."""
    recorded = _snapshot(migrated)
    _run(
        migrated,
        "DROP INDEX idx_tat_alerts_due",
        "CREATE INDEX idx_tat_alerts_due ON tat_alerts (expected_completion_time) WHERE NOT notification_sent",
        "DROP VIEW vw_tat_alerts_by_month",
        """create view vw_tat_alerts_by_month as
           select date_trunc('month', coalesce(a.alert_sent_at, a.created_at))::date as month, a.alert_type,
           count(*) as alert_count, count(*) filter (where a.notification_sent) as sent_count,
           count(*) filter (where a.was_completed_on_time) as completed_on_time_count,
           count(distinct a.approver_id) as approvers_alerted from tat_alerts a group by 1, 2""",
        """CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.updated_at := now();
              RETURN NEW; END
        $$""",
        "ALTER TABLE subscriptions DROP CONSTRAINT chk_subscriptions_failure_count",
        "ALTER TABLE subscriptions ADD CONSTRAINT chk_subscriptions_failure_count CHECK (failure_count >= 0)",
    )
    assert _drift(migrated, recorded) == []
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("SET search_path = pg_catalog")
        conn.execute("BEGIN")
        assert differences(recorded, snapshot(conn)) == []
        assert conn.execute("SHOW search_path").fetchone() == ("pg_catalog",)  # the caller's setting is back
        conn.execute("COMMIT")
    shuffled = {kind: dict(reversed(objects.items())) for kind, objects in reversed(recorded.items())}
    assert differences(shuffled, recorded) == []


def test_runner_own_tables_never_appear(migrated: str) -> None:
    before = _snapshot(migrated)
    own = ["public.runner_migrations", '"Ops".runner_migrations_schema']
    _run(
        migrated,
        "CREATE TABLE runner_migrations (version bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, "
        "CONSTRAINT name_not_blank CHECK (name <> ''))",
        "CREATE INDEX runner_migrations_name ON runner_migrations (name)",
        "CREATE TRIGGER runner_migrations_touch BEFORE UPDATE ON runner_migrations "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()",
        'CREATE SCHEMA "Ops"',
    )
    with psycopg.connect(migrated, autocommit=True) as conn:
        save(conn, sql.Identifier("Ops", "runner_migrations_schema"), before)
        mine = snapshot(conn, exclude=own)
        everything = snapshot(conn)
    assert "runner_migrations" not in json.dumps(mine)
    assert "runner_migrations" in json.dumps(everything)  # they are there, and left out on purpose
    assert [d.describe() for d in differences(before, mine)] == ['schema "Ops": not created by any migration']


def test_two_databases_migrated_alike_have_no_differences(migrated: str, other_dsn: str) -> None:
    _migrate(other_dsn)
    assert differences(_snapshot(migrated), _snapshot(other_dsn)) == []  # OIDs differ between databases
    _run(
        other_dsn,
        "ALTER TABLE work_notes ADD COLUMN pinned boolean NOT NULL DEFAULT false",
        "DROP VIEW vw_tat_alerts_by_month",
    )
    assert [d.describe() for d in differences(_snapshot(migrated), _snapshot(other_dsn))] == [
        "column work_notes.pinned: not created by any migration",
        "view vw_tat_alerts_by_month: dropped",
    ]


def test_other_kinds_of_object(migrated: str) -> None:
    available = query(migrated, "SELECT 1 FROM pg_available_extensions WHERE name = 'citext'")
    _run(
        migrated,
        "CREATE SCHEMA ops",
        "CREATE DOMAIN ops.email AS text NOT NULL CHECK (VALUE LIKE '%@%')",
        "CREATE SEQUENCE ops.ticket_numbers START 1000",
        "CREATE TYPE ops.span AS RANGE (subtype = float8)",
        "CREATE TABLE ops.contacts (id bigserial PRIMARY KEY, email ops.email, during ops.span)",
        "CREATE MATERIALIZED VIEW ops.contact_count AS SELECT count(*) AS n FROM ops.contacts",
        "CREATE PROCEDURE ops.purge() LANGUAGE sql AS $$ DELETE FROM ops.contacts $$",
        "CREATE AGGREGATE ops.total(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0')",
    )
    recorded = _snapshot(migrated)
    assert recorded["sequence"]["ops.contacts_id_seq"]["owned by"] == "ops.contacts.id"
    assert "ops.span(double precision, double precision)" not in recorded["function"]  # comes with the type
    _run(
        migrated,
        "ALTER DOMAIN ops.email DROP NOT NULL",
        "ALTER SEQUENCE ops.ticket_numbers INCREMENT BY 10",
        "DROP MATERIALIZED VIEW ops.contact_count",
        "CREATE MATERIALIZED VIEW ops.contact_count AS SELECT count(*) AS n FROM ops.contacts WHERE email IS NOT NULL",
        *(["CREATE EXTENSION citext"] if available else []),
    )
    assert _drift(migrated, recorded) == [
        *(["extension citext: not created by any migration"] if available else []),
        "domain ops.email: not null true -> false",
        "sequence ops.ticket_numbers: increment 1 -> 10",
        "materialized view ops.contact_count: definition changed",
    ]
    # A dropped schema is one line: its tables, columns, sequences, functions... go with it.
    _run(migrated, "DROP SCHEMA ops CASCADE", *(["DROP EXTENSION citext"] if available else []))
    assert _drift(migrated, recorded) == ["schema ops: dropped"]


def test_differences_word_each_change_and_keep_contents_with_their_container() -> None:
    recorded: Snapshot = {
        "table": {"t": {"schema": "public"}, "u": {"schema": "public"}},
        "column": {"t.a": {"table": "t", "type": "integer"}, "u.b": {"table": "u", "type": "text", "default": "''"}},
        "sequence": {"t_a_seq": {"schema": "public", "owned by": "t.a"}},
        "index": {"t_a": {"table": "t", "definition": "CREATE INDEX t_a ON public.t (a)", "valid": "true"}},
    }
    live: Snapshot = {
        "table": {"u": {"schema": "public"}, "v": {"schema": "public"}},
        "column": {"u.b": {"table": "u", "type": "text"}, "v.c": {"table": "v", "type": "integer"}},
    }
    assert differences(recorded, live) == [
        Difference("table", "t", DROPPED),
        Difference("table", "v", ADDED),
        Difference("column", "u.b", "default '' -> (none)"),
    ]
    assert Difference("column", "u.b", "default (none) -> 0").describe() == "column u.b: default (none) -> 0"


def test_view_text_is_the_same_whichever_postgresql_printed_it() -> None:
    """pg_get_viewdef of sql/0011's vw_request_status_summary, as PostgreSQL 15 and 18 print it."""
    pg15 = """ SELECT r.status,
    count(*) AS request_count,
    count(*) FILTER (WHERE (r.priority = 'EXPRESS'::workflow_priority)) AS express_count
   FROM workflow_requests r
  WHERE (NOT r.is_deleted)
  GROUP BY r.status;"""
    pg18 = """ SELECT status,
    count(*) AS request_count,
    count(*) FILTER (WHERE (priority = 'EXPRESS'::workflow_priority)) AS express_count
   FROM workflow_requests r
  WHERE (NOT is_deleted)
  GROUP BY status;"""
    assert _view_definition(pg15) == _view_definition(pg18)
    # A subquery and a join see more than one relation: their qualifiers stay, so meaning does too.
    assert _view_definition("SELECT i.id, (SELECT count(*) FROM e WHERE e.id = i.id) AS n FROM items i;") == (
        "SELECT id, (SELECT count(*) FROM e WHERE e.id = i.id) AS n FROM items AS i"
    )
    assert _view_definition("SELECT i.id FROM items i JOIN e ON e.id = i.id;") == (
        "SELECT i.id FROM items AS i INNER JOIN e ON e.id = i.id"
    )
    assert _view_definition("SELECT no parse (") == "SELECT no parse ("  # then the server's text is used as is


# One object of every kind, and names that need quoting: what snapshot() records, exactly and in this order
# (kinds as in KINDS, then names, then attributes). Snapshots already recorded are compared with this output.
_EVERY_KIND = """
CREATE SCHEMA ops;
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TYPE ops.pair AS (a int, b varchar(10));
CREATE TYPE ops.span AS RANGE (subtype = float8);
CREATE DOMAIN ops.email AS text NOT NULL DEFAULT 'a@b' CHECK (VALUE LIKE '%@%');
CREATE SEQUENCE ops.tickets START 1000 INCREMENT 5 CYCLE;
CREATE TABLE ops.contacts (
    id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    email ops.email UNIQUE,
    twice int GENERATED ALWAYS AS (id * 2) STORED
);
CREATE UNLOGGED TABLE "Scratch  Pad" ("the  note" text DEFAULT 'x', contact int REFERENCES ops.contacts);
CREATE TABLE readings (at date NOT NULL, feeling mood) PARTITION BY RANGE (at);
CREATE TABLE readings_2024 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
ALTER TABLE readings ADD CONSTRAINT recent CHECK (at > '2000-01-01') NOT VALID;
CREATE INDEX readings_feeling ON readings (feeling) WHERE feeling IS NOT NULL;
CREATE VIEW happy_readings AS SELECT r.at FROM readings r WHERE r.feeling = 'happy';
CREATE MATERIALIZED VIEW ops.contact_count WITH (fillfactor = 70) AS SELECT count(*) AS n FROM ops.contacts;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RETURN NEW;
    END
$$;
CREATE PROCEDURE ops.purge() LANGUAGE sql AS $$ DELETE FROM ops.contacts $$;
CREATE AGGREGATE ops.total(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0');
CREATE TRIGGER readings_touch BEFORE INSERT ON readings FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE readings DISABLE TRIGGER readings_touch;
CREATE TABLE runner_migrations (version bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);
"""
_EVERY_KIND_SNAPSHOT: Snapshot = {
    "schema": {"ops": {}, "public": {}},
    "extension": {"plpgsql": {"schema": "pg_catalog", "version": "1.0"}},
    "type": {
        "mood": {"labels": "sad, happy", "schema": "public"},
        "ops.pair": {"attributes": "a integer, b character varying(10)", "schema": "ops"},
        "ops.span": {"schema": "ops", "subtype": "double precision"},
    },
    "domain": {
        "ops.email": {
            "checks": "email_check CHECK ((VALUE ~~ '%@%'::text))",
            "default": "'a@b'::text",
            "not null": "true",
            "schema": "ops",
            "type": "text",
        }
    },
    "sequence": {
        "ops.contacts_id_seq": {
            "cycle": "false",
            "increment": "1",
            "maximum": "2147483647",
            "minimum": "1",
            "owned by": "ops.contacts.id",
            "schema": "ops",
            "start": "1",
            "type": "integer",
        },
        "ops.tickets": {
            "cycle": "true",
            "increment": "5",
            "maximum": "9223372036854775807",
            "minimum": "1",
            "schema": "ops",
            "start": "1000",
            "type": "bigint",
        },
    },
    "table": {
        '"Scratch  Pad"': {"schema": "public", "unlogged": "true"},
        "ops.contacts": {"schema": "ops", "unlogged": "false"},
        "readings": {"partition key": "RANGE (at)", "schema": "public", "unlogged": "false"},
        "readings_2024": {
            "partition of": "readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
            "schema": "public",
            "unlogged": "false",
        },
    },
    # Names are keys as the catalogs spell them; values have their whitespace collapsed.
    "column": {
        '"Scratch  Pad"."the  note"': {
            "default": "'x'::text",
            "not null": "false",
            "table": '"Scratch Pad"',
            "type": "text",
        },
        '"Scratch  Pad".contact': {"not null": "false", "table": '"Scratch Pad"', "type": "integer"},
        "ops.contacts.email": {"not null": "false", "table": "ops.contacts", "type": "ops.email"},
        "ops.contacts.id": {"identity": "by default", "not null": "true", "table": "ops.contacts", "type": "integer"},
        "ops.contacts.twice": {
            "generated": "(id * 2) stored",
            "not null": "false",
            "table": "ops.contacts",
            "type": "integer",
        },
        "readings.at": {"not null": "true", "table": "readings", "type": "date"},
        "readings.feeling": {"not null": "false", "table": "readings", "type": "mood"},
        "readings_2024.at": {"not null": "true", "table": "readings_2024", "type": "date"},
        "readings_2024.feeling": {"not null": "false", "table": "readings_2024", "type": "mood"},
    },
    "constraint": {
        '"Scratch  Pad"."Scratch  Pad_contact_fkey"': {
            "definition": "FOREIGN KEY (contact) REFERENCES ops.contacts(id)",
            "table": '"Scratch Pad"',
            "valid": "true",
        },
        "ops.contacts.contacts_email_key": {"definition": "UNIQUE (email)", "table": "ops.contacts", "valid": "true"},
        "ops.contacts.contacts_pkey": {"definition": "PRIMARY KEY (id)", "table": "ops.contacts", "valid": "true"},
        "readings.recent": {
            "definition": "CHECK ((at > '2000-01-01'::date)) NOT VALID",
            "table": "readings",
            "valid": "false",
        },
        "readings_2024.recent": {
            "definition": "CHECK ((at > '2000-01-01'::date)) NOT VALID",
            "table": "readings_2024",
            "valid": "false",
        },
    },
    "index": {
        "readings_2024_feeling_idx": {
            "definition": "CREATE INDEX readings_2024_feeling_idx ON public.readings_2024 USING btree (feeling) "
            "WHERE (feeling IS NOT NULL)",
            "table": "readings_2024",
            "valid": "true",
        },
        "readings_feeling": {
            "definition": "CREATE INDEX readings_feeling ON ONLY public.readings USING btree (feeling) "
            "WHERE (feeling IS NOT NULL)",
            "table": "readings",
            "valid": "true",
        },
    },
    "view": {
        "happy_readings": {
            "definition": "SELECT at FROM readings AS r WHERE feeling = CAST('happy' AS mood)",
            "schema": "public",
        }
    },
    "materialized view": {
        "ops.contact_count": {
            "definition": "SELECT count(*) AS n FROM ops.contacts",
            "options": "fillfactor=70",
            "schema": "ops",
        }
    },
    "function": {
        "touch()": {
            "definition": "CREATE OR REPLACE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql "
            "AS $function$ BEGIN RETURN NEW; END $function$",
            "schema": "public",
        }
    },
    "procedure": {
        "ops.purge()": {
            "definition": "CREATE OR REPLACE PROCEDURE ops.purge() LANGUAGE sql "
            "AS $procedure$ DELETE FROM ops.contacts $procedure$",
            "schema": "ops",
        }
    },
    "aggregate": {
        "ops.total(integer)": {
            "definition": "SFUNC int4pl STYPE integer FINALFUNC - COMBINEFUNC - INITCOND 0",
            "schema": "ops",
        }
    },
    "trigger": {
        "readings.readings_touch": {
            "definition": "CREATE TRIGGER readings_touch BEFORE INSERT ON public.readings FOR EACH ROW "
            "EXECUTE FUNCTION touch()",
            "enabled": "false",
            "table": "readings",
        }
    },
}


def test_one_object_of_every_kind_is_recorded_exactly_as_before(dsn: str) -> None:
    _run(dsn, _EVERY_KIND)
    snap = _snapshot(dsn, exclude=["public.runner_migrations"])
    assert snap == _EVERY_KIND_SNAPSHOT
    assert json.dumps(snap) == json.dumps(_EVERY_KIND_SNAPSHOT)  # in the same order, too
    assert "runner_migrations_version_seq" in json.dumps(_snapshot(dsn))  # left out above on purpose
