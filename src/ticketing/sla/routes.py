"""GET/PUT /admin/sla: the SLA policy."""

from __future__ import annotations

from fastapi import APIRouter

from ticketing.deps import AdminUser, SessionDep
from ticketing.responses import FIELD_ERRORS, FORBIDDEN, UNAUTHORIZED
from ticketing.sla import service
from ticketing.sla.schemas import SlaPolicy

router = APIRouter(prefix="/admin/sla", tags=["admin"], responses={**UNAUTHORIZED, **FORBIDDEN})


@router.get("", response_model=SlaPolicy)
async def get_sla(_admin: AdminUser, session: SessionDep) -> SlaPolicy:
    return await service.get_policy(session)


@router.put("", response_model=SlaPolicy, responses=FIELD_ERRORS)
async def put_sla(body: SlaPolicy, admin: AdminUser, session: SessionDep) -> SlaPolicy:
    """Replace the policy; open tickets' due times follow in the background (a job)."""
    return await service.put_policy(session, admin, body)
