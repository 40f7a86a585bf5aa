"""Jobs as admins see them: list the queue's jobs and put failed ones back in the queue.

Services never commit: the caller's unit of work does.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.errors import Conflict, NotFound
from ticketing.jobs import queue
from ticketing.jobs import repository as repo
from ticketing.jobs.models import Job, JobStatus
from ticketing.pagination import Order

NOT_FOUND = "No such job"


async def list_jobs(
    session: AsyncSession,
    *,
    status: JobStatus | None = None,
    kind: str | None = None,
    limit: int,
    cursor: str | None,
    order: Order = "newest",
) -> Sequence[Job]:
    """One page of jobs (limit + 1 rows, for `page_of`), filtered by status and kind."""
    return await repo.list_page(
        session, status=status, kind=kind, limit=limit, cursor=cursor, order=order
    )


async def get_job(session: AsyncSession, job_id: str) -> Job:
    """The job, or NotFound."""
    job = await repo.get(session, job_id)
    if job is None:
        raise NotFound(NOT_FOUND)
    return job


async def retry_job(session: AsyncSession, job_id: str) -> int:
    """Queue a failed job again, due now, with a fresh attempt budget. Returns 1.

    NotFound if there is no such job; Conflict if it is not failed (queued, running or done).
    The status check and the change are one UPDATE, so two admins retrying the same job at
    once queue it once: the second gets the Conflict.
    """
    if await queue.retry_failed(session, [job_id]):
        return 1
    job = await get_job(session, job_id)
    raise Conflict(f"Only failed jobs can be retried; this job is {job.status.value}")


async def retry_all_failed(session: AsyncSession) -> int:
    """Queue every failed job again (see `retry_job`). Returns how many."""
    return await queue.retry_failed(session)
