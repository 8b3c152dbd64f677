"""Sweeps: what is due, decided from the database's state at a given time.

Each sweep claims its work in the database: it locks its own counters row first (a row lock
on PostgreSQL, the write lock on SQLite), so two instances never run one at once, and it
records what it sent as events in the same transaction as the mail, so running it twice,
after a restart or with ``--at`` in the past, sends nothing twice. A sweep missed while the
daemon was down simply finds the work still due when it next runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta


from sqlmodel import Session, col, select

from maild.core.threader import format_tag
from maild.ingest import Pipeline
from maild.outbound import notices
from maild.store import tickets as store
from maild.store.tables import Counter, Event, Ticket

ACTOR = "maild (scheduler)"
DIGEST_HOUR = 8


@dataclass
class Sweep:
    pipeline: Pipeline
    session: Session
    now: datetime

    @property
    def rules(self):  # type: ignore[no-untyped-def]
        return self.pipeline.rules

    def calendar(self):  # type: ignore[no-untyped-def]
        return self.pipeline.mailer.calendar(self.rules)

    def tag(self, ticket: Ticket) -> str:
        return format_tag(self.pipeline.mailer.tag_prefix, ticket.number)

    def marked(self, kind: str, ticket_ids: list[int], since: dict[int, datetime] | None = None) -> set[int]:
        """Tickets that already have an event of ``kind`` (after ``since[ticket]`` if given)."""
        found: set[int] = set()
        for chunk in _chunks(ticket_ids, 500):
            rows = self.session.exec(select(Event.ticket_id, Event.at).where(Event.kind == kind, col(Event.ticket_id).in_(chunk)))
            found.update(tid for tid, at in rows if since is None or at >= since[tid])
        return found


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _unanswered(sweep: Sweep) -> list[Ticket]:
    query = select(Ticket).where(col(Ticket.status).in_(("new", "open")), col(Ticket.first_response_at).is_(None))
    return list(sweep.session.exec(query))


def _due(sweep: Sweep, ticket: Ticket, fraction: int) -> datetime | None:
    sla = sweep.rules.sla.get(ticket.priority)
    return sweep.calendar().add(ticket.created_at, sla / fraction if fraction > 1 else sla) if sla else None


def _remind(sweep: Sweep, kind: str, reason: str, fraction: int, leads: bool) -> list[str]:
    tickets = [t for t in _unanswered(sweep) if (due := _due(sweep, t, fraction)) and due <= sweep.now]
    done = sweep.marked(kind, [t.id for t in tickets if t.id])
    actions = []
    for ticket in tickets:
        queue = sweep.rules.queues.get(ticket.queue)
        if ticket.id in done or queue is None:
            continue
        recipients = (queue.leads or queue.staff) if leads else ((ticket.assignee,) if ticket.assignee else queue.staff)
        due = _due(sweep, ticket, 1)
        sweep.pipeline.queue_mail(sweep.session, ticket, "reminder", lambda t=ticket, q=queue, r=recipients, d=due: notices.reminder_staff(
            sweep.pipeline.mailer, sweep.rules, q, t, reason, d, r, sweep.now))
        store.add_event(sweep.session, ticket, kind, actor=ACTOR, at=sweep.now, to=list(recipients), due=due.isoformat() if due else None)
        actions.append(f"{sweep.tag(ticket)}: {kind} to {', '.join(recipients)}")
    return actions


def staff_reminder(sweep: Sweep) -> list[str]:
    """Half of the first-response SLA has passed with no answer: remind the assignee (or queue)."""
    return _remind(sweep, "reminded_staff", "half_sla", 2, leads=False)


def escalation(sweep: Sweep) -> list[str]:
    """The first-response SLA is breached: tell the queue's leads."""
    return _remind(sweep, "escalated", "breach", 1, leads=True)


def _in_status_since(sweep: Sweep, status: str, days: int) -> list[Ticket]:
    query = select(Ticket).where(Ticket.status == status, Ticket.status_changed_at <= sweep.now - timedelta(days=days))
    return list(sweep.session.exec(query))


