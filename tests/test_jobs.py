"""The durable job queue and worker: leases, retries, failure, concurrency, shutdown."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from ticketing.db import Database, utcnow
from ticketing.jobs import queue
from ticketing.jobs.models import Job
from ticketing.jobs.queue import JobKind
from ticketing.jobs.worker import JobContext, Worker

from .conftest import drain


async def _enqueue(db: Database, kind: str, n: int = 1, max_attempts: int = 5) -> list[str]:
    async with db.transaction() as session:
        jobs = [
            queue.enqueue(session, JobKind(kind, max_attempts=max_attempts), {"n": i})
            for i in range(n)
        ]
        await session.flush()
        return [j.id for j in jobs]


async def _job(db: Database, job_id: str) -> Job:
    async with db.transaction() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def _make_due(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(update(Job).where(Job.status == "queued").values(run_after=utcnow()))


async def test_enqueue_is_part_of_the_callers_transaction(database_url):
    db = Database(database_url)
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                queue.enqueue(session, JobKind("noop"), {})
                raise RuntimeError("the caller fails")
        async with db.transaction() as session:
            assert await session.scalar(select(func.count()).select_from(Job)) == 0
    finally:
        await db.dispose()


async def test_failing_job_retries_with_backoff_then_fails_with_its_error(database_url):
    db = Database(database_url)
    calls = 0

    async def explode(ctx: JobContext) -> None:
        nonlocal calls
        calls += 1
        raise ValueError(f"boom {calls}")

    worker = Worker(db, {JobKind("explode"): explode})
    try:
        [job_id] = await _enqueue(db, "explode", max_attempts=3)
        assert await worker.drain() == 1
        job = await _job(db, job_id)
        assert job.status == "queued" and job.attempts == 1
        assert job.last_error == "ValueError: boom 1"
        delay = (job.run_after - utcnow()).total_seconds()
        assert 1.0 < delay < 3.0  # first backoff is about 2 s
        assert await worker.drain() == 0  # not due yet

        await _make_due(db)
        await worker.drain()
        job = await _job(db, job_id)
        assert job.attempts == 2 and (job.run_after - utcnow()).total_seconds() > 2.5

        await _make_due(db)
        await worker.drain()
        job = await _job(db, job_id)
        assert job.status == "failed" and job.attempts == 3
        assert job.last_error == "ValueError: boom 3"
        assert job.finished_at is not None
        await _make_due(db)
        assert await worker.drain() == 0
        assert calls == 3
    finally:
        await db.dispose()


async def test_expired_lease_is_claimed_again_and_the_old_owner_is_fenced(database_url):
    db = Database(database_url)
    try:
        [job_id] = await _enqueue(db, "work")
        [first] = await queue.claim_jobs(db, "dead-worker", 1, lease_seconds=0.3)
        assert await queue.claim_jobs(db, "other", 1, lease_seconds=30) == []  # leased
        await asyncio.sleep(0.4)
        [second] = await queue.claim_jobs(db, "other", 1, lease_seconds=30)
        assert second.id == job_id and second.attempts == 2
        # The first worker comes back to life: it must not be able to finish the job.
        async with db.transaction() as session:
            assert await queue.mark_done(session, first) is False
        async with db.transaction() as session:
            assert await queue.mark_done(session, second) is True
        assert (await _job(db, job_id)).status == "done"
    finally:
        await db.dispose()


async def test_lease_expiring_on_the_last_attempt_fails_the_job(database_url):
    db = Database(database_url)
    try:
        [job_id] = await _enqueue(db, "work", max_attempts=1)
        await queue.claim_jobs(db, "dead-worker", 1, lease_seconds=0.2)
        await asyncio.sleep(0.3)
        assert await queue.claim_jobs(db, "other", 1, lease_seconds=30) == []
        job = await _job(db, job_id)
        assert job.status == "failed" and "worker lost" in (job.last_error or "")
    finally:
        await db.dispose()


async def test_an_exhausted_job_is_never_claimed_between_sweeps(database_url):
    # Worker loops sweep dead workers' jobs every few seconds, not before every claim: a job
    # whose last attempt died with its worker must not run again in between.
    db = Database(database_url)
    try:
        [job_id] = await _enqueue(db, "work", max_attempts=1)
        await queue.claim_jobs(db, "dead-worker", 1, lease_seconds=0.2)
        await asyncio.sleep(0.3)
        assert await queue.claim_jobs(db, "other", 1, 30, sweep_expired=False) == []
        assert (await _job(db, job_id)).status == "running"  # until the sweep comes round
        assert await queue.claim_jobs(db, "other", 1, 30, sweep_expired=True) == []
        assert (await _job(db, job_id)).status == "failed"
    finally:
        await db.dispose()


async def test_two_workers_never_run_the_same_job_at_once(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrent claiming by separate workers is a PostgreSQL feature")
    n = 120
    running: set[str] = set()
    runs: list[str] = []
    overlaps: list[str] = []

    async def work(ctx: JobContext) -> None:
        if ctx.job.id in running:
            overlaps.append(ctx.job.id)
        running.add(ctx.job.id)
        runs.append(ctx.job.id)
        await asyncio.sleep(0.01)
        running.discard(ctx.job.id)

    # Separate engines, as separate processes would have.
    dbs = [Database(database_url), Database(database_url), Database(database_url)]
    try:
        ids = await _enqueue(dbs[0], "work", n)
        workers = [
            Worker(db, {JobKind("work"): work}, concurrency=8, poll_seconds=0.05) for db in dbs[1:]
        ]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        for _ in range(200):
            async with dbs[0].transaction() as session:
                done = await session.scalar(
                    select(func.count()).select_from(Job).where(Job.status == "done")
                )
            if done == n:
                break
            await asyncio.sleep(0.1)
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)
        assert overlaps == []
        assert sorted(runs) == sorted(ids)  # every job ran exactly once
    finally:
        for db in dbs:
            await db.dispose()


async def test_embedded_worker_is_woken_at_once_on_enqueue(database_url):
    db = Database(database_url)
    ran = asyncio.Event()

    async def work(ctx: JobContext) -> None:
        ran.set()

    # A poll interval far longer than the wait below: only the wake-up can explain a fast run.
    worker = Worker(db, {JobKind("work"): work}, poll_seconds=60)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.2)
        await _enqueue(db, "work")
        await asyncio.wait_for(ran.wait(), timeout=10)
    finally:
        worker.stop()
        await task
        await db.dispose()


async def test_graceful_shutdown_releases_unfinished_jobs(database_url):
    db = Database(database_url)
    started = asyncio.Event()

    async def slow(ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(30)

    worker = Worker(db, {JobKind("slow"): slow}, poll_seconds=0.05, shutdown_grace_seconds=0.2)
    try:
        [job_id] = await _enqueue(db, "slow")
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(started.wait(), timeout=10)
        worker.stop()
        await asyncio.wait_for(task, timeout=10)
        job = await _job(db, job_id)
        assert job.status == "queued" and job.attempts == 0 and job.locked_by is None
    finally:
        await db.dispose()


async def test_smtp_outage_delays_mail_but_never_loses_it(client, runtime, smtp):
    smtp.handler.fail_with = "451 4.3.0 Mail server temporarily unavailable"
    assert (
        await client.post("/auth/request-otp", json={"email": "a@example.com"})
    ).status_code == 202
    await drain(runtime)
    assert smtp.to("a@example.com") == []
    async with runtime.db.transaction() as session:
        job = (await session.scalars(select(Job).where(Job.kind == "send_email"))).one()
        assert job.status == "queued" and job.attempts == 1 and "451" in (job.last_error or "")

    smtp.handler.fail_with = None
    await _make_due(runtime.db)
    await drain(runtime)
    assert len(smtp.to("a@example.com")) == 1
    async with runtime.db.transaction() as session:
        job = (await session.scalars(select(Job).where(Job.kind == "send_email"))).one()
        assert job.status == "done"
        # The sign-in code does not stay in the database once delivered.
        assert "text" not in job.payload and "html" not in job.payload


async def test_retry_failed_puts_jobs_back(database_url):
    db = Database(database_url)

    async def explode(ctx: JobContext) -> None:
        raise RuntimeError("nope")

    try:
        [job_id] = await _enqueue(db, "x", max_attempts=1)
        await Worker(db, {JobKind("x"): explode}).drain()
        assert (await _job(db, job_id)).status == "failed"
        async with db.transaction() as session:
            assert await queue.retry_failed(session) == 1
        job = await _job(db, job_id)
        assert job.status == "queued" and job.attempts == 0
        assert job.run_after <= utcnow() + timedelta(seconds=1)
    finally:
        await db.dispose()
