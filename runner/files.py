"""Finding migration files in a folder and fingerprinting what they contain.

Everything here happens before the database is touched, so a bad file name, a duplicate
version or a file that is not UTF-8 stops the run while nothing has been applied.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from runner.errors import BadInput

NAME_PATTERN = re.compile(r"(?P<version>[0-9]+)[_-](?P<description>.+)\.sql", re.DOTALL)
_CONTROL = re.compile("[\x00-\x1f]")
NAME_RULE = "<version>_<description>.sql, for example 0015_add_due_date.sql"
# The first line of a schema file (runner.schema_file), which may sit among the migrations (sql/schema.sql).
SCHEMA_FILE_MARKER = "-- Schema written by runner dump"
MAX_VERSION = 2**63 - 1  # the tracking table stores versions as bigint
UTF8_BOM = b"\xef\xbb\xbf"
CHECKSUM_ALGORITHM = "sha256"
CODE_CHECKSUM_LIMIT = 1_000_000  # bytes: a bigger file is not parsed, and any edit to it counts as an edit
# A bigger file is never held whole: it is read a window at a time (FileView), so a 250 MB data
# load costs a few windows of memory, not the file (and not the several times it takes to parse it).
HELD_LIMIT = CODE_CHECKSUM_LIMIT
WINDOW = 1 << 20
_FIRST_READ = 1 << 16
# The keys of source positions in pglast's JSON tree. A key, never a value: a quote inside a
# JSON string is escaped. The comma goes too, so an omitted zero position leaves the same text.
# A pattern that re compiles when first used: a run that parses nothing never needs it.
_POSITIONS = (
    r'"(?:location|stmt_location|stmt_len|arg_location|name_location|payload_location|conninfo_location)":-?\d+,?'
)


class FileChanged(BadInput):
    """A big file that changed, or went away, after runner read it; ``how`` says what was seen."""

    def __init__(self, path: str, how: str) -> None:
        super().__init__(f"{path} changed while runner was using it ({how}); run runner again")
        self.path, self.how = path, how


class FileView:
    """A big file, read a window at a time with os.pread and never held whole.

    It offers the little of ``bytes`` that big files need (len, slices, and count/rfind of one
    byte), so the code that places an error in a file works on either. Each use reads the file
    again: the apply step checks the checksum of what it sends, so a file edited meanwhile is
    rolled back instead of run, and a file that got shorter or went away is a FileChanged here.
    """

    __slots__ = ("path", "size")

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, where: slice) -> bytes:
        start, stop, _ = where.indices(self.size)
        return b"".join(data for _, data in self.windows(start, stop, max(stop - start, 1)))

    def windows(self, start: int = 0, stop: int | None = None, size: int = WINDOW) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) of each window of ``size`` bytes from ``start`` to ``stop``, in order."""
        stop = self.size if stop is None else min(stop, self.size)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise FileChanged(self.path, exc.strerror or "cannot open it") from None
        try:
            while start < stop:
                data = os.pread(fd, min(size, stop - start), start)
                if not data:
                    raise FileChanged(self.path, "it got shorter")
                yield start, data
                start += len(data)
        finally:
            os.close(fd)

    def count(self, byte: bytes, start: int = 0, stop: int | None = None) -> int:
        return sum(data.count(byte) for _, data in self.windows(start, stop))

    def rfind(self, byte: bytes, start: int = 0, stop: int | None = None) -> int:
        stop = self.size if stop is None else min(stop, self.size)
        while stop > start:
            low = max(start, stop - WINDOW)
            found = self[low:stop].rfind(byte)
            if found >= 0:
                return low + found
            stop = low
        return -1


