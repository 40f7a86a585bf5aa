"""All user queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import contains_pattern
from ticketing.pagination import Order, paginate
from ticketing.users.models import User
from ticketing.vocabulary import STAFF_ROLES, Role


async def get(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)


async def get_for_update(session: AsyncSession, user_id: str) -> User | None:
    stmt = select(User).where(User.id == user_id).with_for_update()
    return (await session.scalars(stmt)).first()


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.scalars(select(User).where(User.email == email))).first()


async def add(session: AsyncSession, user: User) -> User:
    session.add(user)
    await session.flush()
    return user


async def list_page(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    order: Order = "newest",
    role: Role | None = None,
    is_active: bool | None = None,
    q: str | None = None,
) -> Sequence[User]:
    stmt = select(User)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if is_active is not None:
        stmt = stmt.where(User.is_active == is_active)
    if q:
        pattern = contains_pattern(q)
        stmt = stmt.where(
            or_(
                User.email.like(pattern, escape="\\"),
                func.lower(User.name).like(pattern, escape="\\"),
            )
        )
    stmt = paginate(stmt, User.created_at, User.id, limit=limit, cursor=cursor, order=order)
    return (await session.scalars(stmt)).all()


async def count_active_admins(session: AsyncSession) -> int:
    stmt = select(func.count()).where(User.role == Role.admin, User.is_active.is_(True))
    return int((await session.scalar(stmt)) or 0)


async def active_staff_members(session: AsyncSession) -> Sequence[User]:
    """Every active moderator and admin, in one query."""
    stmt = (
        select(User).where(User.role.in_(STAFF_ROLES), User.is_active.is_(True)).order_by(User.id)
    )
    return (await session.scalars(stmt)).all()


async def known_skills(session: AsyncSession) -> list[str]:
    """Every skill some active moderator or admin has: what triage may ask for."""
    stmt = select(User.skills).where(User.role.in_(STAFF_ROLES), User.is_active.is_(True))
    skills: dict[str, None] = {}
    for row in (await session.scalars(stmt)).all():
        for skill in row or []:
            skills.setdefault(skill, None)
    return sorted(skills)
