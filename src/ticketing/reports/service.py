"""The summary report and its CSV: the period, the figures and safe CSV cells."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import READ_ONLY, Database, utcnow
from ticketing.errors import InvalidField
from ticketing.reports import repository as repo
from ticketing.reports.repository import Period
from ticketing.reports.schemas import (
    AiFigures,
    AssigneeFigures,
    Backlog,
    Corrected,
    Durations,
    Sla,
    Summary,
)
from ticketing.vocabulary import Priority, SlaStatus, TicketStatus, TicketType

DEFAULT_DAYS = 30
MAX_DAYS = 366
NONE_KEY = "none"  # priority or type not set (yet)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_moment(name: str, value: str, *, end: bool) -> datetime:
    """An ISO 8601 timestamp (no offset = UTC) or a date: the start of that day (UTC), or for
    the end of a period, the start of the next day, so that `to=2026-11-30` includes the 30th."""
    try:
        if _DATE.match(value):
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time(), tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        raise InvalidField(
            f"'{name}' must be an ISO 8601 date (2026-11-30) or timestamp (2026-11-30T09:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def resolve_period(start: str | None, end: str | None, now: datetime | None = None) -> Period:
    """The half-open period [from, to) of a report: by default the last 30 days up to now.
    Only `from`: the 30 days from it; only `to`: the 30 days before it.
    422 when `from` is after `to` or the period is longer than 366 days."""
    now = now or utcnow()
    end_at = _parse_moment("to", end, end=True) if end else None
    start_at = _parse_moment("from", start, end=False) if start else None
    try:
        if start_at is None:
            end_at = end_at or now
            start_at = end_at - timedelta(days=DEFAULT_DAYS)
        elif end_at is None:
            end_at = start_at + timedelta(days=DEFAULT_DAYS)
    except OverflowError:
        raise InvalidField("The period must lie between the years 1 and 9999") from None
    if start_at > end_at:
        raise InvalidField("'from' must not be after 'to'")
    if end_at - start_at > timedelta(days=MAX_DAYS):
        raise InvalidField(f"The period may be at most {MAX_DAYS} days long")
    return Period(start_at, end_at)


async def summary(session: AsyncSession, period: Period) -> Summary:
    """Every figure of the summary report, each an aggregate query (see the repository)."""
    groups = await repo.period_groups(session, period)
    by_priority = {p.value: 0 for p in Priority} | {NONE_KEY: 0}
    by_type = {t.value: 0 for t in TicketType} | {NONE_KEY: 0}
    for group in groups:
        by_priority[group.priority.value if group.priority else NONE_KEY] += group.created
        by_type[group.ticket_type.value if group.ticket_type else NONE_KEY] += group.created
    breached_by_person: dict[str, int] = {}
    for group in groups:
        if group.assigned_to is not None:
            breached_by_person[group.assigned_to] = (
                breached_by_person.get(group.assigned_to, 0) + group.sla_breached
            )
    met = sum(group.sla_met for group in groups)
    breached = sum(group.sla_breached for group in groups)
    times = await repo.period_times(
        session,
        period,
        responded=sum(group.responded for group in groups),
        resolved=sum(group.resolved for group in groups),
    )

    backlog = {state.value: 0 for state in repo.BACKLOG_STATES}
    backlog_priority = {p.value: 0 for p in Priority} | {NONE_KEY: 0}
    unassigned = at_risk = breached_now = 0
    for status, priority, sla_status, is_unassigned, n in await repo.backlog(session):
        backlog[TicketStatus(status).value] += n
        backlog_priority[priority.value if priority else NONE_KEY] += n
        unassigned += n if is_unassigned else 0
        at_risk += n if sla_status == SlaStatus.at_risk else 0
        breached_now += n if sla_status == SlaStatus.breached else 0

    return Summary(
        from_=period.start,
        to=period.end,
        created=sum(group.created for group in groups),
        resolved=await repo.resolved_count(session, period),
        backlog=Backlog(
            open=backlog[TicketStatus.open],
            in_progress=backlog[TicketStatus.in_progress],
            waiting=backlog[TicketStatus.waiting],
            unassigned=unassigned,
            at_risk=at_risk,
            breached=breached_now,
            by_priority=backlog_priority,
        ),
        first_response_minutes=Durations(
            median=times.first_response_median, p90=times.first_response_p90
        ),
        resolution_minutes=Durations(median=times.resolution_median, p90=times.resolution_p90),
        sla=Sla(
            met=met,
            breached=breached,
            compliance=round(met / (met + breached), 4) if met + breached else None,
        ),
        by_priority=by_priority,
        by_type=by_type,
        by_assignee=[
            AssigneeFigures(
                user_id=row.user_id,
                name=row.name,
                open=row.open,
                resolved=row.resolved,
                breached=row.breached,
            )
            for row in await repo.by_assignee(session, period, breached_by_person)
        ],
        ai=AiFigures(
            analysed=sum(group.analysed for group in groups),
            fallback=sum(group.fallback for group in groups),
            corrected=Corrected(**await repo.corrected_counts(session, period)),
        ),
    )


# ---- CSV ----------------------------------------------------------------------------------

CSV_COLUMNS = (
    "id",
    "number",
    "created_at",
    "title",
    "status",
    "priority",
    "ticket_type",
    "source",
    "assignee_name",
    "assignee_email",
    "first_responded_at",
    "resolved_at",
    "first_response_minutes",
    "resolution_minutes",
    "sla_status",
    "analysis_status",
    "analysis_provider",
)

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP: CSV injection);
# TAB and CR too, because some programs skip them before looking.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str | int:
    """One CSV cell: text that a spreadsheet would run as a formula gets a leading quote
    (shown as text, not run); timestamps as ISO 8601 with offset; minutes to 0.1."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value.value if hasattr(value, "value") else value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue()


def csv_filename(period: Period) -> str:
    return f"tickets-{period.start:%Y%m%d}-{period.end:%Y%m%d}.csv"


async def stream_csv(db: Database, period: Period) -> AsyncIterator[bytes]:
    """The period's tickets as CSV, one batch of rows at a time (never the whole file in
    memory). Runs after the response has started, so it has its own read-only session."""
    yield _csv_text([CSV_COLUMNS]).encode("utf-8")
    async with db.sessionmaker() as session:
        if db.dialect == "sqlite":
            await session.connection(execution_options={READ_ONLY: True})
        async for batch in repo.stream_ticket_rows(session, period):
            yield _csv_text(batch).encode("utf-8")
        await session.rollback()
