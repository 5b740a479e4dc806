"""Checking a file's SQL before anything of it runs, with the real PostgreSQL parser (pglast).

Four kinds of statement would break the promise that a file and its record commit together,
cannot run at all outside psql, or would change what runner recorded, so they are refused up
front (exit 2), naming the line:

- a statement PostgreSQL refuses inside a transaction (CREATE INDEX CONCURRENTLY, VACUUM, ...)
  in a file that runs in one: it belongs in a ``-- runner: no-transaction`` file;
- transaction control (BEGIN, COMMIT, SAVEPOINT, ...) other than a plain wrapper, which is
  recognised and left out when the file is sent, so the file still commits together with its record;
- psql features: meta-commands (``\\set``, ``\\i``) and ``COPY ... FROM stdin`` with inline data;
- a write to one of runner's own tables (the tracking table and its companions), or a change of one.

Most files contain none of the words these need, and are sent as they are without being
parsed. A file over ONE_MESSAGE_LIMIT is never parsed whole, which takes several times its
size in memory: it is sent in parts cut at statement ends (runner.cutting), a message each
inside one transaction, and only those of its statements that could be one of the above are
parsed, one at a time (see _big).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

from runner import cutting, directives, variables
from runner.errors import BadInput, MigrationFailed
from runner.files import CHECKSUM_ALGORITHM, FileChanged, FileView, Migration, checksum, windows

# The words a refused statement or a transaction control needs: a file with none of them needs no parsing.
_WORDS = frozenset(b"begin start commit end rollback abort savepoint release prepare concurrently vacuum database "
                   b"system tablespace cluster stdin cascade".split())  # fmt: skip
# Letters lower-cased, digits and _ kept, every other byte a space: what is left splits into words as regex \b would.
_WORD_BYTES = bytes(b | 0x20 if 65 <= b <= 90 or 97 <= b <= 122 else b if 48 <= b <= 57 or b == 95 else 32
                    for b in range(256))  # fmt: skip
_CHUNK = 1 << 16  # small enough to stay in the processor's cache
_SEARCHED = 4096  # bytes: a longer text is searched for each word before it is split into words
# A file up to this size travels in one message with its record; a bigger one inside BEGIN ... COMMIT,
# in parts of about this size cut at statement ends. The server runs 1 MB parts as fast as bigger
# ones, and the next part is read while one is sent: small ones keep memory low.
ONE_MESSAGE_LIMIT = 1_000_000
# In a big file, the statements worth parsing: those starting with one of these words, which are
# refused or are transaction control whatever follows, and those starting with a key of _HEADS
# that hold one of its words (CREATE INDEX CONCURRENTLY, DROP DATABASE, COPY ... FROM stdin).
# Any other statement is none of the four kinds, unless it names one of runner's tables.
_CONTROL_HEADS = frozenset("begin start commit end rollback abort savepoint release prepare vacuum cluster".split())
_DDL_WORDS = ("concurrently", "database", "tablespace", "system")
_HEADS = {"create": _DDL_WORDS, "drop": _DDL_WORDS, "alter": _DDL_WORDS, "reindex": _DDL_WORDS, "copy": ("stdin",)}
_COPY_FROM_STDIN = re.compile(r"^\s*copy\b[^;]*?\bfrom\s+stdin\b", re.IGNORECASE | re.MULTILINE)
_META_LINE = re.compile(r"^[ \t]*(\\\S*)", re.MULTILINE)
_NO_TRANSACTION_HINT = f"put it in a file of its own whose first line is `-- {directives.PREFIX} no-transaction`"
_OWN_TABLE_HINT = (
    "runner keeps them itself, and a file that changed them would change what runner knows was applied. "
    "To forget that a file ran, use `runner unmark VERSION`; to record one run by hand, `runner mark VERSION`; "
    "to take an edited file as it is now, `runner accept FILE`"
)


class Table(Protocol):
    """One of runner's own tables, as runner.tracking.TrackingTable names it."""

    @property
    def schema(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Statement:
    start: int  # character offset in the file
    text: str
    line: int


@dataclass(frozen=True)
class Cuts:
    """How a big file is sent: which of its bytes, and where they are cut into parts."""

    span: tuple[int, int]  # byte offsets: all of the file but a BEGIN/COMMIT wrapper
    at: tuple[int, ...] | None = None  # found before anything ran; None: found while sending (cutting.cuts)
    escapes_from: int | None = None  # a cut before the first backslash before a quote (cutting.ESCAPED_QUOTE)
    sets_escapes: bool = False  # the file names standard_conforming_strings, so it may turn it off


@dataclass(frozen=True)
class Part:
    """Part of a file, sent as a message of its own."""

    where: slice  # byte offsets in the file
    data: bytes


@dataclass(frozen=True)
class Script:
    """One migration as it will be sent."""

    migration: Migration
    body: bytes | FileView  # the file, with a recognised BEGIN/COMMIT wrapper blanked out (when not cut)
    no_transaction: bool = False
    settings: dict[str, str] = field(default_factory=dict)
    statements: tuple[Statement, ...] = ()  # no-transaction files run one statement at a time
    wrapper_removed: bool = False
    cuts: Cuts | None = None  # a big file, sent in parts inside BEGIN ... COMMIT
    variables: Mapping[str, str] = field(default_factory=dict)  # the values its references took, by name

    @property
    def name(self) -> str:
        return self.migration.name

    def parts(self) -> Iterator[Part]:
        """The parts of the body, each sent as a message of its own: all of it, unless it is cut.

        Found one at a time, so that the next one can be looked for while the server runs one.
        Cuts read strings with standard_conforming_strings on: a session with it off is refused a
        file they could misread (engine.refuse_read_otherwise), and one that turns it off itself is
        not cut after its first backslash before a quote. A big file is read again here, so what is
        sent is checksummed again: a file edited since runner read it is refused (MigrationFailed)
        after its last part, before anything commits.
        """
        body, cuts = self.body, self.cuts
        if cuts is None:
            yield Part(slice(0, len(body)), body[0 : len(body)])
            return
        try:
            yield from self._cut(body, cuts)
        except FileChanged as changed:
            raise MigrationFailed(
                f"{changed.path} changed while runner was sending it ({changed.how}). It was rolled back: nothing "
                "of it was kept, and later files did not run; run runner again",
                details={"file": self.migration.path, "version": self.migration.version},
            ) from None

    def _cut(self, body: bytes | FileView, cuts: Cuts) -> Iterator[Part]:
        start, stop = cuts.span
        ends = iter(cuts.at) if cuts.at is not None else cutting.cuts(body, start, stop, ONE_MESSAGE_LIMIT)
        last = cuts.escapes_from
        if last is not None and cuts.sets_escapes:
            ends = itertools.takewhile(lambda end: end <= last, ends)
        digest = None if isinstance(body, bytes) else hashlib.new(CHECKSUM_ALGORITHM, body[0:start])
        for end in itertools.chain(ends, [stop]):
            if start < end <= stop:
                part = Part(slice(start, end), body[start:end])
                if digest is not None:
                    digest.update(part.data)
                yield part
                start = end
        if digest is not None:
            digest.update(body[stop : len(body)])
            if f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}" != self.migration.checksum:
                raise FileChanged(self.migration.path, "it no longer has the checksum runner read")

    def text(self) -> str:
        return self.body[0 : len(self.body)].decode("utf-8")


