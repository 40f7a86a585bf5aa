"""The durable job queue: enqueue in the caller's transaction, lease, finish or retry."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ticketing.db import Database, lock_for_transaction, new_id, on_before_commit, utcnow
from ticketing.jobs.models import Job, JobStatus

ERROR_MAX_CHARS = 4000
ENQUEUED_FLAG = "jobs_enqueued"
# PostgreSQL: a transaction that enqueued sends one NOTIFY on this channel, delivered at its
# commit, so idle workers in other processes claim at once instead of at their next poll.
NOTIFY_CHANNEL = "ticketing_jobs"
# Set in a Database's session_info (JOB_NOTIFY=false) to send no NOTIFY.
NOTIFY_OFF = "jobs_notify_off"


def notify_sender() -> str:
    """The payload of this process's notifications: its listener skips them (the after-commit
    hook has already woken this process's workers)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _notify_workers(session: Session) -> None:
    # Once per committing transaction that enqueued; the flag itself is read after the commit.
    if not session.info.get(ENQUEUED_FLAG) or session.info.get(NOTIFY_OFF):
        return
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text("SELECT pg_notify(:channel, :sender)"),
        {"channel": NOTIFY_CHANNEL, "sender": notify_sender()},
    )


on_before_commit(_notify_workers)


@dataclass(frozen=True)
class JobKind:
    """A kind of job and its retry policy, declared by the domain that queues it."""

    name: str
    max_attempts: int = 5
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 15 * 60.0
    # Recurring kinds run again this many seconds after each run (see `schedule_recurring`).
    every_seconds: float | None = None

    @property
    def recurring_key(self) -> str:
        return f"recurring:{self.name}"

    def backoff_seconds(self, attempts: int) -> float:
        """Exponential backoff with jitter after `attempts` failures: ~base, 2x base, ..."""
        delay = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** max(0, attempts - 1))
        return float(delay * random.uniform(0.8, 1.2))


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    lock_token: str


def enqueue(
    session: AsyncSession,
    kind: JobKind,
    payload: dict[str, Any],
    *,
    delay_seconds: float = 0.0,
    key: str | None = None,
) -> Job:
    """Add a job to the caller's transaction: it exists if and only if the caller commits."""
    job = Job(
        kind=kind.name,
        payload=payload,
        key=key,
        max_attempts=kind.max_attempts,
        run_after=utcnow() + timedelta(seconds=delay_seconds),
    )
    session.add(job)
    # Read by the after-commit hook that wakes workers in this process.
    session.info[ENQUEUED_FLAG] = True
    return job


async def replace_queued(
    session: AsyncSession,
    kind: JobKind,
    entries: Sequence[tuple[str, dict[str, Any], datetime | None]],
) -> None:
    """Queue one job per `(key, payload, run_at)` (None: now), replacing any job with that key
    that is still queued: a timer that moved is re-planned, not doubled. A job with the key
    that is running now is left alone (it finishes what it started)."""
    await cancel_queued(session, [key for key, _, _ in entries])
    await enqueue_many(session, kind, entries)


async def enqueue_many(
    session: AsyncSession,
    kind: JobKind,
    entries: Sequence[tuple[str, dict[str, Any], datetime | None]],
) -> None:
    """Queue one job per `(key, payload, run_at)` (None: now) in the caller's transaction."""
    if not entries:
        return
    now = utcnow()
    # One multi-row INSERT rather than an ORM object per job: a policy change re-plans the
    # timers of every open ticket.
    await session.execute(
        insert(Job),
        [
            {
                "id": new_id(),
                "kind": kind.name,
                "payload": payload,
                "key": key,
                "status": JobStatus.queued,
                "attempts": 0,
                "max_attempts": kind.max_attempts,
                "run_after": run_at or now,
                "created_at": now,
                "updated_at": now,
            }
            for key, payload, run_at in entries
        ],
    )
    session.info[ENQUEUED_FLAG] = True


async def cancel_queued(session: AsyncSession, keys: Sequence[str], batch: int = 500) -> None:
    """Delete the queued (not yet running) jobs with these keys."""
    for i in range(0, len(keys), batch):
        await session.execute(
            delete(Job)
            .where(Job.key.in_(keys[i : i + batch]), Job.status == JobStatus.queued)
            .execution_options(synchronize_session=False)
        )


def enqueue_next_run(session: AsyncSession, kind: JobKind) -> None:
    """Queue a recurring kind's next run, `every_seconds` from now (the caller's transaction)."""
    assert kind.every_seconds is not None
    enqueue(session, kind, {}, delay_seconds=kind.every_seconds, key=kind.recurring_key)


