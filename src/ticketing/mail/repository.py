"""Queries on the inbound-mail log and the mailbox state."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.mail.models import InboundEmail, InboundOutcome
from ticketing.pagination import Order, paginate


async def get_by_key(session: AsyncSession, mailbox_key: str) -> InboundEmail | None:
    stmt = select(InboundEmail).where(InboundEmail.mailbox_key == mailbox_key)
    return (await session.scalars(stmt)).first()


async def handled_message_id(session: AsyncSession, message_id: str) -> bool:
    """Whether a message with this Message-ID already became a ticket or a comment."""
    stmt = (
        select(InboundEmail.id)
        .where(
            InboundEmail.message_id == message_id,
            InboundEmail.outcome.in_([InboundOutcome.ticket, InboundOutcome.comment]),
        )
        .limit(1)
    )
    return (await session.scalar(stmt)) is not None


def add(session: AsyncSession, entry: InboundEmail) -> InboundEmail:
    session.add(entry)
    return entry


async def list_page(
    session: AsyncSession,
    *,
    outcome: InboundOutcome | None,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Sequence[InboundEmail]:
    stmt = select(InboundEmail)
    if outcome is not None:
        stmt = stmt.where(InboundEmail.outcome == outcome)
    stmt = paginate(
        stmt, InboundEmail.received_at, InboundEmail.id, limit=limit, cursor=cursor, order=order
    )
    return (await session.scalars(stmt)).all()
