"""Weekly hours in a time zone: who is at work now (availability) and, for the SLA, the
business minutes between two instants. Shared by users/ and sla/, so the rules for a
"day/start/end" period live in one place."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, Field, model_validator

from ticketing.vocabulary import StrictModel

_HHMM = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


def _known_zone(name: str) -> str:
    # zoneinfo also accepts file-system paths of zone files; only the IANA names are offered.
    if name not in _zone_names():
        raise ValueError("must be an IANA time zone name such as Europe/Berlin")
    return name


_ZONES: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


TimeZoneName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_known_zone)]


class Period(StrictModel):
    """A weekly period: Monday = 0; end "24:00" is midnight; an end before the start runs past
    midnight into the next day (night shifts)."""

    day: int = Field(ge=0, le=6)
    start: str = Field(pattern=_HHMM)
    end: str = Field(pattern=_HHMM)

    @model_validator(mode="after")
    def _not_empty(self) -> Period:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        if self.start == "24:00":
            raise ValueError("start must be before 24:00")
        return self


WeeklyHours = Annotated[list[Period], Field(max_length=50)]


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")  # stored data predates validation: fail safe, not with a 500


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _as_dicts(periods: Iterable[Period | dict[str, Any]]) -> list[dict[str, Any]]:
    return [p.model_dump() if isinstance(p, Period) else p for p in periods]


def intervals(
    periods: Sequence[Period | dict[str, Any]],
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
    skip_days: frozenset[date] = frozenset(),
) -> Iterator[tuple[datetime, datetime]]:
    """The working intervals (UTC, in order, possibly overlapping at shift edges) that touch
    [start, end). Wall-clock times are resolved in `tz` day by day, so a DST switch shortens or
    lengthens the day it falls on. Days in `skip_days` (local dates) have no hours."""
    items = _as_dicts(periods)
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    day = first
    while day <= last:
        if day not in skip_days:
            for p in items:
                if p["day"] != day.weekday():
                    continue
                begin = _minutes(p["start"])
                finish = _minutes(p["end"])
                if finish <= begin:
                    finish += 24 * 60
                lo = _local(day, begin, tz)
                hi = _local(day, finish, tz)
                if hi > start and lo < end:
                    yield max(lo, start), min(hi, end)
        day += timedelta(days=1)


def _local(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    # Wall-clock arithmetic first, then the zone: a time in a DST gap or fold resolves the way
    # zoneinfo does (fold=0), and the day of a switch is an hour shorter or longer.
    wall = datetime.combine(day, time(0)) + timedelta(minutes=minutes)
    return wall.replace(tzinfo=tz).astimezone(UTC)


def is_within(periods: Sequence[Period | dict[str, Any]], tz: ZoneInfo, now: datetime) -> bool:
    """Whether `now` falls in one of the weekly periods; no periods means always."""
    if not periods:
        return True
    return any(True for _ in intervals(periods, tz, now, now + timedelta(microseconds=1)))
