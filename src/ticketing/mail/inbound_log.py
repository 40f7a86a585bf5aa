"""The inbound log as the mailbox reader uses it: which messages were handled already, and the
record of a message rejected without being read (too large to download, or one that the
handler failed on again and again)."""

from __future__ import annotations

from collections.abc import Sequence
from email import policy
from email.parser import BytesHeaderParser

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ticketing.db import Database
from ticketing.mail.models import InboundEmail, InboundOutcome
from ticketing.mail.parsing import one_line


async def handled_keys(db: Database, keys: Sequence[str]) -> set[str]:
    """Those of `keys` that already have a log row (one indexed query)."""
    if not keys:
        return set()
    async with db.sessionmaker() as session:
        rows = await session.scalars(
            select(InboundEmail.mailbox_key).where(InboundEmail.mailbox_key.in_(list(keys)))
        )
        return set(rows)


async def record_unread_rejection(
    db: Database, mailbox_key: str, size: int, reason: str, headers: bytes | None = None
) -> None:
    """Log a message as rejected without its body (`headers`: a few of its header fields, when
    they could be had). Idempotent: a row that exists already is left as it is."""
    message_id = from_address = subject = None
    if headers:
        try:
            parsed = BytesHeaderParser(policy=policy.default).parsebytes(headers)
            message_id = one_line(str(parsed.get("Message-ID", "")))[:998] or None
            subject = one_line(str(parsed.get("Subject", ""))) or None
            sender = parsed.get("From")
            addresses = getattr(sender, "addresses", ())
            if addresses:
                from_address = addresses[0].addr_spec.lower()[:320] or None
        except Exception:  # noqa: S110 - the envelope is a courtesy; the rejection stands
            pass
    try:
        async with db.transaction() as session:
            exists = await session.scalar(
                select(InboundEmail.id).where(InboundEmail.mailbox_key == mailbox_key)
            )
            if exists is None:
                session.add(
                    InboundEmail(
                        mailbox_key=mailbox_key,
                        message_id=message_id,
                        from_address=from_address,
                        subject=subject,
                        size=size,
                        outcome=InboundOutcome.rejected,
                        reason=reason,
                    )
                )
    except IntegrityError:
        pass  # recorded meanwhile: the same message, the same outcome
