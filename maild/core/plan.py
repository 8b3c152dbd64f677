"""Every decision about a message or a staff action, as data. Pure: no database, no clock.

``plan(reading, lookups, policy, spooled, now)`` turns what a message says (``core.reading``)
and what the store answered (``Lookups``) into a ``Plan``: an outcome and a tuple of frozen
effects that ``maild.store.apply`` carries out in order, in the caller's transaction.
Threading's choice, the ticket's lifecycle, the acknowledgement policy (docs/mail.md#machines), staff
commands and their proof (4.5), the CC policy (4.5a) and bounces (4.4) are all decided here;
``maild rules test`` and the shell's ticket commands use the same functions, so what they
say and what the processor does cannot drift apart.

Effects act on the plan's one ticket: the existing one named by ``Plan.ticket``, or the one
``CreateTicket`` makes. Adding a decision: a field in ``Lookups`` (filled by
``store.lookup``), a branch here, and if it does something new, an effect and its case in
``store.apply``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union

from maild.core import threader
from maild.core.assignment import pick_assignee
from maild.core.authres import proves_sender
from maild.core.classify import no_member_mail
from maild.core.commands import Command, Context, check, parse_staff_text
from maild.core.kinds import EventKind, Happened, MessageKind, Outcome, QuarantineKind, Status, channel_of
from maild.core.lifecycle import next_status
from maild.core.members import NO_LINK, Link, template_member
from maild.core.reading import Reading, Returned, ToFile, Unreadable

if TYPE_CHECKING:
    from maild.mail import Parsed, Verdict
    from maild.rules.model import Decision, Queue, RuleSet


# --- what the planner is given ---------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """The instance's settings that decisions depend on."""

    rules: RuleSet
    tag_prefix: str
    ack_limit_per_hour: int
    staff_proof: str = "token"  # token | authres | none (docs/mail.md#staff)
    trusted_authserv_ids: frozenset[str] = frozenset()
    answers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # language -> canned answer -> title
    show_fields: tuple[str, ...] = ()  # [members] show_fields: register fields in staff notifications


@dataclass(frozen=True)
class TicketState:
    """A ticket as decisions see it; the planner follows its changes with ``replace``."""

    id: int | None
    number: int
    queue: str
    status: str
    requester: str
    subject: str = ""
    priority: str = "normal"
    category: str | None = None
    assignee: str | None = None
    confidential: bool = False
    cc: tuple[str, ...] = ()
    answered: bool = False  # staff have answered the member (``first_response_at`` is set)

    def ref(self) -> threader.TicketRef:
        return threader.TicketRef(self.number, self.status, self.requester, self.cc)


@dataclass(frozen=True)
class TicketFacts:
    """An existing ticket and what the decisions about it need to know beside it."""

    state: TicketState
    requester_name: str = ""
    requester_undeliverable: bool = False
    opened_by_machine: str | None = None  # the classification of machine mail that opened it
    last_member_message: tuple[str | None, tuple[str, ...]] | None = None  # Message-ID, References


@dataclass(frozen=True)
class OtherTicket:
    """Another open ticket of the same member (listed in the staff's new-ticket notice)."""

    number: int
    subject: str
    status: str
    queue: str
    confidential: bool


@dataclass(frozen=True)
class Lookups:
    """The store's answers for one message (``store.lookup``); the defaults are an empty database."""

    found: threader.Found = threader.Found()
    ticket: TicketFacts | None = None  # follow-up: its ticket; duplicate: the first copy's; bounce: the bounced mail's
    first_copy: int | None = None  # duplicate: the stored message it repeats
    bounced_failed: tuple[str, ...] = ()  # bounce: addresses maild's returned mail went to that the bounce names
    sender_name: str | None = None  # the sender's contact: its name, None when there is none yet
    sender_undeliverable: bool = False
    acks_last_hour: int = 0  # acknowledgements queued to the sender in the last hour
    other_open: tuple[OtherTicket, ...] = ()  # the sender's open tickets
    assign_turn: int = 0  # round-robin: the queue's counter
    open_load: Mapping[str, int] = field(default_factory=dict)  # least-loaded: open tickets per staff
    member: Link = NO_LINK  # new ticket: the sender's member in the register (docs/coming.md#member-register)
    member_lookup_error: str | None = None  # the lookup command failed: filed unlinked, counted
    ticket_member: Link = NO_LINK  # follow-up: the ticket's linked member (for staff_followup)


