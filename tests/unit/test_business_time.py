"""Business time in Europe/Helsinki: working days, 08:00-16:00, Finnish public holidays, DST.

Every case is written in local wall time; the calendar answers in UTC, and the tests compare
instants, so a result that is an hour off across a DST change fails.
"""

from __future__ import annotations

import time as clock
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from maild.core.business_time import BusinessCalendar
from maild.rules.model import BusinessDuration, BusinessHours

HELSINKI = ZoneInfo("Europe/Helsinki")
CALENDAR = BusinessCalendar(BusinessHours())


def at(text: str) -> datetime:
    """A Helsinki wall time such as ``"2026-11-24 10:00"`` (Tuesday), as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=HELSINKI)


def sla(raw: str) -> BusinessDuration:
    return BusinessDuration(int(raw[:-1]), raw[-1], BusinessHours().day_length)  # type: ignore[arg-type]


# --- add ------------------------------------------------------------------------------------

ADD_CASES = [
    # start (local), duration, expected (local), why
    ("2026-11-24 10:00", "1d", "2026-11-25 10:00", "1d from Tuesday is Wednesday, same time"),
    ("2026-11-24 10:00", "4h", "2026-11-24 14:00", "within one day"),
    ("2026-11-24 12:00", "4h", "2026-11-24 16:00", "using up the day ends at closing, not next morning"),
    ("2026-11-24 14:00", "4h", "2026-11-25 10:00", "4h spanning two days"),
    ("2026-11-24 15:45", "30m", "2026-11-25 08:15", "minutes carry over the night"),
    ("2026-11-24 10:00", "3d", "2026-11-27 10:00", "three working days"),
    ("2026-11-24 10:00", "5d", "2026-12-01 10:00", "five working days is a week"),
    # weekend
    ("2026-11-27 15:00", "4h", "2026-11-30 11:00", "Friday afternoon into Monday"),
    ("2026-11-27 12:00", "1d", "2026-11-30 12:00", "1d from Friday is Monday"),
    ("2026-11-27 12:00", "3d", "2026-12-02 12:00", "3d from Friday is Wednesday"),
    # start outside hours: count from the next opening
    ("2026-11-24 07:00", "1h", "2026-11-24 09:00", "before opening"),
    ("2026-11-24 18:00", "1h", "2026-11-25 09:00", "after closing"),
    ("2026-11-24 16:00", "1h", "2026-11-25 09:00", "closing time itself is closed"),
    ("2026-11-28 11:00", "1d", "2026-12-01 08:00", "Saturday: from Monday's opening, 1d is Tuesday 08:00"),
    ("2026-11-24 20:00", "1d", "2026-11-26 08:00", "evening: from Wednesday's opening"),
    ("2026-11-29 23:30", "0m", "2026-11-30 08:00", "nothing to add: the next opening"),
    # Finnish holidays
    ("2024-12-05 12:00", "1d", "2024-12-09 12:00", "Itsenäisyyspäivä, Friday 6.12.2024"),
    ("2024-12-05 14:00", "4h", "2024-12-09 10:00", "Itsenäisyyspäivä, in hours"),
    ("2026-06-18 15:00", "4h", "2026-06-22 11:00", "Juhannusaatto (Fri) is closed, then the weekend"),
    ("2026-06-18 10:00", "1d", "2026-06-22 10:00", "Juhannus: Thursday to Monday"),
    ("2026-04-02 14:00", "1d", "2026-04-07 14:00", "Easter: Good Friday and Easter Monday"),
    ("2026-04-02 14:00", "1h", "2026-04-02 15:00", "Maundy Thursday is an ordinary day"),
    ("2026-05-13 12:00", "1d", "2026-05-15 12:00", "Ascension Day (Thursday)"),
    ("2026-04-30 12:00", "1d", "2026-05-04 12:00", "Vappu (Friday)"),
    ("2026-12-23 10:00", "1d", "2026-12-28 10:00", "Christmas Eve to St Stephen's Day"),
    ("2026-12-30 12:00", "1d", "2026-12-31 12:00", "New Year's Eve is a working day"),
    ("2026-12-31 12:00", "1d", "2027-01-04 12:00", "New Year's Day, then the weekend"),
    ("2026-01-05 15:00", "2h", "2026-01-07 09:00", "Epiphany (Tuesday 6.1.)"),
    # DST: spring forward on Sunday 29.3.2026, fall back on Sunday 25.10.2026
    ("2026-03-27 14:00", "4h", "2026-03-30 10:00", "March DST change over the weekend, hours"),
    ("2026-03-27 10:00", "1d", "2026-03-30 10:00", "March DST change over the weekend, days"),
    ("2026-10-23 14:00", "4h", "2026-10-26 10:00", "October DST change over the weekend, hours"),
    ("2026-10-23 10:00", "1d", "2026-10-26 10:00", "October DST change over the weekend, days"),
]


@pytest.mark.parametrize(("start", "duration", "expected", "why"), ADD_CASES, ids=[case[3] for case in ADD_CASES])
def test_add(start: str, duration: str, expected: str, why: str) -> None:
    due = CALENDAR.add(at(start), sla(duration))

    assert due == at(expected), why
    assert due.tzinfo is UTC


def test_add_takes_any_zone_and_answers_in_utc() -> None:
    start = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # Friday 14:00 in Helsinki (UTC+2)

    assert CALENDAR.add(start, sla("4h")) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # Monday 10:00, UTC+3


def test_a_plain_timedelta_counts_open_minutes() -> None:
    """Half of ``1d`` is a plain timedelta of 4 hours: when half of the SLA has passed."""
    half = sla("1d") / 2

    assert not isinstance(half, BusinessDuration)
    assert CALENDAR.add(at("2026-11-24 14:00"), half) == at("2026-11-25 10:00")


def test_add_refuses_naive_and_negative() -> None:
    with pytest.raises(ValueError, match="aware"):
        CALENDAR.add(datetime(2026, 11, 24, 10, 0), sla("1h"))
    with pytest.raises(ValueError, match="negative"):
        CALENDAR.add(at("2026-11-24 10:00"), timedelta(hours=-1))


def test_other_hours_and_days() -> None:
    """A Saturday shift and a shorter day: nothing assumes Monday to Friday, 08-16."""
    calendar = BusinessCalendar(BusinessHours(days=(1, 2, 3, 4, 5), start=time(9, 0), end=time(13, 30)))

    assert calendar.add(at("2026-11-27 12:00"), timedelta(hours=3)) == at("2026-11-28 10:30")
    assert calendar.add(at("2026-11-28 12:00"), timedelta(hours=2)) == at("2026-12-01 09:30")  # Tuesday


def test_without_holidays_good_friday_is_a_working_day() -> None:
    calendar = BusinessCalendar(BusinessHours(holidays=None))

    assert calendar.add(at("2026-04-02 14:00"), sla("1d")) == at("2026-04-03 14:00")


def test_another_timezone() -> None:
    calendar = BusinessCalendar(BusinessHours(holidays=None), "Europe/Stockholm")
    stockholm = datetime(2026, 11, 24, 15, 0, tzinfo=ZoneInfo("Europe/Stockholm"))

    assert calendar.add(stockholm, sla("2h")) == datetime(2026, 11, 25, 9, 0, tzinfo=ZoneInfo("Europe/Stockholm"))


# --- is_open, next_open, holidays --------------------------------------------------------------

OPEN_CASES = [
    ("2026-11-24 08:00", True, "opening time is open"),
    ("2026-11-24 15:59", True, "a minute before closing"),
    ("2026-11-24 16:00", False, "closing time is closed"),
    ("2026-11-24 07:59", False, "before opening"),
    ("2026-11-28 10:00", False, "Saturday"),
    ("2026-11-29 10:00", False, "Sunday"),
    ("2024-12-06 10:00", False, "Itsenäisyyspäivä"),
    ("2026-06-19 10:00", False, "Juhannusaatto"),
    ("2026-12-24 10:00", False, "Jouluaatto"),
    ("2026-12-25 10:00", False, "Joulupäivä"),
    ("2026-04-03 10:00", False, "Pitkäperjantai"),
    ("2026-04-06 10:00", False, "2. pääsiäispäivä"),
    ("2026-05-14 10:00", False, "Helatorstai"),
    ("2026-12-31 10:00", True, "Uudenvuodenaatto is open"),
    ("2026-03-30 08:30", True, "Monday after the March DST change"),
    ("2026-10-26 15:30", True, "Monday after the October DST change"),
]


@pytest.mark.parametrize(("when", "expected", "why"), OPEN_CASES, ids=[case[2] for case in OPEN_CASES])
def test_is_open(when: str, expected: bool, why: str) -> None:
    assert CALENDAR.is_open(at(when)) is expected, why


NEXT_OPEN_CASES = [
    ("2026-11-24 10:00", "2026-11-24 10:00", "open now: itself"),
    ("2026-11-24 06:00", "2026-11-24 08:00", "early morning"),
    ("2026-11-24 16:00", "2026-11-25 08:00", "at closing"),
    ("2026-11-27 17:00", "2026-11-30 08:00", "Friday evening"),
    ("2026-12-23 16:30", "2026-12-28 08:00", "over Christmas"),
    ("2026-03-28 12:00", "2026-03-30 08:00", "over the March DST change"),
]


@pytest.mark.parametrize(("when", "expected", "why"), NEXT_OPEN_CASES, ids=[case[2] for case in NEXT_OPEN_CASES])
def test_next_open(when: str, expected: str, why: str) -> None:
    opened = CALENDAR.next_open(at(when))

    assert opened == at(expected), why
    assert opened.tzinfo is UTC


def test_the_eves_that_the_holidays_package_lists_are_closed() -> None:
    """python-holidays marks Juhannusaatto and Jouluaatto as Finnish holidays; we rely on it."""
    assert CALENDAR.is_holiday(datetime(2026, 6, 19).date())
    assert CALENDAR.is_holiday(datetime(2027, 6, 25).date())
    assert CALENDAR.is_holiday(datetime(2026, 12, 24).date())
    assert not CALENDAR.is_holiday(datetime(2026, 12, 31).date())


# --- elapsed ----------------------------------------------------------------------------------

ELAPSED_CASES = [
    ("2026-11-27 14:00", "2026-11-30 10:00", timedelta(hours=4), "across a weekend"),
    ("2026-11-24 10:00", "2026-11-24 10:30", timedelta(minutes=30), "within a day"),
    ("2026-11-24 17:00", "2026-11-25 07:00", timedelta(0), "overnight only"),
    ("2026-11-28 09:00", "2026-11-29 18:00", timedelta(0), "a weekend only"),
    ("2026-11-30 08:00", "2026-12-07 08:00", timedelta(hours=40), "a whole week"),
    ("2026-12-23 12:00", "2026-12-28 12:00", timedelta(hours=8), "over Christmas"),
    ("2026-03-27 12:00", "2026-03-30 12:00", timedelta(hours=8), "over the March DST change"),
    ("2026-10-23 12:00", "2026-10-26 12:00", timedelta(hours=8), "over the October DST change"),
    ("2026-11-25 10:00", "2026-11-24 10:00", timedelta(0), "end before start"),
]


@pytest.mark.parametrize(("start", "end", "expected", "why"), ELAPSED_CASES, ids=[case[3] for case in ELAPSED_CASES])
def test_elapsed(start: str, end: str, expected: timedelta, why: str) -> None:
    assert CALENDAR.elapsed(at(start), at(end)) == expected, why


@pytest.mark.parametrize("duration", ["30m", "4h", "8h", "13h", "40h", "1d", "5d"])
@pytest.mark.parametrize("start", ["2026-11-24 08:00", "2026-11-27 15:10", "2026-12-23 09:45", "2026-03-27 11:00"])
def test_elapsed_measures_what_add_added(start: str, duration: str) -> None:
    due = CALENDAR.add(at(start), sla(duration))

    assert CALENDAR.elapsed(at(start), due) == sla(duration)


def test_add_is_fast() -> None:
    start, five_days = at("2026-12-22 15:00"), sla("5d")
    CALENDAR.add(start, five_days)  # reads the year's holidays once
    rounds = 2000

    began = clock.perf_counter()
    for _ in range(rounds):
        CALENDAR.add(start, five_days)
    per_call = (clock.perf_counter() - began) / rounds

    assert per_call < 0.0005, f"{per_call * 1e6:.0f} µs per add"
