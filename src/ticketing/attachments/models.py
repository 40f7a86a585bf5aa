from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import Base, IdMixin, utcnow


class Attachment(IdMixin, Base):
    """A file attached to a ticket (and to one of its comments, when it came with one).

    The bytes live under ATTACHMENT_DIR, named by their SHA-256: one copy of a file however
    often it is attached.
    """

    __tablename__ = "attachments"

    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    comment_id: Mapped[str | None] = mapped_column(
        ForeignKey("ticket_comments.id", ondelete="CASCADE"), default=None
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    # Staff-only: a file of an internal note.
    internal: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_attachments_ticket_created", "ticket_id", "created_at"),
        Index("ix_attachments_sha256", "sha256"),
        Index("ix_attachments_uploader_created", "uploaded_by", "created_at"),
    )
