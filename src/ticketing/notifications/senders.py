"""Email senders behind one interface: SMTP for real mail, console for development."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Protocol

import aiosmtplib

from ticketing.config import Settings

log = logging.getLogger("ticketing.email")


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str


class EmailSender(Protocol):
    name: str

    async def send(self, email: OutgoingEmail) -> None:
        """Deliver the message or raise; the job queue retries on any exception."""


def build_mime(email: OutgoingEmail, from_email: str, app_name: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((app_name, from_email))
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Message-ID"] = make_msgid(domain=from_email.rpartition("@")[2] or "localhost")
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


class SmtpSender:
    name = "smtp"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, email: OutgoingEmail) -> None:
        s = self.settings
        await aiosmtplib.send(
            build_mime(email, s.from_email, s.app_name),
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_user,
            password=s.smtp_password if s.smtp_user else None,
            use_tls=s.smtp_tls == "ssl",
            start_tls=s.smtp_tls == "starttls",
            timeout=s.smtp_timeout_seconds,
        )


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
        )


def build_sender(settings: Settings) -> EmailSender:
    if settings.resolved_email_backend == "smtp":
        return SmtpSender(settings)
    return ConsoleSender(settings)
