"""The words every domain shares: roles, ticket states and kinds, and the rules for request
bodies and text fields. Domains import from here, never from each other for these."""

from __future__ import annotations

import re
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
    waiting = "waiting"  # on the requester
    resolved = "resolved"
    closed = "closed"


class Source(StrEnum):
    """Where a ticket or a comment came from."""

    web = "web"  # the web page or the API
    email = "email"


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


class SlaStatus(StrEnum):
    on_track = "on_track"
    at_risk = "at_risk"  # at least warning_ratio of a pending target's time used
    breached = "breached"  # a target passed unmet; stays
    met = "met"  # resolved with both targets met


class AnalysisStatus(StrEnum):
    pending = "pending"
    ai = "ai"
    fallback = "fallback"


# ---- request bodies -----------------------------------------------------------------------

# Text rules as regular expressions that mean the same in Python, in pydantic-core (Rust) and in
# JSON Schema (ECMA-262), so clients and schema-driven tests can read them.
#
# Invisible characters: format characters (zero-width spaces and joiners, direction marks and
# overrides, the BOM, soft hyphen, ...) and fillers that render as nothing.
_INVISIBLE = (
    r"\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
)
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_VISIBLE_CHAR = rf"[^\s{_CONTROL}{_INVISIBLE}]"
# Within one line: no control characters (CR, LF, TAB, ...) and no line or paragraph separator.
_LINE_CHAR = rf"[^{_CONTROL}\u2028\u2029]"
# Multi-line text (descriptions, comments): at least one visible character somewhere.
VISIBLE = _VISIBLE_CHAR
# Single-line text (titles, names, skills): one line with at least one visible character.
SINGLE_LINE = rf"^{_LINE_CHAR}*{_VISIBLE_CHAR}{_LINE_CHAR}*$"
# The same, or empty (list items that normalisation drops when blank).
SINGLE_LINE_OR_EMPTY = rf"^(?:{_LINE_CHAR}*{_VISIBLE_CHAR}{_LINE_CHAR}*)?$"


_SURROGATE = re.compile("[\ud800-\udfff]")


class StrictModel(BaseModel):
    """Request bodies: unknown fields are errors, strings are trimmed and may not hold NUL."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        # PostgreSQL cannot store NUL in text, and no database stores a lone UTF-16 surrogate
        # (JSON's "\ud800" escape decodes to one): refuse both here, not at the database.
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str):
                if "\x00" in item:
                    raise ValueError("must not contain NUL characters")
                if _SURROGATE.search(item):
                    raise ValueError("must be valid Unicode text (no lone surrogates)")
        return value


def _normalise_email(value: str) -> str:
    return value.strip().lower()


Email = Annotated[EmailStr, AfterValidator(_normalise_email)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=SINGLE_LINE)]