@dataclass(frozen=True)
class Spooled:
    """The spool row a message came in as (for the record)."""

    id: int | None
    received_at: datetime | None = None


# --- effects -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnsureContact:
    address: str
    name: str = ""


@dataclass(frozen=True)
class CreateTicket:
    queue: str
    priority: str
    category: str | None
    subject: str
    requester: str
    confidential: bool
    tags: tuple[str, ...]
    other_queues: tuple[str, ...]
    cc: tuple[str, ...]
    linked_to: int | None
    channel: str = "email"


@dataclass(frozen=True)
class StoreMessage:
    """The message read on the ticket, as ``kind``."""

    kind: MessageKind
    classification: str


@dataclass(frozen=True)
class AddNote:
    """A note written from the shell."""

    author: str
    text: str
    subject: str


@dataclass(frozen=True)
class UpdateTicket:
    changes: Mapping[str, Any]


@dataclass(frozen=True)
class AddEvent:
    kind: EventKind
    actor: str = "maild"
    data: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None


@dataclass(frozen=True)
class QueueMail:
    """Mail about the ticket, made by ``notices.<notice>`` from ``args`` and the ticket as it is
    when the effect is applied. ``relayed_by``: record a ``relayed`` event, to whom it went."""

    kind: MessageKind
    notice: str
    args: Mapping[str, Any]
    relayed_by: str | None = None


@dataclass(frozen=True)
class LinkMember:
    """Record the new ticket's member (docs/coming.md#member-register); a lookup command's answer is saved first."""

    link: Link


@dataclass(frozen=True)
class MarkUndeliverable:
    address: str


@dataclass(frozen=True)
class BumpCounter:
    name: str


@dataclass(frozen=True)
class Quarantine:
    kind: QuarantineKind
    reason: str
    sender: str = ""
    subject: str = ""


@dataclass(frozen=True)
class NoteOnSpool:
    """A remark on the spool row (a duplicate says of what)."""

    error: str


Effect = Union[EnsureContact, CreateTicket, StoreMessage, AddNote, UpdateTicket, AddEvent, QueueMail, LinkMember,
               MarkUndeliverable, BumpCounter, Quarantine, NoteOnSpool]


@dataclass(frozen=True)
class Plan:
    outcome: Outcome
    effects: tuple[Effect, ...]
    ticket: TicketState | None = None  # the existing ticket the effects are on


# --- messages ------------------------------------------------------------------------------------


def plan(reading: Reading, lookups: Lookups, policy: Policy, spooled: Spooled, now: datetime) -> Plan:
    """What to do with one read message."""
    if isinstance(reading, Unreadable):
        return _quarantine(reading.kind, reading.reason, reading.sender, reading.subject)
    if isinstance(reading, Returned):
        if lookups.ticket is None:  # not a bounce of maild's own mail (docs/mail.md#bounces)
            return _quarantine(QuarantineKind.BOUNCE, reading.verdict.reason, reading.sender, reading.parsed.subject)
        return Plan(Outcome.BOUNCE, bounce_effects(reading, lookups.ticket.state, lookups.bounced_failed), lookups.ticket.state)
    choice = threader.choose(reading.keys, lookups.found)
    if choice.action == "duplicate" and lookups.ticket is not None and lookups.first_copy is not None:
        return duplicate(reading, lookups.ticket.state, lookups.first_copy, policy, spooled)
    if choice.action == "follow_up" and lookups.ticket is not None:
        return follow_up(reading, choice, lookups.ticket, lookups, policy, now)
    if reading.decision.drop:
        names = ", ".join(hit.name for hit in reading.decision.hits) or "rules"
        return _quarantine(QuarantineKind.DROPPED, f"dropped by rule: {names}", reading.sender, reading.parsed.subject)
    return new_ticket(reading, choice, lookups, policy, now)


