"""Reading a member register export (``maild members import``, docs/coming.md#member-register). Pure:
bytes in, rows and problems out.

Finnish register systems export CSV: ``;``-separated (Excel's choice where the decimal comma
is used), Windows-1252 or UTF-8 with or without a BOM, a header row with Finnish names.
Real exports are messy, so:

- the encoding is UTF-8 when the bytes are valid UTF-8 (a BOM is dropped), UTF-16 by its
  BOM, else Windows-1252 (Latin-1 for the five bytes it leaves undefined);
- the separator is whichever of ``;``, ``,`` and tab the header row has most of;
- a quoted field may span lines, so a row's *physical* line (the header is line 1) is what
  problems name: that is what an editor shows;
- a row that cannot be read (bad quoting, a NUL, the wrong number of columns) is reported
  and skipped, and reading goes on. An unterminated quote would swallow the rest of the file
  as one field; so would a stray quote paired with one rows later. When such a record spans
  several lines and is unreadable, reading starts again on the line after its first;
- the key column (``--key``, the address by default) decides which rows are the same member:
  the later row wins and the earlier ones are reported. The other identifying column stays
  unique too: when two members have the same number (or, keyed by number, the same
  address), the later row keeps it, and the earlier member loses it, reported;
- a row without the key: keyed by address, a row with a member number but no address is
  kept (it can be linked by the number only) and noted; a row with neither is skipped.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from maild.core.members import field_key

Key = Literal["email", "member_number"]
KEYS: tuple[Key, ...] = ("email", "member_number")

EMAIL_COLUMNS = frozenset({"email", "e-mail", "sähköposti", "sähköpostiosoite", "e-post", "e-postadress"})
NUMBER_COLUMNS = frozenset({"member_number", "jäsennumero", "jäsennro", "medlemsnummer"})
_EMAIL = re.compile(r"[^@\s<>,;\"()\[\]]+@[^@\s<>,;\"()\[\]]+\.[^@\s<>,;\"()\[\]]+")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
MAX_FIELD_CHARS = 100_000


class RegisterError(Exception):
    """The file is not a register at all (no header, no address column): nothing is loaded."""


@dataclass(frozen=True)
class Row:
    """One member as the file has them; ``line`` is the physical line where the row starts."""

    line: int
    member_number: str | None
    email: str | None
    fields: dict[str, str]


@dataclass(frozen=True)
class Problem:
    line: int
    kind: str  # unreadable | invalid | duplicate | no_key | note
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Register:
    rows: list[Row]
    problems: list[Problem]
    encoding: str
    delimiter: str
    columns: list[str] = field(default_factory=list)
    read_rows: int = 0  # data rows in the file, readable or not

    def count(self, kind: str) -> int:
        return sum(1 for problem in self.problems if problem.kind == kind)


def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding's name (see the module docstring)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", "replace"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d: undefined in Windows-1252
        return data.decode("latin-1"), "latin-1"


def sniff_delimiter(header: str) -> str:
    """``;``, ``,`` or tab: the one the header row (outside quotes) has most of; ``;`` on a tie."""
    outside = re.sub(r'"[^"]*"', "", header)
    counts = {delimiter: outside.count(delimiter) for delimiter in (";", ",", "\t")}
    best = max(counts, key=lambda d: (counts[d], d == ";"))
    return best if counts[best] else ";"


class _Lines:
    """Physical lines for ``csv.reader``, with the index of the next one (to name rows and to
    start again after an unreadable record)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.next = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.next >= len(self.lines):
            raise StopIteration
        self.next += 1
        return self.lines[self.next - 1]


def records(text: str, delimiter: str) -> Iterator[tuple[int, list[str] | None, str]]:
    """``(physical line, fields, "")`` per record, or ``(line, None, why)`` for one that cannot
    be read; blank lines are left out. Lines count from 1."""
    source = _Lines(_LINE.findall(text))
    width: int | None = None
    has_nul = "\x00" in text

    def reader() -> Iterator[list[str]]:
        return csv.reader(source, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)

    rows = reader()
    while True:
        start = source.next
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            if source.next - start > 1:  # the quote may have swallowed the rows after it
                source.next = start + 1
                rows = reader()
            yield start + 1, None, f"cannot be read: {_csv_message(exc)}"
            continue
        if not "".join(row).strip():
            continue
        while len(row) > (width or 0) and width is not None and not row[-1].strip():
            row.pop()  # Excel's trailing separators
        if width is not None and len(row) != width:
            if source.next - start > 1:
                source.next = start + 1
                rows = reader()
            yield start + 1, None, f"cannot be read: {len(row)} columns, the header has {width}"
            continue
        if has_nul and any("\x00" in value for value in row):  # a corrupt export (Python's csv reads NULs)
            yield start + 1, None, "cannot be read: it contains a NUL character"
            continue
        if max(map(len, row)) > MAX_FIELD_CHARS:
            yield start + 1, None, f"cannot be read: a field longer than {MAX_FIELD_CHARS} characters"
            continue
        if width is None:
            width = len(row)
        yield start + 1, row, ""


