"""The report queries. Every figure is an aggregate computed by the database: no query here
returns more rows than there are statuses, priorities, types, staff or fields, except
`stream_ticket_rows`, which the CSV streams in batches.

The period is half-open, [start, end), on `created_at` unless a figure says otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    and_,
    case,
    cast,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from ticketing.tickets.models import Ticket
from ticketing.triage.models import TriageCorrection
from ticketing.users.models import User
from ticketing.vocabulary import (
    STAFF_ROLES,
    AnalysisStatus,
    Priority,
    SlaStatus,
    TicketStatus,
    TicketType,
)

# The backlog: tickets somebody still has to do something about (also a person's load).
BACKLOG_STATES = (TicketStatus.open, TicketStatus.in_progress, TicketStatus.waiting)
CORRECTED_FIELDS = ("priority", "ticket_type", "required_skills")
PERCENTILES = (0.5, 0.9)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive


def _created_in(period: Period) -> ColumnElement[bool]:
    return and_(Ticket.created_at >= period.start, Ticket.created_at < period.end)


def _resolved_in(period: Period) -> ColumnElement[bool]:
    return and_(Ticket.resolved_at >= period.start, Ticket.resolved_at < period.end)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    # SUM(CASE ...) rather than COUNT(*) FILTER (...): the same on both engines.
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def minutes_between(dialect: str, start: Any, end: Any) -> ColumnElement[Any]:
    """`end - start` in minutes (a float), as SQL on the given engine."""
    if dialect == "postgresql":
        return func.extract("epoch", end - start) / 60.0
    # SQLite keeps timestamps as UTC text: julianday() reads it as days.
    return (func.julianday(end) - func.julianday(start)) * 1440.0


@dataclass(frozen=True)
class PeriodCounts:
    created: int
    sla_met: int
    sla_breached: int
    analysed: int
    fallback: int


async def period_counts(session: AsyncSession, period: Period) -> PeriodCounts:
    """One pass over the period's tickets: created, SLA met/breached, analysed, fallback."""
    analysed = Ticket.analysis_status.in_([AnalysisStatus.ai, AnalysisStatus.fallback])
    stmt = select(
        func.count().label("created"),
        _count_if(Ticket.sla_status == SlaStatus.met).label("sla_met"),
        _count_if(Ticket.sla_status == SlaStatus.breached).label("sla_breached"),
        _count_if(analysed).label("analysed"),
        _count_if(Ticket.analysis_status == AnalysisStatus.fallback).label("fallback"),
    ).where(_created_in(period))
    row = (await session.execute(stmt)).one()
    return PeriodCounts(*(int(value) for value in row))


async def resolved_count(session: AsyncSession, period: Period) -> int:
    """Tickets resolved during the period, whenever they were filed (reopening clears
    resolved_at, so a reopened ticket no longer counts)."""
    stmt = select(func.count()).select_from(Ticket).where(_resolved_in(period))
    return int(await session.scalar(stmt) or 0)


async def created_by_priority_and_type(
    session: AsyncSession, period: Period
) -> list[tuple[Priority | None, TicketType | None, int]]:
    """(priority, ticket_type, count) for the period's tickets: at most 5 x 6 rows."""
    stmt = (
        select(Ticket.priority, Ticket.ticket_type, func.count().label("n"))
        .where(_created_in(period))
        .group_by(Ticket.priority, Ticket.ticket_type)
    )
    return [(row[0], row[1], int(row[2])) for row in await session.execute(stmt)]


async def backlog(
    session: AsyncSession,
) -> list[tuple[TicketStatus, Priority | None, SlaStatus | None, bool, int]]:
    """The backlog now, whatever the period: (status, priority, sla_status, unassigned, count)."""
    unassigned = Ticket.assigned_to.is_(None)
    stmt = (
        select(
            Ticket.status,
            Ticket.priority,
            Ticket.sla_status,
            unassigned.label("unassigned"),
            func.count().label("n"),
        )
        .where(Ticket.status.in_(BACKLOG_STATES))
        .group_by(Ticket.status, Ticket.priority, Ticket.sla_status, unassigned)
    )
    return [
        (row[0], row[1], row[2], bool(row[3]), int(row[4])) for row in await session.execute(stmt)
    ]


