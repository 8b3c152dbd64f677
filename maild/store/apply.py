"""Carry out a ``core.plan.Plan`` in the caller's transaction. No decisions here: the plan has
made them all; this module only knows how each effect is written.

Rows go in with SQLAlchemy Core: a new ticket (``NewTicket``) and the message read at once,
since the rows after them need their ids; the mail queued (made when its effect comes, so from
the ticket as it is at that moment), the events and the counters at the end of the message,
or of its batch (``Deferred``). A ticket the plan found (a follow-up's) stays an ORM object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from maild.core import threader
from maild.core.kinds import Direction, EventKind, MessageKind
from maild.core.plan import (
    AddEvent, AddNote, BumpCounter, CreateTicket, Effect, EnsureContact, LinkMember, MarkUndeliverable, NoteOnSpool, Plan,
    Quarantine, QueueMail, StoreMessage, UpdateTicket,
)
from maild.mail import Parsed
from maild.outbound import notices, outbox
from maild.outbound.compose import Outgoing
from maild.outbound.notices import Mailer, MessageFile
from maild.rules.model import RuleSet
from maild.store import tickets as store
from maild.store.attachments import attachment_path, save_attachments
from maild.store.tables import Contact, Counter, Event, Inbound, Message, Ticket

log = logging.getLogger("maild.ingest")

Notice = Callable[[Mailer, RuleSet, Ticket, dict[str, Any]], list[Outgoing]]

# QueueMail.notice -> how ``outbound.notices`` makes it from the ticket and the plan's values
# (and ``files``, the stored attachments of the message filed, for the notices that carry them)
NOTICES: dict[str, Notice] = {
    "acknowledgement": lambda m, r, t, a: [
        notices.acknowledgement(m, r, a["queue"], t, a["parsed"], a["template"], a["now"])],
    "canned_answer": lambda m, r, t, a: [notices.canned_answer(m, a["queue"], t, a["parsed"], a["answer"], a["now"])],
    "staff_new": lambda m, r, t, a: notices.staff_new(
        m, r, a["queue"], t, a["parsed"], a["other_open"], a["not_recipients"], a["recipients"], a["now"],
        a.get("suggestions", ()), a.get("member"), a.get("files", ())),
    "staff_followup": lambda m, r, t, a: notices.staff_followup(
        m, a["queue"], t, a["parsed"], a["requester_name"], a["third_party"], a["not_recipients"], a["recipients"],
        a["now"], a.get("member"), a.get("files", ())),
    "command_errors": lambda m, r, t, a: [
        notices.command_errors(m, a["queue"], t, a["writer"], a["parsed"], a["errors"], a["now"])],
    "nothing_relayed": lambda m, r, t, a: [notices.nothing_relayed(m, a["queue"], t, a["writer"], a["parsed"], a["now"])],
    "files_not_relayed": lambda m, r, t, a: [
        notices.files_not_relayed(m, a["queue"], t, a["writer"], a["parsed"], a["left_out"], a["now"])],
    "relayed_answer": lambda m, r, t, a: [
        notices.relayed_answer(m, a["queue"], t, a["answer"], a["in_reply_to"], a["references"], a["now"],
                               canned_text(a))],
    "opening_refused": lambda m, r, t, a: [
        notices.opening_refused(m, a["queue"], a["writer"], a["parsed"], a["errors"], a["now"])],
    "resolved": lambda m, r, t, a: [notices.resolved(m, r, a["queue"], t, a["requester_name"], a["now"])],
}


def canned_text(args: dict[str, Any]) -> tuple[str, ...]:
    """The rendered ``#answer``s of a relayed answer. The pipeline renders them before the plan
    is applied (``Pipeline.with_answers``), so that one that fails is the writer's error, not a
    lost answer; a plan that names answers and was not given them is a bug, never a partial mail."""
    if not args.get("answers"):
        return ()
    if "canned_text" not in args:
        raise RuntimeError(f"canned answers {list(args['answers'])} were not rendered before the plan was applied")
    return tuple(args["canned_text"])


@dataclass
class Numbers:
    """Sequence numbers (ticket numbers, round-robin turns) taken in one transaction: the first
    of each sequence from the database, whose UPDATE locks the counter until the commit
    (``store.tickets.next_number``); the rest counted here and written back in one UPDATE
    (``write``) with the batch's other deferred rows, before anything reads a counter."""

    taken: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)  # each counter's value in the database

    def take(self, session: Session, name: str) -> int:
        if name in self.taken:
            self.taken[name] += 1
        else:
            self.taken[name] = self.stored[name] = store.next_number(session, name)
        return self.taken[name]

    def write(self, session: Session) -> None:
        for name, value in self.taken.items():
            if value != self.stored[name]:
                session.connection().execute(_SET_COUNTER, {"counter": name, "value": value})
        self.taken, self.stored = {}, {}


