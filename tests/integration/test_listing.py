"""The listing read with SQLAlchemy Core (what `maild tickets list` uses, to start fast) shows
what the ORM shows: the same tickets, in the same order, with the same values, on SQLite and
PostgreSQL; and the lightweight table clauses it reads stay in step with the ORM tables."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from maild import views
from maild.store import db, listing
from maild.store import tickets as store
from maild.store.tables import Message, Ticket
from maild.store.types import UTCDateTime

T0 = datetime(2026, 11, 2, 8, 30, tzinfo=timezone.utc)


def read_as(column_type: sa.types.TypeEngine) -> object:
    """What a column's values read back as: UTCDateTime (aware UTC) by itself; any other type
    by its Python type, through sqlmodel's decorators (AutoString is a String)."""
    if isinstance(column_type, UTCDateTime):
        return UTCDateTime
    if isinstance(column_type, sa.types.TypeDecorator):
        column_type = column_type.impl_instance
    return column_type.python_type


@pytest.mark.parametrize("clause, table", [(listing.TICKETS, Ticket.__table__), (listing.MESSAGES, Message.__table__)])
def test_the_listing_columns_are_the_tables_columns(clause: sa.TableClause, table: sa.Table) -> None:
    assert clause.name == table.name
    for column in clause.c:
        assert column.name in table.c, f"{table.name}.{column.name} is not a column of the table"
        ours, theirs = column.type, table.c[column.name].type
        assert read_as(theirs) == read_as(ours), f"{table.name}.{column.name}: {theirs!r} in the table, {ours!r} in the listing"


def test_the_listing_has_what_a_ticket_row_shows() -> None:
    """Every ticket column that ``views.ticket_dict`` reads is in the clause."""
    row = {column.name: None for column in listing.TICKETS.c}
    row.update(number=1, cc=[], tags=[], other_queues=[])
    views.ticket_dict(type("Row", (), row)(), "JP", 0)  # an attribute missing from the clause raises


def test_the_head_revision_read_from_the_files_is_alembics() -> None:
    assert db.head_revision() == db.alembic_head()


def seed(url: str) -> None:
    """Tickets in every status and three queues, with messages (one mentions 'jäsenmaksu')."""
    db.upgrade(url)
    statuses = ["new", "open", "pending", "resolved", "closed"]
    tickets = [{
        "number": n, "queue": ("jasenasiat", "laskutus", "lakineuvonta")[n % 3], "status": statuses[n % 5],
        "priority": "normal", "category": "eroaminen" if n % 4 == 0 else None, "subject": f"Asia {n}",
        "requester": f"jasen{n % 7}@example.fi", "assignee": "maija@liitto.fi" if n % 2 else None,
        "confidential": n % 6 == 0, "tags": ["kiire"] if n % 5 == 0 else [], "other_queues": [],
        "cc": [f"cc{n}@example.fi"] if n % 3 == 0 else [], "linked_to": n - 1 if n % 8 == 0 else None,
        "created_at": T0 + timedelta(hours=n), "updated_at": T0 + timedelta(hours=n, minutes=5),
        "status_changed_at": T0, "first_response_at": None,
    } for n in range(1, 31)]
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.insert(Ticket), tickets)
        ids = dict(conn.execute(sa.select(Ticket.number, Ticket.id)).all())  # type: ignore[call-overload]
        conn.execute(sa.insert(Message), [{
            "ticket_id": ids[n], "direction": "in", "kind": "member", "from_addr": f"jasen{n % 7}@example.fi",
            "subject": f"Asia {n}", "text": "Jäsenmaksu on maksettu" if n == 17 else f"viesti {k}",
            "to": [], "cc": [], "references": [], "classification": "normal", "created_at": T0,
        } for n in range(1, 31) for k in range(n % 4)])
    engine.dispose()


FILTERS = [
    {}, {"status": "open"}, {"queue": "laskutus"}, {"assignee": "MAIJA@liitto.fi"}, {"requester": "jasen3@example.fi"},
    {"text": "JÄSENMAKSU".lower()}, {"text": "asia 2"}, {"status": "closed", "queue": "jasenasiat"}, {"limit": 4},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[repr(f) for f in FILTERS])
def test_the_core_listing_is_the_orm_listing(db_url: str, filters: dict[str, object]) -> None:
    seed(db_url)
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        core = views.ticket_rows(conn, "JP", **filters)
    with Session(engine) as session:
        tickets = store.list_tickets(session, **filters)  # type: ignore[arg-type]
        counts = store.message_counts(session, [t.id for t in tickets if t.id is not None])
        orm = [views.ticket_dict(t, "JP", counts.get(t.id or 0, 0)) for t in tickets]
        by_session = views.ticket_rows(session, "JP", **filters)  # a Session will do as well
    engine.dispose()
    assert core == orm == by_session
    assert core, "the filter should find something"
    if "limit" not in filters and not filters:
        assert len(core) == 30
        assert [row["status"] in store.OPEN_STATUSES for row in core] == sorted(
            (row["status"] in store.OPEN_STATUSES for row in core), reverse=True)  # open work first
        assert sum(row["message_count"] for row in core) == sum(n % 4 for n in range(1, 31))
        assert isinstance(core[0]["confidential"], bool) and core[0]["created_at"].endswith("+00:00")


def test_queue_ids(db_url: str) -> None:
    seed(db_url)
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        assert sorted(listing.queue_ids(conn)) == ["jasenasiat", "lakineuvonta", "laskutus"]
    assert db.is_current(engine) and db.current_revisions(engine) == [db.head_revision()]
    engine.dispose()


def test_an_empty_database_is_not_current(db_url: str) -> None:
    engine = db.make_engine(db_url)
    assert db.current_revisions(engine) == [] and not db.is_current(engine)
    engine.dispose()
