"""Ticket queries and writes. No business rules: the pipeline decides, this module stores."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, func, select

from maild.core.bounces import undeliverable
from maild.core.kinds import OPEN_STATUSES as _OPEN_STATUSES
from maild.core.threader import TicketRef
from maild.store import listing
from maild.store.tables import Contact, Counter, Event, Inbound, Message, Outbox, Quarantine, Ticket, utcnow

OPEN_STATUSES = _OPEN_STATUSES  # the statuses of work still to do (``core.kinds``)


def _insert_ignore(session: Session, table: type, **values: Any) -> None:
    """INSERT that does nothing when a unique key already exists (race-free upsert start)."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    session.execute(insert(table).values(**values).on_conflict_do_nothing())


_COUNTERS = Counter.__table__  # type: ignore[attr-defined]
_BUMP = (sa.update(_COUNTERS).where(_COUNTERS.c.name == sa.bindparam("counter"))
         .values(value=_COUNTERS.c.value + 1).returning(_COUNTERS.c.value))


def next_number(session: Session, name: str = "ticket") -> int:
    """The next number of a sequence, taken in the caller's transaction.

    The counter row is locked by the UPDATE (PostgreSQL row lock; SQLite's write lock), so two
    transactions never get the same number, and a rolled-back one gives its number back
    unused: numbers are sequential and never reused. A missing row is created race-free.
    One prepared Core statement: this runs for every new ticket.
    """
    connection = session.connection()
    result = connection.execute(_BUMP, {"counter": name}).scalar_one_or_none()
    if result is None:
        _insert_ignore(session, Counter, name=name, value=0)
        result = connection.execute(_BUMP, {"counter": name}).scalar_one()
    return int(result)


def ref(ticket: Ticket) -> TicketRef:
    return TicketRef(number=ticket.number, status=ticket.status, requester=ticket.requester, cc=tuple(ticket.cc))


def ticket_by_number(session: Session, number: int) -> Ticket | None:
    return session.exec(select(Ticket).where(Ticket.number == number)).first()


def tickets_by_numbers(session: Session, numbers: Iterable[int]) -> list[Ticket]:
    numbers = list(numbers)
    if not numbers:
        return []
    found = {t.number: t for t in session.exec(select(Ticket).where(col(Ticket.number).in_(numbers)))}
    return [found[n] for n in numbers if n in found]


def fingerprints_for(session: Session, message_id: str | None, fingerprint: str) -> tuple[str, ...]:
    """Fingerprints of stored messages sharing this Message-ID (or, with none, this content)."""
    query = select(Message.fingerprint).where(Message.direction == "in")
    if message_id:
        query = query.where(Message.message_id == message_id)
    else:
        query = query.where(col(Message.message_id).is_(None), Message.fingerprint == fingerprint)
    return tuple(fp for fp in session.exec(query) if fp)


def first_copy(session: Session, message_id: str | None, fingerprints: Iterable[str]) -> Message | None:
    """The earliest received message that a duplicate repeats: same Message-ID (or none) and
    one of these fingerprints."""
    query = select(Message).where(Message.direction == "in", col(Message.fingerprint).in_([f for f in fingerprints if f]))
    query = query.where(Message.message_id == message_id if message_id else col(Message.message_id).is_(None))
    return session.exec(query.order_by(col(Message.id)).limit(1)).first()


def ticket_for_message_ids(session: Session, message_ids: tuple[str, ...]) -> Ticket | None:
    """The ticket of the first of these Message-IDs that maild received or sent."""
    if not message_ids:
        return None
    rows = session.exec(
        select(Message.message_id, Message.ticket_id).where(col(Message.message_id).in_(message_ids))
    ).all()
    by_id = {mid: tid for mid, tid in rows}
    for message_id in message_ids:
        if message_id in by_id:
            return session.get(Ticket, by_id[message_id])
    return None


def contact(session: Session, address: str, name: str = "") -> Contact:
    """The contact for an address, created if new (safe against concurrent creation)."""
    query = select(Contact).where(Contact.address == address)
    found = session.exec(query).first()
    if found is None:
        _insert_ignore(session, Contact, address=address, name=name, created_at=utcnow(), undeliverable=False)
        found = session.exec(query).one()
    if name and not found.name:
        found.name = name
    return found


def mark_undeliverable(session: Session, address: str, now: datetime) -> None:
    """Mark an address undeliverable from ``now``; a mark that still holds keeps its start."""
    found = contact(session, address)
    if not undeliverable(found.undeliverable_since, now):
        found.undeliverable_since = now


def outgoing_message(session: Session, message_id: str) -> Message | None:
    """The mail that maild sent under this Message-ID (never one it received)."""
    query = select(Message).where(Message.message_id == message_id, Message.direction == "out")
    return session.exec(query.order_by(col(Message.id))).first()


