"""All ticket, comment and timeline queries."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    case,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import contains_pattern, new_id, utcnow
from ticketing.pagination import Order, paginate, paginate_soonest, soonest_ranges
from ticketing.tickets.models import (
    Comment,
    EventKind,
    MessageDirection,
    Ticket,
    TicketEvent,
    TicketMessage,
)
from ticketing.vocabulary import (
    AnalysisStatus,
    Priority,
    SlaStatus,
    Source,
    TicketStatus,
    TicketType,
)

# What re-analysis re-routes, and (with `waiting`) what counts as someone's load.
OPEN_STATES = (TicketStatus.open, TicketStatus.in_progress)
LOAD_STATES = (*OPEN_STATES, TicketStatus.waiting)
NUMBER_SEQUENCE = "ticket_number_seq"  # PostgreSQL, created by migration 0005
# Lists: newest or oldest first, or "due": the nearest pending SLA due time first, tickets
# with none last.
TicketOrder = Literal["newest", "oldest", "due"]


@dataclass(frozen=True)
class TicketFilters:
    status: TicketStatus | None = None
    priority: Priority | None = None
    ticket_type: TicketType | None = None
    assigned_to: str | None = None
    created_by: str | None = None
    analysis_status: AnalysisStatus | None = None
    source: Source | None = None
    number: int | None = None
    sla_status: SlaStatus | None = None
    q: str | None = None


def assigned_to_clause(user_id: str) -> ColumnElement[bool]:
    return Ticket.assigned_to == user_id


async def get(session: AsyncSession, ticket_id: str, *, for_update: bool = False) -> Ticket | None:
    stmt = select(Ticket).where(Ticket.id == ticket_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def add(session: AsyncSession, ticket: Ticket) -> Ticket:
    """Add a new ticket with the next number."""
    if session.get_bind().dialect.name == "postgresql":
        # A sequence: concurrent creates from any number of processes never share a number.
        draw = select(func.nextval(NUMBER_SEQUENCE))
    else:
        # SQLite lets one writer at a time in (BEGIN IMMEDIATE), so MAX + 1 cannot race.
        draw = select(func.coalesce(func.max(Ticket.number), 0) + 1)
    ticket.number = int((await session.scalar(draw)) or 1)
    session.add(ticket)
    return ticket


async def list_page(
    session: AsyncSession,
    *,
    visible: Sequence[ColumnElement[bool]] | None,
    filters: TicketFilters,
    limit: int,
    cursor: str | None,
    order: TicketOrder,
) -> Sequence[Ticket]:
    """A page of tickets matching `filters` and any one of the `visible` conditions (None:
    every ticket), in `order` from `cursor` on; limit + 1 rows, to tell whether there is more."""
    conditions: list[ColumnElement[bool]] = []
    for column, value in (
        (Ticket.status, filters.status),
        (Ticket.priority, filters.priority),
        (Ticket.ticket_type, filters.ticket_type),
        (Ticket.assigned_to, filters.assigned_to),
        (Ticket.created_by, filters.created_by),
        (Ticket.analysis_status, filters.analysis_status),
        (Ticket.source, filters.source),
        (Ticket.number, filters.number),
        (Ticket.sla_status, filters.sla_status),
    ):
        if value is not None:
            conditions.append(column == value)
    if filters.q:
        needle = filters.q.lower()
        pattern = contains_pattern(needle)
        conditions.append(
            or_(
                func.lower(Ticket.title).like(pattern, escape="\\"),
                func.lower(Ticket.description).like(pattern, escape="\\"),
            )
        )
        term = _fts_term(needle)
        if term is not None and await _has_ticket_fts(session):
            rowids = await _fts_candidates(session, term)
            if rowids is not None:
                if not rowids:
                    return []  # the index has every ticket the LIKE could match: none
                conditions.append(literal_column(f"{Ticket.__tablename__}.rowid").in_(rowids))

    def in_order(stmt: Any, moment: Any = None, row_id: Any = Ticket.id) -> Select[Any]:
        if order == "due":
            moment = Ticket.sla_next_due_at if moment is None else moment
            return paginate_soonest(stmt, moment, row_id, limit=limit, cursor=cursor)
        moment = Ticket.created_at if moment is None else moment
        return paginate(stmt, moment, row_id, limit=limit, cursor=cursor, order=order)

    if order != "due" and (visible is None or len(visible) == 1):
        stmt = in_order(select(Ticket).where(*(visible or ()), *conditions))
        return (await session.scalars(stmt)).all()
    # "Assigned to me or filed by me" as one OR cannot follow either index in order: both
    # engines fetch every ticket of both kinds and sort them (a moderator has thousands).
    # Each alternative alone is one ordered index range (index-only: the key is in the index),
    # and the page is among the first limit + 1 of one or the other: merge those keys (UNION:
    # a ticket of both kinds once), keep the first limit + 1 and read only those tickets.
    # Keys only, not whole rows: SQLAlchemy builds a union of whole-row subqueries far slower
    # (about 5 ms a request) than the database runs it. "Most urgent first" is two ranges per
    # alternative (with a due time, and without: pagination.soonest_ranges).
    moment = Ticket.sla_next_due_at if order == "due" else Ticket.created_at
    keys = [select(moment, Ticket.id).where(v, *conditions) for v in (visible or [true()])]
    if order == "due":
        scans = [
            part
            for key in keys
            for part in soonest_ranges(key, moment, Ticket.id, limit=limit, cursor=cursor)
        ]
    else:
        scans = [in_order(key) for key in keys]
    firsts = [scan.subquery() for scan in scans]
    members = [select(first) for first in firsts]
    merged = (union(*members) if len(members) > 1 else members[0]).subquery()
    page = in_order(select(merged.c.id), merged.c[moment.key], merged.c.id)
    stmt = in_order(select(Ticket).where(Ticket.id.in_(page)))
    return (await session.scalars(stmt)).all()


# SQLite: the FTS5 trigram index of migration 0003 (absent where SQLite lacks FTS5 or the
# trigram tokenizer). It only narrows the candidates: the LIKE above still decides, so results
# are the same with or without it. PostgreSQL has its trigram GIN indexes (0002) for the LIKE.
TICKETS_FTS = "tickets_fts"
FTS_MIN_CHARS = 3  # a trigram index cannot look up anything shorter
# A lookup costs about 0.5 ms per trigram found in a quarter or more of 100,000 tickets; a long
# word almost always has a rarer one. This bounds the unlucky case.
FTS_MAX_CHARS = 32
# Above this many matching tickets the text is common: the newest-first scan with the LIKE finds
# a page after a few thousand rows at most, sooner than fetching and sorting every match.
FTS_MAX_CANDIDATES = 1000
# One string rather than up to a thousand rows: a third of the cost when the text is common.
_FTS_MATCH = text(
    "SELECT group_concat(rowid) FROM "
    "(SELECT rowid FROM tickets_fts WHERE tickets_fts MATCH :query LIMIT :n)"
)
_fts_present: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def _fts_term(needle: str) -> str | None:
    """What to look up in the FTS index: the longest word of the search text, as the most
    telling part (every ticket that contains the text contains it), or None to scan."""
    if "\x00" in needle:  # FTS5 rejects a query string with NUL in it
        return None
    term = max(needle.split(), key=len, default="")[:FTS_MAX_CHARS]
    return term if len(term) >= FTS_MIN_CHARS else None


async def _has_ticket_fts(session: AsyncSession) -> bool:
    """Whether this engine's database has the FTS table: looked up once per engine."""
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    if engine.dialect.name != "sqlite":
        return False
    present = _fts_present.get(engine)
    if present is None:
        found = await session.scalar(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": TICKETS_FTS},
        )
        present = _fts_present[engine] = found is not None
    return present


