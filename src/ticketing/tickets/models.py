from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import Base, EnumText, IdMixin, TimestampMixin, utcnow
from ticketing.vocabulary import (
    AnalysisStatus,
    Priority,
    SlaStatus,
    Source,
    TicketStatus,
    TicketType,
)


class EventKind(StrEnum):
    """The kinds of line in a ticket's timeline."""

    created = "created"
    analysed = "analysed"
    assigned = "assigned"
    unassigned = "unassigned"
    status_changed = "status_changed"
    updated = "updated"
    commented = "commented"
    emailed = "emailed"
    attachments_dropped = "attachments_dropped"  # files of a mail that were over the cap
    sla_warning = "sla_warning"  # staff-only: a target is at risk
    sla_breached = "sla_breached"  # staff-only: a target passed unmet


class Ticket(IdMixin, TimestampMixin, Base):
    __tablename__ = "tickets"

    # 1, 2, 3, ... in creation order, shown as #123 (see repository.add for how it is drawn).
    number: Mapped[int]
    source: Mapped[Source] = mapped_column(
        EnumText(Source, 10), default=Source.web, server_default=Source.web.value
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[TicketStatus] = mapped_column(EnumText(TicketStatus), default=TicketStatus.open)
    priority: Mapped[Priority | None] = mapped_column(EnumText(Priority), default=None)
    ticket_type: Mapped[TicketType | None] = mapped_column(EnumText(TicketType), default=None)
    required_skills: Mapped[list[str]] = mapped_column(default=list)
    helpful_notes: Mapped[str | None] = mapped_column(Text, default=None)
    analysis_status: Mapped[AnalysisStatus] = mapped_column(
        EnumText(AnalysisStatus), default=AnalysisStatus.pending
    )
    analysis_provider: Mapped[str | None] = mapped_column(String(50), default=None)
    analysis_model: Mapped[str | None] = mapped_column(String(100), default=None)
    analysis_error: Mapped[str | None] = mapped_column(Text, default=None)
    analyzed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    assigned_to: Mapped[str | None] = mapped_column(ForeignKey("users.id"), default=None)
    assigned_at: Mapped[datetime | None] = mapped_column(default=None)
    assignment_reason: Mapped[str | None] = mapped_column(Text, default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    # Per field, 0..1, from the model's probabilities (see triage); below the threshold the
    # ticket is flagged for review.
    analysis_confidence: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    needs_review: Mapped[bool] = mapped_column(default=False, server_default=false())

    # SLA (contract: "SLA"). sla_next_due_at is the nearest pending due time (order=due);
    # the resolution clock stands still from sla_paused_at while the ticket is waiting, and
    # sla_paused_seconds sums the pauses so far. Each flag makes its mail happen once.
    first_response_due_at: Mapped[datetime | None] = mapped_column(default=None)
    first_responded_at: Mapped[datetime | None] = mapped_column(default=None)
    resolution_due_at: Mapped[datetime | None] = mapped_column(default=None)
    sla_status: Mapped[SlaStatus | None] = mapped_column(EnumText(SlaStatus), default=None)
    sla_next_due_at: Mapped[datetime | None] = mapped_column(default=None)
    sla_paused_at: Mapped[datetime | None] = mapped_column(default=None)
    sla_paused_seconds: Mapped[int] = mapped_column(default=0, server_default="0")
    sla_response_warned: Mapped[bool] = mapped_column(default=False, server_default=false())
    sla_response_breached: Mapped[bool] = mapped_column(default=False, server_default=false())
    sla_resolution_warned: Mapped[bool] = mapped_column(default=False, server_default=false())
    sla_resolution_breached: Mapped[bool] = mapped_column(default=False, server_default=false())

    __table_args__ = (
        # Listing is newest-first with (created_at, id) as the cursor; each index below serves
        # one visibility rule or filter without sorting.
        Index("ix_tickets_number", "number", unique=True),
        Index("ix_tickets_created", "created_at", "id"),
        Index("ix_tickets_creator_created", "created_by", "created_at", "id"),
        Index("ix_tickets_assignee_created", "assigned_to", "created_at", "id"),
        Index("ix_tickets_assignee_status", "assigned_to", "status"),
        Index("ix_tickets_status_created", "status", "created_at", "id"),
        Index("ix_tickets_analysis_status", "analysis_status", "status"),
        Index("ix_tickets_sla_next_due", "sla_next_due_at", "id"),
        Index("ix_tickets_assignee_due", "assigned_to", "sla_next_due_at", "id"),
        Index("ix_tickets_sla_status_created", "sla_status", "created_at", "id"),
        # The summary report (ticketing.reports): covering indexes, see migration 0007_reports.
        Index(
            "ix_tickets_report_created",
            "created_at",
            "priority",
            "ticket_type",
            "sla_status",
            "analysis_status",
            "assigned_to",
            "first_responded_at",
            "resolved_at",
        ),
        Index("ix_tickets_report_resolved", "resolved_at", "assigned_to"),
        Index("ix_tickets_report_backlog", "status", "priority", "sla_status", "assigned_to"),
    )


class Comment(IdMixin, Base):
    __tablename__ = "ticket_comments"

    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(default=False)
    source: Mapped[Source] = mapped_column(
        EnumText(Source, 10), default=Source.web, server_default=Source.web.value
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_ticket_comments_ticket_created", "ticket_id", "created_at"),
        Index("ix_ticket_comments_author_created", "author_id", "created_at"),  # rate limit
    )


class TicketEvent(IdMixin, Base):
    """One line of a ticket's timeline."""

    __tablename__ = "ticket_events"

    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[EventKind] = mapped_column(EnumText(EventKind, 30))
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Staff-only lines (internal notes, analysis errors, routing details) are hidden from users.
    internal: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_ticket_events_ticket_created", "ticket_id", "created_at"),)


class MessageDirection(StrEnum):
    received = "received"
    sent = "sent"


class TicketMessage(Base):
    """A Message-ID of a mail we sent or received about a ticket: replies that name it in
    In-Reply-To or References belong to that ticket's conversation."""

    __tablename__ = "ticket_messages"

    message_id: Mapped[str] = mapped_column(String(998), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    direction: Mapped[MessageDirection] = mapped_column(EnumText(MessageDirection, 10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_ticket_messages_ticket_created", "ticket_id", "created_at"),)
