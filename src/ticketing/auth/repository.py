"""Queries on sign-in codes and revoked tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.auth.models import LoginCode, RevokedToken
from ticketing.users.models import User


async def codes_since(session: AsyncSession, email: str, since: datetime) -> Sequence[LoginCode]:
    stmt = (
        select(LoginCode)
        .where(LoginCode.email == email, LoginCode.created_at >= since)
        .order_by(LoginCode.created_at.desc())
    )
    return (await session.scalars(stmt)).all()


async def latest_live_code(session: AsyncSession, email: str, now: datetime) -> LoginCode | None:
    stmt = (
        select(LoginCode)
        .where(LoginCode.email == email, LoginCode.spent_at.is_(None), LoginCode.expires_at > now)
        .order_by(LoginCode.created_at.desc())
        .limit(1)
        .with_for_update()
    )
    return (await session.scalars(stmt)).first()


async def spend_live_codes(session: AsyncSession, email: str, now: datetime) -> None:
    await session.execute(
        update(LoginCode)
        .where(LoginCode.email == email, LoginCode.spent_at.is_(None))
        .values(spent_at=now)
    )


async def delete_codes_before(session: AsyncSession, email: str, before: datetime) -> None:
    await session.execute(
        delete(LoginCode).where(LoginCode.email == email, LoginCode.created_at < before)
    )


async def user_unless_revoked(session: AsyncSession, user_id: str, jti: str) -> User | None:
    """The token's user, or None if there is none or the token was revoked: one query."""
    revoked = select(RevokedToken.jti).where(RevokedToken.jti == jti).exists()
    stmt = select(User).where(User.id == user_id, ~revoked)
    return (await session.scalars(stmt)).first()


async def revoke(session: AsyncSession, jti: str, expires_at: datetime) -> None:
    if await session.get(RevokedToken, jti) is None:
        session.add(RevokedToken(jti=jti, expires_at=expires_at))


async def delete_codes_created_before(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(delete(LoginCode).where(LoginCode.created_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def delete_revocations_expired_before(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(delete(RevokedToken).where(RevokedToken.expires_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
