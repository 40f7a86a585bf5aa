"""Cross-domain flows: a ticket is triaged, routed and its assignee notified; mail is sent.

Flows orchestrate; they change nothing themselves. Every write goes through the service of the
domain that owns the rows. Which job kinds exist and what each does is decided here, in one
place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.attachments import service as attachments_service
from ticketing.auth import service as auth_service
from ticketing.auth.service import SEND_SIGN_IN_CODE
from ticketing.auth.tasks import make_send_sign_in_code_handler
from ticketing.db import utcnow
from ticketing.jobs import queue
from ticketing.jobs.queue import JobKind
from ticketing.jobs.worker import (
    JobContext,
    JobHandler,
    JobHandlers,
    PermanentJobError,
    Worker,
    run_one,
)
from ticketing.mail import service as mail_service
from ticketing.mail.reader import MailboxReader
from ticketing.notifications.service import SEND_EMAIL
from ticketing.notifications.tasks import make_send_email_handler
from ticketing.routing import offers
from ticketing.routing import service as routing
from ticketing.runtime import Runtime
from ticketing.sla.service import RECOMPUTE_KEY, SLA_RECOMPUTE
from ticketing.tickets import service as tickets_service
from ticketing.tickets.deadlines import SLA_TIMER
from ticketing.tickets.models import Ticket
from ticketing.tickets.service import TRIAGE_TICKET, AnalysisRecord
from ticketing.triage import learning
from ticketing.triage import repository as triage_repo
from ticketing.triage.base import PromptExample
from ticketing.triage.confidence import confidence_for, needs_review
from ticketing.triage.registry import LoadedModel
from ticketing.triage.service import TriageOutcome, analyze_with_fallback
from ticketing.users import service as users_service
from ticketing.vocabulary import AnalysisStatus, TicketStatus

log = logging.getLogger(__name__)

TriageReason = Literal["created", "rerun"]


@dataclass(frozen=True)
class TriageResult:
    ticket_id: str
    status: AnalysisStatus
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
    loaded = await runtime.models.current()  # checks for a newly activated version now and then
    # Reads only, each fine on its own snapshot: what the ticket says is read again, locked,
    # before anything is written.
    async with runtime.db.reading() as session:
        ticket = await tickets_service.find(session, ticket_id)
        if ticket is None:
            raise PermanentJobError(f"ticket {ticket_id} no longer exists")
        title, description = ticket.title, ticket.description
        known_skills = await users_service.known_skills(session)
        examples = await _prompt_examples(session, runtime, loaded, title, description)

    outcome = await analyze_with_fallback(
        runtime.provider, runtime.fallback, title, description, known_skills, examples=examples
    )
    model = loaded.model if loaded is not None else None
    confidence = confidence_for(model, title, description, outcome.analysis)
    review = needs_review(confidence, runtime.settings.triage_review_threshold)

    async with runtime.db.transaction() as session:
        # The ticket is written once, at the commit: analysis, SLA and assignment in one
        # UPDATE, the timeline lines in one INSERT. Every UPDATE of a ticket writes a new entry
        # in each of its indexes (the trigram ones included), and nothing read below depends on
        # this ticket's pending changes (routing leaves the ticket out of the loads it counts).
        # So under the routing lock, which every triage waits for, there are as many
        # statements as there were when the analysis was flushed before taking it.
        with session.no_autoflush:
            ticket = await tickets_service.find(session, ticket_id, for_update=True)
            if ticket is None:
                raise PermanentJobError(f"ticket {ticket_id} no longer exists")
            previous_priority = ticket.priority
            tickets_service.record_analysis(
                session, ticket, _analysis_record(outcome, confidence, review)
            )
            await tickets_service.refresh_sla(session, ticket, previous_priority)
            if before_commit is not None:
                await before_commit(session)
            rerouted = await _route_if_needed(session, runtime, ticket, reason)
        return TriageResult(ticket.id, ticket.analysis_status, ticket.assigned_to, rerouted)


async def _prompt_examples(
    session: AsyncSession,
    runtime: Runtime,
    loaded: LoadedModel | None,
    title: str,
    description: str,
) -> list[PromptExample]:
    """Corrected tickets like this one, for providers that put examples in their prompt."""
    k = runtime.settings.triage_examples
    if loaded is None or k <= 0 or not getattr(runtime.provider, "takes_examples", False):
        return []
    try:
        return await runtime.examples.similar(session, loaded, title, description, k)
    except Exception:
        # Examples help; they are never worth failing a triage over.
        log.exception("finding prompt examples failed; triaging without them")
        return []


def _analysis_record(
    outcome: TriageOutcome, confidence: dict[str, float] | None, review: bool
) -> AnalysisRecord:
    a = outcome.analysis
    return AnalysisRecord(
        status=AnalysisStatus.ai if outcome.status == "ai" else AnalysisStatus.fallback,
        priority=a.priority,
        ticket_type=a.ticket_type,
        required_skills=list(a.required_skills),
        helpful_notes=a.helpful_notes or None,
        provider=outcome.provider,
        model=outcome.model,
        error=outcome.error,
        confidence=confidence,
        needs_review=review,
    )


async def _route_if_needed(
    session: AsyncSession, runtime: Runtime, ticket: Ticket, reason: TriageReason
) -> bool:
    # First triage routes an open, unassigned ticket. Re-analysis re-routes an open ticket only
    # when the best assignee changed. Neither ever touches the status.
    if ticket.status != TicketStatus.open:
        return False
    if reason == "created" and ticket.assigned_to is not None:
        return False
    decision = await routing.choose_assignee(
        session, ticket.required_skills, ticket.id, requester_id=ticket.created_by
    )
    if decision.assignee is None:
        # Nobody can take it now ("waiting: ..."): offer_waiting_tickets tries again.
        if ticket.assigned_to is None:
            tickets_service.leave_unassigned(session, ticket, decision.reason)
        return False
    if decision.assignee.id == ticket.assigned_to:
        return False
    await tickets_service.assign(
        session, runtime.settings, ticket, decision.assignee, decision.reason, actor_id=None
    )
    return True


# Waiting tickets handed out per transaction: the routing lock, which every triage waits for,
# is held for one batch at a time.
OFFER_BATCH = 100


async def offer_waiting_tickets(
    runtime: Runtime, *, now: datetime | None = None, batch: int = OFFER_BATCH
) -> int:
    """Offer the tickets nobody could take to the staff again, most urgent first, then oldest;
    returns how many were assigned.

    Each batch reads the staff, their loads and the waiting tickets under the routing lock, so
    concurrent runs (several workers) and triages never give one ticket twice nor push anyone
    past their cap. Every assignment goes through the normal path (timeline, email).
    """
    assigned = 0
    after: tuple[int, datetime, str] | None = None
    while True:
        async with runtime.db.transaction() as session:
            if not await tickets_service.has_waiting(session):
                return assigned  # the usual case: skip the lock
            pool = await routing.staff_pool(session, now=now)
            if not pool.can_take_any():
                return assigned
            rows = await tickets_service.waiting_for_assignee(session, limit=batch, after=after)
            for ticket, place in rows:
                decision = pool.decide(ticket.required_skills, ticket.created_by)
                after = place
                if decision.assignee is None:
                    tickets_service.note_still_waiting(ticket, decision.reason)
                    continue
                await tickets_service.assign(
                    session,
                    runtime.settings,
                    ticket,
                    decision.assignee,
                    decision.reason,
                    actor_id=None,
                )
                pool.took(decision.assignee)
                assigned += 1
        if len(rows) < batch:
            return assigned


def _offer_handler(runtime: Runtime) -> JobHandler:
    async def run_offer(ctx: JobContext) -> None:
        count = await offer_waiting_tickets(runtime)
        if count:
            log.info("waiting tickets assigned", extra={"assigned": count})

    return run_offer


async def _record_email_sent(session: AsyncSession, payload: dict[str, Any]) -> None:
    ticket_id = payload.get("ticket_id")
    if isinstance(ticket_id, str) and ticket_id:
        await tickets_service.record_email_sent(
            session, ticket_id, to=payload.get("to"), kind=payload.get("kind")
        )


def _triage_handler(
    runtime: Runtime, on_result: Callable[[TriageResult], None] | None = None
) -> JobHandler:
    async def run_triage(ctx: JobContext) -> None:
        ticket_id = ctx.job.payload.get("ticket_id")
        if not isinstance(ticket_id, str):
            raise PermanentJobError("triage job without ticket_id")
        reason: TriageReason = "rerun" if ctx.job.payload.get("reason") == "rerun" else "created"
        result = await triage_ticket(runtime, ticket_id, reason, before_commit=ctx.finish)
        if on_result is not None:
            on_result(result)

    return run_triage


# Keeps the tables that only grow (done jobs, sign-in codes, revoked tokens) at their size, and
# removes attachment files no row points to.
RETENTION = JobKind("retention", max_attempts=3, every_seconds=3600)


def _retention_handler(runtime: Runtime) -> JobHandler:
    async def run_retention(ctx: JobContext) -> None:
        cutoff = utcnow() - timedelta(days=runtime.settings.job_retention_days)
        jobs = await queue.delete_done_before(runtime.db, cutoff)
        async with runtime.db.transaction() as session:
            codes, revoked = await auth_service.forget_expired(session)
            await ctx.finish(session)
        try:
            files = await attachments_service.remove_orphan_files(runtime.db, runtime.settings)
        except Exception:
            # The tables' part is done and the next run is queued: the sweep tries again then.
            log.exception("removing orphan attachment files failed")
            files = 0
        log.info(
            "retention done",
            extra={
                "jobs_deleted": jobs,
                "codes_deleted": codes,
                "revocations_deleted": revoked,
                "files_deleted": files,
            },
        )

    return run_retention


def _sla_timer_handler(runtime: Runtime) -> JobHandler:
    async def run_sla_timer(ctx: JobContext) -> None:
        ticket_id = ctx.job.payload.get("ticket_id")
        if not isinstance(ticket_id, str):
            raise PermanentJobError("sla_timer job without ticket_id")
        async with runtime.db.transaction() as session:
            outcome = await tickets_service.run_sla_timer(session, runtime.settings, ticket_id)
            if outcome.reroute:
                await _reroute_breached(session, runtime, ticket_id)
            await ctx.finish(session)

    return run_sla_timer


async def _reroute_breached(session: AsyncSession, runtime: Runtime, ticket_id: str) -> None:
    # A breached ticket whose assignee is away: give it to someone who can take it now.
    ticket = await tickets_service.find(session, ticket_id)
    if ticket is None or ticket.status not in (TicketStatus.open, TicketStatus.in_progress):
        return
    await session.flush()
    decision = await routing.choose_assignee(
        session, ticket.required_skills, ticket.id, requester_id=ticket.created_by
    )
    if decision.assignee is None or decision.assignee.id == ticket.assigned_to:
        return
    reason = f"SLA breached while the assignee was unavailable; {decision.reason}"
    await tickets_service.assign(
        session, runtime.settings, ticket, decision.assignee, reason, actor_id=None
    )


def _sla_recompute_handler(runtime: Runtime) -> JobHandler:
    async def run_sla_recompute(ctx: JobContext) -> None:
        # One batch per job, the next batch queued with this one's completion: a restart
        # resumes where the chain stood.
        after = str(ctx.job.payload.get("after") or "")
        async with runtime.db.transaction() as session:
            last = await tickets_service.recompute_sla_batch(session, after)
            if last is not None:
                queue.enqueue(session, SLA_RECOMPUTE, {"after": last}, key=RECOMPUTE_KEY)
            await ctx.finish(session)

    return run_sla_recompute


async def train_triage_model(
    runtime: Runtime,
    activation: learning.Activation = "if_better",
    *,
    before_commit: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> learning.TrainReport:
    """Train the local model from the database's labels (plus TRIAGE_BASE_CSV), keep the
    version, activate it as `activation` says, and use it in this process at once."""
    base = await asyncio.to_thread(learning.base_examples, runtime.settings)
    report = await learning.train_from_db(
        runtime.db, base=base, activation=activation, before_commit=before_commit
    )
    await runtime.models.refresh(force=True)
    return report


def _train_handler(runtime: Runtime) -> JobHandler:
    async def run_train(ctx: JobContext) -> None:
        activation = ctx.job.payload.get("activation")
        chosen: learning.Activation = "always" if activation == "always" else "if_better"
        try:
            await train_triage_model(runtime, chosen, before_commit=ctx.finish)
        except learning.NotEnoughLabels as exc:
            raise PermanentJobError(str(exc)) from exc

    return run_train


def _retrain_handler(runtime: Runtime) -> JobHandler:
    async def run_retrain(ctx: JobContext) -> None:
        async with triage_repo.reading(runtime.db) as session:
            due, new = await learning.retrain_due(session, runtime.settings.triage_min_new_labels)
        if due:
            try:
                await train_triage_model(runtime, "if_better", before_commit=ctx.finish)
                return
            except learning.NotEnoughLabels as exc:
                log.info("triage retraining skipped: %s", exc)
        else:
            log.info("triage retraining not due", extra={"new_labels": new})
        async with runtime.db.transaction() as session:
            await ctx.finish(session)

    return run_retrain


def job_handlers(runtime: Runtime) -> JobHandlers:
    """Every kind of background job this product runs, and what runs it."""
    return {
        TRIAGE_TICKET: _triage_handler(runtime),
        SEND_EMAIL: make_send_email_handler(runtime.sender, on_sent=_record_email_sent),
        SEND_SIGN_IN_CODE: make_send_sign_in_code_handler(runtime.settings),
        RETENTION: _retention_handler(runtime),
        SLA_TIMER: _sla_timer_handler(runtime),
        SLA_RECOMPUTE: _sla_recompute_handler(runtime),
        offers.recurring_offer_kind(runtime.settings.routing_retry_seconds): _offer_handler(
            runtime
        ),
        offers.OFFER_WAITING_NOW: _offer_handler(runtime),
        learning.TRIAGE_TRAIN: _train_handler(runtime),
        learning.retrain_kind(runtime.settings): _retrain_handler(runtime),
    }


def make_worker(
    runtime: Runtime, concurrency: int | None = None, name: str | None = None
) -> Worker:
    s = runtime.settings
    return Worker(
        runtime.db,
        job_handlers(runtime),
        concurrency=concurrency or s.worker_concurrency,
        poll_seconds=s.worker_poll_seconds,
        lease_seconds=s.job_lease_seconds,
        name=name,
        listen=s.job_notify,
    )


def make_mailbox_reader(runtime: Runtime, name: str | None = None) -> MailboxReader:
    """The support mailbox's reader, handing each message to the email channel."""
    return MailboxReader(runtime.db, runtime.settings, mail_service.handle_message, name=name)