async def _fts_candidates(session: AsyncSession, term: str) -> Sequence[int] | None:
    """The rowids of the tickets whose title or description contains `term` in any case, or
    None when more than FTS_MAX_CANDIDATES do (then the LIKE scan alone is faster).

    `term` goes to FTS5 as one double-quoted string (quotes doubled), so nothing in it is query
    syntax; the trigram tokenizer matches it as a substring. It is part of the lower-cased text
    the LIKE uses, so every ticket the LIKE matches is a candidate. The rowids are passed on
    rather than the MATCH repeated as a subquery: a MATCH whose trigrams are all common costs
    milliseconds even when few tickets match, and it would run twice.
    """
    quoted = '"' + term.replace('"', '""') + '"'
    found = await session.scalar(_FTS_MATCH, {"query": quoted, "n": FTS_MAX_CANDIDATES + 1})
    rowids = [int(rowid) for rowid in found.split(",")] if found else []
    return None if len(rowids) > FTS_MAX_CANDIDATES else rowids


async def open_loads(
    session: AsyncSession, user_ids: Sequence[str], exclude_ticket_id: str | None = None
) -> dict[str, int]:
    """Open, in-progress and waiting tickets per assignee, in one query."""
    if not user_ids:
        return {}
    stmt = (
        select(Ticket.assigned_to, func.count())
        .where(Ticket.assigned_to.in_(user_ids), Ticket.status.in_(LOAD_STATES))
        .group_by(Ticket.assigned_to)
    )
    if exclude_ticket_id is not None:
        stmt = stmt.where(Ticket.id != exclude_ticket_id)
    return {str(row[0]): int(row[1]) for row in (await session.execute(stmt)).all()}