@dataclass
class Applying:
    """Where a plan is carried out, and what it is about."""

    session: Session
    mailer: Mailer
    rules: RuleSet
    data_dir: Path
    now: datetime
    inbound: Inbound | None = None
    parsed: Parsed | None = None
    ticket: Ticket | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    mail: list[tuple[int | None, QueueMail, outbox.Made]] = field(default_factory=list)  # (ticket id, ...) to write
    quarantined: str | None = None
    files: tuple[MessageFile, ...] = ()  # the stored attachments of the message filed
    recipients: set[str] = field(default_factory=set)  # to whom its mail goes (once applied)
    numbers: Numbers = field(default_factory=Numbers)  # the batch's, when it is filed in one


def apply(applying: Applying, plan: Plan, deferred: Deferred | None = None) -> str:
    """Write every effect of ``plan`` in order; return what became of the message
    (``new:12``, ``follow_up:12``, ``duplicate``, ``quarantined:error``...). Its mail and events
    are written at its end, or left in ``deferred`` to be written with the rest of its batch."""
    session = applying.session
    if deferred is not None:
        applying.numbers = deferred.numbers
    if plan.ticket is not None and plan.ticket.id is not None and applying.ticket is None:
        applying.ticket = session.get(Ticket, plan.ticket.id)
    for effect in plan.effects:
        _apply(applying, effect)
    if isinstance(applying.ticket, NewTicket):
        applying.ticket.update(session)
    written = Deferred(numbers=applying.numbers) if deferred is None else deferred
    applying.recipients = written.add(applying)
    if deferred is None or written.size >= outbox.BIG:  # a batch never holds much mail in memory
        written.write(session)
    if applying.quarantined:  # else a spooled message is marked done by its caller, with its batch
        return f"quarantined:{applying.quarantined}"
    if applying.ticket is None or plan.outcome == "duplicate":
        return str(plan.outcome)
    return f"{plan.outcome}:{applying.ticket.number}"


@dataclass
class NewTicket:
    """A ticket a plan creates, as the notices read it (a ``Ticket``'s columns): inserted at
    once with Core, since the rows after it need its id; changed in memory by the plan's later
    effects, and those changes written in one UPDATE at the plan's end. An ORM ``Ticket``
    costs several times this to make and flush, for every new request."""

    number: int
    queue: str
    priority: str
    category: str | None
    subject: str
    requester: str
    confidential: bool
    tags: list[str]
    other_queues: list[str]
    cc: list[str]
    linked_to: int | None
    channel: str
    created_at: datetime
    updated_at: datetime
    status_changed_at: datetime
    status: str = "new"
    assignee: str | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    first_response_at: datetime | None = None
    erased_at: datetime | None = None
    id: int | None = None
    changed: set[str] = field(default_factory=set)  # columns set since the insert

    @classmethod
    def created(cls, effect: CreateTicket, number: int, now: datetime) -> NewTicket:
        """The ticket ``effect`` creates, numbered: what the plan decided, as the columns hold it."""
        values = {f.name: getattr(effect, f.name) for f in fields(effect)}
        values.update((name, list(values[name])) for name in ("tags", "other_queues", "cc"))
        return cls(number=number, created_at=now, updated_at=now, status_changed_at=now, **values)

    def insert(self, session: Session) -> None:
        values = {name: getattr(self, name) for name in _TICKET_COLUMNS if name != "id"}
        self.id = session.connection().execute(_INSERT_TICKET, values).scalar_one()

    def update(self, session: Session) -> None:
        if self.changed:
            session.connection().execute(sa.update(_TICKETS).where(_TICKETS.c.id == self.id).values(
                {name: getattr(self, name) for name in sorted(self.changed)}))
            self.changed = set()


