"""Tickets: create, see, change, comment, and the timeline. Services never commit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import ColumnElement, or_
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.config import Settings
from ticketing.db import lock_for_transaction, new_id, utcnow
from ticketing.errors import Conflict, Forbidden, InvalidField, NotFound, RateLimited
from ticketing.jobs import queue
from ticketing.pagination import Order
from ticketing.tickets import emails
from ticketing.tickets import repository as repo
from ticketing.tickets.models import Comment, Ticket, TicketEvent, TicketStatus
from ticketing.tickets.repository import TicketFilters
from ticketing.tickets.schemas import CommentCreate, TicketCreate, TicketUpdate
from ticketing.users import repository as users_repo
from ticketing.users.models import Role, User

TRIAGE_TICKET = "triage_ticket"
NOT_FOUND = "Ticket not found"

_S = TicketStatus
# (from, to) -> who may make the move: "staff" = the assignee or an admin.
TRANSITIONS: dict[tuple[str, str], set[str]] = {
    (_S.open, _S.in_progress): {"staff"},
    (_S.open, _S.resolved): {"staff"},
    (_S.in_progress, _S.resolved): {"staff"},
    (_S.in_progress, _S.open): {"staff"},
    (_S.resolved, _S.closed): {"staff", "creator"},
    (_S.resolved, _S.open): {"staff", "creator"},
    (_S.open, _S.closed): {"admin", "creator"},
    (_S.in_progress, _S.closed): {"admin", "creator"},
}
STAFF_FIELDS = {"status", "priority", "ticket_type", "required_skills"}


def triage_job_key(ticket_id: str) -> str:
    return f"triage:{ticket_id}"


def queue_triage(session: AsyncSession, ticket_id: str, *, reason: str) -> None:
    queue.enqueue(
        session,
        TRIAGE_TICKET,
        {"ticket_id": ticket_id, "reason": reason},
        key=triage_job_key(ticket_id),
    )


def is_staff(user: User) -> bool:
    return user.role in (Role.moderator.value, Role.admin.value)


def _visible_to(user: User) -> ColumnElement[bool] | None:
    if user.role == Role.admin.value:
        return None
    if user.role == Role.moderator.value:
        return or_(Ticket.assigned_to == user.id, Ticket.created_by == user.id)
    return Ticket.created_by == user.id


def can_see(user: User, ticket: Ticket) -> bool:
    if user.role == Role.admin.value:
        return True
    if user.role == Role.moderator.value and ticket.assigned_to == user.id:
        return True
    return ticket.created_by == user.id


async def get_visible(
    session: AsyncSession, user: User, ticket_id: str, *, for_update: bool = False
) -> Ticket:
    """The ticket, or 404 whether it is missing or merely someone else's."""
    ticket = await repo.get(session, ticket_id, for_update=for_update)
    if ticket is None or not can_see(user, ticket):
        raise NotFound(NOT_FOUND)
    return ticket


async def create_ticket(
    session: AsyncSession, settings: Settings, user: User, data: TicketCreate
) -> Ticket:
    """Write the ticket, its `created` event and its triage job in one transaction."""
    # Concurrent requests of one user must not all pass the count below (PostgreSQL; SQLite
    # already serialises writers at BEGIN IMMEDIATE).
    await lock_for_transaction(session, f"tickets:create:{user.id}")
    now = utcnow()
    window_start = now - timedelta(minutes=1)
    if (
        await repo.count_created_since(session, user.id, window_start)
        >= settings.ticket_create_per_minute
    ):
        oldest = await repo.oldest_created_since(session, user.id, window_start) or now
        wait = math.ceil((oldest + timedelta(minutes=1) - now).total_seconds())
        raise RateLimited(wait, "You are filing tickets too quickly; try again shortly")
    ticket = repo.add(
        session,
        Ticket(
            id=new_id(),
            title=data.title,
            description=data.description,
            created_by=user.id,
            created_at=now,
            updated_at=now,
            required_skills=[],
        ),
    )
    repo.add_event(session, ticket.id, "created", actor_id=user.id, at=now)
    queue_triage(session, ticket.id, reason="created")
    await session.flush()
    return ticket


async def list_tickets(
    session: AsyncSession,
    user: User,
    filters: TicketFilters,
    *,
    limit: int,
    cursor: str | None,
    order: Order,
    queue_of: str | None = None,
) -> Sequence[Ticket]:
    """Tickets `user` may see; with `queue_of`, only those assigned to that person."""
    visible = Ticket.assigned_to == queue_of if queue_of is not None else _visible_to(user)
    return await repo.list_page(
        session, visible=visible, filters=filters, limit=limit, cursor=cursor, order=order
    )


def _roles_on(user: User, ticket: Ticket) -> set[str]:
    roles = set()
    if user.role == Role.admin.value:
        roles |= {"admin", "staff"}
    if user.role == Role.moderator.value and ticket.assigned_to == user.id:
        roles.add("staff")
    if ticket.created_by == user.id:
        roles.add("creator")
    return roles


