"""Checking a file's SQL before anything of it runs, with the real PostgreSQL parser (pglast).

Three kinds of file would break the promise that a file and its record commit together, or
cannot run at all outside psql, so they are refused up front (exit 2), naming the line:

- a statement PostgreSQL refuses inside a transaction (CREATE INDEX CONCURRENTLY, VACUUM, ...)
  in a file that runs in one: it belongs in a ``-- runner: no-transaction`` file;
- transaction control (BEGIN, COMMIT, SAVEPOINT, ...) other than a plain wrapper, which is
  recognised and blanked out so the file still commits together with its record;
- psql features: meta-commands (``\\set``, ``\\i``) and ``COPY ... FROM stdin`` with inline data.

Most files contain none of the words these need, and are sent as they are without being
parsed: parsing a big file costs far more memory than the file itself. Such a file, when it is
big, is also cut into parts at statement ends, so that it can be sent a part per message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from runner import directives
from runner.errors import BadInput
from runner.files import Migration

# The words a refused statement or a transaction control needs: a file with none of them needs no parsing.
_WORDS = frozenset(b"begin start commit end rollback abort savepoint release prepare concurrently vacuum database "
                   b"system tablespace cluster stdin".split())  # fmt: skip
# Letters lower-cased, digits and _ kept, every other byte a space: what is left splits into words as regex \b would.
_WORD_BYTES = bytes(b | 0x20 if 65 <= b <= 90 or 97 <= b <= 122 else b if 48 <= b <= 57 or b == 95 else 32
                    for b in range(256))  # fmt: skip
_CHUNK = 1 << 16  # small enough to stay in the processor's cache
# A file up to this size travels in one message with its record; a bigger one inside BEGIN ... COMMIT,
# in parts of about this size when it can be cut (see _cuts). The server runs 1 MB parts as fast as
# bigger ones, and the next window is scanned while a part is sent: small ones keep memory low.
ONE_MESSAGE_LIMIT = 1_000_000
# Added after a piece of a file to split it: a statement of its own, or the end of the piece's last one.
# The backslash tells it from the file's statements: a file that is cut has none.
_END = "\nSELECT \\"
_COPY_FROM_STDIN = re.compile(r"^\s*copy\b[^;]*?\bfrom\s+stdin\b", re.IGNORECASE | re.MULTILINE)
_META_LINE = re.compile(r"^[ \t]*(\\\S*)", re.MULTILINE)
_NO_TRANSACTION_HINT = f"put it in a file of its own whose first line is `-- {directives.PREFIX} no-transaction`"


@dataclass(frozen=True)
class Statement:
    start: int  # character offset in the file
    text: str
    line: int


@dataclass(frozen=True)
class Script:
    """One migration as it will be sent."""

    migration: Migration
    body: bytes  # the file, with a recognised BEGIN/COMMIT wrapper blanked out
    no_transaction: bool = False
    settings: dict[str, str] = field(default_factory=dict)
    statements: tuple[Statement, ...] = ()  # no-transaction files run one statement at a time
    wrapper_removed: bool = False
    cuttable: bool = False  # when big, cut into parts at statement ends (see _cuts)

    @property
    def name(self) -> str:
        return self.migration.name

    def parts(self) -> Iterator[slice]:
        """The parts of the body, each sent as a message of its own: all of it, unless it is cut.

        Found one at a time, so that the next one can be looked for while the server runs one.
        """
        start = 0
        for end in _cuts(self.body) if self.cuttable else ():
            yield slice(start, end)
            start = end
        yield slice(start, len(self.body))

    def text(self) -> str:
        return self.body.decode("utf-8")


def _suspect(sql: bytes) -> bool:
    """Whether the file has a backslash, or one of the words in any case.

    A chunk at a time, turned into words by one translation and a split (C code, a pass or two
    over each byte), so a big file is neither copied whole nor searched once per word.
    """
    if b"\\" in sql:
        return True
    overlap = max(map(len, _WORDS))  # a word across two chunks is whole in the second one
    return any(
        not _WORDS.isdisjoint(sql[max(0, start - overlap) : start + _CHUNK].translate(_WORD_BYTES).split())
        for start in range(0, len(sql), _CHUNK)
    )


def _cuts(sql: bytes) -> Iterator[int]:
    """Where a big file can be cut into parts of about ONE_MESSAGE_LIMIT bytes: just after a `;` ending a statement.

    Sent as one message, a 50 MB file costs libpq a copy of it, and the server a parse of all of it
    before the first statement runs. Only for a file without BEGIN and without a backslash: there
    PostgreSQL's scanner finds the same statement ends as the server (BEGIN ATOMIC bodies hold `;`,
    and standard_conforming_strings=off reads a backslash in a string differently). A window of the
    file at a time, ending at a `;`, so the whole file is never decoded at once.
    """
    start, size = 0, ONE_MESSAGE_LIMIT
    while len(sql) - start > ONE_MESSAGE_LIMIT:
        end = sql.rfind(b";", start, start + size) + 1
        text = str(memoryview(sql)[start:end], "utf-8")  # decoded without a copy of the bytes first
        cut = _last_end(text)
        if cut:
            start = end - len(text[cut:].encode("utf-8"))
            yield start
            size = ONE_MESSAGE_LIMIT
        elif start + size >= len(sql):
            break  # no statement ends in the rest: it is one part
        else:
            size *= 2  # a statement longer than the window


def _last_end(text: str) -> int:
    """Just after the last `;` of ``text`` that ends a statement, found by PostgreSQL's scanner (pglast); 0 if none.

    ``text`` starts at a statement and may end anywhere, even inside a string or a comment.
    With _END added, its last statement runs to the end, so its length says where it starts,
    and the `;` before is the one: pglast's slices would say it too, but cost twice as much.
    """
    from pglast import parser

    try:
        statements = parser.split(text + _END, with_parser=False)
        if statements and statements[-1].endswith("\\"):  # _END's, not the file's
            return text.rfind(";", 0, len(text) + len(_END) - len(statements[-1])) + 1
        # _END is inside an open parenthesis, so the last statement is one of the file's
        slices = parser.split(text, with_parser=False, only_slices=True)
    except parser.ParseError as exc:  # text ends inside a string or a comment: look before it
        index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        return _last_end(text[:index]) if 0 < index < len(text) else 0
    return text.rfind(";", 0, slices[-1].start) + 1 if slices else 0


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _first_token(text: str, start: int, end: int) -> int:
    """Where a statement's first word is, past any blank lines and comments before it."""
    while True:
        while start < end and text[start].isspace():
            start += 1
        if text.startswith("--", start):
            newline = text.find("\n", start)
            start = end if newline < 0 else newline + 1
        elif text.startswith("/*", start):
            close = text.find("*/", start)
            start = end if close < 0 else close + 2
        else:
            return start


