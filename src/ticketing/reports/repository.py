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
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    union_all,
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
        # date_part() is a double; EXTRACT() has been a numeric since PostgreSQL 14, and the
        # numeric arithmetic and sort cost more than the rest of the percentile query together.
        return func.date_part("epoch", end - start, type_=Float) / 60.0
    # SQLite keeps timestamps as UTC text: julianday() reads it as days.
    return (func.julianday(end) - func.julianday(start)) * 1440.0


@dataclass(frozen=True)
class PeriodGroup:
    """The period's tickets of one priority, type and assignee."""

    priority: Priority | None
    ticket_type: TicketType | None
    assigned_to: str | None
    created: int
    sla_met: int
    sla_breached: int
    analysed: int
    fallback: int
    responded: int  # with a first response
    resolved: int  # with a resolution


async def period_groups(session: AsyncSession, period: Period) -> list[PeriodGroup]:
    """The period's counts per (priority, type, assignee): at most 5 x 6 x (assignees + 1)
    rows, summed by the caller for the totals and for each person's breached count. One pass
    over a covering index."""
    analysed = Ticket.analysis_status.in_([AnalysisStatus.ai, AnalysisStatus.fallback])
    stmt = (
        select(
            Ticket.priority,
            Ticket.ticket_type,
            Ticket.assigned_to,
            func.count(),
            _count_if(Ticket.sla_status == SlaStatus.met),
            _count_if(Ticket.sla_status == SlaStatus.breached),
            _count_if(analysed),
            _count_if(Ticket.analysis_status == AnalysisStatus.fallback),
            func.count(Ticket.first_responded_at),
            func.count(Ticket.resolved_at),
        )
        .where(_created_in(period))
        .group_by(Ticket.priority, Ticket.ticket_type, Ticket.assigned_to)
    )
    return [
        PeriodGroup(row[0], row[1], row[2], *(int(v) for v in row[3:]))
        for row in await session.execute(stmt)
    ]


@dataclass(frozen=True)
class Times:
    """Minutes from created_at, over the period's tickets that have the time; None when none
    has it."""

    first_response_median: float | None
    first_response_p90: float | None
    resolution_median: float | None
    resolution_p90: float | None


