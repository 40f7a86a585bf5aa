"""Tickets: create, see, change, comment, analyse, assign, and the timeline.

The only code that changes a ticket or writes its timeline. Services never commit: the caller's
unit of work does.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.config import Settings
from ticketing.db import lock_for_transaction, new_id, utcnow
from ticketing.errors import Conflict, Forbidden, InvalidField, NotFound, RateLimited
from ticketing.jobs import queue
from ticketing.jobs.queue import JobKind
from ticketing.pagination import Order
from ticketing.routing import offers
from ticketing.tickets import deadlines, emails, policy
from ticketing.tickets import repository as repo
from ticketing.tickets.models import Comment, EventKind, Ticket, TicketEvent
from ticketing.tickets.repository import LOAD_STATES, TicketFilters, TicketOrder, WaitingCursor
from ticketing.tickets.schemas import CommentCreate, TicketCreate, TicketUpdate
from ticketing.triage import repository as triage_repo
from ticketing.users import repository as users_repo
from ticketing.users import service as users_service
from ticketing.users.models import User
from ticketing.vocabulary import AnalysisStatus, Priority, Source, TicketStatus, TicketType

# A model call can fail for minutes (rate limits, outages); the fallback answers anyway, so
# attempts only run out when our own database keeps failing.
TRIAGE_TICKET = JobKind("triage_ticket", max_attempts=6)
NOT_FOUND = "Ticket not found"
RATE_WINDOW = timedelta(minutes=1)  # of TICKET_CREATE_PER_MINUTE and COMMENT_CREATE_PER_MINUTE


@dataclass(frozen=True)
class AnalysisRecord:
    """What an analysis concluded about a ticket, and how it was reached."""

    status: AnalysisStatus  # ai | fallback
    priority: Priority
    ticket_type: TicketType
    required_skills: list[str]
    helpful_notes: str | None
    provider: str
    model: str | None
    error: str | None
    # Per field, how sure the local model is (of its own answer, or of the AI's); None: unknown.
    confidence: dict[str, float] | None = None
    needs_review: bool = False


def triage_job_key(ticket_id: str) -> str:
    return f"triage:{ticket_id}"


def _queue_triage(session: AsyncSession, ticket_id: str, *, reason: str) -> None:
    queue.enqueue(
        session,
        TRIAGE_TICKET,
        {"ticket_id": ticket_id, "reason": reason},
        key=triage_job_key(ticket_id),
    )


async def find(session: AsyncSession, ticket_id: str, *, for_update: bool = False) -> Ticket | None:
    """The ticket, whoever may see it (for background work)."""
    return await repo.get(session, ticket_id, for_update=for_update)


async def open_loads(
    session: AsyncSession, user_ids: Sequence[str], exclude_ticket_id: str | None = None
) -> dict[str, int]:
    """Open and in-progress tickets per assignee (what routing balances)."""
    return await repo.open_loads(session, user_ids, exclude_ticket_id)


async def has_waiting(session: AsyncSession) -> bool:
    """Whether some ticket waits for someone to take it."""
    return await repo.has_waiting(session)


async def waiting_for_assignee(
    session: AsyncSession, *, limit: int, after: WaitingCursor | None = None
) -> list[tuple[Ticket, WaitingCursor]]:
    """Tickets nobody could take yet, most urgent first, then oldest (locked; see repo)."""
    return await repo.waiting_for_assignee(session, limit=limit, after=after)


def note_still_waiting(ticket: Ticket, reason: str) -> None:
    """A waiting ticket was offered again and still nobody can take it: keep the reason
    current (no timeline line: the offer runs every minute)."""
    if ticket.assignment_reason != reason:
        ticket.assignment_reason = reason


async def _offer_if_freed(
    session: AsyncSession, ticket: Ticket, before: tuple[str | None, TicketStatus]
) -> None:
    """Offer the waiting tickets again when this change freed someone's capacity."""
    assignee, status = before
    frees = assignee is not None and status in LOAD_STATES
    frees = frees and (ticket.assigned_to != assignee or ticket.status not in LOAD_STATES)
    back_open = (
        ticket.assigned_to is None
        and status != TicketStatus.open
        and ticket.status == TicketStatus.open
    )
    if (frees or back_open) and await repo.has_waiting(session):
        await offers.request_offer(session)