async def update_ticket(
    session: AsyncSession, settings: Settings, user: User, ticket_id: str, changes: TicketUpdate
) -> Ticket:
    """Apply a partial update under the field-level rules of the contract."""
    ticket = await get_visible(session, user, ticket_id, for_update=True)
    fields = changes.model_dump(exclude_unset=True)
    roles = _roles_on(user, ticket)

    # Authorisation first (403), then state (409), then apply.
    for name in fields:
        if name == "assigned_to" and "admin" not in roles:
            raise Forbidden("Only admins can reassign tickets")
        if name in STAFF_FIELDS - {"status"} and "staff" not in roles:
            raise Forbidden(f"You may not change {name}")
    for name in ("status", "priority", "ticket_type", "required_skills"):
        if name in fields and fields[name] is None:
            raise InvalidField(f"{name} cannot be null")

    now = utcnow()
    new_status = fields.get("status")
    if new_status is not None and new_status != ticket.status:
        allowed = TRANSITIONS.get((ticket.status, new_status))
        if allowed is None:
            if not roles & {"staff", "creator"}:
                raise Forbidden("You may not change the status")
            raise Conflict(f"A ticket cannot go from {ticket.status} to {new_status}")
        if not roles & allowed:
            raise Forbidden(f"You may not move this ticket from {ticket.status} to {new_status}")
    elif new_status is not None and not roles & {"staff", "creator"}:
        raise Forbidden("You may not change the status")

    changed: dict[str, object] = {}
    for name in ("priority", "ticket_type", "required_skills"):
        if name in fields and fields[name] != getattr(ticket, name):
            changed[name] = {"from": getattr(ticket, name), "to": fields[name]}
            setattr(ticket, name, fields[name])
    if changed:
        repo.add_event(session, ticket.id, "updated", actor_id=user.id, data=changed, at=now)

    if new_status is not None and new_status != ticket.status:
        old = ticket.status
        ticket.status = new_status.value
        if new_status == TicketStatus.resolved:
            ticket.resolved_at = now
            creator = await users_repo.get(session, ticket.created_by)
            if creator is not None and creator.id != user.id and creator.is_active:
                emails.queue_resolved_email(session, settings, ticket, creator)
        elif new_status == TicketStatus.open:
            ticket.resolved_at = None
        repo.add_event(
            session,
            ticket.id,
            "status_changed",
            actor_id=user.id,
            data={"from": old, "to": ticket.status},
            at=now,
        )

    if "assigned_to" in fields and fields["assigned_to"] != ticket.assigned_to:
        await _reassign(session, settings, ticket, fields["assigned_to"], user, now)

    ticket.updated_at = now
    await session.flush()
    return ticket


async def _reassign(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    assignee_id: str | None,
    admin: User,
    now: object,
) -> None:
    if assignee_id is None:
        ticket.assigned_to = None
        ticket.assigned_at = None
        ticket.assignment_reason = f"unassigned by {admin.email}"
        repo.add_event(
            session,
            ticket.id,
            "assigned",
            actor_id=admin.id,
            data={"to": None, "reason": ticket.assignment_reason},
            internal=True,
        )
        return
    if ticket.status == TicketStatus.closed:
        raise Conflict("A closed ticket cannot be reassigned")
    assignee = await users_repo.get(session, assignee_id)
    if (
        assignee is None
        or not assignee.is_active
        or assignee.role not in (Role.moderator.value, Role.admin.value)
    ):
        raise InvalidField("assigned_to must be an active moderator or admin")
    assign(session, settings, ticket, assignee, f"assigned by admin {admin.email}", admin.id)


def assign(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    assignee: User,
    reason: str,
    actor_id: str | None,
) -> None:
    """Give `ticket` to `assignee`, record why, and email them (all in the caller's transaction)."""
    now = utcnow()
    previous = ticket.assigned_to
    ticket.assigned_to = assignee.id
    ticket.assigned_at = now
    ticket.assignment_reason = reason
    ticket.updated_at = now
    assignee.last_assigned_at = now
    repo.add_event(
        session,
        ticket.id,
        "assigned",
        actor_id=actor_id,
        data={"to": assignee.id, "to_email": assignee.email, "from": previous, "reason": reason},
        internal=True,
    )
    emails.queue_assignment_email(session, settings, ticket, assignee, reason)


async def add_comment(
    session: AsyncSession, user: User, ticket_id: str, data: CommentCreate
) -> Comment:
    ticket = await get_visible(session, user, ticket_id)
    if data.internal and not is_staff(user):
        raise Forbidden("Only moderators and admins can write internal notes")
    comment = repo.add_comment(
        session,
        Comment(
            id=new_id(),
            ticket_id=ticket.id,
            author_id=user.id,
            body=data.body,
            internal=data.internal,
            created_at=utcnow(),
        ),
    )
    repo.add_event(
        session,
        ticket.id,
        "commented",
        actor_id=user.id,
        data={"comment_id": comment.id, "internal": data.internal},
        internal=data.internal,
    )
    ticket.updated_at = utcnow()
    await session.flush()
    return comment


async def list_comments(
    session: AsyncSession,
    user: User,
    ticket_id: str,
    *,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Sequence[Comment]:
    ticket = await get_visible(session, user, ticket_id)
    return await repo.list_comments(
        session, ticket.id, include_internal=is_staff(user), limit=limit, cursor=cursor, order=order
    )


async def list_events(
    session: AsyncSession,
    user: User,
    ticket_id: str,
    *,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Sequence[TicketEvent]:
    ticket = await get_visible(session, user, ticket_id)
    return await repo.list_events(
        session, ticket.id, include_internal=is_staff(user), limit=limit, cursor=cursor, order=order
    )


async def queue_reanalysis(session: AsyncSession, ticket_ids: Sequence[str]) -> int:
    """Queue re-analysis for each ticket that has none pending; returns how many were queued."""
    queued = 0
    for ticket_id in ticket_ids:
        if await queue.has_pending(session, triage_job_key(ticket_id)):
            continue
        queue_triage(session, ticket_id, reason="rerun")
        queued += 1
    return queued


async def rerun_fallback_tickets(session: AsyncSession) -> int:
    return await queue_reanalysis(session, await repo.rerun_candidates(session))


async def reanalyze_ticket(session: AsyncSession, ticket_id: str) -> int:
    if await repo.get(session, ticket_id) is None:
        raise NotFound(NOT_FOUND)
    return await queue_reanalysis(session, [ticket_id])
