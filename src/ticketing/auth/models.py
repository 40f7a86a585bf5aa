from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import Base, IdMixin, utcnow


class LoginCode(IdMixin, Base):
    """One issued sign-in code. Rows are kept for an hour so they double as the rate-limit log."""

    __tablename__ = "login_codes"

    email: Mapped[str] = mapped_column(String(320))
    code_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    # Set when the code is used, burned, or replaced by a newer one.
    spent_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_login_codes_email_created", "email", "created_at"),)


class RevokedToken(Base):
    """A logged-out token's id, kept until the token would have expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