async def find_by_message_ids(session: AsyncSession, message_ids: Sequence[str]) -> Ticket | None:
    """The ticket whose conversation has one of `message_ids` (the latest such message's)."""
    found = await repo.find_message(session, message_ids)
    return None if found is None else await repo.get(session, found.ticket_id)


async def find_by_number(session: AsyncSession, number: int) -> Ticket | None:
    return await repo.get_by_number(session, number)


async def knows_message(session: AsyncSession, message_id: str) -> bool:
    """Whether this Message-ID is already part of a ticket's conversation (sent or received)."""
    return await repo.find_message(session, [message_id]) is not None


def note_dropped_attachments(
    session: AsyncSession, ticket: Ticket, names: Sequence[str], *, internal: bool
) -> None:
    """Files that came with a mail but were not kept (over a cap): say so on the ticket."""
    repo.add_event(
        session,
        ticket.id,
        EventKind.attachments_dropped,
        data={"names": list(names)},
        internal=internal,
    )


async def get_visible(
    session: AsyncSession, user: User, ticket_id: str, *, for_update: bool = False
) -> Ticket:
    """The ticket, or 404 whether it is missing or merely someone else's."""
    ticket = await repo.get(session, ticket_id, for_update=for_update)
    if ticket is None or not policy.can_see(user, ticket):
        raise NotFound(NOT_FOUND)
    return ticket


async def create_ticket(
    session: AsyncSession,
    settings: Settings,
    user: User,
    data: TicketCreate,
    *,
    source: Source = Source.web,
    message_id: str | None = None,
) -> Ticket:
    """Write the ticket, its `created` event and its triage job in one transaction.

    A ticket that came by email (`source`) records the mail's `message_id`, so that replies
    thread into it, and the requester gets an acknowledgement with its number.
    """
    now = utcnow()
    await _limit_rate(
        session,
        f"tickets:create:{user.id}",
        repo.tickets_filed_since(session, user.id, now - RATE_WINDOW),
        settings.ticket_create_per_minute,
        now,
        "You are filing tickets too quickly; try again shortly",
    )
    ticket = await repo.add(
        session,
        Ticket(
            id=new_id(),
            title=data.title,
            description=data.description,
            source=source,
            created_by=user.id,
            created_at=now,
            updated_at=now,
            required_skills=[],
        ),
    )
    repo.add_event(
        session, ticket.id, EventKind.created, actor_id=user.id, at=now, data={"source": source}
    )
    _queue_triage(session, ticket.id, reason="created")
    await session.flush()
    if source == Source.email:
        emails.record_received(session, ticket, message_id)
        await emails.queue_acknowledgement(session, settings, ticket, user)
    return ticket


async def _limit_rate(
    session: AsyncSession,
    lock_key: str,
    recent: Awaitable[tuple[int, datetime | None]],
    limit: int,
    now: datetime,
    message: str,
) -> None:
    """429 when `recent` (what the person did in the last RATE_WINDOW) is at `limit` already."""
    # Concurrent requests of one person must not all pass the count (PostgreSQL; SQLite
    # already serialises writers at BEGIN IMMEDIATE).
    await lock_for_transaction(session, lock_key)
    count, oldest = await recent
    if count >= limit:
        wait = math.ceil(((oldest or now) + RATE_WINDOW - now).total_seconds())
        raise RateLimited(wait, message)


async def list_tickets(
    session: AsyncSession,
    user: User,
    filters: TicketFilters,
    *,
    limit: int,
    cursor: str | None,
    order: TicketOrder,
    queue_of: str | None = None,
) -> Sequence[Ticket]:
    """Tickets `user` may see; with `queue_of`, only those assigned to that person."""
    visible = (
        [repo.assigned_to_clause(queue_of)]
        if queue_of is not None
        else policy.visible_alternatives(user)
    )
    return await repo.list_page(
        session, visible=visible, filters=filters, limit=limit, cursor=cursor, order=order
    )


