"""Workers on PostgreSQL are woken by LISTEN/NOTIFY: a job queued by one process starts in
another at once, not at its next poll; the listening connection comes back when it is cut."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select

from ticketing.config import Settings
from ticketing.db import Database
from ticketing.jobs import queue
from ticketing.jobs.models import Job
from ticketing.notifications.senders import OutgoingEmail
from ticketing.notifications.service import queue_email
from ticketing.runtime import build_runtime

from .conftest import make_settings
from .smtp_server import SmtpTestServer

# Far longer than any wait below: only a notification can explain a job started within it.
POLL_SECONDS = 30
PICKED_UP_WITHIN = 15.0


@pytest.fixture
def pg_url(postgres_url: str | None) -> Iterator[str]:
    if postgres_url is None:
        pytest.skip("PostgreSQL is not reachable (set REQUIRE_POSTGRES=1 to fail instead)")

    async def empty_jobs() -> None:
        conn = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
        try:
            await conn.execute("TRUNCATE jobs")
        finally:
            await conn.close()

    asyncio.run(empty_jobs())
    yield postgres_url


def _raw_dsn(url: str) -> str:
    return url.replace("+asyncpg", "")


async def _listener_pids(url: str) -> list[int]:
    """Backends of this test run's own database that are LISTENing for jobs."""
    conn = await asyncpg.connect(_raw_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'"
        )
    finally:
        await conn.close()
    return [r["pid"] for r in rows]


async def _wait_for_worker_connection(url: str) -> None:
    """Until a worker that does not listen has connected (made its first claims)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conn = await asyncpg.connect(_raw_dsn(url))
        try:
            others = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        if others:
            await asyncio.sleep(2.0)  # its first round of claims ends, it waits for the poll
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the worker never connected")


async def _wait_for_listener(url: str, other_than: int | None = None) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = [p for p in await _listener_pids(url) if p != other_than]
        if pids:
            # Let the worker's wake-up on (re)connect run its claim and go idle.
            await asyncio.sleep(1.0)
            return pids[0]
        await asyncio.sleep(0.1)
    raise AssertionError("the worker never started listening")


async def _queue_mail(db: Database, to: str) -> float:
    async with db.transaction() as session:
        queue_email(session, OutgoingEmail(to=to, subject="hello", text="hi", html="<p>hi</p>"))
    return time.monotonic()


def _worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    return (
        os.environ
        | {
            "DATABASE_URL": settings.database_url,
            "SECRET_KEY": settings.jwt_key,
            "AI_PROVIDER": "local",
            "EMAIL_BACKEND": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(settings.smtp_port),
            "SMTP_TLS": "none",
            "SMTP_USER": settings.smtp_user or "",
            "SMTP_PASSWORD": settings.smtp_password or "",
            "WORKER_POLL_SECONDS": str(POLL_SECONDS),
            "LOG_LEVEL": "WARNING",
        }
        | extra
    )


@pytest.fixture
async def sender_db(pg_url: str, smtp: SmtpTestServer) -> AsyncIterator[Database]:
    """The enqueuing side, in this test process (the worker is another process)."""
    runtime = build_runtime(make_settings(pg_url, smtp.port))
    yield runtime.db
    await runtime.close()


def _start_worker(settings: Settings, tmp_path: Path, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ticketing", "worker"],
        env=_worker_env(settings, **extra),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def test_another_process_starts_the_job_at_once(
    pg_url: str, smtp: SmtpTestServer, sender_db: Database, tmp_path: Path
) -> None:
    settings = make_settings(pg_url, smtp.port)
    worker = _start_worker(settings, tmp_path)
    try:
        await _wait_for_listener(pg_url)
        for n in range(3):
            queued_at = await _queue_mail(sender_db, f"first{n}@example.com")
            await asyncio.to_thread(smtp.wait_for, f"first{n}@example.com", 1, PICKED_UP_WITHIN)
            assert time.monotonic() - queued_at < PICKED_UP_WITHIN
    finally:
        _stop(worker)


async def test_without_notify_the_job_waits_for_the_poll(
    pg_url: str, smtp: SmtpTestServer, sender_db: Database, tmp_path: Path
) -> None:
    # The control for the test above: the same worker with JOB_NOTIFY=false does not listen,
    # and the job stays queued until its next poll (30 s away).
    settings = make_settings(pg_url, smtp.port)
    runtime = build_runtime(make_settings(pg_url, smtp.port, job_notify=False))
    worker = _start_worker(settings, tmp_path, JOB_NOTIFY="false")
    try:
        await _wait_for_worker_connection(pg_url)
        assert await _listener_pids(pg_url) == []
        await _queue_mail(runtime.db, "late@example.com")
        await asyncio.sleep(3)
        assert smtp.to("late@example.com") == []
    finally:
        _stop(worker)
        await runtime.close()


async def test_listener_reconnects_after_its_connection_is_terminated(
    pg_url: str, smtp: SmtpTestServer, sender_db: Database, tmp_path: Path
) -> None:
    settings = make_settings(pg_url, smtp.port)
    worker = _start_worker(settings, tmp_path)
    try:
        first = await _wait_for_listener(pg_url)
        conn = await asyncpg.connect(_raw_dsn(pg_url))
        try:
            # Only the listener of this test's worker, in this run's own database.
            assert await conn.fetchval(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid = $1 AND datname = current_database()",
                first,
            )
        finally:
            await conn.close()
        second = await _wait_for_listener(pg_url, other_than=first)
        assert second != first
        queued_at = await _queue_mail(sender_db, "again@example.com")
        await asyncio.to_thread(smtp.wait_for, "again@example.com", 1, PICKED_UP_WITHIN)
        assert time.monotonic() - queued_at < PICKED_UP_WITHIN
        assert worker.poll() is None  # the worker itself never stopped
    finally:
        _stop(worker)


async def test_one_notification_per_committed_transaction_that_enqueued(
    pg_url: str, smtp: SmtpTestServer
) -> None:
    received: list[str] = []
    listen = await asyncpg.connect(_raw_dsn(pg_url))
    await listen.add_listener(queue.NOTIFY_CHANNEL, lambda *args: received.append(args[3]))
    on = build_runtime(make_settings(pg_url, smtp.port))
    off = build_runtime(make_settings(pg_url, smtp.port, job_notify=False))
    try:

        async def settle() -> list[str]:
            await listen.fetchval("SELECT 1")  # notifications arrive before this answer
            await asyncio.sleep(0.2)
            got = list(received)
            received.clear()
            return got

        async with on.db.transaction() as session:
            for n in range(3):
                queue_email(session, OutgoingEmail(f"a{n}@example.com", "s", "t", "<p>t</p>"))
        assert await settle() == [queue.notify_sender()]

        async with on.db.transaction() as session:
            await session.execute(select(Job.id).limit(1))  # enqueues nothing
        with pytest.raises(RuntimeError):
            async with on.db.transaction() as session:
                queue_email(session, OutgoingEmail("b@example.com", "s", "t", "<p>t</p>"))
                await session.flush()
                raise RuntimeError("rolled back")
        async with off.db.transaction() as session:
            queue_email(session, OutgoingEmail("c@example.com", "s", "t", "<p>t</p>"))
        assert await settle() == []
    finally:
        await listen.close()
        await on.close()
        await off.close()
