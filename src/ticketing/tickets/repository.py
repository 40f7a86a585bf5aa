"""All ticket, comment and timeline queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.pagination import Order, paginate
from ticketing.tickets.models import Comment, Ticket, TicketEvent, TicketStatus
from ticketing.users.repository import escape_like

OPEN_STATES = (TicketStatus.open.value, TicketStatus.in_progress.value)


@dataclass(frozen=True)
class TicketFilters:
    status: str | None = None
    priority: str | None = None
    ticket_type: str | None = None
    assigned_to: str | None = None
    created_by: str | None = None
    analysis_status: str | None = None
    q: str | None = None


async def get(session: AsyncSession, ticket_id: str, *, for_update: bool = False) -> Ticket | None:
    stmt = select(Ticket).where(Ticket.id == ticket_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


def add(session: AsyncSession, ticket: Ticket) -> Ticket:
    session.add(ticket)
    return ticket


async def list_page(
    session: AsyncSession,
    *,
    visible: ColumnElement[bool] | None,
    filters: TicketFilters,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Sequence[Ticket]:
    stmt = select(Ticket)
    if visible is not None:
        stmt = stmt.where(visible)
    for column, value in (
        (Ticket.status, filters.status),
        (Ticket.priority, filters.priority),
        (Ticket.ticket_type, filters.ticket_type),
        (Ticket.assigned_to, filters.assigned_to),
        (Ticket.created_by, filters.created_by),
        (Ticket.analysis_status, filters.analysis_status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.q:
        pattern = f"%{escape_like(filters.q.lower())}%"
        stmt = stmt.where(
            or_(
                func.lower(Ticket.title).like(pattern, escape="\\"),
                func.lower(Ticket.description).like(pattern, escape="\\"),
            )
        )
    stmt = paginate(stmt, Ticket.created_at, Ticket.id, limit=limit, cursor=cursor, order=order)
    return (await session.scalars(stmt)).all()


async def open_loads(
    session: AsyncSession, user_ids: Sequence[str], exclude_ticket_id: str | None = None
) -> dict[str, int]:
    """Open + in-progress tickets per assignee, in one query."""
    if not user_ids:
        return {}
    stmt = (
        select(Ticket.assigned_to, func.count())
        .where(Ticket.assigned_to.in_(user_ids), Ticket.status.in_(OPEN_STATES))
        .group_by(Ticket.assigned_to)
    )
    if exclude_ticket_id is not None:
        stmt = stmt.where(Ticket.id != exclude_ticket_id)
    return {str(row[0]): int(row[1]) for row in (await session.execute(stmt)).all()}


async def count_created_since(session: AsyncSession, user_id: str, since: datetime) -> int:
    stmt = select(func.count()).where(Ticket.created_by == user_id, Ticket.created_at >= since)
    return int((await session.scalar(stmt)) or 0)


async def oldest_created_since(
    session: AsyncSession, user_id: str, since: datetime
) -> datetime | None:
    stmt = select(func.min(Ticket.created_at)).where(
        Ticket.created_by == user_id, Ticket.created_at >= since
    )
    return await session.scalar(stmt)


async def rerun_candidates(session: AsyncSession) -> Sequence[str]:
    stmt = (
        select(Ticket.id)
        .where(Ticket.analysis_status == "fallback", Ticket.status.in_(OPEN_STATES))
        .order_by(Ticket.created_at)
    )
    return (await session.scalars(stmt)).all()


def add_event(
    session: AsyncSession,
    ticket_id: str,
    kind: str,
    *,
    actor_id: str | None = None,
    data: dict[str, Any] | None = None,
    internal: bool = False,
    at: datetime | None = None,
) -> TicketEvent:
    event = TicketEvent(
        ticket_id=ticket_id, kind=kind, actor_id=actor_id, data=data or {}, internal=internal
    )
    if at is not None:
        event.created_at = at
    session.add(event)
    return event


def add_comment(session: AsyncSession, comment: Comment) -> Comment:
    session.add(comment)
    return comment


async def list_comments(
    session: AsyncSession,
    ticket_id: str,
    *,
    include_internal: bool,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Sequence[Comment]:
    stmt = select(Comment).where(Comment.ticket_id == ticket_id)
    if not include_internal:
        stmt = stmt.where(Comment.internal.is_(False))
    stmt = paginate(stmt, Comment.created_at, Comment.id, limit=limit, cursor=cursor, order=order)
    return (await session.scalars(stmt)).all()


async def list_events(
    session: AsyncSession,
    ticket_id: str,
    *,
    include_internal: bool,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Sequence[TicketEvent]:
    stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
    if not include_internal:
        stmt = stmt.where(TicketEvent.internal.is_(False))
    stmt = paginate(
        stmt, TicketEvent.created_at, TicketEvent.id, limit=limit, cursor=cursor, order=order
    )
    return (await session.scalars(stmt)).all()
