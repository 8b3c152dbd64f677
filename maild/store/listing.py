"""Ticket listings in SQLAlchemy Core, without the ORM.

``maild tickets list`` is the command people run most, and a fresh process that imports
sqlmodel and the ORM tables spends more time on that than on the query. So the listing reads
through these lightweight table clauses: only the columns it needs, with the same column
types as ``tables`` (a test holds the two together). The filters are shared with the ORM's
``tickets.list_tickets``, so both list the same tickets in the same order.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from maild.core.kinds import OPEN_STATUSES  # one definition, shared with the planner
from maild.store.types import UTCDateTime

TICKETS = sa.table(
    "tickets",
    sa.column("id", sa.Integer),
    sa.column("number", sa.Integer),
    sa.column("queue", sa.String),
    sa.column("status", sa.String),
    sa.column("priority", sa.String),
    sa.column("category", sa.String),
    sa.column("subject", sa.String),
    sa.column("requester", sa.String),
    sa.column("assignee", sa.String),
    sa.column("confidential", sa.Boolean),
    sa.column("tags", sa.JSON),
    sa.column("other_queues", sa.JSON),
    sa.column("cc", sa.JSON),
    sa.column("linked_to", sa.Integer),
    sa.column("channel", sa.String),
    sa.column("created_at", UTCDateTime),
    sa.column("updated_at", UTCDateTime),
)

MESSAGES = sa.table(
    "messages",
    sa.column("id", sa.Integer),
    sa.column("ticket_id", sa.Integer),
    sa.column("subject", sa.String),
    sa.column("from_addr", sa.String),
    sa.column("text", sa.String),
)


def ticket_filters(
    tickets: Any,
    messages: Any,
    status: str | None = None,
    queue: str | None = None,
    assignee: str | None = None,
    requester: str | None = None,
    text: str | None = None,
) -> list[Any]:
    """The WHERE conditions of a listing, over ``tickets`` and ``messages`` (these clauses or
    the ORM's tables: anything with the columns in ``.c``)."""
    conditions: list[Any] = []
    if status:
        conditions.append(tickets.c.status == status)
    if queue:
        conditions.append(tickets.c.queue == queue)
    if assignee:
        conditions.append(tickets.c.assignee == assignee.lower())
    if requester:
        conditions.append(tickets.c.requester == requester.lower())
    if text:
        pattern = f"%{text.lower()}%"
        in_messages = sa.select(messages.c.ticket_id).where(sa.or_(
            sa.func.lower(messages.c.text).like(pattern),
            sa.func.lower(messages.c.subject).like(pattern),
            sa.func.lower(messages.c.from_addr).like(pattern),
        ))
        conditions.append(sa.or_(
            sa.func.lower(tickets.c.subject).like(pattern),
            sa.func.lower(tickets.c.requester).like(pattern),
            tickets.c.id.in_(in_messages),
        ))
    return conditions


def ticket_order(tickets: Any) -> tuple[Any, ...]:
    """Open work first (new, open, pending), then the rest; newest first within each."""
    done_last = sa.case((tickets.c.status.in_(OPEN_STATUSES), 0), else_=1)
    return done_last, tickets.c.number.desc()


def list_tickets(conn: Any, limit: int | None = None, **filters: Any) -> list[Any]:
    """Rows of the tickets that pass ``filters`` (see :func:`ticket_filters`), each with the
    ticket's columns and ``message_count``. ``conn``: a Connection, or a Session."""
    count = (sa.select(sa.func.count()).select_from(MESSAGES).where(MESSAGES.c.ticket_id == TICKETS.c.id)
             .scalar_subquery().label("message_count"))
    query = (sa.select(*TICKETS.c, count).where(*ticket_filters(TICKETS, MESSAGES, **filters))
             .order_by(*ticket_order(TICKETS)))
    if limit:
        query = query.limit(limit)
    return list(conn.execute(query))


def queue_ids(conn: Any) -> list[str]:
    """Every queue that has tickets (queues may have left the rules since)."""
    return list(conn.execute(sa.select(TICKETS.c.queue).distinct()).scalars())