def windows(sql: bytes | FileView, start: int = 0, stop: int | None = None,
            size: int = WINDOW) -> Iterator[tuple[int, bytes]]:  # fmt: skip
    """(offset, bytes) of each window of a file's bytes, held or not, from ``start`` to ``stop``."""
    if isinstance(sql, FileView):
        yield from sql.windows(start, stop, size)
        return
    stop = len(sql) if stop is None else min(stop, len(sql))
    for offset in range(start, stop, size):
        yield offset, sql[offset : min(offset + size, stop)]


@dataclass(frozen=True)
class Migration:
    """One file, read once: the bytes we checksum are the bytes we run.

    A file over HELD_LIMIT is a FileView instead of bytes: read a window at a time whenever it
    is used, and its checksum checked again against what is sent (see preflight.Script.parts).
    """

    version: int | None  # None for a repeatable file (see runner.repeatable), named repeatable/<file>
    name: str
    path: str  # as found, for messages: a pathlib.Path per file costs more than reading it
    sql: bytes | FileView
    checksum: str
    down: Migration | None = None  # its down file (runner.down), which undoes it; its checksum is recorded with it

    @property
    def down_checksum(self) -> str | None:
        return None if self.down is None else self.down.checksum

    def text(self) -> str:
        """The whole file as text: for a big file, this reads all of it into memory."""
        return self.sql[0 : len(self.sql)].decode("utf-8")

    @cached_property
    def code_checksum(self) -> str | None:
        """A checksum of the SQL as PostgreSQL parses it (pglast's parse tree): comments and layout left out.

        Two versions of a file with the same code checksum parse to the same statements, so they
        differ only in comments, whitespace or the case of keywords, which is what lets verify call
        such an edit harmless. The tree is read as JSON with every source position dropped: a
        position is the only thing layout changes. None for a big file or one pglast cannot parse.
        A file with psql variables is parsed with a placeholder for each reference, so it has the
        same code checksum whatever their values (runner.variables.placeholders).
        Computed once, when first asked for; migrate asks early, on another thread (see api).
        """
        if len(self.sql) > CODE_CHECKSUM_LIMIT or not isinstance(self.sql, bytes):
            return None
        from pglast import parser

        from runner import variables

        text = self.text()
        try:
            tree = parser.parse_sql_json(variables.placeholders(text) if variables.may_reference(self.sql) else text)
        except Exception:  # pglast.parser.ParseError: newer syntax, or an error the server will report
            return None
        statements = tree.partition('"stmts":')[2]  # after the grammar's version number
        return _sha256(re.sub(_POSITIONS, "", statements).encode())


def normalise(raw: bytes) -> bytes:
    """Drop a UTF-8 BOM and turn CRLF/CR into LF, so a Windows checkout or an editor is not an edit."""
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return raw


def _sha256(sql: bytes | FileView) -> str:
    if isinstance(sql, bytes):
        return "sha256:" + hashlib.sha256(sql).hexdigest()
    digest = hashlib.sha256()
    for _, data in sql.windows():
        digest.update(data)
    return "sha256:" + digest.hexdigest()


# The recorded checksum names its algorithm, so a future change of algorithm compares old
# rows with the algorithm they were written with instead of reporting every file as edited.
_CHECKSUMS = {"sha256": _sha256}


def checksum(sql: bytes | FileView) -> str:
    return _CHECKSUMS[CHECKSUM_ALGORITHM](sql)


def checksum_matches(recorded: str, migration: Migration) -> bool:
    algorithm = recorded.partition(":")[0]
    if algorithm == CHECKSUM_ALGORITHM:
        return recorded == migration.checksum
    compute = _CHECKSUMS.get(algorithm)
    return compute is not None and compute(migration.sql) == recorded