class _Look:
    """What makes a statement worth parsing in one run: the checks' words, and runner's own tables."""

    def __init__(self, tables: Sequence[Table]) -> None:
        self.tables = tuple(tables)
        names = [table.name.lower().encode().translate(_WORD_BYTES).split() for table in self.tables]
        # A name's longest word is in every statement that names it; a name without one makes every file suspect.
        self.everything = any(not words for words in names)
        longest = {max(words, key=len).decode() for words in names if words}
        self.words = _WORDS | {word.encode() for word in longest}
        # Looked for as parts of a text, one word within another is enough: runner_migrations is in
        # runner_migrations_history.
        self.table_words = tuple(w for w in longest if not any(o != w and o in w for o in longest))
        self.table_bytes = tuple(word.encode() for word in self.table_words)

    def suspect(self, sql: bytes | FileView) -> bool:
        """Whether a file has a backslash, or one of the words in any case, a window at a time."""
        if self.everything:
            return True
        overlap, tail = max(map(len, self.words)), b""
        for _, data in windows(sql):
            if _suspect(tail + data, self.words):
                return True
            tail = data[-overlap:]
        return False

    def worth_parsing(self, statement: str, window_names_tables: bool) -> bool:
        word = cutting.head(statement)
        if word in _CONTROL_HEADS:
            return True
        if word in _HEADS and any(w in statement.lower() for w in _HEADS[word]):
            return True
        return self.everything or (window_names_tables and any(w in statement.lower() for w in self.table_words))