def _quarantine(kind: QuarantineKind, reason: str, sender: str, subject: str) -> Plan:
    return Plan(Outcome.QUARANTINED, (Quarantine(kind, reason, sender, subject),))


def bounce_effects(reading: Returned, ticket: TicketState, failed: tuple[str, ...]) -> tuple[Effect, ...]:
    """Keep the bounce on its ticket; a permanent failure marks the addresses maild's mail went
    to that failed undeliverable (only those: docs/mail.md#bounces)."""
    bounce = reading.bounce
    permanent = bounce.permanent if bounce else True
    marked = failed if permanent else ()
    effects: list[Effect] = [
        StoreMessage(MessageKind.BOUNCE, reading.verdict.kind),
        AddEvent(EventKind.BOUNCE, data={
            "recipients": list(bounce.recipients if bounce else failed), "permanent": permanent,
            "undeliverable": list(marked), "status": bounce.status if bounce else None,
            "diagnostic": bounce.diagnostic[:500] if bounce else ""}),
        *(MarkUndeliverable(address) for address in marked),
    ]
    if ticket.requester in marked:
        effects.append(AddEvent(EventKind.REQUESTER_UNDELIVERABLE, data={"address": ticket.requester}))
    return tuple(effects)


def duplicate(reading: ToFile, ticket: TicketState, first_copy: int, policy: Policy, spooled: Spooled) -> Plan:
    """A copy of a stored message is stored once, and never invisibly (docs/mail.md#threading): the ticket
    of the first copy records where and when the copy came; the spool row says of what."""
    tag = threader.format_tag(policy.tag_prefix, ticket.number)
    received = spooled.received_at.isoformat() if spooled.received_at else None
    return Plan(Outcome.DUPLICATE, (
        AddEvent(EventKind.DUPLICATE_RECEIVED, data={
            "source": reading.envelope.source, "mailbox": reading.envelope.mailbox, "received_at": received,
            "inbound_id": spooled.id, "message_id": reading.keys.message_id, "first_message": first_copy}),
        NoteOnSpool(f"duplicate of message {first_copy} on {tag}"),
    ), ticket)


# --- a new ticket ----------------------------------------------------------------------------------


LOOKUP_FAILURES = "member_lookup_failures"  # counter row; maild_member_lookup_failures_total


def member_decision(reading: ToFile, member: Link, rules: RuleSet) -> Decision:
    """The rules' decision for a sender the register knows: re-decided with the member's fields
    only when some rule reads them (``member:``); else the reading's own."""
    if member.member is None or not rules.uses_member:
        return reading.decision
    from maild.rules.engine import decide, facts_from

    facts = facts_from(reading.parsed, reading.envelope.recipients, channel_of(reading.envelope.source), member.member)
    return decide(facts, rules)


def member_effects(member: Link, error: str | None) -> list[Effect]:
    """Link the new ticket to its member and say how, that the lookup failed, or that the mail
    named another member's number (for staff; the sender's address decides)."""
    effects: list[Effect] = []
    if error:
        effects += [AddEvent(EventKind.MEMBER_LOOKUP_FAILED, data={"error": error}), BumpCounter(LOOKUP_FAILURES)]
    if member.member is not None:
        effects.append(LinkMember(member))
    return effects


