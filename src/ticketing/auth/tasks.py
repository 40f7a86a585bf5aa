"""The `send_sign_in_code` job handler."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.auth import service
from ticketing.config import Settings
from ticketing.jobs import queue
from ticketing.jobs.worker import JobContext, JobHandler, PermanentJobError


def make_send_sign_in_code_handler(settings: Settings) -> JobHandler:
    async def send_sign_in_code(ctx: JobContext) -> None:
        email, code = ctx.job.payload.get("email"), ctx.job.payload.get("code")
        if not isinstance(email, str) or not isinstance(code, str):
            raise PermanentJobError("sign-in code job without email or code")
        async with ctx.db.transaction() as session:
            await service.deliver_code(session, settings, email, code)
            await _forget_code(session, ctx)
            await ctx.finish(session)

    return send_sign_in_code


async def _forget_code(session: AsyncSession, ctx: JobContext) -> None:
    # The code travels on in its email job (scrubbed once delivered), or nowhere: this row
    # must not keep it.
    await queue.replace_payload(session, ctx.job.id, {"email": ctx.job.payload["email"]})
