"""The admin triage endpoints' shapes: model versions and quality."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelVersionOut(BaseModel):
    id: str
    created_at: datetime
    labels: int
    scores: dict[str, Any]
    active: bool
    activated_at: datetime | None


class ModelVersionsOut(BaseModel):
    items: list[ModelVersionOut]


class TrainQueuedOut(BaseModel):
    queued: int  # 1, or 0 when a training job was already pending


class FieldCorrections(BaseModel):
    count: int  # tickets whose field staff changed
    rate: float  # count / tickets analysed


class ProviderQualityOut(BaseModel):
    provider: str
    analysed: int
    corrected: dict[str, FieldCorrections]  # priority, ticket_type, required_skills
    confusion: dict[str, dict[str, int]]  # analysed type -> final type -> tickets


class ActiveModelOut(BaseModel):
    id: str  # a version id, or "default" (the model shipped in the package)
    created_at: datetime | None
    labels: int | None
    scores: dict[str, Any] | None


class QualityOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    # `from` is a Python keyword: the attribute is from_, the JSON field "from".
    from_: datetime | None = Field(default=None, serialization_alias="from")
    to: datetime | None = None
    providers: list[ProviderQualityOut]
    confusion: dict[str, dict[str, int]]  # all providers together
    active_model: ActiveModelOut