def new_ticket(reading: ToFile, choice: threader.Choice, lookups: Lookups, policy: Policy, now: datetime) -> Plan:
    rules, parsed, sender, verdict = policy.rules, reading.parsed, reading.sender, reading.verdict
    decision = member_decision(reading, lookups.member, rules)
    queue = rules.queues[decision.queue]
    # docs/mail.md#recipients: the CCs of the member's first message; a confidential ticket starts without
    cc = () if decision.confidential else tuple(dict.fromkeys(
        a for a in parsed.cc if a != sender and rules.queue_for_address(a) is None))
    create = CreateTicket(
        queue=decision.queue, priority=decision.priority, category=decision.category,
        subject=threader.strip_prefixes(parsed.subject) or "(no subject)", requester=sender,
        confidential=decision.confidential, tags=decision.tags, other_queues=decision.other_queues, cc=cc,
        linked_to=choice.linked_to, channel=channel_of(reading.envelope.source))
    effects: list[Effect] = []
    if lookups.sender_name is None or (parsed.from_name and not lookups.sender_name):
        effects.append(EnsureContact(sender, parsed.from_name))  # a new member, or their name at last
    effects += [
        create,
        StoreMessage(MessageKind.AUTO_REPLY if verdict.is_machine else MessageKind.MEMBER, verdict.kind),
        AddEvent(EventKind.CREATED, actor=sender, data={
            "source": reading.envelope.source, "queue": decision.queue, "priority": decision.priority,
            "category": decision.category, "classification": verdict.kind,
            "rules": [hit.to_json() for hit in decision.hits], "other_queues": list(decision.other_queues),
            "linked_to": choice.linked_to}),
    ]
    effects += member_effects(lookups.member, lookups.member_lookup_error)
    if choice.collision:
        effects.append(AddEvent(EventKind.MESSAGE_ID_COLLISION, data={"message_id": parsed.message_id}))
    if decision.assign == "round-robin":
        effects.append(BumpCounter(f"round-robin:{decision.queue}"))
    assignee = pick_assignee(decision.assign, queue.staff, turn=lookups.assign_turn, load=lookups.open_load)
    if assignee:
        effects += [UpdateTicket({"assignee": assignee}),
                    AddEvent(EventKind.ASSIGNED, data={"assignee": assignee, "how": decision.assign})]
    reason = no_ack_reason(verdict, decision, lookups.sender_undeliverable, lookups.acks_last_hour,
                           policy.ack_limit_per_hour)
    if reason:
        effects.append(AddEvent(EventKind.ACK_SKIPPED, data={"reason": reason}))
    elif decision.answer and decision.answer in policy.answers.get(queue.language, {}):
        # self-service: the rule's canned answer instead of the acknowledgement, under the same
        # no-machine rules and the same hourly cap (it is counted as an acknowledgement)
        effects += [QueueMail(MessageKind.ACK, "canned_answer",
                              {"queue": queue, "parsed": parsed, "answer": decision.answer, "now": now}),
                    AddEvent(EventKind.ANSWER_SENT, data={"answer": decision.answer, "language": queue.language})]
    else:
        if decision.answer:
            effects.append(AddEvent(EventKind.ANSWER_MISSING, data={"answer": decision.answer, "language": queue.language}))
        template = decision.ack if isinstance(decision.ack, str) else "ack"
        effects.append(QueueMail(MessageKind.ACK, "acknowledgement",
                                 {"queue": queue, "parsed": parsed, "template": template, "now": now}))
    if not verdict.is_machine:
        state = TicketState(None, 0, decision.queue, Status.NEW, sender, confidential=decision.confidential, cc=cc)
        extra = tuple(a for a in decision.notify if not decision.confidential or a in queue.staff)
        other_open = [
            {"tag": threader.format_tag(policy.tag_prefix, other.number), "subject": other.subject,
             "status": other.status, "visible": not other.confidential or other.queue == decision.queue}
            for other in lookups.other_open]
        effects.append(QueueMail(MessageKind.NOTIFICATION, "staff_new", {
            "queue": queue, "parsed": parsed, "other_open": other_open,
            "not_recipients": not_recipients(state, parsed, rules),
            "recipients": tuple(dict.fromkeys(queue.staff + extra)), "now": now,
            "suggestions": suggestions(decision.suggest, policy.answers.get(queue.language, {})),
            "member": template_member(lookups.member, policy.show_fields)}))
    return Plan(Outcome.NEW, tuple(effects))


