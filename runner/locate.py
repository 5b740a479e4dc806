"""Placing a server error inside the file, as psql would: line, column and failing statement.

A whole file runs as one message, so the server reports an error position (when it has one)
as a character offset into that message, whose first part is the file. For errors without a
position (a duplicate key, a division by zero) the number of statements that completed
tells which statement failed; the real PostgreSQL parser (pglast) then says where that
statement starts. Parsing happens only here, on the failure path.
"""

from __future__ import annotations

from dataclasses import dataclass

# What the apply step puts between a file and its tracking INSERT. It closes a last
# statement that lacks a semicolon, and a trailing -- comment without a newline.
SEPARATOR = "\n;\n"


@dataclass(frozen=True)
class Location:
    line: int | None = None
    column: int | None = None
    statement_line: int | None = None
    after_file: bool = False  # the error came from the tracking INSERT sent after the file

    def describe(self) -> str:
        if self.line is not None and self.column is None:
            return f"at line {self.line}, where the file ends in the middle of a statement"
        if self.line is not None:
            return f"at line {self.line}, column {self.column}"
        if self.statement_line is not None:
            return f"in the statement at line {self.statement_line}"
        return ""


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def statement_offsets(text: str) -> list[int] | None:
    """Where each statement of ``text`` starts (character offsets), or None if pglast cannot parse it."""
    from pglast import parser

    try:
        return [s.start for s in parser.split(text, with_parser=True, only_slices=True)]
    except Exception:  # pglast raises its own ParseError, or others on parser versions it lacks
        return None


def locate(text: str, position: int | None, statement_index: int | None) -> Location:
    """``position`` is the server's 1-based character offset; ``statement_index`` counts from 0."""
    if position is not None:
        if position > len(text) + len(SEPARATOR):
            return Location(after_file=True)
        if position > len(text):  # the file ended in the middle of a statement
            return Location(text.rstrip("\n").count("\n") + 1)
        line, column = _line_col(text, position - 1)
        return Location(line, column)
    if statement_index is not None:
        offsets = statement_offsets(text)
        if offsets is not None:
            if statement_index >= len(offsets):
                return Location(after_file=True)
            return Location(statement_line=_line_col(text, offsets[statement_index])[0])
    return Location()


def unterminated(text: str) -> tuple[Location, str] | None:
    """A quoted string, quoted identifier or comment that the file opens and never closes.

    Sent with runner's own statements after it, such a file makes the server read those as
    part of the string and complain about them; pglast's scanner says where the file went wrong.
    """
    from pglast import parser

    try:
        parser.scan(text)
    except Exception as exc:  # pglast.parser.ParseError: (message, character offset)
        message = str(exc.args[0]) if exc.args else ""
        if message.startswith("unterminated") and len(exc.args) > 1 and isinstance(exc.args[1], int):
            return Location(*_line_col(text, exc.args[1])), message.split(" at or near ")[0]
    return None
