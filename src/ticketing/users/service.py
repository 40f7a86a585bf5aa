"""People, roles and skills."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ticketing.db import ProcessCache, lock_for_transaction
from ticketing.errors import Conflict, InvalidField, NotFound
from ticketing.pagination import Order
from ticketing.routing import offers
from ticketing.skills import normalise_skills
from ticketing.users import repository
from ticketing.users.models import User
from ticketing.users.schemas import AvailabilityUpdate, UserUpdate
from ticketing.vocabulary import Role

log = logging.getLogger(__name__)

ADMIN_LOCK = "users:admins"
# A change to any of these may let someone take a waiting ticket.
_ROUTING_FIELDS = (
    "role",
    "is_active",
    "skills",
    "timezone",
    "working_hours",
    "away_until",
    "max_open_tickets",
)


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
    await repository.add(session, user)
    if user.is_staff:
        await offers.request_offer(session)  # someone new may take a waiting ticket
    return user


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
    before = _routing_state(user)
    user.role = new_role
    user.is_active = new_active
    if "skills" in fields and fields["skills"] is not None:
        user.skills = normalise_skills(fields["skills"])
    if "max_open_tickets" in fields:
        user.max_open_tickets = fields["max_open_tickets"]
    await _apply_availability(session, user, changes, before)
    return user


async def update_me(session: AsyncSession, user: User, changes: AvailabilityUpdate) -> User:
    """Someone changes their own name and availability (PATCH /auth/me)."""
    fresh = await repository.get_for_update(session, user.id)
    if fresh is None:
        raise NotFound("User not found")
    await _apply_availability(session, fresh, changes, _routing_state(fresh))
    return fresh


def _routing_state(user: User) -> tuple[object, ...]:
    return tuple(getattr(user, name) for name in _ROUTING_FIELDS)


async def _apply_availability(
    session: AsyncSession, user: User, changes: AvailabilityUpdate, before: tuple[object, ...]
) -> None:
    fields = changes.model_dump(exclude_unset=True)
    for name in ("timezone", "working_hours"):
        if name in fields and fields[name] is None:
            raise InvalidField(f"{name} cannot be null")
    if "name" in fields:
        user.name = fields["name"]
    if "timezone" in fields:
        user.timezone = fields["timezone"]
    if "working_hours" in fields:
        # Stored as plain {"day", "start", "end"} items, in the order given.
        user.working_hours = fields["working_hours"]
    if "away_until" in fields:
        user.away_until = fields["away_until"]
    await session.flush()
    if user.is_staff and user.is_active and _routing_state(user) != before:
        # Back from away, a longer shift, a higher cap, new skills: offer what waits.
        await offers.request_offer(session)


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
            await offers.request_offer(session)
            log.info("promoted account to admin", extra={"email": email})
        admins.append(user)
    await session.flush()
    return admins


# Triage reads the known skills for every ticket; they change when an admin edits someone.
# Kept a few seconds per process: another process's edit shows in prompts that much later.
KNOWN_SKILLS_SECONDS = 5.0
_known_skills: ProcessCache[tuple[str, ...]] = ProcessCache(KNOWN_SKILLS_SECONDS)
_SKILL_FIELDS = ("role", "is_active", "skills")


@event.listens_for(Session, "before_flush")
def _note_staff_changes(session: Session, _context: object, _instances: object) -> None:
    # Every write to users goes through the ORM: a new, deleted or re-skilled user drops this
    # process's copy of the known skills when the transaction commits.
    for user in (*session.new, *session.deleted):
        if isinstance(user, User):
            _known_skills.changed(session)
            return
    for user in session.dirty:
        if isinstance(user, User):
            attrs = inspect(user).attrs
            if any(attrs[name].history.has_changes() for name in _SKILL_FIELDS):
                _known_skills.changed(session)
                return


async def known_skills(session: AsyncSession) -> list[str]:
    """Every skill some active moderator or admin has: what triage may ask for (at most
    KNOWN_SKILLS_SECONDS old when another process changed them). For reads that write
    nothing (`Database.reading`): a transaction's own pending edits are not in the cache."""
    cached = _known_skills.get(session)
    if cached is None:
        generation = _known_skills.generation
        cached = tuple(await repository.known_skills(session))
        _known_skills.put(session, cached, generation)
    return list(cached)


def note_assignment(user: User, at: datetime) -> None:
    """`user` was just given a ticket (routing prefers whoever waited longest)."""
    user.last_assigned_at = at