def suggestions(names: tuple[str, ...], titles: Mapping[str, str]) -> list[dict[str, str]]:
    """The rules' suggested answers that the queue's language has, for the staff notification."""
    return [{"name": name, "title": titles[name]} for name in names if name in titles]


def no_ack_reason(verdict: Verdict, decision: Decision, undeliverable: bool, acks_last_hour: int, limit: int) -> str | None:
    """Why a new ticket gets no acknowledgement, or None (docs/mail.md#machines)."""
    if verdict.is_machine:
        return f"{verdict.kind}: {verdict.reason}"
    if decision.ack is False:
        return "turned off by a rule"
    if undeliverable:
        return "the requester's address bounces"
    if acks_last_hour >= limit:
        return f"{limit} acknowledgements to this sender in the last hour"
    return None


def not_recipients(ticket: TicketState, parsed: Parsed, rules: RuleSet) -> tuple[str, ...]:
    """The addresses in this mail that do not get the ticket's mail, for the staff notification:
    only staff add one, with ``#cc`` (docs/mail.md#recipients). maild's own addresses and the queue's
    staff, who get the notifications anyway, are left out."""
    queue = rules.queues.get(ticket.queue)
    known = {ticket.requester, *ticket.cc, *(queue.staff if queue else ())}
    found = dict.fromkeys((parsed.from_addr, *parsed.to, *parsed.cc))
    return tuple(a for a in found if a and a not in known and rules.queue_for_address(a) is None)


# --- a follow-up -----------------------------------------------------------------------------------


def follow_up(reading: ToFile, choice: threader.Choice, facts: TicketFacts, lookups: Lookups, policy: Policy,
              now: datetime) -> Plan:
    found = lookups.found
    writer = proven_staff(policy, facts.state, choice.via, found.token_staff, reading.sender, reading.parsed)
    if writer and not reading.verdict.is_machine:
        effects = staff_reply(reading.parsed, reading.verdict, facts, writer, policy, now)
    else:
        effects = member_follow_up(reading, choice, facts, policy, now, lookups.ticket_member)
    if lookups.member_lookup_error:  # the lookup command failed for this sender: counted all the same
        effects = (*effects, BumpCounter(LOOKUP_FAILURES))
    return Plan(Outcome.FOLLOW_UP, effects, facts.state)