async def period_times(
    session: AsyncSession, period: Period, responded: int, resolved: int
) -> Times:
    """The median and 90th percentile of the minutes to the first response and to the
    resolution of the period's tickets.

    Continuous percentiles (linear interpolation between the two nearest values), the same on
    both engines: PostgreSQL's percentile_cont (which skips NULLs), all four in one pass; on
    SQLite, which has no percentile function, the values are ranked by a window function and
    the two either side of each percentile weighed here. `responded` and `resolved` are how
    many of the period's tickets have each time (from `period_groups`): knowing them, SQLite
    only numbers the sorted values instead of also counting them in a second window.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = select(
            *(
                func.percentile_cont(p).within_group(
                    minutes_between(dialect, Ticket.created_at, until)
                )
                for until in (Ticket.first_responded_at, Ticket.resolved_at)
                for p in PERCENTILES
            )
        ).where(_created_in(period))
        values = list((await session.execute(stmt)).one())
    else:
        values = await _ranked_percentiles(
            session,
            period,
            ((Ticket.first_responded_at, responded), (Ticket.resolved_at, resolved)),
        )
    first_median, first_p90, resolution_median, resolution_p90 = (_minutes(v) for v in values)
    return Times(first_median, first_p90, resolution_median, resolution_p90)


def _rank_weights(p: float, n: int) -> tuple[int, float]:
    """Continuous percentile `p` of `n` sorted values: the value at rank `lo` (from 0) weighs
    `1 - weight`, the one at `lo + 1` weighs `weight` (linear interpolation)."""
    position = p * (n - 1)
    lo = int(position)
    return lo, position - lo


async def _ranked_percentiles(
    session: AsyncSession, period: Period, durations: Sequence[tuple[Any, int]]
) -> list[float | None]:
    """SQLite: the PERCENTILES of `created_at -> until` in minutes for each (until, count) of
    `durations`, in one round trip. One sort per duration; only the (at most four) values
    either side of the percentiles come back."""
    selects = []
    for k, (until, n) in enumerate(durations):
        if not n:
            continue
        ranks = sorted(
            {lo + d for p in PERCENTILES for lo, _ in [_rank_weights(p, n)] for d in (0, 1)}
        )
        minutes = minutes_between("sqlite", Ticket.created_at, until)
        values = (
            select(minutes.label("m")).where(_created_in(period), until.is_not(None)).subquery()
        )
        ranked = select(
            values.c.m, (func.row_number().over(order_by=values.c.m) - 1).label("i")
        ).subquery()
        selects.append(
            select(literal(k).label("k"), ranked.c.i, ranked.c.m).where(ranked.c.i.in_(ranks))
        )
    found: dict[tuple[int, int], float] = {}
    if selects:
        stmt = selects[0] if len(selects) == 1 else union_all(*selects)
        found = {(int(k), int(i)): float(m) for k, i, m in (await session.execute(stmt)).all()}
    results: list[float | None] = []
    for k, (_, n) in enumerate(durations):
        for p in PERCENTILES:
            if not n:
                results.append(None)
                continue
            lo, weight = _rank_weights(p, n)
            value = found[k, lo] * (1 - weight)
            if weight:
                value += found[k, lo + 1] * weight
            results.append(value)
    return results


async def resolved_count(session: AsyncSession, period: Period) -> int:
    """Tickets resolved during the period, whenever they were filed (reopening clears
    resolved_at, so a reopened ticket no longer counts)."""
    stmt = select(func.count()).select_from(Ticket).where(_resolved_in(period))
    return int(await session.scalar(stmt) or 0)


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


def _minutes(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


@dataclass(frozen=True)
class AssigneeRow:
    user_id: str
    name: str
    open: int
    resolved: int
    breached: int


async def by_assignee(
    session: AsyncSession, period: Period, breached: dict[str, int]
) -> list[AssigneeRow]:
    """Per person: open now (their backlog), resolved in the period, and `breached` among the
    period's tickets (counted by `period_groups`'s pass). Every active staff member, and
    anyone else with a figure. Two grouped counts, each answered by its own covering index,
    joined to the people."""
    assigned = Ticket.assigned_to.is_not(None)

    def per_person(name: str, *where: ColumnElement[bool]) -> Any:
        return (
            select(Ticket.assigned_to.label("user_id"), func.count().label(name))
            .where(assigned, *where)
            .group_by(Ticket.assigned_to)
            .subquery()
        )

    open_now = per_person("n", Ticket.status.in_(BACKLOG_STATES))
    resolved = per_person("n", _resolved_in(period))
    person = aliased(User)
    open_count = func.coalesce(open_now.c.n, 0).label("open")
    name = func.coalesce(person.name, person.email)
    stmt = (
        select(
            person.id,
            name.label("name"),
            open_count,
            func.coalesce(resolved.c.n, 0),
        )
        .select_from(person)
        .outerjoin(open_now, open_now.c.user_id == person.id)
        .outerjoin(resolved, resolved.c.user_id == person.id)
        .where(
            or_(
                and_(person.role.in_(STAFF_ROLES), person.is_active.is_(True)),
                open_now.c.user_id.is_not(None),
                resolved.c.user_id.is_not(None),
                person.id.in_([user_id for user_id, n in breached.items() if n]),
            )
        )
        .order_by(open_count.desc(), func.lower(name), person.id)
    )
    return [
        AssigneeRow(row[0], row[1], int(row[2]), int(row[3]), breached.get(row[0], 0))
        for row in await session.execute(stmt)
    ]


async def corrected_counts(session: AsyncSession, period: Period) -> dict[str, int]:
    """Per field, how many tickets staff corrected during the period (a ticket corrected twice
    counts once)."""
    stmt = (
        select(TriageCorrection.field, func.count(func.distinct(TriageCorrection.ticket_id)))
        .where(
            TriageCorrection.created_at >= period.start,
            TriageCorrection.created_at < period.end,
            TriageCorrection.field.in_(CORRECTED_FIELDS),
        )
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
