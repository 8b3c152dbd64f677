"""Business time: SLA arithmetic over working days, opening hours and public holidays.

Business time is counted in the instance's local wall-clock time (Europe/Helsinki by
default): a business day is ``business_hours.hours`` on a working day that is not a
public holiday, and always lasts ``BusinessHours.day_length``, also on the days when
daylight saving time starts or ends. Instants come in aware (any zone) and go out as
aware UTC; the arithmetic in between is on naive local wall times, converted once at
the end, so a weekend with a DST change neither adds nor loses an hour.

Holidays come from the ``holidays`` package (``holidays.country_holidays(code)``),
read once per year. For Finland it lists Juhannusaatto (Midsummer Eve) and Jouluaatto
(Christmas Eve) as holidays besides the statutory ones; a union office is closed on
those eves, so they count as closed days here too. New Year's Eve is not listed and
counts as an ordinary working day.

The cost of :meth:`BusinessCalendar.add` and :meth:`BusinessCalendar.elapsed` grows
with the number of calendar days spanned (one step per day), never with minutes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays

from maild.rules.model import BusinessDuration, BusinessHours

ONE_DAY = timedelta(days=1)
NOTHING = timedelta(0)


class BusinessCalendar:
    """When the office is open, and how much open time lies between two instants."""

    def __init__(self, hours: BusinessHours, timezone: str = "Europe/Helsinki") -> None:
        if not hours.days:
            raise ValueError("business hours need at least one working day")
        if hours.start >= hours.end:
            raise ValueError("business hours must end after they start")
        self.hours = hours
        self.zone = ZoneInfo(timezone)
        self._holidays: dict[int, frozenset[date]] = {}

    # --- days -------------------------------------------------------------------------

    def is_holiday(self, day: date) -> bool:
        return day in self._holidays_of(day.year)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.hours.days and not self.is_holiday(day)

    def _holidays_of(self, year: int) -> frozenset[date]:
        found = self._holidays.get(year)
        if found is None:
            code = self.hours.holidays
            found = frozenset(holidays.country_holidays(code, years=year)) if code else frozenset()
            self._holidays[year] = found
        return found

    def _next_business_day(self, day: date) -> date:
        day += ONE_DAY
        while not self.is_business_day(day):
            day += ONE_DAY
        return day

    # --- instants ---------------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        wall = self._wall(at)
        return self._open_from(wall) == wall

    def next_open(self, at: datetime) -> datetime:
        """``at`` itself (in UTC) when open, else the next opening."""
        wall = self._wall(at)
        opened = self._open_from(wall)
        return at.astimezone(UTC) if opened == wall else self._utc(opened)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """When ``duration`` of business time has passed since ``start``, in UTC.

        A :class:`BusinessDuration` in days (``1d``) lands on the same local time of
        the n-th next business day; anything else (``4h``, ``30m``, a plain timedelta
        such as half of an SLA) counts minutes of open hours. Either way the count
        starts at ``start`` if the office is open then, else at the next opening. A
        count that uses up a day exactly ends at closing time, not the next morning.
        """
        if duration < NOTHING:
            raise ValueError(f"a business duration cannot be negative: {duration}")
        wall = self._open_from(self._wall(start))
        if isinstance(duration, BusinessDuration) and duration.unit == "d":
            return self._utc(self._add_days(wall, duration.amount))
        return self._utc(self._add_open_time(wall, duration))

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Open time between ``start`` and ``end``; zero when ``end`` is not after ``start``."""
        first, last = self._wall(start), self._wall(end)
        total = NOTHING
        day = first.date()
        while day <= last.date():
            if self.is_business_day(day):
                overlap = min(last, self._closing(day)) - max(first, self._opening(day))
                total += max(overlap, NOTHING)
            day += ONE_DAY
        return total

    # --- wall-clock arithmetic ----------------------------------------------------------

    def _wall(self, at: datetime) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"expected an aware datetime, got {at.isoformat()}")
        return at.astimezone(self.zone).replace(tzinfo=None)

    def _utc(self, wall: datetime) -> datetime:
        return wall.replace(tzinfo=self.zone).astimezone(UTC)

    def _opening(self, day: date) -> datetime:
        return datetime.combine(day, self.hours.start)

    def _closing(self, day: date) -> datetime:
        return datetime.combine(day, self.hours.end)

    def _open_from(self, wall: datetime) -> datetime:
        """The first open wall time at or after ``wall``."""
        day = wall.date()
        if self.is_business_day(day):
            if wall < self._opening(day):
                return self._opening(day)
            if wall < self._closing(day):
                return wall
        return self._opening(self._next_business_day(day))

    def _add_days(self, wall: datetime, days: int) -> datetime:
        day = wall.date()
        for _ in range(days):
            day = self._next_business_day(day)
        return datetime.combine(day, wall.time())

    def _add_open_time(self, wall: datetime, remaining: timedelta) -> datetime:
        while True:
            left_today = self._closing(wall.date()) - wall
            if remaining <= left_today:
                return wall + remaining
            remaining -= left_today
            wall = self._opening(self._next_business_day(wall.date()))
