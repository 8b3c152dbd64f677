"""Mail about tickets, built from templates: what each notice says and to whom.

The functions here decide content and addressing; they return ``Outgoing`` values and
never send: the caller queues them in the outbox in its own transaction.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from maild.core import inline
from maild.core.business_time import BusinessCalendar
from maild.core.classify import LOOP_HEADER
from maild.core.threader import format_tag
from maild.core.tokens import staff_token, ticket_token
from maild.mail import Parsed
from maild.outbound.compose import Attached, Outgoing, new_message_id
from maild.outbound.wire import safe_content_id, safe_filename
from maild.outbound.templates import Templates, header_safe
from maild.rules.model import BusinessHours, Queue, RuleSet
from maild.store.tables import Ticket


@lru_cache(maxsize=8)
def _calendar(hours: BusinessHours, timezone: str) -> BusinessCalendar:
    """One calendar per business-hours setting: it caches the holidays it has looked up."""
    return BusinessCalendar(hours, timezone)


@dataclass
class Mailer:
    """What every notice needs: templates, the instance's identity and its secret."""

    templates: Templates
    instance_name: str
    hostname: str
    tag_prefix: str
    secret: bytes
    timezone: str
    reply_tokens: bool = True  # off where the mail server cannot do plus-addressing
    attach_max_bytes: int = 10485760  # [outbound] attach_max_bytes: files carried by one mail, in all

    def calendar(self, rules: RuleSet) -> BusinessCalendar:
        return _calendar(rules.business_hours, self.timezone)

    def reply_address(self, queue: Queue, number: int, staff: str | None = None) -> str:
        """The queue address with the ticket's reply token (``jasenpalvelu+TOKEN@...``), or a
        staff member's secret one; the plain queue address when tokens are off."""
        if not self.reply_tokens:
            return queue.address
        local, _, domain = queue.address.partition("@")
        token = staff_token(self.secret, number, staff) if staff else ticket_token(self.secret, number)
        return f"{local}+{token}@{domain}"


@dataclass(frozen=True)
class MessageFile:
    """An attachment of the message being filed, as stored: ``id`` for ``maild attachments get
    ID``, ``path`` of its bytes, ``content_id`` as the mail gave it (inline pictures)."""

    id: int
    filename: str
    content_type: str
    size: int
    path: Path
    content_id: str = ""

    def attached(self, content_id: str | None = None) -> Attached:
        return Attached(self.filename, self.content_type, self.path, self.size, content_id)


PART_BYTES = 1024  # what a file costs beside its bytes: its part's headers (an RFC 2231 name), its line
LISTED = 100  # files named in a staff notification; the rest are counted (``maild tickets show`` lists them)


def within_budget(files: Sequence[MessageFile], limit: int) -> tuple[list[MessageFile], list[MessageFile]]:
    """The files that go with a mail, in order while each fits in what is left of ``limit``
    bytes, and those left out (docs/mail.md#attachments). Each file costs its size and
    :data:`PART_BYTES`, so that thousands of empty files cannot carry a mail past the limit.
    A file gone from the attachment store is left out too: the mail goes without it rather
    than not at all."""
    taken: list[MessageFile] = []
    left_out: list[MessageFile] = []
    room = limit
    for item in files:
        if item.size + PART_BYTES <= room and item.path.is_file():
            taken.append(item)
            room -= item.size + PART_BYTES
        else:
            left_out.append(item)
    return taken, left_out


def _file_context(files: Sequence[MessageFile], taken: Sequence[MessageFile]) -> list[dict[str, Any]]:
    ids = {item.id for item in taken}
    return [{"id": item.id, "filename": safe_filename(item.filename, item.content_type),
             "content_type": item.content_type, "size": item.size, "attached": item.id in ids} for item in files]


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


def _to_unproven(ticket: Ticket, prefix: str, parsed: Parsed) -> tuple[dict[str, Any], str]:
    """The ticket's context and the member's text for maild's automatic answer to a new ticket.
    A web form proves nothing about the address typed into it, so an answer to a form post
    carries nothing the poster wrote (no subject, name or text): the form cannot make maild
    send someone else's words to any address (docs/mail.md#web-form)."""
    context = ticket_context(ticket, prefix, parsed.from_name)
    if ticket.channel != "web":
        return context, parsed.text
    return {**context, "subject": "", "requester_name": ""}, ""


