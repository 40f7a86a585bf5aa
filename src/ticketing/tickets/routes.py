from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.attachments import service as attachments_service
from ticketing.attachments.schemas import AttachmentOut
from ticketing.deps import AdminUser, CurrentUser, SessionDep, SettingsDep, StaffUser
from ticketing.errors import Forbidden
from ticketing.pagination import Order, Page, page_of, page_of_soonest
from ticketing.responses import (
    BAD_CURSOR,
    FIELD_ERRORS,
    FORBIDDEN,
    UNAUTHORIZED,
    conflict,
    not_found,
    rate_limited,
)
from ticketing.tickets import policy, service
from ticketing.tickets.models import Comment, Ticket
from ticketing.tickets.repository import TicketFilters, TicketOrder
from ticketing.tickets.schemas import (
    CommentCreate,
    CommentOut,
    EventOut,
    QueuedOut,
    TicketCreate,
    TicketOut,
    TicketUpdate,
)
from ticketing.users.models import User
from ticketing.vocabulary import (
    AnalysisStatus,
    Priority,
    Role,
    SlaStatus,
    Source,
    TicketStatus,
    TicketType,
)

router = APIRouter(tags=["tickets"], responses=UNAUTHORIZED)
admin_router = APIRouter(prefix="/admin", tags=["admin"], responses={**UNAUTHORIZED, **FORBIDDEN})

Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=500)]
Id = Annotated[str | None, Query(max_length=36)]
NOT_FOUND = not_found("No such ticket, or not yours to see")


def ticket_out(ticket: Ticket, viewer: User) -> TicketOut:
    out = TicketOut.model_validate(ticket)
    # Set in place rather than model_copy(update=...): a page builds fifty of these.
    may = policy.grants(viewer, ticket)
    out.allowed_status = may.status
    out.allowed_fields = may.fields
    out.allowed_actions = may.actions
    if not may.staff_only:
        # Advice and routing details are for staff.
        out.helpful_notes = None
        out.analysis_error = None
        out.assignment_reason = None
        out.analysis_confidence = None
        out.needs_review = None
    return out


