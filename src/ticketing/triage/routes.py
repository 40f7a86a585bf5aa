"""Admin endpoints of triage that learns: train, list and activate model versions, quality."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status

from ticketing.deps import AdminUser, RuntimeDep, SessionDep
from ticketing.responses import FIELD_ERRORS, FORBIDDEN, UNAUTHORIZED, conflict, not_found
from ticketing.triage import learning
from ticketing.triage.schemas import (
    ModelVersionOut,
    ModelVersionsOut,
    QualityOut,
    TrainQueuedOut,
)

router = APIRouter(prefix="/admin/triage", tags=["admin"], responses={**UNAUTHORIZED, **FORBIDDEN})
NO_VERSION = not_found("No such model version")


@router.post(
    "/train",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TrainQueuedOut,
    summary="Train the local model from the database (a job)",
)
async def train_model(_admin: AdminUser, session: SessionDep) -> TrainQueuedOut:
    """Queues a training job; its model becomes active only if it scores at least as well as
    the active one on held-out labels."""
    return TrainQueuedOut(queued=await learning.queue_training(session))


@router.get("/models", response_model=ModelVersionsOut)
async def list_models(_admin: AdminUser, session: SessionDep) -> ModelVersionsOut:
    versions = await learning.list_versions(session)
    return ModelVersionsOut(items=[ModelVersionOut(**asdict(v)) for v in versions])


@router.post(
    "/models/{version_id}/activate",
    response_model=ModelVersionOut,
    responses={**NO_VERSION, **conflict("The stored model does not load")},
)
async def activate_model(
    version_id: str, _admin: AdminUser, session: SessionDep, runtime: RuntimeDep
) -> ModelVersionOut:
    """Every process uses it within a minute; this one at its next analysis."""
    version = await learning.activate_version(session, version_id)
    runtime.models.expire()
    return ModelVersionOut(**asdict(version))


@router.get(
    "/quality", response_model=QualityOut, response_model_by_alias=True, responses=FIELD_ERRORS
)
async def triage_quality(
    _admin: AdminUser,
    session: SessionDep,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
) -> QualityOut:
    """Per provider, over tickets analysed in [from, to): how often staff corrected each
    field, the confusion of type (analysed vs final), and the active model's scores."""
    q = await learning.quality(session, from_, to)
    return QualityOut.model_validate(
        {
            "from_": q.start,
            "to": q.end,
            "providers": [asdict(p) for p in q.providers],
            "confusion": q.confusion,
            "active_model": q.active_model,
        }
    )
