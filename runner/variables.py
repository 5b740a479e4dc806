"""psql's variables in migration files, substituted as ``psql -v name=value -f file.sql`` would.

So that one file serves many tenants or targets and still runs by hand with psql. The rules are
those of psql's own lexer (src/fe_utils/psqlscan.l):

- ``:name`` is the value as it is, ``:'name'`` the value as a string literal and ``:"name"`` as a
  quoted identifier, quoted as libpq quotes them (a value with a backslash becomes `` E'...'``,
  space included); ``:{?name}`` is TRUE or FALSE, whether the variable is set;
- a name is letters, digits, underscores and any non-ASCII character (psql's variable_char);
- nothing is a reference inside a quoted string (E'' ones too), a quoted identifier, a
  dollar-quoted body or a comment (``--`` and nested ``/* */``), nor in ``::`` (a cast) or ``:=``;
- the value of ``:name`` is read on as SQL: a reference in it is substituted too (but not the
  variable itself: psql skips a recursive one), and a quote it opens goes on after it;
- psql reads a file a line at a time, so a string continued on the next line (``E'a'`` then ``'b'``,
  one string to the server) is read as two.

Where psql leaves a reference to a variable without a value as it is, runner refuses the file
(NoValue), naming the line, before anything runs: a typo would otherwise reach the server. Array
slices are left alone as psql leaves them: ``a[1:2]``, since runner's variable names start with a
letter or an underscore (see check), and ``a[lo:hi]``, whose ``:hi`` right after the lower bound is
substituted only when a variable has that name. Strings are read with standard_conforming_strings
on (PostgreSQL's default since 9.1); psql reads a plain string as an E'' one when it is off.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from runner.errors import BadInput
from runner.files import FileView, windows

_LETTERS = string.ascii_letters + "_"


def _class(ascii_chars: str, non_ascii: bool = True) -> str:
    """A character class of ``ascii_chars`` and, with ``non_ascii``, of every character beyond ASCII, each of
    which psql counts as a letter (every byte from 0x80 is one). Written negated: a class that reaches
    U+10FFFF takes re milliseconds to compile, and psql's rules would take 40 ms."""
    if not non_ascii:
        return f"[{re.escape(ascii_chars)}]"
    return "[^" + re.escape("".join(c for c in map(chr, range(128)) if c not in ascii_chars)) + "]"


_START = _class(_LETTERS)  # what a variable name of runner's starts with
_CHAR = _class(_LETTERS + string.digits)  # psql's variable_char, also what a dollar quote's tag is made of
_WORD = f"{_START}{_class(_LETTERS + string.digits + '$')}*+"  # an identifier or key word
# Outside strings and comments, none of these begins a token that matters here.
_PLAIN = _class("".join(c for c in map(chr, range(128)) if c not in "'\"$:\\[]-/." + _LETTERS + string.digits), False)
NAME = re.compile(f"{_START}{_CHAR}*")
# A colon and a name start, maybe after a quote or `{?`: any file with a reference has one, once
# the casts are taken out (x::int; psql pairs colons from the left, so x:::a still refers to a).
_MAY_REFERENCE = re.compile(rb":(?:['\"]|\{\?)?[A-Za-z_\x80-\xff]")


class _Rules(NamedTuple):
    """psql's lexer rules, as far as references go; compiled once, when first needed (a run whose files have
    no reference, as most runs, never needs them, and they take a few milliseconds)."""

    initial: re.Pattern[str]  # outside strings and comments: up to the next token that matters, in a named group
    ends: dict[str, re.Pattern[str]]  # where a quoted string or identifier ends, by the state it is read in
    comment_marks: re.Pattern[str]
    bound_end: re.Pattern[str]  # what a slice's lower bound ends in: a[lo:hi], a[f(x):hi]


@functools.cache
def _rules() -> _Rules:
    # Identifiers, numbers and parameters are skipped whole, so that a `$` or a quote in or after
    # one is read as psql 15 reads it: a number with letters right after it is one token (1e5$$
    # too: "trailing junk" to the server), so is an identifier with `$` in it (a$b$), and 1e- is
    # one too (so 1e--x holds no comment).
    # The run of tokens is taken whole, never given back: (?=(?P<run>...))(?P=run) is what `(?:...)*+`
    # says, written so that Python before 3.11.3 reads it right (its possessive repeat of a group of
    # alternatives could fail to match at all).
    initial = rf"""(?=(?P<run>(?:
        {_PLAIN}++
      | --[^\n\r]*+ | -(?!-) | /(?!\*) | \\(?![;:])
      | (?![bBeEnNxX]'|[uU]&['"]){_WORD}
      | (?:[0-9]++(?:\.[0-9]*+)?|\.[0-9]++)(?:[eE][+-](?:[0-9]++(?:{_WORD})?+)?+|{_WORD})?+
      | \.
      | \$[0-9]++ | \$(?!(?:{_START}{_CHAR}*+)?\$)
      | :: | := | :(?!{_CHAR}|'{_CHAR}+'|"{_CHAR}+"|\{{\?{_CHAR}+\}})
    )*))(?P=run)
    (?:
        (?P<string>[eEbBxXnN]?'|[uU]&')
      | (?P<quoted>(?:[uU]&)?")
      | (?P<dollar>\$(?:{_START}{_CHAR}*+)?\$)
      | (?P<comment>/\*)
      | (?P<reference>:(?:{_CHAR}++|'{_CHAR}++'|"{_CHAR}++"|\{{\?{_CHAR}++\}}))
      | (?P<escaped>\\[;:])
      | (?P<open>\[) | (?P<close>\])
    )"""
    ends = {
        "xq": re.compile(r"(?:[^']|'')*+'"),
        "xe": re.compile(r"(?:[^'\\]|''|\\.)*+'", re.DOTALL),
        "xb": re.compile(r"[^']*+'"),  # B'' and X'': no escapes, no doubled quotes
        "xd": re.compile(r'(?:[^"]|"")*+"'),
    }
    bound_end = _class(_LETTERS + string.digits + '$)]"')
    return _Rules(re.compile(initial, re.VERBOSE), ends, re.compile(r"/\*|\*/"), re.compile(bound_end))


