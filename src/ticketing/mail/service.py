"""PLACEHOLDER, replaced wholesale by the email channel's ticket side (the lead's branch).

It has the exact signature of the real `handle_message` so that the mailbox reader, its wiring
and its tests are written against it. It only records each message in the inbound log
(idempotently, by mailbox key); it makes no tickets or comments.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ticketing.config import Settings
from ticketing.db import Database
from ticketing.mail.models import InboundEmail, InboundOutcome
from ticketing.mail.parsing import UnreadableEmail, parse_email


async def handle_message(
    db: Database, settings: Settings, raw: bytes, mailbox_key: str
) -> InboundEmail:
    """Decide what one message becomes and commit it, with its inbound-log row keyed by
    `mailbox_key`, in one transaction. Idempotent: if the log already has `mailbox_key`, it
    returns that row and changes nothing. Never raises for a bad message (it is logged as
    rejected); raises only when the database itself fails (then the message stays in the
    folder and is tried again)."""
    try:
        parsed = parse_email(raw)
        row = InboundEmail(
            mailbox_key=mailbox_key,
            message_id=parsed.message_id,
            from_address=parsed.from_address,
            subject=parsed.subject,
            size=len(raw),
            outcome=InboundOutcome.ignored if parsed.auto_reason else InboundOutcome.rejected,
            reason=parsed.auto_reason or "placeholder: the ticket side is not merged yet",
        )
    except UnreadableEmail as exc:
        row = InboundEmail(
            mailbox_key=mailbox_key,
            size=len(raw),
            outcome=InboundOutcome.rejected,
            reason=str(exc),
        )
    try:
        async with db.transaction() as session:
            existing = await session.scalar(
                select(InboundEmail).where(InboundEmail.mailbox_key == mailbox_key)
            )
            if existing is not None:
                return existing
            session.add(row)
        return row
    except IntegrityError:
        async with db.sessionmaker() as session:
            found = await session.scalar(
                select(InboundEmail).where(InboundEmail.mailbox_key == mailbox_key)
            )
        if found is None:
            raise
        return found
