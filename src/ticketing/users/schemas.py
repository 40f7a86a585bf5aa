from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from ticketing.skills import normalise_skills
from ticketing.users.models import Role


def _normalise_email(value: str) -> str:
    return value.strip().lower()


Email = Annotated[EmailStr, AfterValidator(_normalise_email)]
Skills = Annotated[
    list[Annotated[str, Field(max_length=50)]],
    Field(max_length=50),
    AfterValidator(normalise_skills),
]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


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


class UserCreate(StrictModel):
    email: Email
    name: Name | None = None
    role: Role = Role.user
    skills: Skills = Field(default_factory=list)


class UserUpdate(StrictModel):
    name: Name | None = None
    role: Role | None = None
    skills: Skills | None = None
    is_active: bool | None = None
