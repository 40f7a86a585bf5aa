"""PostgreSQL migrations: the trigram search indexes, and an upgrade by a role that may not
create extensions (not the database owner)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from ticketing.migrate import upgrade_database

from . import pg_databases
from .pg_databases import run_object_name

TRGM_INDEXES = {"ix_tickets_title_trgm", "ix_tickets_description_trgm"}


async def _fetch(dsn: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def _execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _indexes(url: str) -> set[str]:
    rows = asyncio.run(
        _fetch(
            url.replace("+asyncpg", ""),
            "SELECT indexname FROM pg_indexes WHERE tablename = 'tickets'",
        )
    )
    return {row["indexname"] for row in rows}


def test_the_migrations_index_q_search_with_trigrams(postgres_url: str | None) -> None:
    if postgres_url is None:
        pytest.skip("PostgreSQL is not reachable")
    assert _indexes(postgres_url) >= TRGM_INDEXES


@pytest.fixture
def limited_database() -> Iterator[str]:
    """A database owned by postgres, migrated by a role that may create tables in it but not
    extensions: how a locked-down production database may look. Both are this run's own (roles
    are cluster-wide, so the role's name is unique to the run too) and are dropped afterwards."""
    name = run_object_name("limited")  # the database and the role
    try:
        asyncio.run(pg_databases.create_role(name))
    except pg_databases.PostgresUnreachable as exc:
        pg_databases.skip_or_fail(str(exc))
    try:
        asyncio.run(pg_databases.create_database(name))
        asyncio.run(_execute(pg_databases.dsn(name), f'GRANT CREATE ON SCHEMA public TO "{name}"'))
        yield pg_databases.sqlalchemy_url(name, user=name)
    finally:
        asyncio.run(pg_databases.drop_role(name, databases=[name]))
        asyncio.run(pg_databases.drop_database(name))


def test_a_role_that_cannot_create_extensions_still_migrates(limited_database: str) -> None:
    upgrade_database(limited_database)  # must not fail on CREATE EXTENSION pg_trgm

    indexes = _indexes(limited_database)
    assert "ix_tickets_created" in indexes  # the schema is there
    assert not TRGM_INDEXES & indexes  # without the search indexes
    rows = asyncio.run(
        _fetch(limited_database.replace("+asyncpg", ""), "SELECT version_num FROM alembic_version")
    )
    migrated_to = rows[0]["version_num"]
    upgrade_database(limited_database)  # and a second run is a no-op
    rows = asyncio.run(
        _fetch(limited_database.replace("+asyncpg", ""), "SELECT version_num FROM alembic_version")
    )
    assert rows[0]["version_num"] == migrated_to
