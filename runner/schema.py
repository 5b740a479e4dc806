"""Schema snapshots: what the catalogs say the database looks like, and how two such pictures differ.

``runner migrate`` records a snapshot after a successful run; ``runner verify`` compares the live
catalogs with it, and ``runner diff --against`` compares two live databases. Both must report
only real changes made by hand, so a snapshot holds no OIDs, is keyed by name (order never
matters), uses PostgreSQL's own deparsers (pg_get_viewdef and friends) with whitespace collapsed,
and is read under a fixed ``search_path`` so the caller's session cannot change how names print.
Objects of extensions and of the system schemas are left out: they are not the migrations' work.

A record keeps, beside each object's attributes (which hold no OIDs), the catalog row it was read from,
and a fingerprint of the catalog rows' stamps (see _STAMPS): a check that finds the fingerprint
unchanged reads no snapshot, and a run reads again only the objects its files wrote (see refresh).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from runner import db

# kind -> object name -> attribute -> value. Every value is a string; an absent attribute means "none".
Snapshot = dict[str, dict[str, dict[str, str]]]

# In the order a DBA reads a report: containers before their contents.
KINDS = (
    "schema", "extension", "type", "domain", "sequence", "table", "column", "constraint", "index",
    "view", "materialized view", "function", "procedure", "aggregate", "trigger",
)  # fmt: skip
SUFFIX = "_schema"  # the snapshot's table is named after the tracking table
DROPPED = "dropped"
ADDED = "not created by any migration"
NONE = "(none)"

# Attributes that name the object's container, and the kinds that container can be: an object
# whose container was dropped (or added) too is not reported on its own line.
_PARENTS: dict[str, tuple[str, ...]] = {
    "schema": ("schema",),
    "table": ("table", "view", "materialized view"),
    "owned by": ("column",),
}
# Types and names in deparsed SQL print schema-qualified unless in public, whoever's session this is.
_SEARCH_PATH = "pg_catalog, public"


def _qualified(schema: str, name: str) -> str:
    """SQL for a name as a DBA writes it: quoted where needed, schema-qualified unless in public."""
    return (
        f"CASE WHEN {schema} = 'public' THEN quote_ident({name}) "
        f"ELSE quote_ident({schema}) || '.' || quote_ident({name}) END"
    )


def _user_schema(schema: str) -> str:
    """Not pg_catalog, pg_toast, pg_temp_N, information_schema, ...; only the tenant's (%(only)s), if one is given,
    else none of the tenants' (tenant_spaces)."""
    tenant = f"(%(only)s::name IS NULL OR {schema} = %(only)s) AND {schema} NOT IN (SELECT nspname FROM tenant_spaces)"
    return f"({schema} !~ '^pg_' AND {schema} <> 'information_schema' AND {tenant})"


def _not_in_extension(catalog: str, oid: str) -> str:
    """CREATE EXTENSION made it, not a migration."""
    return (
        f"NOT EXISTS (SELECT FROM pg_depend x "
        f"WHERE x.classid = '{catalog}'::regclass AND x.objid = {oid} AND x.deptype = 'e')"
    )


# The relations of the snapshot (tables, views, sequences, indexes, ...): user schemas only, neither
# runner's own tables (%(exclude)s) nor extension members, nor the tables of any runner sharing the
# database under another --table: a tracking table says whose it is in its comment (%(comments)s), and
# its companions are named after it (%(suffixes)s). Nor a schema runner made for a tracking table alone.
def _relations(scope: str = "TRUE") -> str:
    """The CTEs above, of the relations ``scope`` admits: all, or those a run changed and the ones they name."""
    return f"""
tenant_spaces AS (  -- the tenants' schemas: left out whole, unless this is a tenant's own record
    SELECT t.relnamespace AS oid, n.nspname FROM pg_description d
    JOIN pg_class t ON d.classoid = 'pg_class'::regclass AND d.objoid = t.oid AND d.objsubid = 0
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE d.description = %(tenant)s AND %(only)s::name IS NULL
), runner_tables AS (
    SELECT c.oid, c.relnamespace, {_qualified("n.nspname", "c.relname")} AS name
    FROM pg_description d
    JOIN pg_class t ON d.classoid = 'pg_class'::regclass AND d.objoid = t.oid AND d.objsubid = 0
    CROSS JOIN unnest(%(suffixes)s::text[]) AS s (suffix)
    JOIN pg_class c ON c.relnamespace = t.relnamespace AND c.relname = (t.relname || s.suffix)::name
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE d.description = ANY(%(comments)s) AND t.relkind IN ('r', 'p')
      AND (%(only)s::name IS NULL OR n.nspname = %(only)s)
), runner_schemas AS (
    SELECT DISTINCT r.relnamespace AS oid FROM runner_tables r
    WHERE r.relnamespace <> 'public'::regnamespace
      AND NOT EXISTS (SELECT FROM pg_class c WHERE c.relnamespace = r.relnamespace
                      AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.oid NOT IN (SELECT oid FROM runner_tables))
    UNION SELECT oid FROM tenant_spaces
), excluded AS (
    SELECT to_regclass(x) AS oid FROM unnest(%(exclude)s::text[]) AS x WHERE to_regclass(x) IS NOT NULL
    UNION SELECT oid FROM runner_tables
), rel AS (
    SELECT c.oid, c.relkind, {_qualified("n.nspname", "c.relname")} AS name, quote_ident(n.nspname) AS schema,
           c.relpersistence, c.relispartition, c.relpartbound, c.reloptions
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {_user_schema("n.nspname")} AND c.oid NOT IN (SELECT oid FROM excluded)
      AND {_not_in_extension("pg_class", "c.oid")} AND {scope}
)
"""


_RELATIONS = _relations()

