"""What the API says about a job. Never the payload: email jobs carry message bodies and
sign-in codes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from ticketing.jobs.models import Job, JobStatus


class JobOut(BaseModel):
    id: str
    kind: str
    status: JobStatus
    attempts: int
    max_attempts: int
    last_error: str | None
    run_after: datetime
    created_at: datetime
    updated_at: datetime
    # The ticket the job is about, when its payload names one (triage, ticket mail).
    ticket_id: str | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        ticket_id = job.payload.get("ticket_id") if isinstance(job.payload, dict) else None
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            last_error=job.last_error,
            run_after=job.run_after,
            created_at=job.created_at,
            updated_at=job.updated_at,
            ticket_id=ticket_id if isinstance(ticket_id, str) and ticket_id else None,
        )


class RetriedOut(BaseModel):
    queued: int