@functools.lru_cache(maxsize=8)
def _look(tables: tuple[Table, ...]) -> _Look:
    """One _Look for the files of a run, which all share the same tables."""
    return _Look(tables)


def _suspect(sql: bytes, words: frozenset[bytes] = _WORDS) -> bool:
    """Whether ``sql`` has a backslash, or one of ``words`` in any case.

    A chunk at a time, turned into words by one translation and a split (C code, a pass or two
    over each byte), so a big file is neither copied whole nor searched once per word.
    """
    if b"\\" in sql:
        return True
    if len(sql) > _SEARCHED:  # a word in it is also a run of its letters, which most texts lack: no split needed
        lowered = sql.lower()
        if not any(word in lowered for word in words):
            return False
    overlap = max(map(len, words))  # a word across two chunks is whole in the second one
    return any(
        not words.isdisjoint(sql[max(0, start - overlap) : start + _CHUNK].translate(_WORD_BYTES).split())
        for start in range(0, len(sql), _CHUNK)
    )


_ESCAPED_QUOTE = re.compile(cutting.ESCAPED_QUOTE.pattern.encode())


def escaped_quote(data: bytes) -> bool:
    """A backslash before a quote: with standard_conforming_strings off, the quote is escaped (see read_otherwise)."""
    return b"\\'" in data and _ESCAPED_QUOTE.search(data) is not None


def read_otherwise(script: Script) -> int | None:
    """The line of the first string whose end moves with standard_conforming_strings, or None.

    Every check here reads strings as PostgreSQL does by default (the setting on). With it off, a backslash before
    a quote in a plain string escapes the quote, the string goes on, and the server's statements are not the ones
    checked: a COMMIT inside a string by one reading is a statement by the other. A small file is scanned into
    tokens (a backslash in a comment, a dollar quote or an E'' string reads alike either way); a big one is only
    searched, a window at a time.
    """
    body = script.body
    if isinstance(body, FileView):
        tail = b""  # the run of backslashes the window before ended in, however long: its count decides
        for start, data in windows(body):
            found = _ESCAPED_QUOTE.search(tail + data)
            if found:
                return body.count(b"\n", 0, start - len(tail) + found.start()) + 1
            run = len(data) - len(data.rstrip(b"\\"))
            tail = tail + data if run == len(data) else data[len(data) - run :]
        return None
    text = body.decode("utf-8")
    first = cutting.ESCAPED_QUOTE.search(text) if "\\" in text else None
    if first is None:
        return None
    from pglast import parser

    try:
        tokens = parser.scan(text)
    except parser.ParseError:  # a string that never ends by the default reading: read otherwise, surely
        return _line(text, first.start())
    plain = (t for t in tokens if t.name == "SCONST" and text[t.start] == "'")
    return next((_line(text, t.start) for t in plain if cutting.ESCAPED_QUOTE.search(text, t.start, t.end + 1)), None)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _statements(text: str, nodes: tuple) -> list[tuple[Statement, object]]:  # type: ignore[type-arg]
    found = []
    line, counted = 1, 0  # lines are counted on from the previous statement: linear in the file's size
    for raw in nodes:
        end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(text)
        start = cutting.skip_blank(text, raw.stmt_location, end)
        line += text.count("\n", counted, start)
        counted = start
        found.append((Statement(start, text[start:end], line), raw.stmt))
    return found


def _copy_error(migration: Migration, line: int) -> BadInput:
    return BadInput(
        f"{migration.path}, line {line}: COPY ... FROM stdin with inline data is a psql feature; runner sends "
        "SQL to the server, which has no such data. Load the rows with INSERT, or COPY from a file on the server"
    )


def _refuse_psql_features(migration: Migration, text: str, line: int = 1) -> None:
    """A statement or file the parser rejects, starting at ``line``: name a psql feature if that is why."""
    copy = _COPY_FROM_STDIN.search(text)
    if copy:
        raise _copy_error(migration, line - 1 + _line(text, copy.start()))
    meta = _first_meta_command(text)
    if meta is not None:
        raise _meta_command_error(migration, text, meta, line)