Gate = Callable[[str, str], str]  # (catalog, oid expression) -> the SQL condition an object is read under


def _queries(read: Gate) -> tuple[str, ...]:
    """One SELECT per group of kinds; each returns (kind, name, attributes as json with text values, catalog,
    oid): the catalog row the object is read from, its anchor. The attributes are in alphabetical order,
    the order a snapshot lists them in. Only the objects ``read`` admits are read: all, or those changed."""
    return (
        f"""
        SELECT 'schema', quote_ident(n.nspname), '{{}}'::json, {_anchor("pg_namespace", "n.oid")}
        FROM pg_namespace n
        WHERE {_user_schema("n.nspname")} AND {_not_in_extension("pg_namespace", "n.oid")}
          AND %(only)s::name IS NULL  -- a tenant's schema is where its record lives, not its files' work
          AND n.oid NOT IN (SELECT oid FROM runner_schemas)
          AND ({read("pg_namespace", "n.oid")} OR n.oid IN (SELECT relnamespace FROM runner_tables))
        """,
        f"""
        SELECT 'extension', quote_ident(e.extname),
               json_object(ARRAY['schema', quote_ident(n.nspname), 'version', e.extversion]),
               {_anchor("pg_extension", "e.oid")}
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE %(only)s::name IS NULL AND {read("pg_extension", "e.oid")}  -- the database's, not a tenant's
        """,
        # Composite types made by CREATE TYPE, not the row types of tables.
        f"""
        SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END, {_qualified("n.nspname", "t.typname")},
               json_object(ARRAY[
                   'attributes', (SELECT string_agg(quote_ident(a.attname) || ' '
                                                    || format_type(a.atttypid, a.atttypmod),
                                                    ', ' ORDER BY a.attnum)
                                  FROM pg_attribute a
                                  WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped),
                   'checks', (SELECT string_agg(quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid), ', '
                                                ORDER BY k.conname)
                              FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c'),
                   'default', t.typdefault,
                   'labels', (SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
                              FROM pg_enum e WHERE e.enumtypid = t.oid),
                   'not null', CASE t.typtype WHEN 'd' THEN t.typnotnull::text END,
                   'schema', quote_ident(n.nspname),
                   'subtype', (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid),
                   'type', CASE t.typtype WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) END]),
               CASE t.typtype WHEN 'c' THEN 'pg_class'::regclass::oid ELSE 'pg_type'::regclass::oid END,
               CASE t.typtype WHEN 'c' THEN t.typrelid ELSE t.oid END  -- a composite type's is its relation's
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {_user_schema("n.nspname")} AND {_not_in_extension("pg_type", "t.oid")}
          AND (t.typtype IN ('e', 'r', 'd')
               OR t.typtype = 'c' AND t.typrelid IN (SELECT oid FROM rel WHERE relkind = 'c'))
          AND ({read("pg_type", "t.oid")} OR {read("pg_class", "t.typrelid")})  -- a composite type's attributes
        """,
        # Sequences owned by a column (serial, identity) go with their table, excluded or not.
        f"""
        SELECT 'sequence', r.name,
               json_object(ARRAY[
                   'cycle', s.seqcycle::text, 'increment', s.seqincrement::text, 'maximum', s.seqmax::text,
                   'minimum', s.seqmin::text, 'owned by', t.name || '.' || quote_ident(a.attname), 'schema', r.schema,
                   'start', s.seqstart::text, 'type', format_type(s.seqtypid, NULL)]),
               {_anchor("pg_class", "r.oid")}
        FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid
        LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = r.oid
             AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        LEFT JOIN rel t ON t.oid = d.refobjid
        LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE (d.objid IS NULL OR t.oid IS NOT NULL) AND {read("pg_class", "r.oid")}
        """,
        f"""
        SELECT 'table', r.name,
               json_object(ARRAY[
                   'partition key', CASE r.relkind WHEN 'p' THEN pg_get_partkeydef(r.oid) END,
                   'partition of', (SELECT p.name || ' ' || pg_get_expr(r.relpartbound, r.oid)
                                    FROM pg_inherits i JOIN rel p ON p.oid = i.inhparent
                                    WHERE i.inhrelid = r.oid AND r.relispartition),
                   'schema', r.schema, 'unlogged', (r.relpersistence = 'u')::text]),
               {_anchor("pg_class", "r.oid")}
        FROM rel r
        WHERE r.relkind IN ('r', 'p') AND {read("pg_class", "r.oid")}
        """,
        f"""
        SELECT 'column', r.name || '.' || quote_ident(a.attname),
               json_object(ARRAY[
                   'default', CASE a.attgenerated WHEN '' THEN pg_get_expr(d.adbin, d.adrelid) END,
                   'generated', CASE a.attgenerated WHEN 's' THEN pg_get_expr(d.adbin, d.adrelid) || ' stored'
                                                    WHEN 'v' THEN pg_get_expr(d.adbin, d.adrelid) || ' virtual' END,
                   'identity', CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
                   'not null', a.attnotnull::text, 'table', r.name, 'type', format_type(a.atttypid, a.atttypmod)]),
               {_anchor("pg_class", "r.oid")}
        FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE r.relkind IN ('r', 'p') AND {read("pg_class", "r.oid")}
        """,
        # NOT NULL is a column attribute: PostgreSQL 18 also lists it here (contype 'n'), 15 does not.
        # Constraint triggers ('t') are reported as triggers.
        f"""
        SELECT 'constraint', r.name || '.' || quote_ident(k.conname),
               json_object(ARRAY['definition', pg_get_constraintdef(k.oid), 'table', r.name,
                                 'valid', k.convalidated::text]),
               {_anchor("pg_constraint", "k.oid")}
        FROM rel r JOIN pg_constraint k ON k.conrelid = r.oid
        WHERE k.contype IN ('c', 'f', 'p', 'u', 'x')
          AND ({read("pg_constraint", "k.oid")} OR {read("pg_class", "r.oid")})
        """,
        # The index of a primary key, unique or exclusion constraint is the constraint's: not repeated.
        f"""
        SELECT 'index', r.name,
               json_object(ARRAY['definition', pg_get_indexdef(i.indexrelid), 'table', t.name,
                                 'valid', i.indisvalid::text]),
               {_anchor("pg_class", "r.oid")}
        FROM pg_index i JOIN rel r ON r.oid = i.indexrelid JOIN rel t ON t.oid = i.indrelid
        WHERE {read("pg_class", "r.oid")}
          AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
        """,
        f"""
        SELECT CASE r.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END, r.name,
               json_object(ARRAY['definition', pg_get_viewdef(r.oid), 'options', array_to_string(r.reloptions, ', '),
                                 'schema', r.schema]),
               {_anchor("pg_class", "r.oid")}
        FROM rel r
        WHERE r.relkind IN ('v', 'm') AND {read("pg_class", "r.oid")}
        """,
        # pg_get_functiondef refuses aggregates: they are described by their parts instead.
        f"""
        SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
               {_qualified("n.nspname", "p.proname")} || '(' || oidvectortypes(p.proargtypes) || ')',
               json_object(ARRAY[
                   'definition', CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) ELSE (
                       SELECT concat_ws(' ', 'SFUNC', g.aggtransfn, 'STYPE', format_type(g.aggtranstype, NULL),
                                        'FINALFUNC', g.aggfinalfn, 'COMBINEFUNC', g.aggcombinefn,
                                        'INITCOND', g.agginitval)
                       FROM pg_aggregate g WHERE g.aggfnoid = p.oid) END,
                   'schema', quote_ident(n.nspname)]),
               {_anchor("pg_proc", "p.oid")}
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_user_schema("n.nspname")} AND {_not_in_extension("pg_proc", "p.oid")} AND {read("pg_proc", "p.oid")}
          AND NOT EXISTS (SELECT FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass AND x.objid = p.oid
                          AND x.deptype = 'i')  -- the constructors of a range type come with the type
        """,
        # Internal triggers (foreign keys) and the clones on partitions come with something else.
        f"""
        SELECT 'trigger', r.name || '.' || quote_ident(g.tgname),
               json_object(ARRAY['definition', pg_get_triggerdef(g.oid),
                                 'enabled', CASE g.tgenabled WHEN 'O' THEN 'true' WHEN 'D' THEN 'false'
                                                             WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END,
                                 'table', r.name]),
               {_anchor("pg_trigger", "g.oid")}
        FROM pg_trigger g JOIN rel r ON r.oid = g.tgrelid
        WHERE NOT g.tgisinternal AND g.tgparentid = 0 AND ({read("pg_trigger", "g.oid")} OR {read("pg_class", "r.oid")})
        """,
    )


