from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import Base, IdMixin, TimestampMixin


class Role(StrEnum):
    user = "user"
    moderator = "moderator"
    admin = "admin"


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default=Role.user.value)
    skills: Mapped[list[str]] = mapped_column(default=list)
    is_active: Mapped[bool] = mapped_column(default=True)
    # Bumped when the role changes or the account is deactivated: older tokens stop working.
    token_version: Mapped[int] = mapped_column(default=0)
    # Routing tie-breaker: whoever was assigned least recently gets the next ticket.
    last_assigned_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_users_role_active", "role", "is_active"),)
