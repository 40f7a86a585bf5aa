"""Cross-domain flows: a ticket is triaged, routed and its assignee notified; mail is sent.

Which job kinds exist and what each does is decided here, in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.jobs.worker import JobContext, JobHandler, PermanentJobError
from ticketing.notifications.service import SEND_EMAIL
from ticketing.notifications.tasks import make_send_email_handler
from ticketing.routing import service as routing
from ticketing.tickets import repository as tickets_repo
from ticketing.tickets import service as tickets_service
from ticketing.tickets.models import AnalysisStatus, TicketStatus
from ticketing.triage.service import TriageOutcome, analyze_with_fallback
from ticketing.users import repository as users_repo

if TYPE_CHECKING:
    from ticketing.runtime import Runtime

log = logging.getLogger(__name__)

TriageReason = Literal["created", "rerun"]


@dataclass(frozen=True)
class TriageResult:
    ticket_id: str
    status: str  # "ai" | "fallback" | "skipped"
    assigned_to: str | None
    rerouted: bool


async def triage_ticket(
    runtime: Runtime,
    ticket_id: str,
    reason: TriageReason,
    *,
    before_commit: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> TriageResult:
    """Analyse a ticket, store the result, and route it when it should be routed.

    The model is called outside any transaction; everything it leads to (analysis fields,
    timeline, assignment, email job, and `before_commit`, which marks the job done) is then
    written in one transaction, so a crash at any point leaves either nothing or all of it.
    """
    async with runtime.db.transaction() as session:
        ticket = await tickets_repo.get(session, ticket_id)
        if ticket is None:
            raise PermanentJobError(f"ticket {ticket_id} no longer exists")
        title, description = ticket.title, ticket.description
        known_skills = await users_repo.known_skills(session)

    outcome = await analyze_with_fallback(
        runtime.provider, runtime.fallback, title, description, known_skills
    )

    async with runtime.db.transaction() as session:
        ticket = await tickets_repo.get(session, ticket_id, for_update=True)
        if ticket is None:
            raise PermanentJobError(f"ticket {ticket_id} no longer exists")
        _store_analysis(session, ticket, outcome)
        if before_commit is not None:
            await before_commit(session)
        # Routing takes a lock every triage in every worker waits for, held until the commit:
        # everything that does not need it is written first (the flush), so that the lock
        # covers only the routing queries and the assignment's own rows.
        await session.flush()
        rerouted = await _route_if_needed(session, runtime, ticket, reason)
        return TriageResult(ticket.id, outcome.status, ticket.assigned_to, rerouted)


def _store_analysis(session: AsyncSession, ticket: Any, outcome: TriageOutcome) -> None:
    now = utcnow()
    a = outcome.analysis
    ticket.priority = a.priority.value
    ticket.ticket_type = a.ticket_type.value
    ticket.required_skills = list(a.required_skills)
    ticket.helpful_notes = a.helpful_notes or None
    ticket.analysis_status = (
        AnalysisStatus.ai.value if outcome.status == "ai" else AnalysisStatus.fallback.value
    )
    ticket.analysis_provider = outcome.provider
    ticket.analysis_model = outcome.model
    ticket.analysis_error = outcome.error
    ticket.analyzed_at = now
    ticket.updated_at = now
    tickets_repo.add_event(
        session,
        ticket.id,
        "analysed",
        internal=True,
        at=now,
        data={
            "outcome": outcome.status,
            "provider": outcome.provider,
            "model": outcome.model,
            "error": outcome.error,
            "priority": ticket.priority,
            "ticket_type": ticket.ticket_type,
            "required_skills": ticket.required_skills,
        },
    )


async def _route_if_needed(
    session: AsyncSession, runtime: Runtime, ticket: Any, reason: TriageReason
) -> bool:
    # First triage routes an open, unassigned ticket. Re-analysis re-routes an open ticket only
    # when the best assignee changed. Neither ever touches the status.
    if ticket.status != TicketStatus.open.value:
        return False
    if reason == "created" and ticket.assigned_to is not None:
        return False
    decision = await routing.choose_assignee(session, ticket.required_skills, ticket.id)
    if decision.assignee is None:
        if ticket.assigned_to is None:
            ticket.assignment_reason = decision.reason
            tickets_repo.add_event(
                session, ticket.id, "unassigned", internal=True, data={"reason": decision.reason}
            )
        return False
    if decision.assignee.id == ticket.assigned_to:
        return False
    tickets_service.assign(
        session, runtime.settings, ticket, decision.assignee, decision.reason, actor_id=None
    )
    return True


async def _record_email_sent(session: AsyncSession, payload: dict[str, Any]) -> None:
    ticket_id = payload.get("ticket_id")
    if not ticket_id or not await tickets_repo.exists(session, ticket_id):
        return
    tickets_repo.add_event(
        session,
        ticket_id,
        "emailed",
        data={"to": payload.get("to"), "kind": payload.get("kind")},
        internal=payload.get("kind") != "resolved",
    )


def job_handlers(runtime: Runtime) -> dict[str, JobHandler]:
    async def run_triage(ctx: JobContext) -> None:
        ticket_id = ctx.job.payload.get("ticket_id")
        if not isinstance(ticket_id, str):
            raise PermanentJobError("triage job without ticket_id")
        reason: TriageReason = "rerun" if ctx.job.payload.get("reason") == "rerun" else "created"
        await triage_ticket(runtime, ticket_id, reason, before_commit=ctx.finish)

    return {
        tickets_service.TRIAGE_TICKET: run_triage,
        SEND_EMAIL: make_send_email_handler(runtime.sender, on_sent=_record_email_sent),
    }
