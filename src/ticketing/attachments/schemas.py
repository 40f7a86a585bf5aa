from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AttachmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    ticket_id: str
    comment_id: str | None
    filename: str
    content_type: str
    size: int
    uploaded_by: str
    # A file of an internal note: only staff who see internal notes are ever shown it.
    internal: bool
    created_at: datetime


class AttachmentList(BaseModel):
    items: list[AttachmentOut]
