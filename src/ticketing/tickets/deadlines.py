"""A ticket's SLA: its due times and status kept current, the resolution clock paused while
the ticket waits, and one durable timer job per ticket that raises warnings and breaches.

The arithmetic is ticketing.sla's; this module applies its verdicts to tickets (tickets/ is the
only code that changes a ticket). A timer is a `sla_timer` job keyed `sla:<ticket id>`, due at
the next warning or breach instant; whenever the due times move it is planned again (the queued
one replaced), and a timer that finds nothing due only plans the next one. The flag that says
"raised", the timeline event and the mail jobs commit with the timer job's completion, so a
restart neither skips nor repeats a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.config import Settings
from ticketing.jobs import queue
from ticketing.jobs.queue import JobKind
from ticketing.sla import service as sla
from ticketing.sla.service import Alert, Clocks, Rules, SlaTarget, Verdict
from ticketing.tickets import emails
from ticketing.tickets import repository as repo
from ticketing.tickets.models import EventKind, Ticket
from ticketing.users import repository as users_repo
from ticketing.users.availability import is_available
from ticketing.users.models import User
from ticketing.vocabulary import Role, TicketStatus

SLA_TIMER = JobKind("sla_timer", max_attempts=10)
RECOMPUTE_BATCH = 500


def timer_key(ticket_id: str) -> str:
    return f"sla:{ticket_id}"


def _clocks(ticket: Ticket) -> Clocks:
    return Clocks(
        priority=ticket.priority,
        status=ticket.status,
        created_at=ticket.created_at,
        first_responded_at=ticket.first_responded_at,
        resolved_at=ticket.resolved_at,
        paused_at=ticket.sla_paused_at,
        paused_seconds=ticket.sla_paused_seconds,
        response_warned=ticket.sla_response_warned,
        response_breached=ticket.sla_response_breached,
        resolution_warned=ticket.sla_resolution_warned,
        resolution_breached=ticket.sla_resolution_breached,
    )


def _store(ticket: Ticket, verdict: Verdict) -> None:
    ticket.first_response_due_at = verdict.first_response_due_at
    ticket.resolution_due_at = verdict.resolution_due_at
    ticket.sla_status = verdict.status
    ticket.sla_next_due_at = verdict.next_due_at


def _timer(verdict: Verdict, now: datetime) -> datetime | None:
    """When the ticket's timer must run: now if something is due, else the next instant."""
    if verdict.alerts:
        return now
    return verdict.next_check_at


async def _plan_timers(
    session: AsyncSession,
    plans: Sequence[tuple[str, datetime | None]],
    *,
    replace: bool = True,
) -> None:
    """Queue each ticket's timer for its instant (None: it needs none). `replace=False`: the
    caller knows none is queued, so there is nothing to delete first."""
    due = [(timer_key(tid), {"ticket_id": tid}, at) for tid, at in plans if at is not None]
    if not replace:
        await queue.enqueue_many(session, SLA_TIMER, due)
        return
    idle = [timer_key(tid) for tid, at in plans if at is None]
    await queue.replace_queued(session, SLA_TIMER, due)
    await queue.cancel_queued(session, idle)


async def refresh(
    session: AsyncSession, ticket: Ticket, now: datetime, rules: Rules | None = None
) -> Verdict:
    """Compute the ticket's due times and SLA status again, and plan its timer."""
    rules = rules or await sla.get_rules(session)
    # A timer is only ever planned together with an SLA status (_store, then _plan_timers, in
    # one transaction): a ticket without one has no timer queued, so the first analysis of a
    # new ticket deletes nothing before queuing its first timer. (A failed timer an admin
    # queues again could make two; a timer run twice raises nothing twice.)
    had_status = ticket.sla_status is not None
    verdict = sla.evaluate(rules, _clocks(ticket), now)
    _store(ticket, verdict)
    await _plan_timers(session, [(ticket.id, _timer(verdict, now))], replace=had_status)
    return verdict