@dataclass
class Deferred:
    """The mail, events and counters of messages filed in one transaction, written together:
    each counter once, every mail in two statements (``outbox.write``), then every event in
    one, in the order they were made (each message's own events, then what is on the record
    about its mail). Nothing filing reads back is among them but what a message's lookups may
    ask (outbox, mail on the ticket, a round-robin turn): the batch writes them before it looks
    anything up alone (``ingest``)."""

    groups: list[tuple[datetime, list[dict[str, Any]], list[tuple[int | None, QueueMail, outbox.Made]]]] = field(
        default_factory=list)
    size: int = 0  # bytes of mail held
    numbers: Numbers = field(default_factory=Numbers)

    def add(self, a: Applying) -> set[str]:
        """Take the mail and events of ``a``; returns to whom its mail goes."""
        recipients = {row["recipient"] for _, _, made in a.mail for row in made.rows}
        self.size += sum(len(row["raw"][0]) + sum(map(len, row["raw"][1])) for _, _, made in a.mail for row in made.rows)
        if a.events or a.mail:
            self.groups.append((a.now, a.events, a.mail))
            a.events, a.mail = [], []
        return recipients

    def write(self, session: Session) -> None:
        self.numbers.write(session)
        if not self.groups:
            return
        queued = iter(outbox.write(session, [made for _, _, mail in self.groups for _, _, made in mail]))
        events: list[dict[str, Any]] = []
        for now, own, mail in self.groups:
            events.extend(own)
            for (ticket_id, effect, made), message in zip(mail, queued):
                if ticket_id is None:  # mail of no ticket: nothing to record it on
                    continue
                if made.left_out:  # docs/mail.md#recipients
                    events.append({"ticket_id": ticket_id, "kind": str(EventKind.OUTGOING_VALUES_LEFT_OUT),
                                   "actor": "maild", "data": {"mail": str(effect.kind), "notes": made.left_out},
                                   "at": now})
                if message is not None and effect.relayed_by:  # recorded as relayed only when queued, to whom
                    events.append({"ticket_id": ticket_id, "kind": str(EventKind.RELAYED), "actor": effect.relayed_by,
                                   "data": {"to": [*message.to, *message.cc]}, "at": now})
        if events:
            session.connection().execute(sa.insert(_EVENTS), events)
        self.groups, self.size = [], 0


