from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from ticketing.skills import MAX_SKILL_LENGTH, normalise_skills
from ticketing.vocabulary import SINGLE_LINE_OR_EMPTY, Email, Name, Role, StrictModel

Skills = Annotated[
    list[Annotated[str, Field(max_length=MAX_SKILL_LENGTH, pattern=SINGLE_LINE_OR_EMPTY)]],
    Field(max_length=50),
    AfterValidator(normalise_skills),
]


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
    # null is refused (422) for role and is_active, so the schema does not offer it.
    role: Role | SkipJsonSchema[None] = None
    skills: Skills | None = None
    is_active: bool | SkipJsonSchema[None] = None