def _anchor(catalog: str, oid: str) -> str:
    return f"'{catalog}'::regclass::oid, {oid}"


def _all(catalog: str, oid: str) -> str:
    return "TRUE"


def _changed(catalog: str, oid: str) -> str:
    return f"{oid} IN (SELECT objid FROM changed WHERE catalog = '{catalog}'::regclass)"


# Every catalog row a snapshot is read from, and those of what deparsed SQL may name (operator classes,
# collations, text search configurations, languages, access methods), each as (catalog, oid) of the object a
# snapshot keys it by, a number that tells its rows apart, and its xmin: a row's xmin changes whenever the
# row is written, by its transaction's id. Temporary objects (of any session) are left out. For a tenant
# (%(only)s), the rows of its schema alone: another tenant's run changes nothing of its fingerprint. The
# planner folds each "%(only)s IS NULL OR ..." with the value given, so the whole database pays nothing for it.
def _in_tenant(column: str, of: str = "tenant_rel") -> str:
    # = ANY(ARRAY(...)), not IN (SELECT ...): the catalog's index on the column finds the tenant's rows
    # (pg_attribute by attrelid) instead of a scan of every tenant's.
    return f"(%(only)s::name IS NULL OR {column} = ANY(ARRAY(SELECT oid FROM {of})))"


