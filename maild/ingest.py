"""The one orchestrator: a spooled message through every stage, read top to bottom.

spool row -> parse -> classify -> thread -> rules -> persist (ticket, message, events),
all in one transaction with the spool row's state. Any exception quarantines the message
with its reason; nothing is dropped.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session

from maild.core import threader
from maild.core.addresses import parse_address
from maild.core.assignment import pick_assignee
from maild.core.authres import proves_sender
from maild.core.bounces import Bounce, parse_bounce, undeliverable, verp_token
from maild.core.classify import classify, no_member_mail
from maild.core.lifecycle import next_status
from maild.core.parse import ParseError, parse_message
from maild.core.commands import Command, Context, check, parse_staff_text
from maild.core.tokens import read_outbox_token, read_staff_token, read_ticket_token
from maild.intake.spool import RawStore
from maild.mail import Envelope, Parsed, Verdict
from maild.rules.engine import decide, facts_from
from maild.outbound import notices, outbox
from maild.outbound.outbox import BOUNCE_PREFIX
from maild.outbound.compose import Outgoing
from maild.outbound.notices import Mailer
from maild.rules.model import Decision, Queue, RuleSet
from maild.store import private
from maild.store import tickets as store
from maild.store.attachments import save_attachments
from maild.core.members import Link, member_numbers, template_member  # member register (issue 16)
from maild.core.members import link as link_member  # member register (issue 16)
from maild.lookup import Answer  # member register (issue 16)
from maild.store import members as store_members  # member register (issue 16)
from maild.store.tables import Inbound, Message, Outbox, Quarantine, Ticket, utcnow

log = logging.getLogger("maild.ingest")

MAX_ATTEMPTS = 3  # contract 6: a message that has crashed the processor this often is quarantined


class MessageTimeout(BaseException):
    """Reading one message took longer than ``[processing] message_timeout_seconds``.

    A BaseException, like KeyboardInterrupt: the ``except Exception`` of the parser and the
    like must not turn it into a verdict on the message."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``MessageTimeout`` in the block after ``seconds`` (0: no limit).

    SIGALRM, so the main thread only (elsewhere there is no limit here); ``re`` checks for
    signals, so a regex stuck backtracking is stopped too. An alarm already set (pytest-timeout
    uses one) is kept: when it is due first, it stays alone; else it is set again afterwards.
    The daemon's processor does not rely on this: its parent watches it from outside and can
    stop even code that ignores signals.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    outer, interval = signal.getitimer(signal.ITIMER_REAL)
    if 0 < outer <= seconds:
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise MessageTimeout(f"took over {seconds:g} s")

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001), interval)


def quarantine_error(engine: sa.Engine, inbound_id: int, reason: str) -> str:
    """Quarantine a spooled message as ``error`` with ``reason``, unless it is no longer pending.

    The row is locked first: a processor that was stopped in the middle of filing it has then
    either committed (nothing to do) or rolled back (quarantined here), never both.
    """
    with Session(engine) as session:
        inbound = session.get(Inbound, inbound_id, with_for_update=True)
        if inbound is None or inbound.state != "pending":
            return "skipped"
        store.quarantine(session, "error", reason, inbound, from_addr=inbound.mail_from or "")
        session.commit()
    return "quarantined:error"


@dataclass(frozen=True)
class Reading:
    """What a message says before the database is asked: the work done outside any lock.

    ``kept`` names the quarantine kind and reason when the message cannot become a ticket.
    """

    envelope: Envelope
    parsed: Parsed | None = None
    verdict: Verdict | None = None
    sender: str = ""
    keys: threader.ThreadKeys | None = None
    decision: Decision | None = None
    kept: tuple[str, str] | None = None
    bounce: Bounce | None = None
    bounced_outbox_id: int | None = None  # from the VERP address the bounce came back to
    member: MemberFound | None = None  # member register (issue 16)


@dataclass(frozen=True)
class MemberFound:
    """member register (issue 16): who the sender is in the register, and why not when the
    lookup command failed (the mail is then filed unlinked, and the failure counted)."""

    link: Link
    lookup_error: str | None = None


LOOKUP_FAILURES = "member_lookup_failures"  # counter row; maild_member_lookup_failures_total


@dataclass(frozen=True)
class BouncedMail:
    """maild's own outgoing mail that a bounce returns: its ticket, and those of the addresses
    that mail went to which the bounce says failed (the only ones it may mark, contract 4.4)."""

    ticket: Ticket
    failed: tuple[str, ...]


