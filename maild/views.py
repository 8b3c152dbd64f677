"""What the CLI shows: tickets, messages, events and the quarantine as plain dicts (stable JSON keys).

Each view imports what it needs inside its function: ``tickets list`` reads through SQLAlchemy
Core (``store.listing``) and must not pay for the ORM, the parser or the rules it never uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from maild.core import threader

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlmodel import Session

    from maild.core.members import Link
    from maild.rules.model import RuleSet
    from maild.store.tables import Attachment, Event, Message, Quarantine, Ticket


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def ticket_dict(ticket: Ticket | Any, prefix: str, message_count: int) -> dict[str, Any]:
    """A ticket (an ORM object, or a row of ``store.listing``) as the CLI shows it."""
    return {
        "number": ticket.number,
        "tag": threader.format_tag(prefix, ticket.number),
        "subject": ticket.subject,
        "status": ticket.status,
        "queue": ticket.queue,
        "priority": ticket.priority,
        "category": ticket.category,
        "requester": ticket.requester,
        "assignee": ticket.assignee,
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
        "message_count": message_count,
        "confidential": ticket.confidential,
        "cc": list(ticket.cc),
        "tags": list(ticket.tags),
        "other_queues": list(ticket.other_queues),
        "linked_to": ticket.linked_to,
        "channel": ticket.channel,
    }


def ticket_rows(conn: Any, prefix: str, **filters: Any) -> list[dict[str, Any]]:
    """The tickets of a listing (filters: see ``store.listing.ticket_filters``, and ``limit``).
    ``conn``: a Connection, or a Session."""
    from maild.store import listing

    return [ticket_dict(row, prefix, row.message_count) for row in listing.list_tickets(conn, **filters)]


def member_detail(session: Session, prefix: str, address: str) -> dict[str, Any] | None:
    """``members show ADDRESS|NUMBER``: the member's contact and tickets, open ones first, newest
    first (docs/mail.md#recipients); ``undeliverable_since`` only while the bounce mark holds. With a
    register member (docs/coming.md#member-register: by address, or by a member number), ``member`` and every
    ticket linked to them, whatever address they wrote from. None when maild knows no
    contact, ticket or member of it."""
    from maild.core.bounces import undeliverable
    from maild.store import members as store_members
    from maild.store import tickets as store
    from maild.store.tables import utcnow

    value = address.strip()
    member = store_members.find(session, value)
    if "@" in value:
        address = value.lower()
    elif member is not None:
        address = member.email or ""
    else:
        return None
    contact = store.contact_of(session, address) if address else None
    linked = store_members.ticket_ids_of(session, member.id) if member is not None and member.id else []
    tickets = _tickets_of(session, prefix, address, linked)
    if (contact is None or contact.id is None) and not tickets and member is None:
        return None
    tickets.sort(key=lambda row: (row["status"] not in store.OPEN_STATUSES, -row["number"]))
    mark = contact.undeliverable_since if contact is not None else None
    since = mark if undeliverable(mark, utcnow()) else None
    return {"address": address or None, "name": contact.name if contact is not None else "",
            "undeliverable_since": _iso(since), "tickets": tickets,
            "member": member.to_json() if member is not None else None}


def _tickets_of(session: Session, prefix: str, address: str, ticket_ids: list[int]) -> list[dict[str, Any]]:
    """Tickets that ``address`` opened and the tickets of ``ticket_ids``, each once."""
    from sqlmodel import col, select

    from maild.store import tickets as store
    from maild.store.tables import Ticket

    rows = ticket_rows(session, prefix, requester=address) if address else []
    have = {row["number"] for row in rows}
    more = [t for t in session.exec(select(Ticket).where(col(Ticket.id).in_(ticket_ids))) if t.number not in have] \
        if ticket_ids else []
    counts = store.message_counts(session, [t.id for t in more if t.id is not None])
    return rows + [ticket_dict(t, prefix, counts.get(t.id or 0, 0)) for t in more]


def attachment_dict(row: Attachment) -> dict[str, Any]:
    return {"id": row.id, "filename": row.filename, "content_type": row.content_type, "size": row.size}


def message_dict(message: Message, attachments: list[Attachment] | None = None) -> dict[str, Any]:
    return {
        "direction": message.direction,
        "kind": message.kind,
        "from": message.from_addr,
        "to": list(message.to),
        "cc": list(message.cc),
        "subject": message.subject,
        "message_id": message.message_id,
        "date": _iso(message.date or message.created_at),
        "text": message.text,
        "classification": message.classification,
        "attachments": [attachment_dict(row) for row in attachments or ()],
    }


def event_dict(event: Event) -> dict[str, Any]:
    return {"at": _iso(event.at), "actor": event.actor, "kind": event.kind, "data": event.data}


def ticket_detail(session: Session, prefix: str, number: int) -> dict[str, Any] | None:
    from maild.core.bounces import undeliverable
    from maild.store import members as store_members
    from maild.store import tickets as store
    from maild.store.tables import utcnow

    ticket = store.ticket_by_number(session, number)
    if ticket is None:
        return None
    messages = store.messages_of(session, ticket)
    detail = ticket_dict(ticket, prefix, len(messages))
    since = store.contact_of(session, ticket.requester).undeliverable_since
    detail["requester_undeliverable"] = undeliverable(since, utcnow())
    from maild.store.attachments import attachments_of

    attached = attachments_of(session, [m.id for m in messages if m.id is not None])
    detail["messages"] = [message_dict(m, attached.get(m.id or 0)) for m in messages]
    detail["events"] = [event_dict(e) for e in store.events_of(session, ticket)]
    linked = store_members.member_of_ticket(session, ticket.id or 0)  # member register (docs/coming.md#member-register)
    detail["member"] = {**linked[0].to_json(), "linked_by": linked[1]} if linked else None
    return detail


def quarantine_dict(row: Quarantine) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "reason": row.reason,
        "received_at": _iso(row.received_at),
        "from": row.from_addr,
        "subject": row.subject,
        "size": row.size,
        "released_at": _iso(row.released_at),
        "raw_path": row.raw_path,
    }


def quarantine_rows(session: Session) -> list[dict[str, Any]]:
    from sqlmodel import select

    from maild.store.tables import Quarantine

    rows = session.exec(select(Quarantine).where(Quarantine.released_at == None).order_by(Quarantine.id))  # noqa: E711
    return [quarantine_dict(row) for row in rows]


def quarantine_row(session: Session, qid: int) -> dict[str, Any] | None:
    from maild.store.tables import Quarantine

    row = session.get(Quarantine, qid)
    return quarantine_dict(row) if row else None


def rules_verdict(
    rules: RuleSet, raw: bytes, recipients: tuple[str, ...],
    find_member: Callable[[str, tuple[str, ...]], Link] | None = None,
) -> dict[str, Any]:
    """``maild rules test``: classification and routing decision for a raw message, with reasons.

    Read and planned exactly as the processor would for a new message on an empty database
    (``maild.read``, ``core.plan``), so the acknowledgement it reports is the planner's.
    ``find_member(sender, member numbers in the mail)``: who the sender is in the register
    (docs/coming.md#member-register); without it, nobody is a member."""
    from maild.core import plan as planner
    from maild.core.classify import classify
    from maild.core.kinds import EventKind, MessageKind, QuarantineKind
    from maild.core.members import NO_LINK
    from maild.core.parse import parse_message
    from maild.core.reading import ToFile, Unreadable
    from maild.mail import Envelope
    from maild.read import read
    from maild.rules.engine import decide, facts_from
    from maild.store.tables import utcnow

    envelope = Envelope(source="pipe", recipients=recipients)
    reading = read(raw, envelope, rules, "-", b"")
    if isinstance(reading, Unreadable) and reading.reason != "no sender address":
        return {"classification": "unparseable", "queue": None, "priority": None, "category": None,
                "assignee": None, "ack": False, "ack_reason": f"unparseable: {reading.reason}", "matched_rules": [],
                "member": None}
    found = NO_LINK
    if isinstance(reading, ToFile):
        if find_member is not None and not reading.verdict.is_machine:
            found = find_member(reading.sender, reading.numbers)
        decision, verdict = planner.member_decision(reading, found, rules), reading.verdict
    else:  # a bounce, or a message without a sender: the rules' view of it all the same
        parsed, message = parse_message(raw)
        verdict = classify(parsed, envelope, message, rules.addresses())
        decision = decide(facts_from(parsed, recipients), rules)
    now = utcnow()
    policy = planner.Policy(rules, "-", ack_limit_per_hour=1)
    plan = planner.plan(reading, planner.Lookups(member=found), policy, planner.Spooled(None, now), now)
    ack: str | bool = False
    reason = "new ticket from a person"
    for effect in plan.effects:
        if isinstance(effect, planner.QueueMail) and effect.kind == MessageKind.ACK:
            ack = effect.args["template"]
        elif isinstance(effect, planner.AddEvent) and effect.kind == EventKind.ACK_SKIPPED:
            reason = effect.data["reason"]
        elif isinstance(effect, planner.Quarantine):
            reason = effect.reason if effect.kind == QuarantineKind.DROPPED else f"{effect.kind}: {effect.reason}"
            if effect.kind == QuarantineKind.BOUNCE:
                reason = f"{verdict.kind}: {verdict.reason}"
    return {
        **decision.to_json(),
        "classification": verdict.kind,
        "classification_reason": verdict.reason,
        "ack": ack,
        "ack_reason": reason,
        "member": {**found.member.to_json(), "linked_by": found.linked_by} if found.member else None,
    }


def outbox_rows(session: Session, prefix: str, states: tuple[str, ...]) -> list[dict[str, Any]]:
    """Outgoing mail in the given states, oldest first."""
    import email.policy
    from email.parser import BytesHeaderParser

    from sqlmodel import col, select

    from maild.store.tables import Outbox, Ticket

    query = select(Outbox, Ticket.number).join(Ticket, isouter=True).order_by(Outbox.id)
    if states:
        query = query.where(col(Outbox.state).in_(states))
    rows = []
    for row, number in session.exec(query):
        headers = BytesHeaderParser(policy=email.policy.default).parsebytes(row.raw)
        rows.append({
            "id": row.id,
            "ticket": threader.format_tag(prefix, number) if number else None,
            "kind": row.kind,
            "recipient": row.recipient,
            "subject": str(headers.get("subject", "")),
            "state": row.state,
            "attempts": row.attempts,
            "created_at": _iso(row.created_at),
            "next_attempt_at": _iso(row.next_attempt_at) if row.state == "queued" else None,
            "sent_at": _iso(row.sent_at),
            "last_error": row.last_error,
        })
    return rows
