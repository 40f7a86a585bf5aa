from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import Base, EnumText, IdMixin, TimestampMixin
from ticketing.vocabulary import Role


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(EnumText(Role), default=Role.user)
    skills: Mapped[list[str]] = mapped_column(default=list)
    is_active: Mapped[bool] = mapped_column(default=True)
    # Bumped when the role changes or the account is deactivated: older tokens stop working.
    token_version: Mapped[int] = mapped_column(default=0)
    # Routing tie-breaker: whoever was assigned least recently gets the next ticket.
    last_assigned_at: Mapped[datetime | None] = mapped_column(default=None)
    # Availability (contract: "Availability and capacity"). working_hours holds
    # {"day": 0..6, "start": "HH:MM", "end": "HH:MM"} in the user's time zone; empty = always.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    working_hours: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    away_until: Mapped[datetime | None] = mapped_column(default=None)
    max_open_tickets: Mapped[int | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_users_role_active", "role", "is_active"),)

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.moderator, Role.admin)
