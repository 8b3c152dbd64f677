"""The report's fast business clock equals the reference calendar (``core/business_time``).

``BusinessClock`` answers from tables built once per report (cumulative business seconds
per day, a quarter-hour table of offsets); ``BusinessCalendar`` walks day by day through
``zoneinfo``. On random instants across weekends, Finnish holidays (Easter, Midsummer,
Christmas) and both DST changes, and for other opening hours and zones whose offsets or
DST steps are not whole hours, the two must agree to the second: elapsed open time, the
local day, and the due time of an SLA target (``add``), in minutes and in days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from maild.core.business_time import BusinessCalendar
from maild.report.clock import BusinessClock
from maild.rules.model import BusinessDuration, BusinessHours

FIRST, LAST = date(2026, 1, 1), date(2028, 12, 31)
SPAN_START = int(datetime.combine(FIRST + timedelta(days=1), time(), UTC).timestamp())
SPAN_END = int(datetime.combine(LAST - timedelta(days=1), time(), UTC).timestamp())
HELSINKI = BusinessCalendar(BusinessHours(), "Europe/Helsinki")
HELSINKI_CLOCK = BusinessClock(HELSINKI, FIRST, LAST)

# instants near the moments that matter (openings, closings, midnights, DST changes) are where
# a table is wrong if it is wrong at all: draw them as often as uniformly spread ones
EDGES = [datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
         datetime(2027, 3, 28, 1, 0, tzinfo=UTC), datetime(2027, 10, 31, 1, 0, tzinfo=UTC),
         datetime(2026, 4, 2, 13, 0, tzinfo=UTC), datetime(2027, 6, 24, 13, 0, tzinfo=UTC),
         datetime(2027, 12, 23, 14, 0, tzinfo=UTC), datetime(2028, 2, 28, 22, 0, tzinfo=UTC)]
instants = st.one_of(
    st.integers(SPAN_START, SPAN_END),
    st.builds(lambda edge, days, seconds: int(edge.timestamp()) + days * 86400 + seconds,
              st.sampled_from(EDGES), st.integers(-3, 3), st.integers(-8 * 3600, 8 * 3600)),
)
targets = st.one_of(
    st.builds(lambda n, unit: BusinessDuration(n, unit, timedelta(hours=8)), st.integers(1, 10), st.sampled_from("hd")),
    st.builds(lambda n: BusinessDuration(n, "m", timedelta(hours=8)), st.integers(1, 3000)),
)


def aware(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@settings(max_examples=400)
@given(instants, instants)
def test_elapsed_and_local_day_equal_the_calendar_in_helsinki(a: int, b: int) -> None:
    expected = HELSINKI.elapsed(aware(a), aware(b)).total_seconds()
    assert HELSINKI_CLOCK.elapsed(a, b) == expected
    position = HELSINKI_CLOCK.positioner()
    assert position(max(a, b)) - position(min(a, b)) == HELSINKI.elapsed(aware(min(a, b)), aware(max(a, b))).total_seconds()
    assert HELSINKI_CLOCK.local_date(a) == aware(a).astimezone(HELSINKI.zone).date()
    assert HELSINKI_CLOCK.day_indexer()(a) == HELSINKI_CLOCK.day_index(a)


@settings(max_examples=400)
@given(instants, targets)
def test_due_equals_calendar_add_in_helsinki(start: int, target: BusinessDuration) -> None:
    assert HELSINKI_CLOCK.due(start, target) == HELSINKI.add(aware(start), target).timestamp()


ZONES = ["Europe/Helsinki", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe", "America/New_York", "UTC"]
hours = st.builds(
    lambda days, start, length: BusinessHours(
        days=tuple(sorted(days)), start=time(start // 60, start % 60),
        end=(datetime.combine(date.min, time(start // 60, start % 60)) + timedelta(minutes=length)).time(),
        holidays="FI"),
    st.sets(st.integers(0, 6), min_size=1), st.integers(0, 22 * 60).map(lambda m: m - m % 5),
    st.integers(5, 120).map(lambda m: m * 5),
).filter(lambda h: h.start < h.end)


@settings(max_examples=150, deadline=None)
@given(hours, st.sampled_from(ZONES), instants, instants, targets)
def test_other_hours_and_zones(business: BusinessHours, zone: str, a: int, b: int, target: BusinessDuration) -> None:
    """Opening hours that span a DST change at night, zones with half-hour DST steps or
    quarter-hour offsets: the clock still equals the calendar."""
    calendar = BusinessCalendar(business, zone)
    day = timedelta(seconds=(datetime.combine(date.min, business.end) - datetime.combine(date.min, business.start)).seconds)
    target = BusinessDuration(target.amount, target.unit, day)
    low, high = sorted((a, b))
    clock = BusinessClock(calendar, aware(low).date() - timedelta(days=2), aware(high).date() + timedelta(days=2))
    assert clock.elapsed(a, b) == calendar.elapsed(aware(a), aware(b)).total_seconds()
    assert clock.local_date(a) == aware(a).astimezone(calendar.zone).date()
    assert clock.due(a, target) == calendar.add(aware(a), target).timestamp()