def member_follow_up(reading: ToFile, choice: threader.Choice, facts: TicketFacts, policy: Policy,
                     now: datetime, member: Link = NO_LINK) -> tuple[Effect, ...]:
    rules, parsed, sender, ticket = policy.rules, reading.parsed, reading.sender, facts.state
    queue = rules.queues.get(ticket.queue)
    staff = frozenset(queue.staff) if queue else frozenset()
    kind = MessageKind(threader.follow_up_kind(sender, choice.ticket or ticket.ref(), choice.via or "references",
                                               staff, reading.verdict.is_machine))
    effects: list[Effect] = [
        StoreMessage(kind, reading.verdict.kind),
        AddEvent(EventKind.MESSAGE, actor=sender, data={
            "message_kind": kind, "via": choice.via, "source": reading.envelope.source}),
    ]
    if choice.collision:
        effects.append(AddEvent(EventKind.MESSAGE_ID_COLLISION, data={"message_id": parsed.message_id}))
    if sender in rules.all_staff() and not reading.verdict.is_machine:
        # docs/mail.md#staff: staff From without the proof: nothing obeyed, nothing relayed
        effects.append(AddEvent(EventKind.STAFF_UNPROVEN, actor=sender, data={"via": choice.via}))
    if kind in (MessageKind.MEMBER, MessageKind.THIRD_PARTY) and queue is not None:
        # to the assignee, or to the queue's staff when nobody of them owns it (docs/mail.md#recipients)
        recipients = (ticket.assignee,) if ticket.assignee in queue.staff else queue.staff
        effects.append(QueueMail(MessageKind.NOTIFICATION, "staff_followup", {
            "queue": queue, "parsed": parsed, "requester_name": facts.requester_name,
            "third_party": kind == MessageKind.THIRD_PARTY, "not_recipients": not_recipients(ticket, parsed, rules),
            "recipients": recipients, "now": now, "member": template_member(member, policy.show_fields)}))
    if kind == MessageKind.MEMBER:  # its other addresses are not added by themselves (docs/mail.md#recipients)
        _, changes = status_change(facts, Happened.MEMBER_REPLY, sender, policy, now)
        effects += [*changes, UpdateTicket({"updated_at": now})]
    return tuple(effects)


def proven_staff(policy: Policy, ticket: TicketState, via: str | None, token_staff: str | None, sender: str,
                 parsed: Parsed) -> str | None:
    """The staff member who provably wrote this, if anyone (docs/mail.md#staff).

    ``token``: mail to a staff member's secret address of this ticket, from them.
    ``authres``: the topmost trusted Authentication-Results passes the From domain.
    ``none``: the From address alone (for trials).
    Either way the writer must be staff of the ticket's queue.
    """
    queue = policy.rules.queues.get(ticket.queue)
    if queue is None or sender not in queue.staff:
        return None
    if policy.staff_proof == "token":
        proven = via == "token" and token_staff == sender
    elif policy.staff_proof == "authres":
        domain = sender.rpartition("@")[2]
        proven = proves_sender(parsed.authentication_results, policy.trusted_authserv_ids, domain)
    else:
        proven = True
    return sender if proven else None


def staff_reply(parsed: Parsed, verdict: Verdict, facts: TicketFacts, writer: str, policy: Policy,
                now: datetime) -> tuple[Effect, ...]:
    """Obey the command lines, then relay the answer to the member (unless it is a note)."""
    rules, ticket = policy.rules, facts.state
    queue = rules.queues[ticket.queue]
    text = parse_staff_text(parsed.text, frozenset(rules.queues), staff_of(rules, ticket), context(rules, ticket, writer))
    note = any(command.name == "note" for command in text.commands)
    kind = MessageKind.NOTE if note or text.errors or not text.answer else MessageKind.STAFF
    effects: list[Effect] = [StoreMessage(kind, verdict.kind)]
    if text.errors:
        return (*effects, AddEvent(EventKind.COMMANDS_REJECTED, actor=writer, data={"errors": list(text.errors)}),
                QueueMail(MessageKind.NOTIFICATION, "command_errors",
                          {"queue": queue, "writer": writer, "parsed": parsed, "errors": text.errors, "now": now}))
    if kind == MessageKind.NOTE and not note and not text.commands:
        # nothing of the writer's own outside the quotation: keep it, relay nothing, say so
        return (*effects, AddEvent(EventKind.NOTHING_RELAYED, actor=writer),
                QueueMail(MessageKind.NOTIFICATION, "nothing_relayed",
                          {"queue": queue, "writer": writer, "parsed": parsed, "now": now}))
    status_set = False
    for command in text.commands:
        facts, changes, set_status = obey(facts, command, writer, policy, now)
        effects += changes
        status_set |= set_status
    ticket = facts.state
    queue = rules.queues[ticket.queue]  # a #queue moved it: the answer goes out from there
    if kind == MessageKind.STAFF:
        if not ticket.answered:
            effects.append(UpdateTicket({"first_response_at": now}))
            facts = replace(facts, state=replace(ticket, answered=True))
        in_reply_to, references = facts.last_member_message or (None, ())
        effects.append(QueueMail(MessageKind.STAFF, "relayed_answer", {
            "queue": queue, "answer": text.answer, "in_reply_to": in_reply_to, "references": references, "now": now},
            relayed_by=writer))
        if not status_set:
            facts, changes = status_change(facts, Happened.STAFF_REPLY, writer, policy, now)
            effects += changes
    if not facts.state.assignee and (kind == MessageKind.STAFF or text.commands) and writer in queue.staff:
        effects += [UpdateTicket({"assignee": writer}),
                    AddEvent(EventKind.ASSIGNED, actor=writer, data={"assignee": writer, "how": "answered"})]
    effects.append(UpdateTicket({"updated_at": now}))
    return tuple(effects)


