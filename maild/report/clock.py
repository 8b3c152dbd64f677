"""Business time for many instants at once: O(1) per instant, equal to ``BusinessCalendar``.

A report measures two business-time spans for each of up to millions of tickets.
:meth:`BusinessCalendar.elapsed` walks the days between two instants and converts both
through ``zoneinfo`` (several microseconds each); over a million tickets that alone would
take tens of seconds. :class:`BusinessClock` instead numbers the days of one span once:
for every local day, whether it is a business day and how much open time lies before it
(``cum``, the cumulative business seconds at the day's start). An instant's *position* is
the open time before it since the first day, and the open time between two instants is the
difference of their positions: the same sum of per-day overlaps that ``elapsed`` adds up,
on the same naive local wall times (so a day with a DST change is still one business day
long).

Instants come in as POSIX seconds. The span is cut into quarter hours of POSIX time; within
one quarter the zone's UTC offset is constant (offsets and their changes fall on quarter
hours) and so is the local day, and at most one stretch of it is open. Each quarter keeps
its local day, the position at its start, when its open stretch starts and how long it is:
a position is then one table look-up and a clamp, with no ``zoneinfo`` call and no search.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from maild.core.business_time import BusinessCalendar
from maild.rules.model import BusinessDuration

DAY = 86400
QUARTER = 900
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
        self.cum = [0] * (days + 1)
        for i in range(days):
            self.cum[i + 1] = self.cum[i] + (self.day_seconds if self.business[i] else 0)
        self._quarters(calendar)

    def _quarters(self, calendar: BusinessCalendar) -> None:
        """The quarter-hour table (see the module's docstring), from the UTC midnight before
        ``first`` to the one after ``last``: every instant of the span's local days is in it."""
        zone = calendar.zone
        self._t0 = int(datetime.combine(self.first - timedelta(days=1), datetime.min.time(), UTC).timestamp())
        end = int(datetime.combine(self.last + timedelta(days=2), datetime.min.time(), UTC).timestamp())

        def offset(ts: int) -> int:
            return int(datetime.fromtimestamp(ts, zone).utcoffset().total_seconds())  # type: ignore[union-attr]

        self._day: list[int] = []  # local day index, -1 outside the span
        self._shift: list[int] = []  # UTC offset
        self._at_start: list[int] = []  # position at the quarter's start
        self._open_from: list[int] = []  # POSIX second the open stretch starts (or the quarter's start)
        self._open_for: list[int] = []  # its length in seconds, 0 when closed all quarter
        size, opens, closes, length = len(self.business), self.opens, self.closes, self.day_seconds
        day_start = self._t0
        while day_start < end:
            # a UTC day that starts and ends with one offset is taken to keep it throughout (no
            # zone changes twice within a day); only a day with a change is looked at by the quarter
            same = offset(day_start) == offset(day_start + DAY - QUARTER)
            shift = offset(day_start)
            for start in range(day_start, day_start + DAY, QUARTER):
                if not same:
                    shift = offset(start)
                if shift % QUARTER:
                    raise ValueError(f"UTC offset {shift} s of {zone} is not whole quarter hours")
                wall = start + shift
                self._shift.append(shift)
                index = wall // DAY + _EPOCH_ORDINAL - self._base
                tod = wall % DAY
                if not 0 <= index < size:
                    self._day.append(-1)
                    self._at_start.append(0)
                    self._open_from.append(start)
                    self._open_for.append(0)
                    continue
                self._day.append(index)
                if self.business[index]:
                    self._at_start.append(self.cum[index] + min(max(tod - opens, 0), length))
                    self._open_from.append(start + max(opens - tod, 0))
                    self._open_for.append(max(0, min(tod + QUARTER, closes) - max(tod, opens)))
                else:
                    self._at_start.append(self.cum[index])
                    self._open_from.append(start)
                    self._open_for.append(0)
            day_start += DAY

    def _quarter(self, ts: float) -> int:
        quarter = int(ts - self._t0) // QUARTER
        if not 0 <= quarter < len(self._day) or self._day[quarter] < 0:
            raise OutOfSpan(f"{datetime.fromtimestamp(ts, UTC).isoformat()} is outside {self.first} to {self.last}")
        return quarter

    def day_index(self, ts: float) -> int:
        """The index (0 = ``first``) of the local day of POSIX time ``ts``."""
        return self._day[self._quarter(ts)]

    def local_date(self, ts: float) -> date:
        return date.fromordinal(self._base + self.day_index(ts))

    def position(self, ts: float) -> int | float:
        """Open time (seconds) from the start of ``first`` up to POSIX time ``ts``."""
        quarter = self._quarter(ts)
        return self._at_start[quarter] + min(max(ts - self._open_from[quarter], 0), self._open_for[quarter])

    def positioner(self) -> Callable[[float], int | float]:
        """:meth:`position` with the tables bound locally: the report calls it up to three
        times for each of a million tickets."""
        t0, days, at_start, open_from, open_for = self._t0, self._day, self._at_start, self._open_from, self._open_for
        size = len(days)

        def position(ts: float) -> int | float:
            quarter = int(ts - t0) // QUARTER
            if not 0 <= quarter < size or days[quarter] < 0:
                return self.position(ts)  # raises OutOfSpan
            into = ts - open_from[quarter]
            if into <= 0:
                return at_start[quarter]
            length = open_for[quarter]
            return at_start[quarter] + (into if into < length else length)

        return position

    def locator(self) -> Callable[[float], tuple[int | float, int]]:
        """``(position, day index)`` of POSIX time ``ts`` from one look-up (see :meth:`positioner`)."""
        t0, days, at_start, open_from, open_for = self._t0, self._day, self._at_start, self._open_from, self._open_for
        size = len(days)

        def locate(ts: float) -> tuple[int | float, int]:
            quarter = int(ts - t0) // QUARTER
            if not 0 <= quarter < size or days[quarter] < 0:
                self.position(ts)  # raises OutOfSpan
            into = ts - open_from[quarter]
            if into <= 0:
                return at_start[quarter], days[quarter]
            length = open_for[quarter]
            return at_start[quarter] + (into if into < length else length), days[quarter]

        return locate

    def day_indexer(self) -> Callable[[float], int]:
        """:meth:`day_index` with the table bound locally (see :meth:`positioner`)."""
        t0, days = self._t0, self._day
        size = len(days)

        def day_index(ts: float) -> int:
            quarter = int(ts - t0) // QUARTER
            index = days[quarter] if 0 <= quarter < size else -1
            return index if index >= 0 else self.day_index(ts)  # raises OutOfSpan

        return day_index

    def elapsed(self, start: float, end: float) -> int | float:
        """Open time in seconds between two POSIX times; zero when ``end`` is not after ``start``."""
        if end <= start:
            return 0
        return self.position(end) - self.position(start)

    def due(self, start: float, duration: timedelta) -> float:
        """``BusinessCalendar.add(start, duration)`` as POSIX seconds, from the tables.

        The count starts at the first open moment at or after ``start``. A duration in days
        (``1d``) lands on the same local time of the n-th next business day; any other counts
        open time and, when it uses up a day exactly, ends at closing time. Only the final
        local wall time is converted back through ``zoneinfo``, as the calendar does. Past
        the span's last day the calendar itself answers."""
        business, size, opens, closes = self.business, len(self.business), self.opens, self.closes
        quarter = self._quarter(start)
        index = self._day[quarter]
        tod = (start + self._shift[quarter]) % DAY  # local wall time of day

        def next_business(i: int) -> int:
            i += 1
            while i < size and not business[i]:
                i += 1
            return i

        if not (business[index] and tod < closes):
            index, tod = next_business(index), opens
        elif tod < opens:
            tod = opens
        if isinstance(duration, BusinessDuration) and duration.unit == "d":
            for _ in range(duration.amount):
                if index >= size:
                    break
                index = next_business(index)
        else:
            remaining = duration.total_seconds()
            while index < size and remaining > closes - tod:
                remaining -= closes - tod
                index, tod = next_business(index), opens
            tod += remaining
        if index >= size:
            return self.calendar.add(datetime.fromtimestamp(start, UTC), duration).timestamp()
        local = datetime.combine(date.fromordinal(self._base + index), datetime.min.time()) + timedelta(seconds=tod)
        return local.replace(tzinfo=self.calendar.zone).timestamp()
