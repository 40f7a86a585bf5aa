"""PostgreSQL LISTEN for new jobs: wakes a worker the moment another process enqueues.

A transaction that enqueues sends `NOTIFY ticketing_jobs` (jobs/queue.py), delivered when it
commits. Each worker process holds one dedicated connection that LISTENs on that channel and
wakes its claim loop. Polling stays as the safety net: a notification sent while this
connection was down is lost, so a (re)connect wakes the worker once too, and the worker keeps
polling meanwhile. The connection is reconnected with backoff when it drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from ticketing.jobs import queue

log = logging.getLogger(__name__)


# Options of SQLAlchemy's asyncpg dialect that asyncpg.connect itself does not take.
_DIALECT_ONLY = (
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
    "async_creator_fn",
)


def connect_kwargs(engine: AsyncEngine) -> dict[str, Any]:
    """What the engine's own connections are opened with (host, user, ssl, ... from the URL)."""
    _args, params = engine.dialect.create_connect_args(engine.url)
    return {k: v for k, v in params.items() if k not in _DIALECT_ONLY}


class JobListener:
    """Holds one LISTEN connection and calls `wake()` for every other process's notification."""

    def __init__(
        self,
        engine: AsyncEngine,
        wake: Callable[[], None],
        *,
        check_seconds: float = 60.0,
        backoff_start_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        connect_timeout_seconds: float = 10.0,
    ) -> None:
        self.connect_kwargs = connect_kwargs(engine)
        self.wake = wake
        self.check_seconds = check_seconds
        self.backoff_start_seconds = backoff_start_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.connect_timeout_seconds = connect_timeout_seconds
        self.connected = asyncio.Event()
        self.connections = 0  # how many times it has (re)connected
        self._sender = queue.notify_sender()

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self._sender:
            self.wake()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with backoff whenever the connection is lost."""
        backoff = self.backoff_start_seconds
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    **self.connect_kwargs, timeout=self.connect_timeout_seconds
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(queue.NOTIFY_CHANNEL, self._on_notification)
                self.connections += 1
                if self.connections > 1:
                    log.info("job listener reconnected")
                self.connected.set()
                backoff = self.backoff_start_seconds
                # Jobs may have been queued while no one listened: look once now.
                self.wake()
                await self._hold(conn, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "job listener connection lost; polling until it is back: %s",
                    f"{type(exc).__name__}: {exc}",
                )
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 5)
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(self.backoff_max_seconds, backoff * 2)

    async def _hold(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        # A terminated backend or a closed socket ends the connection at once; a silently dead
        # one (a NAT that forgot us) is found by a cheap query every `check_seconds`.
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self.check_seconds)
            if lost.is_set() or conn.is_closed():
                raise ConnectionError("the LISTEN connection was closed")
            await conn.fetchval("SELECT 1", timeout=self.connect_timeout_seconds)