async def schedule_recurring(db: Database, kinds: Iterable[JobKind]) -> None:
    """Make sure each recurring kind has its next run queued.

    A run queues the next one as it finishes; this covers the first start and a run that
    failed for good. Safe with many workers: one at a time decides, under a lock.
    """
    recurring = [k for k in kinds if k.every_seconds is not None]
    if not recurring:
        return
    now = utcnow()
    async with db.transaction() as session:
        await lock_for_transaction(session, "jobs:recurring")
        for kind in recurring:
            assert kind.every_seconds is not None
            if await has_pending(session, kind.recurring_key):
                continue
            last = await session.scalar(
                select(func.max(Job.finished_at)).where(Job.key == kind.recurring_key)
            )
            due = last + timedelta(seconds=kind.every_seconds) if last else now
            delay = max(0.0, (due - now).total_seconds())
            enqueue(session, kind, {}, delay_seconds=delay, key=kind.recurring_key)


async def delete_done_before(db: Database, before: datetime, batch: int = 5000) -> int:
    """Delete jobs that finished successfully before `before`, in batches; returns how many."""
    deleted = 0
    while True:
        async with db.transaction() as session:
            ids = select(Job.id).where(Job.status == JobStatus.done, Job.finished_at < before)
            result = await session.execute(
                delete(Job).where(Job.id.in_(ids.limit(batch).scalar_subquery()))
            )
        count = int(result.rowcount)  # type: ignore[attr-defined]
        deleted += count
        if count < batch:
            return deleted


async def has_pending(session: AsyncSession, key: str) -> bool:
    """Is a job with this key queued or running?"""
    stmt = select(Job.id).where(
        Job.key == key, Job.status.in_([JobStatus.queued, JobStatus.running])
    )
    return (await session.scalars(stmt.limit(1))).first() is not None


async def has_queued(session: AsyncSession, key: str) -> bool:
    """Is a job with this key waiting to start (queued, not yet claimed)?"""
    stmt = select(Job.id).where(Job.key == key, Job.status == JobStatus.queued)
    return (await session.scalars(stmt.limit(1))).first() is not None


def _claimable(now: datetime) -> Any:
    return or_(
        and_(Job.status == JobStatus.queued, Job.run_after <= now),
        # A running job whose lease ran out belongs to a worker that died. Unless that was its
        # last attempt: the sweep (_fail_exhausted_leases) fails those, and it runs on its own
        # schedule, so the claim must not take them in between.
        and_(
            Job.status == JobStatus.running,
            Job.locked_until < now,
            Job.attempts < Job.max_attempts,
        ),
    )


async def claim_jobs(
    db: Database,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    kinds: Sequence[str] | None = None,
    *,
    keys: Sequence[str] | None = None,
    sweep_expired: bool = True,
) -> list[ClaimedJob]:
    """Atomically take up to `limit` due jobs, leasing them to `worker_id`: one statement.

    `sweep_expired` first fails the jobs whose worker died on their last attempt; a worker
    loop does that on its own schedule rather than before every claim.
    """
    if limit <= 0:
        return []
    now = utcnow()
    pick = select(Job.id).where(_claimable(now)).order_by(Job.run_after).limit(limit)
    if kinds:
        pick = pick.where(Job.kind.in_(kinds))
    if keys is not None:
        pick = pick.where(Job.key.in_(keys))
    # SKIP LOCKED lets many PostgreSQL workers claim side by side without waiting on each
    # other; SQLite serialises writers anyway (BEGIN IMMEDIATE) and ignores the clause.
    pick = pick.with_for_update(skip_locked=True)
    # Pick and lease in one statement. A materialised CTE, not `id IN (subquery)`: with the
    # latter PostgreSQL may re-run the LIMIT ... SKIP LOCKED subquery and lease more rows
    # than asked for.
    picked = pick.cte("picked").prefix_with("MATERIALIZED")
    token = f"{worker_id}:{random.getrandbits(64):016x}"
    lease = (
        update(Job)
        .where(Job.id == picked.c.id, _claimable(now))
        .values(
            status=JobStatus.running,
            attempts=Job.attempts + 1,
            locked_by=token,
            locked_until=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
        .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts)
    )
    if db.dialect == "postgresql" and not sweep_expired:
        # The one statement is atomic on its own: run it outside BEGIN ... COMMIT, one round
        # trip instead of three (a worker claims after every job it finishes, and on every
        # notification).
        async with db.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = (await auto.execute(lease)).all()
    else:
        async with db.transaction() as session:
            if sweep_expired:
                await _fail_exhausted_leases(session, now)
            rows = (await session.execute(lease.execution_options(synchronize_session=False))).all()
    return [ClaimedJob(r.id, r.kind, r.payload, r.attempts, r.max_attempts, token) for r in rows]


