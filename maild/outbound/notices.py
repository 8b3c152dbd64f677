"""Mail about tickets, built from templates: what each notice says and to whom.

The functions here decide content and addressing; they return ``Outgoing`` values and
never send: the caller queues them in the outbox in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maild.core.business_time import BusinessCalendar
from maild.core.threader import format_tag
from maild.core.tokens import ticket_token
from maild.mail import Parsed
from maild.outbound.compose import Outgoing, new_message_id
from maild.outbound.templates import Templates
from maild.rules.model import Queue, RuleSet
from maild.store.tables import Ticket


@dataclass
class Mailer:
    """What every notice needs: templates, the instance's identity and its secret."""

    templates: Templates
    instance_name: str
    hostname: str
    tag_prefix: str
    secret: bytes
    timezone: str

    def calendar(self, rules: RuleSet) -> BusinessCalendar:
        return BusinessCalendar(rules.business_hours, self.timezone)

    def reply_address(self, queue: Queue, number: int) -> str:
        """The queue address with the ticket's reply token (``jasenpalvelu+TOKEN@...``)."""
        local, _, domain = queue.address.partition("@")
        return f"{local}+{ticket_token(self.secret, number)}@{domain}"


def ticket_context(ticket: Ticket, prefix: str, requester_name: str) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "tag": format_tag(prefix, ticket.number),
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "category": ticket.category,
        "created_at": ticket.created_at,
        "requester": ticket.requester,
        "requester_name": requester_name,
        "assignee": ticket.assignee,
        "confidential": ticket.confidential,
    }


def acknowledgement(
    mailer: Mailer, rules: RuleSet, queue: Queue, ticket: Ticket, parsed: Parsed, template: str, now: datetime
) -> Outgoing:
    """The answer to a member's new ticket (contract 4.2): tag, next steps, expected response."""
    sla = rules.sla.get(ticket.priority)
    context = {
        "instance": mailer.instance_name,
        "queue": queue,
        "ticket": ticket_context(ticket, mailer.tag_prefix, parsed.from_name),
        "sla": sla,
        "due": mailer.calendar(rules).add(now, sla) if sla else None,
        "member_text": parsed.text,
    }
    rendered = mailer.templates.render(template, queue.language, context)
    references = parsed.references + ((parsed.message_id,) if parsed.message_id else ())
    return Outgoing(
        from_name=queue.name,
        from_addr=queue.address,
        to=(ticket.requester,),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=new_message_id(mailer.hostname),
        in_reply_to=parsed.message_id,
        references=references,
        reply_to=mailer.reply_address(queue, ticket.number),
        auto="auto-replied",
        date=now,
    )
