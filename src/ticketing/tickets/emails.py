"""The emails tickets cause (always through the job queue), threaded as one conversation.

Every message about a ticket has its own Message-ID, recorded on the ticket so that a reply
naming it (In-Reply-To or References) finds the ticket again, and In-Reply-To/References that
chain it to the ticket's earlier messages. Mail to the requester keeps one subject,
`[#number] title`, because Gmail only threads messages whose subjects match.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import make_msgid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.config import Settings
from ticketing.notifications import service as notifications
from ticketing.notifications.senders import message_domain
from ticketing.sla.service import Alert
from ticketing.tickets import repository as repo
from ticketing.tickets.models import Comment, MessageDirection, Ticket
from ticketing.users.models import User

EXCERPT_CHARS = 600
# References name the conversation's first message and its latest ones: enough for every
# client to thread, short enough for header size limits on long conversations.
MAX_REFERENCES = 10


def ticket_link(settings: Settings, ticket_id: str) -> str:
    return f"{settings.public_url.rstrip('/')}/#/tickets/{ticket_id}"


def thread_subject(ticket: Ticket) -> str:
    return f"[#{ticket.number}] {ticket.title}"


def _excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS].rstrip() + "…"


async def _threaded(session: AsyncSession, settings: Settings, ticket: Ticket) -> dict[str, Any]:
    """Headers for a new message in the ticket's conversation (its Message-ID is recorded)."""
    domain = message_domain(settings.support_address)
    known = await repo.message_ids(session, ticket.id)
    if not known:
        # A ticket filed on the web has no first message: name one, so that every later
        # message points at the same root.
        root = f"<ticket-{ticket.id}@{domain}>"
        repo.add_message(session, ticket.id, root, MessageDirection.sent)
        known = [root]
    message_id = make_msgid(domain=domain)
    repo.add_message(session, ticket.id, message_id, MessageDirection.sent)
    references = list(dict.fromkeys([known[0], *known[-(MAX_REFERENCES - 1) :]]))
    return {
        "from_address": settings.support_address,
        "reply_to": settings.support_address,
        "message_id": message_id,
        "in_reply_to": known[-1],
        "references": tuple(references),
    }


async def queue_assignment_email(
    session: AsyncSession, settings: Settings, ticket: Ticket, assignee: User, reason: str
) -> None:
    priority = (ticket.priority or "unprioritised").upper()
    message = notifications.render_email(
        settings,
        "ticket_assigned",
        to=assignee.email,
        subject=f"[#{ticket.number}] New ticket for you: {ticket.title} ({priority})",
        context={
            "ticket": ticket,
            "reason": reason,
            "excerpt": _excerpt(ticket.description),
            "link": ticket_link(settings, ticket.id),
        },
        auto_submitted=True,
        **await _threaded(session, settings, ticket),
    )
    notifications.queue_email(session, message, ticket_id=ticket.id, kind="assignment")


async def queue_acknowledgement(
    session: AsyncSession, settings: Settings, ticket: Ticket, requester: User
) -> None:
    """Tell the requester of an emailed ticket its number, and that replying adds to it."""
    message = notifications.render_email(
        settings,
        "ticket_received",
        to=requester.email,
        subject=thread_subject(ticket),
        context={"ticket": ticket, "link": ticket_link(settings, ticket.id)},
        auto_submitted=True,
        **await _threaded(session, settings, ticket),
    )
    notifications.queue_email(session, message, ticket_id=ticket.id, kind="acknowledgement")


async def queue_reply_email(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    requester: User,
    comment: Comment,
    author: User,
) -> None:
    """Send a public staff reply on to the requester; their answer by mail comes back."""
    message = notifications.render_email(
        settings,
        "ticket_reply",
        to=requester.email,
        subject=thread_subject(ticket),
        context={
            "ticket": ticket,
            "body": comment.body,
            "author": author.name or settings.app_name,
            "link": ticket_link(settings, ticket.id),
        },
        **await _threaded(session, settings, ticket),
    )
    notifications.queue_email(session, message, ticket_id=ticket.id, kind="reply")


async def queue_resolved_email(
    session: AsyncSession, settings: Settings, ticket: Ticket, requester: User
) -> None:
    message = notifications.render_email(
        settings,
        "ticket_resolved",
        to=requester.email,
        subject=thread_subject(ticket),
        context={"ticket": ticket, "link": ticket_link(settings, ticket.id)},
        auto_submitted=True,
        **await _threaded(session, settings, ticket),
    )
    notifications.queue_email(session, message, ticket_id=ticket.id, kind="resolved")


_TARGET_NAMES = {"first_response": "first response", "resolution": "resolution"}


async def queue_sla_email(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    recipient: User,
    alert: Alert,
    now: datetime,
) -> None:
    """Tell staff that a target of the ticket is at risk, or was missed."""
    breach = alert.kind == "breach"
    target = _TARGET_NAMES[alert.target]
    what = f"{target} target missed" if breach else f"{target} due soon"
    message = notifications.render_email(
        settings,
        "sla_breached" if breach else "sla_at_risk",
        to=recipient.email,
        subject=f"[#{ticket.number}] SLA {what}: {ticket.title}",
        context={
            "ticket": ticket,
            "target": target,
            "due_at": alert.due_at.strftime("%Y-%m-%d %H:%M UTC"),
            "minutes": max(0, round(abs((alert.due_at - now).total_seconds()) / 60)),
            "link": ticket_link(settings, ticket.id),
        },
        auto_submitted=True,
        **await _threaded(session, settings, ticket),
    )
    kind = "sla_breach" if breach else "sla_warning"
    notifications.queue_email(session, message, ticket_id=ticket.id, kind=kind)


def record_received(session: AsyncSession, ticket: Ticket, message_id: str | None) -> None:
    """A mail about `ticket` came in: replies to it belong to the same conversation."""
    if message_id:
        repo.add_message(session, ticket.id, message_id, MessageDirection.received)
