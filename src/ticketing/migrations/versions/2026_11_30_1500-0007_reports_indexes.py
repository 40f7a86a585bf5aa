"""reports: covering indexes for the summary report (GET /admin/reports/summary)

Revision ID: 0007_reports
Revises: 0006
Create Date: 2026-11-30 15:00:00

bench/reports.py at 100,000 tickets: without these, every figure of the summary was a
sequential scan of the whole tickets table (the period's figures, the tickets resolved in the
period, the backlog). Each index below holds every column its queries read, so they become
index-only range scans (PostgreSQL) or covering-index scans (SQLite):

- the period's tickets: created_at, then what the figures read of them;
- tickets resolved in the period, per assignee;
- the backlog (open, in progress, waiting) by priority, SLA state and assignee.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_reports"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPORT_PERIOD_COLUMNS = [
    "created_at",
    "priority",
    "ticket_type",
    "sla_status",
    "analysis_status",
    "assigned_to",
    "first_responded_at",
    "resolved_at",
]


def upgrade() -> None:
    op.create_index("ix_tickets_report_created", "tickets", REPORT_PERIOD_COLUMNS)
    op.create_index("ix_tickets_report_resolved", "tickets", ["resolved_at", "assigned_to"])
    op.create_index(
        "ix_tickets_report_backlog", "tickets", ["status", "priority", "sla_status", "assigned_to"]
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_report_backlog", table_name="tickets")
    op.drop_index("ix_tickets_report_resolved", table_name="tickets")
    op.drop_index("ix_tickets_report_created", table_name="tickets")