@dataclass
class Pipeline:
    """What processing needs; ``rules`` is replaced on SIGHUP."""

    engine: sa.Engine
    raw_store: RawStore
    rules: RuleSet
    mailer: Mailer
    ack_limit_per_hour: int
    staff_proof: str = "token"  # token | authres | none (contract 4.5)
    trusted_authserv_ids: frozenset[str] = frozenset()
    message_timeout: float = 0  # seconds for reading one message in this process; 0: no limit here
    member_lookup: Callable[[str], Answer] | None = None  # member register (issue 16): [members] lookup_command
    member_show_fields: tuple[str, ...] = ()  # member register (issue 16): [members] show_fields

    def process(self, inbound_id: int) -> str:
        """Process one spooled message; return what became of it, and log it (contract 7)."""
        outcome = self._process(inbound_id)
        if outcome != "skipped":
            kind, _, number = outcome.partition(":")
            ticket = threader.format_tag(self.mailer.tag_prefix, int(number)) if number.isdigit() else None
            log.info("filed", extra={"spool": inbound_id, "outcome": outcome if ticket is None else kind, "ticket": ticket})
        return outcome

    def _process(self, inbound_id: int) -> str:
        """Process one spooled message; return what became of it (for logs and tests).

        The attempt is counted and committed first, so that a crash while reading or filing
        it counts too: a message that crashed the processor ``MAX_ATTEMPTS`` times is
        quarantined when it comes up again, instead of stopping everything behind it.
        Reading (parse, classify, rules) happens before the write transaction, so the
        database lock is held only for the lookups and writes.
        """
        try:
            inbound = self._claim(inbound_id)
            if inbound is None:
                return "skipped"
            if inbound.attempts > MAX_ATTEMPTS:
                log.error("message %s crashed the processor %d times; quarantined", inbound_id, MAX_ATTEMPTS)
                return quarantine_error(self.engine, inbound_id, f"crashed the processor {MAX_ATTEMPTS} times")
            with time_limit(self.message_timeout):
                reading = self._read(inbound)
            with Session(self.engine, expire_on_commit=False) as session:
                # Locked (FOR UPDATE on PostgreSQL): another instance may be at the same row.
                inbound = session.get(Inbound, inbound_id, with_for_update=True)
                if inbound is None or inbound.state != "pending":
                    return "skipped"
                outcome = self._persist(session, inbound, reading)
                session.commit()
                return outcome
        except MessageTimeout as exc:
            log.error("message %s %s; quarantined", inbound_id, exc)
            return quarantine_error(self.engine, inbound_id, str(exc))
        except OperationalError:
            raise  # the database, not the message: it stays pending for when the database is back
        except Exception as exc:
            log.exception("message %s failed; quarantined", inbound_id)
            return self._quarantine_error(inbound_id, exc)

    def _claim(self, inbound_id: int) -> Inbound | None:
        """Count an attempt at a pending message, committed before any work on it."""
        with Session(self.engine, expire_on_commit=False) as session:
            inbound = session.get(Inbound, inbound_id, with_for_update=True)
            if inbound is None or inbound.state != "pending":
                return None
            inbound.attempts += 1
            session.commit()
            return inbound

    def process_some(
        self, limit: int = 16, watch: Callable[[int], AbstractContextManager[object]] = lambda _id: nullcontext(),
    ) -> int:
        """Process up to ``limit`` spooled messages in arrival order; return how many.
        ``watch(inbound_id)`` is entered around each (the processor tells its parent)."""
        with Session(self.engine) as session:
            ids = store.pending_inbound(session, limit)
        for inbound_id in ids:
            with watch(inbound_id):
                self.process(inbound_id)
        return len(ids)

    def process_pending(self) -> int:
        """Process every spooled message; return how many were handled."""
        total = 0
        while done := self.process_some(100):
            total += done
        return total

    def _quarantine_error(self, inbound_id: int, exc: Exception) -> str:
        reason = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc)[-3:])
        return quarantine_error(self.engine, inbound_id, reason)

    def _read(self, inbound: Inbound) -> Reading:
        """Everything that needs no database: parse, classify, threading keys, rules."""
        envelope = Envelope(
            source=inbound.source,  # type: ignore[arg-type]
            mail_from=inbound.mail_from,
            recipients=tuple(inbound.recipients),
            mailbox=inbound.mailbox,
        )
        try:
            parsed, message = parse_message(self.raw_store.read(inbound.raw_path))
        except ParseError as exc:
            return Reading(envelope, kept=("unparseable", str(exc)), sender=inbound.mail_from or "")
        sender = parsed.from_addr or parse_address(envelope.mail_from or "") or ""  # MAIL FROM is read alike
        verdict = classify(parsed, envelope, message, self.rules.addresses())
        if verdict.kind == "bounce":
            return Reading(
                envelope, parsed, verdict, sender, kept=("bounce", verdict.reason), bounce=parse_bounce(message),
                bounced_outbox_id=self._verp_outbox_id(envelope.recipients + parsed.to),
            )
        if not sender:
            return Reading(envelope, parsed, verdict, sender, kept=("unparseable", "no sender address"))
        # member register (issue 16): a lookup command may take seconds, so it runs here, outside
        # the write transaction; without one, the register is asked in _persist (one query)
        member = None
        if self.member_lookup is not None and not verdict.is_machine:
            with self.engine.connect() as connection:
                member = self._find_member(connection, sender, parsed, ask_command=True)
        return Reading(
            envelope, parsed, verdict, sender,
            keys=threader.keys(parsed, envelope, self.mailer.tag_prefix, self.rules.addresses()),
            decision=decide(facts_from(parsed, envelope.recipients, member.link.member if member else None), self.rules),
            member=member,
        )

    def _find_member(self, session: Session | sa.Connection, sender: str, parsed: Parsed, ask_command: bool = False
                     ) -> MemberFound:
        """member register (issue 16): the sender's member, by address (the register, else the
        lookup command) or by a member number in the mail: one indexed query."""
        numbers = member_numbers(parsed.subject, parsed.text)
        by_address, by_number = store_members.look_up(session, sender, numbers)
        error = None
        if by_address is None and ask_command and self.member_lookup is not None:
            answer = self.member_lookup(sender)
            by_address, error = answer.member, answer.error
            if error:
                log.warning("member lookup for %s failed, filed unlinked: %s", sender, error)
        return MemberFound(link_member(by_address, numbers, by_number), error)

    def _persist(self, session: Session, inbound: Inbound, reading: Reading) -> str:
        """Thread and store one read message, in the caller's transaction."""
        parsed, verdict, sender = reading.parsed, reading.verdict, reading.sender
        subject = parsed.subject if parsed else ""
        if reading.kept and reading.kept[0] == "bounce" and parsed is not None:
            bounced = self._bounced_mail(session, reading)
            if bounced is not None:
                self._record_bounce(session, bounced, inbound, reading)
                inbound.state = "done"
                return f"bounce:{bounced.ticket.number}"
        if reading.kept:
            kind, reason = reading.kept
            store.quarantine(session, kind, reason, inbound, from_addr=sender, subject=subject)
            return f"quarantined:{kind}"
        assert parsed and verdict and reading.keys and reading.decision
        if reading.member is not None and reading.member.lookup_error:  # member register (issue 16)
            store.next_number(session, LOOKUP_FAILURES)
        found = self._lookup(session, reading.keys)
        choice = threader.choose(reading.keys, found)
        if choice.action == "duplicate":
            return self._duplicate(session, inbound, reading.keys)
        if choice.action == "follow_up" and choice.ticket is not None:
            ticket = store.ticket_by_number(session, choice.ticket.number)
            assert ticket is not None
            writer = self._proven_staff(found, choice, sender, parsed, ticket)
            if writer and not verdict.is_machine:
                self._staff_reply(session, ticket, inbound, parsed, verdict, writer)
            else:
                self._follow_up(session, ticket, inbound, parsed, sender, verdict, choice)
            inbound.state = "done"
            return f"follow_up:{ticket.number}"
        decision = reading.decision
        member = reading.member  # member register (issue 16): asked here, in this transaction, unless read
        if member is None:
            member = self._find_member(session, sender, parsed)
            if member.link.member is not None and self.rules.uses_member:  # rules that read the register
                decision = decide(facts_from(parsed, reading.envelope.recipients, member.link.member), self.rules)
        if decision.drop:
            names = ", ".join(hit.name for hit in decision.hits) or "rules"
            store.quarantine(session, "dropped", f"dropped by rule: {names}", inbound, from_addr=sender, subject=subject)
            return "quarantined:dropped"
        ticket = self._new_ticket(session, inbound, parsed, sender, verdict, decision, choice, member)
        inbound.state = "done"
        return f"new:{ticket.number}"

    def _duplicate(self, session: Session, inbound: Inbound, keys: threader.ThreadKeys) -> str:
        """A copy of a stored message is stored once, and never invisibly (contract 4.1): the
        ticket of the first copy records where and when the copy came; the spool row says of what."""
        first = store.first_copy(session, keys.message_id, (keys.fingerprint, keys.legacy_fingerprint))
        assert first is not None  # threading found it a moment ago, in this transaction
        ticket = session.get(Ticket, first.ticket_id)
        assert ticket is not None
        tag = threader.format_tag(self.mailer.tag_prefix, ticket.number)
        store.add_event(
            session, ticket, "duplicate_received", source=inbound.source, mailbox=inbound.mailbox,
            received_at=inbound.received_at.isoformat(), inbound_id=inbound.id, message_id=keys.message_id,
            first_message=first.id,
        )
        inbound.state = "done"
        inbound.error = f"duplicate of message {first.id} on {tag}"
        log.info("inbound %s: duplicate of message %s on %s", inbound.id, first.id, tag)
        return "duplicate"

    def _verp_outbox_id(self, recipients: tuple[str, ...]) -> int | None:
        for address in recipients:
            token = verp_token(address, BOUNCE_PREFIX)
            found = read_outbox_token(self.mailer.secret, token) if token else None
            if found:
                return found
        return None

    def _bounced_mail(self, session: Session, reading: Reading) -> BouncedMail | None:
        """The mail of maild's that bounced: by the VERP address the bounce came back to, else by
        the returned Message-ID when maild generated it. A bounce of any other message (one that
        maild received, an attacker's own) is not ours: it goes to the quarantine (contract 4.4)."""
        if reading.bounced_outbox_id is not None:
            row = session.get(Outbox, reading.bounced_outbox_id)
            ticket = session.get(Ticket, row.ticket_id) if row is not None and row.ticket_id is not None else None
            if row is not None and ticket is not None:
                return BouncedMail(ticket, (row.recipient,))  # the DSN may name a forward target
        original = reading.bounce.original_message_id if reading.bounce else None
        message = store.outgoing_message(session, original) if original else None
        ticket = session.get(Ticket, message.ticket_id) if message is not None else None
        if message is None or ticket is None:
            return None
        listed = set(reading.bounce.recipients) if reading.bounce else set()
        return BouncedMail(ticket, tuple(a for a in store.sent_to(session, message) if a in listed))

    def _record_bounce(self, session: Session, bounced: BouncedMail, inbound: Inbound, reading: Reading) -> None:
        """Keep the bounce on its ticket; a permanent failure marks the addresses that maild's
        mail went to undeliverable, for ``UNDELIVERABLE_FOR``."""
        assert reading.parsed and reading.verdict
        ticket, now = bounced.ticket, utcnow()
        self._store_message(session, ticket, inbound, reading.parsed, "bounce", reading.verdict, threader.fingerprint(reading.parsed))
        bounce = reading.bounce
        permanent = bounce.permanent if bounce else True
        marked = list(bounced.failed) if permanent else []
        store.add_event(
            session, ticket, "bounce", recipients=list(bounce.recipients if bounce else bounced.failed),
            permanent=permanent, undeliverable=marked, status=bounce.status if bounce else None,
            diagnostic=(bounce.diagnostic[:500] if bounce else ""),
        )
        for address in marked:
            store.mark_undeliverable(session, address, now)
        if ticket.requester in marked:
            store.add_event(session, ticket, "requester_undeliverable", address=ticket.requester)

    def _lookup(self, session: Session, keys: threader.ThreadKeys) -> threader.Found:
        """The store's answers to what threading asked (``keys``)."""
        token_ticket, token_staff = None, None
        for token in keys.tokens:
            number, staff = read_ticket_token(self.mailer.secret, token), None
            if number is None:
                number, staff = read_staff_token(self.mailer.secret, token, self.rules.all_staff()) or (None, None)
            found = store.ticket_by_number(session, number) if number else None
            if found:
                token_ticket, token_staff = store.ref(found), staff
                break
        reference = store.ticket_for_message_ids(session, keys.referenced)
        return threader.Found(
            same_message_id=store.fingerprints_for(session, keys.message_id, keys.fingerprint),
            token_ticket=token_ticket,
            token_staff=token_staff,
            tag_tickets=tuple(store.ref(t) for t in store.tickets_by_numbers(session, keys.tags)),
            reference_ticket=store.ref(reference) if reference else None,
        )

    def _store_message(
        self, session: Session, ticket: Ticket, inbound: Inbound, parsed: Parsed, kind: str, verdict: Verdict,
        fingerprint: str,
    ) -> Message:
        message = Message(
            ticket_id=ticket.id,
            inbound_id=inbound.id,
            direction="in",
            kind=kind,
            message_id=parsed.message_id,
            fingerprint=fingerprint,
            from_addr=parsed.from_addr or (inbound.mail_from or "").lower(),
            from_name=parsed.from_name,
            to=list(parsed.to),
            cc=list(parsed.cc),
            subject=parsed.subject,
            date=parsed.date,
            in_reply_to=parsed.in_reply_to[0] if parsed.in_reply_to else None,
            references=list(parsed.references),
            classification=verdict.kind,
            text=parsed.text,
            html=parsed.html,
            raw_path=inbound.raw_path,
        )
        session.add(message)
        session.flush()
        save_attachments(session, self.raw_store.root, message, parsed.attachments)
        if parsed.cleaned:  # contract 4.5a: what was cleaned or left out is on the record
            store.add_event(session, ticket, "mail_values_cleaned", message=message.id, notes=list(parsed.cleaned))
        return message

    def _new_ticket(
        self, session: Session, inbound: Inbound, parsed: Parsed, sender: str, verdict: Verdict,
        decision: Decision, choice: threader.Choice, member: MemberFound | None = None,
    ) -> Ticket:
        now = utcnow()
        queue = self.rules.queues[decision.queue]
        store.contact(session, sender, parsed.from_name)
        ticket = Ticket(
            number=store.next_number(session),
            queue=decision.queue,
            priority=decision.priority,
            category=decision.category,
            subject=threader.strip_prefixes(parsed.subject) or "(no subject)",
            requester=sender,
            confidential=decision.confidential,
            tags=list(decision.tags),
            other_queues=list(decision.other_queues),
            # contract 4.5a: the CCs of the member's first message; a confidential ticket starts without
            cc=[] if decision.confidential else list(dict.fromkeys(
                a for a in parsed.cc if a != sender and self.rules.queue_for_address(a) is None)),
            linked_to=choice.linked_to,
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        session.flush()
        fingerprint = threader.fingerprint(parsed)
        self._store_message(session, ticket, inbound, parsed, "auto_reply" if verdict.is_machine else "member", verdict, fingerprint)
        store.add_event(
            session, ticket, "created", actor=sender, source=inbound.source, queue=ticket.queue,
            priority=ticket.priority, category=ticket.category, classification=verdict.kind,
            rules=[hit.to_json() for hit in decision.hits],
            other_queues=list(decision.other_queues), linked_to=choice.linked_to,
        )
        if choice.collision:
            store.add_event(session, ticket, "message_id_collision", message_id=parsed.message_id)
        self._link_member(session, ticket, member)  # member register (issue 16)
        assignee = self._assign(session, decision, queue.staff)
        if assignee:
            ticket.assignee = assignee
            store.add_event(session, ticket, "assigned", assignee=assignee, how=decision.assign)
        self._acknowledge(session, ticket, queue, parsed, verdict, decision, now)
        if not verdict.is_machine:
            self._notify_new(session, ticket, queue, parsed, decision, now, member)
        return ticket

    @staticmethod
    def _link_member(session: Session, ticket: Ticket, found: MemberFound | None) -> None:
        """member register (issue 16): keep the ticket's member, and say how it was found, that
        the lookup failed, or that the mail named another member's number (for staff)."""
        if found is None:
            return
        if found.lookup_error:
            store.add_event(session, ticket, "member_lookup_failed", error=found.lookup_error)
        member = store_members.link_ticket(session, ticket, found.link)
        if member is None:
            return
        store.add_event(session, ticket, "member_linked", member_number=member.member_number,
                        linked_by=found.link.linked_by)
        if found.link.conflict:
            store.add_event(session, ticket, "member_conflict", member_number=member.member_number,
                            mentioned_number=found.link.conflict,
                            reason="the mail names another member's number; the sender's address decides")

    def _notify_new(self, session: Session, ticket: Ticket, queue: Queue, parsed: Parsed, decision: Decision, now: datetime,
                    member: MemberFound | None = None) -> None:
        """``staff_new`` to the queue's staff and the rules' ``notify`` addresses; content of a
        confidential ticket goes to its own queue's staff only."""
        extra = tuple(a for a in decision.notify if not ticket.confidential or a in queue.staff)
        recipients = tuple(dict.fromkeys(queue.staff + extra))
        other_open = [
            {"tag": threader.format_tag(self.mailer.tag_prefix, other.number), "subject": other.subject,
             "status": other.status, "visible": not other.confidential or other.queue == ticket.queue}
            for other in store.open_tickets_of(session, ticket.requester) if other.id != ticket.id
        ]
        not_recipients = self._not_recipients(ticket, parsed)
        shown = template_member(member.link, self.member_show_fields) if member else None  # member register (issue 16)
        self.queue_mail(session, ticket, "notification", lambda: notices.staff_new(
            self.mailer, self.rules, queue, ticket, parsed, other_open, not_recipients, recipients, now,
            member=shown))

    def _notify_followup(self, session: Session, ticket: Ticket, parsed: Parsed, kind: str) -> None:
        """``staff_followup`` to the assignee, or to the queue's staff when nobody of them owns
        the ticket: its content goes to its own queue's staff only (contract 4.5a)."""
        queue = self.rules.queues.get(ticket.queue)
        if queue is None:
            return
        recipients = (ticket.assignee,) if ticket.assignee in queue.staff else queue.staff
        requester_name = store.contact_of(session, ticket.requester).name
        not_recipients = self._not_recipients(ticket, parsed)
        linked = store_members.member_of_ticket(session, ticket.id or 0)  # member register (issue 16)
        shown = template_member(Link(linked[0], linked[1]), self.member_show_fields) if linked else None  # type: ignore[arg-type]
        self.queue_mail(session, ticket, "notification", lambda: notices.staff_followup(
            self.mailer, queue, ticket, parsed, requester_name, kind == "third_party", not_recipients, recipients,
            utcnow(), member=shown))

    def _not_recipients(self, ticket: Ticket, parsed: Parsed) -> tuple[str, ...]:
        """The addresses in this mail that do not get the ticket's mail, for the staff
        notification: only staff add one, with ``#cc`` (contract 4.5a). maild's own addresses
        and the queue's staff, who get the notifications anyway, are left out."""
        queue = self.rules.queues.get(ticket.queue)
        known = {ticket.requester, *ticket.cc, *(queue.staff if queue else ())}
        found = dict.fromkeys((parsed.from_addr, *parsed.to, *parsed.cc))
        return tuple(a for a in found if a and a not in known and self.rules.queue_for_address(a) is None)

    def queue_mail(
        self, session: Session, ticket: Ticket | None, kind: str, compose: Callable[[], list[Outgoing]]
    ) -> Message | None:
        """Queue mail about a ticket and return its message on the ticket (None for mail of no
        ticket, or when it could not be written); a mail that cannot be written is an event, never
        a lost ticket."""
        try:
            return outbox.enqueue_many(session, ticket, kind, compose(), self.mailer.secret, self.mailer.hostname)
        except SQLAlchemyError:
            raise
        except Exception as exc:  # a broken template or value must not cost the member their ticket
            log.error("ticket %s: %s not sent: %s", ticket.number if ticket else "-", kind, exc)
            if ticket is not None:
                store.add_event(session, ticket, f"{kind}_failed", error=f"{type(exc).__name__}: {exc}")
            return None

    def _acknowledge(
        self, session: Session, ticket: Ticket, queue: Queue, parsed: Parsed, verdict: Verdict, decision: Decision,
        now: datetime,
    ) -> None:
        """Queue the member's acknowledgement, unless anything says not to (contract 4.3)."""
        reason = self._no_ack_reason(session, ticket, verdict, decision, now)
        if reason:
            store.add_event(session, ticket, "ack_skipped", reason=reason)
            return
        template = decision.ack if isinstance(decision.ack, str) else "ack"
        self.queue_mail(session, ticket, "ack", lambda: [
            notices.acknowledgement(self.mailer, self.rules, queue, ticket, parsed, template, now)])

    def _no_ack_reason(self, session: Session, ticket: Ticket, verdict: Verdict, decision: Decision, now: datetime) -> str | None:
        if verdict.is_machine:
            return f"{verdict.kind}: {verdict.reason}"
        if decision.ack is False:
            return "turned off by a rule"
        if undeliverable(store.contact(session, ticket.requester).undeliverable_since, now):
            return "the requester's address bounces"
        if outbox.acks_sent_since(session, ticket.requester, now - timedelta(hours=1)) >= self.ack_limit_per_hour:
            return f"{self.ack_limit_per_hour} acknowledgements to this sender in the last hour"
        return None

    @staticmethod
    def _assign(session: Session, decision: Decision, staff: tuple[str, ...]) -> str | None:
        """The assignee a decision asks for; round-robin state lives in the database."""
        if decision.assign == "round-robin":
            turn = store.next_number(session, f"round-robin:{decision.queue}") - 1
            return pick_assignee("round-robin", staff, turn=turn)
        if decision.assign == "least-loaded":
            return pick_assignee("least-loaded", staff, load=store.open_load(session, decision.queue))
        return pick_assignee(decision.assign, staff)

    def _follow_up(
        self, session: Session, ticket: Ticket, inbound: Inbound, parsed: Parsed, sender: str, verdict: Verdict,
        choice: threader.Choice,
    ) -> None:
        staff = frozenset(self.rules.queues[ticket.queue].staff) if ticket.queue in self.rules.queues else frozenset()
        kind = threader.follow_up_kind(sender, choice.ticket, choice.via, staff, verdict.is_machine)  # type: ignore[arg-type]
        self._store_message(session, ticket, inbound, parsed, kind, verdict, threader.fingerprint(parsed))
        store.add_event(session, ticket, "message", actor=sender, message_kind=kind, via=choice.via, source=inbound.source)
        if choice.collision:
            store.add_event(session, ticket, "message_id_collision", message_id=parsed.message_id)
        if sender in self.rules.all_staff() and not verdict.is_machine:
            # contract 4.5: staff From without the proof: nothing obeyed, nothing relayed
            store.add_event(session, ticket, "staff_unproven", actor=sender, via=choice.via)
        if kind in ("member", "third_party"):
            self._notify_followup(session, ticket, parsed, kind)
        if kind == "member":  # its other addresses are not added by themselves (contract 4.5a)
            self.set_status(session, ticket, "member_reply", sender)
            store.touch(ticket)

    def _proven_staff(
        self, found: threader.Found, choice: threader.Choice, sender: str, parsed: Parsed, ticket: Ticket
    ) -> str | None:
        """The staff member who provably wrote this, if anyone (contract 4.5).

        ``token``: mail to a staff member's secret address of this ticket, from them.
        ``authres``: the topmost trusted Authentication-Results passes the From domain.
        ``none``: the From address alone (for trials).
        Either way the writer must be staff of the ticket's queue.
        """
        queue = self.rules.queues.get(ticket.queue)
        if queue is None or sender not in queue.staff:
            return None
        if self.staff_proof == "token":
            proven = choice.via == "token" and found.token_staff == sender
        elif self.staff_proof == "authres":
            domain = sender.rpartition("@")[2]
            proven = proves_sender(parsed.authentication_results, self.trusted_authserv_ids, domain)
        else:
            proven = True
        return sender if proven else None

    def act(self, number: int, command: Command, actor: str, note: str = "") -> str | None:
        """What a mail command does, from the shell (``maild tickets assign|close|reopen|note|move``):
        checked as in mail, with the same events and the same mail. Returns an error, or None when done."""
        with Session(self.engine, expire_on_commit=False) as session:
            ticket = store.ticket_by_number(session, number)
            if ticket is None:
                return f"no ticket {number}"
            checked, error = check(command, frozenset(self.rules.queues), self._staff(ticket), self._context(ticket))
            if checked is None:
                return f"ticket {number} (queue {ticket.queue}): {error}"
            command = checked
            if command.name == "note":
                session.add(Message(ticket_id=ticket.id, direction="in", kind="note", from_addr=actor, text=note,
                                    subject=f"{threader.format_tag(self.mailer.tag_prefix, number)} {ticket.subject}"))
                store.add_event(session, ticket, "note", actor=actor)
            else:
                self._obey(session, ticket, command, actor)
            store.touch(ticket)
            session.commit()
        return None

    def _staff_reply(
        self, session: Session, ticket: Ticket, inbound: Inbound, parsed: Parsed, verdict: Verdict, writer: str
    ) -> None:
        """Obey the command lines, then relay the answer to the member (unless it is a note)."""
        queue = self.rules.queues[ticket.queue]
        text = parse_staff_text(
            parsed.text, frozenset(self.rules.queues), self._staff(ticket), self._context(ticket, writer))
        note = any(command.name == "note" for command in text.commands)
        kind = "note" if note or text.errors or not text.answer else "staff"
        self._store_message(session, ticket, inbound, parsed, kind, verdict, threader.fingerprint(parsed))
        if text.errors:
            store.add_event(session, ticket, "commands_rejected", actor=writer, errors=list(text.errors))
            self.queue_mail(session, ticket, "notification", lambda: [notices.command_errors(
                self.mailer, queue, ticket, writer, parsed, text.errors, utcnow())])
            return
        if kind == "note" and not note and not text.commands:
            # nothing of the writer's own outside the quotation: keep it, relay nothing, say so
            store.add_event(session, ticket, "nothing_relayed", actor=writer)
            self.queue_mail(session, ticket, "notification", lambda: [notices.nothing_relayed(
                self.mailer, queue, ticket, writer, parsed, utcnow())])
            return
        status_set = False
        for command in text.commands:
            status_set |= self._obey(session, ticket, command, writer)
        queue = self.rules.queues[ticket.queue]  # a #queue moved it: the answer goes out from there
        if kind == "staff":
            self._relay(session, ticket, queue, parsed, text.answer, writer)
            if not status_set:
                self.set_status(session, ticket, "staff_reply", writer)
        if not ticket.assignee and (kind == "staff" or text.commands) and writer in queue.staff:
            ticket.assignee = writer
            store.add_event(session, ticket, "assigned", actor=writer, assignee=writer, how="answered")
        store.touch(ticket)

    def _staff(self, ticket: Ticket) -> frozenset[str]:
        queue = self.rules.queues.get(ticket.queue)
        return frozenset(queue.staff) if queue else frozenset()

    def _context(self, ticket: Ticket, writer: str = "") -> Context:
        """What staff commands on this ticket are checked against (``core.commands``)."""
        return Context(writer=writer, requester=ticket.requester, own_addresses=self.rules.addresses(),
                       staff_of={queue.id: frozenset(queue.staff) for queue in self.rules.queues.values()})

    def _obey(self, session: Session, ticket: Ticket, command: Command, writer: str) -> bool:
        """Carry out one checked command; True when it set the status."""
        name, value = command.name, command.argument
        if name in ("take", "assign"):
            ticket.assignee = writer if name == "take" else value
            store.add_event(session, ticket, "assigned", actor=writer, assignee=ticket.assignee, how=f"#{name}")
        elif name in ("priority", "category"):
            old = getattr(ticket, name)
            setattr(ticket, name, value)
            store.add_event(session, ticket, name, actor=writer, old=old, new=value)
        elif name == "queue":
            self._move(session, ticket, self.rules.queues[value], writer)
        elif name == "cc" and value != ticket.requester and value not in ticket.cc:
            ticket.cc = [*ticket.cc, value]
            store.add_event(session, ticket, "cc_added", actor=writer, address=value)
        elif name == "uncc" and value in ticket.cc:
            ticket.cc = [a for a in ticket.cc if a != value]
            store.add_event(session, ticket, "cc_removed", actor=writer, address=value, how="#uncc")
        elif name in ("close", "pending", "open"):
            happened = {"close": "resolve", "pending": "set_pending", "open": "set_open"}[name]
            self.set_status(session, ticket, happened, writer)
            return True
        return False

    @staticmethod
    def _move(session: Session, ticket: Ticket, queue: Queue, actor: str) -> None:
        """Put a ticket in another queue (contract 4.5a). It takes that queue's confidentiality,
        and an assignee who is not staff there is dropped, so from now on only that queue's
        staff get its content. Moving into a confidential queue also drops the CCs, each with
        an event: that queue's staff add back whom they choose, with ``#cc``."""
        if queue.id == ticket.queue:
            return
        store.add_event(session, ticket, "queue", actor=actor, old=ticket.queue, new=queue.id)
        ticket.queue = queue.id
        if ticket.confidential != queue.confidential:
            store.add_event(session, ticket, "confidential", actor=actor, old=ticket.confidential, new=queue.confidential)
            ticket.confidential = queue.confidential
        if ticket.assignee and ticket.assignee not in queue.staff:
            store.add_event(session, ticket, "unassigned", actor=actor, old=ticket.assignee,
                            reason=f"not staff of queue {queue.id}")
            ticket.assignee = None
        if queue.confidential and ticket.cc:
            for address in ticket.cc:
                store.add_event(session, ticket, "cc_removed", actor=actor, address=address, how="#queue")
            ticket.cc = []

    def set_status(
        self, session: Session, ticket: Ticket, happened: str, actor: str, now: datetime | None = None
    ) -> None:
        """Move the ticket through its life (``core.lifecycle``); resolving tells the member."""
        status = next_status(ticket.status, happened)
        if status == ticket.status:
            return
        now = now or utcnow()
        store.add_event(session, ticket, "status", actor=actor, old=ticket.status, new=status, at=now)
        ticket.status = status
        ticket.status_changed_at = now
        if status == "resolved":
            ticket.resolved_at = now
            self._tell_resolved(session, ticket, now)
        elif status == "closed":
            ticket.closed_at = now

    def _tell_resolved(self, session: Session, ticket: Ticket, now: datetime) -> None:
        """``resolved`` to the member, unless no automatic mail may go there (contract 4.3, 4.4)."""
        queue = self.rules.queues.get(ticket.queue)
        contact = store.contact_of(session, ticket.requester)
        ticket_id = ticket.id or 0
        reason = "its queue is no longer in the rules" if queue is None else no_member_mail(
            ticket.requester, undeliverable(contact.undeliverable_since, now),
            store.opened_by_machine(session, [ticket_id]).get(ticket_id), self.rules.addresses())
        if reason:
            store.add_event(session, ticket, "resolved_notice_skipped", at=now, reason=reason)
            return
        self.queue_mail(session, ticket, "resolved", lambda: [notices.resolved(
            self.mailer, self.rules, queue, ticket, contact.name, now)])

    def _relay(self, session: Session, ticket: Ticket, queue: Queue, parsed: Parsed, answer: str, writer: str) -> None:
        """The staff member's answer to the member and the ticket's CCs, from the queue."""
        ticket.first_response_at = ticket.first_response_at or utcnow()
        last = store.last_member_message(session, ticket)
        relayed = self.queue_mail(session, ticket, "staff", lambda: [notices.relayed_answer(
            self.mailer, queue, ticket, answer, last.message_id if last else None,
            tuple(last.references) if last else (), utcnow())])
        if relayed is not None:  # recorded as relayed only when queued, to whom it was queued
            store.add_event(session, ticket, "relayed", actor=writer, to=[*relayed.to, *relayed.cc])


def secret_key(settings_key: str, data_dir: Path) -> bytes:
    """The instance's HMAC key: from the config, else a key file made once in the data dir."""
    if settings_key:
        return settings_key.encode("utf-8")
    path = Path(data_dir) / "secret.key"
    if not path.exists():  # made whole and once: two processes starting together share one key
        private.make_dirs(path.parent, durable=True)
        private.write_file(path, secrets.token_hex(32).encode("ascii"), replace=False)
    return path.read_text(encoding="ascii").strip().encode("ascii")


def reprocess(session: Session, quarantine_id: int) -> Inbound | None:
    """Put a quarantined message back into the spool (``maild quarantine replay``)."""
    row = session.get(Quarantine, quarantine_id)
    if row is None or row.inbound_id is None:
        return None
    inbound = session.get(Inbound, row.inbound_id)
    if inbound is None:
        return None
    inbound.state = "pending"
    inbound.error = None
    inbound.attempts = 0  # a fresh count: the cause of earlier crashes may be fixed
    row.released_at = utcnow()
    return inbound

