"""Offering waiting tickets again: the job kinds, and asking for a run now.

Tickets nobody could take (`assignment_reason` "waiting: ...") are offered to the staff again
by a recurring job, and at once when something frees someone up: a ticket resolved, someone
back from away, a person added. Both kinds run the same handler (see `ticketing.flows`); the
one-off kind is separate so that it does not start a second recurring chain.

This module depends on the job queue only, so the tickets and users domains can ask for an
offer without depending on routing's decisions.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.jobs import queue
from ticketing.jobs.queue import JobKind

# every_seconds is ROUTING_RETRY_SECONDS: see `recurring_offer_kind`.
OFFER_WAITING = JobKind("offer_waiting_tickets", max_attempts=3, every_seconds=60.0)
OFFER_WAITING_NOW = JobKind("offer_waiting_tickets_now", max_attempts=5)
OFFER_NOW_KEY = "offer_waiting:now"


def recurring_offer_kind(every_seconds: float) -> JobKind:
    """The recurring kind with the configured period (ROUTING_RETRY_SECONDS)."""
    return replace(OFFER_WAITING, every_seconds=every_seconds)


async def request_offer(session: AsyncSession) -> None:
    """Offer the waiting tickets again as soon as the caller commits.

    One queued run is enough however many changes ask for it: a run reads the state when it
    starts. A run already in progress may have read it before this change, so only a queued
    (not yet started) run counts as a duplicate.
    """
    if await queue.has_queued(session, OFFER_NOW_KEY):
        return
    queue.enqueue(session, OFFER_WAITING_NOW, {}, key=OFFER_NOW_KEY)
