"""The shell's read-only commands (listings, reports, exports) never hold up filing: on SQLite
their transactions take no write lock, and their connections cannot write."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from maild.store import db


def test_a_reader_in_a_long_transaction_does_not_block_a_writer_and_cannot_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'maild.db'}?timeout=1"
    writer = db.make_engine(url)
    with writer.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    reader = db.make_engine(url, read_only=True)
    with reader.begin() as reading:
        assert reading.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 0  # a snapshot is taken
        with writer.begin() as conn:  # with BEGIN IMMEDIATE in the reader, this would wait 1 s and fail
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert reading.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 0  # still its snapshot
        with pytest.raises(sa.exc.OperationalError, match="readonly|read-only|query_only"):
            reading.exec_driver_sql("INSERT INTO t VALUES (2)")
    with reader.connect() as fresh:
        assert fresh.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
