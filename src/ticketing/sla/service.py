"""The SLA policy, and what it means for one ticket at a moment: due times, status, what to
warn about, and when to look again.

Knows nothing of how tickets are stored: the tickets domain hands in a `Clocks` snapshot and
applies the `Verdict` (tickets/ is the only code that changes a ticket).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.jobs import queue
from ticketing.jobs.queue import JobKind
from ticketing.sla import repository as repo
from ticketing.sla.clock import BusinessClock
from ticketing.sla.schemas import SlaPolicy, default_policy
from ticketing.users.models import User
from ticketing.vocabulary import Priority, SlaStatus, TicketStatus

# After a policy change, the due times of every open ticket are computed again: by a chain of
# jobs, one batch of tickets each, so a request never waits for 100,000 tickets.
SLA_RECOMPUTE = JobKind("sla_recompute", max_attempts=10)
RECOMPUTE_KEY = "sla:recompute"

# The resolution clock runs only while the ticket is being worked on; it stands still while
# waiting on the requester, and stops when resolved or closed.
RUNNING = frozenset({TicketStatus.open, TicketStatus.in_progress})
ACTIVE = frozenset({TicketStatus.open, TicketStatus.in_progress, TicketStatus.waiting})


class SlaTarget(StrEnum):
    first_response = "first_response"
    resolution = "resolution"


@dataclass(frozen=True)
class Rules:
    """A policy ready to use: the targets and the business clock that counts them."""

    policy: SlaPolicy
    clock: BusinessClock

    def minutes(self, priority: Priority | None) -> tuple[int, int] | None:
        target = self.policy.policies.get(priority) if priority is not None else None
        if target is None:
            return None
        return target.first_response_minutes, target.resolution_minutes


_cached: tuple[str, Rules] | None = None


def rules_for(policy: SlaPolicy) -> Rules:
    """The policy with its clock; the clock (and its table of hours) is reused while the
    policy stays the same."""
    global _cached
    key = policy.model_dump_json()
    if _cached is None or _cached[0] != key:
        hours = policy.business_hours
        clock = BusinessClock(
            [p.model_dump() for p in hours.days] if hours else None,
            hours.timezone if hours else None,
            policy.holidays if hours else (),
        )
        _cached = (key, Rules(policy, clock))
    return _cached[1]


async def get_policy(session: AsyncSession) -> SlaPolicy:
    """The stored policy, or the defaults when none was ever set."""
    # Nothing the caller has pending bears on the policy: no flush for this read (the ticket
    # being triaged is flushed once, later, with its SLA fields).
    with session.no_autoflush:
        row = await repo.get_config(session)
    if row is None:
        return default_policy()
    return SlaPolicy.model_validate(row.data)


# The last stored policy read (None: no row, the defaults) and its rules.
_last_stored: tuple[dict[str, Any] | None, Rules] | None = None


async def get_rules(session: AsyncSession) -> Rules:
    """The stored policy ready to use. Read every time (a cached policy could be older than
    the recomputation a change queues); parsed only when the stored row differs from the last
    one read, which is a dict comparison."""
    global _last_stored
    with session.no_autoflush:
        row = await repo.get_config(session)
    data = row.data if row is not None else None
    last = _last_stored
    if last is not None and last[0] == data:
        return last[1]
    policy = default_policy() if data is None else SlaPolicy.model_validate(data)
    rules = rules_for(policy)
    _last_stored = (copy.deepcopy(data), rules)
    return rules


async def put_policy(session: AsyncSession, admin: User, policy: SlaPolicy) -> SlaPolicy:
    """Replace the policy, and queue the recomputation of every open ticket's due times (in
    the same transaction: a policy is never saved without its tickets following it)."""
    data: dict[str, Any] = json.loads(policy.model_dump_json())
    await repo.save_config(session, data, admin.id)
    await queue.replace_queued(session, SLA_RECOMPUTE, [(RECOMPUTE_KEY, {"after": ""}, None)])
    return policy


@dataclass(frozen=True)
class Clocks:
    """What the SLA needs to know about a ticket."""

    priority: Priority | None
    status: TicketStatus
    created_at: datetime
    first_responded_at: datetime | None
    resolved_at: datetime | None
    paused_at: datetime | None  # the resolution clock stands still since then
    paused_seconds: int  # business seconds of earlier pauses
    response_warned: bool = False
    response_breached: bool = False
    resolution_warned: bool = False
    resolution_breached: bool = False


@dataclass(frozen=True)
class Alert:
    target: SlaTarget
    kind: Literal["warning", "breach"]
    due_at: datetime


@dataclass(frozen=True)
class Verdict:
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    status: SlaStatus | None
    next_due_at: datetime | None  # the nearest due time still pending (for order=due)
    next_check_at: datetime | None  # when a timer must look again (None: never)
    alerts: tuple[Alert, ...]  # warnings and breaches due now that were not raised yet


NO_SLA = Verdict(None, None, None, None, None, ())


@dataclass(frozen=True)
class _Leg:
    """One target's clock: due and warning instants, where it stands, and its flags."""

    target: SlaTarget
    due: datetime
    warn: datetime
    point: datetime  # when the clock stopped, or now while it runs
    pending: bool  # the clock still runs: the target can still be met or missed
    warned: bool
    breached: bool

    @property
    def missed(self) -> bool:
        passed = self.point >= self.due if self.pending else self.point > self.due
        return self.breached or passed