def member_reminder(sweep: Sweep) -> list[str]:
    """A pending ticket's member has been silent ``remind_member_after_days``: remind them once."""
    tickets = _in_status_since(sweep, "pending", sweep.rules.lifecycle.remind_member_after_days)
    done = sweep.marked("reminded_member", [t.id for t in tickets if t.id], {t.id: t.status_changed_at for t in tickets if t.id})
    actions = []
    for ticket in tickets:
        queue = sweep.rules.queues.get(ticket.queue)
        contact = store.contact_of(sweep.session, ticket.requester)
        if ticket.id in done or queue is None or contact.undeliverable:
            continue
        sweep.pipeline.queue_mail(sweep.session, ticket, "reminder", lambda t=ticket, q=queue, n=contact.name: [
            notices.reminder_member(sweep.pipeline.mailer, sweep.rules, q, t, n, sweep.now)])
        store.add_event(sweep.session, ticket, "reminded_member", actor=ACTOR, at=sweep.now)
        actions.append(f"{sweep.tag(ticket)}: reminded the member")
    return actions


def _move(sweep: Sweep, status: str, days: int, happened: str, label: str) -> list[str]:
    actions = []
    for ticket in _in_status_since(sweep, status, days):
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
    """Each business morning (08:00 local), once: every staff member's list of what waits."""
    calendar = sweep.calendar()
    local = sweep.now.astimezone(calendar.zone)
    if not calendar.is_business_day(local.date()) or local.hour < DIGEST_HOUR:
        return []
    claim = f"digest:{local.date().isoformat()}"
    if store.next_number(sweep.session, claim) != 1:
        return []  # already sent today (by this or another instance)
    open_tickets = list(sweep.session.exec(select(Ticket).where(col(Ticket.status).in_(store.OPEN_STATUSES))))
    actions = []
    for staff in sorted(sweep.rules.all_staff()):
        queues = [q for q in sweep.rules.queues.values() if staff in q.staff]
        items = _digest_items(sweep, staff, {q.id for q in queues}, open_tickets)
        if not items:
            continue
        sweep.pipeline.queue_mail(sweep.session, None, "digest", lambda s=staff, i=items, q=queues[0]: [
            notices.digest(sweep.pipeline.mailer, q, s, i, sweep.now)])
        actions.append(f"digest to {staff}: {len(items)} tickets")
    return actions


def _digest_items(sweep: Sweep, staff: str, queue_ids: set[str], tickets: list[Ticket]) -> list[dict[str, object]]:
    sections = {"overdue": [], "own": [], "unassigned": []}  # type: dict[str, list[dict[str, object]]]
    for ticket in tickets:
        mine, unassigned = ticket.assignee == staff, ticket.assignee is None and ticket.queue in queue_ids
        if not (mine or unassigned):
            continue
        due = _due(sweep, ticket, 1) if ticket.first_response_at is None else None
        section = "overdue" if due and due <= sweep.now else ("own" if mine else "unassigned")
        queue = sweep.rules.queues.get(ticket.queue)
        sections[section].append({
            "section": section, "tag": sweep.tag(ticket),
            "subject": ticket.subject, "queue": queue.name if queue else ticket.queue, "status": ticket.status,
            "priority": ticket.priority, "age": sweep.now - ticket.created_at, "confidential": ticket.confidential,
            "visible": not ticket.confidential or ticket.queue in queue_ids,
        })
    return sections["overdue"] + sections["own"] + sections["unassigned"]


JOBS: dict[str, Callable[[Sweep], list[str]]] = {
    "staff_reminder": staff_reminder,
    "escalation": escalation,
    "member_reminder": member_reminder,
    "auto_resolve": auto_resolve,
    "close": close,
    "digest": digest,
}


def run_job(pipeline: Pipeline, name: str, now: datetime, dry_run: bool = False) -> list[str]:
    """Run one sweep as of ``now``; with ``dry_run`` say what it would do and change nothing."""
    with Session(pipeline.engine, expire_on_commit=False) as session:
        _lock(session, name)
        actions = JOBS[name](Sweep(pipeline, session, now))
        if dry_run:
            session.rollback()
        else:
            session.commit()
    return actions


def _lock(session: Session, name: str) -> None:
    """Serialise this sweep across instances (PostgreSQL row lock; SQLite's write lock)."""
    store.next_number(session, f"sweep:{name}")
    session.exec(select(Counter).where(Counter.name == f"sweep:{name}").with_for_update()).one()


def run_all(pipeline: Pipeline, now: datetime, dry_run: bool = False) -> dict[str, list[str]]:
    return {name: run_job(pipeline, name, now, dry_run) for name in JOBS}


