"""Admin endpoints for the job queue: see jobs (failed ones above all) and retry them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from ticketing.deps import AdminUser, SessionDep
from ticketing.jobs import service
from ticketing.jobs.models import JobStatus
from ticketing.jobs.schemas import JobOut, RetriedOut
from ticketing.pagination import Order, Page, page_of
from ticketing.responses import BAD_CURSOR, FORBIDDEN, UNAUTHORIZED, conflict, not_found

router = APIRouter(prefix="/admin/jobs", tags=["admin"], responses={**UNAUTHORIZED, **FORBIDDEN})
NO_JOB = not_found("No such job")

Limit = Annotated[int, Query(ge=1, le=100)]


@router.get("", response_model=Page[JobOut], responses=BAD_CURSOR)
async def list_jobs(
    _admin: AdminUser,
    session: SessionDep,
    status: JobStatus | None = None,
    kind: Annotated[str | None, Query(max_length=50)] = None,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    order: Order = "newest",
) -> Page[JobOut]:
    rows = await service.list_jobs(
        session, status=status, kind=kind or None, limit=limit, cursor=cursor, order=order
    )
    items, next_cursor = page_of(list(rows), limit)
    return Page(items=[JobOut.of(job) for job in items], next_cursor=next_cursor)


@router.post(
    "/retry-failed",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetriedOut,
    summary="Retry every failed job",
)
async def retry_failed_jobs(_admin: AdminUser, session: SessionDep) -> RetriedOut:
    return RetriedOut(queued=await service.retry_all_failed(session))


@router.get("/{job_id}", response_model=JobOut, responses=NO_JOB)
async def get_job(job_id: str, _admin: AdminUser, session: SessionDep) -> JobOut:
    return JobOut.of(await service.get_job(session, job_id))


@router.post(
    "/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetriedOut,
    responses={**NO_JOB, **conflict("The job is not failed (queued, running or done)")},
)
async def retry_job(job_id: str, _admin: AdminUser, session: SessionDep) -> RetriedOut:
    return RetriedOut(queued=await service.retry_job(session, job_id))