def _meta_command_error(migration: Migration, text: str, meta: tuple[int, str], line: int = 1) -> BadInput:
    offset, command = meta
    return BadInput(
        f"{migration.path}, line {line - 1 + _line(text, offset)}: {command} is a psql meta-command, not SQL; "
        "runner sends the file to the server, which cannot run it. Remove it (or keep such scripts for psql)"
    )


def _first_meta_command(text: str) -> tuple[int, str] | None:
    from pglast import parser

    try:
        tokens = parser.scan(text)
    except Exception:  # an unterminated quote or the like: fall back to backslashes that start a line
        match = _META_LINE.search(text)
        return (match.start(1), match[1]) if match else None
    for token in tokens:
        if token.name == "ASCII_92":  # a backslash outside any string or comment
            word = text[token.start :].split(None, 1)[0]
            return token.start, word
    return None


def _needs_no_transaction(node: object) -> str | None:
    """What a statement is, when PostgreSQL refuses to run it inside a transaction block."""
    from pglast import ast, enums

    if isinstance(node, ast.IndexStmt) and node.concurrent:
        return "CREATE INDEX CONCURRENTLY"
    if isinstance(node, ast.DropStmt) and node.concurrent:
        return "DROP INDEX CONCURRENTLY"
    if isinstance(node, ast.ReindexStmt):
        if any(option.defname == "concurrently" for option in node.params or ()):
            return "REINDEX ... CONCURRENTLY"
        if node.kind in (
            enums.ReindexObjectType.REINDEX_OBJECT_SYSTEM,
            enums.ReindexObjectType.REINDEX_OBJECT_DATABASE,
        ):
            return "REINDEX SYSTEM/DATABASE"
    if isinstance(node, ast.VacuumStmt) and node.is_vacuumcmd:
        return "VACUUM"
    if isinstance(node, ast.ClusterStmt) and node.relation is None:
        return "CLUSTER without a table"
    if isinstance(node, ast.AlterDatabaseStmt) and any(o.defname == "tablespace" for o in node.options or ()):
        return "ALTER DATABASE ... SET TABLESPACE"
    fixed = {
        ast.CreatedbStmt: "CREATE DATABASE",
        ast.DropdbStmt: "DROP DATABASE",
        ast.AlterSystemStmt: "ALTER SYSTEM",
        ast.CreateTableSpaceStmt: "CREATE TABLESPACE",
        ast.DropTableSpaceStmt: "DROP TABLESPACE",
    }
    return fixed.get(type(node))


def _copy_from_stdin(node: object) -> bool:
    from pglast import ast

    return isinstance(node, ast.CopyStmt) and bool(node.is_from) and not node.filename and not node.is_program


def _changed_tables(node: object) -> Iterator[tuple[str, tuple[str, ...]]]:
    """What a statement does to each table it writes to or changes, and the table's name ([schema,] name).

    The statement itself and its WITH queries; not what a function, a DO block or a string run
    by EXECUTE may do when it runs, which no parser can see.
    """
    from pglast import ast, enums

    with_clause = getattr(node, "withClause", None)
    for cte in with_clause.ctes if with_clause else ():
        yield from _changed_tables(cte.ctequery)
    if isinstance(node, ast.ExplainStmt | ast.PrepareStmt | ast.CreateTableAsStmt):
        yield from _changed_tables(node.query)
    relations = {
        ast.InsertStmt: "INSERT INTO",
        ast.UpdateStmt: "UPDATE",
        ast.DeleteStmt: "DELETE FROM",
        ast.MergeStmt: "MERGE INTO",
        ast.AlterTableStmt: "ALTER TABLE",
        ast.RenameStmt: "ALTER ... RENAME",
        ast.AlterObjectSchemaStmt: "ALTER ... SET SCHEMA",
        ast.CreateTrigStmt: "CREATE TRIGGER ... ON",
        ast.RuleStmt: "CREATE RULE ... ON",
    }
    relation = getattr(node, "relation", None)
    if type(node) in relations and relation is not None:
        yield relations[type(node)], _names(relation)
    if isinstance(node, ast.AlterTableStmt):
        inherited = (cmd.def_ for cmd in node.cmds if cmd.subtype == enums.AlterTableType.AT_AddInherit)
        yield from (("ALTER TABLE ... INHERIT", _names(parent)) for parent in inherited)
    elif isinstance(node, ast.CopyStmt) and node.is_from and node.relation is not None:
        yield "COPY ... FROM", _names(node.relation)
    elif isinstance(node, ast.CreateStmt) and node.inhRelations:  # a child's rows are read as the table's
        yield from (("CREATE TABLE ... INHERITS", _names(parent)) for parent in node.inhRelations)
    elif isinstance(node, ast.TruncateStmt):
        yield from (("TRUNCATE", _names(relation)) for relation in node.relations)
    elif isinstance(node, ast.DropStmt) and node.removeType == enums.ObjectType.OBJECT_TABLE:
        yield from (("DROP TABLE", tuple(name.sval for name in names)) for names in node.objects)