# Tickets nobody could take: unassigned, open, with the router's "waiting: ..." reason.
WAITING_REASON_PATTERN = "waiting:%"
# Most urgent first; a ticket without a priority (not analysed) last.
_URGENCY_RANK = {p.value: rank for rank, p in enumerate(reversed(list(Priority)))}


def _urgency() -> ColumnElement[int]:
    return case(_URGENCY_RANK, value=Ticket.priority, else_=len(Priority))


def _waiting_clause() -> ColumnElement[bool]:
    # assigned_to IS NULL AND status = 'open' is a range of ix_tickets_assignee_status.
    return and_(
        Ticket.assigned_to.is_(None),
        Ticket.status == TicketStatus.open,
        Ticket.assignment_reason.like(WAITING_REASON_PATTERN),
    )


async def has_waiting(session: AsyncSession) -> bool:
    stmt = select(Ticket.id).where(_waiting_clause()).limit(1)
    return (await session.scalar(stmt)) is not None


WaitingCursor = tuple[int, datetime, str]


async def waiting_for_assignee(
    session: AsyncSession, *, limit: int, after: WaitingCursor | None = None
) -> list[tuple[Ticket, WaitingCursor]]:
    """Up to `limit` waiting tickets, most urgent first, then oldest, each with its place in
    that order (to go on after it). Locked for the caller's transaction; tickets another
    transaction holds (being triaged or changed right now) are skipped, not waited for."""
    urgency = _urgency()
    stmt = select(Ticket, urgency).where(_waiting_clause())
    if after is not None:
        rank, created_at, ticket_id = after
        stmt = stmt.where(
            or_(
                urgency > rank,
                and_(
                    urgency == rank,
                    or_(
                        Ticket.created_at > created_at,
                        and_(Ticket.created_at == created_at, Ticket.id > ticket_id),
                    ),
                ),
            )
        )
    stmt = (
        stmt.order_by(urgency, Ticket.created_at, Ticket.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Ticket)
    )
    rows = (await session.execute(stmt)).all()
    return [(t, (int(rank), t.created_at, t.id)) for t, rank in rows]


