"""The `send_email` job handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.jobs import queue
from ticketing.jobs.worker import JobContext, JobHandler, PermanentJobError
from ticketing.notifications.senders import EmailSender, OutgoingEmail

OnSent = Callable[[AsyncSession, dict[str, Any]], Awaitable[None]]


async def _record_sent(ctx: JobContext, payload: dict[str, Any], on_sent: OnSent | None) -> None:
    async with ctx.db.transaction() as session:
        if payload.get("sensitive"):
            # The subject too: a sign-in code's subject carries the code.
            secret = ("subject", "text", "html")
            scrubbed = {k: v for k, v in payload.items() if k not in secret}
            await queue.replace_payload(session, ctx.job.id, scrubbed | {"scrubbed": True})
        if on_sent is not None:
            await on_sent(session, payload)
        await ctx.finish(session)


def make_send_email_handler(sender: EmailSender, on_sent: OnSent | None = None) -> JobHandler:
    async def send_email(ctx: JobContext) -> None:
        payload = ctx.job.payload
        try:
            email = OutgoingEmail.from_payload(payload)
        except KeyError as exc:
            raise PermanentJobError(f"malformed email job: missing {exc}") from exc
        # Delivery is at-least-once: a crash between sending and the commit below sends again.
        await sender.send(email)
        # The message is out. A database connection that died meanwhile (the server restarted,
        # an idle connection was cut) fails only the first statement; the pool then reconnects,
        # so try the bookkeeping once more rather than fail the job and send the message twice.
        for attempt in (1, 2):
            try:
                await _record_sent(ctx, payload, on_sent)
                return
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise

    return send_email
