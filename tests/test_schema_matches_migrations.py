"""The models and the migrations agree: Alembic's autogenerate comparison of a freshly migrated
database with `ticketing.models.Base.metadata` finds nothing to change, on SQLite and on
PostgreSQL (types and server defaults included)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from ticketing.db import create_engine
from ticketing.migrate import upgrade_database
from ticketing.models import Base

from . import pg_databases

# Objects that only the migrations create, on purpose: the ORM does not declare them, so the
# comparison would propose dropping them. Only these, by exact name, and only as reflected from
# the database (a model object of the same name would still be compared).
MIGRATION_ONLY = {
    # 0002: trigram GIN indexes on lower(title) / lower(description) for the q= search.
    "postgresql": {
        ("index", "ix_tickets_title_trgm"),
        ("index", "ix_tickets_description_trgm"),
    },
    # 0003: the FTS5 table for the q= search and the shadow tables FTS5 keeps for it (its
    # triggers are not compared by Alembic at all).
    "sqlite": {
        ("table", "tickets_fts"),
        ("table", "tickets_fts_data"),
        ("table", "tickets_fts_idx"),
        ("table", "tickets_fts_docsize"),
        ("table", "tickets_fts_config"),
    },
}


# Differences the migrations cannot avoid, by engine, as (kind, table, column). SQLite adds a
# NOT NULL column only with a default and cannot drop one without rebuilding the table (which
# would drop 0003's FTS triggers): 0005 leaves `tickets.number DEFAULT 0` there, 0006
# `users.working_hours DEFAULT '[]'`. Nothing relies on them: the code sets both on every insert.
KNOWN_DIFFERENCES = {
    "postgresql": set(),
    "sqlite": {
        ("modify_default", "tickets", "number"),
        ("modify_default", "users", "working_hours"),
    },
}


def _known(connection: Connection, difference: Any) -> bool:
    # Column changes come as a list of tuples: (kind, schema, table, column, ...).
    change = difference[0] if isinstance(difference, list) else difference
    key = (change[0], change[2], change[3]) if len(change) > 3 else None
    return key in KNOWN_DIFFERENCES[connection.dialect.name]


def _differences(connection: Connection) -> tuple[list[Any], set[tuple[str, str | None]]]:
    """(what autogenerate would change, the migration-only objects it was told to leave out)"""
    migration_only = MIGRATION_ONLY[connection.dialect.name]
    left_out: set[tuple[str, str | None]] = set()

    def include_object(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        if reflected and compare_to is None and (type_, name) in migration_only:
            left_out.add((type_, name))
            return False
        return True

    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_object": include_object,
        },
    )
    found = compare_metadata(context, Base.metadata)
    known = [d for d in found if _known(connection, d)]
    assert len(known) == len(KNOWN_DIFFERENCES[connection.dialect.name])  # none gone stale
    return [d for d in found if d not in known], left_out


async def _compare(url: str) -> tuple[list[Any], set[tuple[str, str | None]]]:
    engine = create_engine(url)  # the app's own engine factory, as the migrations use
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_differences)
    finally:
        await engine.dispose()


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """A database of this run's own, migrated from scratch and used by nothing else."""
    name = pg_databases.run_object_name("schema")
    try:
        asyncio.run(pg_databases.create_database(name))
    except pg_databases.PostgresUnreachable as exc:
        pg_databases.skip_or_fail(str(exc))
    try:
        url = pg_databases.sqlalchemy_url(name)
        upgrade_database(url)
        yield url
    finally:
        asyncio.run(pg_databases.drop_database(name))


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    upgrade_database(url)
    return url


def test_the_migrations_build_the_models_on_sqlite(fresh_sqlite: str) -> None:
    differences, left_out = asyncio.run(_compare(fresh_sqlite))
    assert differences == []
    assert left_out == MIGRATION_ONLY["sqlite"]  # the list names what 0003 really creates


def test_the_migrations_build_the_models_on_postgresql(fresh_postgres: str) -> None:
    differences, left_out = asyncio.run(_compare(fresh_postgres))
    assert differences == []
    assert left_out == MIGRATION_ONLY["postgresql"]  # the list names what 0002 really creates


def test_the_comparison_sees_a_schema_the_models_do_not_describe(fresh_sqlite: str) -> None:
    path = fresh_sqlite.removeprefix("sqlite+aiosqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE INDEX ix_tickets_not_in_the_models ON tickets (title)")
        db.execute("ALTER TABLE tickets ADD COLUMN not_in_the_models INTEGER")
        db.commit()
    differences, _ = asyncio.run(_compare(fresh_sqlite))
    found = {(d[0], d[-1].name) for d in differences}
    assert found == {
        ("remove_index", "ix_tickets_not_in_the_models"),
        ("remove_column", "not_in_the_models"),
    }
