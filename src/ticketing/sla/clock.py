"""The business clock: add business time to an instant, and count it between two instants.

Business time is the weekly hours of the SLA policy in its time zone (see ticketing.calendar:
wall-clock times resolved day by day, so a DST switch makes that day's hours shorter or longer
in UTC), minus holidays (local dates). No business hours means every minute counts (24/7).

The working intervals are laid out once per clock as a sorted table with running totals, so
each question is two binary searches: a clock serves the due times of many tickets cheaply.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from ticketing.calendar import Period, intervals, zone

_US = timedelta(microseconds=1)
# How far the table reaches at a time; a target of a million business minutes at 8 hours a
# week still fits in a few extensions. Beyond MAX_SPAN the hours are taken to never come.
_CHUNK = timedelta(days=120)
MAX_SPAN = timedelta(days=366 * 30)


class NoBusinessHours(ValueError):
    """The weekly hours never come (every day with hours is a holiday, far into the future)."""


def _micros(delta: timedelta) -> int:
    return delta // _US


class BusinessClock:
    """Business time under one policy. `periods` empty (with `tz_name` None) means 24/7."""

    def __init__(
        self,
        periods: Sequence[Period | dict[str, Any]] | None = None,
        tz_name: str | None = None,
        holidays: Iterable[date] = (),
    ) -> None:
        self._periods = list(periods or [])
        self._tz = zone(tz_name or "UTC")
        self._holidays = frozenset(holidays)
        self._always = not self._periods
        # The table: merged working intervals [starts[i], ends[i]) in UTC, and cum[i], the
        # business microseconds from the table's origin to starts[i].
        self._lo: datetime | None = None
        self._hi: datetime | None = None
        self._starts: list[datetime] = []
        self._ends: list[datetime] = []
        self._cum: list[int] = []
        self._cum_end: list[int] = []

    @property
    def always(self) -> bool:
        return self._always

    def add(self, start: datetime, minutes: float) -> datetime:
        """The instant when `minutes` business minutes have passed since `start`."""
        amount = _micros(timedelta(minutes=minutes))
        if amount <= 0:
            return start
        if self._always:
            return start + amount * _US
        self._cover(start, start + _CHUNK)
        while True:
            target = self._position(start) + amount
            if self._cum_end and self._cum_end[-1] >= target:
                j = bisect_left(self._cum_end, target)
                return self._starts[j] + (target - self._cum[j]) * _US
            assert self._hi is not None
            if self._hi - start > MAX_SPAN:
                raise NoBusinessHours("the business hours never come (holidays?)")
            self._cover(start, self._hi + _CHUNK)

    def minutes_between(self, start: datetime, end: datetime) -> float:
        """Business minutes from `start` to `end` (0 when `end` is not after `start`)."""
        return self.between(start, end) / timedelta(minutes=1)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from `start` to `end` (zero when `end` is not after `start`)."""
        if end <= start:
            return timedelta(0)
        if self._always:
            return end - start
        self._cover(start, end)
        return (self._position(end) - self._position(start)) * _US

    def _position(self, moment: datetime) -> int:
        """Business microseconds from the table's origin to `moment` (inside the table)."""
        i = bisect_right(self._starts, moment) - 1
        if i < 0:
            return 0
        inside = min(moment, self._ends[i]) - self._starts[i]
        return self._cum[i] + _micros(inside)

    def _cover(self, start: datetime, end: datetime) -> None:
        """Make the table reach from before `start` to after `end`."""
        if self._lo is not None and self._hi is not None and self._lo <= start and end <= self._hi:
            return
        margin = timedelta(days=2)
        lo = start - margin if self._lo is None else min(self._lo, start - margin)
        hi = end + margin if self._hi is None else max(self._hi, end)
        spans = sorted(intervals(self._periods, self._tz, lo, hi, self._holidays))
        starts: list[datetime] = []
        ends: list[datetime] = []
        for a, b in spans:  # shifts that touch or overlap count once
            if ends and a <= ends[-1]:
                ends[-1] = max(ends[-1], b)
            else:
                starts.append(a)
                ends.append(b)
        cum: list[int] = []
        cum_end: list[int] = []
        total = 0
        for a, b in zip(starts, ends, strict=True):
            cum.append(total)
            total += _micros(b - a)
            cum_end.append(total)
        self._lo, self._hi = lo, hi
        self._starts, self._ends, self._cum, self._cum_end = starts, ends, cum, cum_end