def _csv_message(exc: csv.Error) -> str:
    message = str(exc)
    if "unexpected end of data" in message or "EOF" in message:
        return "a quote is not closed"
    if "NUL" in message:
        return "it contains a NUL character"
    return message


def read_register(data: bytes, key: Key = "email") -> Register:
    """Read an export into members and problems (see the module docstring)."""
    if key not in KEYS:
        raise RegisterError(f"--key must be one of {', '.join(KEYS)}, not {key!r}")
    text, encoding = decode(data)
    first = _LINE.match(text)
    delimiter = sniff_delimiter(first.group(0) if first else "")
    found = records(text, delimiter)
    header = next(((line, row, why) for line, row, why in found), None)
    if header is None:
        raise RegisterError("the file is empty: a header row is needed")
    header_line, columns, why = header
    if columns is None:
        raise RegisterError(f"line {header_line}: the header row {why}")
    names = [name.strip() for name in columns]
    email_at, number_at = _column(names, EMAIL_COLUMNS), _column(names, NUMBER_COLUMNS)
    if email_at is None and key == "email":
        raise RegisterError(f"line {header_line}: no address column (email or sähköposti) in {', '.join(names)}")
    if number_at is None and key == "member_number":
        raise RegisterError(f"line {header_line}: no member number column (member_number or jäsennumero)")
    seen: dict[str, int] = {}
    for name in names:
        if name and field_key(name) in seen:
            raise RegisterError(f"line {header_line}: the column {name!r} appears twice")
        seen[field_key(name)] = 1
    register = Register([], [], encoding, delimiter, names)
    rows: list[Row] = []
    kept = [(index, name) for index, name in enumerate(names) if name and index not in (email_at, number_at)]
    for line, values, why in found:
        register.read_rows += 1
        if values is None:
            register.problems.append(Problem(line, "unreadable", why))
            continue
        row = _row(line, kept, values, email_at, number_at, register.problems)
        if row is not None:
            rows.append(row)
    register.rows = _unique(rows, key, register.problems)
    register.problems.sort(key=lambda problem: problem.line)
    return register


def _column(names: list[str], known: frozenset[str]) -> int | None:
    return next((index for index, name in enumerate(names) if field_key(name) in known), None)


def _row(
    line: int, kept: list[tuple[int, str]], values: list[str], email_at: int | None, number_at: int | None,
    problems: list[Problem],
) -> Row | None:
    """``kept``: the (index, name) of the columns that become fields."""
    email = values[email_at].strip().lower() if email_at is not None else ""
    number = values[number_at].strip() if number_at is not None else ""
    if email and not _EMAIL.fullmatch(email):
        problems.append(Problem(line, "invalid", f"{email!r} is not an email address: the row is skipped"))
        return None
    return Row(line, number or None, email or None, {name: values[index] for index, name in kept})


def _unique(rows: list[Row], key: Key, problems: list[Problem]) -> list[Row]:
    """One row per key (the later wins), and no number or address held by two members."""
    other: Key = "member_number" if key == "email" else "email"
    words = {"email": "address", "member_number": "member number"}
    by_key: dict[str, Row] = {}
    for row in rows:
        value = getattr(row, key)
        if value is None:
            if getattr(row, other) is None:
                problems.append(Problem(row.line, "no_key", "neither an address nor a member number: the row is skipped"))
            elif key == "email":
                problems.append(Problem(row.line, "note", f"no address: member {row.member_number} can be linked by "
                                                          "member number only"))
                by_key[f"\0line{row.line}"] = row  # kept, keyed by its line
            else:
                problems.append(Problem(row.line, "no_key", "no member number: the row is skipped (--key member_number)"))
            continue
        earlier = by_key.pop(value, None)
        if earlier is not None:
            problems.append(Problem(earlier.line, "duplicate",
                                    f"{words[key]} {value} again on line {row.line}: the later row wins"))
        by_key[value] = row
    holder: dict[str, str] = {}  # the other column's value -> the key of the row that keeps it
    kept = dict(by_key)
    for row_key, row in by_key.items():
        value = getattr(row, other)
        if value is None:
            continue
        if value in holder:
            earlier = kept[holder[value]]
            problems.append(Problem(earlier.line, "duplicate", f"{words[other]} {value} again on line {row.line}: "
                                                               f"the later row keeps it"))
            kept[holder[value]] = _without(earlier, other)
        holder[value] = row_key
    return sorted((row for row in kept.values() if row.email or row.member_number), key=lambda row: row.line)


def _without(row: Row, column: Key) -> Row:
    if column == "email":
        return Row(row.line, row.member_number, None, row.fields)
    return Row(row.line, None, row.email, row.fields)
