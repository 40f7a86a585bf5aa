"""A real SMTP server (aiosmtpd) with AUTH, recording what it receives, for the test suite."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER = "mailer"
SMTP_PASSWORD = "mail-secret"


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())  # type: ignore[attr-defined]

    @property
    def text(self) -> str:
        return self.part("plain")

    @property
    def html(self) -> str:
        return self.part("html")


class RecordingHandler:
    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self.lock = threading.Lock()
        self.fail_with: str | None = None  # e.g. "451 4.3.0 try later" to simulate an outage
        self.delay_seconds = 0.0  # a slow server, to catch a sender in the middle of sending

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.fail_with:
            return self.fail_with
        message = message_from_bytes(envelope.content, policy=policy.default)
        auth = session.auth_data
        login = auth.decode() if isinstance(auth, bytes) else None
        with self.lock:
            self.messages.append(
                ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message, login)  # type: ignore[arg-type]
            )
        return "250 Message accepted"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    if isinstance(data, LoginPassword) and (
        data.login.decode() == SMTP_USER and data.password.decode() == SMTP_PASSWORD
    ):
        return AuthResult(success=True, auth_data=data.login)
    return AuthResult(success=False, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpTestServer:
    def __init__(self, handler: RecordingHandler | None = None, **options: Any) -> None:
        """`options` go to aiosmtpd's Controller (TLS contexts, require_starttls, ...)."""
        self.handler = handler or RecordingHandler()
        self.port = free_port()
        self.options = {"auth_require_tls": False} | options
        self.controller: Controller | None = None

    def start(self) -> None:
        """Listen on `port`; after stop(), starts again on the same port (a server restart)."""
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=_authenticate,
            auth_required=True,
            **self.options,
        )
        self.controller.start()

    def stop(self) -> None:
        """Stop listening and drop every open connection."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[ReceivedMail]:
        with self.handler.lock:
            return list(self.handler.messages)

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.messages.clear()
        self.handler.fail_with = None
        self.handler.delay_seconds = 0.0

    def to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.messages if address in m.recipients]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"expected {count} message(s) to {address}, got {len(self.to(address))}"
        )