def _apply(a: Applying, effect: Effect) -> None:  # noqa: C901 - one case per effect
    session, ticket = a.session, a.ticket
    if isinstance(effect, AddEvent):
        assert ticket is not None and ticket.id is not None
        a.events.append({"ticket_id": ticket.id, "kind": str(effect.kind), "actor": effect.actor,
                         "data": dict(effect.data), "at": effect.at or a.now})
    elif isinstance(effect, UpdateTicket):
        assert ticket is not None
        for name, value in effect.changes.items():
            setattr(ticket, name, list(value) if name == "cc" else value)
        if isinstance(ticket, NewTicket):
            ticket.changed.update(effect.changes)
    elif isinstance(effect, QueueMail):
        _queue_mail(a, ticket, effect)
    elif isinstance(effect, StoreMessage):
        assert ticket is not None and a.parsed is not None
        _store_message(a, ticket, a.parsed, effect)
    elif isinstance(effect, EnsureContact):
        ensure_contact(session, effect.address, effect.name, a.now)
    elif isinstance(effect, CreateTicket):
        a.ticket = NewTicket.created(effect, a.numbers.take(session, "ticket"), a.now)  # type: ignore[assignment]
        a.ticket.insert(session)  # type: ignore[union-attr] - a NewTicket is read as a Ticket by the notices
    elif isinstance(effect, LinkMember):
        assert ticket is not None
        _link_member(a, ticket, effect)
    elif isinstance(effect, BumpCounter):
        a.numbers.take(session, effect.name)
    elif isinstance(effect, MarkUndeliverable):
        store.mark_undeliverable(session, effect.address, a.now)
    elif isinstance(effect, Quarantine):
        store.quarantine(session, effect.kind, effect.reason, a.inbound, from_addr=effect.sender, subject=effect.subject)
        a.quarantined = str(effect.kind)
    elif isinstance(effect, NoteOnSpool):
        if a.inbound is not None:
            a.inbound.error = effect.error
        log.info("inbound %s: %s", a.inbound.id if a.inbound else "-", effect.error)
    elif isinstance(effect, AddNote):
        assert ticket is not None
        session.add(Message(ticket_id=ticket.id, direction=Direction.IN, kind=str(effect.kind), from_addr=effect.author,
                            text=effect.text, subject=effect.subject, created_at=a.now))
    else:  # pragma: no cover - a new effect needs its case here
        raise TypeError(f"no way to apply {effect!r}")


_CONTACTS = Contact.__table__  # type: ignore[attr-defined]
_TICKETS = Ticket.__table__  # type: ignore[attr-defined]
_TICKET_COLUMNS = tuple(column.name for column in _TICKETS.columns)
_INSERT_TICKET = sa.insert(_TICKETS).returning(_TICKETS.c.id)
_COUNTERS = Counter.__table__  # type: ignore[attr-defined]
_SET_COUNTER = sa.update(_COUNTERS).where(_COUNTERS.c.name == sa.bindparam("counter")).values(value=sa.bindparam("value"))
_MESSAGES = Message.__table__  # type: ignore[attr-defined]
_EVENTS = Event.__table__  # type: ignore[attr-defined]
_STORE_MESSAGE = sa.insert(_MESSAGES).returning(_MESSAGES.c.id)


def _contact_upsert(dialect: str) -> Any:
    """INSERT a contact; when the address is known, only a name it lacks is filled in."""
    insert = (sqlite_insert if dialect == "sqlite" else pg_insert)(_CONTACTS)
    return insert.on_conflict_do_update(
        index_elements=[_CONTACTS.c.address], set_={"name": insert.excluded.name},
        where=sa.and_(_CONTACTS.c.name == "", insert.excluded.name != ""))


_UPSERTS = {"sqlite": _contact_upsert("sqlite"), "postgresql": _contact_upsert("postgresql")}


def ensure_contact(session: Session, address: str, name: str, now: datetime) -> None:
    """The contact for an address, made if new (race-free); a name is kept once known. One statement."""
    session.connection().execute(_UPSERTS[session.get_bind().dialect.name],
                                 {"address": address, "name": name, "created_at": now, "undeliverable": False})


def _store_message(a: Applying, ticket: Ticket, parsed: Parsed, effect: StoreMessage) -> None:
    inbound = a.inbound
    values = {
        "ticket_id": ticket.id, "inbound_id": inbound.id if inbound else None, "direction": Direction.IN,
        "kind": str(effect.kind), "message_id": parsed.message_id, "fingerprint": threader.fingerprint(parsed),
        "from_addr": parsed.from_addr or ((inbound.mail_from if inbound else "") or "").lower(),
        "from_name": parsed.from_name, "to": list(parsed.to), "cc": list(parsed.cc), "subject": parsed.subject,
        "date": parsed.date, "in_reply_to": parsed.in_reply_to[0] if parsed.in_reply_to else None,
        "references": list(parsed.references), "classification": effect.classification,
        "text": parsed.text if effect.text is None else effect.text,
        "html": parsed.html, "raw_path": inbound.raw_path if inbound else None, "created_at": a.now,
    }
    message_id = a.session.connection().execute(_STORE_MESSAGE, values).scalar_one()
    if parsed.attachments:  # save_attachments only needs the row's id
        rows = save_attachments(a.session, a.data_dir, SimpleNamespace(id=message_id), parsed.attachments)  # type: ignore[arg-type]
        a.session.flush()  # their ids, for ``maild attachments get ID`` in the notifications
        a.files = tuple(
            MessageFile(row.id or 0, row.filename, row.content_type, row.size, attachment_path(a.data_dir, row),
                        item.content_id) for row, item in zip(rows, parsed.attachments))
    if parsed.cleaned:  # docs/mail.md#recipients: what was cleaned or left out is on the record
        a.events.append({"ticket_id": ticket.id, "kind": str(EventKind.MAIL_VALUES_CLEANED), "actor": "maild",
                         "data": {"message": message_id, "notes": list(parsed.cleaned)}, "at": a.now})


