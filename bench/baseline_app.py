"""The baseline for bench/api.py: the least a FastAPI service can do to file a ticket.

`POST /tickets/create` validates the same JSON body and does one INSERT ... RETURNING of the same
row our service writes to `tickets`, then returns it. Same database, same driver and the same
engine configuration as ours (`ticketing.db.create_engine`: SQLAlchemy async Core over asyncpg or
aiosqlite, same pool size, same SQLite pragmas and BEGIN IMMEDIATE), served by the same uvicorn
settings (one process, uvloop + httptools, no access log). No auth, no ORM, no middleware, no
rate limit, no timeline event, no job.

    DATABASE_URL=... BASELINE_USER_ID=<users.id> \
        uvicorn bench.baseline_app:create_app --factory --port 8001
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Table, insert

from ticketing.db import create_engine, new_id
from ticketing.tickets.models import Ticket

POOL_SIZE = 16  # what `ticketing serve` gets: max(5, WORKER_CONCURRENCY=16)


class TicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=20000)


def create_app() -> FastAPI:
    engine = create_engine(os.environ["DATABASE_URL"], pool_size=POOL_SIZE)
    created_by = os.environ["BASELINE_USER_ID"]
    tickets = cast(Table, Ticket.__table__)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/tickets/create", status_code=201)
    async def create_ticket(body: TicketIn) -> dict[str, Any]:
        now = datetime.now(UTC)
        values = {
            "id": new_id(),
            "title": body.title,
            "description": body.description,
            "status": "open",
            "required_skills": [],
            "analysis_status": "pending",
            "created_by": created_by,
            "created_at": now,
            "updated_at": now,
        }
        async with engine.begin() as conn:
            row = await conn.execute(insert(tickets).values(values).returning(*tickets.c))
            return dict(row.mappings().one())

    return app
