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

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union

from maild.core import threader
from maild.core.assignment import pick_assignee
from maild.core.authres import proves_sender
from maild.core.classify import no_member_mail
from maild.core.commands import Command, Context, check, parse_staff_text
from maild.core.kinds import Channel, EventKind, Happened, MessageKind, Outcome, QuarantineKind, Status, channel_of
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
    channel: str = Channel.EMAIL

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
    opener: tuple[str, str] | None = None  # #for: (queue id, staff member) whose opening address the mail went to
    answer_failures: tuple[str, ...] = ()  # staff reply: #answer NAMEs that did not render, each with why
    refusals_last_hour: int = 0  # #for: the writer's mails that opened nothing in the last hour


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
    """The message read on the ticket, as ``kind``; ``text``: its text instead of the mail's
    (a ``#for`` mail without its command lines)."""

    kind: MessageKind
    classification: str
    text: str | None = None


@dataclass(frozen=True)
class AddNote:
    """A note written from the shell (``kind`` staff: the first message of ``maild tickets open``)."""

    author: str
    text: str
    subject: str
    kind: MessageKind = MessageKind.NOTE


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
    when the effect is applied (or about no ticket, in a plan without one: a refused ``#for``).
    ``relayed_by``: record a ``relayed`` event, to whom it went."""

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
    opened = opening_mail(reading, lookups, policy, now)
    if opened is not None:
        return opened
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
        effects = staff_reply(reading.parsed, reading.verdict, facts, writer, policy, now, lookups.answer_failures)
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
                now: datetime, answer_failures: tuple[str, ...] = ()) -> tuple[Effect, ...]:
    """Obey the command lines, then relay the answer to the member (unless it is a note).

    ``#answer NAME`` puts the canned answer above what the writer wrote (docs/mail.md#answer).
    The store renders it before this plan is applied; ``answer_failures`` are the names that
    did not render: then, as for a wrong command, nothing is done and the writer is told."""
    rules, ticket = policy.rules, facts.state
    queue = rules.queues[ticket.queue]
    text = parse_staff_text(parsed.text, frozenset(rules.queues), staff_of(rules, ticket),
                            context(rules, ticket, writer, policy.answers))
    note = any(command.name == "note" for command in text.commands)
    canned = tuple(command.argument for command in text.commands if command.name == "answer")
    errors = text.errors + answer_failures
    if note and canned:
        errors += ("#answer: a #note sends nothing to the member, so it cannot carry a canned answer",)
    kind = MessageKind.NOTE if note or errors or not (text.answer or canned) else MessageKind.STAFF
    effects: list[Effect] = [StoreMessage(kind, verdict.kind)]
    if errors:
        return (*effects, AddEvent(EventKind.COMMANDS_REJECTED, actor=writer, data={"errors": list(errors)}),
                QueueMail(MessageKind.NOTIFICATION, "command_errors",
                          {"queue": queue, "writer": writer, "parsed": parsed, "errors": errors, "now": now}))
    if kind == MessageKind.NOTE and not note and not text.commands:
        # nothing of the writer's own outside the quotation: keep it, relay nothing, say so
        return (*effects, AddEvent(EventKind.NOTHING_RELAYED, actor=writer),
                QueueMail(MessageKind.NOTIFICATION, "nothing_relayed",
                          {"queue": queue, "writer": writer, "parsed": parsed, "now": now}))
    status_set = False
    told: list[Effect] = []  # mail the commands send (``resolved``): after the answer, as the member should read them
    for command in text.commands:
        facts, changes, set_status = obey(facts, command, writer, policy, now)
        effects += [change for change in changes if not isinstance(change, QueueMail)]
        told += [change for change in changes if isinstance(change, QueueMail)]
        status_set |= set_status
    ticket = facts.state
    queue = rules.queues[ticket.queue]  # a #queue moved it: the answer goes out from there
    if kind == MessageKind.STAFF:
        if not ticket.answered:
            effects.append(UpdateTicket({"first_response_at": now}))
            facts = replace(facts, state=replace(ticket, answered=True))
        in_reply_to, references = facts.last_member_message or (None, ())
        effects.append(QueueMail(MessageKind.STAFF, "relayed_answer", {
            "queue": queue, "answer": text.answer, "in_reply_to": in_reply_to, "references": references, "now": now,
            "answers": canned, "requester_name": facts.requester_name}, relayed_by=writer))
        if not status_set:
            facts, changes = status_change(facts, Happened.STAFF_REPLY, writer, policy, now)
            effects += changes
    effects += told
    if not facts.state.assignee and (kind == MessageKind.STAFF or text.commands) and writer in queue.staff:
        effects += [UpdateTicket({"assignee": writer}),
                    AddEvent(EventKind.ASSIGNED, actor=writer, data={"assignee": writer, "how": "answered"})]
    effects.append(UpdateTicket({"updated_at": now}))
    return tuple(effects)


def staff_of(rules: RuleSet, ticket: TicketState) -> frozenset[str]:
    queue = rules.queues.get(ticket.queue)
    return frozenset(queue.staff) if queue else frozenset()


def context(rules: RuleSet, ticket: TicketState, writer: str = "",
            answers: Mapping[str, Mapping[str, str]] | None = None) -> Context:
    """What staff commands on this ticket are checked against (``core.commands``); with
    ``answers`` (language -> name -> title), ``#answer`` names one of the queue's language."""
    by_queue = None if answers is None else {
        queue.id: (queue.language, frozenset(answers.get(queue.language, {}))) for queue in rules.queues.values()}
    language, names = by_queue.get(ticket.queue, ("", frozenset())) if by_queue is not None else ("", None)
    return Context(writer=writer, requester=ticket.requester, own_addresses=rules.addresses(),
                   staff_of={queue.id: frozenset(queue.staff) for queue in rules.queues.values()},
                   answers=names, language=language, queue_answers=by_queue)


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
    elif name == "channel" and value != ticket.channel:
        effects = (UpdateTicket({"channel": value}),
                   AddEvent(EventKind.CHANNEL, actor=writer, data={"old": ticket.channel, "new": value}))
        ticket = replace(ticket, channel=value)
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


# --- a ticket that staff open for a member: #for, maild tickets open ------------------------------

DEFAULT_CHANNEL = Channel.PHONE  # #for without #channel: the most common other channel (docs/mail.md#for)
# what may follow #for: commands about the new ticket (not #queue: mail the other queue's address;
# not #note or #answer: nothing is relayed, the member gets the acknowledgement)
WITH_FOR = frozenset({"for", "channel", "priority", "category", "assign", "take", "cc", "close", "pending", "open"})
_FOR_LINE = re.compile(r"\s*#for(?:\s|$)", re.IGNORECASE)
REFUSED = "#for refused: "  # how the quarantine's reason starts for a #for mail that opened nothing


@dataclass(frozen=True)
class Opening:
    """A ticket that staff open for a member (docs/mail.md#for), from a ``#for`` mail or the shell."""

    queue: str
    member: str
    name: str  # the member's name as typed ("#for Name <address>"), or ""
    subject: str
    text: str  # the ticket's first message: the staff member's notes
    writer: str  # who opens it; its owner when staff of the queue
    channel: str = DEFAULT_CHANNEL
    commands: tuple[Command, ...] = ()  # the mail's other commands, checked
    source: str = "smtp"


def for_line(text: str) -> str | None:
    """The ``#for`` line when it is the mail's first line of its own, else None."""
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip():
            return line if _FOR_LINE.match(line) else None
    return None


def for_member(text: str) -> str | None:
    """The member a ``#for`` mail names, for the lookups; None when it names no valid address."""
    line = for_line(text)
    if line is None:
        return None
    command, _ = check(Command("for", line.strip()[4:].strip()), frozenset(), frozenset(), Context(opening=True))
    return command.argument if command is not None else None


def addressed_queue(reading: ToFile, opener: tuple[str, str] | None, rules: RuleSet) -> Queue:
    """The queue a ``#for`` mail was written to: its opening address's, else the first queue
    address among the recipients, else the rules' choice."""
    if opener is not None and opener[0] in rules.queues:
        return rules.queues[opener[0]]
    for address in (*reading.envelope.recipients, *reading.parsed.to, *reading.parsed.cc):
        queue = rules.queue_for_address(address)
        if queue is not None:
            return queue
    return rules.queues[reading.decision.queue]


def unproven_opener(policy: Policy, queue: Queue, opener: tuple[str, str] | None, sender: str,
                    parsed: Parsed) -> str | None:
    """Why ``sender`` is not proven to open tickets in ``queue`` (docs/mail.md#staff-proof), or None.
    ``token``: the mail went to the sender's own opening address of the queue (``queue+nTOKEN@``)."""
    if sender not in queue.staff:
        return f"#for: {sender} is not staff of queue {queue.id}"
    if policy.staff_proof == "token" and opener != (queue.id, sender):
        return (f"#for: not proven to be from {sender}: send it to your own address for opening tickets in "
                f"queue {queue.id} (the administrator's `maild staff addresses` lists it), not to {queue.address}")
    if policy.staff_proof == "authres" and not proves_sender(
            parsed.authentication_results, policy.trusted_authserv_ids, sender.rpartition("@")[2]):
        return f"#for: not proven to be from {sender}: no trusted Authentication-Results passes your domain"
    return None


def opening_mail(reading: ToFile, lookups: Lookups, policy: Policy, now: datetime) -> Plan | None:
    """A new mail whose first line is ``#for ADDRESS`` (docs/mail.md#for). None when it is no
    opening: machine mail, or a sender who is nobody's staff (never mailed about it: their mail
    is filed as any new mail). A staff member who is not proven, or whose commands are wrong,
    opens nothing: the mail is kept in the quarantine (``dropped``, with why) and they are told,
    at most ``ack_limit_per_hour`` times an hour (a forged From must not make maild a mailer)."""
    rules, parsed, sender = policy.rules, reading.parsed, reading.sender
    if reading.verdict.is_machine or sender not in rules.all_staff() or for_line(parsed.text) is None:
        return None
    queue = addressed_queue(reading, lookups.opener, rules)
    text = parse_staff_text(parsed.text, frozenset(rules.queues), frozenset(queue.staff), Context(
        writer=sender, own_addresses=rules.addresses(), opening=True,
        staff_of={q.id: frozenset(q.staff) for q in rules.queues.values()}))
    errors = [*text.errors, *(f"#{c.name}: cannot go with #for (a new ticket from another channel)"
                              for c in text.commands if c.name not in WITH_FOR)]
    why = unproven_opener(policy, queue, lookups.opener, sender, parsed)
    if why:
        errors.insert(0, why)
    if errors or not text.commands:
        reason = REFUSED + "; ".join(errors)
        if lookups.refusals_last_hour >= policy.ack_limit_per_hour:
            reason += f" (not told: {lookups.refusals_last_hour} refused in the last hour)"
            return Plan(Outcome.QUARANTINED, (Quarantine(QuarantineKind.DROPPED, reason, sender, parsed.subject),))
        return Plan(Outcome.QUARANTINED, (
            QueueMail(MessageKind.NOTIFICATION, "opening_refused",
                      {"queue": queue, "writer": sender, "parsed": parsed, "errors": tuple(errors), "now": now}),
            Quarantine(QuarantineKind.DROPPED, reason, sender, parsed.subject)))
    first = text.commands[0]
    opening = Opening(
        queue=queue.id, member=first.argument, name=first.label,
        subject=threader.strip_prefixes(parsed.subject) or "(no subject)", text=text.rest, writer=sender,
        channel=next((c.argument for c in text.commands if c.name == "channel"), DEFAULT_CHANNEL),
        commands=text.commands[1:], source=reading.envelope.source)
    return open_ticket(opening, lookups, policy, now, StoreMessage(MessageKind.STAFF, reading.verdict.kind, text.rest),
                       parsed)


def open_from_shell(queue_id: str, address: str, subject: str, text: str, actor: str, channel: str,
                    lookups: Lookups, policy: Policy, now: datetime) -> Plan | str:
    """``maild tickets open``: checked as ``#for`` and ``#channel`` in mail, with the same effects
    (the first message is the text, kind ``staff``). Returns the plan, or what is wrong."""
    rules = policy.rules
    queue = rules.queues.get(queue_id)
    if queue is None:
        return f"no queue {queue_id!r} (queues: {', '.join(sorted(rules.queues))})"
    ctx = Context(writer=actor, own_addresses=rules.addresses(), opening=True)
    member, error = check(Command("for", address), frozenset(rules.queues), frozenset(queue.staff), ctx)
    if member is None:
        return f"--for {address}: {error}"
    checked, error = check(Command("channel", channel), frozenset(rules.queues), frozenset(queue.staff), ctx)
    if checked is None:
        return f"--channel {channel}: {error}"
    subject = " ".join(subject.split()) or "(no subject)"
    opening = Opening(queue.id, member.argument, member.label, subject, text, actor, checked.argument, source="shell")
    return open_ticket(opening, lookups, policy, now, AddNote(actor, text, subject, MessageKind.STAFF))


def open_ticket(opening: Opening, lookups: Lookups, policy: Policy, now: datetime, message: Effect,
                parsed: Parsed | None = None) -> Plan:
    """The effects of opening a ticket for a member (docs/mail.md#for): in the queue, owned by the
    writer when they are its staff, status ``open`` (staff acted), the channel as given, the
    rules' priority, category and tags for the member and channel; the member's acknowledgement
    (as for their own mail: not when the rules turn it off, the address bounces, or the hourly
    cap is reached); ``staff_new`` to the queue's staff but the writer. ``lookups`` are about
    the member (``store.lookup.for_member``); ``parsed``: the mail, whose attachments staff get."""
    from maild.mail import Parsed as ParsedMail

    rules, queue, writer = policy.rules, policy.rules.queues[opening.queue], opening.writer
    name = opening.name or lookups.sender_name or ""
    # the mail as if the member had written the notes: what the rules and the staff notice read
    as_member = ParsedMail(
        message_id=None, in_reply_to=(), references=(), subject=opening.subject, from_addr=opening.member,
        from_name=name, to=(queue.address,), cc=(), reply_to=(), date=None, headers={}, text=opening.text, html=None,
        attachments=parsed.attachments if parsed is not None else ())
    decision = opening_decision(as_member, opening, lookups.member, rules)
    confidential = queue.confidential or (decision.confidential and not rules.queues[decision.queue].confidential)
    effects: list[Effect] = []
    if lookups.sender_name is None or (opening.name and not lookups.sender_name):
        effects.append(EnsureContact(opening.member, opening.name))
    effects += [
        CreateTicket(queue=queue.id, priority=decision.priority, category=decision.category, subject=opening.subject,
                     requester=opening.member, confidential=confidential, tags=decision.tags, other_queues=(), cc=(),
                     linked_to=None, channel=opening.channel),
        message,
        AddEvent(EventKind.CREATED, actor=writer, data={
            "source": opening.source, "queue": queue.id, "priority": decision.priority, "category": decision.category,
            "classification": "normal", "rules": [hit.to_json() for hit in decision.hits], "other_queues": [],
            "linked_to": None, "channel": opening.channel, "opened_by": writer}),
        *member_effects(lookups.member, None),
    ]
    owner = writer if writer in queue.staff else None
    facts = TicketFacts(TicketState(None, 0, queue.id, Status.NEW, opening.member, opening.subject, decision.priority,
                                    decision.category, owner, confidential, channel=opening.channel),
                        requester_name=name, requester_undeliverable=lookups.sender_undeliverable)
    if owner:
        effects += [UpdateTicket({"assignee": owner}),
                    AddEvent(EventKind.ASSIGNED, actor=writer, data={"assignee": owner, "how": "#for"})]
    facts, changes = status_change(facts, Happened.STAFF_ACTION, writer, policy, now)
    effects += changes
    reason = ("turned off by a rule" if decision.ack is False else
              "the requester's address bounces" if lookups.sender_undeliverable else
              f"{policy.ack_limit_per_hour} acknowledgements to this sender in the last hour"
              if lookups.acks_last_hour >= policy.ack_limit_per_hour else None)
    if reason:
        effects.append(AddEvent(EventKind.ACK_SKIPPED, data={"reason": reason}))
    else:  # never the staff notes: the acknowledgement reads no text of theirs
        effects.append(QueueMail(MessageKind.ACK, "acknowledgement", {
            "queue": queue, "parsed": replace(as_member, text="", attachments=()),
            "template": decision.ack if isinstance(decision.ack, str) else "ack", "now": now}))
    for command in opening.commands:
        if command.name not in ("for", "channel"):
            facts, changes, _ = obey(facts, command, writer, policy, now)
            effects += changes
    extra = tuple(a for a in decision.notify if not confidential or a in queue.staff)
    recipients = tuple(a for a in dict.fromkeys(queue.staff + extra) if a != writer)
    other_open = [
        {"tag": threader.format_tag(policy.tag_prefix, other.number), "subject": other.subject,
         "status": other.status, "visible": not other.confidential or other.queue == queue.id}
        for other in lookups.other_open]
    effects.append(QueueMail(MessageKind.NOTIFICATION, "staff_new", {
        "queue": queue, "parsed": as_member, "other_open": other_open, "not_recipients": (),
        "recipients": recipients, "now": now,
        "suggestions": suggestions(decision.suggest, policy.answers.get(queue.language, {})),
        "member": template_member(lookups.member, policy.show_fields)}))
    return Plan(Outcome.NEW, tuple(effects))


def opening_decision(as_member: Parsed, opening: Opening, member: Link, rules: RuleSet) -> Decision:
    """The rules for an opened ticket: as if the member had mailed the notes to the queue, by
    the ticket's channel (so ``channel: phone`` rules apply). The queue stays the one written to."""
    from maild.rules.engine import decide, facts_from

    return decide(facts_from(as_member, (), opening.channel, member.member), rules)
