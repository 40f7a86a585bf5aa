from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, computed_field
from pydantic.json_schema import SkipJsonSchema

from ticketing.calendar import Period, TimeZoneName, WeeklyHours
from ticketing.db import utcnow
from ticketing.skills import MAX_SKILL_LENGTH, normalise_skills
from ticketing.users.availability import is_available
from ticketing.vocabulary import SINGLE_LINE_OR_EMPTY, Email, Name, Role, StrictModel

Skills = Annotated[
    list[Annotated[str, Field(max_length=MAX_SKILL_LENGTH, pattern=SINGLE_LINE_OR_EMPTY)]],
    Field(max_length=50),
    AfterValidator(normalise_skills),
]


def _in_utc(value: datetime) -> datetime:
    # An offset that pushes the instant past year 9999 (or before year 1) cannot be stored.
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("must be a representable date and time") from exc


AwayUntil = Annotated[AwareDatetime, AfterValidator(_in_utc)]
# At most this many open tickets at once; null is no cap, 0 takes no new tickets.
MaxOpenTickets = Annotated[int, Field(ge=0, le=100_000, strict=True)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    name: str | None
    role: Role
    skills: list[str]
    is_active: bool
    created_at: datetime
    updated_at: datetime
    timezone: str
    working_hours: list[Period]
    away_until: datetime | None
    max_open_tickets: int | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def available(self) -> bool:
        """Active, not away, and within their working hours now."""
        return is_available(self, utcnow())


class UserCreate(StrictModel):
    email: Email
    name: Name | None = None
    role: Role = Role.user
    skills: Skills = Field(default_factory=list)


class AvailabilityUpdate(StrictModel):
    """What everyone may set of their own (PATCH /auth/me), and admins of anyone's."""

    name: Name | None = None
    # null is refused (422) for these, so the schema does not offer it.
    timezone: TimeZoneName | SkipJsonSchema[None] = None
    working_hours: WeeklyHours | SkipJsonSchema[None] = None
    # null: back (not away).
    away_until: AwayUntil | None = None


class UserUpdate(AvailabilityUpdate):
    # null is refused (422) for role and is_active, so the schema does not offer it.
    role: Role | SkipJsonSchema[None] = None
    skills: Skills | None = None
    is_active: bool | SkipJsonSchema[None] = None
    # null: no cap.
    max_open_tickets: MaxOpenTickets | None = None
