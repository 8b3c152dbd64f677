"""Where a person can still be found: every text, JSON and binary column of every table (read
from the SQLAlchemy metadata, so a table or column added later is covered without a change
here), and every file under the data directory.

The database part is a query per column (``LIKE`` as a filter, then an exact check in
Python), so it works the same on SQLite and PostgreSQL; the file part reads bytes.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

import maild.store.tables  # noqa: F401  (the tables are registered in the metadata on import)

SKIP_TABLES = frozenset({"alembic_version"})


def _kind(column: sa.Column[Any]) -> str | None:
    """``text``, ``json`` or ``binary`` for a column that can hold a person; None otherwise."""
    kind = column.type
    impl = getattr(kind, "impl", kind)  # a TypeDecorator: what it stores
    if isinstance(impl, sa.JSON):
        return "json"
    if isinstance(impl, sa.LargeBinary):
        return "binary"
    if isinstance(impl, sa.String):  # Text, Unicode, AutoString are Strings
        return "text"
    return None


def searchable_columns(table: sa.Table) -> list[tuple[sa.Column[Any], str]]:
    return [(column, kind) for column in table.columns if (kind := _kind(column)) is not None]


def tables(metadata: sa.MetaData | None = None) -> list[sa.Table]:
    """Every table of maild's schema, in dependency order."""
    return [t for t in (metadata or SQLModel.metadata).sorted_tables if t.name not in SKIP_TABLES]


def _variants(needle: str) -> set[str]:
    """How a needle may be stored: as written, lower-case (SQLite's lower() is ASCII-only), and
    JSON-escaped (a JSON column keeps non-ASCII as \\uXXXX)."""
    forms = {needle, needle.lower()}
    return forms | {json.dumps(form)[1:-1] for form in forms}


def mention_filter(column: sa.Column[Any], kind: str, needles: Iterable[str], dialect: str) -> Any:
    """A SQL condition true for every row whose ``column`` may mention a needle (a superset)."""
    if kind == "binary":
        if dialect == "postgresql":
            value = sa.func.lower(sa.func.encode(column, "escape"))
        else:
            value = sa.func.lower(sa.cast(column, sa.Text))
        ascii_needles = [n.lower() for n in needles if n.isascii()]
        return sa.or_(sa.false(), *(value.contains(n, autoescape=True) for n in ascii_needles))
    value = sa.cast(column, sa.Text) if kind == "json" else column
    forms = {form for needle in needles for form in _variants(needle)}
    if dialect == "sqlite":  # LIKE ignores ASCII case; the as-written forms cover the rest
        return sa.or_(sa.false(), *(value.like(f"%{_escape(form)}%", escape="/") for form in sorted(forms)))
    return sa.or_(sa.false(), *(value.ilike(f"%{_escape(form)}%", escape="/") for form in sorted(forms)))


def _escape(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


@dataclass(frozen=True)
class Finding:
    where: str  # "table.column" or a file path
    count: int


def in_database(conn: sa.Connection, needles: Iterable[str], check: Any = None,
                exclude: dict[str, Any] | None = None) -> list[Finding]:
    """Rows of every table that mention a needle, per column. ``check(value)`` confirms a
    candidate row in Python (default: a case-insensitive substring test); ``exclude`` maps a
    table name to a condition for rows that are not looked at (mail still to be filed)."""
    needles = [n for n in needles if n]
    if not needles:
        return []
    lowered = [n.lower() for n in needles]

    def default_check(value: Any) -> bool:
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value).lower()
            return any(n.encode("utf-8") in data for n in lowered)
        text = (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)).lower()
        return any(n in text for n in lowered)

    confirm = check or default_check
    findings = []
    for table in tables():
        for column, kind in searchable_columns(table):
            query = sa.select(column).where(mention_filter(column, kind, needles, conn.dialect.name))
            if exclude and table.name in exclude:
                query = query.where(sa.not_(exclude[table.name]))
            count = sum(1 for (value,) in conn.execute(query) if value is not None and confirm(value))
            if count:
                findings.append(Finding(f"{table.name}.{column.name}", count))
    return findings


def files_under(root: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                yield path


def file_mentions(path: Path, pattern: Any) -> bool:
    """Whether the bytes of ``path`` match ``pattern`` (a compiled bytes regex); read through
    a memory map, so a large attachment is not loaded whole."""
    try:
        size = path.stat().st_size
        if size == 0:
            return False
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return pattern.search(data) is not None
    except (FileNotFoundError, ValueError):
        return False


def in_files(root: Path, pattern: Any, skip: Iterable[Path] = ()) -> list[Path]:
    """Files under ``root`` whose bytes match ``pattern``, except those in ``skip``."""
    skipped = {Path(p).resolve() for p in skip}
    return sorted(p for p in files_under(root) if p.resolve() not in skipped and file_mentions(p, pattern))
