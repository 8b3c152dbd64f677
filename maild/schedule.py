"""Sweeps: what is due, decided from the database's state at a given time.

A sweep walks its candidates in batches (keyset pagination: memory does not grow with the
number of tickets) and commits each batch's mail together with the events that mark it
done. Every transaction first takes the sweep's lock (SQLite's write lock, taken at BEGIN;
an advisory lock on PostgreSQL) and only then reads, so two instances never run one sweep at
once and each sees what the other marked. Running a sweep twice, after a restart or with
``--at`` in the past, sends nothing twice. A sweep missed while the daemon was down simply
finds the work still due when it next runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from maild.core.bounces import undeliverable
from maild.core.business_time import BusinessCalendar
from maild.core.classify import no_member_mail
from maild.core.threader import format_tag
from maild.ingest import Pipeline
from maild.outbound import notices
from maild.report.weekly import weekly_report
from maild.rules.model import RuleSet
from maild.store import tickets as store
from maild.store.tables import Contact, Counter, Event, Ticket

ACTOR = "maild (scheduler)"
DIGEST_HOUR = 8
DIGEST_SECTIONS = ("overdue", "own", "unassigned")
DIGEST_SECTION_LIMIT = 25  # tickets listed per digest section; the rest are counted
BATCH = 500


@dataclass
class Sweep:
    pipeline: Pipeline
    session: Session
    now: datetime
    name: str
    dry_run: bool = False

    @property
    def rules(self) -> RuleSet:
        return self.pipeline.rules

    def calendar(self) -> BusinessCalendar:
        return self.pipeline.mailer.calendar(self.rules)

    def tag(self, ticket: Ticket) -> str:
        return format_tag(self.pipeline.mailer.tag_prefix, ticket.number)

    def batches(self, query: Any, *order: Any, commit: bool = True) -> Iterator[list[Any]]:
        """The rows of ``query`` in batches, by keyset on ``order`` (unique: it ends with the id).

        With ``commit``, a batch's mail and marks are committed before the next batch is read,
        and the lock is taken again (a dry run commits nothing; the last batch is run_job's).
        """
        page = query.order_by(*order).limit(BATCH)
        batch = list(self.session.exec(page))
        while batch:
            after = tuple(getattr(batch[-1], column.key) for column in order)  # before the caller changes them
            yield batch
            if len(batch) < BATCH:
                return
            if commit and not self.dry_run:
                self.session.commit()
                _lock(self.session, self.name)
            batch = list(self.session.exec(page.where(sa.tuple_(*order) > sa.tuple_(*after))))

    def claimed(self, query: Any) -> Any:
        """``query`` locking its tickets on PostgreSQL, skipping any that another transaction
        (a member's reply being filed) holds: they are looked at again in the next sweep."""
        if self.session.get_bind().dialect.name == "postgresql":
            return query.with_for_update(skip_locked=True, of=Ticket)
        return query


def _unmarked(kinds: tuple[str, ...], since_status_change: bool = False) -> Any:
    """No event of ``kinds`` on the ticket (since its status last changed)."""
    marks = select(Event.id).where(Event.ticket_id == Ticket.id, col(Event.kind).in_(kinds))
    if since_status_change:
        marks = marks.where(Event.at >= Ticket.status_changed_at)
    return ~marks.exists()


def _due(sweep: Sweep, ticket: Any, fraction: int) -> datetime | None:
    sla = sweep.rules.sla.get(ticket.priority)
    return sweep.calendar().add(ticket.created_at, sla / fraction if fraction > 1 else sla) if sla else None


def _remind(sweep: Sweep, kind: str, reason: str, fraction: int, leads: bool) -> list[str]:
    query = select(Ticket).where(
        col(Ticket.status).in_(("new", "open")), col(Ticket.first_response_at).is_(None), _unmarked((kind,)))
    actions = []
    for batch in sweep.batches(query, Ticket.id):
        for ticket in batch:
            queue = sweep.rules.queues.get(ticket.queue)
            if queue is None or not (due := _due(sweep, ticket, fraction)) or due > sweep.now:
                continue
            recipients = (queue.leads or queue.staff) if leads else ((ticket.assignee,) if ticket.assignee else queue.staff)
            breach = due if fraction == 1 else _due(sweep, ticket, 1)
            sweep.pipeline.queue_mail(sweep.session, ticket, "reminder", lambda t=ticket, q=queue, r=recipients, d=breach: notices.reminder_staff(
                sweep.pipeline.mailer, sweep.rules, q, t, reason, d, r, sweep.now))
            store.add_event(sweep.session, ticket, kind, actor=ACTOR, at=sweep.now, to=list(recipients),
                            due=breach.isoformat() if breach else None)
            actions.append(f"{sweep.tag(ticket)}: {kind} to {', '.join(recipients)}")
    return actions


def staff_reminder(sweep: Sweep) -> list[str]:
    """Half of the first-response SLA has passed with no answer: remind the assignee (or queue)."""
    return _remind(sweep, "reminded_staff", "half_sla", 2, leads=False)


def escalation(sweep: Sweep) -> list[str]:
    """The first-response SLA is breached: tell the queue's leads."""
    return _remind(sweep, "escalated", "breach", 1, leads=True)


def _in_status_since(sweep: Sweep, status: str, days: int) -> Any:
    return select(Ticket).where(Ticket.status == status, Ticket.status_changed_at <= sweep.now - timedelta(days=days))


def member_reminder(sweep: Sweep) -> list[str]:
    """A pending ticket's member has been silent ``remind_member_after_days``: remind them once,
    unless the requester is machine mail or bounced (docs/mail.md#machines, 4.4): then an event says why."""
    query = _in_status_since(sweep, "pending", sweep.rules.lifecycle.remind_member_after_days).where(
        _unmarked(("reminded_member", "reminder_skipped"), since_status_change=True))
    actions = []
    for batch in sweep.batches(sweep.claimed(query), Ticket.status_changed_at, Ticket.id):
        contacts = store.contacts(sweep.session, (t.requester for t in batch))
        machine_opened = store.opened_by_machine(sweep.session, [t.id for t in batch if t.id])
        for ticket in batch:
            queue = sweep.rules.queues.get(ticket.queue)
            if queue is None:
                continue
            contact = contacts.get(ticket.requester) or Contact(address=ticket.requester)
            reason = no_member_mail(ticket.requester, undeliverable(contact.undeliverable_since, sweep.now),
                                    machine_opened.get(ticket.id or 0), sweep.rules.addresses())
            if reason:
                store.add_event(sweep.session, ticket, "reminder_skipped", actor=ACTOR, at=sweep.now, reason=reason)
                actions.append(f"{sweep.tag(ticket)}: no member reminder: {reason}")
                continue
            sweep.pipeline.queue_mail(sweep.session, ticket, "reminder", lambda t=ticket, q=queue, n=contact.name: [
                notices.reminder_member(sweep.pipeline.mailer, sweep.rules, q, t, n, sweep.now)])
            store.add_event(sweep.session, ticket, "reminded_member", actor=ACTOR, at=sweep.now)
            actions.append(f"{sweep.tag(ticket)}: reminded the member")
    return actions


def _move(sweep: Sweep, status: str, days: int, happened: str, label: str) -> list[str]:
    actions = []
    query = sweep.claimed(_in_status_since(sweep, status, days))
    for batch in sweep.batches(query, Ticket.status_changed_at, Ticket.id):
        for ticket in batch:
            sweep.pipeline.set_status(sweep.session, ticket, happened, ACTOR, sweep.now)
            actions.append(f"{sweep.tag(ticket)}: {label}")
    return actions


def auto_resolve(sweep: Sweep) -> list[str]:
    """A pending ticket silent for ``resolve_pending_after_days`` is resolved (the member is told)."""
    return _move(sweep, "pending", sweep.rules.lifecycle.resolve_pending_after_days, "resolve", "resolved (member silent)")


def close(sweep: Sweep) -> list[str]:
    """Resolved tickets close after ``close_after_days``; later mail opens a new ticket."""
    return _move(sweep, "resolved", sweep.rules.lifecycle.close_after_days, "close", "closed")


def digest(sweep: Sweep) -> list[str]:
    """Each business morning (08:00 local), once: every staff member's list of what waits.

    One transaction: the day's claim and every digest are committed together."""
    calendar = sweep.calendar()
    local = sweep.now.astimezone(calendar.zone)
    if not calendar.is_business_day(local.date()) or local.hour < DIGEST_HOUR:
        return []
    claim = f"digest:{local.date().isoformat()}"
    if sweep.session.get(Counter, claim) is not None:
        return []  # already sent today (by this or another instance)
    store.next_number(sweep.session, claim)
    actions = []
    for staff in sorted(sweep.rules.all_staff()):
        queues = [q for q in sweep.rules.queues.values() if staff in q.staff]
        items, more = _digest_items(sweep, staff, {q.id for q in queues})
        if not items:
            continue
        sweep.pipeline.queue_mail(sweep.session, None, "digest", lambda s=staff, i=items, m=more, q=queues[0]: [
            notices.digest(sweep.pipeline.mailer, q, s, i, m, sweep.now)])
        actions.append(f"digest to {staff}: {len(items) + sum(more.values())} tickets")
    return actions


DIGEST_COLUMNS = (Ticket.id, Ticket.number, Ticket.subject, Ticket.queue, Ticket.status, Ticket.priority,
                  Ticket.assignee, Ticket.confidential, Ticket.created_at, Ticket.first_response_at)


def _digest_items(sweep: Sweep, staff: str, queue_ids: set[str]) -> tuple[list[dict[str, object]], dict[str, int]]:
    """Up to ``DIGEST_SECTION_LIMIT`` tickets per section, oldest first, and how many more each has."""
    query = select(*DIGEST_COLUMNS).where(col(Ticket.status).in_(store.OPEN_STATUSES), sa.or_(
        Ticket.assignee == staff, sa.and_(col(Ticket.assignee).is_(None), col(Ticket.queue).in_(queue_ids))))
    sections: dict[str, list[dict[str, object]]] = {name: [] for name in DIGEST_SECTIONS}
    more = dict.fromkeys(DIGEST_SECTIONS, 0)
    for batch in sweep.batches(query, Ticket.id, commit=False):
        for ticket in batch:
            due = _due(sweep, ticket, 1) if ticket.first_response_at is None else None
            section = "overdue" if due and due <= sweep.now else ("own" if ticket.assignee == staff else "unassigned")
            if len(sections[section]) == DIGEST_SECTION_LIMIT:
                more[section] += 1
                continue
            queue = sweep.rules.queues.get(ticket.queue)
            sections[section].append({
                "section": section, "tag": sweep.tag(ticket),
                "subject": ticket.subject, "queue": queue.name if queue else ticket.queue, "status": ticket.status,
                "priority": ticket.priority, "age": sweep.now - ticket.created_at, "confidential": ticket.confidential,
                "visible": not ticket.confidential or ticket.queue in queue_ids,
            })
    return [item for name in DIGEST_SECTIONS for item in sections[name]], more


def retention(sweep: Sweep) -> list[str]:
    """Once a day: erase tickets closed longer ago than ``retention`` (docs/coming.md#reports-and-privacy)."""
    from maild.privacy.retention import sweep as retention_sweep

    return retention_sweep(sweep)


JOBS: dict[str, Callable[[Sweep], list[str]]] = {
    "staff_reminder": staff_reminder,
    "escalation": escalation,
    "member_reminder": member_reminder,
    "auto_resolve": auto_resolve,
    "close": close,
    "digest": digest,
    "weekly_report": weekly_report,  # maild.report.weekly: Mondays from 08:00, once a week
    "retention": retention,
}


def run_job(pipeline: Pipeline, name: str, now: datetime, dry_run: bool = False) -> list[str]:
    """Run one sweep as of ``now``; with ``dry_run`` say what it would do and change nothing."""
    with Session(pipeline.engine, expire_on_commit=False) as session:
        _lock(session, name)
        actions = JOBS[name](Sweep(pipeline, session, now, name, dry_run))
        if dry_run:
            session.rollback()
        else:
            session.commit()
    return actions


def _lock(session: Session, name: str) -> None:
    """Serialise this sweep across instances. SQLite: the write lock, which every transaction
    takes at BEGIN (``store.db``). PostgreSQL: a transaction-scoped advisory lock named for the
    sweep. Unlike a row lock it writes nothing, so a sweep with nothing due commits without a
    WAL flush (eight sweeps every five minutes, on every instance)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(f"maild:sweep:{name}")})


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` (Python's ``hash`` is salted)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def run_all(pipeline: Pipeline, now: datetime, dry_run: bool = False) -> dict[str, list[str]]:
    return {name: run_job(pipeline, name, now, dry_run) for name in JOBS}
