"""Who can take a ticket now: active, not away, within their working hours."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from ticketing.calendar import Period, is_within, zone


class Availability(StrEnum):
    """Why someone can or cannot take a ticket now (the first reason that applies)."""

    available = "available"
    inactive = "inactive"
    away = "away"
    off_shift = "off shift"


class AvailabilityFields(Protocol):
    """What availability is decided from: a User row or its API shape."""

    @property
    def is_active(self) -> bool: ...
    @property
    def away_until(self) -> datetime | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def working_hours(self) -> Sequence[Period | dict[str, Any]]: ...


def availability(person: AvailabilityFields, now: datetime) -> Availability:
    if not person.is_active:
        return Availability.inactive
    if person.away_until is not None and person.away_until > now:
        return Availability.away
    if not is_within(person.working_hours or [], zone(person.timezone), now):
        return Availability.off_shift
    return Availability.available


def is_available(person: AvailabilityFields, now: datetime) -> bool:
    return availability(person, now) == Availability.available