async def priority_changed(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    """New targets from the start: a warning may come again; a breach stays."""
    ticket.sla_response_warned = ticket.sla_response_breached
    ticket.sla_resolution_warned = ticket.sla_resolution_breached
    await refresh(session, ticket, now)


async def status_changed(
    session: AsyncSession, ticket: Ticket, old: TicketStatus, now: datetime
) -> None:
    """Stop the resolution clock when the ticket leaves open/in progress (waiting, resolved,
    closed), and start it again when it comes back, the due time moved out by the business
    time it stood still."""
    running = ticket.status in sla.RUNNING
    if not running and ticket.sla_paused_at is None:
        ticket.sla_paused_at = now
    elif running and ticket.sla_paused_at is not None:
        rules = await sla.get_rules(session)
        ticket.sla_paused_seconds += sla.paused_business_seconds(rules, ticket.sla_paused_at, now)
        ticket.sla_paused_at = None
    if ticket.priority is not None or ticket.sla_status is not None:
        await refresh(session, ticket, now)


async def responded(session: AsyncSession, ticket: Ticket, author: User, now: datetime) -> None:
    """A public comment: the first one by staff (not the requester) is the first response."""
    if ticket.first_responded_at is not None or not author.is_staff:
        return
    if author.id == ticket.created_by:
        return
    ticket.first_responded_at = now
    await refresh(session, ticket, now)


async def recompute_batch(session: AsyncSession, after: str, now: datetime) -> str | None:
    """Recompute the SLA of the next RECOMPUTE_BATCH active tickets with a priority (by id,
    after `after`); returns the last id done, or None when there were none left."""
    stmt = (
        select(Ticket)
        .where(
            Ticket.id > after,
            Ticket.priority.is_not(None),
            Ticket.status.in_(sla.ACTIVE),
        )
        .order_by(Ticket.id)
        .limit(RECOMPUTE_BATCH)
        .with_for_update()
    )
    tickets = (await session.scalars(stmt)).all()
    if not tickets:
        return None
    rules = await sla.get_rules(session)
    plans: list[tuple[str, datetime | None]] = []
    for ticket in tickets:
        verdict = sla.evaluate(rules, _clocks(ticket), now)
        _store(ticket, verdict)
        plans.append((ticket.id, _timer(verdict, now)))
    await _plan_timers(session, plans)
    return tickets[-1].id


@dataclass(frozen=True)
class TimerOutcome:
    alerts: tuple[Alert, ...]
    # A target was breached just now and the assignee cannot take care of it (away, off
    # shift, deactivated) or there is none: the ticket should be routed again.
    reroute: bool


NOTHING = TimerOutcome((), False)


async def run_timer(
    session: AsyncSession, settings: Settings, ticket_id: str, now: datetime
) -> TimerOutcome:
    """The ticket's SLA timer fired: raise what is due (flags, staff-only events, mail to the
    assignee, and on a breach to the active admins too), store the status, plan the next."""
    ticket = await repo.get(session, ticket_id, for_update=True)
    if ticket is None:
        return NOTHING
    rules = await sla.get_rules(session)
    verdict = sla.evaluate(rules, _clocks(ticket), now)
    assignee = await users_repo.get(session, ticket.assigned_to) if ticket.assigned_to else None
    reroute = False
    for alert in verdict.alerts:
        breach = alert.kind == "breach"
        if alert.target == SlaTarget.first_response:
            ticket.sla_response_warned = True
            ticket.sla_response_breached = ticket.sla_response_breached or breach
        else:
            ticket.sla_resolution_warned = True
            ticket.sla_resolution_breached = ticket.sla_resolution_breached or breach
        repo.add_event(
            session,
            ticket.id,
            EventKind.sla_breached if breach else EventKind.sla_warning,
            data={"target": alert.target, "due_at": alert.due_at.isoformat()},
            internal=True,
            at=now,
        )
        recipients = [assignee] if assignee is not None and assignee.is_active else []
        if breach:
            staff = await users_repo.active_staff_members(session)
            recipients += [u for u in staff if u.role == Role.admin]
            reroute = reroute or assignee is None or not is_available(assignee, now)
        for person in {p.id: p for p in recipients}.values():
            await emails.queue_sla_email(session, settings, ticket, person, alert, now)
    raised = verdict.alerts
    verdict = sla.evaluate(rules, _clocks(ticket), now)
    _store(ticket, verdict)
    if raised:
        ticket.updated_at = now
    await _plan_timers(session, [(ticket.id, _timer(verdict, now))])
    return TimerOutcome(raised, reroute)
