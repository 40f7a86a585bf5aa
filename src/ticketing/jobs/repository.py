"""The job queries of the admin view: list and look up jobs.

The queue's own state changes (claim, finish, fail, retry) live in `ticketing.jobs.queue`, the
one place that moves a job from one status to another.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.jobs.models import Job, JobStatus
from ticketing.pagination import Order, paginate


async def get(session: AsyncSession, job_id: str) -> Job | None:
    return (await session.scalars(select(Job).where(Job.id == job_id))).first()


async def list_page(
    session: AsyncSession,
    *,
    status: JobStatus | None,
    kind: str | None,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Sequence[Job]:
    """One page of jobs (limit + 1 rows, for `page_of`), newest first unless `order` says."""
    stmt = select(Job)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    stmt = paginate(stmt, Job.created_at, Job.id, limit=limit, cursor=cursor, order=order)
    return (await session.scalars(stmt)).all()
