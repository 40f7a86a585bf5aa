from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ticketing.deps import AdminUser, SessionDep
from ticketing.mail import repository
from ticketing.mail.models import InboundOutcome
from ticketing.mail.schemas import InboundEmailOut
from ticketing.pagination import Order, Page, page_of
from ticketing.responses import BAD_CURSOR, FORBIDDEN, UNAUTHORIZED

router = APIRouter(prefix="/admin", tags=["admin"], responses={**UNAUTHORIZED, **FORBIDDEN})


@router.get(
    "/inbound-emails",
    response_model=Page[InboundEmailOut],
    response_model_by_alias=True,
    responses=BAD_CURSOR,
)
async def list_inbound_emails(
    _admin: AdminUser,
    session: SessionDep,
    outcome: InboundOutcome | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    order: Order = "newest",
) -> Page[InboundEmailOut]:
    """Every message read from the support mailbox and what became of it, newest first:
    nothing that was ignored or rejected disappears silently."""
    rows = await repository.list_page(
        session, outcome=outcome, limit=limit, cursor=cursor, order=order
    )
    items, next_cursor = page_of(list(rows), limit, moment="received_at")
    return Page(items=[InboundEmailOut.model_validate(r) for r in items], next_cursor=next_cursor)
