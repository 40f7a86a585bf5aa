"""tickets: a moderator's queue, most urgent first, from one index range

Revision ID: 0008_assignee_due
Revises: 0007_reports
Create Date: 2026-11-30 18:00:00

bench/api.py at 1,000,000 tickets: `/moderator/tickets?order=due` fetched all of a
moderator's ~5,000 tickets and sorted them by due time (p99 38 ms on PostgreSQL, 102 ms on
SQLite). With (assigned_to, sla_next_due_at, id) the queue's tickets with a due time and
those without are each one ordered range (tickets.repository.list_page).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_assignee_due"
down_revision: str | None = "0007_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tickets_assignee_due", "tickets", ["assigned_to", "sla_next_due_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_assignee_due", table_name="tickets")