def acknowledgement(
    mailer: Mailer, rules: RuleSet, queue: Queue, ticket: Ticket, parsed: Parsed, template: str, now: datetime
) -> Outgoing:
    """The answer to a member's new ticket (docs/mail.md#what-maild-sends): tag, next steps, expected response."""
    sla = rules.sla.get(ticket.priority)
    ticket_values, member_text = _to_unproven(ticket, mailer.tag_prefix, parsed)
    context = {
        "instance": mailer.instance_name,
        "queue": queue,
        "ticket": ticket_values,
        "sla": sla,
        "due": mailer.calendar(rules).add(now, sla) if sla else None,
        "member_text": member_text,
    }
    rendered = mailer.templates.render(template, queue.language, context)
    return _auto_reply(mailer, queue, ticket, parsed, rendered.subject, rendered.text, rendered.html, now)


def _auto_reply(mailer: Mailer, queue: Queue, ticket: Ticket, parsed: Parsed, subject: str, text: str,
                html: str | None, now: datetime) -> Outgoing:
    """maild's automatic answer to a member's new ticket (the acknowledgement, or a rule's
    canned answer in its place): from the queue, in reply to their mail, with the ticket's token."""
    references = parsed.references + ((parsed.message_id,) if parsed.message_id else ())
    return Outgoing(
        from_name=queue.name,
        from_addr=queue.address,
        to=(ticket.requester,),
        subject=subject,
        text=text,
        html=html,
        message_id=new_message_id(mailer.hostname),
        in_reply_to=parsed.message_id,
        references=references,
        reply_to=mailer.reply_address(queue, ticket.number),
        auto="auto-replied",
        date=now,
    )


def _staff_mails(
    mailer: Mailer, queue: Queue, ticket: Ticket, recipients: tuple[str, ...], template: str,
    context: dict[str, Any], parsed: Parsed, now: datetime, files: Sequence[MessageFile] = (),
) -> list[Outgoing]:
    """One notice to each of ``recipients``: rendered once, the same text and files for all
    (encoded once: ``compose.build_many``); each gets their own Message-ID and secret reply
    address. ``files``: the member's attachments, carried up to ``attach_max_bytes`` in all,
    the rest listed with the command that gets them (docs/mail.md#attachments)."""
    if not recipients:
        return []
    taken, _ = within_budget(files, mailer.attach_max_bytes)
    context = {**context, "attachments": _file_context(files[:LISTED], taken),
               "attachments_unlisted": max(len(files) - LISTED, 0), "attach_max_bytes": mailer.attach_max_bytes}
    attachments = tuple(item.attached() for item in taken)
    rendered = mailer.templates.render(template, queue.language, context)
    references = parsed.references + ((parsed.message_id,) if parsed.message_id else ())
    return [
        Outgoing(
            from_name=queue.name,
            from_addr=queue.address,
            to=(staff,),
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=new_message_id(mailer.hostname),
            in_reply_to=parsed.message_id,
            references=references,
            reply_to=mailer.reply_address(queue, ticket.number, staff),
            auto="auto-generated",
            date=now,
            attachments=attachments,
        )
        for staff in recipients
    ]


def staff_new(
    mailer: Mailer, rules: RuleSet, queue: Queue, ticket: Ticket, parsed: Parsed, other_open: list[dict[str, Any]],
    not_recipients: tuple[str, ...], recipients: tuple[str, ...], now: datetime,
    suggestions: Sequence[Mapping[str, str]] = (), member: dict[str, Any] | None = None,
    files: Sequence[MessageFile] = (),
) -> list[Outgoing]:
    """A new ticket, to each of ``recipients`` with their own secret reply address.
    ``not_recipients``: addresses in the mail that do not get the ticket's mail (``#cc`` adds one);
    ``suggestions``: canned answers the rules suggest (``name``, ``title``), for ``#answer NAME``;
    ``member``: the requester in the member register (``core.members.template_member``), or None;
    ``files``: the attachments of the member's mail."""
    sla = rules.sla.get(ticket.priority)
    context = {
        "instance": mailer.instance_name,
        "queue": queue,
        "ticket": ticket_context(ticket, mailer.tag_prefix, parsed.from_name),
        "member_text": parsed.text,
        "due": mailer.calendar(rules).add(now, sla) if sla else None,
        "other_open": other_open,
        "not_recipients": list(not_recipients),
        "suggestions": [dict(item) for item in suggestions],
        "member": member,  # member register (issue 16)
    }
    return _staff_mails(mailer, queue, ticket, recipients, "staff_new", context, parsed, now, files)


