"""The emails the ticket pipeline sends (always through the job queue)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.config import Settings
from ticketing.notifications import service as notifications
from ticketing.tickets.models import Ticket
from ticketing.users.models import User

EXCERPT_CHARS = 600


def ticket_link(settings: Settings, ticket_id: str) -> str:
    return f"{settings.public_url.rstrip('/')}/#/tickets/{ticket_id}"


def _excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS].rstrip() + "…"


def queue_assignment_email(
    session: AsyncSession, settings: Settings, ticket: Ticket, assignee: User, reason: str
) -> None:
    priority = (ticket.priority or "unprioritised").upper()
    message = notifications.render_email(
        settings,
        "ticket_assigned",
        to=assignee.email,
        subject=f"[{priority}] New ticket for you: {ticket.title}",
        context={
            "ticket": ticket,
            "reason": reason,
            "excerpt": _excerpt(ticket.description),
            "link": ticket_link(settings, ticket.id),
        },
    )
    notifications.queue_email(session, message, ticket_id=ticket.id, kind="assignment")


def queue_resolved_email(
    session: AsyncSession, settings: Settings, ticket: Ticket, creator: User
) -> None:
    message = notifications.render_email(
        settings,
        "ticket_resolved",
        to=creator.email,
        subject=f"Resolved: {ticket.title}",
        context={"ticket": ticket, "link": ticket_link(settings, ticket.id)},
    )
    notifications.queue_email(session, message, ticket_id=ticket.id, kind="resolved")