_STRING_STATES = {"e": "xe", "E": "xe", "b": "xb", "B": "xb", "x": "xb", "X": "xb"}


class Kind(StrEnum):
    """How a reference is written, and what replaces it (each value is the form, for a variable ``name``)."""

    PLAIN = ":name"  # the value, read on as SQL
    LITERAL = ":'name'"  # the value as a string literal
    IDENTIFIER = ':"name"'  # the value as a quoted identifier
    TEST = ":{?name}"  # TRUE or FALSE: whether the variable is set


_KINDS = {"'": Kind.LITERAL, '"': Kind.IDENTIFIER, "{": Kind.TEST}


@dataclass(frozen=True)
class Reference:
    kind: Kind
    name: str
    start: int  # character offset of its colon in the file
    line: int
    slice_bound: bool = False  # `hi` of a[lo:hi]: left as it is when no variable has the name, as psql leaves it

    @property
    def written(self) -> str:
        return self.kind.value.replace("name", self.name)


class NoValue(Exception):
    """A file refers to a variable that has no value; ``hint`` says more when the reference may be meant otherwise."""

    def __init__(self, reference: Reference, hint: str = "") -> None:
        super().__init__(reference.written)
        self.reference, self.hint = reference, hint


class Expanded(NamedTuple):
    text: str
    used: dict[str, str]  # the values the text's references took, by name


def may_reference(sql: bytes | FileView) -> bool:
    """Whether a file's bytes may hold a reference: False for nearly every file, at the cost of a byte count."""
    if isinstance(sql, bytes):
        return _may_reference(sql)
    tail = b""
    for _, data in windows(sql):
        if _may_reference(tail + data):
            return True
        tail = data[len(data.rstrip(b":")) - 3 :]  # a reference's start, with the colons before it
    return False


def _may_reference(data: bytes) -> bool:
    if b":" not in data:  # most files
        return False
    if data.count(b":") == 2 * data.count(b"::"):  # only casts, as many others
        return False
    return _MAY_REFERENCE.search(data.replace(b"::", b"")) is not None


def literal(value: str) -> str:
    """``:'name'``: quotes doubled, as libpq's PQescapeLiteral; with a backslash, an E'' string with backslashes
    doubled too, which reads the same whatever standard_conforming_strings is, after a space (psql's)."""
    if "\\" in value:
        return " E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


def identifier(value: str) -> str:
    """``:"name"``: double quotes doubled, as libpq's PQescapeIdentifier."""
    return '"' + value.replace('"', '""') + '"'


def references(text: str) -> list[Reference]:
    """The references a file's own text makes, in order (none from values, which this does not read)."""
    lexer = _Lexer(None, text)
    lexer.read(text)
    return lexer.found


def placeholders(text: str) -> str:
    """The file with each reference replaced by a quoted form of itself (``:x`` by ``":x"``, ``:'x'`` by
    ``':x'``): what the code checksum is taken over, the same for every value, and SQL pglast can
    parse wherever the value is a name or an expression."""
    return _Lexer(None, text).read(text)


def expand(text: str, values: Mapping[str, str]) -> Expanded:
    """``text`` with its references substituted as psql substitutes them; NoValue for the first that has no value."""
    lexer = _Lexer(values, text)
    return Expanded(lexer.read(text), lexer.used)


def substitute(text: str, values: Mapping[str, str]) -> str:
    return expand(text, values).text


