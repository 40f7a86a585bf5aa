from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import Base, utcnow


class SlaConfig(Base):
    """The SLA policy (GET/PUT /admin/sla): one row, id 1; no row means the defaults."""

    __tablename__ = "sla_config"

    id: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), default=None)
