"""The SLA policy row (one row, id 1; none means the defaults)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.sla.models import SlaConfig

CONFIG_ID = 1


async def get_config(session: AsyncSession, *, for_update: bool = False) -> SlaConfig | None:
    stmt = select(SlaConfig).where(SlaConfig.id == CONFIG_ID)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def save_config(session: AsyncSession, data: dict[str, Any], user_id: str | None) -> None:
    row = await get_config(session, for_update=True)
    if row is None:
        session.add(SlaConfig(id=CONFIG_ID, data=data, updated_by=user_id, updated_at=utcnow()))
    else:
        row.data = data
        row.updated_by = user_id
        row.updated_at = utcnow()
    await session.flush()
