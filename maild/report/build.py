"""One report: the period, the reads and the figures put together (see ``figures`` for what
each figure means)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from itertools import chain
from typing import Any

from sqlmodel import Session

from maild.core.business_time import BusinessCalendar
from maild.core.threader import format_tag
from maild.report import query
from maild.report.clock import BusinessClock
from maild.report.figures import Sla, summarise
from maild.rules.model import RuleSet

DEFAULT_DAYS = 28  # `maild report` without --from: the last 28 days, today included


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused while a report streams its tickets.

    A million rows and the backlog's tuples are millions of new containers, and the
    collector would walk all live ones again and again (a fifth of a report's time over a
    million tickets); none of them forms a cycle, so reference counting frees them all."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def make_report(session: Session, rules: RuleSet, timezone: str, tag_prefix: str, start: date, end: date,
                now: datetime, queue: str | None = None) -> dict[str, Any]:
    """The report over tickets created from ``start`` to ``end`` (local days, both included).

    ``queue``: that queue's own report (its ``overall`` covers only its tickets, and its
    confidential tickets are listed with their subjects)."""
    calendar = BusinessCalendar(rules.business_hours, timezone)
    period = query.period_of(start, end, calendar.zone, now)
    clock = BusinessClock(calendar, start - timedelta(days=1), end + timedelta(days=1))
    shown = [q for q in rules.queues.values() if queue is None or q.id == queue]
    with _without_cycle_collection():
        figures = summarise(
            chain.from_iterable(query.facts(session, period, queue)), period, clock,
            Sla(rules.sla, period.as_of_ts, clock.due), query.tallies(session, period, queue),
            {q.id: q.staff for q in shown}, own_queue=queue)
    sections = [figures["overall"], *figures["queues"].values()]
    found = query.listed(session, sorted({item["number"] for part in sections for item in part["oldest_open"]}))
    for part in sections:
        part["oldest_open"] = [_listed(item, found.get(item["number"]), tag_prefix) for item in part["oldest_open"]]
    names = {q.id: q for q in rules.queues.values()}
    for queue_id, part in figures["queues"].items():
        known = names.get(queue_id)
        part["name"] = known.name if known else queue_id
        part["confidential"] = bool(known and known.confidential)
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat(), "timezone": timezone,
                   "as_of": datetime.fromtimestamp(period.as_of_ts, calendar.zone).isoformat(timespec="seconds")},
        "queue": queue,
        **figures,
    }


def _listed(item: dict[str, Any], found: tuple[str, str, str, str | None] | None, tag_prefix: str) -> dict[str, Any]:
    """A backlog ticket as listed: its status as of the end (``item``), the rest as it is now."""
    subject, queue, priority, assignee = found or ("", "", "", None)
    return {"number": item["number"], "subject": subject, "queue": queue, "status": item["status"],
            "priority": priority, "assignee": assignee, "created_at": item["created_at"],
            "tag": format_tag(tag_prefix, item["number"])}