def staff_followup(
    mailer: Mailer, queue: Queue, ticket: Ticket, parsed: Parsed, requester_name: str, third_party: bool,
    not_recipients: tuple[str, ...], recipients: tuple[str, ...], now: datetime, member: dict[str, Any] | None = None,
    files: Sequence[MessageFile] = (),
) -> list[Outgoing]:
    """A new message on a ticket, to its assignee (or the queue's staff when nobody owns it).
    ``not_recipients``: addresses in the mail that do not get the ticket's mail (``#cc`` adds one).
    ``member``: the ticket's member in the register, or None; ``files``: the message's attachments."""
    context = {
        "instance": mailer.instance_name,
        "queue": queue,
        "ticket": ticket_context(ticket, mailer.tag_prefix, requester_name),
        "sender": parsed.from_addr,
        "sender_name": parsed.from_name,
        "third_party": third_party,
        "member_text": parsed.text,
        "not_recipients": list(not_recipients),
        "member": member,  # member register (issue 16)
    }
    return _staff_mails(mailer, queue, ticket, recipients, "staff_followup", context, parsed, now, files)


def canned_answer(mailer: Mailer, queue: Queue, ticket: Ticket, parsed: Parsed, name: str, now: datetime) -> Outgoing:
    """A rule's canned answer to a member's new ticket, in place of the acknowledgement: the
    answer's title after the tag as the subject, so that a reply threads like any other."""
    from maild.outbound.answers import Answers

    ticket_values, member_text = _to_unproven(ticket, mailer.tag_prefix, parsed)
    rendered = Answers(mailer.templates).render(name, queue.language, {
        "instance": mailer.instance_name, "queue": queue, "ticket": ticket_values, "sla": None, "due": None,
        "member_text": member_text})
    subject = header_safe(f"{format_tag(mailer.tag_prefix, ticket.number)} {rendered.title}")
    return _auto_reply(mailer, queue, ticket, parsed, subject, rendered.text, None, now)


def canned_texts(mailer: Mailer, queue: Queue, ticket: Ticket, names: Sequence[str], requester_name: str) -> tuple[str, ...]:
    """The texts of the canned answers a staff reply names (``#answer NAME``), in the queue's
    language, rendered with the ticket's context as it is before the reply's commands. Raises
    ``LookupError`` for a name the language lacks and ``jinja2.TemplateError`` (or the
    ``TypeError``/``ValueError`` of a filter) for one that does not render."""
    from maild.outbound.answers import Answers

    answers = Answers(mailer.templates)
    context = {"instance": mailer.instance_name, "queue": queue, "sla": None, "due": None, "member_text": "",
               "ticket": ticket_context(ticket, mailer.tag_prefix, requester_name)}
    return tuple(answers.render(name, queue.language, context).text for name in names)


def relayed_answer(
    mailer: Mailer, queue: Queue, ticket: Ticket, answer: str, in_reply_to: str | None, references: tuple[str, ...],
    now: datetime, canned: Sequence[str] = (),
) -> Outgoing:
    """A staff member's answer, to the member and the ticket's CCs, as the queue. A person
    wrote it, so it carries no Auto-Submitted. ``canned``: the texts of the canned answers
    it names, above what the writer wrote (docs/mail.md#answer)."""
    tag = format_tag(mailer.tag_prefix, ticket.number)
    text = "\n\n".join(part.strip("\n") for part in (*canned, answer) if part.strip())
    return Outgoing(
        from_name=queue.name,
        from_addr=queue.address,
        to=(ticket.requester,),
        cc=tuple(ticket.cc),
        subject=f"Re: {tag} {ticket.subject}",
        text=text + "\n",
        message_id=new_message_id(mailer.hostname),
        in_reply_to=in_reply_to,
        references=references + ((in_reply_to,) if in_reply_to else ()),
        reply_to=mailer.reply_address(queue, ticket.number),
        auto=None,
        date=now,
    )


_SCAN = 1 << 20


@lru_cache(maxsize=8)
def _own_mail(hostname: str) -> re.Pattern[bytes]:
    """Lower-cased header lines that only maild's own mail has: its loop header, a Message-ID it made."""
    return re.compile(rb"(?:^|\n)(?:" + LOOP_HEADER.lower().encode("ascii") + rb"[ \t]*:|message-id:[ \t]*<[0-9a-f]{32}@"
                      + re.escape(hostname.lower().encode("utf-8")) + rb">)")


