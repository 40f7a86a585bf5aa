"""The SMTP sender keeps connections open between messages, and copes when the server drops them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from ticketing.notifications.senders import OutgoingEmail, SmtpSender

from .conftest import make_settings
from .smtp_server import RecordingHandler, SmtpTestServer


def mail(n: int) -> OutgoingEmail:
    return OutgoingEmail(to=f"user{n}@example.com", subject=f"#{n}", text="body", html="<p>b</p>")


class CountingHandler(RecordingHandler):
    """Counts sessions (EHLOs) and AUTHs, which a kept-open connection does only once."""

    def __init__(self) -> None:
        super().__init__()
        self.ehlos = 0
        self.quits = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.ehlos += 1
        session.host_name = hostname  # aiosmtpd leaves this to a handle_EHLO hook
        return responses

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"


class Server(SmtpTestServer):
    handler: CountingHandler


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server(CountingHandler())
    s.start()
    yield s
    s.stop()


def sender_for(server: Server) -> SmtpSender:
    return SmtpSender(make_settings("sqlite+aiosqlite:///:memory:", server.port))


async def test_messages_in_a_row_share_one_authenticated_connection(server: Server) -> None:
    sender = sender_for(server)
    for n in range(5):
        await sender.send(mail(n))
    assert [m.recipients for m in server.handler.messages] == [
        [f"user{n}@example.com"] for n in range(5)
    ]
    assert all(m.login == "mailer" for m in server.handler.messages)
    assert server.handler.ehlos == 1

    await sender.aclose()
    assert server.handler.quits == 1


async def test_concurrent_messages_open_connections_and_keep_a_few(server: Server) -> None:
    sender = sender_for(server)
    server.handler.delay_seconds = 0.2  # all 12 are in the middle of DATA at once
    await asyncio.gather(*(sender.send(mail(n)) for n in range(12)))
    assert len(server.handler.messages) == 12
    assert server.handler.ehlos == 12
    # The pool keeps MAX_IDLE_CONNECTIONS; the others were closed at once, without waiting for a
    # QUIT reply after their message was delivered.
    assert server.handler.quits == 0

    server.handler.delay_seconds = 0.0
    await asyncio.gather(
        *(sender.send(mail(n)) for n in range(12, 12 + SmtpSender.MAX_IDLE_CONNECTIONS))
    )
    assert server.handler.ehlos == 12  # served by kept connections
    await sender.aclose()
    assert server.handler.quits == SmtpSender.MAX_IDLE_CONNECTIONS


class SlowQuitHandler(CountingHandler):
    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(5)
        return await super().handle_QUIT(server, session, envelope)


async def test_a_delivered_message_never_waits_for_the_goodbye(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Waiting for QUIT after delivery would let a job timeout (or shutdown) cancel a send that
    # already went through, and the job would send it again.
    server = Server(SlowQuitHandler())
    server.start()
    try:
        sender = sender_for(server)
        monkeypatch.setattr(SmtpSender, "MAX_MESSAGES_PER_CONNECTION", 1)  # never kept
        async with asyncio.timeout(2):
            await sender.send(mail(1))
            await sender.send(mail(2))
        assert len(server.handler.messages) == 2
        await sender.aclose()
    finally:
        server.stop()


async def test_nothing_is_kept_open_after_close(server: Server) -> None:
    sender = sender_for(server)
    server.handler.delay_seconds = 0.3
    in_flight = asyncio.create_task(sender.send(mail(1)))
    await asyncio.sleep(0.1)
    await sender.aclose()  # shutdown while a message is being sent
    await in_flight
    server.handler.delay_seconds = 0.0
    await sender.send(mail(2))
    # Neither connection was kept: the second message connected afresh.
    assert server.handler.ehlos == 2
    assert len(server.handler.messages) == 2


async def test_a_server_restart_between_messages_loses_nothing(server: Server) -> None:
    sender = sender_for(server)
    await sender.send(mail(1))
    server.stop()  # drops the kept connection
    server.start()
    await sender.send(mail(2))
    assert [m.recipients for m in server.handler.messages] == [
        ["user1@example.com"],
        ["user2@example.com"],
    ]
    assert server.handler.ehlos == 2
    await sender.aclose()


async def test_a_refused_message_closes_its_connection(server: Server) -> None:
    sender = sender_for(server)
    server.handler.fail_with = "451 4.3.0 try later"
    with pytest.raises(Exception, match="try later"):
        await sender.send(mail(1))
    server.handler.fail_with = None
    await sender.send(mail(2))
    # A connection that saw an error is never reused: the second message reconnected.
    assert server.handler.ehlos == 2
    assert [m.recipients for m in server.handler.messages] == [["user2@example.com"]]
    await sender.aclose()


async def test_a_connection_idle_too_long_is_not_reused(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = sender_for(server)
    await sender.send(mail(1))
    monkeypatch.setattr(SmtpSender, "MAX_IDLE_SECONDS", 0.0)
    await sender.send(mail(2))
    assert server.handler.ehlos == 2
    assert len(server.handler.messages) == 2
    await sender.aclose()
