"""The report's figures from the facts of each ticket. Pure: no I/O, no ORM.

Definitions (docs/coming.md#reports-and-privacy; the README's "Reports" section says the same for users):

- A report covers the tickets *created* in ``[start, end)`` (local days of the instance's
  timezone) and is taken *as of* ``as_of`` = the end, or now when the end is still to come:
  what happened later (an answer, a resolution) does not change a past period's figures.
- ``created``: tickets created in the period. ``resolved``: of those, the ones resolved or
  closed as of the end. ``backlog``: the rest (not resolved or closed at the end).
- ``first_response_hours``: business hours from creation to staff's first answer to the
  member, of the tickets answered by the end; ``resolution_hours``: business hours from
  creation to the (last) resolution, of those resolved. Each ``{median, p90, count}``;
  quantiles interpolate linearly between the two nearest values (numpy's default), and are
  null when nothing was measured. Business time is the rules' ``business_hours`` and
  holidays, counted as ``BusinessCalendar.elapsed`` does.
- ``sla_met_percent``: of the tickets whose priority has an ``sla`` target and whose outcome
  is known at the end, the share answered by the target's due time (the moment the
  escalation sweep would fire). A ticket still unanswered but not yet due is not counted
  either way (``sla.pending``); null when no outcome is known.
- ``staff``: per address, ``assigned`` (tickets of the period whose assignee it is) and
  ``answered`` (tickets of the period it answered by the end). A queue's report lists all
  of its staff, also those with zeros.
- ``categories`` and ``rules`` (the rules that matched when the ticket was created), most
  frequent first: what canned answers should cover; ``uncategorised`` and ``no_rule``
  count the rest. ``channels``: where the tickets came in (``smtp``, ``imap``, ``pipe``,
  and whatever channel a later intake records). ``weeks``: per ISO week of the period,
  tickets created in it and tickets of the period resolved in it.
- Confidentiality: a confidential ticket is counted everywhere, but its subject (and tag)
  is listed only in its own queue's report (``maild report --queue ID`` and the weekly mail
  to that queue's leads); elsewhere ``hidden`` counts the backlog tickets left unlisted.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from maild.report.clock import BusinessClock

OLDEST_LISTED = 10
DONE = ("resolved", "closed")


class Facts(NamedTuple):
    """One ticket as of the report's end; times are POSIX seconds, None when not (yet) so."""

    number: int
    queue: str
    priority: str
    category: str | None
    subject: str
    status: str
    assignee: str | None
    confidential: bool
    created: float
    first_response: float | None
    resolved: float | None


@dataclass(frozen=True)
class Period:
    start: date  # first local day
    end: date  # last local day (inclusive)
    start_ts: float  # POSIX seconds of the start's local midnight
    end_ts: float  # POSIX seconds of the local midnight after ``end``
    as_of_ts: float  # min(end_ts, now)

    def weeks(self) -> list[str]:
        labels: dict[str, None] = {}
        day = self.start
        while day <= self.end:
            labels[week_label(day)] = None
            day += timedelta(days=1)
        return list(labels)


@dataclass(frozen=True)
class Tallies:
    """What the database counts for us, per queue: see :mod:`maild.report.query`."""

    channels: Mapping[str, Counter[str]] = field(default_factory=dict)
    rules: Mapping[str, Counter[str]] = field(default_factory=dict)
    no_rule: Mapping[str, int] = field(default_factory=dict)
    answered: Mapping[str, Counter[str]] = field(default_factory=dict)