def sent_to(session: Session, message: Message) -> tuple[str, ...]:
    """The envelope recipients that an outgoing ticket message was queued for."""
    query = select(Outbox.recipient).where(  # by its ticket first: outbox.ticket_id has an index
        Outbox.ticket_id == message.ticket_id, Outbox.message_id == message.id).order_by(col(Outbox.id))
    return tuple(dict.fromkeys(session.exec(query)))


def contact_of(session: Session, address: str) -> Contact:
    """The stored contact for an address, or an unsaved blank one (read-only use)."""
    return session.exec(select(Contact).where(Contact.address == address)).first() or Contact(address=address)


def contacts(session: Session, addresses: Iterable[str]) -> dict[str, Contact]:
    """The known contacts among ``addresses``, by address."""
    return {c.address: c for c in session.exec(select(Contact).where(col(Contact.address).in_(set(addresses))))}


def opened_by_machine(session: Session, ticket_ids: list[int]) -> dict[int, str]:
    """For each of these tickets that machine mail opened (its first message), its classification."""
    first = select(func.min(Message.id)).where(col(Message.ticket_id).in_(ticket_ids)).group_by(Message.ticket_id)
    query = select(Message.ticket_id, Message.classification).where(col(Message.id).in_(first), Message.kind == "auto_reply")
    return {ticket_id: kind for ticket_id, kind in session.exec(query)}


def add_event(
    session: Session, ticket: Ticket, kind: str, actor: str = "maild", at: datetime | None = None, **data: Any
) -> Event:
    event = Event(ticket_id=ticket.id, kind=kind, actor=actor, data=data, at=at or utcnow())
    session.add(event)
    return event


def quarantine(
    session: Session,
    kind: str,
    reason: str,
    inbound: Inbound | None,
    from_addr: str = "",
    subject: str = "",
) -> Quarantine:
    row = Quarantine(
        inbound_id=inbound.id if inbound else None,
        kind=kind,
        reason=reason[:10000],
        received_at=inbound.received_at if inbound else utcnow(),
        from_addr=from_addr,
        subject=subject,
        size=inbound.size if inbound else 0,
        raw_path=inbound.raw_path if inbound else None,
    )
    session.add(row)
    if inbound is not None:
        inbound.state = "quarantined"
        inbound.error = reason[:10000]
    return row


def message_counts(session: Session, ticket_ids: list[int]) -> dict[int, int]:
    if not ticket_ids:
        return {}
    rows = session.exec(
        select(Message.ticket_id, func.count()).where(col(Message.ticket_id).in_(ticket_ids)).group_by(Message.ticket_id)
    ).all()
    return {tid: count for tid, count in rows}


def list_tickets(
    session: Session,
    status: str | None = None,
    queue: str | None = None,
    assignee: str | None = None,
    requester: str | None = None,
    text: str | None = None,
    limit: int | None = None,
) -> list[Ticket]:
    """The tickets of a listing as ORM objects (the CLI's listings read ``listing.list_tickets``)."""
    table, messages = Ticket.__table__, Message.__table__  # type: ignore[attr-defined]
    query = select(Ticket).where(*listing.ticket_filters(table, messages, status, queue, assignee, requester, text))
    query = query.order_by(*listing.ticket_order(table))
    if limit:
        query = query.limit(limit)
    return list(session.exec(query))


def queue_ids(session: Session) -> list[str]:
    """Every queue that has tickets (queues may have left the rules since)."""
    return listing.queue_ids(session)


def open_tickets_of(session: Session, requester: str) -> list[Ticket]:
    query = select(Ticket).where(Ticket.requester == requester, col(Ticket.status).in_(OPEN_STATUSES))
    return list(session.exec(query.order_by(Ticket.number)))


def last_member_message(session: Session, ticket: Ticket) -> Message | None:
    query = select(Message).where(Message.ticket_id == ticket.id, Message.direction == "in", Message.kind == "member")
    return session.exec(query.order_by(col(Message.id).desc())).first()


def messages_of(session: Session, ticket: Ticket) -> list[Message]:
    return list(session.exec(select(Message).where(Message.ticket_id == ticket.id).order_by(Message.created_at, Message.id)))


def events_of(session: Session, ticket: Ticket) -> list[Event]:
    return list(session.exec(select(Event).where(Event.ticket_id == ticket.id).order_by(Event.at, Event.id)))


def touch(ticket: Ticket, now: datetime | None = None) -> None:
    ticket.updated_at = now or utcnow()


def open_load(session: Session, queue: str) -> dict[str, int]:
    """Open tickets per assignee in a queue (for ``least-loaded``)."""
    rows = session.exec(
        select(Ticket.assignee, func.count())
        .where(Ticket.queue == queue, col(Ticket.status).in_(OPEN_STATUSES), col(Ticket.assignee).is_not(None))
        .group_by(Ticket.assignee)
    ).all()
    return {assignee: count for assignee, count in rows if assignee}