def check(values: Mapping[str, object], where: str) -> dict[str, str]:
    """``values`` as runner takes them, each named in messages as ``where NAME``; BadInput for the first that is
    not one. A name starts with a letter or an underscore (psql's ``:1`` would stand for the slices of ``a[1:2]``);
    a number or boolean is written as TOML writes it (3, 1.5, true)."""
    checked = {}
    for name, value in values.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise BadInput(f"{where} {name!r}: not a variable name; a name is letters, digits and underscores, "
                           "starting with a letter or an underscore")  # fmt: skip
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            raise BadInput(f"{where} {name}: the value must be a string (or a number), not {type(value).__name__}")
        if "\x00" in value:
            raise BadInput(f"{where} {name}: the value holds a NUL character, which PostgreSQL cannot take")
        checked[name] = value
    return checked


class _Lexer:
    """psql's lexer state, kept from one piece of text to the next: the value of a ``:name`` is read in the
    state the text before it left, and the text after it in the state the value leaves (psql pushes the
    value as a buffer of its own, so a token never spans the two)."""

    def __init__(self, values: Mapping[str, str] | None, file: str) -> None:
        self.rules = _rules()
        self.values = values  # None: substitute nothing, replace each reference by a placeholder
        self.file = file
        self.state = "initial"
        self.depth = 0  # of nested /* */ comments, beyond the first
        self.tag = ""  # of the dollar-quoted body being read
        self.brackets = 0  # [ ] open around the current position
        self.found: list[Reference] = []
        self.used: dict[str, str] = {}
        self._counted = (0, 1)  # (offset, its line): lines are counted on from the last reference

    def read(self, text: str, sources: tuple[str, ...] = (), at: int | None = None) -> str:
        """``text`` with its references replaced. ``sources`` are the variables whose values are being read;
        ``at`` is where the reference being expanded is in the file (None: ``text`` is the file)."""
        out, done, pos = [], 0, 0
        while pos < len(text):
            if self.state == "initial":
                match = self.rules.initial.match(text, pos)
                if match is None:
                    break
                pos, token = match.end(), match.lastgroup or ""
                start = match.start(token)
                if token == "reference":
                    replaced = self._replace(text, start, match[token], sources, at)
                    if replaced is not None:
                        out += [text[done:start], replaced]
                        done = pos
                elif token == "escaped":  # psql sends \: and \; as : and ;
                    out += [text[done:start], match[token][1]]
                    done = pos
                else:
                    self._enter(token, match[token])
            elif self.state == "xc":
                mark = self.rules.comment_marks.search(text, pos)
                pos = len(text) if mark is None else mark.end()
                if mark is not None and mark[0] == "/*":
                    self.depth += 1
                elif mark is not None:
                    self.state, self.depth = ("xc", self.depth - 1) if self.depth else ("initial", 0)
            elif self.state == "xdolq":
                found = text.find(self.tag, pos)
                pos, self.state = (len(text), "xdolq") if found < 0 else (found + len(self.tag), "initial")
            else:
                end = self.rules.ends[self.state].match(text, pos)
                if end is None:
                    break  # the string goes on in the next text, if any
                pos, self.state = end.end(), "initial"
        out.append(text[done:])
        return "".join(out)

    def _enter(self, token: str, text: str) -> None:
        if token == "string":
            self.state = _STRING_STATES.get(text[0], "xq")
        elif token == "quoted":
            self.state = "xd"
        elif token == "dollar":
            self.state, self.tag = "xdolq", text
        elif token == "comment":
            self.state, self.depth = "xc", 0
        elif token == "open":
            self.brackets += 1
        elif token == "close":
            self.brackets = max(0, self.brackets - 1)

    def _replace(self, text: str, start: int, written: str, sources: tuple[str, ...], at: int | None) -> str | None:
        """What replaces the reference ``written`` at ``start`` of ``text``; None: it stays as it is."""
        kind = _KINDS.get(written[1], Kind.PLAIN)
        name = written[1:] if kind is Kind.PLAIN else written[3:-1] if kind is Kind.TEST else written[2:-1]
        if name[0] in "0123456789":  # no variable of runner's has such a name
            return None
        offset = start if at is None else at
        bound = kind is Kind.PLAIN and self.brackets > 0 and start > 0 and self.rules.bound_end.match(text[start - 1])
        reference = Reference(kind, name, offset, self._line(offset), bool(bound))
        if self.values is None:
            self.found.append(reference)
            if bound:
                return None
            return "'" + written.replace("'", "''") + "'" if kind is Kind.LITERAL else identifier(written)
        value = self.values.get(name)
        if value is not None:
            self.used[name] = value
        if kind is Kind.TEST:
            return "FALSE" if value is None else "TRUE"
        if value is None:
            if bound:
                return None
            hint = " (for an array slice's bound, put a space after the colon: a[lo: hi])" if self.brackets else ""
            raise NoValue(reference, hint)
        if kind is Kind.LITERAL:
            return literal(value)
        if kind is Kind.IDENTIFIER:
            return identifier(value)
        if name in sources:  # psql: "skipping recursive expansion"
            return None
        return self.read(value, (*sources, name), offset)

    def _line(self, offset: int) -> int:
        counted, line = self._counted if offset >= self._counted[0] else (0, 1)
        line += self.file.count("\n", counted, offset)
        self._counted = (offset, line)
        return line
