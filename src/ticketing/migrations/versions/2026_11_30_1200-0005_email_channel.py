"""email channel: ticket numbers and sources, Message-IDs, attachments, the inbound log

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:00:00

- tickets.number: 1, 2, 3 ... in creation order (existing tickets are numbered by created_at).
  PostgreSQL draws it from the sequence ticket_number_seq; SQLite, whose writers take turns,
  from MAX(number) + 1 in the INSERT itself (see tickets.repository.add).
- tickets.source and ticket_comments.source: web or email.
- ticket_messages: every Message-ID sent or received about a ticket, for threading replies.
- attachments, inbound_emails (the log of every message read from the mailbox) and
  mailbox_state (the reader's lease and health).

Adds columns only (no table rebuild), so the SQLite FTS triggers of 0003 stay as they are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ticketing.db import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"

    # SQLite adds a NOT NULL column only with a default; PostgreSQL fills it first.
    op.add_column(
        "tickets",
        sa.Column(
            "number",
            sa.Integer(),
            nullable=postgres,
            server_default=None if postgres else sa.text("0"),
        ),
    )
    op.execute(
        "UPDATE tickets SET number = numbered.n FROM "
        "(SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS n FROM tickets) AS numbered "
        "WHERE tickets.id = numbered.id"
    )
    if postgres:
        op.alter_column("tickets", "number", nullable=False)
        op.execute("CREATE SEQUENCE ticket_number_seq OWNED BY tickets.number")
        op.execute(
            "SELECT setval('ticket_number_seq', COALESCE((SELECT MAX(number) FROM tickets), 0)"
            " + 1, false)"
        )
    op.create_index("ix_tickets_number", "tickets", ["number"], unique=True)
    for table in ("tickets", "ticket_comments"):
        op.add_column(
            table,
            sa.Column("source", sa.String(length=10), nullable=False, server_default="web"),
        )

    op.create_table(
        "ticket_messages",
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("ticket_id", sa.String(length=36), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_messages_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_ticket_messages")),
    )
    op.create_index(
        "ix_ticket_messages_ticket_created", "ticket_messages", ["ticket_id", "created_at"]
    )

    op.create_table(
        "attachments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("ticket_id", sa.String(length=36), nullable=False),
        sa.Column("comment_id", sa.String(length=36), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by", sa.String(length=36), nullable=False),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_attachments_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["ticket_comments.id"],
            name=op.f("fk_attachments_comment_id_ticket_comments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by"], ["users.id"], name=op.f("fk_attachments_uploaded_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index("ix_attachments_ticket_created", "attachments", ["ticket_id", "created_at"])
    op.create_index("ix_attachments_sha256", "attachments", ["sha256"])

    op.create_table(
        "inbound_emails",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("mailbox_key", sa.String(length=100), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("from_address", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("ticket_id", sa.String(length=36), nullable=True),
        sa.Column("comment_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_inbound_emails_ticket_id_tickets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["ticket_comments.id"],
            name=op.f("fk_inbound_emails_comment_id_ticket_comments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_emails")),
        sa.UniqueConstraint("mailbox_key", name=op.f("uq_inbound_emails_mailbox_key")),
    )
    op.create_index("ix_inbound_emails_received", "inbound_emails", ["received_at", "id"])
    op.create_index(
        "ix_inbound_emails_outcome_received", "inbound_emails", ["outcome", "received_at", "id"]
    )
    op.create_index("ix_inbound_emails_message_id", "inbound_emails", ["message_id"])

    op.create_table(
        "mailbox_state",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_ok_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_mailbox_state")),
    )


def downgrade() -> None:
    op.drop_table("mailbox_state")
    op.drop_table("inbound_emails")
    op.drop_table("attachments")
    op.drop_table("ticket_messages")
    # Plain DROP COLUMN (SQLite >= 3.35), not a batch rebuild, which would drop 0003's triggers.
    for table in ("ticket_comments", "tickets"):
        op.drop_column(table, "source")
    op.drop_index("ix_tickets_number", table_name="tickets")
    op.drop_column("tickets", "number")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS ticket_number_seq")