def _names(relation: object) -> tuple[str, ...]:
    return tuple(name for name in (relation.schemaname, relation.relname) if name)  # type: ignore[attr-defined]


def _own_table(names: tuple[str, ...], tables: Sequence[Table]) -> Table | None:
    """The table of ``tables`` that ``names`` means: by name alone when it is not schema-qualified."""
    for table in tables:
        if names[-1] == table.name and (len(names) == 1 or names[-2] == table.schema):
            return table
    return None


def _check(migration: Migration, statement: Statement, node: object, tables: Sequence[Table]) -> bool:
    """Refuse a statement that cannot run in the file's transaction; True when it is transaction control."""
    from pglast import ast

    what = _needs_no_transaction(node)
    if what:
        raise BadInput(
            f"{migration.path}, line {statement.line}: {what} cannot run inside a transaction, and this file "
            f"runs in one; {_NO_TRANSACTION_HINT}"
        )
    if _copy_from_stdin(node):
        raise _copy_error(migration, statement.line)
    _refuse_own_tables(migration, statement, node, tables)
    return isinstance(node, ast.TransactionStmt)


def _refuse_own_tables(migration: Migration, statement: Statement, node: object, tables: Sequence[Table]) -> None:
    from pglast import ast, enums

    if isinstance(node, ast.DropStmt) and node.removeType == enums.ObjectType.OBJECT_SCHEMA and \
            node.behavior == enums.DropBehavior.DROP_CASCADE:  # fmt: skip
        for name in node.objects:
            table = next((t for t in tables if t.schema == name.sval), None)
            if table is not None:
                raise BadInput(f"{migration.path}, line {statement.line}: DROP SCHEMA {name.sval} CASCADE drops "
                               f"{table}, one of runner's own tables; " + _OWN_TABLE_HINT)  # fmt: skip
    for what, names in _changed_tables(node):
        table = _own_table(names, tables)
        if table is not None:
            raise BadInput(
                f"{migration.path}, line {statement.line}: {what} {table} changes one of runner's own tables; "
                + _OWN_TABLE_HINT
            )


def _wrapper(migration: Migration, control: list[tuple[int, Statement, object]], last_index: int) -> list[Statement]:
    """The statements of a recognised wrapper; BadInput for transaction control that is not one.

    ``control`` holds the file's transaction control statements, each with its index among the
    file's statements, of which the last has ``last_index``.
    """
    from pglast import enums

    kinds = enums.TransactionStmtKind

    def opens(i: int, node: object) -> bool:
        return i == 0 and node.kind in (kinds.TRANS_STMT_BEGIN, kinds.TRANS_STMT_START) and not node.options  # type: ignore[attr-defined]

    def closes(i: int, node: object) -> bool:
        return i == last_index and node.kind == kinds.TRANS_STMT_COMMIT and not node.chain  # type: ignore[attr-defined]

    if not control:
        return []
    (i0, s0, n0), (i1, s1, n1) = control[0], control[-1]
    if len(control) == 2 and opens(i0, n0) and closes(i1, n1):
        return [s0, s1]
    if len(control) == 1 and closes(i0, n0):
        return [s0]
    odd = [s for i, s, n in control if not (opens(i, n) or closes(i, n))]
    offending = odd[0] if odd else s0  # else: a BEGIN whose COMMIT is missing or not last
    raise BadInput(
        f"{migration.path}, line {offending.line}: {_keyword(offending)} in a file that runs in a transaction. "
        "runner commits each file together with its record, so the only transaction control allowed is a "
        "BEGIN; as the first statement with COMMIT; as the last. A file that manages its own transactions "
        f"must start with `-- {directives.PREFIX} no-transaction`"
    )


