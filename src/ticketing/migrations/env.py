"""Alembic environment: runs migrations through the app's own async engine factory."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from ticketing.db import create_engine
from ticketing.models import Base

config = context.config
target_metadata = Base.metadata


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # The search indexes live only in migrations: the trigram indexes of 0002 (PostgreSQL) and
    # the FTS5 table of 0003 (SQLite) with its shadow tables (tickets_fts_data, _idx, ...).
    # Autogenerate must not propose dropping them.
    if not reflected:
        return True
    name = name or ""
    if type_ == "index" and name.endswith("_trgm"):
        return False
    return not (type_ == "table" and (name == "tickets_fts" or name.startswith("tickets_fts_")))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(_run_async(config.get_main_option("sqlalchemy.url") or ""))