def _statements(text: str, nodes: tuple) -> list[tuple[Statement, object]]:  # type: ignore[type-arg]
    found = []
    line, counted = 1, 0  # lines are counted on from the previous statement: linear in the file's size
    for raw in nodes:
        end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(text)
        start = _first_token(text, raw.stmt_location, end)
        line += text.count("\n", counted, start)
        counted = start
        found.append((Statement(start, text[start:end], line), raw.stmt))
    return found


def _copy_error(migration: Migration, line: int) -> BadInput:
    return BadInput(
        f"{migration.path}, line {line}: COPY ... FROM stdin with inline data is a psql feature; runner sends "
        "SQL to the server, which has no such data. Load the rows with INSERT, or COPY from a file on the server"
    )


def _refuse_psql_features(migration: Migration, text: str) -> None:
    """A file the parser rejects: name a psql feature if that is why; else the server will say."""
    copy = _COPY_FROM_STDIN.search(text)
    if copy:
        raise _copy_error(migration, _line(text, copy.start()))
    meta = _first_meta_command(text)
    if meta is not None:
        offset, command = meta
        raise BadInput(
            f"{migration.path}, line {_line(text, offset)}: {command} is a psql meta-command, not SQL; runner "
            "sends the file to the server, which cannot run it. Remove it (or keep such scripts for psql)"
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


def _wrapper(statements: list[tuple[Statement, object]]) -> tuple[list[Statement], Statement | None]:
    """The statements of a recognised wrapper, and the first transaction control that is not one."""
    from pglast import ast, enums

    kinds = enums.TransactionStmtKind
    control = [(i, s, n) for i, (s, n) in enumerate(statements) if isinstance(n, ast.TransactionStmt)]
    if not control:
        return [], None
    last_index = len(statements) - 1

    def opens(i: int, node: ast.TransactionStmt) -> bool:
        return i == 0 and node.kind in (kinds.TRANS_STMT_BEGIN, kinds.TRANS_STMT_START) and not node.options

    def closes(i: int, node: ast.TransactionStmt) -> bool:
        return i == last_index and node.kind == kinds.TRANS_STMT_COMMIT and not node.chain

    (i0, s0, n0), (i1, s1, n1) = control[0], control[-1]
    if len(control) == 2 and opens(i0, n0) and closes(i1, n1):
        return [s0, s1], None
    if len(control) == 1 and closes(i0, n0):
        return [s0], None
    odd = [s for i, s, n in control if not (opens(i, n) or closes(i, n))]
    return [], odd[0] if odd else s0  # else: a BEGIN whose COMMIT is missing or not last


def _blank(text: str, statements: list[Statement]) -> str:
    """Replace statements by spaces, keeping every newline, so lines and offsets stay the file's."""
    parts, done = [], 0
    for statement in statements:
        end = statement.start + len(statement.text)
        parts += [text[done : statement.start], re.sub(r"[^\n]", " ", text[statement.start : end])]
        done = end
    return "".join([*parts, text[done:]])


def _parse(migration: Migration, text: str) -> tuple[list[tuple[Statement, object]] | None, str]:
    """The statements of ``text``, or None and the parser's complaint (after ruling out psql features)."""
    from pglast import parse_sql

    try:
        return _statements(text, parse_sql(text)), ""
    except Exception as exc:  # pglast.parser.ParseError: (message, character offset)
        _refuse_psql_features(migration, text)
        message = str(exc.args[0]) if exc.args else str(exc)
        if len(exc.args) > 1 and isinstance(exc.args[1], int):
            message = f"line {_line(text, exc.args[1])}: {message.split(', at index')[0]}"
        return None, message


def _keyword(statement: Statement) -> str:
    return " ".join(statement.text.split()[:2]).rstrip(";")


def prepare(migration: Migration) -> Script:
    """Check one pending file and decide how it is sent; BadInput (nothing run) when it cannot be."""
    wanted = directives.read(migration)
    if wanted.no_transaction:
        return _no_transaction(migration, wanted)
    if not _suspect(migration.sql):
        return Script(migration, migration.sql, settings=wanted.settings, cuttable=True)
    text = migration.text()
    statements, _ = _parse(migration, text)
    if statements is None:  # a syntax error: the server reports it with its line, and nothing is kept
        return Script(migration, migration.sql, settings=wanted.settings)
    for statement, node in statements:
        what = _needs_no_transaction(node)
        if what:
            raise BadInput(
                f"{migration.path}, line {statement.line}: {what} cannot run inside a transaction, and this file "
                f"runs in one; {_NO_TRANSACTION_HINT}"
            )
        if _copy_from_stdin(node):
            raise _copy_error(migration, statement.line)
    wrapper, offending = _wrapper(statements)
    if offending is not None:
        raise BadInput(
            f"{migration.path}, line {offending.line}: {_keyword(offending)} in a file that runs in a transaction. "
            "runner commits each file together with its record, so the only transaction control allowed is a "
            "BEGIN; as the first statement with COMMIT; as the last. A file that manages its own transactions "
            f"must start with `-- {directives.PREFIX} no-transaction`"
        )
    if not wrapper:
        return Script(migration, migration.sql, settings=wanted.settings)
    body = _blank(text, wrapper).encode("utf-8")
    return Script(migration, body, settings=wanted.settings, wrapper_removed=True)


def _no_transaction(migration: Migration, wanted: directives.Directives) -> Script:
    text = migration.text()
    statements, problem = _parse(migration, text)
    if statements is None:
        raise BadInput(
            f"{migration.path}: cannot be split into statements ({problem}); a no-transaction file runs one "
            "statement at a time, so runner parses it first. Fix the SQL"
        )
    for statement, node in statements:
        if _copy_from_stdin(node):
            raise _copy_error(migration, statement.line)
    return Script(migration, migration.sql, no_transaction=True, settings=wanted.settings,
                  statements=tuple(s for s, _ in statements))  # fmt: skip
