"""The one orchestrator: spooled messages through every stage, read top to bottom.

A batch of spool rows: count the attempt (committed) -> read each (``maild.read``: parse,
classify, thread keys, rules; no database) -> in ONE transaction: look up what the decisions
need (``store.lookup``: the plain new requests of the batch together), decide for each message
(``core.plan``: pure), carry the decisions out (``store.apply``; mail and events written
together at the end) -> commit once. When a message fails, the batch is filed again with each
message in a savepoint of its own: the one that fails is quarantined alone, the rest commit. A
database error leaves the whole batch pending for when the database is back. In the daemon, the
next batch is claimed and read by another process meanwhile (``maild.read_ahead``,
``_claim_batch``).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from jinja2 import TemplateError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, col, select

from maild.core import plan as planner
from maild.core.commands import Command
from maild.core.kinds import InboundState, Outcome
from maild.core.lifecycle import next_status
from maild.core.reading import Reading, ToFile, Unreadable
from maild.core.threader import format_tag
from maild.intake.spool import RawStore
from maild.mail import Envelope
from maild.outbound import notices, outbox
from maild.outbound.compose import Outgoing
from maild.outbound.notices import Mailer
from maild.read import read
from maild.read_ahead import BIG as READ_HERE
from maild.read_ahead import ReadAhead, ToRead
from maild.rules.model import RuleSet
from maild.store import lookup, private
from maild.outbound.answers import answer_titles
from maild.store import tickets as store
from maild.store.apply import Applying, Deferred, apply
from maild.store.tables import Inbound, Quarantine, Ticket, utcnow

if TYPE_CHECKING:
    from maild.lookup import Answer

log = logging.getLogger("maild.ingest")

_INBOUND = Inbound.__table__  # type: ignore[attr-defined]

MAX_ATTEMPTS = 3  # a message that has crashed the processor this often is quarantined (docs: guarantees)
BATCH = 32  # messages filed in one transaction

Watch = Callable[[int], AbstractContextManager[object]]


@dataclass(frozen=True)
class Claimed:
    """A spool row claimed for a batch: what reading it needs."""

    id: int
    state: str
    attempts: int
    source: str
    mail_from: str | None
    recipients: list[str]
    mailbox: str | None
    raw_path: str
    size: int


_CLAIMED = tuple(_INBOUND.c[name] for name in Claimed.__dataclass_fields__)


@dataclass(frozen=True)
class _Ahead:
    """Messages claimed before the batch in hand was filed: being read by ``reader``, or read."""

    claimed: list[Claimed]
    reader: ReadAhead | None
    readings: dict[int, Reading] = field(default_factory=dict)


class _FailedInBatch(Exception):
    """A message failed while its batch was filed together: the batch is filed again, each
    message in a savepoint of its own."""


def _unwatched(_inbound_id: int) -> AbstractContextManager[object]:
    return nullcontext()


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
        if inbound is None or inbound.state != InboundState.PENDING:
            return "skipped"
        store.quarantine(session, "error", reason, inbound, from_addr=inbound.mail_from or "")
        session.commit()
    return "quarantined:error"


@dataclass
class Pipeline:
    """What processing needs; ``rules`` is replaced on SIGHUP."""

    engine: sa.Engine
    raw_store: RawStore
    rules: RuleSet
    mailer: Mailer
    ack_limit_per_hour: int
    staff_proof: str = "token"  # token | authres | none (docs: staff mail)
    trusted_authserv_ids: frozenset[str] = frozenset()
    message_timeout: float = 0  # seconds for reading one message in this process; 0: no limit here
    member_lookup: Callable[[str], Answer] | None = None  # member register (issue 16): [members] lookup_command
    member_show_fields: tuple[str, ...] = ()  # member register (issue 16): [members] show_fields
    read_ahead_timeout: float = 60  # seconds the reader (``maild.read_ahead``) may take for a batch
    _ahead: _Ahead | None = field(default=None, init=False, repr=False)  # claimed, not yet filed

    @property
    def policy(self) -> planner.Policy:
        return planner.Policy(self.rules, self.mailer.tag_prefix, self.ack_limit_per_hour, self.staff_proof,
                              self.trusted_authserv_ids, answer_titles(self.mailer.templates), self.member_show_fields)

    def process(self, inbound_id: int) -> str:
        """Process one spooled message; return what became of it (for logs and tests)."""
        return self.process_many([inbound_id])[inbound_id]

    def process_many(self, ids: list[int], watch: Watch = _unwatched) -> dict[int, str]:
        """Process these spooled messages in order, ``BATCH`` to a transaction; what became of each."""
        outcomes: dict[int, str] = {}
        while todo := [i for i in ids if i not in outcomes][:BATCH]:
            outcomes.update(self._batch(todo, watch))
        return outcomes

    def _batch(self, ids: list[int] | None, watch: Watch, limit: int = BATCH,
               reader: ReadAhead | None = None, ahead: int = BATCH) -> dict[int, str]:
        """One transaction's worth (``ids``, or the first ``limit`` pending messages); ``watch(inbound_id)``
        is entered around each message's work. ``reader``: the next batch is read in another
        process while this one is filed (``maild.read_ahead``)."""
        try:
            return self._file_claimed(*self._claim_batch(ids, limit, reader, ahead), watch)
        except BaseException:
            # what was claimed ahead waits, each message tried alone in order (its attempt is
            # counted), not filed before the batch that failed
            self._ahead = None
            raise

    def _file_claimed(self, claimed: list[Claimed], outcomes: dict[int, str], readings: dict[int, Reading],
                      watch: Watch) -> dict[int, str]:
        """Read what is not read yet, then file the batch (``_file_batch``)."""
        for inbound in claimed:
            if inbound.id in readings:
                continue
            with watch(inbound.id or 0):
                outcome = self._read(inbound, readings)
            if outcome:
                outcomes[inbound.id or 0] = outcome
        readings = {inbound.id: readings[inbound.id] for inbound in claimed if inbound.id in readings}  # in order
        asked = self._ask_members(readings)
        if readings:
            try:
                outcomes.update(self._file_batch(readings, asked, watch, together=True))
            except _FailedInBatch:  # a message failed: each goes alone, so that only it is quarantined
                outcomes.update(self._file_batch(readings, asked, watch, together=False))
        for inbound_id in readings:
            self._log(inbound_id, outcomes[inbound_id])
        return outcomes

    def _claim_batch(self, ids: list[int] | None, limit: int, reader: ReadAhead | None, ahead: int = BATCH
                     ) -> tuple[list[Claimed], dict[int, str], dict[int, Reading]]:
        """The batch to file now, what is no longer pending, and the readings the reader made.

        The messages claimed ahead before come first (``limit`` of them: intake may have become
        busy meanwhile, and wants short transactions). With a ``reader``, once they are all
        taken, the next ``ahead`` messages are claimed and handed to it, but only messages never
        tried before, behind a batch of such: were this batch to crash the processor, the attempt
        counted on the next one must not bring an innocent message nearer to quarantine than one
        more try."""
        if ids is not None or self._ahead is None:
            claimed, outcomes = self._claim(ids, limit)
            readings: dict[int, Reading] = {}
        else:
            taken, self._ahead, outcomes = self._ahead, None, {}
            readings = taken.readings if taken.reader is None else taken.reader.take(self.read_ahead_timeout)
            claimed, rest = taken.claimed[:limit], taken.claimed[limit:]
            if rest:
                self._ahead = _Ahead(rest, None, {c.id: readings[c.id] for c in rest if c.id in readings})
        if reader is not None and ids is None and self._ahead is None and claimed and all(
                c.attempts == 1 for c in claimed):
            following, _ = self._claim(None, ahead, after=[c.id for c in claimed])
            if following:
                reader.submit([ToRead(c.id, c.raw_path, _envelope(c)) for c in following if c.size < READ_HERE])
                self._ahead = _Ahead(following, reader)
        return claimed, outcomes, readings

    def _file_batch(self, readings: dict[int, Reading], asked: dict[int, Answer], watch: Watch,
                    together: bool) -> dict[int, str]:
        """File read messages in one transaction. ``together``: the plain new requests looked up
        in a few queries for all of them, the mail and events written at the end, and no
        savepoints (raises ``_FailedInBatch`` when one message fails, and nothing is written);
        else each message in a savepoint of its own, one that fails quarantined alone."""
        outcomes: dict[int, str] = {}
        with Session(self.engine, expire_on_commit=False) as session:
            # the spool rows, locked (FOR UPDATE on PostgreSQL): another instance may be at them
            locked = {row.id: row for row in session.exec(
                select(Inbound).where(col(Inbound.id).in_(list(readings))).order_by(col(Inbound.id)).with_for_update())}
            done: list[int] = []
            prefetched = lookup.Prefetched.load(session, readings.values(), utcnow()) if together else None
            deferred = Deferred()
            for inbound_id, reading in readings.items():
                with watch(inbound_id):
                    if prefetched is None:
                        outcomes[inbound_id] = self._file(session, locked.get(inbound_id), inbound_id, reading, done,
                                                          asked.get(inbound_id))
                    else:
                        outcomes[inbound_id] = self._file_together(session, locked.get(inbound_id), inbound_id, reading,
                                                                   done, asked.get(inbound_id), prefetched, deferred)
            if prefetched is not None:
                self._write_deferred(session, deferred)
            if done:  # one statement for the batch
                session.connection().execute(sa.update(_INBOUND).where(_INBOUND.c.id.in_(done))
                                             .values(state=str(InboundState.DONE)))
            session.commit()
        return outcomes

    @staticmethod
    def _write_deferred(session: Session, deferred: Deferred) -> None:
        """The batch's last mail, events and counters; rows the database refuses send the batch
        back to be filed a message at a time, so that only the message they belong to is quarantined."""
        try:
            deferred.write(session)
        except OperationalError:
            raise
        except Exception as exc:
            log.warning("the mail and events of a batch were refused (%s); the batch is filed again a message at a time",
                        _reason(exc))
            raise _FailedInBatch from exc

    def _claim(self, ids: list[int] | None, limit: int = BATCH, after: list[int] | None = None
               ) -> tuple[list[Claimed], dict[int, str]]:
        """Count an attempt at each pending message, committed before any work on it, so that
        a crash while reading or filing counts too: a message that crashed the processor
        ``MAX_ATTEMPTS`` times is quarantined when it comes up again, instead of stopping
        everything behind it. A message tried before (its batch crashed, or the database went
        away) goes alone, so that only the one that crashes is counted again.
        ``ids`` None: the first ``limit`` pending messages, found in the same transaction.
        Returns the claimed rows (their attempts counted), and the ids that are no longer
        pending (``skipped``). ``after``: the batch claimed before, not yet filed; the pending
        messages behind it are claimed up to the first one tried before (``_claim_batch``).
        SQLAlchemy Core: this runs for every batch."""
        with self.engine.begin() as connection:
            query = sa.select(*_CLAIMED).order_by(_INBOUND.c.id).with_for_update()
            query = (query.where(_INBOUND.c.state == str(InboundState.PENDING)).limit(limit + len(after or ()))
                     if ids is None else query.where(_INBOUND.c.id.in_(ids)))
            rows = [Claimed(*row) for row in connection.execute(query)]
            pending = {r.id for r in rows if r.state == InboundState.PENDING}
            skipped = {i: str(Outcome.SKIPPED) for i in ids or () if i not in pending}
            rows = [r for r in rows if r.state == InboundState.PENDING]
            if after is not None:
                rows = list(itertools.takewhile(lambda r: not r.attempts, (r for r in rows if r.id not in after)))[:limit]
            elif len(rows) > 1 and any(r.attempts for r in rows):
                rows = rows[:1]
            if rows:
                connection.execute(sa.update(_INBOUND).where(_INBOUND.c.id.in_([r.id for r in rows]))
                                   .values(attempts=_INBOUND.c.attempts + 1))
        return [replace(r, attempts=r.attempts + 1) for r in rows], skipped

    def _read(self, inbound: Claimed, readings: dict[int, Reading]) -> str | None:
        """Read a claimed message into ``readings``; or quarantine it and say so."""
        inbound_id = inbound.id or 0
        if inbound.attempts > MAX_ATTEMPTS:
            log.error("message %s crashed the processor %d times; quarantined", inbound_id, MAX_ATTEMPTS)
            return quarantine_error(self.engine, inbound_id, f"crashed the processor {MAX_ATTEMPTS} times")
        envelope = _envelope(inbound)
        try:
            with time_limit(self.message_timeout):
                raw = self.raw_store.path(inbound.raw_path)  # read a chunk at a time, never held whole
                readings[inbound_id] = read(raw, envelope, self.rules, self.mailer.tag_prefix, self.mailer.secret)
            return None
        except MessageTimeout as exc:
            log.error("message %s %s; quarantined", inbound_id, exc)
            return quarantine_error(self.engine, inbound_id, str(exc))
        except OperationalError:
            raise
        except Exception as exc:
            log.exception("message %s failed; quarantined", inbound_id)
            return quarantine_error(self.engine, inbound_id, _reason(exc))

    def _ask_members(self, readings: dict[int, Reading]) -> dict[int, Answer]:
        """member register (issue 16): the lookup command may take seconds, so it runs here,
        before the write transaction, for each person's mail whose sender the register does
        not know; a failure is logged, and the mail filed unlinked (the plan counts it)."""
        asked: dict[int, Answer] = {}
        if self.member_lookup is None:
            return asked
        from maild.store import members as store_members

        wanted = {i: r.sender for i, r in readings.items() if isinstance(r, ToFile) and not r.verdict.is_machine}
        if not wanted:
            return asked
        with self.engine.connect() as connection:
            known = store_members.by_addresses(connection, wanted.values())
        for inbound_id, sender in wanted.items():
            if sender.strip().lower() in known:
                continue
            answer = self.member_lookup(sender)
            if answer.error:
                log.warning("member lookup for %s failed, filed unlinked: %s", sender, answer.error)
            asked[inbound_id] = answer
        return asked

    def _file(self, session: Session, inbound: Inbound | None, inbound_id: int, reading: Reading, done: list[int],
              asked: Answer | None = None) -> str:
        """Look up, plan and apply one message in its own savepoint of the batch's transaction;
        ``inbound``: its spool row, locked by the batch. A message filed (not quarantined) goes
        into ``done``, to be marked so with the batch."""
        try:
            with session.begin_nested():
                if inbound is None or inbound.state != InboundState.PENDING:
                    return str(Outcome.SKIPPED)
                now = utcnow()
                found = lookup.for_reading(session, reading, self.policy, self.mailer.secret, now, asked)
                _, applying, outcome = self._carry_out(session, inbound, reading, found, now)
            if applying.quarantined is None:
                done.append(inbound_id)
            return outcome
        except OperationalError:
            raise  # the database, not the message: the batch stays pending for when the database is back
        except Exception as exc:
            log.exception("message %s failed; quarantined", inbound_id)
            with session.begin_nested():
                row = session.get(Inbound, inbound_id, populate_existing=True)
                assert row is not None
                store.quarantine(session, "error", _reason(exc), row, from_addr=row.mail_from or "")
            return "quarantined:error"

    def _file_together(self, session: Session, inbound: Inbound | None, inbound_id: int, reading: Reading,
                       done: list[int], asked: Answer | None, prefetched: lookup.Prefetched, deferred: Deferred) -> str:
        """``_file`` without a savepoint, with the batch's lookups and its mail and events left
        in ``deferred``; a message looked up alone first has the deferred rows written, so it
        sees everything the messages before it did."""
        if inbound is None or inbound.state != InboundState.PENDING:
            return str(Outcome.SKIPPED)
        try:
            now = utcnow()
            found = prefetched.answer(reading, self.policy, now, asked)
            if found is None:
                deferred.write(session)
                found = lookup.for_reading(session, reading, self.policy, self.mailer.secret, now, asked)
            plan, applying, outcome = self._carry_out(session, inbound, reading, found, now, deferred)
            session.flush()
        except OperationalError:
            raise
        except Exception as exc:
            log.warning("message %s failed in its batch (%s); the batch is filed again a message at a time",
                        inbound_id, _reason(exc))
            raise _FailedInBatch from exc
        requesters = {t.requester for t in (plan.ticket, applying.ticket) if t is not None}
        prefetched.touch(reading, plan, requesters, applying.recipients)
        if applying.quarantined is None:
            done.append(inbound_id)
        return outcome

    def _carry_out(self, session: Session, inbound: Inbound, reading: Reading, found: planner.Lookups, now: datetime,
                   deferred: Deferred | None = None) -> tuple[planner.Plan, Applying, str]:
        """Plan a message from its lookups and apply the plan."""
        spooled = planner.Spooled(inbound.id, inbound.received_at)
        plan = planner.plan(reading, found, self.policy, spooled, now)
        plan = self.with_answers(session, plan, lambda failures: planner.plan(
            reading, replace(found, answer_failures=failures), self.policy, spooled, now))
        parsed = None if isinstance(reading, Unreadable) else reading.parsed
        applying = Applying(session, self.mailer, self.rules, self.raw_store.root, now, inbound, parsed)
        return plan, applying, apply(applying, plan, deferred)

    def _log(self, inbound_id: int, outcome: str) -> None:
        """One line per message filed (docs: logs)."""
        if outcome == Outcome.SKIPPED:
            return
        kind, _, number = outcome.partition(":")
        ticket = format_tag(self.mailer.tag_prefix, int(number)) if number.isdigit() else None
        log.info("filed", extra={"spool": inbound_id, "outcome": outcome if ticket is None else kind, "ticket": ticket})

    def process_some(self, limit: int = BATCH, watch: Watch = _unwatched, reader: ReadAhead | None = None,
                     ahead: int | None = None) -> int:
        """Process up to ``limit`` spooled messages in arrival order (first those claimed ahead);
        return how many. ``watch(inbound_id)`` is entered around each (the processor tells its
        parent); ``reader``: meanwhile it reads the next ``ahead`` (default: ``limit``) messages,
        filed ``limit`` at a time by the calls that follow."""
        return len(self._batch(None, watch, limit, reader, ahead or limit))

    def process_pending(self) -> int:
        """Process every spooled message; return how many were handled."""
        total = 0
        while done := self.process_some(100):
            total += done
        return total

    def with_answers(self, session: Session, plan: planner.Plan,
                     replan: Callable[[tuple[str, ...]], planner.Plan]) -> planner.Plan:
        """Render the canned answers a staff reply names (``#answer NAME``, docs/mail.md#answer)
        before its plan is applied, and give the texts to the relayed answer. An answer that does
        not render is the writer's error, decided by the planner again (``replan`` with the
        failures): the message is kept as a note, the writer told, nothing sent to the member."""
        index, mail = next(((i, e) for i, e in enumerate(plan.effects)
                            if isinstance(e, planner.QueueMail) and e.args.get("answers")), (None, None))
        if mail is None or index is None or plan.ticket is None or plan.ticket.id is None:
            return plan
        ticket = session.get(Ticket, plan.ticket.id)
        assert ticket is not None
        try:
            texts = notices.canned_texts(self.mailer, mail.args["queue"], ticket, mail.args["answers"],
                                         mail.args.get("requester_name", ""))
        except (LookupError, TemplateError, TypeError, ValueError) as exc:
            names = " ".join(mail.args["answers"])
            log.warning("ticket %s: #answer %s does not render: %s", ticket.number, names, exc)
            return replan((f"#answer {names}: the canned answer cannot be made: {type(exc).__name__}: {exc}",))
        effects = list(plan.effects)
        effects[index] = replace(mail, args={**mail.args, "canned_text": texts})
        return replace(plan, effects=tuple(effects))

    # --- the same decisions from the shell and the sweeps -----------------------------------------

    def open_ticket(self, queue: str, member: str, subject: str, text: str, actor: str,
                    channel: str = str(planner.DEFAULT_CHANNEL)) -> int | str:
        """``maild tickets open``: what ``#for`` does, from the shell, by the same planner. Returns
        the new ticket's number, or what is wrong (nothing is then written)."""
        with Session(self.engine, expire_on_commit=False) as session:
            now = utcnow()
            found = lookup.for_opening(session, member.strip().lower(), self.policy, now)
            plan = planner.open_from_shell(queue, member, subject, text, actor, channel, found, self.policy, now)
            if isinstance(plan, str):
                return plan
            outcome = apply(Applying(session, self.mailer, self.rules, self.raw_store.root, now), plan)
            session.commit()
        return int(outcome.rpartition(":")[2])

    def act(self, number: int, command: Command, actor: str, note: str = "") -> str | None:
        """What a mail command does, from the shell (``maild tickets assign|close|reopen|note|move``):
        checked as in mail, with the same events and the same mail. Returns an error, or None when done."""
        with Session(self.engine, expire_on_commit=False) as session:
            ticket = store.ticket_by_number(session, number)
            if ticket is None:
                return f"no ticket {number}"
            now = utcnow()
            plan = planner.act(lookup.ticket_facts(session, ticket, now), command, actor, note, self.policy, now)
            if isinstance(plan, str):
                return plan
            apply(Applying(session, self.mailer, self.rules, self.raw_store.root, now, ticket=ticket), plan)
            session.commit()
        return None

    def set_status(
        self, session: Session, ticket: Ticket, happened: str, actor: str, now: datetime | None = None
    ) -> None:
        """Move the ticket through its life (``core.lifecycle``) in the caller's transaction;
        resolving tells the member (the sweeps use this)."""
        now = now or utcnow()
        resolving = next_status(ticket.status, happened) == "resolved"
        facts = lookup.ticket_facts(session, ticket, now, for_staff=resolving)
        _, effects = planner.status_change(facts, happened, actor, self.policy, now)
        apply(Applying(session, self.mailer, self.rules, self.raw_store.root, now, ticket=ticket),
              planner.Plan(Outcome.FOLLOW_UP, effects))

    def queue_mail(
        self, session: Session, ticket: Ticket | None, kind: str, compose: Callable[[], list[Outgoing]]
    ) -> outbox.Queued | None:
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


def _envelope(inbound: Claimed) -> Envelope:
    return Envelope(source=inbound.source, mail_from=inbound.mail_from,  # type: ignore[arg-type]
                    recipients=tuple(inbound.recipients), mailbox=inbound.mailbox)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc)[-3:])


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