async def _fail_exhausted_leases(session: AsyncSession, now: datetime) -> None:
    # A job whose worker died on its last attempt must end visibly, not run forever.
    await session.execute(
        update(Job)
        .where(
            Job.status == JobStatus.running,
            Job.locked_until < now,
            Job.attempts >= Job.max_attempts,
        )
        .values(
            status=JobStatus.failed,
            last_error=func.coalesce(Job.last_error, "") + "worker lost during last attempt",
            locked_by=None,
            locked_until=None,
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


async def extend_leases(db: Database, tokens: Sequence[str], lease_seconds: float) -> None:
    """Heartbeat: keep the leases of jobs that are still running in this worker."""
    if not tokens:
        return
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            update(Job)
            .where(Job.locked_by.in_(tokens), Job.status == JobStatus.running)
            .values(locked_until=now + timedelta(seconds=lease_seconds))
        )


async def mark_done(session: AsyncSession, job: ClaimedJob) -> bool:
    """Finish a job inside the handler's own transaction. False if the lease was lost."""
    now = utcnow()
    result = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.locked_by == job.lock_token)
        .values(
            status=JobStatus.done,
            locked_by=None,
            locked_until=None,
            finished_at=now,
            updated_at=now,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_failed_attempt(
    db: Database, job: ClaimedJob, error: str, backoff_seconds: float
) -> JobStatus:
    """Record a failed attempt: retry after `backoff_seconds`, or fail for good if that was the
    last attempt. Returns the job's new status."""
    now = utcnow()
    final = job.attempts >= job.max_attempts
    values: dict[str, Any] = {
        "last_error": error[:ERROR_MAX_CHARS],
        "locked_by": None,
        "locked_until": None,
        "updated_at": now,
    }
    if final:
        values |= {"status": JobStatus.failed, "finished_at": now}
    else:
        values |= {
            "status": JobStatus.queued,
            "run_after": now + timedelta(seconds=backoff_seconds),
        }
    async with db.transaction() as session:
        await session.execute(
            update(Job).where(Job.id == job.id, Job.locked_by == job.lock_token).values(**values)
        )
    return JobStatus.failed if final else JobStatus.queued


async def release(db: Database, job: ClaimedJob) -> None:
    """Hand a claimed job back untouched (graceful shutdown); its attempt is refunded."""
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            update(Job)
            .where(Job.id == job.id, Job.locked_by == job.lock_token)
            .values(
                status=JobStatus.queued,
                attempts=Job.attempts - 1,
                locked_by=None,
                locked_until=None,
                run_after=now,
                updated_at=now,
            )
        )


async def replace_payload(session: AsyncSession, job_id: str, payload: dict[str, Any]) -> None:
    """Overwrite a job's payload (to drop secrets it no longer needs)."""
    await session.execute(update(Job).where(Job.id == job_id).values(payload=payload))


async def last_error(db: Database, job_id: str) -> str | None:
    async with db.transaction() as session:
        return await session.scalar(select(Job.last_error).where(Job.id == job_id))


async def retry_failed(session: AsyncSession, job_ids: Sequence[str] | None = None) -> int:
    """Put failed jobs (all, or those of `job_ids` that are failed) back in the queue, due now,
    with a fresh attempt budget: attempts start again from 0 up to the job's `max_attempts`.
    `last_error` is kept until the next attempt replaces it, so the reason stays visible while
    the job waits. Returns how many were queued again; jobs in any other status are left alone.
    """
    now = utcnow()
    stmt = update(Job).where(Job.status == JobStatus.failed)
    if job_ids is not None:
        stmt = stmt.where(Job.id.in_(job_ids))
    result = await session.execute(
        stmt.values(
            status=JobStatus.queued,
            attempts=0,
            run_after=now,
            locked_by=None,
            locked_until=None,
            finished_at=None,
            updated_at=now,
        )
    )
    queued = int(result.rowcount)  # type: ignore[attr-defined]
    if queued:
        session.info[ENQUEUED_FLAG] = True  # wake this process's worker once the caller commits
    return queued
