"""The job worker: claims due jobs, runs them concurrently, retries, shuts down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ticketing.db import Database, on_after_commit
from ticketing.jobs import queue
from ticketing.jobs.listener import JobListener
from ticketing.jobs.models import JobStatus
from ticketing.jobs.queue import ClaimedJob, JobKind

log = logging.getLogger(__name__)

RECURRING_CHECK_SECONDS = 60.0


class LeaseLost(Exception):
    """Another worker took this job over (our lease expired): our transaction must roll back."""


class PermanentJobError(Exception):
    """Retrying cannot help (e.g. the row the job refers to is gone): fail the job now."""


@dataclass
class JobContext:
    job: ClaimedJob
    db: Database
    kind: JobKind
    finished: bool = field(default=False)

    async def finish(self, session: AsyncSession) -> None:
        """Mark the job done inside `session`: its effects and its completion commit together
        (and, for a recurring kind, the queuing of its next run)."""
        if not await queue.mark_done(session, self.job):
            raise LeaseLost(self.job.id)
        if self.kind.every_seconds is not None:
            queue.enqueue_next_run(session, self.kind)
        self.finished = True


JobHandler = Callable[[JobContext], Awaitable[None]]
# What a worker runs: each kind of job, with its retry policy, and its handler.
JobHandlers = Mapping[JobKind, JobHandler]

# Workers living in this process, woken at once when a transaction that enqueued jobs commits.
_local_workers: weakref.WeakSet[Worker] = weakref.WeakSet()


def _wake_local_workers(session: Session) -> None:
    if session.info.pop(queue.ENQUEUED_FLAG, False):
        for worker in list(_local_workers):
            worker.wake()


on_after_commit(_wake_local_workers)


class Worker:
    def __init__(
        self,
        db: Database,
        handlers: JobHandlers,
        *,
        concurrency: int = 16,
        poll_seconds: float = 1.0,
        lease_seconds: float = 120.0,
        job_timeout_seconds: float = 600.0,
        shutdown_grace_seconds: float = 10.0,
        name: str | None = None,
        listen: bool = True,
    ) -> None:
        self.db = db
        self.handlers: dict[str, tuple[JobKind, JobHandler]] = {
            kind.name: (kind, handler) for kind, handler in handlers.items()
        }
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.job_timeout_seconds = job_timeout_seconds
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._inflight: dict[asyncio.Task[None], ClaimedJob] = {}
        self._next_sweep = 0.0
        self._next_schedule_check = 0.0
        # On PostgreSQL, other processes' enqueues wake this worker at once (LISTEN/NOTIFY).
        self.listener = (
            JobListener(db.engine, self.wake) if listen and db.dialect == "postgresql" else None
        )
        _local_workers.add(self)

    def _sweep_due(self) -> bool:
        # Dead workers' exhausted jobs are failed every few seconds, not before every claim.
        now = time.monotonic()
        if now < self._next_sweep:
            return False
        self._next_sweep = now + min(5.0, self.lease_seconds / 3)
        return True

    async def _schedule_recurring(self) -> None:
        # At start, then every minute: a recurring job that failed for good is queued again.
        now = time.monotonic()
        if now < self._next_schedule_check:
            return
        self._next_schedule_check = now + RECURRING_CHECK_SECONDS
        try:
            await queue.schedule_recurring(self.db, [k for k, _ in self.handlers.values()])
        except Exception:
            log.exception("scheduling recurring jobs failed; retrying")

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Run until stop(); then in-flight jobs finish, or are released after the grace period."""
        log.info("worker started", extra={"worker": self.id, "concurrency": self.concurrency})
        heartbeat = asyncio.create_task(self._heartbeat())
        listening = asyncio.create_task(self.listener.run()) if self.listener else None
        try:
            while not self._stopping.is_set():
                self._wakeup.clear()
                await self._schedule_recurring()
                free = self.concurrency - len(self._inflight)
                claimed: list[ClaimedJob] = []
                if free > 0:
                    try:
                        claimed = await queue.claim_jobs(
                            self.db,
                            self.id,
                            free,
                            self.lease_seconds,
                            list(self.handlers),
                            sweep_expired=self._sweep_due(),
                        )
                    except Exception:
                        # The database may be restarting: keep polling rather than dying.
                        log.exception("claiming jobs failed; retrying")
                for job in claimed:
                    task = asyncio.create_task(self._run_job(job))
                    self._inflight[task] = job
                    task.add_done_callback(self._on_task_done)
                if len(claimed) == free and free > 0:
                    continue  # there may be more due work right now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.poll_seconds)
        finally:
            await self._shutdown()
            for background in (heartbeat, listening):
                if background is not None:
                    background.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await background
            log.info("worker stopped", extra={"worker": self.id})

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._wakeup.set()  # a slot is free

    async def _shutdown(self) -> None:
        if not self._inflight:
            return
        _done, pending = await asyncio.wait(
            list(self._inflight), timeout=self.shutdown_grace_seconds
        )
        for task in pending:
            task.cancel()
        for task in pending:
            job = self._inflight.get(task)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if job is not None:
                # The handler's transaction rolled back on cancel: hand the job back whole.
                with contextlib.suppress(Exception):
                    await queue.release(self.db, job)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            tokens = [job.lock_token for job in self._inflight.values()]
            try:
                await queue.extend_leases(self.db, tokens, self.lease_seconds)
            except Exception:
                log.exception("extending job leases failed")

    async def _run_job(self, job: ClaimedJob) -> None:
        await run_one(self.db, self.handlers, job, self.job_timeout_seconds)

    async def drain(self, max_rounds: int = 1000) -> int:
        """Run every job that is due now, one at a time, until none is left. For tests and tools."""
        ran = 0
        for _ in range(max_rounds):
            claimed = await queue.claim_jobs(
                self.db, self.id, 1, self.lease_seconds, list(self.handlers)
            )
            if not claimed:
                break
            await run_one(self.db, self.handlers, claimed[0], self.job_timeout_seconds)
            ran += 1
        return ran


