"""tickets: trigram indexes for the q= search on PostgreSQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 19:00:00

`GET /tickets?q=` matches `lower(title) LIKE '%q%' OR lower(description) LIKE '%q%'`; without
these indexes PostgreSQL reads every ticket for a rare word (400 ms at 100,000 tickets). pg_trgm
ships with PostgreSQL (contrib) and is a trusted extension; where it is not available the
search keeps working, unindexed. SQLite has no equivalent here and keeps scanning.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if not available:
        return
    try:
        # In a savepoint: a role that may not create it (not the database owner, or PostgreSQL
        # before 13, where pg_trgm is not yet a trusted extension) gets unindexed search rather
        # than a failed upgrade.
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        log.warning("pg_trgm not installed (%s): q= search will not be indexed", exc.orig)
        return
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_tickets_title_trgm "
        "ON tickets USING gin (lower(title) gin_trgm_ops)"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_tickets_description_trgm "
        "ON tickets USING gin (lower(description) gin_trgm_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_tickets_description_trgm")
    op.execute("DROP INDEX IF EXISTS ix_tickets_title_trgm")
