from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from ticketing.attachments.schemas import AttachmentOut
from ticketing.skills import MAX_SKILL_LENGTH, MAX_SKILLS, normalise_skills
from ticketing.tickets.models import EventKind
from ticketing.vocabulary import (
    SINGLE_LINE,
    SINGLE_LINE_OR_EMPTY,
    VISIBLE,
    AnalysisStatus,
    Priority,
    SlaStatus,
    Source,
    StrictModel,
    TicketStatus,
    TicketType,
)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


Title = Annotated[
    str, Field(min_length=1, max_length=200, pattern=SINGLE_LINE), AfterValidator(_not_blank)
]
Body = Annotated[
    str, Field(min_length=1, max_length=20000, pattern=VISIBLE), AfterValidator(_not_blank)
]
SkillList = Annotated[
    list[Annotated[str, Field(max_length=MAX_SKILL_LENGTH, pattern=SINGLE_LINE_OR_EMPTY)]],
    Field(max_length=MAX_SKILLS),
    AfterValidator(normalise_skills),
]


class TicketCreate(StrictModel):
    title: Title
    description: Body


class TicketOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    number: int
    title: str
    description: str
    source: Source
    status: TicketStatus
    priority: Priority | None
    ticket_type: TicketType | None
    required_skills: list[str]
    helpful_notes: str | None
    analysis_status: AnalysisStatus
    analysis_provider: str | None
    analysis_model: str | None
    analysis_error: str | None
    analyzed_at: datetime | None
    created_by: str
    assigned_to: str | None
    assigned_at: datetime | None
    assignment_reason: str | None
    # Staff-only (null for the user role): per field, 0..1; and the low-confidence flag.
    analysis_confidence: dict[str, float] | None = None
    needs_review: bool | None = None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    first_response_due_at: datetime | None = None
    first_responded_at: datetime | None = None
    resolution_due_at: datetime | None = None
    sla_status: SlaStatus | None = None
    sla_next_due_at: datetime | None = None  # the nearest pending due time (order=due)
    # What the viewer may do now (see tickets.policy): clients show these, never copy the rules.
    allowed_status: list[TicketStatus] = Field(default_factory=list)
    allowed_fields: list[str] = Field(default_factory=list)
    allowed_actions: list[str] = Field(default_factory=list)


class TicketUpdate(StrictModel):
    # Omitted means "leave as is"; null is refused (422) except for assigned_to (unassign), so
    # the schema does not offer null for the others.
    status: TicketStatus | SkipJsonSchema[None] = None
    priority: Priority | SkipJsonSchema[None] = None
    ticket_type: TicketType | SkipJsonSchema[None] = None
    required_skills: SkillList | SkipJsonSchema[None] = None
    assigned_to: str | None = Field(default=None, max_length=36)


class CommentCreate(StrictModel):
    body: Body
    internal: bool = False


class CommentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    ticket_id: str
    author_id: str
    body: str
    internal: bool
    source: Source
    # Filled in by the routes (one query for a page of comments).
    attachments: list[AttachmentOut] = Field(default_factory=list)
    created_at: datetime


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    ticket_id: str
    kind: EventKind
    actor_id: str | None
    data: dict[str, Any]
    internal: bool
    created_at: datetime


class QueuedOut(BaseModel):
    queued: int
