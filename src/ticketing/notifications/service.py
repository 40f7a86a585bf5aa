"""Render emails from templates and queue them. All mail goes through `send_email` jobs."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.config import Settings
from ticketing.jobs import queue
from ticketing.jobs.queue import JobKind
from ticketing.notifications.senders import OutgoingEmail

# A mail server may be down for a while: ten attempts over about 17 minutes of backoff.
SEND_EMAIL = JobKind("send_email", max_attempts=10)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("ticketing.notifications", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_email(
    settings: Settings,
    template: str,
    to: str,
    subject: str,
    context: dict[str, Any],
    **headers: Any,
) -> OutgoingEmail:
    """Render `template` (.txt and .html) into a message; `headers` are OutgoingEmail's
    threading and sender fields."""
    env = _environment()
    values = {
        "app_name": settings.app_name,
        "public_url": settings.public_url.rstrip("/"),
    } | context
    return OutgoingEmail(
        to=to,
        subject=subject,
        text=env.get_template(f"{template}.txt").render(values),
        html=env.get_template(f"{template}.html").render(values),
        **headers,
    )


def queue_email(
    session: AsyncSession,
    email: OutgoingEmail,
    *,
    sensitive: bool = False,
    ticket_id: str | None = None,
    kind: str | None = None,
) -> None:
    """Queue `email` in the caller's transaction.

    `sensitive` mail (sign-in codes) has its body scrubbed from the job row once delivered.
    `ticket_id` makes delivery show up in that ticket's timeline.
    """
    queue.enqueue(
        session,
        SEND_EMAIL,
        email.to_payload() | {"sensitive": sensitive, "ticket_id": ticket_id, "kind": kind},
    )