async def update_ticket(
    session: AsyncSession, settings: Settings, user: User, ticket_id: str, changes: TicketUpdate
) -> Ticket:
    """Apply a partial update under the field-level rules of `policy`."""
    ticket = await get_visible(session, user, ticket_id, for_update=True)
    fields = changes.model_dump(exclude_unset=True)
    before = (ticket.assigned_to, ticket.status)

    # Authorisation first (403), then values (422), then state (409), then apply.
    policy.check_fields(user, ticket, fields)
    for name in ("status", "priority", "ticket_type", "required_skills"):
        if name in fields and fields[name] is None:
            raise InvalidField(f"{name} cannot be null")
    new_status: TicketStatus | None = changes.status if "status" in fields else None
    if new_status is not None:
        policy.check_status_move(user, ticket, new_status)

    now = utcnow()
    changed: dict[str, object] = {}
    for name in ("priority", "ticket_type", "required_skills"):
        if name in fields and fields[name] != getattr(ticket, name):
            changed[name] = {"from": getattr(ticket, name), "to": fields[name]}
            _record_correction(session, ticket, user, name, getattr(ticket, name), fields[name])
            setattr(ticket, name, fields[name])
    if changed:
        repo.add_event(
            session, ticket.id, EventKind.updated, actor_id=user.id, data=changed, at=now
        )
    if "priority" in changed:
        await deadlines.priority_changed(session, ticket, now)
    if ticket.needs_review and ("priority" in fields or "ticket_type" in fields):
        # Staff set (or confirmed) what the analysis was unsure of.
        ticket.needs_review = False

    if new_status is not None and new_status != ticket.status:
        await _move(session, settings, ticket, new_status, user, now)

    if "assigned_to" in fields and fields["assigned_to"] != ticket.assigned_to:
        await _reassign(session, settings, ticket, fields["assigned_to"], user)

    ticket.updated_at = now
    await session.flush()
    await _offer_if_freed(session, ticket, before)
    return ticket