async def percentiles(
    session: AsyncSession, period: Period, until: str
) -> tuple[float | None, float | None]:
    """The median and 90th percentile, in minutes, of `created_at -> until` (the column
    `first_responded_at` or `resolved_at`) over the period's tickets that have it.

    Continuous percentiles (linear interpolation between the two nearest values), the same on
    both engines: PostgreSQL's percentile_cont; on SQLite, which has none, the rows are ranked
    by a window function and the two values either side of each percentile weighed in SQL.
    """
    end_column = getattr(Ticket, until)
    dialect = session.get_bind().dialect.name
    minutes = minutes_between(dialect, Ticket.created_at, end_column)
    where = and_(_created_in(period), end_column.is_not(None))
    if dialect == "postgresql":
        stmt = select(*(func.percentile_cont(p).within_group(minutes) for p in PERCENTILES)).where(
            where
        )
        row = (await session.execute(stmt)).one()
        return _minutes(row[0]), _minutes(row[1])

    ranked = (
        select(
            minutes.label("m"),
            (func.row_number().over(order_by=minutes) - 1).label("i"),
            func.count().over().label("n"),
        )
        .where(where)
        .subquery()
    )
    values = []
    for p in PERCENTILES:
        # position = p * (n - 1); the value is m[lo] + (m[lo + 1] - m[lo]) * (position - lo)
        position = p * (ranked.c.n - 1)
        lo = cast(position, Integer)
        weight = position - lo
        values.append(
            func.sum(
                case(
                    (ranked.c.i == lo, ranked.c.m * (1 - weight)),
                    (ranked.c.i == lo + 1, ranked.c.m * weight),
                    else_=0,
                )
            )
        )
    stmt = (
        select(func.count(), *values)
        .select_from(ranked)
        .where(ranked.c.i <= cast(PERCENTILES[-1] * (ranked.c.n - 1), Integer) + 1)
    )
    row = (await session.execute(stmt)).one()
    if not row[0]:
        return None, None
    return _minutes(row[1]), _minutes(row[2])


def _minutes(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


@dataclass(frozen=True)
class AssigneeRow:
    user_id: str
    name: str
    open: int
    resolved: int
    breached: int


async def by_assignee(session: AsyncSession, period: Period) -> list[AssigneeRow]:
    """Per person: open now (their backlog), resolved in the period, breached among the
    period's tickets. Every active staff member, and anyone else with a figure."""
    per_person = (
        select(
            Ticket.assigned_to.label("user_id"),
            _count_if(Ticket.status.in_(BACKLOG_STATES)).label("open"),
            _count_if(_resolved_in(period)).label("resolved"),
            _count_if(and_(_created_in(period), Ticket.sla_status == SlaStatus.breached)).label(
                "breached"
            ),
        )
        .where(
            Ticket.assigned_to.is_not(None),
            or_(Ticket.status.in_(BACKLOG_STATES), _resolved_in(period), _created_in(period)),
        )
        .group_by(Ticket.assigned_to)
        .subquery()
    )
    person = aliased(User)
    open_now = func.coalesce(per_person.c.open, 0).label("open")
    stmt = (
        select(
            person.id,
            func.coalesce(person.name, person.email).label("name"),
            open_now,
            func.coalesce(per_person.c.resolved, 0).label("resolved"),
            func.coalesce(per_person.c.breached, 0).label("breached"),
        )
        .select_from(person)
        .outerjoin(per_person, per_person.c.user_id == person.id)
        .where(
            or_(
                and_(person.role.in_(STAFF_ROLES), person.is_active.is_(True)),
                per_person.c.user_id.is_not(None),
            )
        )
        .order_by(
            open_now.desc(),
            func.lower(func.coalesce(person.name, person.email)),
            person.id,
        )
    )
    return [
        AssigneeRow(row[0], row[1], int(row[2]), int(row[3]), int(row[4]))
        for row in await session.execute(stmt)
    ]


async def corrected_counts(session: AsyncSession, period: Period) -> dict[str, int]:
    """Per field, how many of the period's tickets staff corrected."""
    stmt = (
        select(TriageCorrection.field, func.count(func.distinct(TriageCorrection.ticket_id)))
        .join(Ticket, Ticket.id == TriageCorrection.ticket_id)
        .where(_created_in(period), TriageCorrection.field.in_(CORRECTED_FIELDS))
        .group_by(TriageCorrection.field)
    )
    counts = {field: 0 for field in CORRECTED_FIELDS}
    for field, n in (await session.execute(stmt)).all():
        counts[field] = int(n)
    return counts


async def stream_ticket_rows(
    session: AsyncSession, period: Period, batch: int = 500
) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """The period's tickets, oldest first, with the assignee's name and email and both
    durations in minutes, in batches (a server-side cursor on PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    assignee = aliased(User)
    stmt = (
        select(
            Ticket.id,
            Ticket.number,
            Ticket.created_at,
            Ticket.title,
            Ticket.status,
            Ticket.priority,
            Ticket.ticket_type,
            Ticket.source,
            assignee.name.label("assignee_name"),
            assignee.email.label("assignee_email"),
            Ticket.first_responded_at,
            Ticket.resolved_at,
            cast(
                minutes_between(dialect, Ticket.created_at, Ticket.first_responded_at), Float
            ).label("first_response_minutes"),
            cast(minutes_between(dialect, Ticket.created_at, Ticket.resolved_at), Float).label(
                "resolution_minutes"
            ),
            Ticket.sla_status,
            Ticket.analysis_status,
            Ticket.analysis_provider,
        )
        .outerjoin(assignee, assignee.id == Ticket.assigned_to)
        .where(_created_in(period))
        .order_by(Ticket.created_at, Ticket.id)
        .execution_options(yield_per=batch)
    )
    result = await session.stream(stmt)
    async for rows in result.partitions(batch):
        yield rows
