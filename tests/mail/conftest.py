"""The mailbox side's fixtures: a private Dovecot per session, a fresh mailbox per test, and a
stand-in for the email channel's handle_message that writes real inbound-log rows."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from ticketing.config import Settings
from ticketing.db import Database
from ticketing.mail.models import InboundEmail, InboundOutcome, MailboxState
from ticketing.mail.parsing import UnreadableEmail, parse_email
from ticketing.runtime import Runtime, build_runtime

from ..imap_server import DovecotServer, Mailbox, dovecot_installed

# CI sets REQUIRE_POSTGRES=1 and installs Dovecot: there, a missing Dovecot fails, never skips.
REQUIRE_IMAP = os.environ.get("REQUIRE_IMAP") == "1" or os.environ.get("REQUIRE_POSTGRES") == "1"


def _start(server: DovecotServer) -> DovecotServer:
    if not dovecot_installed():
        if REQUIRE_IMAP:
            pytest.fail("Dovecot (dovecot-imapd) is not installed, and REQUIRE_IMAP/POSTGRES=1")
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd)")
    server.start()
    return server


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    server = _start(DovecotServer())
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def dovecot_without_idle() -> Iterator[DovecotServer]:
    """A server that advertises neither IDLE nor MOVE: polling, and COPY + EXPUNGE."""
    server = _start(DovecotServer(capabilities="IMAP4rev1 LITERAL+ SASL-IR UIDPLUS MULTIAPPEND"))
    yield server
    server.destroy()


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> Iterator[Mailbox]:
    if dovecot.pid is None:  # a test that stopped it failed before starting it again
        dovecot.start()
    yield dovecot.new_mailbox()


@pytest.fixture
def settings_overrides(mailbox: Mailbox) -> dict[str, Any]:
    return mailbox.settings(imap_lease_seconds=3, imap_poll_seconds=30)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """As the suite's, with no inbound log and no mailbox lease left by an earlier test
    (PostgreSQL keeps these tables between tests)."""
    rt = build_runtime(settings)
    async with rt.db.transaction() as session:
        await session.execute(delete(MailboxState))
        await session.execute(delete(InboundEmail))
    yield rt
    await rt.close()


def message(
    n: int, *, sender: str = "alice@example.com", body: str = "It does not work.", **headers: str
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = headers.pop("Subject", f"Problem {n}")
    msg["Message-ID"] = f"<msg-{n}-{os.getpid()}@example.com>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(f"{body}\n\nMessage {n}.")
    return msg.as_bytes()


class Crash(BaseException):
    """Stands for the process dying: no `except Exception` stops it."""


class StubHandler:
    """handle_message's contract, minimal: one committed InboundEmail row per mailbox key,
    idempotent, "ticket" for readable mail and "rejected" for unreadable."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        # Run after the commit (e.g. raise Crash: a death between the commit and the move).
        self.after_commit: Callable[[str], Awaitable[None]] | None = None
        self.fail: Callable[[str, bytes], Exception | None] | None = None

    async def __call__(
        self, db: Database, settings: Settings, raw: bytes, mailbox_key: str
    ) -> InboundEmail:
        self.calls.append(mailbox_key)
        if self.fail is not None and (error := self.fail(mailbox_key, raw)) is not None:
            raise error
        async with db.transaction() as session:
            existing = await session.scalar(
                select(InboundEmail).where(InboundEmail.mailbox_key == mailbox_key)
            )
            if existing is not None:
                return existing
            try:
                parsed = parse_email(raw)
                row = InboundEmail(
                    mailbox_key=mailbox_key,
                    message_id=parsed.message_id,
                    from_address=parsed.from_address,
                    subject=parsed.subject,
                    size=len(raw),
                    outcome=InboundOutcome.ticket,
                )
            except UnreadableEmail as exc:
                row = InboundEmail(
                    mailbox_key=mailbox_key,
                    size=len(raw),
                    outcome=InboundOutcome.rejected,
                    reason=str(exc),
                )
            session.add(row)
        if self.after_commit is not None:
            await self.after_commit(mailbox_key)
        return row


@pytest.fixture
def handler() -> StubHandler:
    return StubHandler()


async def log_rows(runtime: Runtime) -> list[InboundEmail]:
    async with runtime.db.sessionmaker() as session:
        return list(await session.scalars(select(InboundEmail).order_by(InboundEmail.mailbox_key)))


async def count_rows(runtime: Runtime) -> int:
    async with runtime.db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(InboundEmail)) or 0)


async def eventually(
    predicate: Callable[[], Awaitable[bool]], timeout: float, what: str, step: float = 0.1
) -> float:
    """Wait until `predicate()` holds; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < timeout:
        if await predicate():
            return loop.time() - started
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
