"""indexes for the per-person comment rate limit and the retention of done jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 11:00:00

`POST /tickets/{id}/comments` counts the comments the caller wrote in the last minute, and the
retention job deletes done jobs finished before a cut-off: each index answers one of them
without reading every row.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_ticket_comments_author_created", "ticket_comments", ["author_id", "created_at"]
    )
    op.create_index("ix_jobs_status_finished", "jobs", ["status", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status_finished", table_name="jobs")
    op.drop_index("ix_ticket_comments_author_created", table_name="ticket_comments")
