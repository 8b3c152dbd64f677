"""What the planner needs to know from the database about one message, in few queries.

Each lookup is asked only when its decision can come up: a new ticket's member is looked up
for the acknowledgement and the staff notice, a follow-up's ticket for its lifecycle, the
last member message only when a staff member may relay an answer. Runs in the filing
transaction, so a message sees everything that the messages before it in the batch did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Session, col, select

from maild.core import threader
from maild.core.bounces import undeliverable
from maild.core.kinds import Direction, MessageKind, OPEN_STATUSES
from maild.core.members import NO_LINK, Link, Member
from maild.core.members import link as link_member
from maild.core.plan import (
    CreateTicket, EnsureContact, LinkMember, Lookups, MarkUndeliverable, OtherTicket, Plan, Policy, REFUSED, TicketFacts,
    TicketState, for_line, for_member,
)
from maild.core.reading import Reading, Returned, ToFile
from maild.core.tokens import read_opener_token, read_staff_token, read_ticket_token
from maild.store import members as store_members
from maild.store import tickets as store
from maild.store.tables import Contact, Counter, Message, Outbox, Quarantine, Ticket

if TYPE_CHECKING:
    from maild.lookup import Answer


def state(ticket: Ticket) -> TicketState:
    return TicketState(
        id=ticket.id, number=ticket.number, queue=ticket.queue, status=ticket.status, requester=ticket.requester,
        subject=ticket.subject, priority=ticket.priority, category=ticket.category, assignee=ticket.assignee,
        confidential=ticket.confidential, cc=tuple(ticket.cc), answered=ticket.first_response_at is not None,
        channel=ticket.channel or "email")


def ticket_facts(session: Session, ticket: Ticket, now: datetime, for_staff: bool = True) -> TicketFacts:
    """A ticket and its requester; ``for_staff``: also what resolving and relaying need."""
    contact = session.exec(select(Contact.name, Contact.undeliverable_since)
                           .where(Contact.address == ticket.requester)).first()
    name, since = contact if contact else ("", None)
    machine, last = None, None
    if for_staff and ticket.id is not None:
        machine = store.opened_by_machine(session, [ticket.id]).get(ticket.id)
        row = session.exec(
            select(Message.message_id, Message.references)
            .where(Message.ticket_id == ticket.id, Message.direction == Direction.IN, Message.kind == MessageKind.MEMBER)
            .order_by(col(Message.id).desc()).limit(1)).first()
        last = (row[0], tuple(row[1] or ())) if row else None
    return TicketFacts(state(ticket), name or "", undeliverable(since, now), machine, last)


def for_reading(session: Session, reading: Reading, policy: Policy, secret: bytes, now: datetime,
                asked: Answer | None = None) -> Lookups:
    """The answers ``plan.plan`` needs for ``reading``. ``asked``: the lookup command's answer
    for the sender, asked before the transaction (``Pipeline``), if it was."""
    if isinstance(reading, Returned):
        return _bounce(session, reading, now)
    if not isinstance(reading, ToFile):
        return Lookups()
    found = _thread(session, reading.keys, policy, secret)
    choice = threader.choose(reading.keys, found)
    if choice.action == "duplicate":
        keys = reading.keys
        first = store.first_copy(session, keys.message_id, (keys.fingerprint, keys.legacy_fingerprint))
        ticket = session.get(Ticket, first.ticket_id) if first is not None else None
        if first is None or ticket is None:
            return Lookups(found=found)
        return Lookups(found=found, ticket=TicketFacts(state(ticket)), first_copy=first.id)
    if choice.action == "follow_up" and choice.ticket is not None:
        ticket = store.ticket_by_number(session, choice.ticket.number)
        if ticket is not None:
            queue = policy.rules.queues.get(ticket.queue)
            for_staff = queue is not None and reading.sender in queue.staff
            return Lookups(found=found, ticket=ticket_facts(session, ticket, now, for_staff),
                           ticket_member=_ticket_member(session, ticket) if not for_staff else NO_LINK,
                           member_lookup_error=asked.error if asked else None)
    staff = reading.sender in policy.rules.all_staff() and not reading.verdict.is_machine
    if staff and for_line(reading.parsed.text) is not None:  # #for (docs/mail.md#for): about the member named
        member = for_member(reading.parsed.text)
        return replace(for_opening(session, member, policy, now) if member else Lookups(), found=found,
                       opener=_opener(reading, policy, secret), refusals_last_hour=_refusals(session, reading.sender, now))
    return _with_member(_new(session, reading, found, now), reading, asked, partial(store_members.look_up, session))


def for_opening(session: Session, member: str, policy: Policy, now: datetime) -> Lookups:
    """What opening a ticket for ``member`` needs (``#for``, ``maild tickets open``): their
    contact, bounce mark, acknowledgements of the last hour, open tickets, and their entry in
    the register (by address: the lookup command is asked only for a mail's own sender)."""
    name, since, acks = session.connection().execute(_MEMBER, {"sender": member, "since": now - timedelta(hours=1)}).one()
    other = session.connection().execute(_OTHER_OPEN, {"sender": member}).all()
    by_address, _ = store_members.look_up(session, member, ())
    return replace(_as_new(threader.Found(), name, since, int(acks), [OtherTicket(*row) for row in other], now),
                   member=link_member(by_address, (), {}))


def _refusals(session: Session, sender: str, now: datetime) -> int:
    """How many ``#for`` mails of ``sender`` opened nothing in the last hour (kept in the quarantine)."""
    return session.exec(select(sa.func.count()).select_from(Quarantine).where(
        Quarantine.from_addr == sender, Quarantine.kind == "dropped", col(Quarantine.reason).startswith(REFUSED),
        Quarantine.received_at >= now - timedelta(hours=1))).one()


def _opener(reading: ToFile, policy: Policy, secret: bytes) -> tuple[str, str] | None:
    """(queue id, staff member) when the mail went to a staff member's secret address for
    opening tickets in a queue (``queue+nTOKEN@``, ``core.tokens.opener_token``)."""
    parsed = reading.parsed
    recipients = (*reading.envelope.recipients, *parsed.to, *parsed.cc)
    for address, token in threader.plus_tokens(recipients, policy.rules.addresses()):
        queue = policy.rules.queue_for_address(address)
        staff = read_opener_token(secret, token, queue.id, frozenset(queue.staff)) if queue is not None else None
        if queue is not None and staff is not None:
            return queue.id, staff
    return None


LookUp = Callable[[str, Sequence[str]], tuple[Member | None, dict[str, Member]]]  # (address, numbers)


def _with_member(lookups: Lookups, reading: ToFile, asked: Answer | None, look_up: LookUp) -> Lookups:
    """A new request's lookups with the sender's member (docs/coming.md#member-register): by
    address in the register (``look_up``: the store's, or a batch's prefetched), else the lookup
    command's answer; or by a member number in the mail. Machine mail has no member."""
    member = NO_LINK
    if not reading.verdict.is_machine:
        numbers = reading.numbers
        by_address, by_number = look_up(reading.sender, numbers)
        if by_address is None and asked is not None:
            by_address = asked.member
        member = link_member(by_address, numbers, by_number)
    return replace(lookups, member=member, member_lookup_error=asked.error if asked else None)


def _ticket_member(session: Session, ticket: Ticket) -> Link:
    """A follow-up's ticket's member, as linked, for the staff notification."""
    linked = store_members.member_of_ticket(session, ticket.id or 0) if ticket.id is not None else None
    return Link(linked[0], linked[1]) if linked else NO_LINK  # type: ignore[arg-type]


def _thread(session: Session, keys: threader.ThreadKeys, policy: Policy, secret: bytes) -> threader.Found:
    """The store's answers to what threading asked (``keys``): tickets by token and tag in one
    query, the Message-IDs in two."""
    tokens = []
    for token in keys.tokens:
        number, staff = read_ticket_token(secret, token), None
        if number is None:
            number, staff = read_staff_token(secret, token, policy.rules.all_staff()) or (None, None)
        if number:
            tokens.append((number, staff))
    numbers = {n for n, _ in tokens} | set(keys.tags)
    by_number = {t.number: t for t in store.tickets_by_numbers(session, numbers)} if numbers else {}
    token_ticket, token_staff = next(((by_number[n], s) for n, s in tokens if n in by_number), (None, None))
    reference = store.ticket_for_message_ids(session, keys.referenced) if keys.referenced else None
    return threader.Found(
        same_message_id=_fingerprints(session, keys),
        token_ticket=store.ref(token_ticket) if token_ticket else None,
        token_staff=token_staff,
        tag_tickets=tuple(store.ref(by_number[n]) for n in keys.tags if n in by_number),
        reference_ticket=store.ref(reference) if reference else None,
    )


_CONTACTS = Contact.__table__  # type: ignore[attr-defined]
_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
_TICKETS = Ticket.__table__  # type: ignore[attr-defined]
_MESSAGES = Message.__table__  # type: ignore[attr-defined]
_SENDER = sa.bindparam("sender")
# the member's contact and their acknowledgements of the last hour, in one round trip
_MEMBER = sa.select(
    sa.select(_CONTACTS.c.name).where(_CONTACTS.c.address == _SENDER).scalar_subquery(),
    sa.select(_CONTACTS.c.undeliverable_since).where(_CONTACTS.c.address == _SENDER).scalar_subquery(),
    sa.select(sa.func.count()).select_from(_OUTBOX).where(
        _OUTBOX.c.recipient == _SENDER, _OUTBOX.c.kind == str(MessageKind.ACK),
        _OUTBOX.c.created_at >= sa.bindparam("since", type_=_OUTBOX.c.created_at.type)).scalar_subquery(),
)
_OTHER_OPEN = (sa.select(_TICKETS.c.number, _TICKETS.c.subject, _TICKETS.c.status, _TICKETS.c.queue,
                         _TICKETS.c.confidential)
               .where(_TICKETS.c.requester == _SENDER, _TICKETS.c.status.in_([str(s) for s in OPEN_STATUSES]))
               .order_by(_TICKETS.c.number))
_SAME_MESSAGE_ID = sa.select(_MESSAGES.c.fingerprint).where(
    _MESSAGES.c.direction == str(Direction.IN), _MESSAGES.c.message_id == sa.bindparam("message_id"))


def _as_new(found: threader.Found, name: str | None, since: datetime | None, acks: int, other: Iterable[OtherTicket],
            now: datetime) -> Lookups:
    """A new request's lookups from what is known of its sender: their contact's name and bounce
    mark, acknowledgements of the last hour and open tickets."""
    return Lookups(found=found, sender_name=name, sender_undeliverable=undeliverable(since, now), acks_last_hour=acks,
                   other_open=tuple(other))


def _new(session: Session, reading: ToFile, found: threader.Found, now: datetime) -> Lookups:
    """For a new ticket: the member's contact, bounce mark, acknowledgements and open tickets;
    the assignment's turn or load."""
    sender, decision, connection = reading.sender, reading.decision, session.connection()
    name, since, acks = connection.execute(_MEMBER, {"sender": sender, "since": now - timedelta(hours=1)}).one()
    other = connection.execute(_OTHER_OPEN, {"sender": sender}).all()
    turn, load = 0, {}
    if decision.assign == "round-robin":
        turn = session.exec(select(Counter.value).where(Counter.name == f"round-robin:{decision.queue}")).first() or 0
    elif decision.assign == "least-loaded":
        load = store.open_load(session, decision.queue)
    return replace(_as_new(found, name, since, int(acks), [OtherTicket(*row) for row in other], now),
                   assign_turn=turn, open_load=load)


def _fingerprints(session: Session, keys: threader.ThreadKeys) -> tuple[str, ...]:
    """Fingerprints of stored messages sharing this Message-ID (or, with none, this content)."""
    if not keys.message_id:
        return store.fingerprints_for(session, None, keys.fingerprint)
    rows = session.connection().execute(_SAME_MESSAGE_ID, {"message_id": keys.message_id}).scalars()
    return tuple(fp for fp in rows if fp)


def _bounce(session: Session, reading: Returned, now: datetime) -> Lookups:
    """The mail of maild's that bounced: by the VERP address the bounce came back to, else by
    the returned Message-ID when maild generated it. A bounce of any other message (one that
    maild received, an attacker's own) is not ours: no ticket, so it goes to the quarantine
    (docs/mail.md#bounces)."""
    if reading.outbox_id is not None or reading.outbox_token is not None:
        row = (session.get(Outbox, reading.outbox_id) if reading.outbox_id is not None  # an old token: the row id
               else session.exec(select(Outbox).where(Outbox.bounce_token == reading.outbox_token)).first())
        ticket = session.get(Ticket, row.ticket_id) if row is not None and row.ticket_id is not None else None
        if row is not None and ticket is not None:  # the DSN may name a forward target: the row's recipient
            return Lookups(ticket=TicketFacts(state(ticket)), bounced_failed=(row.recipient,))
    original = reading.bounce.original_message_id if reading.bounce else None
    message = store.outgoing_message(session, original) if original else None
    ticket = session.get(Ticket, message.ticket_id) if message is not None else None
    if message is None or ticket is None:
        return Lookups()
    # by Message-ID, a bounce proves something only about a mail that went to one address: every
    # co-recipient of an answer knows its Message-ID and the member's address, and could forge one
    # (a real bounce comes back to the mail's own VERP address, above)
    listed = set(reading.bounce.recipients) if reading.bounce else set()
    sent = store.sent_to(session, message)
    return Lookups(ticket=TicketFacts(state(ticket)),
                   bounced_failed=tuple(a for a in sent if a in listed) if len(sent) == 1 else ())


# --- a batch's plain new requests, looked up together ---------------------------------------------

_IN = sa.bindparam("values", expanding=True)
_BATCH_FINGERPRINTS = sa.select(_MESSAGES.c.message_id, _MESSAGES.c.fingerprint).where(
    _MESSAGES.c.direction == str(Direction.IN), _MESSAGES.c.message_id.in_(_IN)).order_by(_MESSAGES.c.id)
_BATCH_CONTACTS = sa.select(_CONTACTS.c.address, _CONTACTS.c.name, _CONTACTS.c.undeliverable_since).where(
    _CONTACTS.c.address.in_(_IN))
_BATCH_ACKS = sa.select(_OUTBOX.c.recipient, _OUTBOX.c.created_at).where(
    _OUTBOX.c.recipient.in_(_IN), _OUTBOX.c.kind == str(MessageKind.ACK),
    _OUTBOX.c.created_at >= sa.bindparam("since", type_=_OUTBOX.c.created_at.type))
_BATCH_OTHER_OPEN = (
    sa.select(_TICKETS.c.requester, _TICKETS.c.number, _TICKETS.c.subject, _TICKETS.c.status, _TICKETS.c.queue,
              _TICKETS.c.confidential)
    .where(_TICKETS.c.requester.in_(_IN), _TICKETS.c.status.in_([str(s) for s in OPEN_STATUSES]))
    .order_by(_TICKETS.c.number))


@dataclass
class Prefetched:
    """What the plain new requests of a batch need (nearly every message), asked in five
    queries for the whole batch instead of four for each message: the stored copies of their
    Message-IDs, their senders' contacts, acknowledgements of the last hour, open tickets and
    members. ``answer`` gives exactly what ``for_reading`` would, or None, when the message is
    anything else (a reply, a duplicate, staff mail, a member number to look up, an assignment
    that counts) or when a message before it in the batch wrote something about its sender or
    its Message-ID (``touch``): that message is then looked up alone, after the batch's
    deferred rows are written."""

    since: datetime
    fingerprints: dict[str, tuple[str, ...]] = field(default_factory=dict)
    contacts: dict[str, tuple[str, datetime | None]] = field(default_factory=dict)
    acks: dict[str, list[datetime]] = field(default_factory=dict)
    other_open: dict[str, list[OtherTicket]] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)  # by address
    numbered: dict[str, Member] = field(default_factory=dict)  # by the member numbers the mail mentions
    touched: set[str] = field(default_factory=set)
    register_changed: bool = False  # a looked-up member was saved: it may have taken another row's number

    @classmethod
    def load(cls, session: Session, readings: Iterable[Reading], now: datetime) -> Prefetched:
        """``now``: the batch's start; each message's own hour is counted from its own time.
        A message alone is looked up by ``for_reading``, in fewer queries than these."""
        filing = [r for r in readings if isinstance(r, ToFile)]
        found = cls(since=now - timedelta(hours=1))
        if len(filing) < 2:
            return found  # answers None: nothing was asked
        ids = sorted({r.keys.message_id for r in filing if r.keys.message_id})
        senders = sorted({r.sender for r in filing})
        connection = session.connection()
        fingerprints: dict[str, list[str]] = {i: [] for i in ids}
        if ids:
            for message_id, fingerprint in connection.execute(_BATCH_FINGERPRINTS, {"values": ids}):
                if fingerprint:
                    fingerprints[message_id].append(fingerprint)
        found.fingerprints = {i: tuple(fps) for i, fps in fingerprints.items()}
        if senders:
            found.contacts = {a: (n, s) for a, n, s in connection.execute(_BATCH_CONTACTS, {"values": senders})}
            for recipient, at in connection.execute(_BATCH_ACKS, {"values": senders, "since": found.since}):
                found.acks.setdefault(recipient, []).append(at)
            for requester, *row in connection.execute(_BATCH_OTHER_OPEN, {"values": senders}):
                found.other_open.setdefault(requester, []).append(OtherTicket(*row))
            found.members = store_members.by_addresses(connection, senders)
        numbers = {n for r in filing if not r.verdict.is_machine for n in r.numbers}
        if numbers:
            found.numbered = store_members.by_numbers(connection, numbers)
        return found

    def answer(self, reading: Reading, policy: Policy, now: datetime, asked: Answer | None = None) -> Lookups | None:
        """``for_reading``'s answer for a plain new request from what was prefetched, or None."""
        if isinstance(reading, Returned):
            return None
        if not isinstance(reading, ToFile):
            return Lookups()  # nothing to look up for what cannot be read
        keys, sender = reading.keys, reading.sender
        if keys.tokens or keys.tags or keys.referenced or not keys.message_id:
            return None
        if keys.message_id not in self.fingerprints or keys.message_id in self.touched or sender in self.touched:
            return None
        found = threader.Found(same_message_id=self.fingerprints[keys.message_id])
        if threader.choose(keys, found).action != "new":
            return None
        machine = reading.verdict.is_machine
        if (sender in policy.rules.all_staff() and not machine) or reading.decision.assign in _COUNTED:
            return None
        if self.register_changed and not machine:
            return None
        numbers = () if machine else reading.numbers
        if any(_NUMBER_KEY + number in self.touched for number in numbers):
            return None
        name, since = self.contacts.get(sender, (None, None))
        hour_ago = now - timedelta(hours=1)
        acks = sum(1 for at in self.acks.get(sender, ()) if at >= hour_ago)
        return _with_member(_as_new(found, name, since, acks, self.other_open.get(sender, ()), now), reading, asked,
                            self._look_up)

    def _look_up(self, address: str, numbers: Sequence[str]) -> tuple[Member | None, dict[str, Member]]:
        """``store.members.look_up`` from what was prefetched."""
        return self.members.get(address.strip().lower()), {n: self.numbered[n] for n in numbers if n in self.numbered}

    def touch(self, reading: Reading, plan: Plan, requesters: Iterable[str], recipients: Iterable[str]) -> None:
        """What a message filed in the batch wrote about addresses and Message-IDs: the messages
        after it that share one are looked up alone (``requesters``: of the ticket it touched,
        before and after; ``recipients``: of the mail it queued)."""
        if isinstance(reading, ToFile):
            self.touched.add(reading.sender)
            if reading.keys.message_id:
                self.touched.add(reading.keys.message_id)
        self.touched.update(requesters)
        self.touched.update(recipients)
        for effect in plan.effects:
            if isinstance(effect, (EnsureContact, MarkUndeliverable)):
                self.touched.add(effect.address)
            elif isinstance(effect, CreateTicket):
                self.touched.add(effect.requester)
            elif isinstance(effect, LinkMember) and effect.link.member is not None:
                # saving a lookup's answer moves the row of its number to its address: the old
                # address of that row is unknown here, so no prefetched member is trusted after it
                self.register_changed |= effect.link.member.id is None
                self.touched.add((effect.link.member.email or "").strip().lower())
                self.touched.add(_NUMBER_KEY + (effect.link.member.member_number or ""))


_NUMBER_KEY = "member number "  # no address or Message-ID has a space
_COUNTED = ("round-robin", "least-loaded")  # assignments that read the queue's counter or load
