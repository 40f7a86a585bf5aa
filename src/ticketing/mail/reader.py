"""The mailbox reader: one pass over the support mailbox, and the loop that keeps reading.

A pass: select the folder; list what waits there with sizes (no bodies); move at once what the
inbound log already has (a crash came between a commit and its move); reject what is over
INBOUND_MAX_BYTES from a few header fields, without downloading it; fetch the rest in batches
and give each message to the handler, which commits its ticket or comment with its log row;
then flag the batch \\Seen and move it to the done folder. A crash anywhere leaves each message
either unhandled (it is read again) or logged (it is just moved): never lost, never handled
twice (the log is unique on the key `UIDVALIDITY:UID`; the handler also knows Message-IDs).

The loop holds the lease (see `ticketing.mail.state`), waits for mail with IDLE where the
server has it (else it polls every IMAP_POLL_SECONDS; it wakes at that period in IDLE too), and
on any IMAP, network or database failure reconnects with exponential backoff and jitter,
logging the outage once and its end once, and recording both in the mailbox's health row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from ticketing.config import Settings
from ticketing.db import Database
from ticketing.errors import DatabaseUnavailable
from ticketing.mail import state
from ticketing.mail.imap import (
    MailboxConfig,
    MailboxConnection,
    MailboxError,
    WaitingMessage,
    body_batches,
    describe,
)
from ticketing.mail.inbound_log import handled_keys, record_unread_rejection
from ticketing.mail.models import InboundEmail

log = logging.getLogger(__name__)

T = TypeVar("T")
# What a message becomes: `ticketing.mail.service.handle_message`, or a test's stand-in.
MessageHandler = Callable[[Database, Settings, bytes, str], Awaitable[InboundEmail]]

# How long one IDLE check blocks its thread: the reader notices stop() within this.
IDLE_CHECK_SECONDS = 1.0
# RFC 2177: re-issue IDLE at least every 29 minutes.
IDLE_MAX_SECONDS = 25 * 60.0
KEY_QUERY_CHUNK = 500
# Messages of different senders handled at once (a database round trip each, mostly waiting).
HANDLE_CONCURRENCY = 4


class MailboxBusy(Exception):
    """Another process reads the mailbox now (it holds the lease)."""


class LeaseLost(Exception):
    """Our lease could not be renewed: another process may read the mailbox now."""


def _by_sender(
    messages: Sequence[WaitingMessage], bodies: dict[int, bytes]
) -> list[list[WaitingMessage]]:
    """The batch split by From address (read from the headers only), in mailbox order."""
    groups: dict[str, list[WaitingMessage]] = {}
    for message in messages:
        groups.setdefault(_sender(bodies[message.uid]), []).append(message)
    return list(groups.values())


def _sender(raw: bytes) -> str:
    head = raw[: raw.find(b"\r\n\r\n") if b"\r\n\r\n" in raw[:65536] else 65536]
    try:
        value = BytesHeaderParser(policy=compat32).parsebytes(head).get("From", "")
        return parseaddr(str(value))[1].lower()
    except Exception:
        return ""


def _is_database_failure(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        return False
    return isinstance(exc, DBAPIError | PoolTimeoutError | DatabaseUnavailable)


class MailboxReader:
    """Reads the support mailbox: `fetch_once()` for one pass, `run()` until `stop()`."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        handler: MessageHandler,
        *,
        config: MailboxConfig | None = None,
        name: str | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float | None = None,
        backoff_max_seconds: float = 60.0,
        failures_before_rejecting: int = 3,
    ) -> None:
        self.db = db
        self.settings = settings
        self.handler = handler
        self.config = config or MailboxConfig.from_settings(settings)
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds or settings.imap_lease_seconds
        self.poll_seconds = min(poll_seconds or settings.imap_poll_seconds, IDLE_MAX_SECONDS)
        self.backoff_max_seconds = backoff_max_seconds
        self.failures_before_rejecting = failures_before_rejecting
        self.reading = False  # holds the lease and reads now
        self._connection: MailboxConnection | None = None
        self._stopping = asyncio.Event()
        self._failures: Counter[str] = Counter()
        self._healthy: bool | None = None  # None until the first pass ends either way
        self._outage_began = 0.0

    # -- public -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run()` to finish: it stops within about a second and releases the lease."""
        self._stopping.set()

    async def fetch_once(self) -> Counter[str]:
        """One pass over the mailbox under the lease, then disconnect and release it.

        Returns how many messages had each outcome ("ticket", "comment", "ignored",
        "rejected"), "moved" (handled before, only moved now) and "failed" (left in the folder
        to be tried again). Raises MailboxBusy when another process reads the mailbox,
        MailboxError when it cannot be read, LeaseLost when the lease was lost midway."""
        if not await state.acquire_lease(self.db, self.id, self.lease_seconds):
            raise MailboxBusy("another process is reading the mailbox")
        try:
            try:
                counts = await self._while_holding(self._pass())
            except LeaseLost:
                raise
            except Exception as exc:
                await self._record_error(exc)
                raise
            await self._record_ok()
            return counts
        finally:
            await self._disconnect()
            with contextlib.suppress(Exception):
                await state.release_lease(self.db, self.id)

    async def run(self) -> None:
        """Read the mailbox until stop(): whenever this process holds the lease, and otherwise
        wait to take it over. Never raises for IMAP, network or database failures."""
        log.info("mailbox reader started", extra={"reader": self.id})
        try:
            while not self._stopping.is_set():
                try:
                    held = await state.acquire_lease(self.db, self.id, self.lease_seconds)
                except Exception as exc:
                    log.warning("mailbox lease: database unavailable (%s)", type(exc).__name__)
                    held = False
                if held:
                    log.info("reading the mailbox", extra={"reader": self.id})
                    self.reading = True
                    try:
                        await self._while_holding(self._read_loop())
                    except LeaseLost:
                        log.warning("mailbox lease lost: stopped", extra={"reader": self.id})
                    finally:
                        self.reading = False
                        await self._disconnect()
                await self._sleep(self.lease_seconds / 3)
        finally:
            await self._disconnect()
            with contextlib.suppress(Exception):
                await state.release_lease(self.db, self.id)
            log.info("mailbox reader stopped", extra={"reader": self.id})

    # -- the lease ----------------------------------------------------------------------------

    async def _while_holding(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work`, renewing the lease every third of its length; if a renewal fails, cancel
        `work` at once and raise LeaseLost."""
        task = asyncio.create_task(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.lease_seconds / 3)
                if task in done:
                    return task.result()
                try:
                    renewed = await state.renew_lease(
                        self.db, self.id, self.lease_seconds, healthy=self._healthy is True
                    )
                except Exception as exc:
                    log.warning("renewing the mailbox lease failed: %s", type(exc).__name__)
                    renewed = False
                if not renewed:
                    raise LeaseLost(self.id)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # -- reading ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                counts = await self._pass()
                if counts:
                    log.info("mailbox read", extra={"counts": dict(counts)})
                await self._record_ok()
                attempt = 0
                await self._wait_for_mail()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._record_error(exc)
                await self._disconnect()
                attempt += 1
                await self._sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max_seconds, 1.0 * 2 ** min(attempt - 1, 16))
        return float(delay * random.uniform(0.5, 1.0))

    async def _connect(self) -> MailboxConnection:
        if self._connection is None:
            connection = MailboxConnection(self.config)
            await asyncio.to_thread(connection.connect)
            self._connection = connection
        return self._connection

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.to_thread(connection.close)

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def _pass(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        connection = await self._connect()
        await self._io(connection.select)
        waiting = await self._io(connection.waiting)
        if not waiting:
            return counts
        handled = await self._handled(waiting)
        if handled:
            # Committed before a crash or a lost connection, never moved: just move them.
            await self._io(connection.finish, [m.uid for m in waiting if m.key in handled])
            counts["moved"] += len(handled)
        unread = [m for m in waiting if m.key not in handled]
        too_large = [m for m in unread if m.size > self.settings.inbound_max_bytes]
        if too_large:
            await self._reject_too_large(connection, too_large)
            counts["rejected"] += len(too_large)
        readable = [m for m in unread if m.size <= self.settings.inbound_max_bytes]
        for batch in body_batches(readable):
            if self._stopping.is_set():
                break
            await self._read_batch(connection, batch, counts)
        return counts

    async def _read_batch(
        self, connection: MailboxConnection, batch: list[WaitingMessage], counts: Counter[str]
    ) -> None:
        """Fetch a batch's bodies, handle them, move what was handled.

        Senders are handled in parallel, each sender's mail in mailbox order (a follow-up
        after its first message). Mail expunged by someone else meanwhile has no body and is
        skipped. If the batch stops early (a database error), nothing is moved now: the next
        pass finds the log rows of what was handled and moves it then.
        """
        bodies = await self._io(connection.fetch_bodies, [m.uid for m in batch])
        finished: list[int] = []
        slots = asyncio.Semaphore(HANDLE_CONCURRENCY)

        async def handle_in_order(messages: list[WaitingMessage]) -> None:
            async with slots:
                for message in messages:
                    outcome = await self._handle(message, bodies[message.uid])
                    counts[outcome or "failed"] += 1
                    if outcome is not None:
                        finished.append(message.uid)

        try:
            async with asyncio.TaskGroup() as tasks:
                for messages in _by_sender([m for m in batch if m.uid in bodies], bodies):
                    tasks.create_task(handle_in_order(messages))
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        await self._io(connection.finish, sorted(finished))

    async def _handled(self, waiting: Sequence[WaitingMessage]) -> set[str]:
        keys = [m.key for m in waiting]
        found: set[str] = set()
        for start in range(0, len(keys), KEY_QUERY_CHUNK):
            found |= await handled_keys(self.db, keys[start : start + KEY_QUERY_CHUNK])
        return found

    async def _reject_too_large(
        self, connection: MailboxConnection, messages: Sequence[WaitingMessage]
    ) -> None:
        headers = await self._io(connection.fetch_headers, [m.uid for m in messages])
        limit = self.settings.inbound_max_bytes
        for message in messages:
            await record_unread_rejection(
                self.db,
                message.key,
                message.size,
                f"message too large ({message.size} bytes > INBOUND_MAX_BYTES {limit})",
                headers.get(message.uid),
            )
            log.info("mail rejected: too large", extra={"mailbox_key": message.key})
        await self._io(connection.finish, [m.uid for m in messages])

    async def _handle(self, message: WaitingMessage, raw: bytes) -> str | None:
        """The message's outcome, or None when it stays in the folder to be tried again."""
        try:
            row = await self.handler(self.db, self.settings, raw, message.key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _is_database_failure(exc):
                raise  # the whole pass stops and is retried with backoff
            self._failures[message.key] += 1
            failures = self._failures[message.key]
            log.exception(
                "handling a message failed",
                extra={"mailbox_key": message.key, "failures": failures},
            )
            if failures < self.failures_before_rejecting:
                return None
            # A message that fails the handler again and again must not be retried forever.
            await record_unread_rejection(
                self.db,
                message.key,
                message.size,
                f"could not be handled: {type(exc).__name__}: {str(exc)[:300]}",
                raw,
            )
            del self._failures[message.key]
            return "rejected"
        self._failures.pop(message.key, None)
        return str(row.outcome)

    async def _wait_for_mail(self) -> None:
        """Until new mail is announced (IDLE), IMAP_POLL_SECONDS pass, or stop()."""
        connection = self._connection
        if connection is None or not connection.supports_idle:
            await self._sleep(self.poll_seconds)
            return
        deadline = time.monotonic() + self.poll_seconds
        await self._io(connection.idle_start)
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if await self._io(connection.idle_wait, min(IDLE_CHECK_SECONDS, remaining)):
                break
        await self._io(connection.idle_done)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- health -------------------------------------------------------------------------------

    async def _record_ok(self) -> None:
        if self._healthy is True:
            return
        if self._healthy is False:
            log.info(
                "mailbox reachable again",
                extra={"outage_seconds": round(time.monotonic() - self._outage_began, 1)},
            )
        self._healthy = True
        with contextlib.suppress(Exception):
            await state.record_health(self.db, self.id)

    async def _record_error(self, exc: BaseException) -> None:
        error = f"database: {type(exc).__name__}" if _is_database_failure(exc) else describe(exc)
        began = self._healthy is not False
        if began:
            self._outage_began = time.monotonic()
            if isinstance(exc, MailboxError | OSError) or _is_database_failure(exc):
                log.warning("mailbox unreachable: %s; retrying with backoff", error)
            else:
                log.error("reading the mailbox failed; retrying with backoff", exc_info=exc)
        self._healthy = False
        with contextlib.suppress(Exception):
            await state.record_health(self.db, self.id, error, outage_began=began)
