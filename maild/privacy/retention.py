"""Retention (docs/coming.md#reports-and-privacy): a daily sweep erases tickets closed longer ago than
``retention: {closed_after_days: N}`` (a queue's own, else the top level's), with the same core
as an erasure request (``erase.erase``): their raw mail, attachments and texts go, the skeleton
stays.

Who is pseudonymised: in an expired ticket's own rows (the ticket, its messages, events and
outgoing mail, its spooled copies) every member-side address (the requester, those in Cc, any
non-staff sender) takes its pseudonym. The person's contact row (their name, the undeliverable
mark) takes it too once no ticket of theirs that is not erased is left. Anything else stays: a
member with a newer ticket keeps it as it is, and the member register is the association's,
not mail. Staff and queue addresses are kept (reports count answers per staff member).

Once a day, across restarts and instances: the day's claim is a counter row (``retention:
YYYY-MM-DD``, local date) written with the last batch; the sweep's lock keeps two instances
from running it at once, and a sweep that failed part-way leaves no claim, so the next run
finishes it (erasing is idempotent: a ticket's ``erased_at`` marks it done).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import col, select

from maild.privacy import erase as core
from maild.privacy.identity import Scrubber, is_pseudonym, pseudonym, usable_names
from maild.rules.model import RuleSet
from maild.store import tickets as store
from maild.store.tables import Contact, Counter, Message, Ticket

if TYPE_CHECKING:
    from maild.schedule import Sweep

log = logging.getLogger("maild.privacy")
ACTOR = "maild (retention)"


def warnings(rules: RuleSet) -> list[str]:
    """What ``maild check`` says about retention (warnings, not errors)."""
    if rules.retention is not None:
        return []
    without = [q.id for q in rules.queues.values() if q.retention is None]
    if len(without) == len(rules.queues):
        return [f"{rules.path}: no retention is set: closed tickets and their raw mail are kept for ever "
                "(add e.g. `retention: {closed_after_days: 730}`; README, \"Privacy\")"]
    return [f"{rules.path}: queue {q!r} has no retention and there is none at the top level: its closed tickets "
            "are kept for ever" for q in without]


def expired(rules: RuleSet, now: Any) -> Any:
    """The condition for closed, not yet erased tickets past their queue's retention; None when
    no retention is set anywhere."""
    own: dict[int, list[str]] = defaultdict(list)
    for queue in rules.queues.values():
        if queue.retention is not None:
            own[queue.retention.closed_after_days].append(queue.id)
    parts = [sa.and_(col(Ticket.queue).in_(ids), _closed_before(now, days)) for days, ids in sorted(own.items())]
    if rules.retention is not None:
        explicit = [q for ids in own.values() for q in ids]
        parts.append(sa.and_(col(Ticket.queue).notin_(explicit), _closed_before(now, rules.retention.closed_after_days)))
    if not parts:
        return None
    return sa.and_(Ticket.status == "closed", col(Ticket.erased_at).is_(None), sa.or_(*parts))


def _closed_before(now: Any, days: int) -> Any:
    from datetime import timedelta

    cutoff = now - timedelta(days=days)
    # status_changed_at is when it closed (and indexed with status); closed_at says the same
    return sa.and_(Ticket.status_changed_at <= cutoff, sa.or_(col(Ticket.closed_at).is_(None), Ticket.closed_at <= cutoff))


def sweep(job: Sweep) -> list[str]:
    """The ``retention`` job (``maild.schedule``)."""
    rules, session = job.rules, job.session
    local = job.now.astimezone(job.calendar().zone).date()
    claim = f"retention:{local.isoformat()}"
    condition = expired(rules, job.now)
    if condition is None or session.get(Counter, claim) is not None:
        return []
    mailer = job.pipeline.mailer
    data_dir = job.pipeline.raw_store.root
    staff = set(rules.all_staff()) | set(rules.addresses())
    actions: list[str] = []
    for batch in job.batches(job.claimed(select(Ticket).where(condition)), Ticket.status_changed_at, Ticket.id):
        if job.dry_run:
            actions += [f"{job.tag(t)}: would be erased (closed {t.closed_at or t.status_changed_at:%Y-%m-%d})" for t in batch]
            continue
        scope = scope_of(session, batch, staff, mailer.secret)
        for days, tickets in _by_days(rules, batch).items():
            part = core.Scope(tickets={t.id for t in tickets if t.id}, scrubber=scope.scrubber)
            core.erase(session, data_dir, part, job.now, ACTOR, "retention", closed_after_days=days)
            actions += [f"{job.tag(t)}: erased (closed over {days} days ago)" for t in tickets]
        _forget_contacts(session, scope.scrubber)
    if job.dry_run:
        return actions
    store.next_number(session, claim)
    session.commit()
    if actions:
        problem = core.compact(session.get_bind(), vacuum=False)  # type: ignore[arg-type]
        if problem:
            log.warning("retention: %s", problem)
    return actions


def _by_days(rules: RuleSet, tickets: list[Ticket]) -> dict[int, list[Ticket]]:
    groups: dict[int, list[Ticket]] = defaultdict(list)
    for ticket in tickets:
        retention = rules.retention_for(ticket.queue)
        groups[retention.closed_after_days if retention else 0].append(ticket)
    return groups


def scope_of(session: Any, tickets: list[Ticket], staff: set[str], secret: bytes) -> core.Scope:
    """The member-side people of these tickets, and their names as mail gave them."""
    ids = [t.id for t in tickets if t.id]
    people = {t.requester.lower() for t in tickets} | {a.lower() for t in tickets for a in t.cc}
    names: set[str] = set()
    for sender, name in session.execute(sa.select(Message.from_addr, Message.from_name).where(
            col(Message.ticket_id).in_(ids), Message.direction == "in")):
        if sender and sender.lower() not in staff:
            people.add(sender.lower())
            if name:
                names.add(name)
    people = {p for p in people if p and "@" in p and p not in staff and not is_pseudonym(p)}
    scrubber = Scrubber({p: pseudonym(secret, p) for p in people}, usable_names(names, people))
    return core.Scope(tickets=set(ids), scrubber=scrubber)


def _forget_contacts(session: Any, scrubber: Scrubber) -> None:
    """A person none of whose tickets is left un-erased: their contact row takes the pseudonym."""
    addresses = list(scrubber.pseudonyms)
    if not addresses:
        return
    left = {a.lower() for (a,) in session.execute(sa.select(Ticket.requester).where(
        sa.func.lower(Ticket.requester).in_(addresses), col(Ticket.erased_at).is_(None)).distinct())}
    known = {a.lower() for (a,) in session.execute(sa.select(Contact.address).where(
        sa.func.lower(Contact.address).in_(addresses)))}
    gone = {a: scrubber.pseudonyms[a] for a in known - left}
    if gone:
        core._contacts(session, Scrubber(gone))