_STAMPS = f"""
temp_ns AS (SELECT oid FROM pg_namespace WHERE nspname ~ '^pg_(toast_)?temp_'),
temp_rel AS (SELECT oid FROM pg_class WHERE relnamespace IN (SELECT oid FROM temp_ns)),
tenant_ns AS (SELECT oid FROM pg_namespace WHERE nspname = %(only)s),
tenant_rel AS (SELECT oid FROM pg_class WHERE relnamespace IN (SELECT oid FROM tenant_ns)),
tenant_type AS (SELECT oid FROM pg_type WHERE typnamespace IN (SELECT oid FROM tenant_ns)),
tenant_proc AS (SELECT oid FROM pg_proc WHERE pronamespace IN (SELECT oid FROM tenant_ns)),
stamps (catalog, objid, sub, xmin, age) AS (SELECT *, age(xmin) FROM (
    SELECT 'pg_namespace'::regclass, oid, 0, xmin FROM pg_namespace  -- 2200: public, made by initdb
        WHERE (oid >= 16384 OR oid = 2200) AND oid NOT IN (SELECT oid FROM temp_ns) AND {_in_tenant("oid", "tenant_ns")}
    UNION ALL SELECT 'pg_extension'::regclass, oid, 0, xmin FROM pg_extension  -- plpgsql: made by initdb
        WHERE %(only)s::name IS NULL
    UNION ALL SELECT 'pg_class'::regclass, oid, 0, xmin FROM pg_class  -- 99: pg_toast, written with its table
        WHERE oid >= 16384 AND relnamespace <> 99 AND relnamespace NOT IN (SELECT oid FROM temp_ns)
          AND {_in_tenant("relnamespace", "tenant_ns")}
    UNION ALL SELECT 'pg_class'::regclass, attrelid, attnum, xmin FROM pg_attribute
        WHERE attrelid >= 16384 AND attnum > 0 AND attrelid NOT IN (SELECT oid FROM temp_rel)
          AND {_in_tenant("attrelid")}
    UNION ALL SELECT 'pg_class'::regclass, adrelid, oid, xmin FROM pg_attrdef
        WHERE oid >= 16384 AND adrelid NOT IN (SELECT oid FROM temp_rel) AND {_in_tenant("adrelid")}
    UNION ALL SELECT 'pg_class'::regclass, indexrelid, 0, xmin FROM pg_index
        WHERE indexrelid >= 16384 AND indrelid NOT IN (SELECT oid FROM temp_rel) AND {_in_tenant("indrelid")}
    UNION ALL SELECT 'pg_class'::regclass, ev_class, oid, xmin FROM pg_rewrite
        WHERE oid >= 16384 AND ev_class NOT IN (SELECT oid FROM temp_rel) AND {_in_tenant("ev_class")}
    UNION ALL SELECT 'pg_class'::regclass, seqrelid, 0, xmin FROM pg_sequence
        WHERE seqrelid >= 16384 AND seqrelid NOT IN (SELECT oid FROM temp_rel) AND {_in_tenant("seqrelid")}
    UNION ALL SELECT 'pg_class'::regclass, inhrelid, inhparent, xmin FROM pg_inherits
        WHERE inhrelid NOT IN (SELECT oid FROM temp_rel) AND {_in_tenant("inhrelid")}
    UNION ALL SELECT CASE contypid WHEN 0 THEN 'pg_constraint'::regclass ELSE 'pg_type'::regclass END,
        CASE contypid WHEN 0 THEN oid ELSE contypid END, oid, xmin FROM pg_constraint
        WHERE oid >= 16384 AND connamespace NOT IN (SELECT oid FROM temp_ns)
          AND {_in_tenant("connamespace", "tenant_ns")}
    UNION ALL SELECT 'pg_trigger'::regclass, oid, 0, xmin FROM pg_trigger
        WHERE oid >= 16384 AND tgrelid NOT IN (SELECT oid FROM temp_rel) AND {_in_tenant("tgrelid")}
    UNION ALL SELECT 'pg_type'::regclass, oid, 0, xmin FROM pg_type  -- not a relation's row type or an array
        WHERE oid >= 16384 AND typrelid = 0 AND typcategory <> 'A' AND typnamespace NOT IN (SELECT oid FROM temp_ns)
          AND {_in_tenant("typnamespace", "tenant_ns")}
    UNION ALL SELECT 'pg_type'::regclass, enumtypid, oid, xmin FROM pg_enum
        WHERE {_in_tenant("enumtypid", "tenant_type")}
    UNION ALL SELECT 'pg_type'::regclass, rngtypid, 0, xmin FROM pg_range
        WHERE rngtypid >= 16384 AND {_in_tenant("rngtypid", "tenant_type")}
    UNION ALL SELECT 'pg_proc'::regclass, oid, 0, xmin FROM pg_proc
        WHERE oid >= 16384 AND pronamespace NOT IN (SELECT oid FROM temp_ns)
          AND {_in_tenant("pronamespace", "tenant_ns")}
    UNION ALL SELECT 'pg_proc'::regclass, aggfnoid, 0, xmin FROM pg_aggregate
        WHERE aggfnoid >= 16384 AND {_in_tenant("aggfnoid", "tenant_proc")}
    UNION ALL SELECT classid, objid, objsubid, xmin FROM pg_depend  -- an extension's members
        WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
    UNION ALL SELECT 'pg_opclass'::regclass, oid, 0, xmin FROM pg_opclass WHERE oid >= 16384
    UNION ALL SELECT 'pg_opfamily'::regclass, oid, 0, xmin FROM pg_opfamily WHERE oid >= 16384
    UNION ALL SELECT 'pg_operator'::regclass, oid, 0, xmin FROM pg_operator WHERE oid >= 16384
    UNION ALL SELECT 'pg_collation'::regclass, oid, 0, xmin FROM pg_collation WHERE oid >= 16384
    UNION ALL SELECT 'pg_ts_config'::regclass, oid, 0, xmin FROM pg_ts_config WHERE oid >= 16384
    UNION ALL SELECT 'pg_ts_dict'::regclass, oid, 0, xmin FROM pg_ts_dict WHERE oid >= 16384
    UNION ALL SELECT 'pg_language'::regclass, oid, 0, xmin FROM pg_language WHERE oid >= 16384
    UNION ALL SELECT 'pg_am'::regclass, oid, 0, xmin FROM pg_am WHERE oid >= 16384
) s)
"""
# The oldest transaction running when the statement began, as an xid: one that commits later has an id at or
# above it. A fingerprint counts the rows and adds up those written at or after a horizon: the same
# catalogs give the same fingerprint, and any write (an insert or a new row version) another.
_HORIZON = "mod(pg_snapshot_xmin(pg_current_snapshot())::text::bigint, 4294967296)::text"


def _written_since(horizon: str) -> str:
    """Rows written at or after ``horizon`` (SQL for an xid as text); its age is worked out once."""
    return f"age <= (SELECT age(({horizon})::xid))"


def _added_since(horizon: str) -> str:
    return (
        "coalesce(sum(hashtextextended(concat_ws(' ', catalog::oid, objid, sub, xmin), 0)) "
        f"FILTER (WHERE {_written_since(horizon)}), 0)::text"
    )


