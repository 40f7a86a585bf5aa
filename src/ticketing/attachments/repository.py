"""All attachment queries."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.attachments.models import Attachment


def add(session: AsyncSession, attachment: Attachment) -> Attachment:
    session.add(attachment)
    return attachment


async def get(session: AsyncSession, attachment_id: str) -> Attachment | None:
    return await session.get(Attachment, attachment_id)


async def list_for_ticket(
    session: AsyncSession, ticket_id: str, *, include_internal: bool
) -> Sequence[Attachment]:
    """A ticket's files in the order they were attached."""
    stmt = select(Attachment).where(Attachment.ticket_id == ticket_id)
    if not include_internal:
        stmt = stmt.where(Attachment.internal.is_(False))
    stmt = stmt.order_by(Attachment.created_at, Attachment.id)
    return (await session.scalars(stmt)).all()


async def list_for_comments(
    session: AsyncSession, ticket_id: str, comment_ids: Collection[str]
) -> Sequence[Attachment]:
    """The files of these comments (of one ticket), in one query."""
    if not comment_ids:
        return []
    stmt = (
        select(Attachment)
        .where(Attachment.ticket_id == ticket_id, Attachment.comment_id.in_(comment_ids))
        .order_by(Attachment.created_at, Attachment.id)
    )
    return (await session.scalars(stmt)).all()


async def count_for_ticket(session: AsyncSession, ticket_id: str) -> int:
    stmt = select(func.count()).where(Attachment.ticket_id == ticket_id)
    return int((await session.scalar(stmt)) or 0)


async def uploaded_since(
    session: AsyncSession, user_id: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many files `user_id` attached since `since`, and when the oldest of them was."""
    stmt = select(func.count(), func.min(Attachment.created_at)).where(
        Attachment.uploaded_by == user_id, Attachment.created_at >= since
    )
    count, oldest = (await session.execute(stmt)).one()
    return int(count), oldest


async def hashes_in_use(session: AsyncSession, hashes: Collection[str]) -> set[str]:
    """Which of `hashes` some attachment row points to."""
    if not hashes:
        return set()
    stmt = select(Attachment.sha256).where(Attachment.sha256.in_(hashes)).distinct()
    return set((await session.scalars(stmt)).all())
