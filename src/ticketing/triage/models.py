from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import Base, IdMixin, utcnow


class TriageCorrection(IdMixin, Base):
    """A staff change to an analysed ticket's priority, type or skills: a label for training,
    with what the analysis had said and which provider said it."""

    __tablename__ = "triage_corrections"

    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(30))  # priority | ticket_type | required_skills
    before: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)
    after: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)
    provider: Mapped[str | None] = mapped_column(String(50), default=None)
    model: Mapped[str | None] = mapped_column(String(100), default=None)
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_triage_corrections_created", "created_at", "id"),
        Index("ix_triage_corrections_ticket", "ticket_id", "field"),
    )


class TriageModelVersion(IdMixin, Base):
    """A trained local model: its arrays (an .npz, never a pickle) with a JSON manifest and the
    SHA-256 of the arrays, checked on load. At most one is active."""

    __tablename__ = "triage_models"

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    labels: Mapped[int]
    scores: Mapped[dict[str, Any]]
    manifest: Mapped[dict[str, Any]]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=False, server_default=false())
    activated_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_triage_models_created", "created_at", "id"),
        Index("ix_triage_models_active", "active", "activated_at"),
    )