# How long a stopping reader may take to finish the message in hand and release its lease.
MAILBOX_STOP_SECONDS = 15.0


@asynccontextmanager
async def reading_mailbox(runtime: Runtime) -> AsyncIterator[MailboxReader | None]:
    """Read the support mailbox in this process while the block runs, when INBOUND_EMAIL=imap
    (every process that runs the job worker does this; the lease lets one read at a time).
    Yields the reader, or None when no mailbox is configured."""
    if runtime.settings.inbound_email != "imap":
        yield None
        return
    reader = make_mailbox_reader(runtime)
    task = asyncio.create_task(reader.run(), name="mailbox-reader")
    try:
        yield reader
    finally:
        reader.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), MAILBOX_STOP_SECONDS)
        except Exception:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@dataclass
class RerunSummary:
    tickets: int = 0  # tickets whose re-analysis was due
    results: list[TriageResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "<ticket id>: <error>"

    @property
    def outcomes(self) -> Counter[AnalysisStatus]:
        return Counter(r.status for r in self.results)

    @property
    def rerouted(self) -> int:
        return sum(r.rerouted for r in self.results)


async def rerun_triage(
    runtime: Runtime,
    ticket_id: str | None = None,
    *,
    concurrency: int = 4,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[], None] | None = None,
) -> RerunSummary:
    """Re-analyse fallback tickets (or one ticket) in this process, no server needed.

    The same work as `POST /admin/rerun-ai`: the same service queues the same triage jobs,
    then this process runs them itself with the job handler a worker would use. A job that
    fails is retried later by the workers, as any job.
    """
    async with runtime.db.transaction() as session:
        if ticket_id is None:
            requested = await tickets_service.rerun_fallback_tickets(session)
        else:
            requested = await tickets_service.reanalyze_ticket(session, ticket_id)
    summary = RerunSummary(tickets=len(requested.ticket_ids))
    if on_start is not None:
        on_start(summary.tickets)
    if not requested.ticket_ids:
        return summary
    handlers: dict[str, tuple[JobKind, JobHandler]] = {
        TRIAGE_TICKET.name: (TRIAGE_TICKET, _triage_handler(runtime, summary.results.append))
    }
    worker_id = f"rerun-ai:{id(summary):x}"
    keys = [tickets_service.triage_job_key(i) for i in requested.ticket_ids]
    lease = runtime.settings.job_lease_seconds
    while keys:
        batch, keys = keys[:concurrency], keys[concurrency:]
        claimed = await queue.claim_jobs(
            runtime.db, worker_id, len(batch), lease, [TRIAGE_TICKET.name], keys=batch
        )
        await asyncio.gather(*(_run_counted(runtime, handlers, job, summary) for job in claimed))
        if on_progress is not None:
            for _ in batch:
                on_progress()
    return summary


async def _run_counted(
    runtime: Runtime,
    handlers: Mapping[str, tuple[JobKind, JobHandler]],
    job: queue.ClaimedJob,
    summary: RerunSummary,
) -> None:
    before = len(summary.results)
    await run_one(runtime.db, handlers, job, timeout_seconds=600)
    if len(summary.results) == before:
        ticket_id = job.payload.get("ticket_id")
        summary.failed.append(f"{ticket_id}: {await queue.last_error(runtime.db, job.id)}")
