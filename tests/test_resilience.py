"""Concurrency and crashes: routing under concurrent workers, a worker killed mid-triage."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from ticketing import flows
from ticketing.db import Database
from ticketing.runtime import build_runtime
from ticketing.tickets.models import Ticket, TicketEvent

from .conftest import drain
from .fakes.fake_gemini import FakeGemini


async def test_concurrent_routing_spreads_load_evenly(client, runtime, settings, actors):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("concurrent workers sharing one database is the PostgreSQL deployment")
    admin = actors["admin"]
    for key in ("mod_py", "mod_web"):
        await client.patch(
            f"/admin/users/{actors.ids[key]}", json={"skills": ["python"]}, headers=admin
        )
    n = 40
    for i in range(n):
        r = await client.post(
            "/tickets/create",
            json={"title": f"python bug {i}", "description": "python fails"},
            headers=actors["alice"] if i % 2 else actors["bob"],
        )
        assert r.status_code == 201
    # Three workers with their own engines, as three processes would have, many jobs in flight.
    runtimes = [build_runtime(settings) for _ in range(3)]
    workers = [flows.make_worker(rt, concurrency=16) for rt in runtimes]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        for _ in range(300):
            async with runtime.db.transaction() as session:
                assigned = await session.scalar(
                    select(func.count()).where(Ticket.assigned_to.is_not(None))
                )
            if assigned == n:
                break
            await asyncio.sleep(0.1)
    finally:
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)
        for rt in runtimes:
            await rt.close()
    async with runtime.db.transaction() as session:
        rows = (
            await session.execute(
                select(Ticket.assigned_to, func.count()).group_by(Ticket.assigned_to)
            )
        ).all()
        loads = {r[0]: r[1] for r in rows}
        assignments = await session.scalar(
            select(func.count()).where(TicketEvent.kind == "assigned")
        )
    assert set(loads) == {actors.ids["mod_py"], actors.ids["mod_web"]}
    assert abs(loads[actors.ids["mod_py"]] - loads[actors.ids["mod_web"]]) <= 1
    assert assignments == n  # each ticket assigned exactly once


def _worker_env(settings, fake: FakeGemini) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.jwt_key,
        "AI_PROVIDER": "gemini",
        "GEMINI_API_KEY": "k",
        "GEMINI_BASE_URL": fake.base_url,
        "AI_TIMEOUT_SECONDS": "30",
        "AI_MAX_RETRIES": "0",
        "EMAIL_BACKEND": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(settings.smtp_port),
        "SMTP_TLS": "none",
        "SMTP_USER": settings.smtp_user,
        "SMTP_PASSWORD": settings.smtp_password,
        "WORKER_POLL_SECONDS": "0.2",
        "JOB_LEASE_SECONDS": "5",
        "LOG_LEVEL": "WARNING",
    }


async def test_worker_killed_in_the_middle_of_triage(
    client, runtime, settings, smtp, actors, tmp_path
):
    with FakeGemini() as fake:
        fake.mode = "hang"  # the model never answers while the first worker is alive
        r = await client.post(
            "/tickets/create",
            json={"title": "python crash", "description": "postgres error"},
            headers=actors["alice"],
        )
        ticket_id = r.json()["id"]
        env = _worker_env(settings, fake)
        first = subprocess.Popen(
            [sys.executable, "-m", "ticketing", "worker"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while not fake.requests and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert fake.requests, "the worker never called the model"
            first.send_signal(signal.SIGKILL)  # no chance to clean up
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()

        fake.mode = "ok"
        second = subprocess.Popen(
            [sys.executable, "-m", "ticketing", "worker"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            # The lease (5 s) runs out, the second worker claims the job and finishes it.
            await asyncio.to_thread(smtp.wait_for, "mod.py@example.com", 1, 40)
        finally:
            second.terminate()
            second.wait(20)

    got = (await client.get(f"/tickets/{ticket_id}", headers=actors["admin"])).json()
    assert got["analysis_status"] == "ai" and got["assigned_to"] == actors.ids["mod_py"]
    async with runtime.db.transaction() as session:
        assignments = await session.scalar(
            select(func.count()).where(
                TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "assigned"
            )
        )
    assert assignments == 1
    await drain(runtime)
    assert len(smtp.to("mod.py@example.com")) == 1


async def test_sigterm_lets_the_worker_finish_or_release(
    runtime, settings, client, actors, tmp_path
):
    with FakeGemini() as fake:
        fake.mode = "hang"
        r = await client.post(
            "/tickets/create",
            json={"title": "python crash", "description": "postgres error"},
            headers=actors["alice"],
        )
        env = _worker_env(settings, fake)
        proc = subprocess.Popen(
            [sys.executable, "-m", "ticketing", "worker"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not fake.requests and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # The job was released whole: queued again, no attempt spent, no half-written ticket.
    from ticketing.jobs.models import Job

    async with runtime.db.transaction() as session:
        job = (await session.scalars(select(Job).where(Job.kind == "triage_ticket"))).one()
        assert job.status == "queued" and job.attempts == 0
        t = await session.get(Ticket, r.json()["id"])
        assert t is not None and t.analysis_status == "pending" and t.assigned_to is None
    assert isinstance(runtime.db, Database)