def _blank(text: str, statements: list[Statement]) -> str:
    """Replace statements by spaces, keeping every newline, so lines and offsets stay the file's."""
    parts, done = [], 0
    for statement in statements:
        end = statement.start + len(statement.text)
        parts += [text[done : statement.start], re.sub(r"[^\n]", " ", text[statement.start : end])]
        done = end
    return "".join([*parts, text[done:]])


def _parse(migration: Migration, text: str, line: int = 1) -> tuple[list[tuple[Statement, object]] | None, str]:
    """The statements of ``text`` (which starts at ``line``), or None and the parser's complaint
    (after ruling out psql features)."""
    from pglast import parse_sql

    try:
        return _statements(text, parse_sql(text)), ""
    except Exception as exc:  # pglast.parser.ParseError: (message, character offset)
        _refuse_psql_features(migration, text, line)
        message = str(exc.args[0]) if exc.args else str(exc)
        if len(exc.args) > 1 and isinstance(exc.args[1], int):
            message = f"line {line - 1 + _line(text, exc.args[1])}: {message.split(', at index')[0]}"
        return None, message


def _keyword(statement: Statement) -> str:
    return " ".join(statement.text.split()[:2]).rstrip(";")


def prepare(migration: Migration, tables: Sequence[Table] = (), values: Mapping[str, str] | None = None) -> Script:
    """Check one pending file and decide how it is sent; BadInput (nothing run) when it cannot be.

    ``tables`` are runner's own tables: a file may not write to them or change them. ``values``
    are the psql variables' (see runner.variables): the file is checked and sent with them substituted.
    """
    sql, used = substituted(migration, values or {})
    script = _prepare(migration, sql, tables)
    return replace(script, variables=used) if used else script


def substituted(migration: Migration, values: Mapping[str, str]) -> tuple[bytes | FileView, dict[str, str]]:
    """The file's SQL with its psql variables substituted, and the values they took; the file itself, and no
    values, when it has no reference (most files: a byte search tells). BadInput naming the line of a
    reference to a variable without a value.

    A big file with references is read whole, to be sent from memory.
    """
    sql = migration.sql
    if not variables.may_reference(sql):
        return sql, {}
    raw = sql if isinstance(sql, bytes) else sql[0 : len(sql)]
    if raw is not sql and checksum(raw) != migration.checksum:
        raise FileChanged(migration.path, "it no longer has the checksum runner read")
    text = raw.decode("utf-8")
    try:
        expanded = variables.expand(text, values)
    except variables.NoValue as missing:
        meta = _first_meta_command(text)  # a \set there would have set it for psql: that is what to fix
        if meta is not None and meta[1][:2] not in ("\\:", "\\;"):  # psql's escapes, not commands
            raise _meta_command_error(migration, text, meta) from None
        name, line = missing.reference.name, missing.reference.line
        raise BadInput(
            f"{migration.path}, line {line}: the variable {missing.reference.written} has no value{missing.hint}; "
            f"set it with --set {name}=VALUE or in [tool.runner.variables]"
        ) from None
    if expanded.text == text:  # only array slices, or casts
        return sql, expanded.used
    return expanded.text.encode("utf-8"), expanded.used


def _prepare(migration: Migration, sql: bytes | FileView, tables: Sequence[Table]) -> Script:
    wanted = directives.read(migration)
    look = _look(tuple(tables))
    if wanted.no_transaction:
        return _no_transaction(migration, sql, wanted, tables)
    if not isinstance(sql, bytes) or len(sql) > ONE_MESSAGE_LIMIT:
        return _big(migration, sql, wanted, look)
    if not look.suspect(sql):
        return Script(migration, sql, settings=wanted.settings)
    text = sql.decode("utf-8")
    statements, _ = _parse(migration, text)
    if statements is None:  # a syntax error: the server reports it with its line, and nothing is kept
        return Script(migration, sql, settings=wanted.settings)
    control = [(i, s, n) for i, (s, n) in enumerate(statements) if _check(migration, s, n, look.tables)]
    wrapper = _wrapper(migration, control, len(statements) - 1)
    if not wrapper:
        return Script(migration, sql, settings=wanted.settings)
    body = _blank(text, wrapper).encode("utf-8")
    return Script(migration, body, settings=wanted.settings, wrapper_removed=True)


