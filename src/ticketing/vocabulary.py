"""The words every domain shares: roles, ticket states and kinds, and the rules for request
bodies and text fields. Domains import from here, never from each other for these."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, field_validator


class Role(StrEnum):
    user = "user"
    moderator = "moderator"
    admin = "admin"


STAFF_ROLES = frozenset({Role.moderator, Role.admin})


class TicketStatus(StrEnum):
    open = "open"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"


class Priority(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    urgent = "urgent"


class TicketType(StrEnum):
    bug = "bug"
    feature = "feature"
    support = "support"
    technical = "technical"
    other = "other"


class AnalysisStatus(StrEnum):
    pending = "pending"
    ai = "ai"
    fallback = "fallback"


# ---- request bodies -----------------------------------------------------------------------

# "Not blank", as a pattern clients and schema-driven tests can read: at least one character
# that is neither white space nor a control character, with the same meaning in Python, in
# pydantic-core (Rust) and in JSON Schema (ECMA-262) regular expressions.
VISIBLE = r"[^\s\x00-\x1f\x7f-\x9f\ufeff]"


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


def _normalise_email(value: str) -> str:
    return value.strip().lower()


Email = Annotated[EmailStr, AfterValidator(_normalise_email)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=VISIBLE)]
