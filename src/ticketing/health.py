from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ticketing.deps import RuntimeDep
from ticketing.mail.state import mailbox_health

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", responses={503: {"description": "The database does not answer"}})
async def ready(runtime: RuntimeDep) -> JSONResponse:
    try:
        async with asyncio.timeout(3):
            async with runtime.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    body: dict[str, object] = {"status": "ok", "database": "ok"}
    if runtime.settings.inbound_email == "imap":
        # Shown, never a reason for 503: the API works while the mailbox is down.
        try:
            async with asyncio.timeout(3):
                body["mailbox"] = await mailbox_health(runtime.db)
        except Exception:
            body["mailbox"] = {"status": "unknown"}
    return JSONResponse(body)