def maild_mail(item: MessageFile, hostname: str) -> bool:
    """Whether a file of a staff reply is maild's own mail, or holds some: a notification that
    the writer's client attached to the reply (Outlook's "attach original message") or that
    was forwarded as an attachment. Such a file carries the internal block, the staff member's
    secret reply address and the member's files; like the quotation, it is never relayed.
    Known by the loop header maild writes, or (a client that drops X- headers when it
    attaches a mail) by a Message-ID of maild's own (``compose.new_message_id``)."""
    if not (item.content_type.lower().startswith("message/") or item.filename.lower().endswith(".eml")):
        return False
    own = _own_mail(hostname)
    try:
        with open(item.path, "rb") as source:
            tail = b"\n"
            while chunk := source.read(_SCAN):
                if own.search((tail + chunk).lower()):
                    return True
                tail = chunk[-300:]
    except OSError:
        return False  # gone from the store: within_budget leaves it out
    return False


def with_answer_files(
    mailer: Mailer, mail: Outgoing, html: str | None, files: Sequence[MessageFile],
) -> tuple[Outgoing, list[MessageFile]]:
    """A relayed answer with the files of the staff member's reply (docs/mail.md#attachments),
    up to ``attach_max_bytes`` in all, and the files left out for that. The pictures of the
    answer go inline, beside an HTML version of the relayed text (``core.inline``); pictures
    that only the quotation shows are not relayed, like the quotation. ``html``: the reply's
    own HTML part, to find where its pictures are. maild's own mail attached to the reply
    (``maild_mail``) is not relayed either."""
    images = [inline.Image(item.content_id, safe_filename(item.filename, item.content_type)) for item in files
              if item.content_type.lower().startswith("image/") and safe_content_id(item.content_id)]
    choice = inline.choose(mail.text, html, images)
    relayed = [item for item in files if item.content_id not in choice.quoted and not maild_mail(item, mailer.hostname)]
    taken, left_out = within_budget(relayed, mailer.attach_max_bytes)
    shown = [image for image in images if image.content_id in choice.inline
             and any(item.content_id == image.content_id for item in taken)]
    shown_ids = {image.content_id for image in shown}
    attachments = tuple(item.attached(item.content_id if item.content_id in shown_ids else None) for item in taken)
    if not attachments:
        return mail, left_out
    return dataclasses.replace(mail, attachments=attachments,
                               html=inline.answer_html(mail.text, shown) if shown else mail.html), left_out


def resolved(mailer: Mailer, rules: RuleSet, queue: Queue, ticket: Ticket, requester_name: str, now: datetime) -> Outgoing:
    """The member's notice that the ticket is resolved (template ``resolved``)."""
    context = {
        "instance": mailer.instance_name,
        "queue": queue,
        "ticket": ticket_context(ticket, mailer.tag_prefix, requester_name),
        "lifecycle": rules.lifecycle,
    }
    rendered = mailer.templates.render("resolved", queue.language, context)
    return Outgoing(
        from_name=queue.name, from_addr=queue.address, to=(ticket.requester,), cc=tuple(ticket.cc),
        subject=rendered.subject, text=rendered.text, html=rendered.html, message_id=new_message_id(mailer.hostname),
        reply_to=mailer.reply_address(queue, ticket.number), auto="auto-generated", date=now,
    )


def command_errors(
    mailer: Mailer, queue: Queue, ticket: Ticket, writer: str, parsed: Parsed, errors: tuple[str, ...], now: datetime
) -> Outgoing:
    """To the staff member whose commands were wrong (template ``command_errors``): what was
    wrong, each error as written; the member hears nothing."""
    return _to_writer(mailer, queue, ticket, writer, parsed, "command_errors", {"errors": list(errors)}, now)


def files_not_relayed(
    mailer: Mailer, queue: Queue, ticket: Ticket, writer: str, parsed: Parsed, files: Sequence[MessageFile], now: datetime,
) -> Outgoing:
    """To the staff member whose answer went without some of its files (template
    ``files_not_relayed``): which, and the limit (docs/mail.md#attachments)."""
    return _to_writer(mailer, queue, ticket, writer, parsed, "files_not_relayed",
                      {"files": _file_context(files, ()), "attach_max_bytes": mailer.attach_max_bytes}, now)


def nothing_relayed(mailer: Mailer, queue: Queue, ticket: Ticket, writer: str, parsed: Parsed, now: datetime) -> Outgoing:
    """To the staff member whose reply held nothing to relay and no command (template
    ``nothing_relayed``): say so."""
    return _to_writer(mailer, queue, ticket, writer, parsed, "nothing_relayed", {}, now)


