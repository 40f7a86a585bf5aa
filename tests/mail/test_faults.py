"""Fault injection with real processes on PostgreSQL: `ticketing worker` killed with SIGKILL in
the middle of a batch, then started again: every message handled exactly once, one ticket each."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from ..imap_server import Mailbox
from .conftest import message

pytestmark = pytest.mark.timeout(180)


def _worker(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ticketing", "worker"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=(cwd / "worker.log").open("ab"),
    )


async def _counts(dsn: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT mailbox_key), count(DISTINCT message_id)"
            " FROM inbound_emails"
        )
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])
    finally:
        await conn.close()


async def _tickets(dsn: str) -> tuple[int, int]:
    """(email tickets, distinct numbers among them)"""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT number) FROM tickets WHERE source = 'email'"
        )
        assert row is not None
        return int(row[0]), int(row[1])
    finally:
        await conn.close()


async def test_kill_9_of_the_reading_worker_mid_batch_loses_and_repeats_nothing(
    runtime, mailbox: Mailbox, tmp_path: Path
):
    url = runtime.settings.database_url
    if not url.startswith("postgresql"):
        pytest.skip("several processes share one database on PostgreSQL")
    dsn = url.replace("+asyncpg", "")
    env = (
        dict(os.environ)
        | {
            "DATABASE_URL": url,
            "SECRET_KEY": runtime.settings.jwt_key,
            "AI_PROVIDER": "local",
            "EMAIL_BACKEND": "console",
            "LOG_LEVEL": "WARNING",
            "WORKER_POLL_SECONDS": "0.2",
            "IMAP_LEASE_SECONDS": "3",
            "IMAP_POLL_SECONDS": "30",
            "TICKET_CREATE_PER_MINUTE": "1000",  # one sender, fifty tickets: not a flood here
        }
        | {name.upper(): str(value) for name, value in mailbox.settings().items()}
    )
    mailbox.append([message(n) for n in range(1, 51)])

    first = _worker(env, tmp_path)
    try:
        deadline = time.monotonic() + 60
        handled = 0
        while time.monotonic() < deadline and handled == 0:
            handled = (await _counts(dsn))[0]
            await asyncio.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = (await _counts(dsn))[0]
    assert 0 < handled <= at_kill
    assert at_kill < 50, "the worker finished before it could be killed mid-batch"

    second = _worker(env, tmp_path)  # takes over once the dead worker's lease (3 s) is over
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (await _counts(dsn))[0] < 50:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything more would be a duplicate
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)

    assert await _counts(dsn) == (50, 50, 50)
    assert await _tickets(dsn) == (50, 50)  # exactly one ticket per message
    assert mailbox.count("INBOX") == 0
    assert mailbox.count("Processed") == 50
    assert second.returncode == 0  # a clean stop, lease released
