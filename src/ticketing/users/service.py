"""People, roles and skills."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import lock_for_transaction
from ticketing.errors import Conflict, InvalidField, NotFound
from ticketing.pagination import Order
from ticketing.skills import normalise_skills
from ticketing.users import repository
from ticketing.users.models import User
from ticketing.users.schemas import UserUpdate
from ticketing.vocabulary import Role

log = logging.getLogger(__name__)

ADMIN_LOCK = "users:admins"


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    role: Role = Role.user,
    name: str | None = None,
    skills: Iterable[str] = (),
) -> User:
    email = email.strip().lower()
    if await repository.get_by_email(session, email) is not None:
        raise Conflict("A user with this email already exists")
    user = User(email=email, role=role, name=name, skills=normalise_skills(skills))
    return await repository.add(session, user)


async def get_user(session: AsyncSession, user_id: str) -> User:
    user = await repository.get(session, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


async def list_users(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    order: Order,
    role: Role | None,
    is_active: bool | None,
    q: str | None,
) -> Sequence[User]:
    return await repository.list_page(
        session, limit=limit, cursor=cursor, order=order, role=role, is_active=is_active, q=q
    )


async def update_user(session: AsyncSession, user_id: str, changes: UserUpdate) -> User:
    """Apply the fields the admin sent; omitted fields stay as they are."""
    fields = changes.model_dump(exclude_unset=True)
    if any(fields.get(k) is None for k in ("role", "is_active") if k in fields):
        raise InvalidField("role and is_active cannot be null")
    losing_admin = fields.get("role", Role.admin) != Role.admin or fields.get("is_active") is False
    if losing_admin:
        # Serialise admin changes so two admins cannot demote each other at the same moment.
        await lock_for_transaction(session, ADMIN_LOCK)
    user = await repository.get_for_update(session, user_id)
    if user is None:
        raise NotFound("User not found")

    was_active_admin = user.role == Role.admin and user.is_active
    new_role = Role(fields["role"]) if "role" in fields else user.role
    new_active = fields.get("is_active", user.is_active)
    stepping_down = was_active_admin and (new_role != Role.admin or not new_active)
    if stepping_down and await repository.count_active_admins(session) <= 1:
        raise Conflict("This is the last active admin; promote someone else first")

    if new_role != user.role or new_active != user.is_active:
        # Existing tokens carry the old role: make them stop working.
        user.token_version += 1
    user.role = new_role
    user.is_active = new_active
    if "name" in fields:
        user.name = fields["name"]
    if "skills" in fields and fields["skills"] is not None:
        user.skills = normalise_skills(fields["skills"])
    await session.flush()
    return user


async def ensure_admins(session: AsyncSession, emails: Iterable[str]) -> list[User]:
    """Make every ADMIN_EMAILS address an active admin, creating accounts as needed."""
    admins = []
    for email in emails:
        user = await repository.get_by_email(session, email)
        if user is None:
            user = await create_user(session, email=email, role=Role.admin)
            log.info("created admin account", extra={"email": email})
        elif user.role != Role.admin or not user.is_active:
            user.role = Role.admin
            user.is_active = True
            user.token_version += 1
            log.info("promoted account to admin", extra={"email": email})
        admins.append(user)
    await session.flush()
    return admins


async def known_skills(session: AsyncSession) -> list[str]:
    """Every skill some active moderator or admin has: what triage may ask for."""
    return await repository.known_skills(session)


def note_assignment(user: User, at: datetime) -> None:
    """`user` was just given a ticket (routing prefers whoever waited longest)."""
    user.last_assigned_at = at
