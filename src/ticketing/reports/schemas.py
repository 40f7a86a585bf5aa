"""The summary report's JSON (contract: "Reports")."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Backlog(BaseModel):
    """Now, whatever the period. `at_risk`, `breached` and `by_priority` go beyond the
    contract's four figures: the dashboard shows them."""

    open: int
    in_progress: int
    waiting: int
    unassigned: int
    at_risk: int = Field(description="backlog tickets whose SLA is at risk now")
    breached: int = Field(description="backlog tickets whose SLA is breached")
    by_priority: dict[str, int] = Field(description="backlog per priority ('none': not set)")


class Durations(BaseModel):
    median: float | None
    p90: float | None


class Sla(BaseModel):
    met: int
    breached: int
    compliance: float | None = Field(description="met / (met + breached); null when both are 0")


class AssigneeFigures(BaseModel):
    user_id: str
    name: str
    open: int
    resolved: int
    breached: int


class Corrected(BaseModel):
    priority: int
    ticket_type: int
    required_skills: int


class AiFigures(BaseModel):
    analysed: int
    fallback: int
    corrected: Corrected


class Summary(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime = Field(description="the end of the period (exclusive)")
    created: int
    resolved: int
    backlog: Backlog
    first_response_minutes: Durations
    resolution_minutes: Durations
    sla: Sla
    by_priority: dict[str, int]
    by_type: dict[str, int]
    by_assignee: list[AssigneeFigures]
    ai: AiFigures