async def tickets_filed_since(
    session: AsyncSession, user_id: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many tickets `user_id` filed since `since`, and when the oldest of them was."""
    stmt = select(func.count(), func.min(Ticket.created_at)).where(
        Ticket.created_by == user_id, Ticket.created_at >= since
    )
    count, oldest = (await session.execute(stmt)).one()
    return int(count), oldest


async def comments_written_since(
    session: AsyncSession, user_id: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many comments `user_id` wrote since `since`, and when the oldest of them was."""
    stmt = select(func.count(), func.min(Comment.created_at)).where(
        Comment.author_id == user_id, Comment.created_at >= since
    )
    count, oldest = (await session.execute(stmt)).one()
    return int(count), oldest


async def count_comments(session: AsyncSession, ticket_id: str) -> int:
    stmt = select(func.count()).where(Comment.ticket_id == ticket_id)
    return int((await session.scalar(stmt)) or 0)


async def rerun_candidates(session: AsyncSession) -> Sequence[str]:
    stmt = (
        select(Ticket.id)
        .where(Ticket.analysis_status == AnalysisStatus.fallback, Ticket.status.in_(OPEN_STATES))
        .order_by(Ticket.created_at)
    )
    return (await session.scalars(stmt)).all()


def add_event(
    session: AsyncSession,
    ticket_id: str,
    kind: EventKind,
    *,
    actor_id: str | None = None,
    data: dict[str, Any] | None = None,
    internal: bool = False,
    at: datetime | None = None,
) -> TicketEvent:
    event = TicketEvent(
        ticket_id=ticket_id, kind=kind, actor_id=actor_id, data=data or {}, internal=internal
    )
    if at is not None:
        event.created_at = at
    session.add(event)
    return event


async def add_event_if_ticket_exists(
    session: AsyncSession,
    ticket_id: str,
    kind: EventKind,
    *,
    data: dict[str, Any],
    internal: bool,
) -> None:
    """`add_event`, unless the ticket is gone: one INSERT ... SELECT instead of a look-up
    and an insert (the email job records every delivery this way)."""
    columns = TicketEvent.__table__.c
    values = select(
        literal(new_id(), columns.id.type),
        Ticket.id,
        literal(kind, columns.kind.type),
        literal(data, columns.data.type),
        literal(internal, columns.internal.type),
        literal(utcnow(), columns.created_at.type),
    ).where(Ticket.id == ticket_id)
    await session.execute(
        insert(TicketEvent).from_select(
            ["id", "ticket_id", "kind", "data", "internal", "created_at"], values
        )
    )


async def get_comment(session: AsyncSession, ticket_id: str, comment_id: str) -> Comment | None:
    stmt = select(Comment).where(Comment.id == comment_id, Comment.ticket_id == ticket_id)
    return (await session.scalars(stmt)).first()


def add_comment(session: AsyncSession, comment: Comment) -> Comment:
    session.add(comment)
    return comment


async def list_comments(
    session: AsyncSession,
    ticket_id: str,
    *,
    include_internal: bool,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Sequence[Comment]:
    stmt = select(Comment).where(Comment.ticket_id == ticket_id)
    if not include_internal:
        stmt = stmt.where(Comment.internal.is_(False))
    stmt = paginate(stmt, Comment.created_at, Comment.id, limit=limit, cursor=cursor, order=order)
    return (await session.scalars(stmt)).all()


async def list_events(
    session: AsyncSession,
    ticket_id: str,
    *,
    include_internal: bool,
    limit: int,
    cursor: str | None,
    order: Order,
) -> Sequence[TicketEvent]:
    stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
    if not include_internal:
        stmt = stmt.where(TicketEvent.internal.is_(False))
    stmt = paginate(
        stmt, TicketEvent.created_at, TicketEvent.id, limit=limit, cursor=cursor, order=order
    )
    return (await session.scalars(stmt)).all()


async def message_ids(session: AsyncSession, ticket_id: str) -> list[str]:
    """The Message-IDs of a ticket's conversation, oldest first."""
    stmt = (
        select(TicketMessage.message_id)
        .where(TicketMessage.ticket_id == ticket_id)
        .order_by(TicketMessage.created_at, TicketMessage.message_id)
    )
    return list((await session.scalars(stmt)).all())


def add_message(
    session: AsyncSession, ticket_id: str, message_id: str, direction: MessageDirection
) -> None:
    session.add(TicketMessage(message_id=message_id, ticket_id=ticket_id, direction=direction))


async def find_message(session: AsyncSession, message_ids: Sequence[str]) -> TicketMessage | None:
    """The most recent of `message_ids` that belongs to a ticket's conversation."""
    if not message_ids:
        return None
    stmt = (
        select(TicketMessage)
        .where(TicketMessage.message_id.in_(message_ids))
        .order_by(TicketMessage.created_at.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def get_by_number(session: AsyncSession, number: int) -> Ticket | None:
    return (await session.scalars(select(Ticket).where(Ticket.number == number))).first()