# The objects written since the horizon (``seeds``), and everything that depends on them (through
# pg_depend), since renaming a table or a type changes how its indexes, foreign keys, views and columns
# print. A default, a view's rule and a domain's constraint are read with the table, the view, the domain.
def _changed_since(seeds: str) -> str:
    return f"""
changed (catalog, objid) AS (
    {seeds}
    UNION
    SELECT CASE WHEN d.classid IN ('pg_attrdef'::regclass, 'pg_rewrite'::regclass) THEN 'pg_class'::regclass
                WHEN k.contypid <> 0 THEN 'pg_type'::regclass ELSE d.classid END,
           COALESCE(ad.adrelid, rw.ev_class, NULLIF(k.contypid, 0), d.objid)
    FROM changed c JOIN pg_depend d ON d.refclassid = c.catalog AND d.refobjid = c.objid
    LEFT JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND ad.oid = d.objid
    LEFT JOIN pg_rewrite rw ON d.classid = 'pg_rewrite'::regclass AND rw.oid = d.objid
    LEFT JOIN pg_constraint k ON d.classid = 'pg_constraint'::regclass AND k.oid = d.objid
)
"""


def _objects(read: Gate) -> str:
    return f"objects (kind, name, attributes, catalog, objid) AS ({' UNION ALL '.join(_queries(read))})"


# The whole snapshot in one statement (rel is read once): one JSON object of attributes and one of anchors
# per kind, since parsing per row would cost more than the catalogs do once a database has thousands of tables.
_SNAPSHOT = f"""
WITH {_RELATIONS}, {_objects(_all)}
SELECT kind, json_object_agg(name, attributes), json_object_agg(name, json_build_array(catalog, objid))
FROM objects GROUP BY kind
"""
# The fingerprint since a recorded horizon, how old that horizon is, and this statement's own horizon.
_CHECK = f"""
WITH {_STAMPS}
SELECT count(*), {_added_since("%(since)s")}, age(%(since)s::xid), {_HORIZON} FROM stamps
"""
_NOW = f"now AS (SELECT {_HORIZON} AS horizon)"
# The fingerprint to record (rows, total, horizon, and the id of the transaction recording it), over stamps.
_TO_RECORD = (
    f"count(*) AS rows, {_added_since('SELECT horizon FROM now')} AS total, (SELECT horizon FROM now) AS horizon, "
    "mod(pg_current_xact_id()::text::bigint, 4294967296)::text AS xid"
)
_RECORD = f"WITH {_STAMPS}, {_NOW} SELECT {_TO_RECORD} FROM stamps"
# Relations the objects changed name: an index's table, a partition's parent, a sequence's owner, the table
# of a constraint or a trigger, a composite type's relation.
_SCOPE = """
scope AS (
    SELECT objid AS oid FROM changed WHERE catalog = 'pg_class'::regclass
    UNION SELECT i.indrelid FROM pg_index i
          JOIN changed c ON c.catalog = 'pg_class'::regclass AND c.objid = i.indexrelid
    UNION SELECT i.inhparent FROM pg_inherits i
          JOIN changed c ON c.catalog = 'pg_class'::regclass AND c.objid = i.inhrelid
    UNION SELECT d.refobjid FROM pg_depend d JOIN changed c ON c.catalog = 'pg_class'::regclass AND c.objid = d.objid
          AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    UNION SELECT k.conrelid FROM pg_constraint k
          JOIN changed c ON c.catalog = 'pg_constraint'::regclass AND c.objid = k.oid
    UNION SELECT g.tgrelid FROM pg_trigger g JOIN changed c ON c.catalog = 'pg_trigger'::regclass AND c.objid = g.oid
    UNION SELECT t.typrelid FROM pg_type t JOIN changed c ON c.catalog = 'pg_type'::regclass AND c.objid = t.oid
)
"""
# The objects changed since the check's horizon, read again; with the fingerprint to record, and how
# many rows were written since the check.
_CHANGES = f"""
WITH RECURSIVE {_STAMPS}, {_NOW}, tally AS (
    SELECT {_TO_RECORD},
           count(*) FILTER (WHERE {_written_since("%(since)s")}) AS written,
           array_agg(catalog) FILTER (WHERE {_written_since("%(since)s")}) AS catalogs,
           array_agg(objid) FILTER (WHERE {_written_since("%(since)s")}) AS objids
    FROM stamps
), {_changed_since("SELECT * FROM unnest((SELECT catalogs FROM tally), (SELECT objids FROM tally))")},
{_SCOPE}, {_relations("c.oid IN (SELECT oid FROM scope)")}, {_objects(_changed)}
SELECT (SELECT json_agg(json_build_array(kind, name, attributes, catalog, objid)) FROM objects),
       rows, total, horizon, xid, written,
       (SELECT array_agg(catalog::oid) FROM changed), (SELECT array_agg(objid) FROM changed)
FROM tally
"""
# The rows of the objects changed since the check (%(catalogs)s, %(objids)s), and of those gone: dropped, or
# left out now.
_GONE = """
WITH live (catalog, objid) AS (
    SELECT 'pg_class'::regclass::oid, oid FROM pg_class
    UNION ALL SELECT 'pg_type'::regclass::oid, oid FROM pg_type
    UNION ALL SELECT 'pg_constraint'::regclass::oid, oid FROM pg_constraint
    UNION ALL SELECT 'pg_trigger'::regclass::oid, oid FROM pg_trigger
    UNION ALL SELECT 'pg_proc'::regclass::oid, oid FROM pg_proc
    UNION ALL SELECT 'pg_namespace'::regclass::oid, oid FROM pg_namespace
    UNION ALL SELECT 'pg_extension'::regclass::oid, oid FROM pg_extension
)
DELETE FROM {} s WHERE s.kind <> '' AND (
    (s.catalog, s.objid) IN (SELECT * FROM unnest(%(catalogs)s::oid[], %(objids)s::oid[]))
    OR NOT EXISTS (SELECT FROM live l WHERE l.catalog = s.catalog AND l.objid = s.objid))
"""
_RUNNERS = f"""WITH {_RELATIONS}
SELECT 'table', name FROM runner_tables UNION ALL SELECT 'schema', quote_ident(nspname) FROM pg_namespace
WHERE oid IN (SELECT oid FROM runner_schemas)
"""


