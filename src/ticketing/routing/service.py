"""Who gets a ticket: best skill overlap, then lightest load, then least recently assigned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import lock_for_transaction
from ticketing.skills import skills_match
from ticketing.tickets import service as tickets_service
from ticketing.users import repository as users_repo
from ticketing.users.models import User
from ticketing.vocabulary import Role

ROUTING_LOCK = "routing"
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RoutingDecision:
    assignee: User | None
    reason: str


def _tickets(n: int) -> str:
    return f"{n} open ticket" + ("" if n == 1 else "s")


def _least_loaded(candidates: Sequence[User], loads: dict[str, int]) -> User:
    return min(
        candidates,
        key=lambda u: (loads.get(u.id, 0), u.last_assigned_at or _NEVER, u.id),
    )


async def choose_assignee(
    session: AsyncSession,
    required_skills: Sequence[str],
    ticket_id: str | None = None,
    requester_id: str | None = None,
) -> RoutingDecision:
    """Decide who should get a ticket needing `required_skills`.

    Never its requester: a moderator who files a ticket is a requester like anyone else.
    Serialised across processes so that loads are read fresh: concurrent tickets cannot all
    land on the same "least loaded" person. Call it in the transaction that assigns.
    """
    await lock_for_transaction(session, ROUTING_LOCK)

    def others(people: Sequence[User]) -> list[User]:
        return [u for u in people if u.id != requester_id]

    moderators = others(await users_repo.active_staff(session, Role.moderator))
    scored = [(u, skills_match(required_skills, u.skills)) for u in moderators]
    best = max((len(m) for _, m in scored), default=0)
    if best > 0:
        finalists = [u for u, m in scored if len(m) == best]
        loads = await tickets_service.open_loads(session, [u.id for u in finalists], ticket_id)
        winner = _least_loaded(finalists, loads)
        matched = tuple(next(m for u, m in scored if u.id == winner.id))
        load = loads.get(winner.id, 0)
        return RoutingDecision(winner, f"matched skills: {', '.join(matched)}; {_tickets(load)}")

    admins = others(await users_repo.active_staff(session, Role.admin))
    if admins:
        loads = await tickets_service.open_loads(session, [u.id for u in admins], ticket_id)
        winner = _least_loaded(admins, loads)
        load = loads.get(winner.id, 0)
        why = (
            f"no moderator has {', '.join(required_skills)}"
            if required_skills
            else "no skills identified"
        )
        return RoutingDecision(winner, f"{why}; least-loaded admin, {_tickets(load)}")
    return RoutingDecision(None, "no active moderator or admin to assign")
