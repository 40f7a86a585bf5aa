"""Email senders behind one interface: SMTP for real mail, console for development."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any, Protocol

import aiosmtplib

from ticketing.config import Settings
from ticketing.logging_setup import MULTILINE

log = logging.getLogger("ticketing.email")


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str
    # Ticket mail: sent from the support address, threaded with the ticket's conversation.
    from_address: str | None = None  # default: FROM_EMAIL
    reply_to: str | None = None
    message_id: str | None = None  # default: a new one
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    # RFC 3834: mail no person wrote (notices, acknowledgements); auto-responders stay quiet.
    auto_submitted: bool = False

    def to_payload(self) -> dict[str, Any]:
        return {**asdict(self), "references": list(self.references)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> OutgoingEmail:
        """The message a `send_email` job carries (KeyError when it lacks a required part)."""
        return cls(
            to=payload["to"],
            subject=payload["subject"],
            text=payload["text"],
            html=payload["html"],
            from_address=payload.get("from_address"),
            reply_to=payload.get("reply_to"),
            message_id=payload.get("message_id"),
            in_reply_to=payload.get("in_reply_to"),
            references=tuple(payload.get("references") or ()),
            auto_submitted=bool(payload.get("auto_submitted")),
        )


class EmailSender(Protocol):
    name: str

    async def send(self, email: OutgoingEmail) -> None:
        """Deliver the message or raise; the job queue retries on any exception."""

    async def aclose(self) -> None:
        """Let go of any connections (process shutdown)."""


# Characters that end a header line (CR, LF and the rest of the controls, U+2028/2029): a header
# value that holds one is refused by the email package, which would fail the job every time.
_LINE_BREAKERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def header_text(value: str) -> str:
    """`value` as one header line: line breaks and controls become single spaces."""
    return " ".join(_LINE_BREAKERS.sub(" ", value).split())


def message_domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def build_mime(email: OutgoingEmail, from_email: str, app_name: str) -> EmailMessage:
    sender = email.from_address or from_email
    message = EmailMessage()
    message["From"] = formataddr((header_text(app_name), sender))
    message["To"] = header_text(email.to)
    if email.reply_to:
        message["Reply-To"] = header_text(email.reply_to)
    # Titles are single-line since the API refuses control characters, but rows written before
    # that (or by hand) must not stop a ticket's mail.
    message["Subject"] = header_text(email.subject)
    message["Message-ID"] = email.message_id or make_msgid(domain=message_domain(sender))
    if email.in_reply_to:
        message["In-Reply-To"] = email.in_reply_to
    if email.references:
        message["References"] = " ".join(email.references)
    if email.auto_submitted:
        message["Auto-Submitted"] = "auto-generated"
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


class SmtpSender:
    """Sends over a few kept-open SMTP connections.

    Connecting costs a TCP (and TLS) handshake, EHLO and AUTH: several round trips per message
    when every message opens its own connection. A connection goes back to the pool only after
    a message went through on it; any error closes it.
    """

    name = "smtp"
    MAX_IDLE_CONNECTIONS = 8
    # Servers drop idle clients (RFC 5321 asks them to wait at least 5 min; some wait less) and
    # cap messages per connection; staying well under both avoids most stale-connection retries.
    MAX_IDLE_SECONDS = 30.0
    MAX_MESSAGES_PER_CONNECTION = 100

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._idle: list[_PooledConnection] = []
        self._local_hostname: str | None = None
        self._closed = False

    async def send(self, email: OutgoingEmail) -> None:
        s = self.settings
        message = build_mime(email, s.from_email, s.app_name)
        while True:
            conn, reused = await self._checkout()
            try:
                await conn.client.send_message(message)
            except aiosmtplib.SMTPServerDisconnected:
                conn.client.close()
                if reused:
                    continue  # the server dropped a pooled connection while it sat idle
                raise
            except BaseException:
                conn.client.close()
                raise
            conn.sent += 1
            self._checkin(conn)
            return

    async def _checkout(self) -> tuple[_PooledConnection, bool]:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.client.is_connected and now - conn.idle_since < self.MAX_IDLE_SECONDS:
                return conn, True
            conn.client.close()
        return _PooledConnection(await self._connect()), False

    def _checkin(self, conn: _PooledConnection) -> None:
        if (
            not self._closed
            and len(self._idle) < self.MAX_IDLE_CONNECTIONS
            and conn.sent < self.MAX_MESSAGES_PER_CONNECTION
        ):
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            # The message is delivered: nothing may wait (or be cancelled) after this point, or
            # the job would count a delivered message as failed and send it again. So no QUIT,
            # just close; the server logs a dropped connection after a complete transaction.
            conn.client.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        if self._local_hostname is None:
            # aiosmtplib would look the FQDN up (DNS, in a thread) on every connection.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_user,
            password=s.smtp_password if s.smtp_user else None,
            use_tls=s.smtp_tls == "ssl",
            start_tls=s.smtp_tls == "starttls",
            timeout=s.smtp_timeout_seconds,
            local_hostname=self._local_hostname,
        )
        await client.connect()  # EHLO, STARTTLS and AUTH as configured
        return client

    async def aclose(self) -> None:
        self._closed = True  # sends still in flight close their connection when they finish
        idle, self._idle = self._idle, []
        for conn in idle:
            await _quit(conn.client)


@dataclass
class _PooledConnection:
    client: aiosmtplib.SMTP
    sent: int = 0
    idle_since: float = 0.0


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        pass
    finally:
        client.close()


class ConsoleSender:
    """Logs the whole message: how a developer reads their sign-in code without a mail server."""

    name = "console"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, email: OutgoingEmail) -> None:
        log.info(
            "email (console backend)\nTo: %s\nFrom: %s\nSubject: %s\n\n%s",
            email.to,
            self.settings.from_email,
            email.subject,
            email.text,
            extra={MULTILINE: True},
        )

    async def aclose(self) -> None:
        pass


def build_sender(settings: Settings) -> EmailSender:
    if settings.resolved_email_backend == "smtp":
        return SmtpSender(settings)
    return ConsoleSender(settings)