def _parameters(exclude: Iterable[str], only: str | None) -> dict[str, object]:
    from runner import history, repeatable, tracking

    suffixes = ["", history.SUFFIX, SUFFIX, repeatable.SUFFIX]
    comments = [tracking.COMMENT, tracking.TENANT_COMMENT]
    return {"exclude": list(exclude), "comments": comments, "tenant": tracking.TENANT_COMMENT, "suffixes": suffixes,
            "only": only}  # fmt: skip


# The parts of a SELECT where only its own FROM is in scope.
_TOP_LEVEL = ("targetList", "whereClause", "groupClause", "havingClause", "sortClause", "windowClause")


def _view_definition(text: str) -> str:
    """A view's query in one canonical spelling, so the PostgreSQL version does not show.

    Up to 15, pg_get_viewdef qualifies every column (``r.status``); from 16 on, not when the query
    reads a single relation. Such qualifiers are dropped at the query's top level, where that
    relation is all there is (so nothing changes meaning), and pglast prints the result.
    """
    from pglast import ast, parse_sql
    from pglast.stream import RawStream
    from pglast.visitors import Skip, Visitor

    class Unqualify(Visitor):
        def __init__(self, alias: str | None) -> None:
            self.alias = alias

        def visit_SubLink(self, ancestors: object, node: ast.SubLink) -> object:
            return Skip  # a subquery sees its own relations too: its qualifiers stay

        def visit_ColumnRef(self, ancestors: object, node: ast.ColumnRef) -> None:
            fields: tuple[object, ...] = tuple(node.fields or ())
            if len(fields) == 2 and isinstance(fields[0], ast.String) and fields[0].sval == self.alias:
                node.fields = fields[1:]

    try:
        tree = parse_sql(text)
        query = tree[0].stmt
        sources = query.fromClause if isinstance(query, ast.SelectStmt) else None
        if sources and len(sources) == 1 and not isinstance(sources[0], ast.JoinExpr):
            alias = sources[0].alias.aliasname if sources[0].alias else getattr(sources[0], "relname", None)
            for clause in filter(None, (getattr(query, name) for name in _TOP_LEVEL)):
                Unqualify(alias)(clause)
        return str(RawStream()(tree))
    except Exception:  # syntax newer than pglast knows: the server's own text, stable on one version
        return text


@contextmanager
def _reading(conn: psycopg.Connection) -> Iterator[None]:
    """A fixed search_path, so names print the same whatever the caller's; and no JIT, which would
    compile the one large statement for longer than it runs.

    A local setting ends with this transaction, or on an error with this savepoint of the caller's
    transaction; otherwise the caller's values are put back after.
    """
    set_local = "SELECT set_config('search_path', %s, true), set_config('jit', %s, true)"
    with conn.transaction():
        old = conn.execute("SELECT current_setting('search_path'), current_setting('jit')").fetchone()
        conn.execute(set_local, (_SEARCH_PATH, "off"))
        yield
        conn.execute(set_local, old)


@dataclass(frozen=True)
class Since:
    """The catalogs as a check found them unchanged since the record: what a run then writes is read again."""

    rows: int  # how many catalog rows there were
    horizon: str  # an xid: what commits after the check is written at or above it


Anchors = dict[tuple[str, str], list[int]]  # (kind, name) -> (catalog, oid) of the row it was read from
# Older than this, a horizon is not trusted: xids wrap around after 2**32, and age() is read modulo 2**31.
_OLDEST_HORIZON = 1_000_000_000


def _clean(kind: str, attributes: dict[str, str | None]) -> dict[str, str]:
    """An object's attributes as a snapshot holds them: none missing, and no layout of the author's."""
    if kind in ("view", "materialized view") and attributes.get("definition") is not None:
        attributes["definition"] = _view_definition(str(attributes["definition"]))
    # Deparsed SQL keeps the author's line breaks and indentation (function bodies): not a change.
    return {key: " ".join(text.split()) for key, text in attributes.items() if text is not None}


def taken(conn: psycopg.Connection, exclude: Iterable[str] = (), only: str | None = None) -> tuple[Snapshot, Anchors]:
    """The schema as the catalogs describe it now, and where each object was read from.

    ``exclude`` are schema-qualified relation names like "public.runner_migrations" (runner's own
    tables): they are left out, with their columns, indexes, constraints, sequences and triggers.
    ``only`` names a tenant's schema: the objects in it, and nothing of the rest of the database.
    """
    snap: Snapshot = {kind: {} for kind in KINDS}
    anchors: Anchors = {}
    with _reading(conn):
        rows = conn.execute(_SNAPSHOT, _parameters(exclude, only)).fetchall()
    for kind, objects, where in rows:
        for name, attributes in sorted(objects.items()):
            snap[kind][name] = _clean(kind, attributes)
            anchors[kind, name] = [int(part) for part in where[name]]  # oids come as JSON strings
    return snap, anchors


def snapshot(conn: psycopg.Connection, exclude: Iterable[str] = (), only: str | None = None) -> Snapshot:
    """The schema as the catalogs describe it now (see taken)."""
    return taken(conn, exclude, only)[0]


