"""What the CLI shows: tickets, messages, events and the quarantine as plain dicts (stable JSON keys)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import email.policy
from email.parser import BytesHeaderParser

from sqlmodel import Session, col, select

from maild.core import threader
from maild.core.bounces import undeliverable
from maild.core.classify import classify
from maild.core.members import NO_LINK, Link, member_numbers
from maild.core.parse import ParseError, parse_message
from maild.mail import Envelope
from maild.rules.engine import decide, facts_from
from maild.rules.model import RuleSet
from maild.store import members as store_members
from maild.store import tickets as store
from maild.store.tables import Event, Message, Outbox, Quarantine, Ticket, utcnow


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def ticket_dict(ticket: Ticket, prefix: str, message_count: int) -> dict[str, Any]:
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
    }


def ticket_rows(session: Session, prefix: str, **filters: Any) -> list[dict[str, Any]]:
    tickets = store.list_tickets(session, **filters)
    counts = store.message_counts(session, [t.id for t in tickets if t.id is not None])
    return [ticket_dict(t, prefix, counts.get(t.id or 0, 0)) for t in tickets]


def member_detail(session: Session, prefix: str, address: str) -> dict[str, Any] | None:
    """``members show ADDRESS|NUMBER``: the member's contact and tickets, open ones first, newest
    first (contract 4.5a); ``undeliverable_since`` only while the bounce mark holds. With a
    register member (contract 10: by address, or by a member number), ``member`` and every
    ticket linked to them, whatever address they wrote from. None when maild knows no
    contact, ticket or member of it."""
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
    rows = ticket_rows(session, prefix, requester=address) if address else []
    have = {row["number"] for row in rows}
    more = [t for t in session.exec(select(Ticket).where(col(Ticket.id).in_(ticket_ids))) if t.number not in have] \
        if ticket_ids else []
    counts = store.message_counts(session, [t.id for t in more if t.id is not None])
    return rows + [ticket_dict(t, prefix, counts.get(t.id or 0, 0)) for t in more]


def message_dict(message: Message) -> dict[str, Any]:
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
    }


def event_dict(event: Event) -> dict[str, Any]:
    return {"at": _iso(event.at), "actor": event.actor, "kind": event.kind, "data": event.data}


def ticket_detail(session: Session, prefix: str, number: int) -> dict[str, Any] | None:
    ticket = store.ticket_by_number(session, number)
    if ticket is None:
        return None
    messages = store.messages_of(session, ticket)
    detail = ticket_dict(ticket, prefix, len(messages))
    since = store.contact_of(session, ticket.requester).undeliverable_since
    detail["requester_undeliverable"] = undeliverable(since, utcnow())
    detail["messages"] = [message_dict(m) for m in messages]
    detail["events"] = [event_dict(e) for e in store.events_of(session, ticket)]
    linked = store_members.member_of_ticket(session, ticket.id or 0)  # member register (contract 10)
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
    rows = session.exec(select(Quarantine).where(Quarantine.released_at == None).order_by(Quarantine.id))  # noqa: E711
    return [quarantine_dict(row) for row in rows]


def quarantine_row(session: Session, qid: int) -> dict[str, Any] | None:
    row = session.get(Quarantine, qid)
    return quarantine_dict(row) if row else None


def rules_verdict(
    rules: RuleSet, raw: bytes, recipients: tuple[str, ...],
    find_member: Callable[[str, tuple[str, ...]], Link] | None = None,
) -> dict[str, Any]:
    """``maild rules test``: classification and routing decision for a raw message, with reasons.
    ``find_member(sender, member numbers in the mail)``: who the sender is in the register
    (contract 10); without it, nobody is a member."""
    try:
        parsed, message = parse_message(raw)
    except ParseError as exc:
        return {"classification": "unparseable", "queue": None, "priority": None, "category": None,
                "assignee": None, "ack": False, "ack_reason": f"unparseable: {exc}", "matched_rules": [], "member": None}
    envelope = Envelope(source="pipe", recipients=recipients)
    verdict = classify(parsed, envelope, message, rules.addresses())
    found = find_member(parsed.from_addr, member_numbers(parsed.subject, parsed.text)) if find_member else NO_LINK
    decision = decide(facts_from(parsed, recipients, found.member), rules)
    if verdict.is_machine:
        ack, reason = False, f"{verdict.kind}: {verdict.reason}"
    elif decision.drop:
        ack, reason = False, "dropped by rule"
    elif decision.ack is False:
        ack, reason = False, "a rule turned the acknowledgement off"
    else:
        ack = decision.ack if isinstance(decision.ack, str) else "ack"
        reason = "new ticket from a person"
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
