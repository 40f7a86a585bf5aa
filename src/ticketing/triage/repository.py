"""Triage's queries: corrections (labels), model versions, and what quality is measured from.

Ticket rows are only read here (the tickets domain alone writes them).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, cast, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import READ_ONLY, Database, ProcessCache, lock_for_transaction, utcnow
from ticketing.tickets.models import Ticket
from ticketing.triage.models import TriageCorrection, TriageModelVersion
from ticketing.vocabulary import TicketStatus


@asynccontextmanager
async def reading(db: Database) -> AsyncIterator[AsyncSession]:
    """A session that only reads: on SQLite it takes no write lock (so it never waits for, nor
    blocks, a writer of this process, e.g. the triage transaction that asks for the model)."""
    async with db.sessionmaker() as session:
        if db.dialect == "sqlite":
            await session.connection(execution_options={READ_ONLY: True})
        yield session


CORRECTED_FIELDS = ("priority", "ticket_type", "required_skills")
LABEL_FIELDS = ("ticket_type", "priority")
FINAL_STATES = (TicketStatus.resolved, TicketStatus.closed)
ACTIVATION_LOCK = "triage:models:activate"


def add_correction(
    session: AsyncSession,
    *,
    ticket_id: str,
    field: str,
    before: Any,
    after: Any,
    provider: str | None,
    model: str | None,
    actor_id: str | None,
    at: datetime | None = None,
) -> TriageCorrection:
    """A staff change to an analysed field (the caller's transaction)."""
    correction = TriageCorrection(
        ticket_id=ticket_id,
        field=field,
        before=before,
        after=after,
        provider=provider,
        model=model,
        actor_id=actor_id,
        created_at=at or utcnow(),
    )
    session.add(correction)
    correction_markers.changed(session)
    return correction


async def corrections_of(session: AsyncSession, ticket_id: str) -> Sequence[TriageCorrection]:
    stmt = (
        select(TriageCorrection)
        .where(TriageCorrection.ticket_id == ticket_id)
        .order_by(TriageCorrection.created_at, TriageCorrection.id)
    )
    return (await session.scalars(stmt)).all()


@dataclass(frozen=True)
class LabelledTicket:
    ticket_id: str
    title: str
    description: str
    ticket_type: str
    priority: str | None
    labelled_at: datetime


def _label_clause() -> Any:
    corrected = select(TriageCorrection.ticket_id).where(TriageCorrection.field.in_(LABEL_FIELDS))
    return or_(
        and_(Ticket.status.in_(FINAL_STATES), Ticket.ticket_type.is_not(None)),
        Ticket.id.in_(corrected),
    )


async def labelled_tickets(session: AsyncSession, *, limit: int) -> list[LabelledTicket]:
    """The organisation's labels, newest first, at most `limit` tickets.

    A ticket is labelled when staff corrected its type or priority (the latest value of each
    corrected field wins), or when it was resolved or closed (its final type and priority).
    """
    stmt = (
        select(
            Ticket.id,
            Ticket.title,
            Ticket.description,
            Ticket.ticket_type,
            Ticket.priority,
            Ticket.updated_at,
        )
        .where(_label_clause())
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        .limit(limit)
    )
    rows = (await session.execute(stmt)).all()
    if not rows:
        return []
    latest: dict[tuple[str, str], Any] = {}
    ids = [r.id for r in rows]
    for chunk in range(0, len(ids), 500):
        corr = await session.execute(
            select(TriageCorrection.ticket_id, TriageCorrection.field, TriageCorrection.after)
            .where(
                TriageCorrection.ticket_id.in_(ids[chunk : chunk + 500]),
                TriageCorrection.field.in_(LABEL_FIELDS),
            )
            .order_by(TriageCorrection.created_at, TriageCorrection.id)
        )
        for ticket_id, field, after in corr:
            latest[(ticket_id, field)] = after
    labels = []
    for r in rows:
        ticket_type = latest.get((r.id, "ticket_type"), r.ticket_type)
        priority = latest.get((r.id, "priority"), r.priority)
        if not isinstance(ticket_type, str):
            continue
        labels.append(
            LabelledTicket(
                ticket_id=r.id,
                title=r.title,
                description=r.description,
                ticket_type=str(ticket_type),
                priority=str(priority) if isinstance(priority, str) else None,
                labelled_at=r.updated_at,
            )
        )
    return labels


async def count_new_labels(session: AsyncSession, since: datetime | None) -> int:
    """Labels added after `since`: tickets corrected, or resolved/closed, since then."""
    corrected = select(TriageCorrection.ticket_id).where(TriageCorrection.field.in_(LABEL_FIELDS))
    finished = and_(Ticket.status.in_(FINAL_STATES), Ticket.ticket_type.is_not(None))
    if since is not None:
        corrected = corrected.where(TriageCorrection.created_at > since)
        finished = and_(finished, Ticket.resolved_at > since)
    stmt = select(func.count()).select_from(Ticket).where(or_(finished, Ticket.id.in_(corrected)))
    return int(await session.scalar(stmt) or 0)


# --- model versions ---


async def active_version_id(session: AsyncSession) -> str | None:
    """The active version's id: the cheap check every process makes."""
    stmt = (
        select(TriageModelVersion.id)
        .where(TriageModelVersion.active.is_(True))
        .order_by(TriageModelVersion.activated_at.desc())
        .limit(1)
    )
    return await session.scalar(stmt)


async def get_version(session: AsyncSession, version_id: str) -> TriageModelVersion | None:
    return await session.get(TriageModelVersion, version_id)


@dataclass(frozen=True)
class VersionSummary:
    id: str
    created_at: datetime
    labels: int
    scores: dict[str, Any]
    active: bool
    activated_at: datetime | None


_SUMMARY_COLUMNS = (
    TriageModelVersion.id,
    TriageModelVersion.created_at,
    TriageModelVersion.labels,
    TriageModelVersion.scores,
    TriageModelVersion.active,
    TriageModelVersion.activated_at,
)


async def list_versions(session: AsyncSession, *, limit: int = 100) -> list[VersionSummary]:
    """Versions newest first, without their arrays."""
    stmt = (
        select(*_SUMMARY_COLUMNS)
        .order_by(TriageModelVersion.created_at.desc(), TriageModelVersion.id.desc())
        .limit(limit)
    )
    return [VersionSummary(*row) for row in (await session.execute(stmt)).all()]


async def active_version(session: AsyncSession) -> VersionSummary | None:
    stmt = (
        select(*_SUMMARY_COLUMNS)
        .where(TriageModelVersion.active.is_(True))
        .order_by(TriageModelVersion.activated_at.desc())
        .limit(1)
    )
    row = (await session.execute(stmt)).first()
    return VersionSummary(*row) if row is not None else None


def add_version(session: AsyncSession, version: TriageModelVersion) -> TriageModelVersion:
    session.add(version)
    return version


async def activate(session: AsyncSession, version_id: str, at: datetime | None = None) -> None:
    """Make `version_id` the one active version (serialised: exactly one stays active)."""
    await lock_for_transaction(session, ACTIVATION_LOCK)
    now = at or utcnow()
    await session.execute(
        update(TriageModelVersion)
        .where(TriageModelVersion.active.is_(True), TriageModelVersion.id != version_id)
        .values(active=False)
    )
    await session.execute(
        update(TriageModelVersion)
        .where(TriageModelVersion.id == version_id)
        .values(active=True, activated_at=now)
    )


# --- what the prompt examples are drawn from ---


@dataclass(frozen=True)
class CorrectedKey:
    ticket_id: str
    ticket_type: str
    priority: str | None


async def recent_corrected_keys(session: AsyncSession, *, limit: int) -> list[CorrectedKey]:
    """The latest `limit` tickets staff corrected (type or priority): ids and labels only."""
    corrected = select(TriageCorrection.ticket_id).where(TriageCorrection.field.in_(LABEL_FIELDS))
    stmt = (
        select(Ticket.id, Ticket.ticket_type, Ticket.priority)
        .where(Ticket.id.in_(corrected), Ticket.ticket_type.is_not(None))
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        .limit(limit)
    )
    return [
        CorrectedKey(r.id, str(r.ticket_type), str(r.priority) if r.priority else None)
        for r in (await session.execute(stmt)).all()
    ]


async def texts_of(session: AsyncSession, ticket_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Title and description of these tickets (which never change once filed)."""
    out: dict[str, tuple[str, str]] = {}
    for start in range(0, len(ticket_ids), 500):
        chunk = ticket_ids[start : start + 500]
        stmt = select(Ticket.id, Ticket.title, Ticket.description).where(Ticket.id.in_(chunk))
        for ticket_id, title, description in (await session.execute(stmt)).all():
            out[ticket_id] = (title, description)
    return out


# `last_correction_marker` as the example index keeps it: read at most every few seconds per
# process, so a correction made in another process reaches the prompts that much later; one
# made in this process at once (`add_correction` marks its transaction).
CORRECTION_MARKER_SECONDS = 5.0
correction_markers: ProcessCache[tuple[int, datetime | None]] = ProcessCache(
    CORRECTION_MARKER_SECONDS
)


async def last_correction_marker(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many corrections exist and when the latest was made (cheap cache key)."""
    stmt = select(func.count(), func.max(TriageCorrection.created_at)).where(
        TriageCorrection.field.in_(LABEL_FIELDS)
    )
    row = (await session.execute(stmt)).one()
    return int(row[0] or 0), row[1]


# --- quality ---


def _analysed_in(start: datetime | None, end: datetime | None) -> list[Any]:
    clauses: list[Any] = [Ticket.analyzed_at.is_not(None), Ticket.analysis_provider.is_not(None)]
    if start is not None:
        clauses.append(Ticket.analyzed_at >= start)
    if end is not None:
        clauses.append(Ticket.analyzed_at < end)
    return clauses


async def analysed_per_provider(
    session: AsyncSession, start: datetime | None, end: datetime | None
) -> dict[str, int]:
    stmt = (
        select(Ticket.analysis_provider, func.count())
        .where(*_analysed_in(start, end))
        .group_by(Ticket.analysis_provider)
    )
    return {str(p): int(n) for p, n in (await session.execute(stmt)).all()}


async def corrected_per_provider(
    session: AsyncSession, start: datetime | None, end: datetime | None
) -> dict[tuple[str, str], int]:
    """(provider, field) -> tickets analysed in the period whose field staff corrected."""
    stmt = (
        select(
            Ticket.analysis_provider,
            TriageCorrection.field,
            func.count(func.distinct(TriageCorrection.ticket_id)),
        )
        .join(Ticket, Ticket.id == TriageCorrection.ticket_id)
        .where(*_analysed_in(start, end))
        .group_by(Ticket.analysis_provider, TriageCorrection.field)
    )
    return {(str(p), str(f)): int(n) for p, f, n in (await session.execute(stmt)).all()}


async def type_confusion(
    session: AsyncSession, start: datetime | None, end: datetime | None
) -> list[tuple[str, str, str, int]]:
    """(provider, analysed type, final type, tickets) for tickets analysed in the period.

    What the analysis said is the `before` of the ticket's first type correction, or, with no
    correction, the ticket's type itself.
    """
    first = (
        select(
            TriageCorrection.ticket_id.label("ticket_id"),
            func.min(TriageCorrection.created_at).label("first_at"),
        )
        .where(TriageCorrection.field == "ticket_type")
        .group_by(TriageCorrection.ticket_id)
        .subquery()
    )
    first_before = (
        select(cast(TriageCorrection.before, String))
        .join(
            first,
            and_(
                first.c.ticket_id == TriageCorrection.ticket_id,
                first.c.first_at == TriageCorrection.created_at,
            ),
        )
        .where(TriageCorrection.field == "ticket_type", TriageCorrection.ticket_id == Ticket.id)
        .order_by(TriageCorrection.id)
        .limit(1)
        .correlate(Ticket)
        .scalar_subquery()
    )
    before_text = func.coalesce(first_before, literal(""))
    stmt = (
        select(Ticket.analysis_provider, before_text, Ticket.ticket_type, func.count())
        .where(*_analysed_in(start, end), Ticket.ticket_type.is_not(None))
        .group_by(Ticket.analysis_provider, before_text, Ticket.ticket_type)
    )
    result: list[tuple[str, str, str, int]] = []
    for provider, before, final, n in (await session.execute(stmt)).all():
        analysed = _json_text(before) if before else str(final)
        result.append((str(provider), analysed or str(final), str(final), int(n)))
    return result


def _json_text(raw: str) -> str | None:
    """A JSON-encoded string as stored in a JSON column (both engines give its JSON text)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, str) else None