def unchanged(conn: psycopg.Connection, table: sql.Identifier, only: str | None = None) -> Since | None:
    """Whether the recorded snapshot is still the live schema, told without reading either: the catalogs'
    fingerprint is the one recorded with it (see _STAMPS). None when it is not, or cannot be told: no
    snapshot, one recorded without a fingerprint, or a snapshot table not written where it was recorded (a
    dump restored elsewhere has other transaction ids).
    """
    if _layout(conn, table) != "rows":
        return None
    row = conn.execute(
        sql.SQL("SELECT xmin::text, attributes FROM {} WHERE kind = %s AND name = %s").format(table),
        (_HEADER, _HEADER),
    ).fetchone()
    if row is None or "fingerprint" not in row[1] or row[0] != row[1].get("xid"):
        return None
    rows, total, age, horizon = conn.execute(_CHECK, {"since": row[1]["horizon"], "only": only}).fetchone()  # type: ignore[misc]
    if not 0 <= age < _OLDEST_HORIZON or f"{rows}:{total}" != row[1]["fingerprint"]:
        return None
    return Since(rows, horizon)


@dataclass(frozen=True)
class Difference:
    """One object that is not as recorded, in words a DBA understands."""

    kind: str  # one of KINDS
    name: str  # "approval_levels.skip_reason"; objects outside public are schema-qualified
    change: str  # DROPPED, ADDED, "<attribute> <old> -> <new>" or "<attribute> changed"

    def describe(self) -> str:
        return f"{self.kind} {self.name}: {self.change}"


def _change(attribute: str, old: str | None, new: str | None) -> str:
    if attribute == "definition" and old is not None and new is not None:
        return "definition changed"  # a function body or a view's query is too long to print twice
    return f"{attribute} {NONE if old is None else old} -> {NONE if new is None else new}"


def _comes_with_parent(attributes: dict[str, str], parents: set[tuple[str, str]]) -> bool:
    """True when the object's table (schema, column) is itself in ``parents``: one line says it all."""
    return any(
        (kind, attributes[attribute]) in parents
        for attribute, kinds in _PARENTS.items()
        if attribute in attributes
        for kind in kinds
    )


def runners(conn: psycopg.Connection, only: str | None = None) -> tuple[set[str], set[str]]:
    """The tables of every runner in the database (by their names in a snapshot), and the schemas made for them."""
    with _reading(conn):
        rows = conn.execute(_RUNNERS, _parameters((), only)).fetchall()
    return {name for kind, name in rows if kind == "table"}, {name for kind, name in rows if kind == "schema"}


def without(snap: Snapshot, tables: set[str], schemas: set[str]) -> Snapshot:
    """``snap`` without those tables (and their columns, indexes, constraints, sequences, triggers) and schemas:
    a snapshot recorded before runner left other runners' tables out is read as if it had."""
    if not (tables or schemas):
        return snap

    def theirs(kind: str, name: str, attributes: dict[str, str]) -> bool:
        owner = attributes.get("table") or attributes.get("owned by", "").rpartition(".")[0]
        return (kind == "table" and name in tables) or owner in tables or (kind == "schema" and name in schemas)

    return {kind: {n: a for n, a in objects.items() if not theirs(kind, n, a)} for kind, objects in snap.items()}


def carried(recorded: Snapshot, before: Snapshot, after: Snapshot) -> Snapshot:
    """``recorded``, with each object that changed from ``before`` to ``after`` as it is ``after``.

    What a run's files did is recorded; what was changed by hand before the run is not, so it stays
    a difference from the live schema until someone accepts it.
    """
    result = {kind: dict(objects) for kind, objects in recorded.items()}
    for kind in before.keys() | after.keys():
        old, new = before.get(kind, {}), after.get(kind, {})
        if old == new:
            continue
        objects = result.setdefault(kind, {})
        for name in old.keys() | new.keys():
            if name not in new:
                objects.pop(name, None)
            elif old.get(name) != new[name]:
                objects[name] = new[name]
    return result


def differences(recorded: Snapshot, live: Snapshot) -> list[Difference]:
    """What changed from ``recorded`` to ``live``, ordered by kind (as in KINDS) then name."""
    kinds = sorted(set(recorded) | set(live), key=lambda k: (KINDS.index(k) if k in KINDS else len(KINDS), k))
    dropped = {(k, n) for k in kinds for n in recorded.get(k, {}).keys() - live.get(k, {}).keys()}
    added = {(k, n) for k in kinds for n in live.get(k, {}).keys() - recorded.get(k, {}).keys()}
    found: list[Difference] = []
    for kind in kinds:
        old_objects, new_objects = recorded.get(kind, {}), live.get(kind, {})
        if old_objects == new_objects:
            continue  # the usual case, compared in C: thousands of unchanged tables cost no Python loop
        for name in sorted(old_objects.keys() | new_objects.keys()):
            old, new = old_objects.get(name), new_objects.get(name)
            if old == new:
                continue
            if new is None:
                if not _comes_with_parent(old or {}, dropped):
                    found.append(Difference(kind, name, DROPPED))
            elif old is None:
                if not _comes_with_parent(new, added):
                    found.append(Difference(kind, name, ADDED))
            else:
                found += [
                    Difference(kind, name, _change(attribute, old.get(attribute), new.get(attribute)))
                    for attribute in sorted(old.keys() | new.keys())
                    if old.get(attribute) != new.get(attribute)
                ]
    return found


def exists(conn: psycopg.Connection, table: sql.Identifier) -> bool:
    """Whether a schema is recorded in ``table`` (in either layout)."""
    return _layout(conn, table) is not None


# The snapshot's table: one row per object, with the catalog row it was read from, so that a run rewrites
# only the objects it changed. The row of kind '' says what the rest were read from (the fingerprint).
_HEADER = ""


