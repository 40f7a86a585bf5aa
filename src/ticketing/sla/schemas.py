"""The SLA policy as the API reads and replaces it (GET/PUT /admin/sla)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from ticketing.calendar import Period, TimeZoneName
from ticketing.vocabulary import Priority, StrictModel

# A cap that keeps every due time far inside what a datetime can hold (about 1.9 years of
# round-the-clock minutes); the contract asks for whole numbers >= 1.
MAX_MINUTES = 1_000_000

Minutes = Annotated[int, Field(ge=1, le=MAX_MINUTES, strict=True)]


class Target(StrictModel):
    first_response_minutes: Minutes
    resolution_minutes: Minutes


class BusinessHours(StrictModel):
    timezone: TimeZoneName
    days: list[Period] = Field(min_length=1, max_length=50)


def _iso_date_text(value: object) -> object:
    # Dates as the contract writes them, "2026-12-25": not numbers (timestamps) or datetimes.
    # (Code may pass a date; JSON cannot.)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
Holiday = Annotated[date, BeforeValidator(_iso_date_text)]


def _sorted_unique(days: list[date]) -> list[date]:
    return sorted(set(days))


class SlaPolicy(StrictModel):
    """The whole policy. A priority left out of `policies` has no SLA; `business_hours` null
    means the clocks run round the clock (holidays then do not apply)."""

    policies: dict[Priority, Target]
    business_hours: BusinessHours | None = None
    holidays: Annotated[
        list[Holiday],
        Field(max_length=1000),
        AfterValidator(_sorted_unique),
    ] = Field(default_factory=list)
    warning_ratio: float = Field(default=0.8, gt=0, lt=1)


def default_policy() -> SlaPolicy:
    """The contract's defaults: what GET /admin/sla answers before any PUT."""
    return SlaPolicy(
        policies={
            Priority.urgent: Target(first_response_minutes=60, resolution_minutes=240),
            Priority.high: Target(first_response_minutes=240, resolution_minutes=1440),
            Priority.medium: Target(first_response_minutes=480, resolution_minutes=4320),
            Priority.low: Target(first_response_minutes=1440, resolution_minutes=10080),
        },
        business_hours=None,
        holidays=[],
        warning_ratio=0.8,
    )
