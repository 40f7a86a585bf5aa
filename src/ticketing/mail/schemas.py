from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ticketing.mail.models import InboundOutcome


class InboundEmailOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: str
    message_id: str | None
    # `from` is a Python keyword: the attribute is from_address, the JSON field "from".
    from_address: str | None = Field(serialization_alias="from")
    subject: str | None
    received_at: datetime
    outcome: InboundOutcome
    reason: str | None
    ticket_id: str | None
