"""One report: the period, the reads and the figures put together (see ``figures`` for what
each figure means)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from maild.core.business_time import BusinessCalendar
from maild.core.threader import format_tag
from maild.report import query
from maild.report.clock import BusinessClock
from maild.report.figures import sla_judge, summarise
from maild.rules.model import RuleSet

DEFAULT_DAYS = 28  # `maild report` without --from: the last 28 days, today included


def make_report(session: Session, rules: RuleSet, timezone: str, tag_prefix: str, start: date, end: date,
                now: datetime, queue: str | None = None) -> dict[str, Any]:
    """The report over tickets created from ``start`` to ``end`` (local days, both included).

    ``queue``: that queue's own report (its ``overall`` covers only its tickets, and its
    confidential tickets are listed with their subjects)."""
    calendar = BusinessCalendar(rules.business_hours, timezone)
    period = query.period_of(start, end, calendar.zone, now)
    clock = BusinessClock(calendar, start - timedelta(days=1), end + timedelta(days=1))

    def due(created: float, target: timedelta) -> float:
        return calendar.add(datetime.fromtimestamp(created, UTC), target).timestamp()

    shown = [q for q in rules.queues.values() if queue is None or q.id == queue]
    figures = summarise(
        query.facts(session, period, queue), period, clock, sla_judge(rules.sla, period.as_of_ts, due),
        query.tallies(session, period, queue), {q.id: q.staff for q in shown}, own_queue=queue)
    sections = [figures["overall"], *figures["queues"].values()]
    found = query.subjects(session, sorted({item["number"] for part in sections for item in part["oldest_open"]}))
    for part in sections:
        for item in part["oldest_open"]:
            item["tag"] = format_tag(tag_prefix, item["number"])
            item["subject"] = found.get(item["number"], "")
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