def evaluate(rules: Rules, t: Clocks, now: datetime) -> Verdict:
    """Where `t` stands against the policy at `now`.

    Response: met by the first public staff comment (or the resolution, if none came first).
    Resolution: counted in business time while open or in progress, paused business time
    added to the due time. `breached` stays once raised; `met` is a finished ticket with no
    target missed.
    """
    minutes = rules.minutes(t.priority)
    if minutes is None:
        return NO_SLA
    response_minutes, resolution_minutes = minutes
    clock, ratio = rules.clock, rules.policy.warning_ratio
    paused_minutes = t.paused_seconds / 60
    finished = t.status not in ACTIVE

    answered = t.first_responded_at or (t.resolved_at or t.paused_at if finished else None)
    response = _Leg(
        SlaTarget.first_response,
        due=clock.add(t.created_at, response_minutes),
        warn=clock.add(t.created_at, response_minutes * ratio),
        point=answered or now,
        pending=answered is None,
        warned=t.response_warned,
        breached=t.response_breached,
    )
    resolution = _Leg(
        SlaTarget.resolution,
        due=clock.add(t.created_at, resolution_minutes + paused_minutes),
        warn=clock.add(t.created_at, resolution_minutes * ratio + paused_minutes),
        point=t.paused_at or now,
        pending=t.status in RUNNING and t.paused_at is None,
        warned=t.resolution_warned,
        breached=t.resolution_breached,
    )
    legs = (response, resolution)

    if any(leg.missed for leg in legs):
        status = SlaStatus.breached
    elif finished:
        status = SlaStatus.met
    elif any(leg.pending and leg.point >= leg.warn for leg in legs):
        status = SlaStatus.at_risk
    else:
        status = SlaStatus.on_track

    alerts: list[Alert] = []
    checks: list[datetime] = []
    for leg in legs:
        if leg.breached or finished:
            continue
        if leg.missed:
            alerts.append(Alert(leg.target, "breach", leg.due))
        elif leg.pending:
            if not leg.warned and now >= leg.warn:
                alerts.append(Alert(leg.target, "warning", leg.warn))
            checks.append(leg.due if leg.warned or now >= leg.warn else leg.warn)
    pending_dues = [leg.due for leg in legs if leg.pending and not finished]
    return Verdict(
        first_response_due_at=response.due,
        resolution_due_at=resolution.due,
        status=status,
        next_due_at=min(pending_dues, default=None),
        next_check_at=min(checks, default=None),
        alerts=tuple(alerts),
    )


def paused_business_seconds(rules: Rules, since: datetime, until: datetime) -> int:
    """Business time the resolution clock stood still, in whole seconds."""
    return int(rules.clock.between(since, until).total_seconds())