def _layout(conn: psycopg.Connection, table: sql.Identifier) -> str | None:
    """ "rows"; "single" for a table of a runner from before per-object rows (one row holding the whole
    snapshot); None when there is no table."""
    row = conn.execute(
        "SELECT bool_or(attname = 'snapshot') FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0",
        (table.as_string(conn),),
    ).fetchone()
    return None if row is None or row[0] is None else "single" if row[0] else "rows"


_WRITE = (
    "INSERT INTO {} (kind, name, attributes, catalog, objid) "
    "SELECT k.key, o.key, o.value -> 0, (o.value ->> 1)::oid, (o.value ->> 2)::oid "
    "FROM jsonb_each(%s) k, jsonb_each(k.value) o "
    "ON CONFLICT (kind, name) DO UPDATE SET attributes = excluded.attributes, catalog = excluded.catalog, "
    "objid = excluded.objid"
)


def _write(conn: psycopg.Connection, table: sql.Identifier, rows: dict[str, dict[str, list[object]]]) -> None:
    """Rows sent as one JSON document, {kind: {name: [attributes, catalog, oid]}}: one parameter for thousands."""
    if rows:
        conn.execute(sql.SQL(_WRITE).format(table), (Jsonb(rows),))


def save(
    conn: psycopg.Connection, table: sql.Identifier, snap: Snapshot, anchors: Anchors | None = None,
    only: str | None = None,
) -> None:  # fmt: skip
    """Store ``snap`` as the whole content of ``table``, created if needed, in the caller's transaction.

    With ``anchors`` (the snapshot is the live schema, read in this REPEATABLE READ transaction) the
    catalogs' fingerprint is recorded too; without, the next check reads the snapshot whole: a run records
    none when changes made by hand must stay drift.
    """
    layout = _layout(conn, table)
    if layout == "single":
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
    if layout != "rows":
        db.create_if_missing(
            conn,
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (kind text NOT NULL, name text NOT NULL, attributes jsonb NOT NULL, "
                "catalog oid, objid oid, PRIMARY KEY (kind, name))"
            ).format(table),
        )
        conn.execute(
            sql.SQL("COMMENT ON TABLE {} IS {}").format(
                table, sql.Literal("The schema as runner last migrated it, for runner verify.")
            )
        )
    conn.execute(sql.SQL("DELETE FROM {}").format(table))
    where = anchors or {}
    _write(conn, table, {
        kind: {name: [attributes, *where.get((kind, name), (None, None))] for name, attributes in objects.items()}
        for kind, objects in snap.items() if objects
    })  # fmt: skip
    if anchors is None:
        _stamp(conn, table, None)
        return
    row = conn.execute(_RECORD, {"only": only}).fetchone()  # after the table's own DDL, in the snapshot's transaction
    assert row is not None
    _stamp(conn, table, row)


def _stamp(conn: psycopg.Connection, table: sql.Identifier, fingerprint: tuple[int, str, str, str] | None) -> None:
    """The header row: the fingerprint (rows, total, horizon, and the id of the transaction writing it, which
    is the header's own xmin wherever the table has not been copied to another server)."""
    header = {"server_version": str(conn.info.server_version)}
    if fingerprint is not None:
        rows, total, horizon, xid = fingerprint
        header.update(fingerprint=f"{rows}:{total}", horizon=horizon, xid=xid)
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (kind, name, attributes) VALUES (%s, %s, %s) "
            "ON CONFLICT (kind, name) DO UPDATE SET attributes = excluded.attributes"
        ).format(table),
        (_HEADER, _HEADER, Jsonb(header)),
    )


def refresh(
    conn: psycopg.Connection, table: sql.Identifier, exclude: Iterable[str], since: Since, only: str | None = None
) -> None:
    """Bring the recorded snapshot up to date by reading again only the objects changed since the check that
    found it unchanged (``since``), in the caller's REPEATABLE READ transaction.

    When the catalogs grew by exactly the rows written since, nothing was altered or dropped: the rows
    of the new objects are all there is to add. Otherwise the rows of every changed or vanished object go
    first. The new fingerprint is recorded.
    """
    parameters = {**_parameters(exclude, only), "since": since.horizon}
    with _reading(conn):
        row = conn.execute(_CHANGES, parameters).fetchone()
        assert row is not None
        objects, rows, total, horizon, xid, written, catalogs, objids = row
        if rows - since.rows != written:
            conn.execute(sql.SQL(_GONE).format(table), {"catalogs": catalogs or [], "objids": objids or []})
    fresh: dict[str, dict[str, list[object]]] = {}
    for kind, name, attributes, catalog, objid in objects or []:
        fresh.setdefault(kind, {})[name] = [_clean(kind, attributes), catalog, objid]
    _write(conn, table, fresh)
    _stamp(conn, table, (rows, total, horizon, xid))


def load(conn: psycopg.Connection, table: sql.Identifier) -> Snapshot | None:
    """The stored snapshot, or None when there is none (no table, or no row)."""
    layout = _layout(conn, table)
    if layout == "single":
        row = conn.execute(sql.SQL("SELECT snapshot FROM {} ORDER BY taken_at DESC LIMIT 1").format(table)).fetchone()
        return row[0] if row else None
    if layout is None:
        return None
    rows = conn.execute(
        sql.SQL("SELECT kind, jsonb_object_agg(name, attributes) FROM {} GROUP BY kind").format(table)
    ).fetchall()  # one document per kind: parsing a row at a time would cost more than the reading
    if not rows:
        return None
    snap: Snapshot = {kind: {} for kind in KINDS}
    snap.update((kind, objects) for kind, objects in rows if kind != _HEADER)
    return snap