def _plain(value: object) -> object:
    """A field's value as JSON: enums by value, skill lists as lists."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _record_correction(
    session: AsyncSession, ticket: Ticket, user: User, name: str, before: object, after: object
) -> None:
    """A staff change to what an analysis decided is a label for triage (same transaction)."""
    if ticket.analyzed_at is None or not user.is_staff:
        return
    triage_repo.add_correction(
        session,
        ticket_id=ticket.id,
        field=name,
        before=_plain(before),
        after=_plain(after),
        provider=ticket.analysis_provider,
        model=ticket.analysis_model,
        actor_id=user.id,
    )


async def _move(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    new_status: TicketStatus,
    user: User,
    now: datetime,
) -> None:
    old = ticket.status
    ticket.status = new_status
    if new_status == TicketStatus.resolved:
        ticket.resolved_at = now
        creator = await users_repo.get(session, ticket.created_by)
        if creator is not None and creator.id != user.id and creator.is_active:
            await emails.queue_resolved_email(session, settings, ticket, creator)
    elif new_status == TicketStatus.open:
        ticket.resolved_at = None
    await deadlines.status_changed(session, ticket, old, now)
    repo.add_event(
        session,
        ticket.id,
        EventKind.status_changed,
        actor_id=user.id,
        data={"from": old, "to": new_status},
        at=now,
    )


async def _reassign(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    assignee_id: str | None,
    admin: User,
) -> None:
    if assignee_id is None:
        ticket.assigned_to = None
        ticket.assigned_at = None
        ticket.assignment_reason = f"unassigned by {admin.email}"
        repo.add_event(
            session,
            ticket.id,
            EventKind.assigned,
            actor_id=admin.id,
            data={"to": None, "reason": ticket.assignment_reason},
            internal=True,
        )
        return
    if ticket.status == TicketStatus.closed:
        raise Conflict("A closed ticket cannot be reassigned")
    assignee = await users_repo.get(session, assignee_id)
    if assignee is None or not assignee.is_active or not assignee.is_staff:
        raise InvalidField("assigned_to must be an active moderator or admin")
    await assign(session, settings, ticket, assignee, f"assigned by admin {admin.email}", admin.id)


async def assign(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    assignee: User,
    reason: str,
    actor_id: str | None,
) -> None:
    """Give `ticket` to `assignee`, record why, and email them (all in the caller's transaction)."""
    now = utcnow()
    previous = ticket.assigned_to
    ticket.assigned_to = assignee.id
    ticket.assigned_at = now
    ticket.assignment_reason = reason
    ticket.updated_at = now
    users_service.note_assignment(assignee, now)
    repo.add_event(
        session,
        ticket.id,
        EventKind.assigned,
        actor_id=actor_id,
        data={"to": assignee.id, "to_email": assignee.email, "from": previous, "reason": reason},
        internal=True,
        at=now,  # as the analysis's line sets it: the ORM writes both in one INSERT
    )
    await emails.queue_assignment_email(session, settings, ticket, assignee, reason)


def leave_unassigned(session: AsyncSession, ticket: Ticket, reason: str) -> None:
    """Record why nobody could be given an unassigned ticket."""
    ticket.assignment_reason = reason
    repo.add_event(session, ticket.id, EventKind.unassigned, internal=True, data={"reason": reason})


async def refresh_sla(
    session: AsyncSession, ticket: Ticket, previous_priority: Priority | None
) -> None:
    """Compute the ticket's SLA due times and status now (after an analysis set its priority),
    and plan its timer; a changed priority counts from the start, as a staff change does."""
    if previous_priority is not None and previous_priority != ticket.priority:
        await deadlines.priority_changed(session, ticket, utcnow())
    else:
        await deadlines.refresh(session, ticket, utcnow())


async def recompute_sla_batch(session: AsyncSession, after: str) -> str | None:
    """After a policy change: the next batch of active tickets (by id, after `after`); returns
    the last id done, or None when all are done."""
    return await deadlines.recompute_batch(session, after, utcnow())


async def run_sla_timer(
    session: AsyncSession, settings: Settings, ticket_id: str
) -> deadlines.TimerOutcome:
    """A ticket's SLA timer fired: raise what is due and plan the next (see deadlines)."""
    return await deadlines.run_timer(session, settings, ticket_id, utcnow())


def record_analysis(session: AsyncSession, ticket: Ticket, analysis: AnalysisRecord) -> None:
    """Store an analysis's conclusions on the ticket and in its (staff-only) timeline."""
    now = utcnow()
    ticket.priority = analysis.priority
    ticket.ticket_type = analysis.ticket_type
    ticket.required_skills = list(analysis.required_skills)
    ticket.helpful_notes = analysis.helpful_notes or None
    ticket.analysis_status = analysis.status
    ticket.analysis_provider = analysis.provider
    ticket.analysis_model = analysis.model
    ticket.analysis_error = analysis.error
    ticket.analysis_confidence = (
        dict(analysis.confidence) if analysis.confidence is not None else None
    )
    ticket.needs_review = analysis.needs_review
    ticket.analyzed_at = now
    ticket.updated_at = now
    repo.add_event(
        session,
        ticket.id,
        EventKind.analysed,
        internal=True,
        at=now,
        data={
            "outcome": analysis.status,
            "provider": analysis.provider,
            "model": analysis.model,
            "error": analysis.error,
            "priority": analysis.priority,
            "ticket_type": analysis.ticket_type,
            "required_skills": ticket.required_skills,
            "confidence": ticket.analysis_confidence,
            "needs_review": ticket.needs_review,
        },
    )


async def record_email_sent(
    session: AsyncSession, ticket_id: str, *, to: str | None, kind: str | None
) -> None:
    """A ticket's email went out: a timeline line (public only for what the requester got)."""
    # Nothing when the ticket was deleted meanwhile; the mail is gone anyway.
    await repo.add_event_if_ticket_exists(
        session,
        ticket_id,
        EventKind.emailed,
        data={"to": to, "kind": kind},
        internal=kind != "resolved",
    )


async def add_comment(
    session: AsyncSession,
    settings: Settings,
    user: User,
    ticket_id: str,
    data: CommentCreate,
    *,
    source: Source = Source.web,
    message_id: str | None = None,
) -> Comment:
    """Add a reply or an internal note, within the per-person rate and the per-ticket cap.

    A reply by the requester moves a ticket that waits on them (or a resolved one) back to
    open; a public reply by staff goes on to the requester by email. `message_id`: the mail
    this comment came in, which joins the ticket's conversation.
    """
    ticket = await get_visible(session, user, ticket_id, for_update=True)
    if data.internal and not policy.sees_staff_only(user, ticket):
        raise Forbidden("Only the ticket's assignee and admins can write internal notes")
    if ticket.status == TicketStatus.closed:
        raise Conflict("A closed ticket takes no more comments; file a new ticket")
    now = utcnow()
    await _limit_rate(
        session,
        f"comments:create:{user.id}",
        repo.comments_written_since(session, user.id, now - RATE_WINDOW),
        settings.comment_create_per_minute,
        now,
        "You are commenting too quickly; try again shortly",
    )
    if await repo.count_comments(session, ticket.id) >= settings.max_comments_per_ticket:
        raise Conflict(
            f"This ticket has reached {settings.max_comments_per_ticket} comments; "
            "file a new ticket to go on"
        )
    comment = repo.add_comment(
        session,
        Comment(
            id=new_id(),
            ticket_id=ticket.id,
            author_id=user.id,
            body=data.body,
            internal=data.internal,
            source=source,
            created_at=now,
        ),
    )
    repo.add_event(
        session,
        ticket.id,
        EventKind.commented,
        actor_id=user.id,
        data={"comment_id": comment.id, "internal": data.internal, "source": source},
        internal=data.internal,
        at=now,
    )
    if source == Source.email:
        emails.record_received(session, ticket, message_id)
    if not data.internal:
        await deadlines.responded(session, ticket, user, now)
        moved = policy.move_on_requester_reply(user, ticket)
        if moved is not None:
            await _move(session, settings, ticket, moved, user, now)
        elif policy.sees_staff_only(user, ticket):
            requester = await users_repo.get(session, ticket.created_by)
            if requester is not None and requester.is_active and requester.id != user.id:
                await emails.queue_reply_email(session, settings, ticket, requester, comment, user)
    ticket.updated_at = now
    await session.flush()
    return comment


async def find_comment(session: AsyncSession, ticket_id: str, comment_id: str) -> Comment | None:
    """A comment of this ticket, whoever may see it (the caller checks who asks)."""
    return await repo.get_comment(session, ticket_id, comment_id)


async def list_comments(
    session: AsyncSession,
    user: User,
    ticket_id: str,
    *,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Sequence[Comment]:
    ticket = await get_visible(session, user, ticket_id)
    return await repo.list_comments(
        session,
        ticket.id,
        include_internal=policy.sees_staff_only(user, ticket),
        limit=limit,
        cursor=cursor,
        order=order,
    )


async def list_events(
    session: AsyncSession,
    user: User,
    ticket_id: str,
    *,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Sequence[TicketEvent]:
    ticket = await get_visible(session, user, ticket_id)
    return await repo.list_events(
        session,
        ticket.id,
        include_internal=policy.sees_staff_only(user, ticket),
        limit=limit,
        cursor=cursor,
        order=order,
    )


@dataclass(frozen=True)
class Reanalysis:
    queued: int  # jobs queued now
    ticket_ids: list[str]  # every ticket concerned, each now with a triage job pending


async def _queue_reanalysis(session: AsyncSession, ticket_ids: Sequence[str]) -> Reanalysis:
    """Queue re-analysis for each ticket that has none pending."""
    queued = 0
    for ticket_id in ticket_ids:
        if await queue.has_pending(session, triage_job_key(ticket_id)):
            continue
        _queue_triage(session, ticket_id, reason="rerun")
        queued += 1
    return Reanalysis(queued, list(ticket_ids))


async def rerun_fallback_tickets(session: AsyncSession) -> Reanalysis:
    """Queue re-analysis of every open or in-progress ticket whose analysis fell back."""
    return await _queue_reanalysis(session, await repo.rerun_candidates(session))


async def reanalyze_ticket(session: AsyncSession, ticket_id: str) -> Reanalysis:
    """Queue re-analysis of one ticket, whatever its analysis status (404 if it is missing)."""
    if await repo.get(session, ticket_id) is None:
        raise NotFound(NOT_FOUND)
    return await _queue_reanalysis(session, [ticket_id])