def staff_of(rules: RuleSet, ticket: TicketState) -> frozenset[str]:
    queue = rules.queues.get(ticket.queue)
    return frozenset(queue.staff) if queue else frozenset()


def context(rules: RuleSet, ticket: TicketState, writer: str = "") -> Context:
    """What staff commands on this ticket are checked against (``core.commands``)."""
    return Context(writer=writer, requester=ticket.requester, own_addresses=rules.addresses(),
                   staff_of={queue.id: frozenset(queue.staff) for queue in rules.queues.values()})


# --- staff commands and the lifecycle --------------------------------------------------------------


def act(facts: TicketFacts, command: Command, actor: str, note: str, policy: Policy, now: datetime) -> Plan | str:
    """A mail command given from the shell (``maild tickets assign|close|reopen|note|move``),
    checked as in mail, with the same effects. Returns the plan, or what is wrong."""
    rules, ticket = policy.rules, facts.state
    checked, error = check(command, frozenset(rules.queues), staff_of(rules, ticket), context(rules, ticket))
    if checked is None:
        return f"ticket {ticket.number} (queue {ticket.queue}): {error}"
    if checked.name == "note":
        subject = f"{threader.format_tag(policy.tag_prefix, ticket.number)} {ticket.subject}"
        effects: tuple[Effect, ...] = (AddNote(actor, note, subject), AddEvent(EventKind.NOTE, actor=actor))
    else:
        _, effects, _ = obey(facts, checked, actor, policy, now)
    return Plan(Outcome.FOLLOW_UP, (*effects, UpdateTicket({"updated_at": now})), ticket)


def obey(facts: TicketFacts, command: Command, writer: str, policy: Policy,
         now: datetime) -> tuple[TicketFacts, tuple[Effect, ...], bool]:
    """One checked command: the ticket after it, the effects, and whether it set the status."""
    ticket, name, value = facts.state, command.name, command.argument
    effects: tuple[Effect, ...] = ()
    if name in ("take", "assign"):
        assignee = writer if name == "take" else value
        ticket = replace(ticket, assignee=assignee)
        effects = (UpdateTicket({"assignee": assignee}),
                   AddEvent(EventKind.ASSIGNED, actor=writer, data={"assignee": assignee, "how": f"#{name}"}))
    elif name in ("priority", "category"):
        effects = (UpdateTicket({name: value}),
                   AddEvent(EventKind(name), actor=writer, data={"old": getattr(ticket, name), "new": value}))
        ticket = replace(ticket, **{name: value})
    elif name == "queue":
        ticket, effects = move(ticket, policy.rules.queues[value], writer)
    elif name == "cc" and value != ticket.requester and value not in ticket.cc:
        ticket = replace(ticket, cc=(*ticket.cc, value))
        effects = (UpdateTicket({"cc": list(ticket.cc)}),
                   AddEvent(EventKind.CC_ADDED, actor=writer, data={"address": value}))
    elif name == "uncc" and value in ticket.cc:
        ticket = replace(ticket, cc=tuple(a for a in ticket.cc if a != value))
        effects = (UpdateTicket({"cc": list(ticket.cc)}),
                   AddEvent(EventKind.CC_REMOVED, actor=writer, data={"address": value, "how": "#uncc"}))
    elif name in ("close", "pending", "open"):
        happened = {"close": Happened.RESOLVE, "pending": Happened.SET_PENDING, "open": Happened.SET_OPEN}[name]
        facts, effects = status_change(facts, happened, writer, policy, now)
        return facts, effects, True
    return replace(facts, state=ticket), effects, False


