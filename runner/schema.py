"""Schema snapshots: what the catalogs say the database looks like, and how two such pictures differ.

``runner migrate`` records a snapshot after a successful run; ``runner verify`` compares the live
catalogs with it, and ``runner diff --against`` compares two live databases. Both must report
only real changes made by hand, so a snapshot holds no OIDs, is keyed by name (order never
matters), uses PostgreSQL's own deparsers (pg_get_viewdef and friends) with whitespace collapsed,
and is read under a fixed ``search_path`` so the caller's session cannot change how names print.
Objects of extensions and of the system schemas are left out: they are not the migrations' work.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

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
    """Not pg_catalog, pg_toast, pg_temp_N, information_schema, ..."""
    return f"({schema} !~ '^pg_' AND {schema} <> 'information_schema')"


def _not_in_extension(catalog: str, oid: str) -> str:
    """CREATE EXTENSION made it, not a migration."""
    return (
        f"NOT EXISTS (SELECT FROM pg_depend x "
        f"WHERE x.classid = '{catalog}'::regclass AND x.objid = {oid} AND x.deptype = 'e')"
    )


# The relations of the snapshot (tables, views, sequences, indexes, ...): user schemas only, neither
# runner's own tables (%(exclude)s) nor extension members, nor the tables of any runner sharing the
# database under another --table: a tracking table says whose it is in its comment (%(comment)s), and
# its companions are named after it (%(suffixes)s). Nor a schema runner made for a tracking table alone.
_RELATIONS = f"""
WITH runner_tables AS (
    SELECT c.oid, c.relnamespace, {_qualified("n.nspname", "c.relname")} AS name
    FROM pg_description d
    JOIN pg_class t ON d.classoid = 'pg_class'::regclass AND d.objoid = t.oid AND d.objsubid = 0
    JOIN pg_class c ON c.relnamespace = t.relnamespace
         AND c.relname::text IN (SELECT t.relname || s FROM unnest(%(suffixes)s::text[]) AS s)
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE d.description = %(comment)s AND t.relkind IN ('r', 'p')
), runner_schemas AS (
    SELECT DISTINCT r.relnamespace AS oid FROM runner_tables r
    WHERE r.relnamespace <> 'public'::regnamespace
      AND NOT EXISTS (SELECT FROM pg_class c WHERE c.relnamespace = r.relnamespace
                      AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.oid NOT IN (SELECT oid FROM runner_tables))
), excluded AS (
    SELECT to_regclass(x) AS oid FROM unnest(%(exclude)s::text[]) AS x WHERE to_regclass(x) IS NOT NULL
    UNION SELECT oid FROM runner_tables
), rel AS (
    SELECT c.oid, c.relkind, {_qualified("n.nspname", "c.relname")} AS name, quote_ident(n.nspname) AS schema,
           c.relpersistence, c.relispartition, c.relpartbound, c.reloptions
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {_user_schema("n.nspname")} AND c.oid NOT IN (SELECT oid FROM excluded)
      AND {_not_in_extension("pg_class", "c.oid")}
)
"""

# One SELECT per group of kinds; each returns (kind, name, attributes as json with text values). The
# attributes are written in alphabetical order, the order a snapshot lists them in.
_QUERIES = (
    f"""
    SELECT 'schema', quote_ident(n.nspname), '{{}}'::json
    FROM pg_namespace n
    WHERE {_user_schema("n.nspname")} AND {_not_in_extension("pg_namespace", "n.oid")}
      AND n.oid NOT IN (SELECT oid FROM runner_schemas)
    """,
    """
    SELECT 'extension', quote_ident(e.extname),
           json_object(ARRAY['schema', quote_ident(n.nspname), 'version', e.extversion])
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    """,
    # Composite types made by CREATE TYPE, not the row types of tables.
    f"""
    SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END, {_qualified("n.nspname", "t.typname")},
           json_object(ARRAY[
               'attributes', (SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod),
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
               'type', CASE t.typtype WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) END])
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE {_user_schema("n.nspname")} AND {_not_in_extension("pg_type", "t.oid")}
      AND (t.typtype IN ('e', 'r', 'd') OR t.typtype = 'c' AND t.typrelid IN (SELECT oid FROM rel WHERE relkind = 'c'))
    """,
    # Sequences owned by a column (serial, identity) go with their table, excluded or not.
    """
    SELECT 'sequence', r.name,
           json_object(ARRAY[
               'cycle', s.seqcycle::text, 'increment', s.seqincrement::text, 'maximum', s.seqmax::text,
               'minimum', s.seqmin::text, 'owned by', t.name || '.' || quote_ident(a.attname), 'schema', r.schema,
               'start', s.seqstart::text, 'type', format_type(s.seqtypid, NULL)])
    FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid
    LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = r.oid
         AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    LEFT JOIN rel t ON t.oid = d.refobjid
    LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.objid IS NULL OR t.oid IS NOT NULL
    """,
    """
    SELECT 'table', r.name,
           json_object(ARRAY[
               'partition key', CASE r.relkind WHEN 'p' THEN pg_get_partkeydef(r.oid) END,
               'partition of', (SELECT p.name || ' ' || pg_get_expr(r.relpartbound, r.oid)
                                FROM pg_inherits i JOIN rel p ON p.oid = i.inhparent
                                WHERE i.inhrelid = r.oid AND r.relispartition),
               'schema', r.schema, 'unlogged', (r.relpersistence = 'u')::text])
    FROM rel r
    WHERE r.relkind IN ('r', 'p')
    """,
    """
    SELECT 'column', r.name || '.' || quote_ident(a.attname),
           json_object(ARRAY[
               'default', CASE a.attgenerated WHEN '' THEN pg_get_expr(d.adbin, d.adrelid) END,
               'generated', CASE a.attgenerated WHEN 's' THEN pg_get_expr(d.adbin, d.adrelid) || ' stored'
                                                WHEN 'v' THEN pg_get_expr(d.adbin, d.adrelid) || ' virtual' END,
               'identity', CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
               'not null', a.attnotnull::text, 'table', r.name, 'type', format_type(a.atttypid, a.atttypmod)])
    FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE r.relkind IN ('r', 'p')
    """,
    # NOT NULL is a column attribute: PostgreSQL 18 also lists it here (contype 'n'), 15 does not.
    # Constraint triggers ('t') are reported as triggers.
    """
    SELECT 'constraint', r.name || '.' || quote_ident(k.conname),
           json_object(ARRAY['definition', pg_get_constraintdef(k.oid), 'table', r.name,
                             'valid', k.convalidated::text])
    FROM rel r JOIN pg_constraint k ON k.conrelid = r.oid
    WHERE k.contype IN ('c', 'f', 'p', 'u', 'x')
    """,
    # The index of a primary key, unique or exclusion constraint is the constraint's: not repeated.
    """
    SELECT 'index', r.name,
           json_object(ARRAY['definition', pg_get_indexdef(i.indexrelid), 'table', t.name,
                             'valid', i.indisvalid::text])
    FROM pg_index i JOIN rel r ON r.oid = i.indexrelid JOIN rel t ON t.oid = i.indrelid
    WHERE NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
    """,
    """
    SELECT CASE r.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END, r.name,
           json_object(ARRAY['definition', pg_get_viewdef(r.oid), 'options', array_to_string(r.reloptions, ', '),
                             'schema', r.schema])
    FROM rel r
    WHERE r.relkind IN ('v', 'm')
    """,
    # pg_get_functiondef refuses aggregates: they are described by their parts instead.
    f"""
    SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
           {_qualified("n.nspname", "p.proname")} || '(' || oidvectortypes(p.proargtypes) || ')',
           json_object(ARRAY[
               'definition', CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) ELSE (
                   SELECT concat_ws(' ', 'SFUNC', g.aggtransfn, 'STYPE', format_type(g.aggtranstype, NULL),
                                    'FINALFUNC', g.aggfinalfn, 'COMBINEFUNC', g.aggcombinefn, 'INITCOND', g.agginitval)
                   FROM pg_aggregate g WHERE g.aggfnoid = p.oid) END,
               'schema', quote_ident(n.nspname)])
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE {_user_schema("n.nspname")} AND {_not_in_extension("pg_proc", "p.oid")}
      AND NOT EXISTS (SELECT FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass AND x.objid = p.oid
                      AND x.deptype = 'i')  -- the constructors of a range type come with the type
    """,
    # Internal triggers (foreign keys) and the clones on partitions come with something else.
    """
    SELECT 'trigger', r.name || '.' || quote_ident(g.tgname),
           json_object(ARRAY['definition', pg_get_triggerdef(g.oid),
                             'enabled', CASE g.tgenabled WHEN 'O' THEN 'true' WHEN 'D' THEN 'false'
                                                         WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END,
                             'table', r.name])
    FROM pg_trigger g JOIN rel r ON r.oid = g.tgrelid
    WHERE NOT g.tgisinternal AND g.tgparentid = 0
    """,
)

# All kinds in one statement (rel is read once) and one JSON object per kind: parsing per row would
# cost more than the catalogs do once a database has thousands of tables. Objects are in name order,
# so the same catalogs give the same text, and the same digest.
_KINDS = f"""
{_RELATIONS}, objects (kind, name, attributes) AS (
{" UNION ALL ".join(_QUERIES)}
), kinds AS (
    SELECT kind, json_object_agg(name, attributes ORDER BY name) AS objects FROM objects GROUP BY kind
)
"""
_DIGEST = "(SELECT md5(string_agg(kind || ' ' || objects::text, ' ' ORDER BY kind)) FROM kinds)"
_SNAPSHOT = f"{_KINDS} SELECT kind, objects, {_DIGEST} FROM kinds"
_DIGEST_ONLY = f"{_KINDS} SELECT {_DIGEST}"
_RUNNERS = f"""{_RELATIONS}
SELECT 'table', name FROM runner_tables UNION ALL SELECT 'schema', quote_ident(nspname) FROM pg_namespace
WHERE oid IN (SELECT oid FROM runner_schemas)
"""


def _parameters(exclude: Iterable[str]) -> dict[str, object]:
    from runner import history, repeatable, tracking

    suffixes = ["", history.SUFFIX, SUFFIX, repeatable.SUFFIX]
    return {"exclude": list(exclude), "comment": tracking.COMMENT, "suffixes": suffixes}


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
            fields = node.fields or ()
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


def taken(conn: psycopg.Connection, exclude: Iterable[str] = ()) -> tuple[Snapshot, str]:
    """The schema as the catalogs describe it now, and the digest of what they said (see digest).

    ``exclude`` are schema-qualified relation names like "public.runner_migrations" (runner's own
    tables): they are left out, with their columns, indexes, constraints, sequences and triggers.
    """
    snap: Snapshot = {kind: {} for kind in KINDS}
    with _reading(conn):
        rows = conn.execute(_SNAPSHOT, _parameters(exclude)).fetchall()
    for kind, objects, _ in rows:
        for name, attributes in sorted(objects.items()):
            if kind in ("view", "materialized view"):
                attributes["definition"] = _view_definition(attributes["definition"])
            # Deparsed SQL keeps the author's line breaks and indentation (function bodies): not a change.
            snap[kind][name] = {key: " ".join(text.split()) for key, text in attributes.items() if text is not None}
    return snap, rows[0][2] if rows else ""


def snapshot(conn: psycopg.Connection, exclude: Iterable[str] = ()) -> Snapshot:
    """The schema as the catalogs describe it now (see taken)."""
    return taken(conn, exclude)[0]


def digest(conn: psycopg.Connection, exclude: Iterable[str] = ()) -> str:
    """A digest of the catalogs' own text: when it is the one recorded, nothing has changed, and
    neither snapshot needs to be read. Computed by the server, so nothing is sent or parsed."""
    with _reading(conn):
        row = conn.execute(_DIGEST_ONLY, _parameters(exclude)).fetchone()
    return row[0] if row and row[0] else ""


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


def runners(conn: psycopg.Connection) -> tuple[set[str], set[str]]:
    """The tables of every runner in the database (by their names in a snapshot), and the schemas made for them."""
    with _reading(conn):
        rows = conn.execute(_RUNNERS, _parameters(())).fetchall()
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
    """Asked first: CREATE TABLE IF NOT EXISTS needs CREATE rights even when the table is there."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table.as_string(conn),)).fetchone()
    return bool(row and row[0])


