from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

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
# "Not blank", as a pattern clients and schema-driven tests can read: at least one character
# that is neither white space nor a control character, with the same meaning in Python, in
# pydantic-core (Rust) and in JSON Schema (ECMA-262) regular expressions.
VISIBLE = r"[^\s\x00-\x1f\x7f-\x9f\ufeff]"
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=VISIBLE)]


class StrictModel(BaseModel):
    """Request bodies: unknown fields are errors, strings are trimmed and may not hold NUL."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL cannot store NUL in text; refuse it here rather than fail at the database.
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, str) and "\x00" in item for item in items):
            raise ValueError("must not contain NUL characters")
        return value


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
