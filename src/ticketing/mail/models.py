from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import Base, EnumText, IdMixin, utcnow


class InboundOutcome(StrEnum):
    ticket = "ticket"  # became a new ticket
    comment = "comment"  # became a comment on a ticket
    ignored = "ignored"  # automatic mail, a bounce, our own mail, a duplicate
    rejected = "rejected"  # a sender who may not sign in, too large, unreadable


class InboundEmail(IdMixin, Base):
    """One message read from the support mailbox, and what became of it.

    `mailbox_key` (UIDVALIDITY:UID) is unique: a message is handled once, even when a crash
    came between its commit and its move to the done folder.
    """

    __tablename__ = "inbound_emails"

    mailbox_key: Mapped[str] = mapped_column(String(100), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998), default=None)
    from_address: Mapped[str | None] = mapped_column(String(320), default=None)
    subject: Mapped[str | None] = mapped_column(Text, default=None)
    size: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[InboundOutcome] = mapped_column(EnumText(InboundOutcome, 10))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    ticket_id: Mapped[str | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), default=None
    )
    comment_id: Mapped[str | None] = mapped_column(
        ForeignKey("ticket_comments.id", ondelete="SET NULL"), default=None
    )

    __table_args__ = (
        Index("ix_inbound_emails_received", "received_at", "id"),
        Index("ix_inbound_emails_outcome_received", "outcome", "received_at", "id"),
        Index("ix_inbound_emails_message_id", "message_id"),
    )


class MailboxState(Base):
    """Who reads the mailbox now (a lease, so one process at a time), and how reading goes:
    shown by /health/ready whichever process reads."""

    __tablename__ = "mailbox_state"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(20), default="starting")
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_ok_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
