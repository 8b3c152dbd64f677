"""Business time for many instants at once: O(1) per instant, equal to ``BusinessCalendar.elapsed``.

A report measures two business-time spans for each of up to millions of tickets.
:meth:`BusinessCalendar.elapsed` walks the days between two instants and converts both
through ``zoneinfo`` (several microseconds each); over a million tickets that alone would
take tens of seconds. :class:`BusinessClock` instead numbers the days of one span once:
for every local day, whether it is a business day and how much open time lies before it
(``cum``). An instant's *position* is the open time before it since the first day, and
the open time between two instants is the difference of their positions: the same sum of
per-day overlaps that ``elapsed`` adds up, on the same naive local wall times (so a day
with a DST change is still one business day long). Instants come in as POSIX seconds;
the UTC offset comes from the zone's transitions in the span, found once.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from maild.core.business_time import BusinessCalendar

DAY = 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class OutOfSpan(ValueError):
    """An instant outside the days the clock was built for."""


class BusinessClock:
    """Positions in business time of instants between ``first`` and ``last`` (local days)."""

    def __init__(self, calendar: BusinessCalendar, first: date, last: date) -> None:
        if last < first:
            raise ValueError(f"empty span: {first} to {last}")
        self.calendar = calendar
        self.first, self.last = first, last
        hours = calendar.hours
        self.opens = hours.start.hour * 3600 + hours.start.minute * 60 + hours.start.second
        self.closes = hours.end.hour * 3600 + hours.end.minute * 60 + hours.end.second
        self.day_seconds = self.closes - self.opens
        days = (last - first).days + 1
        self._base = first.toordinal()
        self.business = [calendar.is_business_day(first + timedelta(days=i)) for i in range(days)]
        self.cum = [0] * days
        for i in range(1, days):
            self.cum[i] = self.cum[i - 1] + (self.day_seconds if self.business[i - 1] else 0)
        self._starts, self._offsets = _transitions(calendar, first, last)

    def offset(self, ts: float) -> int:
        """The zone's UTC offset in seconds at POSIX time ``ts``."""
        return self._offsets[bisect_right(self._starts, ts) - 1]

    def day_index(self, ts: float) -> int:
        """The index (0 = ``first``) of the local day of POSIX time ``ts``."""
        index = int((ts + self.offset(ts)) // DAY) + _EPOCH_ORDINAL - self._base
        if not 0 <= index < len(self.cum):
            raise OutOfSpan(f"{datetime.fromtimestamp(ts, UTC).isoformat()} is outside {self.first} to {self.last}")
        return index

    def local_date(self, ts: float) -> date:
        return date.fromordinal(self._base + self.day_index(ts))

    def position(self, ts: float) -> int | float:
        """Open time (seconds) from the start of ``first`` up to POSIX time ``ts``."""
        wall = ts + self.offset(ts)
        index = int(wall // DAY) + _EPOCH_ORDINAL - self._base
        if not 0 <= index < len(self.cum):
            raise OutOfSpan(f"{datetime.fromtimestamp(ts, UTC).isoformat()} is outside {self.first} to {self.last}")
        if not self.business[index]:
            return self.cum[index]
        into = wall % DAY - self.opens
        return self.cum[index] + (0 if into <= 0 else min(into, self.day_seconds))

    def positioner(self) -> Callable[[float], int | float]:
        """:meth:`position` as a function with everything it needs bound locally: the report
        calls it three times for each of a million tickets."""
        offsets, starts, business, cum = self._offsets, self._starts, self.business, self.cum
        shift, opens, length, size = _EPOCH_ORDINAL - self._base, self.opens, self.day_seconds, len(self.cum)
        if len(offsets) == 1:
            only = offsets[0]

            def position(ts: float) -> int | float:
                wall = ts + only
                index = int(wall // DAY) + shift
                if not 0 <= index < size:
                    return self.position(ts)  # raises OutOfSpan
                if not business[index]:
                    return cum[index]
                into = wall % DAY - opens
                return cum[index] + (0 if into <= 0 else (into if into < length else length))

            return position

        def shifted(ts: float) -> int | float:
            wall = ts + offsets[bisect_right(starts, ts) - 1]
            index = int(wall // DAY) + shift
            if not 0 <= index < size:
                return self.position(ts)  # raises OutOfSpan
            if not business[index]:
                return cum[index]
            into = wall % DAY - opens
            return cum[index] + (0 if into <= 0 else (into if into < length else length))

        return shifted

    def day_indexer(self) -> Callable[[float], int]:
        """:meth:`day_index` with its lookups bound locally (see :meth:`positioner`)."""
        offsets, starts, shift, size = self._offsets, self._starts, _EPOCH_ORDINAL - self._base, len(self.cum)

        def day_index(ts: float) -> int:
            index = int((ts + offsets[bisect_right(starts, ts) - 1]) // DAY) + shift
            return index if 0 <= index < size else self.day_index(ts)  # raises OutOfSpan

        return day_index

    def elapsed(self, start: float, end: float) -> int | float:
        """Open time in seconds between two POSIX times; zero when ``end`` is not after ``start``."""
        if end <= start:
            return 0
        return self.position(end) - self.position(start)


def _transitions(calendar: BusinessCalendar, first: date, last: date) -> tuple[list[float], list[int]]:
    """The UTC offset at the span's start and every change in it, as (POSIX start, seconds).

    Checked hour by hour only on the UTC days whose offset differs from the day before
    (zones change on the hour or half hour: half-hour steps keep the search exact)."""
    zone = calendar.zone
    start = datetime.combine(first - timedelta(days=1), datetime.min.time(), UTC)
    end = datetime.combine(last + timedelta(days=2), datetime.min.time(), UTC)

    def offset(at: datetime) -> int:
        return int(at.astimezone(zone).utcoffset().total_seconds())  # type: ignore[union-attr]

    starts, offsets = [float("-inf")], [offset(start)]
    day = start
    while day < end:
        following = day + timedelta(days=1)
        if offset(following) != offsets[-1]:
            step = day
            while step < following:
                step += timedelta(minutes=30)
                if (found := offset(step)) != offsets[-1]:
                    starts.append(step.timestamp())
                    offsets.append(found)
        day = following
    return starts, offsets
