"""availability, SLA and learning: the columns and tables of issues 12 and 13 in one step

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 14:00:00

- users: timezone, working_hours, away_until, max_open_tickets (routing respects them).
- tickets: SLA due times and state (sla_next_due_at is the nearest pending due time, for
  order=due; sla_paused_* pause the resolution clock while waiting; the warned/breached flags
  make each mail happen once), analysis_confidence, needs_review.
- sla_config: the one SLA policy row (GET/PUT /admin/sla).
- triage_corrections: staff changes to an analysis, kept as labels.
- triage_models: every trained local model version, its scores and its arrays.

Adds columns only (no table rebuild), so the SQLite FTS triggers of 0003 stay as they are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ticketing.db import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TICKET_SLA_FLAGS = (
    "sla_response_warned",
    "sla_response_breached",
    "sla_resolution_warned",
    "sla_resolution_breached",
)


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("timezone", sa.String(length=64), nullable=False, server_default="UTC")
    )
    # SQLite adds a NOT NULL column only with a default; PostgreSQL drops it afterwards (the
    # model sets the value, and PostgreSQL's json type cannot even compare defaults).
    op.add_column(
        "users", sa.Column("working_hours", sa.JSON(), nullable=False, server_default="[]")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("users", "working_hours", server_default=None)
    op.add_column("users", sa.Column("away_until", UTCDateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("max_open_tickets", sa.Integer(), nullable=True))

    for name in (
        "first_response_due_at",
        "first_responded_at",
        "resolution_due_at",
        "sla_next_due_at",
        "sla_paused_at",
    ):
        op.add_column("tickets", sa.Column(name, UTCDateTime(timezone=True), nullable=True))
    op.add_column("tickets", sa.Column("sla_status", sa.String(length=20), nullable=True))
    op.add_column(
        "tickets",
        sa.Column("sla_paused_seconds", sa.Integer(), nullable=False, server_default="0"),
    )
    for name in _TICKET_SLA_FLAGS:
        op.add_column(
            "tickets", sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.add_column("tickets", sa.Column("analysis_confidence", sa.JSON(), nullable=True))
    op.add_column(
        "tickets",
        sa.Column("needs_review", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_tickets_sla_next_due", "tickets", ["sla_next_due_at", "id"])
    op.create_index("ix_tickets_sla_status_created", "tickets", ["sla_status", "created_at", "id"])

    op.create_table(
        "sla_config",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name=op.f("fk_sla_config_updated_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_config")),
    )

    op.create_table(
        "triage_corrections",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("ticket_id", sa.String(length=36), nullable=False),
        sa.Column("field", sa.String(length=30), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("provider", sa.String(length=50), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("actor_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_triage_corrections_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_triage_corrections_actor_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_corrections")),
    )
    op.create_index("ix_triage_corrections_created", "triage_corrections", ["created_at", "id"])
    op.create_index("ix_triage_corrections_ticket", "triage_corrections", ["ticket_id", "field"])

    op.create_table(
        "triage_models",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("labels", sa.Integer(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("activated_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_models")),
    )
    op.create_index("ix_triage_models_created", "triage_models", ["created_at", "id"])
    op.create_index("ix_triage_models_active", "triage_models", ["active", "activated_at"])

    op.create_index("ix_attachments_uploader_created", "attachments", ["uploaded_by", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_attachments_uploader_created", table_name="attachments")
    op.drop_table("triage_models")
    op.drop_table("triage_corrections")
    op.drop_table("sla_config")
    op.drop_index("ix_tickets_sla_status_created", table_name="tickets")
    op.drop_index("ix_tickets_sla_next_due", table_name="tickets")
    # Plain DROP COLUMN (SQLite >= 3.35), not a batch rebuild, which would drop 0003's triggers.
    for name in (
        "needs_review",
        "analysis_confidence",
        *_TICKET_SLA_FLAGS,
        "sla_paused_seconds",
        "sla_status",
        "sla_paused_at",
        "sla_next_due_at",
        "resolution_due_at",
        "first_responded_at",
        "first_response_due_at",
    ):
        op.drop_column("tickets", name)
    for name in ("max_open_tickets", "away_until", "working_hours", "timezone"):
        op.drop_column("users", name)