def move(ticket: TicketState, queue: Queue, actor: str) -> tuple[TicketState, tuple[Effect, ...]]:
    """Put a ticket in another queue (docs/mail.md#recipients). It takes that queue's confidentiality,
    and an assignee who is not staff there is dropped, so from now on only that queue's
    staff get its content. Moving into a confidential queue also drops the CCs, each with
    an event: that queue's staff add back whom they choose, with ``#cc``."""
    if queue.id == ticket.queue:
        return ticket, ()
    effects: list[Effect] = [AddEvent(EventKind.QUEUE, actor=actor, data={"old": ticket.queue, "new": queue.id})]
    changes: dict[str, Any] = {"queue": queue.id}
    if ticket.confidential != queue.confidential:
        effects.append(AddEvent(EventKind.CONFIDENTIAL, actor=actor,
                                data={"old": ticket.confidential, "new": queue.confidential}))
        changes["confidential"] = queue.confidential
    if ticket.assignee and ticket.assignee not in queue.staff:
        effects.append(AddEvent(EventKind.UNASSIGNED, actor=actor, data={
            "old": ticket.assignee, "reason": f"not staff of queue {queue.id}"}))
        changes["assignee"] = None
    if queue.confidential and ticket.cc:
        effects += [AddEvent(EventKind.CC_REMOVED, actor=actor, data={"address": a, "how": "#queue"}) for a in ticket.cc]
        changes["cc"] = ()
    ticket = replace(ticket, **changes)
    if "cc" in changes:
        changes["cc"] = []
    return ticket, (*effects, UpdateTicket(changes))


def status_change(facts: TicketFacts, happened: Happened | str, actor: str, policy: Policy,
                  now: datetime) -> tuple[TicketFacts, tuple[Effect, ...]]:
    """Move the ticket through its life (``core.lifecycle``); resolving tells the member."""
    ticket = facts.state
    status = next_status(ticket.status, happened)
    if status == ticket.status:
        return facts, ()
    changes: dict[str, Any] = {"status": status, "status_changed_at": now}
    effects: list[Effect] = [
        AddEvent(EventKind.STATUS, actor=actor, data={"old": ticket.status, "new": status}, at=now)]
    if status == Status.RESOLVED:
        changes["resolved_at"] = now
    elif status == Status.CLOSED:
        changes["closed_at"] = now
    effects.insert(0, UpdateTicket(changes))
    facts = replace(facts, state=replace(ticket, status=status))
    if status == Status.RESOLVED:
        effects.append(tell_resolved(facts, policy, now))
    return facts, tuple(effects)


def tell_resolved(facts: TicketFacts, policy: Policy, now: datetime) -> Effect:
    """``resolved`` to the member, unless no automatic mail may go there (docs/mail.md#machines, 4.4)."""
    ticket, rules = facts.state, policy.rules
    queue = rules.queues.get(ticket.queue)
    reason = "its queue is no longer in the rules" if queue is None else no_member_mail(
        ticket.requester, facts.requester_undeliverable, facts.opened_by_machine, rules.addresses())
    if reason:
        return AddEvent(EventKind.RESOLVED_NOTICE_SKIPPED, data={"reason": reason}, at=now)
    return QueueMail(MessageKind.RESOLVED, "resolved", {"queue": queue, "requester_name": facts.requester_name, "now": now})
