"""Where a big file ends its statements, found a window at a time, without parsing the file whole.

PostgreSQL's scanner (pglast's split without the parser, C code) finds the `;` that end
statements in a window of about a megabyte, so a file of any size costs a window of memory.
Two things make the scanner alone see other statement ends than the server:

- a ``BEGIN ATOMIC`` body holds `;`: its pieces are joined back the way psql joins them
  (counting BEGIN, CASE and END inside CREATE FUNCTION or PROCEDURE), so a file is cut where
  ``psql -f`` would send a statement;
- with standard_conforming_strings off, a backslash before a quote in a plain string escapes
  it, and the string goes on where the scanner saw it end: ESCAPED_QUOTE finds such places.
  A session with the setting off is refused such a file (engine.refuse_read_otherwise), and a
  file that may turn it off itself is not cut after the first one (preflight.Script.parts).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from runner.files import WINDOW, FileView

# Added after a piece of a file to split it: a statement of its own, or the end of the piece's last one.
# Its backslashes tell it from the file's statements (no SQL ends that way), and it holds no quote, so
# a string or comment the piece leaves open stays open: the scanner then says where it began.
_END = "\nSELECT \\runner\\"
_END_MARK = "\\runner\\"
# An odd run of backslashes before a quote: with standard_conforming_strings off, the quote is escaped.
ESCAPED_QUOTE = re.compile(r"(?<!\\)(?:\\\\)*\\'")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_GAP = re.compile(r"[\s;]*")
_BLANK_OR_SEMICOLON = " \t\n\r\f\v;"
_ATOMIC_WORDS = re.compile(r"\b(?:begin|case|end)\b", re.IGNORECASE)


def byte_offset(text: str, chars: int) -> int:
    """Where character ``chars`` of ``text`` is, in bytes (cheap for ASCII text, the usual case)."""
    return chars if text.isascii() else len(text[:chars].encode("utf-8"))


def skip_blank(text: str, start: int = 0, end: int | None = None) -> int:
    """Where the first word after ``start`` is, past blanks and comments (nested /* */ too)."""
    end = len(text) if end is None else end
    while start < end:
        if text[start].isspace():
            start += 1
        elif text.startswith("--", start):
            newline = text.find("\n", start, end)
            start = end if newline < 0 else newline + 1
        elif text.startswith("/*", start):
            depth, start = 1, start + 2
            while depth and start < end:
                opening, closing = text.find("/*", start, end), text.find("*/", start, end)
                if closing < 0:
                    return end
                if 0 <= opening < closing:
                    depth, start = depth + 1, opening + 2
                else:
                    depth, start = depth - 1, closing + 2
        else:
            return start
    return end


def head(statement: str) -> str:
    """The first word of a statement, lower-cased ("" when it starts with something else)."""
    match = _WORD.match(statement, skip_blank(statement))
    return match[0].lower() if match else ""


def last_end(text: str) -> int:
    """Just after the last `;` of ``text`` that ends a statement, found by PostgreSQL's scanner; 0 if none.

    ``text`` starts at a statement and may end anywhere, even inside a string or a comment.
    With _END added, its last statement runs to the end, so its length says where it starts,
    and the `;` before is the one: pglast's slices would say it too, but cost twice as much.
    """
    from pglast import parser

    try:
        statements = parser.split(text + _END, with_parser=False)
        if statements and statements[-1].endswith(_END_MARK):
            return text.rfind(";", 0, len(text) + len(_END) - len(statements[-1])) + 1
        # _END is inside an open parenthesis, so the last statement is one of the file's
        slices = parser.split(text, with_parser=False, only_slices=True)
    except parser.ParseError as exc:  # text ends inside a string or a comment: look before it
        index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        return last_end(text[:index]) if 0 < index < len(text) else 0
    return text.rfind(";", 0, slices[-1].start) + 1 if slices else 0


def _last_semicolon(window: bytes) -> int:
    """Just after the last `;` of ``window``, preferring one that ends a line: that one most often
    ends a statement, where a `;` in data or comments need not, and the scanner is spared a retry."""
    end = window.rfind(b";\n") + 1
    return end if end > len(window) // 2 else window.rfind(b";") + 1


def likely_start(sql: bytes | FileView, offset: int) -> int | None:
    """Just after the first `;` ending a line from ``offset`` on: where a statement most likely starts."""
    found = sql[offset : offset + WINDOW].find(b";\n")
    return None if found < 0 else offset + found + 2


def cuts(sql: bytes | FileView, start: int, stop: int, limit: int) -> Iterator[int]:
    """Where ``sql[start:stop]`` can be cut into parts of about ``limit`` bytes: just after a `;` ending a statement.

    For a file without BEGIN and without a backslash, where PostgreSQL's scanner alone finds the
    statement ends the server finds (see the module's docstring); others are cut by walk. A window
    at a time, ending at a `;`, so the whole file is never read or decoded at once.
    """
    size = limit
    while stop - start > limit:
        window = sql[start : min(start + size, stop)]
        end = _last_semicolon(window)
        text = window[:end].decode("utf-8")
        cut = last_end(text)
        if cut:
            start += end - len(text[cut:].encode("utf-8"))
            yield start
            size = limit
        elif start + size >= stop:
            break  # no statement ends in the rest: it is one part
        else:
            size *= 2  # a statement longer than the window


@dataclass
class Window:
    """Whole statements of a file, from a statement start to just after a statement's `;` (or the file's end)."""

    start: int  # byte offset in the file
    line: int  # the line of the file ``start`` is on
    text: str
    lower: bytes  # the window's bytes with ASCII letters lower-cased, as PostgreSQL folds unquoted names
    statements: list[tuple[int, str]]  # (character offset in text, statement without its `;`), in order
    cut: int  # byte offset in the file just after ``text``: where the next part can start
    unfinished: int | None = None  # where a statement, string or comment starts that does not end in text
    _counted: tuple[int, int] = (0, 0)  # (offset, lines before it in text): counting goes on from there

    def line_at(self, offset: int) -> int:
        """The line of the file that character ``offset`` of ``text`` is on: cheapest asked in increasing order."""
        counted, lines = self._counted if offset >= self._counted[0] else (0, 0)
        lines += self.text.count("\n", counted, offset)
        self._counted = (offset, lines)
        return self.line + lines


def walk(sql: bytes | FileView, start: int, stop: int, limit: int, line: int = 1) -> Iterator[Window]:
    """The statements of ``sql[start:stop]``, a window of about ``limit`` bytes at a time, BEGIN ATOMIC bodies whole.

    ``start`` is where a statement starts, on line ``line``. The last window runs to ``stop``, and
    says where what does not end there starts (Window.unfinished).
    """
    size = limit
    while start < stop:
        data = sql[start : min(start + size, stop)]
        if start + size >= stop:  # the rest
            text, lower = data.decode("utf-8"), data.lower()
            statements, open_body = _joined(text, _split(text), b"atomic" in lower)
            end = statements[-1][0] + len(statements[-1][1]) if statements else 0
            rest = _unfinished(text[end:])
            unfinished = statements[-1][0] if open_body else None if rest is None else end + rest
            yield Window(start, line, text, lower, statements, stop, unfinished)
            return
        end = _last_semicolon(data)
        text, lower = data[:end].decode("utf-8"), data[:end].lower()
        statements, cut = _whole(text, b"atomic" in lower)
        if not statements:
            size *= 2  # a statement longer than the window
            continue
        cut_bytes = end - len(text[cut:].encode("utf-8"))
        window = Window(start, line, text[:cut], lower[:cut_bytes], statements, start + cut_bytes)
        yield window
        line, start, size = line + window.text.count("\n"), window.cut, limit


def _unfinished(text: str) -> int | None:
    """Where ``text`` holds something else than `;`, blanks and whole comments: part of a statement."""
    from pglast import parser

    if not text.strip(_BLANK_OR_SEMICOLON):
        return None
    try:
        tokens = parser.scan(text)
    except parser.ParseError as exc:  # a string or comment left open, from there
        return exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
    return next((t.start for t in tokens if t.name not in ("ASCII_59", "SQL_COMMENT", "C_COMMENT")), None)


def _split(text: str) -> list[tuple[int, str]]:
    """The statements of ``text`` by PostgreSQL's scanner, with where each starts.

    Those before a string or comment that ``text`` leaves open, when it does: what follows is not
    a statement the scanner can tell, and the server will say why.
    """
    from pglast import parser

    try:
        found = parser.split(text, with_parser=False)
    except parser.ParseError as exc:
        index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        return _split(text[:index]) if 0 < index < len(text) else []
    return _placed(text, found)


def _placed(text: str, found: tuple[str, ...] | list[str]) -> list[tuple[int, str]]:
    """Each statement with its offset: between two of them lie only `;` and blanks (comments belong to
    the statement after them), so the next one starts past those, or find says where."""
    placed, position = [], 0
    for statement in found:
        position = _GAP.match(text, position).end()  # type: ignore[union-attr]
        if not text.startswith(statement, position):
            position = text.find(statement, position)
        placed.append((position, statement))
        position += len(statement)
    return placed


def _whole(text: str, atomic: bool) -> tuple[list[tuple[int, str]], int]:
    """The statements ``text`` ends, and the offset just after the `;` of the last one (0: none ends).

    ``atomic``: ``text`` has the word, so it may hold BEGIN ATOMIC bodies.
    """
    from pglast import parser

    try:
        found = list(parser.split(text + _END, with_parser=False))
    except parser.ParseError as exc:  # text ends inside a string or a comment: look before it
        index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        return _whole(text[:index], atomic) if 0 < index < len(text) else ([], 0)
    if found and found[-1].endswith(_END_MARK):
        found.pop()  # _END and what was left of text before it
    # else _END fell into an open parenthesis, and the scanner dropped the statement it is in
    statements, open_body = _joined(text, _placed(text, found), atomic)
    if open_body:
        statements.pop()  # a BEGIN ATOMIC body that goes on after this text
    if not statements:
        return [], 0
    position, statement = statements[-1]
    return statements, text.index(";", position + len(statement)) + 1


def _joined(text: str, statements: list[tuple[int, str]], atomic: bool) -> tuple[list[tuple[int, str]], bool]:
    """The scanner's statements with each BEGIN ATOMIC body joined into its CREATE, as psql joins them;
    and whether the last one's body is still open at the end of ``text``."""
    if not atomic:
        return statements, False
    joined, i, depth = [], 0, 0
    while i < len(statements):
        position, statement = statements[i]
        depth = _routine_depth(statement)
        j = i
        while depth > 0 and j + 1 < len(statements):
            j += 1
            depth = _depth(statements[j][1], depth)
        end = statements[j][0] + len(statements[j][1])
        joined.append((position, text[position:end]))
        i = j + 1
    return joined, depth > 0