def _big(migration: Migration, sql: bytes | FileView, wanted: directives.Directives, look: _Look) -> Script:
    """A file sent in parts: checked a window of whole statements at a time, parsing only those worth it.

    A file without any of the words is cut while it is sent (cutting.cuts); one with them is
    walked here, before anything runs, and where it is cut kept, so that it is walked once.
    """
    if not look.suspect(sql):
        return Script(migration, sql, settings=wanted.settings, cuts=Cuts((0, len(sql))))
    walked = _walk(migration, sql, look)
    if walked.unfinished is not None and walked.control:  # COMMIT is not its last statement, whatever it is
        raise BadInput(
            f"{migration.path}, line {walked.unfinished}: the file ends in a statement, string or comment that "
            "does not end, after transaction control. Finish it, or remove it"
        )
    wrapper = _wrapper(migration, walked.control, walked.count - 1)
    first, last = walked.spans.get(0, (0, 0)), walked.spans.get(walked.count - 1, (len(sql), len(sql)))
    span = (first[1] if len(wrapper) == 2 else 0, last[0] if wrapper else len(sql))
    cuts = Cuts(span, tuple(walked.at[:-1]), walked.escapes_from, walked.sets_escapes)
    return Script(migration, sql, settings=wanted.settings, wrapper_removed=bool(wrapper), cuts=cuts)


