"""The report's pure parts: the fast business clock (checked against BusinessCalendar.elapsed),
quantiles, SLA outcomes and the figures of a handful of tickets, each worked out by hand.

Times are Helsinki wall times. Spring 2027: DST starts Sun 28.3. 03:00 (EET -> EEST); Good
Friday is 26.3.2027 and Easter Monday 29.3.2027 (holidays). Business hours 08-16, Mon-Fri.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from maild.core.business_time import BusinessCalendar
from maild.report.clock import BusinessClock, OutOfSpan
from maild.report.figures import Facts, Period, Sla, Tallies, quantile, summarise, week_label
from maild.report.query import _rule_names, period_of
from maild.rules.model import BusinessDuration, BusinessHours

HKI = ZoneInfo("Europe/Helsinki")
CALENDAR = BusinessCalendar(BusinessHours())
CLOCK = BusinessClock(CALENDAR, date(2027, 3, 1), date(2027, 4, 30))
HOUR = 3600


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=HKI).timestamp()


def sla(raw: str) -> BusinessDuration:
    return BusinessDuration(int(raw[:-1]), raw[-1], BusinessHours().day_length)  # type: ignore[arg-type]


ELAPSED = [
    # start, end, business hours, why
    ("2027-03-22 10:00", "2027-03-22 12:30", 2.5, "same day"),
    ("2027-03-22 07:00", "2027-03-22 17:00", 8, "a whole day, from before opening to after closing"),
    ("2027-03-25 15:00", "2027-03-30 09:00", 2, "Thu 1 h, Good Friday, weekend with the DST change, Easter Monday, Tue 1 h"),
    ("2027-03-27 12:00", "2027-03-28 23:00", 0, "the weekend of the DST change"),
    ("2027-03-28 02:30", "2027-03-30 08:30", 0.5, "from before the DST jump to Tuesday"),
    ("2027-03-22 12:00", "2027-03-22 12:00", 0, "no time"),
    ("2027-03-22 12:00", "2027-03-22 11:00", 0, "backwards"),
    ("2027-04-16 15:00", "2027-04-19 09:00", 2, "a plain weekend"),
]


@pytest.mark.parametrize(("start", "end", "expected", "why"), ELAPSED)
def test_clock_elapsed(start: str, end: str, expected: float, why: str) -> None:
    assert CLOCK.elapsed(ts(start), ts(end)) == expected * HOUR, why
    aware = [datetime.fromisoformat(t).replace(tzinfo=HKI) for t in (start, end)]
    assert CALENDAR.elapsed(*aware).total_seconds() == expected * HOUR, why


@pytest.mark.parametrize(("first", "last"), [(date(2027, 3, 1), date(2027, 4, 30)), (date(2027, 1, 4), date(2027, 2, 26)),
                                             (date(2026, 10, 1), date(2026, 11, 30))])
def test_clock_agrees_with_the_calendar_everywhere(first: date, last: date) -> None:
    """Spring (DST starts, Easter), winter (one offset: the clock's shortcut), autumn (DST ends)."""
    clock = BusinessClock(CALENDAR, first, last)
    position = clock.positioner()
    rng = random.Random(15)
    low = datetime.combine(first + timedelta(days=1), datetime.min.time(), HKI).timestamp()
    high = datetime.combine(last - timedelta(days=1), datetime.min.time(), HKI).timestamp()
    for _ in range(2000):
        a, b = sorted(rng.uniform(low, high) // 60 * 60 for _ in range(2))
        expected = CALENDAR.elapsed(datetime.fromtimestamp(a, HKI), datetime.fromtimestamp(b, HKI)).total_seconds()
        assert clock.elapsed(a, b) == expected, (datetime.fromtimestamp(a, HKI), datetime.fromtimestamp(b, HKI))
        assert position(b) - position(a) == expected


def test_clock_knows_local_days_across_dst_and_refuses_what_it_was_not_built_for() -> None:
    assert CLOCK.local_date(ts("2027-03-28 00:30")) == date(2027, 3, 28)  # 22:30 UTC the day before
    assert CLOCK.local_date(ts("2027-03-29 00:30")) == date(2027, 3, 29)  # 21:30 UTC, summer time
    with pytest.raises(OutOfSpan):
        CLOCK.position(ts("2027-05-02 10:00"))


QUANTILES = [
    ([], 0.5, None),
    ([3.0], 0.9, 3.0),
    ([1.0, 2.0], 0.5, 1.5),
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9, 9.1),  # position 8.1
    ([0.0, 10.0, 20.0], 0.9, 18.0),  # position 1.8
]


@pytest.mark.parametrize(("values", "q", "expected"), QUANTILES)
def test_quantile(values: list[float], q: float, expected: float | None) -> None:
    got = quantile(values, q)
    assert got == (None if expected is None else pytest.approx(expected))


def ticket(number: int, created: str, *, queue: str = "a", priority: str = "normal", answered: str | None = None,
           resolved: str | None = None, status: str | None = None, assignee: str | None = None,
           category: str | None = None, confidential: bool = False) -> Facts:
    return Facts(number, queue, priority, category, status or ("resolved" if resolved else "open"),
                 assignee, confidential, ts(created), ts(answered) if answered else None,
                 ts(resolved) if resolved else None)


TARGETS = {"urgent": sla("4h"), "normal": sla("1d")}


def due(created: float, target: timedelta) -> float:
    return CALENDAR.add(datetime.fromtimestamp(created, HKI), target).timestamp()


SLA_CASES = [
    # (ticket, as of, outcome, why)
    (ticket(1, "2027-03-22 10:00", priority="urgent", answered="2027-03-22 14:00"), "2027-03-31 00:00", "met", "4 h exactly"),
    (ticket(2, "2027-03-22 10:00", priority="urgent", answered="2027-03-22 14:01"), "2027-03-31 00:00", "missed", "a minute late"),
    (ticket(3, "2027-03-22 12:00", priority="urgent", answered="2027-03-22 17:00"), "2027-03-31 00:00", "missed",
     "due at closing 16:00: an answer in the evening is late though no open time passed"),
    (ticket(4, "2027-03-22 12:00", priority="urgent", answered="2027-03-22 16:00"), "2027-03-31 00:00", "met", "at the due time"),
    (ticket(5, "2027-03-25 15:00", answered="2027-03-30 14:59"), "2027-03-31 00:00", "met",
     "1d from Thursday 15:00: Good Friday and Easter Monday closed, due Tue 15:00"),
    (ticket(6, "2027-03-25 15:00"), "2027-03-30 14:59", "pending", "not answered, not yet due"),
    (ticket(7, "2027-03-25 15:00"), "2027-03-30 15:00", "missed", "not answered and due"),
    (ticket(8, "2027-03-25 15:00", priority="low"), "2027-03-31 00:00", None, "no target for low"),
]


@pytest.mark.parametrize(("facts", "as_of", "expected", "why"), SLA_CASES)
def test_sla_outcome(facts: Facts, as_of: str, expected: str | None, why: str) -> None:
    judge = Sla(TARGETS, ts(as_of), due)
    response = None if facts.first_response is None else CLOCK.elapsed(facts.created, facts.first_response)
    assert judge.outcome(facts.priority, facts.created, facts.first_response, response,
                         CLOCK.elapsed(facts.created, ts(as_of))) == expected, why
    assert CLOCK.due(facts.created, TARGETS.get(facts.priority, sla("1h"))) == due(
        facts.created, TARGETS.get(facts.priority, sla("1h"))), "the clock's due time is the calendar's"


def test_figures_of_a_small_history() -> None:
    """Two weeks, 22.3.-4.4.2027 (W12, W13), two queues; b is confidential."""
    period = period_of(date(2027, 3, 22), date(2027, 4, 4), HKI, datetime(2027, 4, 10, tzinfo=HKI))
    tickets = [
        # answered after 2 business hours, resolved Wed 10:00 = 8 + 2 = 10 h; week W12 both
        ticket(1, "2027-03-22 08:00", answered="2027-03-22 10:00", resolved="2027-03-23 10:00", assignee="m@x",
               category="eroaminen"),
        # Thu 15:00, answered Tue 30.3. 09:00 (2 h across Easter and DST), resolved Tue 11:00 (4 h), W12 -> W13
        ticket(2, "2027-03-25 15:00", answered="2027-03-30 09:00", resolved="2027-03-30 11:00", assignee="m@x",
               category="eroaminen"),
        # Saturday: open, unanswered; counted from Tue 30.3. 08:00 (Monday is Easter), 1d due Wed 08:00: missed
        ticket(3, "2027-03-27 11:00", assignee="p@x", category="laskutus"),
        # confidential queue b, answered in 6 h, still open
        ticket(4, "2027-03-31 10:00", queue="b", answered="2027-04-01 08:00", confidential=True, assignee="j@x"),
    ]
    tallies = Tallies(channels={"a": Counter(smtp=2, imap=1), "b": Counter(smtp=1)},
                      rules={"a": Counter({"Eroamiset": 2})}, no_rule={"a": 1, "b": 1},
                      answered={"a": Counter({"m@x": 2}), "b": Counter({"j@x": 1})})
    judge = Sla(TARGETS, period.as_of_ts, due)
    report = summarise(tickets, period, CLOCK, judge, tallies, {"a": ("m@x", "p@x", "q@x"), "b": ("j@x",)})
    overall, a, b = report["overall"], report["queues"]["a"], report["queues"]["b"]
    assert (overall["created"], overall["resolved"], overall["backlog"]) == (4, 2, 2)
    # first responses 2, 2, 6 h; resolutions 10, 4 h
    assert overall["first_response_hours"] == {"median": 2.0, "p90": 5.2, "count": 3}
    assert overall["resolution_hours"] == {"median": 7.0, "p90": 9.4, "count": 2}
    # met: 1 (2 h of 8), 2 (Tue 09:00 before Tue 15:00), 4 (6 h); missed: 3
    assert overall["sla"] == {"met": 3, "missed": 1, "pending": 0} and overall["sla_met_percent"] == 75.0
    assert overall["weeks"] == {"2027-W12": {"created": 3, "resolved": 1}, "2027-W13": {"created": 1, "resolved": 1}}
    assert a["staff"] == {"m@x": {"assigned": 2, "answered": 2}, "p@x": {"assigned": 1, "answered": 0},
                          "q@x": {"assigned": 0, "answered": 0}}
    assert overall["staff"]["j@x"] == {"assigned": 1, "answered": 1}
    assert a["categories"] == {"eroaminen": 2, "laskutus": 1} and b["uncategorised"] == 1
    assert overall["channels"] == {"smtp": 3, "imap": 1} and overall["rules"] == {"Eroamiset": 2}
    assert overall["no_rule"] == 2 and b["no_rule"] == 1
    # the confidential ticket is counted, never listed outside its own queue's report
    assert [item["number"] for item in overall["oldest_open"]] == [3] and overall["hidden"] == 1
    assert b["oldest_open"] == [] and b["hidden"] == 1
    own = summarise(tickets[3:], period, CLOCK, judge, tallies, {"b": ("j@x",)}, own_queue="b")
    assert [item["number"] for item in own["queues"]["b"]["oldest_open"]] == [4]
    assert own["overall"]["oldest_open"] == []


def test_an_empty_period_is_zeros() -> None:
    period = period_of(date(2027, 3, 22), date(2027, 3, 28), HKI, datetime(2027, 4, 10, tzinfo=HKI))
    report = summarise([], period, CLOCK, Sla(TARGETS, period.as_of_ts, due), Tallies(), {"a": ()})
    part = report["overall"]
    assert (part["created"], part["resolved"], part["backlog"]) == (0, 0, 0)
    assert part["first_response_hours"] == {"median": None, "p90": None, "count": 0}
    assert part["sla_met_percent"] is None and part["weeks"] == {"2027-W12": {"created": 0, "resolved": 0}}


@pytest.mark.parametrize(("text", "expected"), [
    (None, []), ("[]", []), ("not json", []),
    ('[{"name": "Eroamiset", "index": 0, "actions": {}}, {"name": "Laskutus", "index": 1}]', ["Eroamiset", "Laskutus"]),
    ('"[{\\"name\\": \\"A\\"}]"', ["A"]),  # quoted once more
    ('[{"name": "A"}, {"name": "A"}, 3, {"index": 2}]', ["A"]),
])
def test_rule_names(text: str | None, expected: list[str]) -> None:
    assert _rule_names(text) == expected


def test_week_labels_are_iso() -> None:
    assert week_label(date(2027, 1, 3)) == "2026-W53" and week_label(date(2027, 3, 8)) == "2027-W10"
    assert Period(date(2027, 3, 27), date(2027, 3, 29), 0, 0, 0).weeks() == ["2027-W12", "2027-W13"]