def opening_refused(
    mailer: Mailer, queue: Queue, writer: str, parsed: Parsed, errors: tuple[str, ...], now: datetime
) -> Outgoing:
    """To the staff member whose ``#for`` mail opened no ticket (template ``opening_refused``):
    why, each reason as written. About no ticket: no tag, the queue's plain address to reply to."""
    context = {"instance": mailer.instance_name, "queue": queue, "writer": writer, "subject": parsed.subject,
               "errors": list(errors)}
    rendered = mailer.templates.render("opening_refused", queue.language, context)
    return Outgoing(
        from_name=queue.name, from_addr=queue.address, to=(writer,), subject=rendered.subject, text=rendered.text,
        html=rendered.html, message_id=new_message_id(mailer.hostname), in_reply_to=parsed.message_id,
        reply_to=queue.address, auto="auto-replied", date=now,
    )


def _to_writer(
    mailer: Mailer, queue: Queue, ticket: Ticket, writer: str, parsed: Parsed, template: str, extra: dict[str, Any],
    now: datetime,
) -> Outgoing:
    """A short answer to a staff member's mail, in the queue's language."""
    context = {
        "instance": mailer.instance_name, "queue": queue, "ticket": ticket_context(ticket, mailer.tag_prefix, ""),
        "writer": writer, **extra,
    }
    rendered = mailer.templates.render(template, queue.language, context)
    return Outgoing(
        from_name=queue.name, from_addr=queue.address, to=(writer,), subject=rendered.subject, text=rendered.text,
        html=rendered.html, message_id=new_message_id(mailer.hostname), in_reply_to=parsed.message_id,
        reply_to=mailer.reply_address(queue, ticket.number, writer), auto="auto-replied", date=now,
    )


def _notice(
    mailer: Mailer, queue: Queue, template: str, context: dict[str, Any], to: str, reply_to: str, now: datetime
) -> Outgoing:
    return _notices(mailer, queue, template, context, [(to, reply_to)], now)[0]


def _notices(
    mailer: Mailer, queue: Queue, template: str, context: dict[str, Any], recipients: list[tuple[str, str]],
    now: datetime,
) -> list[Outgoing]:
    """One notice, rendered once, to each ``(address, reply address)``."""
    if not recipients:
        return []
    rendered = mailer.templates.render(template, queue.language, {"instance": mailer.instance_name, **context})
    return [
        Outgoing(
            from_name=queue.name, from_addr=queue.address, to=(to,), subject=rendered.subject, text=rendered.text,
            html=rendered.html, message_id=new_message_id(mailer.hostname), reply_to=reply_to, auto="auto-generated",
            date=now,
        )
        for to, reply_to in recipients
    ]


def reminder_staff(
    mailer: Mailer, rules: RuleSet, queue: Queue, ticket: Ticket, reason: str, due: datetime, recipients: tuple[str, ...],
    now: datetime,
) -> list[Outgoing]:
    """A ticket waits for its first answer: half its SLA gone (``half_sla``) or past (``breach``)."""
    context = {
        "queue": queue, "ticket": ticket_context(ticket, mailer.tag_prefix, ""), "reason": reason,
        "sla": rules.sla.get(ticket.priority), "due": due, "waiting_since": ticket.created_at,
    }
    return _notices(mailer, queue, "reminder_staff", context,
                    [(staff, mailer.reply_address(queue, ticket.number, staff)) for staff in recipients], now)


def reminder_member(mailer: Mailer, rules: RuleSet, queue: Queue, ticket: Ticket, name: str, now: datetime) -> Outgoing:
    """A pending ticket waits for the member's answer."""
    lifecycle = rules.lifecycle
    context = {
        "queue": queue, "ticket": ticket_context(ticket, mailer.tag_prefix, name), "waiting_since": ticket.status_changed_at,
        "resolve_after_days": lifecycle.resolve_pending_after_days - lifecycle.remind_member_after_days,
    }
    return _notice(mailer, queue, "reminder_member", context, ticket.requester, mailer.reply_address(queue, ticket.number), now)


def digest(
    mailer: Mailer, queue: Queue, staff: str, items: list[dict[str, Any]], more: dict[str, int], now: datetime
) -> Outgoing:
    """A staff member's morning list: overdue first, then their own, then unassigned;
    ``more`` counts, per section, the tickets left out of ``items``."""
    context = {"staff": staff, "now": now, "items": items, "more": more, "total": len(items) + sum(more.values())}
    return _notice(mailer, queue, "digest", context, staff, queue.address, now)
