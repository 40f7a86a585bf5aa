"""GET /admin/reports/summary: the figures as JSON, or the period's tickets as CSV."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from ticketing.deps import AdminUser, RuntimeDep, SessionDep
from ticketing.reports import service
from ticketing.reports.schemas import Summary
from ticketing.responses import FIELD_ERRORS, FORBIDDEN, UNAUTHORIZED, Responses

router = APIRouter(prefix="/admin/reports", tags=["admin"], responses={**UNAUTHORIZED, **FORBIDDEN})

_MOMENT = "ISO 8601 date or timestamp (UTC when it has no offset); a date as `to` includes that day"

CSV_RESPONSE: Responses = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "The summary (JSON), or with format=csv one row per ticket created in "
        "the period",
    }
}


@router.get(
    "/summary",
    response_model=Summary,
    response_model_by_alias=True,
    responses={**CSV_RESPONSE, **FIELD_ERRORS},
)
async def report_summary(
    _admin: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
    from_: Annotated[str | None, Query(alias="from", max_length=40, description=_MOMENT)] = None,
    to: Annotated[str | None, Query(max_length=40, description=_MOMENT)] = None,
    format: Literal["json", "csv"] = "json",
) -> Summary | StreamingResponse:
    period = service.resolve_period(from_ or None, to or None)
    if format == "csv":
        return StreamingResponse(
            service.stream_csv(runtime.db, period),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{service.csv_filename(period)}"'
            },
        )
    return await service.summary(session, period)
