"""Who gets a ticket: among the staff who are available and under their cap, the best skill
overlap among moderators, then the lightest load, then the least recently assigned; no
moderator matches: the least-loaded available admin; nobody can take it: it waits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import lock_for_transaction, utcnow
from ticketing.skills import skills_match
from ticketing.tickets import service as tickets_service
from ticketing.users import repository as users_repo
from ticketing.users.availability import Availability, availability
from ticketing.users.models import User
from ticketing.vocabulary import Role

ROUTING_LOCK = "routing"
WAITING_PREFIX = "waiting:"
_NEVER = datetime.min.replace(tzinfo=UTC)
AT_CAPACITY = "at capacity"


@dataclass(frozen=True)
class RoutingDecision:
    assignee: User | None
    reason: str

    @property
    def waiting(self) -> bool:
        return self.assignee is None


def _tickets(n: int) -> str:
    return f"{n} open ticket" + ("" if n == 1 else "s")


@dataclass
class StaffPool:
    """The active staff, their loads and who of them can take a ticket now: read once under
    the routing lock, then used for any number of decisions in that transaction (`took`
    keeps the loads current as tickets are handed out)."""

    moderators: list[User]
    admins: list[User]
    loads: dict[str, int]
    now: datetime
    _state: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for user in (*self.moderators, *self.admins):
            self._state[user.id] = availability(user, self.now).value

    def _why_not(self, user: User) -> str | None:
        """None if `user` can take one more ticket, else why not."""
        state = self._state[user.id]
        if state != Availability.available:
            return state
        cap = user.max_open_tickets
        if cap is not None and self.loads.get(user.id, 0) >= cap:
            return AT_CAPACITY
        return None

    def can_take_any(self) -> bool:
        return any(self._why_not(u) is None for u in (*self.moderators, *self.admins))

    def took(self, user: User) -> None:
        self.loads[user.id] = self.loads.get(user.id, 0) + 1

    def _least_loaded(self, candidates: Sequence[User]) -> User:
        return min(
            candidates,
            key=lambda u: (self.loads.get(u.id, 0), u.last_assigned_at or _NEVER, u.id),
        )

    def decide(self, required_skills: Sequence[str], requester_id: str | None) -> RoutingDecision:
        """Who should get a ticket needing `required_skills`; never its requester (a moderator
        who files a ticket is a requester like anyone else)."""
        unable: Counter[str] = Counter()

        def able(people: Sequence[User]) -> list[User]:
            found = []
            for user in people:
                if user.id == requester_id:
                    continue
                why = self._why_not(user)
                if why is None:
                    found.append(user)
                else:
                    unable[why] += 1
            return found

        moderators = able(self.moderators)
        scored = [(u, skills_match(required_skills, u.skills)) for u in moderators]
        best = max((len(m) for _, m in scored), default=0)
        if best > 0:
            finalists = [u for u, m in scored if len(m) == best]
            winner = self._least_loaded(finalists)
            matched = next(m for u, m in scored if u.id == winner.id)
            load = self.loads.get(winner.id, 0)
            return RoutingDecision(
                winner, f"matched skills: {', '.join(matched)}; {_tickets(load)}"
            )
        # Moderators who could not take it but have the skills: say so, not "nobody has".
        skilled_away = sum(
            1
            for u in self.moderators
            if u.id != requester_id
            and self._why_not(u) is not None
            and skills_match(required_skills, u.skills)
        )
        admins = able(self.admins)
        if admins:
            winner = self._least_loaded(admins)
            load = self.loads.get(winner.id, 0)
            if not required_skills:
                why = "no skills identified"
            elif skilled_away:
                why = f"no available moderator has {', '.join(required_skills)}"
            else:
                why = f"no moderator has {', '.join(required_skills)}"
            return RoutingDecision(winner, f"{why}; least-loaded admin, {_tickets(load)}")
        if not unable:
            return RoutingDecision(None, f"{WAITING_PREFIX} no active moderator or admin")
        counts = ", ".join(
            f"{unable[k]} {k}"
            for k in (Availability.away, Availability.off_shift, AT_CAPACITY)
            if unable[k]
        )
        if moderators:
            # Available moderators without the skills, and no admin to fall back on.
            return RoutingDecision(
                None,
                f"{WAITING_PREFIX} no available moderator has {', '.join(required_skills)} "
                f"and no admin is available ({counts})",
            )
        return RoutingDecision(None, f"{WAITING_PREFIX} nobody available ({counts})")


async def staff_pool(
    session: AsyncSession, *, now: datetime | None = None, exclude_ticket_id: str | None = None
) -> StaffPool:
    """Take the routing lock and read the staff and their loads fresh.

    Serialised across processes (an advisory lock on PostgreSQL, held until the transaction
    ends) so that loads are read fresh: concurrent tickets cannot all land on the same "least
    loaded" person, nor push anyone past their cap. Call it in the transaction that assigns.
    `exclude_ticket_id`: a ticket being routed again does not count in its assignee's load.
    """
    await lock_for_transaction(session, ROUTING_LOCK)
    staff = await users_repo.active_staff_members(session)
    moderators = [u for u in staff if u.role == Role.moderator]
    admins = [u for u in staff if u.role == Role.admin]
    loads = await tickets_service.open_loads(
        session, [u.id for u in (*moderators, *admins)], exclude_ticket_id
    )
    return StaffPool(moderators, admins, loads, now or utcnow())


async def choose_assignee(
    session: AsyncSession,
    required_skills: Sequence[str],
    ticket_id: str | None = None,
    requester_id: str | None = None,
    *,
    now: datetime | None = None,
) -> RoutingDecision:
    """Decide who should get one ticket needing `required_skills` (see `staff_pool`)."""
    pool = await staff_pool(session, now=now, exclude_ticket_id=ticket_id)
    return pool.decide(required_skills, requester_id)
