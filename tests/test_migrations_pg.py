"""PostgreSQL migrations: the trigram search indexes, and an upgrade by a role that may not
create extensions (not the database owner)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from ticketing.migrate import upgrade_database

from .conftest import PG_ADMIN_DSN, PG_TEST_DB, REQUIRE_POSTGRES, _pg_url

TRGM_INDEXES = {"ix_tickets_title_trgm", "ix_tickets_description_trgm"}
LIMITED_ROLE = "ticketing_test_limited"


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
    extensions: how a locked-down production database may look."""
    name = f"{PG_TEST_DB}_limited"
    admin = PG_ADMIN_DSN
    database_dsn = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        asyncio.run(
            _execute(
                admin,
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                f'DROP ROLE IF EXISTS "{LIMITED_ROLE}"',
                f'CREATE ROLE "{LIMITED_ROLE}" LOGIN',
                f'CREATE DATABASE "{name}"',
            )
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if REQUIRE_POSTGRES:
            pytest.fail(f"REQUIRE_POSTGRES=1 but PostgreSQL is unreachable: {exc}")
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    asyncio.run(_execute(database_dsn, f'GRANT CREATE ON SCHEMA public TO "{LIMITED_ROLE}"'))
    url = _pg_url(name).replace("://postgres@", f"://{LIMITED_ROLE}@", 1)
    try:
        yield url
    finally:
        asyncio.run(
            _execute(
                admin,
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                f'DROP ROLE IF EXISTS "{LIMITED_ROLE}"',
            )
        )


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
