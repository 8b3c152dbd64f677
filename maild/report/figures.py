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
    """One ticket as of the report's end; times are POSIX seconds, None when not (yet) so.

    The reads hand the figures plain tuples in this order (see ``query.facts``)."""

    number: int
    queue: str
    priority: str
    category: str | None
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

    created: list[int]  # per local day of the clock
    resolved: list[int]  # per local day of the clock
    first_response: list[int | float] = field(default_factory=list)
    resolution: list[int | float] = field(default_factory=list)
    sla: Counter[str | None] = field(default_factory=Counter)
    assigned: Counter[str] = field(default_factory=Counter)
    categories: Counter[str | None] = field(default_factory=Counter)
    # the backlog as (created, number, status): the tickets any report lists, and those only their queue's own lists
    listable: list[tuple[float, int, str]] = field(default_factory=list)
    confidential: list[tuple[float, int, str]] = field(default_factory=list)

    @classmethod
    def of_days(cls, days: int) -> _Section:
        return cls([0] * days, [0] * days)

    def absorb(self, other: _Section) -> None:
        self.created = [a + b for a, b in zip(self.created, other.created, strict=True)]
        self.resolved = [a + b for a, b in zip(self.resolved, other.resolved, strict=True)]
        for name in ("sla", "assigned", "categories"):
            getattr(self, name).update(getattr(other, name))
        self.first_response += other.first_response
        self.resolution += other.resolution
        self.listable += other.listable
        self.confidential += other.confidential


@dataclass(frozen=True)
class Sla:
    """The SLA outcome of a ticket: ``met``, ``missed``, ``pending`` (unanswered, not yet due
    at ``as_of``) or None (its priority has no target).

    Met means answered at or before the due time that ``BusinessCalendar.add`` gives, as the
    escalation sweep uses. That is the same as "at most the target's business time elapsed",
    except on a tie (the count ran out exactly at a closing time, and the answer came while
    closed): only then is the due time computed, by ``due(created, target)``."""

    targets: Mapping[str, timedelta]
    as_of: float
    due: Callable[[float, timedelta], float]

    def outcome(self, priority: str, created: float, answered: float | None, response: int | float | None,
                waited: int | float) -> str | None:
        """``response``: the business time to the first answer (None: none by ``as_of``);
        ``waited``: the business time from creation to ``as_of``."""
        target = self.targets.get(priority)
        if target is None:
            return None
        limit = target.total_seconds()
        if response is not None:
            if response != limit:
                return "met" if response < limit else "missed"
            return "met" if answered <= self.due(created, target) else "missed"  # type: ignore[operator]
        if waited != limit:
            return "pending" if waited < limit else "missed"
        return "pending" if self.as_of < self.due(created, target) else "missed"


def summarise(
    tickets: Iterable[Sequence[Any]], period: Period, clock: BusinessClock, sla: Sla, tallies: Tallies,
    queues: Mapping[str, Sequence[str]], own_queue: str | None = None,
) -> dict[str, Any]:
    """``{overall, queues: {ID: ...}}`` for ``tickets`` (those created in ``period``, as
    tuples in the order of :class:`Facts`).

    ``queues``: each queue's id and its staff (listed even with zeros), in the order to show.
    ``own_queue``: the queue whose own report this is (its confidential subjects are listed).
    """
    days = len(clock.business)
    position, locate = clock.positioner(), clock.locator()
    at_end = position(period.as_of_ts)
    seconds = {priority: target.total_seconds() for priority, target in sla.targets.items()}
    sections: dict[str, _Section] = {queue: _Section.of_days(days) for queue in queues}
    for ticket in tickets:  # a million times: everything local, one section per ticket
        number, queue, priority, category, status, assignee, confidential, created, answered, resolved = ticket
        part = sections.get(queue)
        if part is None:  # a queue no longer in the rules
            part = sections[queue] = _Section.of_days(days)
        start, day = locate(created)
        part.created[day] += 1
        target = seconds.get(priority)
        if answered is not None:
            response = position(answered) - start if answered > created else 0
            part.first_response.append(response)
            # sla.outcome, with the call only for a tie
            if target is not None:
                part.sla["met" if response < target else "missed" if response > target
                         else sla.outcome(priority, created, answered, response, response)] += 1
        elif target is not None:
            waited = at_end - start
            part.sla["pending" if waited < target else "missed" if waited > target
                     else sla.outcome(priority, created, None, None, waited)] += 1
        if resolved is not None:
            end, day = locate(resolved)
            part.resolution.append(end - start if resolved > created else 0)
            part.resolved[day] += 1
        elif confidential:
            part.confidential.append((created, number, status))
        else:
            part.listable.append((created, number, status))
        if assignee:
            part.assigned[assignee] += 1
        part.categories[category] += 1
    overall = _Section.of_days(days)
    for part in sections.values():
        part.first_response.sort()  # sorted runs: the overall's sort merges them
        part.resolution.sort()
        overall.absorb(part)
    weeks = Weeks(period, clock)
    return {
        "overall": _finish(overall, weeks, (), tallies, None, list_confidential=False),
        "queues": {queue: _finish(part, weeks, queues.get(queue, ()), tallies, queue, queue == own_queue)
                   for queue, part in sections.items()},
    }


class Weeks:
    """The ISO weeks of a period, and per-day counts of the clock's days added up by them."""

    def __init__(self, period: Period, clock: BusinessClock) -> None:
        self.labels = period.weeks()
        self._of_day = [week_label(clock.first + timedelta(days=i)) for i in range(len(clock.business))]

    def add_up(self, per_day: Sequence[int]) -> Counter[str]:
        total: Counter[str] = Counter()
        for label, count in zip(self._of_day, per_day, strict=True):
            if count:
                total[label] += count
        return total


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


def _finish(part: _Section, weeks: Weeks, staff: Sequence[str], tallies: Tallies, queue: str | None,
            list_confidential: bool) -> dict[str, Any]:
    answered = _merged(tallies.answered, queue)
    people = dict.fromkeys([*staff, *sorted(set(part.assigned) | set(answered))])
    met, missed = part.sla["met"], part.sla["missed"]
    backlog = len(part.listable) + len(part.confidential)
    listed = part.listable + part.confidential if list_confidential else part.listable
    oldest = heapq.nsmallest(OLDEST_LISTED, listed)
    categories = Counter({name: count for name, count in part.categories.items() if name})
    created, resolved = weeks.add_up(part.created), weeks.add_up(part.resolved)
    return {
        "created": sum(part.created),
        "resolved": len(part.resolution),
        "backlog": backlog,
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
        "weeks": {label: {"created": created.get(label, 0), "resolved": resolved.get(label, 0)}
                  for label in weeks.labels},
        "oldest_open": [{"number": number, "status": status, "created_at": datetime.fromtimestamp(created, UTC).isoformat()}
                        for created, number, status in oldest],
        "hidden": backlog - len(listed),
    }