def _line_of(raw: bytes | FileView, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _looks_like_utf16(raw: bytes) -> bool:
    """Every other byte zero: ASCII text saved as UTF-16 (a NUL byte in a UTF-8 file is a lone one)."""
    head = raw[:4096]
    zeros = sorted([head[0::2].count(0), head[1::2].count(0)])  # big- or little-endian
    # Zeros in half of the bytes at even or at odd offsets, and few in the other half: a file of
    # nothing but NUL bytes is not text of any kind.
    return len(head) >= 4 and zeros[1] >= len(head) // 4 and zeros[0] < len(head) // 8


def _read_rest(fd: int, size: int, head: bytes) -> bytes:
    """The whole file, of which the first read gave ``head``, in one more read call."""
    data = head + os.read(fd, max(size + 1 - len(head), 1))  # a byte more than the size: shorter is the end
    while len(data) > size and (more := os.read(fd, 1 << 20)):  # it grew while being read
        data += more
    return data


def _incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` begin a UTF-8 character that the next window completes."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # the character's first byte says how long it is
            length = 1 if byte < 0x80 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return back if length > back else 0
    return 0


def _check(path: str, raw: bytes | FileView, data: bytes, offset: int) -> None:
    """Refuse ``data``, found at ``offset`` in the file ``raw``, if it is not UTF-8 or holds a NUL byte."""
    if offset == 0 and data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BadInput(f"{path}: the file is UTF-16; save it as UTF-8")
    try:
        if not data.isascii():  # ASCII is UTF-8; checked without decoding a copy of a big file
            data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{path}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at line {_line_of(raw, offset + exc.start)}); "
            "save the file as UTF-8"
        ) from None
    nul = data.find(0)
    if nul >= 0 and _looks_like_utf16(raw[:4096]):
        raise BadInput(f"{path}: the file looks like UTF-16 without a byte-order mark; save it as UTF-8")
    if nul >= 0:
        raise BadInput(f"{path}: contains a NUL byte at line {_line_of(raw, offset + nul)}; remove it")


def _read_big(path: str, fd: int) -> tuple[FileView, str] | None:
    """Check a big file a window at a time, and checksum it; None when it must be normalised first.

    A NUL byte or a byte that is not UTF-8 stops the reading where it is found, so a file of
    2 GB of zeros is refused after one window. A BOM or a CR means rewriting the file (see
    normalise): such a file, rare when big, is read whole instead.
    """
    digest, offset, carry = hashlib.sha256(), 0, b""
    view = FileView(path, os.fstat(fd).st_size)
    while window := os.pread(fd, WINDOW, offset):
        if (offset == 0 and window.startswith(UTF8_BOM)) or b"\r" in window:
            return None
        data = carry + window  # a character cut by the window's end is checked whole, in the next one
        keep = _incomplete_tail(data)
        _check(path, view, data[: len(data) - keep], offset - len(carry))
        carry = data[len(data) - keep :]
        digest.update(window)
        offset += len(window)
    if carry:  # the file ends in the middle of a character
        _check(path, view, carry, offset - len(carry))
    return FileView(path, offset), "sha256:" + digest.hexdigest()


def read_migration(path: str | Path, version: int | None, name: str | None = None) -> Migration:
    """Read and validate one file; raise BadInput naming the file and the place of the problem."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            # One read call is the whole of most files: a read of a file that returns less than it asked
            # for has met the end (a third of what pathlib's read_bytes costs, and no fstat).
            first = min(_FIRST_READ, HELD_LIMIT + 1)
            raw, big = os.read(fd, first), None
            if len(raw) == first:
                size = os.fstat(fd).st_size
                big = _read_big(path, fd) if size > HELD_LIMIT else None
                raw = _read_rest(fd, size, raw) if big is None else b""
        finally:
            os.close(fd)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from None
    if big is not None:
        return Migration(version, name or os.path.basename(path), path, *big)
    _check(path, raw, raw, 0)
    sql = normalise(raw)
    return Migration(version, name or os.path.basename(path), path, sql, checksum(sql))


def parse_name(name: str) -> int | None:
    """The version of a migration file name, or None when the name breaks the rule."""
    match = NAME_PATTERN.fullmatch(name)
    if match is None or not match["description"].strip():
        return None
    return int(match["version"])


def _check_entry(entry: os.DirEntry[str], inside: Path) -> None:
    """A migration is a regular file of the folder: a link may point only to a file in the folder too."""
    try:
        entry.name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(entry.name).decode("ascii", "backslashreplace")
        raise BadInput(f"{inside}: the file name '{shown}' is not valid UTF-8; rename the file") from None
    if _CONTROL.search(entry.name):
        shown = entry.name.encode("unicode_escape").decode("ascii")
        raise BadInput(f"{inside}: the file name '{shown}' contains a control character (a newline?); rename the file")
    if entry.is_symlink():
        try:
            target = Path(entry.path).resolve(strict=False)
        except (OSError, RuntimeError):  # a link that leads back to itself
            raise BadInput(f"{entry.path}: a symbolic link that loops back on itself; fix or remove it") from None
        if not target.exists():
            raise BadInput(f"{entry.path}: a symbolic link to {target}, which does not exist; fix or remove the link")
        if not target.is_relative_to(inside):
            raise BadInput(
                f"{entry.path}: a symbolic link to {target}, outside the migrations folder; "
                "copy the file into the folder instead, so what runs is what the folder holds"
            )
    if entry.is_dir():
        raise BadInput(f"{entry.path}: a folder named like a migration file; rename it or move it out of the folder")
    if not entry.is_file():
        raise BadInput(f"{entry.path}: not a regular file; migrations must be plain .sql files")


def sql_entries(directory: Path, rule: str) -> list[os.DirEntry[str]]:
    """The ``*.sql`` files directly in ``directory``, in name order, each checked by _check_entry.

    Other files and sub-folders are ignored, and so are hidden files (editor lock and swap files
    start with a dot). ``rule`` is the naming rule a file ending in ``.SQL`` is told about.
    """
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise BadInput(f"cannot list {directory} ({exc.strerror}); check its permissions") from None
    inside = directory.resolve()
    found = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.lower().endswith(".sql"):
            continue
        _check_entry(entry, inside)
        if not entry.name.endswith(".sql"):
            raise BadInput(f"{entry.path}: rename it to end in lower-case .sql ({rule})")
        found.append(entry)
    return found


def _schema_file(path: str) -> bool:
    """Whether the file is a schema file that runner dump wrote: it is no migration, and stays beside them."""
    try:
        with open(path, "rb") as file:
            return file.read(len(SCHEMA_FILE_MARKER)) == SCHEMA_FILE_MARKER.encode()
    except OSError:
        return False


def discover(directory: Path) -> list[Migration]:
    """All migrations in ``directory``, ordered by version (see sql_entries for which files count).

    A folder, a broken link or a link leading outside the folder that is named ``*.sql`` is an error. A schema
    file (``sql/schema.sql``, see runner.schema_file) is no migration and is left out.
    """
    try:
        is_dir = directory.is_dir()
    except OSError as exc:  # a name too long, a folder on the way this user cannot enter
        raise BadInput(f"migrations folder {directory}: {exc.strerror}; check --dir and its permissions") from None
    if not is_dir:
        problem = "is not a folder" if directory.exists() else "does not exist"
        raise BadInput(f"migrations folder {directory} {problem}; create it or pass --dir")
    found: dict[int, os.DirEntry[str]] = {}
    for entry in sql_entries(directory, NAME_RULE):
        version = parse_name(entry.name)
        if version is None and _schema_file(entry.path):
            continue
        if version is None:
            raise BadInput(f"{entry.path}: not a migration file name; expected {NAME_RULE}")
        if version > MAX_VERSION:
            raise BadInput(f"{entry.path}: version {version} is larger than {MAX_VERSION}; use a shorter number")
        if version in found:
            raise BadInput(f"{found[version].path} and {entry.path} both have version {version}; renumber one of them")
        found[version] = entry
    return [read_migration(found[v].path, v, found[v].name) for v in sorted(found)]
