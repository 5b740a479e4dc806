"""The workloads, described once and independent of any tool: a list of migrations and a check.

Each tool's layout (file names, headers, plan files) is written from this description by
bench/tools.py, so every tool runs the same SQL. The check runs against the database a tool
left behind and raises WrongResult when the tables or rows are not what the SQL should make.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg


class WrongResult(Exception):
    """A tool exited 0 but the database does not hold what the migrations create."""


@dataclass(frozen=True)
class Migration:
    version: int  # 1, 2, ...; each tool pads or prefixes it as it wants
    slug: str  # a short name: letters, digits and underscores
    sql: str


@dataclass(frozen=True)
class Workload:
    key: str  # W1, W2, ...
    title: str
    migrations: list[Migration]
    check: Callable[[psycopg.Connection], None]

    @property
    def size_bytes(self) -> int:
        return sum(len(m.sql.encode()) for m in self.migrations)


def _scalar(conn: psycopg.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def _expect(what: str, got: int, want: int) -> None:
    if got != want:
        raise WrongResult(f"{what}: expected {want}, found {got}")


def _count_tables(conn: psycopg.Connection, prefix: str) -> int:
    return _scalar(
        conn,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname LIKE '{prefix}%'",
    )


def _count_indexes(conn: psycopg.Connection, prefix: str) -> int:
    return _scalar(conn, f"SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname LIKE '{prefix}%'")


# W1: many small DDL migrations on an empty database.
def w1_schema(count: int) -> Workload:
    migrations = [
        Migration(
            i,
            f"create_t{i}",
            f"CREATE TABLE w1_t{i} (id bigint PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now());\n"
            f"CREATE INDEX w1_i{i}_name ON w1_t{i} (name);\n",
        )
        for i in range(1, count + 1)
    ]

    def check(conn: psycopg.Connection) -> None:
        _expect("W1 tables w1_t*", _count_tables(conn, "w1\\_t"), count)
        _expect("W1 indexes w1_i*", _count_indexes(conn, "w1\\_i"), count)

    return Workload("W1", f"{count:,} migrations of CREATE TABLE + CREATE INDEX", migrations, check)


# W2: data migrations, each one multi-row INSERT of 1,000 rows.
def _values(start: int, rows: int) -> str:
    return ",\n".join(f"({n}, 'row {n}', {n % 97}.5)" for n in range(start, start + rows))


def w2_data(count: int, rows_each: int = 1000) -> Workload:
    migrations = [Migration(1, "create_w2", "CREATE TABLE w2 (id bigint PRIMARY KEY, label text, amount numeric);\n")]
    for i in range(count):
        insert = f"INSERT INTO w2 (id, label, amount) VALUES\n{_values(i * rows_each + 1, rows_each)};\n"
        migrations.append(Migration(i + 2, f"insert_batch_{i + 1}", insert))

    def check(conn: psycopg.Connection) -> None:
        _expect("W2 rows in w2", _scalar(conn, "SELECT count(*) FROM w2"), count * rows_each)

    return Workload("W2", f"{count:,} migrations x {rows_each:,} inserted rows (+1 CREATE TABLE)", migrations, check)


def _insert_file(key: str, table: str, megabytes: int, rows_per_insert: int, payload: str = "x" * 60,
                 comment: str = "") -> tuple[str, int, Callable[[psycopg.Connection], None]]:  # fmt: skip
    """One file of multi-row INSERTs into ``table`` of about ``megabytes``; its text, its rows, and their check."""
    target = megabytes * 1024 * 1024
    parts = [f"CREATE TABLE {table} (id bigint PRIMARY KEY, label text, payload text);\n"]
    size, next_id = len(parts[0]), 1
    while size < target:
        rows = ",\n".join(f"({n}, 'label {n}', '{payload}')" for n in range(next_id, next_id + rows_per_insert))
        statement = f"{comment}INSERT INTO {table} (id, label, payload) VALUES\n{rows};\n"
        parts.append(statement)
        size += len(statement)
        next_id += rows_per_insert
    total_rows = next_id - 1

    def check(conn: psycopg.Connection) -> None:
        _expect(f"{key} rows in {table}", _scalar(conn, f"SELECT count(*) FROM {table}"), total_rows)

    return "".join(parts), total_rows, check


# W3: one big file of multi-row INSERTs (a data load or a squashed dump).
def w3_big_file(megabytes: int, rows_per_insert: int = 1000) -> Workload:
    text, total_rows, check = _insert_file("W3", "w3", megabytes, rows_per_insert)
    title = f"one {megabytes} MB file, {total_rows:,} rows in INSERTs of {rows_per_insert:,}"
    return Workload("W3", title, [Migration(1, "big_load", text)], check)


# W7: a 250 MB file of INSERTs, as it is (W7) and with the words runner's pre-flight check looks for
# (BEGIN, END, COMMIT, VACUUM): in a comment before every INSERT (W7c), in the string data of every row (W7d).
W7_KINDS = {"W7": "", "W7c": "the words in a comment before each INSERT", "W7d": "the words in every row's data"}


def w7_words(megabytes: int, key: str = "W7", rows_per_insert: int = 1000) -> Workload:
    payload = "BEGIN; END; COMMIT; VACUUM; " + "x" * 32 if key == "W7d" else "x" * 60  # the same length
    comment = "-- the END of a batch: COMMIT follows, no VACUUM\n" if key == "W7c" else ""
    text, total_rows, check = _insert_file(key, "w7", megabytes, rows_per_insert, payload, comment)
    title = f"one {megabytes} MB file, {total_rows:,} rows in INSERTs" + (f", {W7_KINDS[key]}" if W7_KINDS[key] else "")
    return Workload(key, title, [Migration(1, "big_words", text)], check)


# W4/W5/W6: a folder of applied files, each a tiny CREATE TABLE.
def applied_files(count: int) -> Workload:
    migrations = [Migration(i, f"t{i}", f"CREATE TABLE w4_t{i} (id int);\n") for i in range(1, count + 1)]

    def check(conn: psycopg.Connection) -> None:
        _expect("W4 tables w4_t*", _count_tables(conn, "w4\\_t"), count)

    return Workload("W4", f"{count:,} applied files", migrations, check)


# W8: the commonest deploy, one more W1 file on a database where the first `count` were applied by the same tool.
def w8_last_one(count: int) -> Workload:
    new = count + 1

    def check(conn: psycopg.Connection) -> None:
        _expect("W8 tables w1_t*", _count_tables(conn, "w1\\_t"), new)
        _expect("W8 indexes w1_i*", _count_indexes(conn, "w1\\_i"), new)
        found = _scalar(conn, f"SELECT count(*) FROM pg_tables WHERE tablename = 'w1_t{new}'")
        _expect(f"W8 new table w1_t{new}", found, 1)

    return Workload("W8", f"{count:,} W1 files applied, then one more", w1_schema(new).migrations, check)


# W9/W10: a fleet, many targets given the same few small DDL files, each idempotent as a fleet's files often are.
def fleet_files(count: int) -> Workload:
    """W1's kind of file, with IF NOT EXISTS. Its check is of one database's public schema; the runs check
    tracking rows and tenants too, with ``check_target`` and ``check_tenants``."""
    migrations = [
        Migration(
            i,
            f"create_t{i}",
            f"CREATE TABLE IF NOT EXISTS w9_t{i} (id bigint PRIMARY KEY, name text NOT NULL, "
            f"created_at timestamptz DEFAULT now());\nCREATE INDEX IF NOT EXISTS w9_i{i}_name ON w9_t{i} (name);\n",
        )
        for i in range(1, count + 1)
    ]
    return Workload("W9", f"{count} files of CREATE TABLE IF NOT EXISTS + CREATE INDEX per target", migrations,
                    lambda conn: check_target(conn, count))  # fmt: skip


_FLEET_KINDS = (
    "count(*) FILTER (WHERE c.relkind = 'r' AND c.relname LIKE 'w9\\_t%'), "
    "count(*) FILTER (WHERE c.relkind = 'i' AND c.relname LIKE 'w9\\_i%')"
)


def check_target(conn: psycopg.Connection, files: int, schema: str = "public", tracking: str | None = None) -> None:
    """One fleet target holds the files' tables and indexes in ``schema`` and, if a tracking table is named
    (in that schema), a row per file in it."""
    kinds = conn.execute(
        f"SELECT {_FLEET_KINDS} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{schema}'"
    ).fetchone()
    assert kinds is not None
    _expect(f"{schema}: tables w9_t*", kinds[0], files)
    _expect(f"{schema}: indexes w9_i*", kinds[1], files)
    if tracking:
        _expect(f"{schema}: rows in {tracking}", _scalar(conn, f'SELECT count(*) FROM "{schema}".{tracking}'), files)


def check_tenants(conn: psycopg.Connection, files: int, schemas: list[str], tracking: str) -> None:
    """Every tenant of W10 holds ``files`` tables, indexes and tracking rows: two statements for all of them."""
    counts = conn.execute(
        f"SELECT n.nspname, {_FLEET_KINDS} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname IN ({', '.join(repr(s) for s in schemas)}) GROUP BY 1"
    ).fetchall()
    wrong = [f"{s} {t} tables, {i} indexes" for s, t, i in counts if (t, i) != (files, files)]
    _expect("W10 tenants holding the files' tables", len(counts), len(schemas))
    if wrong:
        raise WrongResult(f"W10: {len(wrong)} tenant(s) without {files} tables and indexes: {', '.join(wrong[:3])}")
    rows = " UNION ALL ".join(f"SELECT '{s}', count(*) FROM \"{s}\".{tracking}" for s in schemas)
    short = [s for s, n in conn.execute(rows).fetchall() if n != files]
    if short:
        raise WrongResult(f"W10: {len(short)} tenant(s) without {files} rows in {tracking}: {', '.join(short[:3])}")