def save(conn: psycopg.Connection, table: sql.Identifier, snap: Snapshot, digest: str | None = None) -> None:
    """Store ``snap`` as the only row of ``table``, created if needed, in the caller's transaction."""
    if not exists(conn, table):
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (taken_at timestamptz NOT NULL DEFAULT now(), "
                "server_version integer NOT NULL, snapshot jsonb NOT NULL, digest text)"
            ).format(table)
        )
        conn.execute(
            sql.SQL("COMMENT ON TABLE {} IS {}").format(
                table, sql.Literal("The schema as runner last migrated it, for runner verify.")
            )
        )
    elif _digest_column(conn, table) is None:  # made by a runner from before the digest
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN digest text").format(table))
    conn.execute(sql.SQL("DELETE FROM {}").format(table))
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (server_version, snapshot, digest) "
            "VALUES (current_setting('server_version_num')::integer, %s, %s)"
        ).format(table),
        (Jsonb(snap), digest),
    )


def load(conn: psycopg.Connection, table: sql.Identifier) -> Snapshot | None:
    """The stored snapshot, or None when there is none (no table, or no row)."""
    if not exists(conn, table):
        return None
    row = conn.execute(sql.SQL("SELECT snapshot FROM {} ORDER BY taken_at DESC LIMIT 1").format(table)).fetchone()
    return row[0] if row else None


def _digest_column(conn: psycopg.Connection, table: sql.Identifier) -> str | None:
    row = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'digest' AND NOT attisdropped",
        (table.as_string(conn),),
    ).fetchone()
    return row[0] if row else None


def recorded_digest(conn: psycopg.Connection, table: sql.Identifier) -> str | None:
    """The digest stored with the snapshot; None without a snapshot, or one recorded before digests."""
    if _digest_column(conn, table) is None:
        return None
    row = conn.execute(sql.SQL("SELECT digest FROM {} ORDER BY taken_at DESC LIMIT 1").format(table)).fetchone()
    return row[0] if row else None
