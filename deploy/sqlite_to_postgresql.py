"""Copy a maild database from SQLite to PostgreSQL (deploy/README.md, "From SQLite to PostgreSQL").

    /opt/maild/.venv/bin/python deploy/sqlite_to_postgresql.py SQLITE_URL POSTGRESQL_URL

maild must be stopped. Both databases must be at this maild's newest migration (run
`maild db upgrade` on each) and the PostgreSQL one must hold no rows. The rows are copied
with maild's own table definitions, so timestamps, JSON and binary columns are converted
as maild itself reads and writes them; parents before children, in one transaction that
also moves every id sequence past the copied ids and compares the row counts before it
commits. Nothing is written to the SQLite database. The raw mail and attachments stay in
data_dir: only the database moves.
"""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import SQLModel

from maild.store import db, tables  # noqa: F401  (tables registers maild's tables on the metadata)

BATCH = 1000


class Refused(Exception):
    """The databases are not in a state this copy is safe for."""


def check(source: sa.Engine, target: sa.Engine) -> list[sa.Table]:
    """maild's tables, parents first, once both databases are fit for the copy."""
    for engine in (source, target):
        if not db.is_current(engine):
            raise Refused(f"{engine.url.render_as_string()}: not at this maild's newest migration: run `maild db upgrade` on it")
    known = SQLModel.metadata.sorted_tables
    names = {table.name for table in known} | {"alembic_version"}
    with source.connect() as conn:
        inspector = sa.inspect(conn)
        unknown = set(inspector.get_table_names()) - names
        if unknown:  # a table this maild does not know would be left behind
            raise Refused(f"the SQLite database has tables this maild does not know: {', '.join(sorted(unknown))}")
        for table in known:
            columns = {column["name"] for column in inspector.get_columns(table.name)}
            if columns != set(table.columns.keys()):
                raise Refused(f"{table.name}: the SQLite columns differ from this maild's: {sorted(columns ^ set(table.columns.keys()))}")
    with target.connect() as conn:
        filled = [table.name for table in known if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()]
    if filled:
        raise Refused(f"the PostgreSQL database already has rows in: {', '.join(filled)}")
    return known


def copy(source: sa.Engine, target: sa.Engine) -> dict[str, int]:
    """Copy every row; return the row count of each table (equal on both sides)."""
    known = check(source, target)
    counts: dict[str, int] = {}
    with source.connect() as src, target.begin() as dst:
        for table in known:
            result = src.execution_options(yield_per=BATCH).execute(sa.select(table))
            for rows in result.mappings().partitions():
                dst.execute(table.insert(), [dict(row) for row in rows])
            counts[table.name] = src.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            copied = dst.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            if copied != counts[table.name]:
                raise RuntimeError(f"{table.name}: {counts[table.name]} rows in SQLite, {copied} copied")
            for column in table.primary_key.columns:
                if column.autoincrement is True or (column.autoincrement == "auto" and isinstance(column.type, sa.Integer)):
                    dst.execute(sa.text("SELECT setval(pg_get_serial_sequence(:table, :column), "
                                        f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"),
                                {"table": table.name, "column": column.name})
    return counts


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[1].startswith("sqlite:") or not argv[2].startswith("postgresql"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = sa.engine.make_url(argv[1]).database
    if not path or not Path(path).is_file():
        print(f"nothing copied: no SQLite database at {path}", file=sys.stderr)
        return 1
    source, target = db.make_engine(argv[1]), db.make_engine(argv[2])
    try:
        counts = copy(source, target)
    except (Refused, sa.exc.SQLAlchemyError) as exc:
        print(f"nothing copied: {exc}", file=sys.stderr)
        return 1
    for name, count in counts.items():
        print(f"{name}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