def _walk(migration: Migration, sql: bytes | FileView, look: _Look) -> _Walked:
    """Walk a big file, its second half on a thread from where a statement likely starts.

    PostgreSQL's scanner runs without the GIL, so on two cores this takes half the time. The
    second half counts only if the first one does end there; else the first walk goes on.
    Refusals come in the file's order: the second half's wait until the first half has none.
    """
    first = _Walked(migration, look)
    middle = cutting.likely_start(sql, len(sql) // 2) if len(sql) > 8 * ONE_MESSAGE_LIMIT else None
    if middle is None:
        first.walk(sql, 0, len(sql))
        return first
    second = _Walked(migration, look)
    with ThreadPoolExecutor(1) as pool:
        later = pool.submit(second.walk_later, sql, middle)
        try:
            stopped = first.walk(sql, 0, middle)
        except BadInput:
            second.wanted = False
            raise
        if stopped is None:
            later.result()
            first.merge(second)
        else:  # the middle was inside a statement: go on from the last statement start before it
            second.wanted = False
            first.walk(sql, stopped.start, len(sql), stopped.line)
    return first


class _Walked:
    """What the windows of a big file say: where to cut it, its transaction control, and its escapes."""

    def __init__(self, migration: Migration, look: _Look) -> None:
        self.migration, self.look = migration, look
        self.at: list[int] = []  # where each window ends
        self.count = 0  # statements so far
        self.control: list[tuple[int, Statement, object]] = []  # (statement index, statement, node)
        self.spans: dict[int, tuple[int, int]] = {}  # of control statements: bytes from start to after the `;`
        self.escapes_from: int | None = None
        self.sets_escapes = False
        self.unfinished: int | None = None  # the line where the file's end is not a statement's end
        self.wanted = True  # cleared to stop a walk on another thread early
        self.refused: BadInput | None = None  # found by walk_later

    def walk(self, sql: bytes | FileView, start: int, stop: int, line: int = 1) -> cutting.Window | None:
        """Check the windows from ``start`` (a statement start, on ``line``) to ``stop``.

        Returns the last window, unchecked, when ``stop`` is not where a statement ends.
        """
        for window in cutting.walk(sql, start, stop, ONE_MESSAGE_LIMIT, line):
            if not self.wanted:
                break
            if window.cut == stop < len(sql) and window.unfinished is not None:
                return window
            self.check(window)
            if window.cut == len(sql) and window.unfinished is not None:
                self.unfinished = window.line_at(window.unfinished)
        return None

    def walk_later(self, sql: bytes | FileView, start: int) -> None:
        """Walk from ``start`` to the end, on another thread: a refusal is kept for merge, which comes after
        the part before ``start`` is found to have none."""
        try:
            self.walk(sql, start, len(sql), sql.count(b"\n", 0, start) + 1)
        except BadInput as refused:
            self.refused = refused

    def merge(self, later: _Walked) -> None:
        """Add what the walk of the rest of the file found, from where this one stopped."""
        if later.refused is not None:
            raise later.refused
        self.at += later.at
        self.control += [(self.count + i, statement, node) for i, statement, node in later.control]
        self.spans.update({self.count + i: span for i, span in later.spans.items()})
        self.escapes_from = later.escapes_from if self.escapes_from is None else self.escapes_from
        self.sets_escapes = self.sets_escapes or later.sets_escapes
        self.count += later.count
        self.unfinished = later.unfinished

    def check(self, window: cutting.Window) -> None:
        """Check the statements of one window (BadInput for a refused one), and note what it tells."""
        names_tables = any(word in window.lower for word in self.look.table_bytes)
        self.sets_escapes = self.sets_escapes or b"standard_conforming_strings" in window.lower
        if self.escapes_from is None and "\\" in window.text and cutting.ESCAPED_QUOTE.search(window.text):
            self.escapes_from = window.start  # read alike either way up to here, a statement start
        for offset, text in window.statements:
            index, self.count = self.count, self.count + 1
            if "\\" in text:
                _check_backslash(self.migration, text, window.line_at(offset))
            if not self.look.worth_parsing(text, names_tables):
                continue
            line = window.line_at(offset)  # where ``text`` starts: maybe a comment before the statement
            statements, _ = _parse(self.migration, text, line)
            for statement, node in statements or ():  # none: a syntax error, which the server reports
                statement = replace(statement, line=line - 1 + statement.line)
                if _check(self.migration, statement, node, self.look.tables):
                    self.control.append((index, statement, node))
                    self.spans[index] = _span(window, offset, text)
        self.at.append(window.cut)


def _span(window: cutting.Window, offset: int, text: str) -> tuple[int, int]:
    """Bytes of the file from where a statement starts to just after its `;` (or the end of the window)."""
    end = window.text.find(";", offset + len(text))
    end = len(window.text) if end < 0 else end + 1
    return window.start + cutting.byte_offset(window.text, offset), window.start + cutting.byte_offset(window.text, end)


def _check_backslash(migration: Migration, text: str, line: int) -> None:
    """Refuse a psql meta-command: a backslash outside strings and comments, which no SQL has, so the parser
    says so at the cost of a split (a scan into tokens, which would say where, costs ten times more)."""
    from pglast import parser

    try:
        parser.split(text, with_parser=True)
    except parser.ParseError:
        _refuse_psql_features(migration, text, line)


def _no_transaction(
    migration: Migration, sql: bytes | FileView, wanted: directives.Directives, tables: Sequence[Table]
) -> Script:
    text = sql[0 : len(sql)].decode("utf-8")
    statements, problem = _parse(migration, text)
    if statements is None:
        raise BadInput(
            f"{migration.path}: cannot be split into statements ({problem}); a no-transaction file runs one "
            "statement at a time, so runner parses it first. Fix the SQL"
        )
    for statement, node in statements:
        if _copy_from_stdin(node):
            raise _copy_error(migration, statement.line)
        _refuse_own_tables(migration, statement, node, tables)
    body = sql if isinstance(sql, bytes) else text.encode("utf-8")
    return Script(migration, body, no_transaction=True, settings=wanted.settings,
                  statements=tuple(s for s, _ in statements))  # fmt: skip


def parse_parts(script: Script) -> tuple[int | None, str | None]:
    """How many statements pglast's parser finds in a file, or None and where and why it rejects it.

    A part at a time, as the file would be sent, so that a big file costs a part of memory.
    migrate itself lets the server judge: its grammar may be newer than pglast's.
    """
    from pglast import parser

    if script.no_transaction:
        return len(script.statements), None
    count, line = 0, None
    for part in script.parts():
        if line is None:
            line = script.body.count(b"\n", 0, part.where.start) + 1
        text = part.data.decode("utf-8")
        try:
            count += len(parser.split(text, with_parser=True))
        except parser.ParseError as exc:
            where = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
            return None, f"line {line - 1 + _line(text, where)}: {exc.args[0]} ({_parser_name()})"
        line += text.count("\n")
    return count, None


def _parser_name() -> str:
    from pglast import __version__, parser

    version = getattr(parser, "get_postgresql_version", lambda: None)()
    grammar = f", PostgreSQL {version[0]} grammar" if version else ""
    return f"pglast {__version__.lstrip('v')}{grammar}"