async def run_one(
    db: Database,
    handlers: Mapping[str, tuple[JobKind, JobHandler]],
    job: ClaimedJob,
    timeout_seconds: float,
) -> None:
    timeout = timeout_seconds
    kind, handler = handlers.get(job.kind, (JobKind(job.kind), None))
    ctx = JobContext(job=job, db=db, kind=kind)
    extra: dict[str, Any] = {"job_id": job.id, "kind": job.kind, "attempt": job.attempts}
    started = time.monotonic()
    try:
        if handler is None:
            raise PermanentJobError(f"no handler for job kind {job.kind!r}")
        async with asyncio.timeout(timeout):
            await handler(ctx)
        if not ctx.finished:
            async with db.transaction() as session:
                await ctx.finish(session)
        log.info("job done", extra=extra | _elapsed_ms(started))
    except asyncio.CancelledError:
        raise
    except LeaseLost:
        log.warning("job lease lost; another worker owns it now", extra=extra)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, TimeoutError):
            error = f"job timed out after {timeout:g} s"
        if isinstance(exc, PermanentJobError):
            job = ClaimedJob(
                job.id, job.kind, job.payload, job.max_attempts, job.max_attempts, job.lock_token
            )
        try:
            status = await queue.mark_failed_attempt(
                db, job, error, kind.backoff_seconds(job.attempts)
            )
        except Exception:
            log.exception("could not record job failure; its lease will expire", extra=extra)
            return
        level = logging.ERROR if status == JobStatus.failed else logging.WARNING
        log.log(
            level,
            "job attempt failed: %s",
            error,
            extra=extra | {"status": status} | _elapsed_ms(started),
        )


def _elapsed_ms(started: float) -> dict[str, float]:
    return {"duration_ms": round((time.monotonic() - started) * 1000, 1)}