def _link_member(a: Applying, ticket: Ticket, effect: LinkMember) -> None:
    """Keep the ticket's member (a lookup's answer saved first), and say how it was found, or
    that the mail named another member's number (for staff). A member that an import removed
    meanwhile leaves the ticket unlinked, never lost (``store.members.link_ticket``)."""
    from maild.store import members as store_members

    member = store_members.link_ticket(a.session, ticket, effect.link, a.now)
    if member is None:
        return
    a.events.append({"ticket_id": ticket.id, "kind": str(EventKind.MEMBER_LINKED), "actor": "maild",
                     "data": {"member_number": member.member_number, "linked_by": effect.link.linked_by}, "at": a.now})
    if effect.link.conflict:
        a.events.append({"ticket_id": ticket.id, "kind": str(EventKind.MEMBER_CONFLICT), "actor": "maild", "data": {
            "member_number": member.member_number, "mentioned_number": effect.link.conflict,
            "reason": "the mail names another member's number; the sender's address decides"}, "at": a.now})


def _queue_mail(a: Applying, ticket: Ticket | None, effect: QueueMail) -> None:
    """Make the mail from the ticket as it is now (written with the plan's other mail, at its
    end); one that cannot be made is an event, never a lost ticket. Mail about no ticket (a
    refused ``#for``) is only logged when it cannot be made."""
    make = NOTICES[effect.notice]
    left_out: list[MessageFile] = []
    try:
        mails = make(a.mailer, a.rules, ticket, {**effect.args, "files": a.files})
        if effect.notice == "relayed_answer" and a.files:  # docs/mail.md#attachments
            html = a.parsed.html if a.parsed else None
            relayed, left_out = notices.with_answer_files(a.mailer, mails[0], html, a.files)
            mails = [relayed, *mails[1:]]
        made = outbox.made(ticket, str(effect.kind), mails, a.mailer.secret, a.mailer.hostname)
    except SQLAlchemyError:
        raise  # the database (a ticket's value loaded late), not the mail
    except Exception as exc:  # a broken template or value must not cost the member their ticket
        log.error("ticket %s: %s not sent: %s", ticket.number if ticket else "-", effect.kind, exc)
        if ticket is None:
            return
        a.events.append({"ticket_id": ticket.id, "kind": f"{effect.kind}_failed", "actor": "maild",
                         "data": {"error": f"{type(exc).__name__}: {exc}"}, "at": a.now})
        return
    if made is None:
        return
    a.mail.append((ticket.id if ticket else None, effect, made))
    if ticket is not None and left_out:
        a.events.append({"ticket_id": ticket.id, "kind": str(EventKind.ATTACHMENTS_NOT_RELAYED),
                         "actor": effect.relayed_by or "maild", "at": a.now, "data": {
                             "attachments": [item.id for item in left_out], "limit": a.mailer.attach_max_bytes}})
        if effect.relayed_by and a.parsed is not None:  # and the writer hears which files did not go
            _queue_mail(a, ticket, QueueMail(MessageKind.NOTIFICATION, "files_not_relayed", {
                "queue": effect.args["queue"], "writer": effect.relayed_by, "parsed": a.parsed,
                "left_out": tuple(left_out), "now": a.now}))