def _filters(
    status: TicketStatus | None = None,
    priority: Priority | None = None,
    ticket_type: TicketType | None = None,
    created_by: Id = None,
    analysis_status: AnalysisStatus | None = None,
    source: Source | None = None,
    sla_status: SlaStatus | None = None,
    number: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> TicketFilters:
    return TicketFilters(
        status=status,
        priority=priority,
        ticket_type=ticket_type,
        created_by=created_by,
        analysis_status=analysis_status,
        source=source,
        number=number,
        sla_status=sla_status,
        q=q or None,
    )


async def comments_out(
    session: AsyncSession, ticket_id: str, comments: list[Comment]
) -> list[CommentOut]:
    """Comments with their files (one query for all of them)."""
    files = await attachments_service.files_of_comments(session, ticket_id, comments)
    return [
        CommentOut.model_validate(c).model_copy(
            update={"attachments": [AttachmentOut.model_validate(a) for a in files[c.id]]}
        )
        for c in comments
    ]


def _ticket_page(
    rows: list[Ticket], limit: int, order: TicketOrder
) -> tuple[list[Ticket], str | None]:
    if order == "due":
        return page_of_soonest(rows, limit, "sla_next_due_at")
    return page_of(rows, limit)


# The filters both lists take (GET /tickets also filters by assignee).
Filters = Annotated[TicketFilters, Depends(_filters)]


CREATE_RESPONSES = rate_limited("Too many tickets filed in the last minute")


@router.post(
    "/tickets/create",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketOut,
    responses=CREATE_RESPONSES,
)
@router.post(
    "/tickets",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketOut,
    responses=CREATE_RESPONSES,
    summary="Create Ticket (REST alias of /tickets/create)",
)
async def create_ticket(
    body: TicketCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> TicketOut:
    ticket = await service.create_ticket(session, settings, user, body)
    return ticket_out(ticket, user)


@router.get("/tickets", response_model=Page[TicketOut], responses=BAD_CURSOR)
async def list_tickets(
    user: CurrentUser,
    session: SessionDep,
    filters: Filters,
    assigned_to: Id = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    order: TicketOrder = "newest",
) -> Page[TicketOut]:
    filters = replace(filters, assigned_to=assigned_to)
    rows = await service.list_tickets(
        session, user, filters, limit=limit, cursor=cursor, order=order
    )
    items, next_cursor = _ticket_page(list(rows), limit, order)
    return Page(items=[ticket_out(t, user) for t in items], next_cursor=next_cursor)


@router.get(
    "/moderator/tickets", response_model=Page[TicketOut], responses={**BAD_CURSOR, **FORBIDDEN}
)
async def moderator_tickets(
    user: StaffUser,
    session: SessionDep,
    filters: Filters,
    moderator_id: Id = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    order: TicketOrder = "newest",
) -> Page[TicketOut]:
    queue_of = user.id
    if moderator_id is not None and moderator_id != user.id:
        if user.role != Role.admin:
            raise Forbidden("Only admins can look at another moderator's queue")
        queue_of = moderator_id
    rows = await service.list_tickets(
        session, user, filters, limit=limit, cursor=cursor, order=order, queue_of=queue_of
    )
    items, next_cursor = _ticket_page(list(rows), limit, order)
    return Page(items=[ticket_out(t, user) for t in items], next_cursor=next_cursor)


@router.get("/tickets/{ticket_id}", response_model=TicketOut, responses=NOT_FOUND)
async def get_ticket(ticket_id: str, user: CurrentUser, session: SessionDep) -> TicketOut:
    return ticket_out(await service.get_visible(session, user, ticket_id), user)


@router.patch(
    "/tickets/{ticket_id}",
    response_model=TicketOut,
    responses={
        **FORBIDDEN,
        **NOT_FOUND,
        **conflict("Not a status move the ticket can make"),
        **FIELD_ERRORS,
    },
)
async def update_ticket(
    ticket_id: str,
    body: TicketUpdate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> TicketOut:
    ticket = await service.update_ticket(session, settings, user, ticket_id, body)
    return ticket_out(ticket, user)


@router.post(
    "/tickets/{ticket_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentOut,
    responses={
        **FORBIDDEN,
        **NOT_FOUND,
        **conflict("The ticket is closed, or has reached its comment cap"),
        **rate_limited("Too many comments written in the last minute"),
    },
)
async def add_comment(
    ticket_id: str,
    body: CommentCreate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> CommentOut:
    comment = await service.add_comment(session, settings, user, ticket_id, body)
    return CommentOut.model_validate(comment)


@router.get(
    "/tickets/{ticket_id}/comments",
    response_model=Page[CommentOut],
    responses={**BAD_CURSOR, **NOT_FOUND},
)
async def list_comments(
    ticket_id: str,
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    order: Order = "newest",
) -> Page[CommentOut]:
    rows = await service.list_comments(
        session, user, ticket_id, limit=limit, cursor=cursor, order=order
    )
    items, next_cursor = page_of(list(rows), limit)
    return Page(items=await comments_out(session, ticket_id, items), next_cursor=next_cursor)


@router.get(
    "/tickets/{ticket_id}/events",
    response_model=Page[EventOut],
    responses={**BAD_CURSOR, **NOT_FOUND},
)
async def list_events(
    ticket_id: str,
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    order: Order = "newest",
) -> Page[EventOut]:
    rows = await service.list_events(
        session, user, ticket_id, limit=limit, cursor=cursor, order=order
    )
    items, next_cursor = page_of(list(rows), limit)
    return Page(items=[EventOut.model_validate(e) for e in items], next_cursor=next_cursor)


@router.post(
    "/tickets/{ticket_id}/reanalyze",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=QueuedOut,
    responses={**FORBIDDEN, **NOT_FOUND},
)
async def reanalyze(ticket_id: str, _admin: AdminUser, session: SessionDep) -> QueuedOut:
    return QueuedOut(queued=(await service.reanalyze_ticket(session, ticket_id)).queued)


@admin_router.post("/rerun-ai", status_code=status.HTTP_202_ACCEPTED, response_model=QueuedOut)
async def rerun_ai(_admin: AdminUser, session: SessionDep) -> QueuedOut:
    return QueuedOut(queued=(await service.rerun_fallback_tickets(session)).queued)