def _routine_depth(statement: str) -> int:
    """How many BEGIN (and CASE within them) a CREATE FUNCTION or PROCEDURE leaves open, psql's way."""
    from pglast import parser

    if head(statement) != "create" or "atomic" not in statement.lower():
        return 0
    words = [t.name for t in parser.scan(statement) if t.name == "IDENT" or t.kind != "NO_KEYWORD"][:4]
    if words[1:2] not in (["FUNCTION"], ["PROCEDURE"]) and words[1:4] not in (
        ["OR", "REPLACE", "FUNCTION"],
        ["OR", "REPLACE", "PROCEDURE"],
    ):
        return 0
    return _depth(statement, 0)


def _depth(statement: str, depth: int) -> int:
    """``depth`` after the BEGIN, CASE and END of ``statement`` outside parentheses (psql's psqlscan.l)."""
    from pglast import parser

    if not _ATOMIC_WORDS.search(statement):
        return depth
    parentheses = 0
    for token in parser.scan(statement):
        if token.name == "ASCII_40":
            parentheses += 1
        elif token.name == "ASCII_41":
            parentheses -= 1
        elif parentheses == 0:
            if token.name == "BEGIN_P":
                depth += 1
            elif token.name == "CASE" and depth >= 1:
                depth += 1
            elif token.name == "END_P" and depth > 0:
                depth -= 1
    return depth