def week_label(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted ``values`` by linear interpolation; None for no values."""
    if not values:
        return None
    position = (len(values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def hours(seconds: list[float]) -> dict[str, Any]:
    seconds.sort()
    median, p90 = quantile(seconds, 0.5), quantile(seconds, 0.9)
    return {"median": None if median is None else round(median / 3600, 2),
            "p90": None if p90 is None else round(p90 / 3600, 2), "count": len(seconds)}


@dataclass
class _Section:
    """What one queue's tickets add up to; the overall section absorbs them all."""

    created: Counter[str] = field(default_factory=Counter)  # per week
    resolved: Counter[str] = field(default_factory=Counter)  # per week
    first_response: list[float] = field(default_factory=list)
    resolution: list[float] = field(default_factory=list)
    sla: Counter[str | None] = field(default_factory=Counter)
    assigned: Counter[str] = field(default_factory=Counter)
    categories: Counter[str | None] = field(default_factory=Counter)
    open_tickets: list[Facts] = field(default_factory=list)  # the backlog, confidential ones too

    def absorb(self, other: _Section) -> None:
        for name in ("created", "resolved", "sla", "assigned", "categories"):
            getattr(self, name).update(getattr(other, name))
        self.first_response += other.first_response
        self.resolution += other.resolution
        self.open_tickets += other.open_tickets


SlaOutcome = Callable[[Facts, "int | float | None", "int | float"], "str | None"]


def sla_judge(targets: Mapping[str, timedelta], as_of: float, due: Callable[[float, timedelta], float]) -> SlaOutcome:
    """``outcome(ticket, response, waited)``: ``met``, ``missed``, ``pending`` (unanswered,
    not yet due at ``as_of``) or None (no target); ``response`` is the business time to the
    first answer (None: none by ``as_of``), ``waited`` the business time until ``as_of``.

    Met means answered at or before the due time that ``BusinessCalendar.add`` gives, as the
    escalation sweep uses. That is the same as "at most the target's business time elapsed",
    except on a tie (the count ran out exactly at a closing time, and the answer came while
    closed): only then is the due time computed, by ``due(created, target)``."""
    seconds = {priority: target.total_seconds() for priority, target in targets.items()}

    def outcome(ticket: Facts, response: int | float | None, waited: int | float) -> str | None:
        target = seconds.get(ticket.priority)
        if target is None:
            return None
        answered = response is not None
        spent = response if answered else waited
        if spent < target:  # type: ignore[operator]
            return "met" if answered else "pending"
        if spent == target:
            moment = ticket.first_response if answered else as_of
            on_time = moment <= due(ticket.created, targets[ticket.priority])  # type: ignore[operator]
            if answered:
                return "met" if on_time else "missed"
            return "pending" if moment < due(ticket.created, targets[ticket.priority]) else "missed"  # type: ignore[operator]
        return "missed"

    return outcome


def summarise(
    tickets: Iterable[Facts], period: Period, clock: BusinessClock, sla: SlaOutcome, tallies: Tallies,
    queues: Mapping[str, Sequence[str]], own_queue: str | None = None,
) -> dict[str, Any]:
    """``{overall, queues: {ID: ...}}`` for ``tickets`` (those created in ``period``).

    ``queues``: each queue's id and its staff (listed even with zeros), in the order to show.
    ``own_queue``: the queue whose own report this is (its confidential subjects are listed).
    """
    week_of = [week_label(clock.first + timedelta(days=i)) for i in range(len(clock.cum))]
    position, day_index = clock.positioner(), clock.day_indexer()
    at_end = position(period.as_of_ts)
    sections: dict[str, _Section] = {queue: _Section() for queue in queues}
    for ticket in tickets:  # a million times: everything local, one section per ticket
        part = sections.get(ticket.queue)
        if part is None:  # a queue no longer in the rules
            part = sections[ticket.queue] = _Section()
        created = ticket.created
        start = position(created)
        part.created[week_of[day_index(created)]] += 1
        answered = ticket.first_response
        response = None
        if answered is not None:
            response = position(answered) - start if answered > created else 0
            part.first_response.append(response)
        done = ticket.resolved
        if done is not None:
            part.resolution.append(position(done) - start if done > created else 0)
            part.resolved[week_of[day_index(done)]] += 1
        else:
            part.open_tickets.append(ticket)
        part.sla[sla(ticket, response, at_end - start)] += 1
        if ticket.assignee:
            part.assigned[ticket.assignee] += 1
        part.categories[ticket.category] += 1
    overall = _Section()
    for part in sections.values():
        overall.absorb(part)
    labels = period.weeks()
    return {
        "overall": _finish(overall, labels, (), tallies, None, list_confidential=False),
        "queues": {queue: _finish(part, labels, queues.get(queue, ()), tallies, queue, queue == own_queue)
                   for queue, part in sections.items()},
    }


def _ranked(counts: Mapping[str, int]) -> dict[str, int]:
    """Most frequent first; ties by name, so the output is stable."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _merged(per_queue: Mapping[str, Mapping[str, int]], queue: str | None) -> Counter[str]:
    if queue is not None:
        return Counter(per_queue.get(queue, {}))
    total: Counter[str] = Counter()
    for counts in per_queue.values():
        total.update(counts)
    return total


def _finish(part: _Section, labels: list[str], staff: Sequence[str], tallies: Tallies, queue: str | None,
            list_confidential: bool) -> dict[str, Any]:
    answered = _merged(tallies.answered, queue)
    people = dict.fromkeys([*staff, *sorted(set(part.assigned) | set(answered))])
    met, missed = part.sla["met"], part.sla["missed"]
    listed = [t for t in part.open_tickets if list_confidential or not t.confidential]
    oldest = heapq.nsmallest(OLDEST_LISTED, listed, key=lambda t: (t.created, t.number))
    categories = Counter({name: count for name, count in part.categories.items() if name})
    created = sum(part.created.values())
    return {
        "created": created,
        "resolved": len(part.resolution),
        "backlog": len(part.open_tickets),
        "first_response_hours": hours(part.first_response),
        "resolution_hours": hours(part.resolution),
        "sla_met_percent": round(100 * met / (met + missed), 1) if met + missed else None,
        "sla": {"met": met, "missed": missed, "pending": part.sla["pending"]},
        "staff": {person: {"assigned": part.assigned.get(person, 0), "answered": answered.get(person, 0)}
                  for person in people},
        "categories": _ranked(categories),
        "uncategorised": part.categories.get(None, 0),
        "channels": _ranked(_merged(tallies.channels, queue)),
        "rules": _ranked(_merged(tallies.rules, queue)),
        "no_rule": sum(tallies.no_rule.values()) if queue is None else tallies.no_rule.get(queue, 0),
        "weeks": {label: {"created": part.created.get(label, 0), "resolved": part.resolved.get(label, 0)}
                  for label in labels},
        "oldest_open": [_listed(ticket) for ticket in oldest],
        "hidden": len(part.open_tickets) - len(listed),
    }


def _listed(ticket: Facts) -> dict[str, Any]:
    return {"number": ticket.number, "subject": ticket.subject, "queue": ticket.queue, "status": ticket.status,
            "priority": ticket.priority, "assignee": ticket.assignee,
            "created_at": datetime.fromtimestamp(ticket.created, UTC).isoformat()}
