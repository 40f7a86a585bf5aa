"""What a message from the support mailbox becomes, in the contract's order:

1. ignored: automatic mail, a bounce, our own mail, a message already handled;
2. a reply: it names a ticket (by Message-ID, then `[#number]` in the subject) and comes from
   that ticket's requester, assignee or an admin -> a comment (or, on a closed ticket, a new
   ticket that names the old one);
3. a new ticket, from anyone who may sign in (an account is made as sign-up would);
4. rejected: a sender who may not sign in, a message too large or unreadable.

Each message is one transaction: its log row, its ticket or comment, their attachments and
the jobs they cause commit together or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.attachments import service as attachments_service
from ticketing.auth import service as auth_service
from ticketing.config import Settings
from ticketing.db import Database
from ticketing.errors import AppError
from ticketing.mail import repository as repo
from ticketing.mail.models import InboundEmail, InboundOutcome
from ticketing.mail.parsing import ParsedEmail, UnreadableEmail, parse_email
from ticketing.tickets import policy
from ticketing.tickets import service as tickets_service
from ticketing.tickets.models import Ticket
from ticketing.tickets.schemas import CommentCreate, TicketCreate
from ticketing.users import repository as users_repo
from ticketing.users import service as users_service
from ticketing.users.models import User
from ticketing.vocabulary import Source, TicketStatus

log = logging.getLogger(__name__)

TITLE_CHARS = 200
BODY_CHARS = 20000
NO_SUBJECT = "(no subject)"
# `[#123]` anywhere in the subject names ticket 123.
_TICKET_IN_SUBJECT = re.compile(r"\[#(\d{1,9})\]")
# A staff reply whose first line is `#note` is an internal note.
_NOTE_MARK = re.compile(r"\A\s*#note[ \t]*(?:\r?\n|\Z)", re.IGNORECASE)


async def handle_message(
    db: Database, settings: Settings, raw: bytes, mailbox_key: str
) -> InboundEmail:
    """Decide what one message becomes and commit it, with its inbound-log row keyed by
    `mailbox_key`, in one transaction. Idempotent: if the log already has `mailbox_key`, it
    returns that row and changes nothing. Never raises for a bad message (it is logged as
    rejected); raises only when the database itself fails (then the message stays in the
    folder and is tried again)."""
    parsed: ParsedEmail | UnreadableEmail | None = None  # None: too large to read
    if len(raw) <= settings.inbound_max_bytes:
        # Parsing costs CPU (milliseconds; more for hostile input): not on the event loop, and
        # not while holding a transaction.
        try:
            parsed = await asyncio.to_thread(parse_email, raw)
        except UnreadableEmail as exc:
            parsed = exc
    async with db.transaction() as session:
        existing = await repo.get_by_key(session, mailbox_key)
        if existing is not None:
            return existing
        entry = await _decide(session, settings, raw, mailbox_key, parsed)
        repo.add(session, entry)
        await session.flush()
    log.info(
        "inbound mail %s",
        entry.outcome,
        extra={"mailbox_key": mailbox_key, "reason": entry.reason, "ticket_id": entry.ticket_id},
    )
    return entry


async def _decide(
    session: AsyncSession,
    settings: Settings,
    raw: bytes,
    mailbox_key: str,
    email: ParsedEmail | UnreadableEmail | None,
) -> InboundEmail:
    entry = InboundEmail(mailbox_key=mailbox_key, size=len(raw))
    if email is None:
        return _outcome(
            entry,
            InboundOutcome.rejected,
            f"too large ({len(raw)} bytes; INBOUND_MAX_BYTES is {settings.inbound_max_bytes})",
        )
    if isinstance(email, UnreadableEmail):
        return _outcome(entry, InboundOutcome.rejected, f"unreadable: {email}")
    entry.message_id = email.message_id
    entry.from_address = email.from_address
    entry.subject = email.subject

    # 1. Ignored.
    if email.auto_reason:
        return _outcome(entry, InboundOutcome.ignored, email.auto_reason)
    if email.from_address is None:
        return _outcome(entry, InboundOutcome.rejected, "no usable sender address")
    if email.from_address in _our_addresses(settings):
        return _outcome(entry, InboundOutcome.ignored, "mail from our own address")
    # The same message again (delivered twice, or read again after UIDVALIDITY changed).
    if email.message_id and (
        await tickets_service.knows_message(session, email.message_id)
        or await repo.handled_message_id(session, email.message_id)
    ):
        return _outcome(entry, InboundOutcome.ignored, "already handled (same Message-ID)")

    sender = await users_repo.get_by_email(session, email.from_address)
    if sender is not None and not sender.is_active:
        return _outcome(entry, InboundOutcome.rejected, "the sender's account is deactivated")

    # 2. A reply on a ticket the sender may write on.
    ticket = await _named_ticket(session, email)
    follow_up_of: Ticket | None = None
    if ticket is not None and sender is not None and _may_reply(sender, ticket):
        if ticket.status != TicketStatus.closed:
            return await _comment(session, settings, entry, email, sender, ticket)
        follow_up_of = ticket

    # 3. A new ticket (4. rejected when the sender may not sign in).
    if sender is None:
        if not auth_service.may_sign_up(settings, email.from_address):
            return _outcome(entry, InboundOutcome.rejected, "the sender may not sign in")
        sender = await users_service.create_user(session, email=email.from_address)
    return await _new_ticket(session, settings, entry, email, sender, follow_up_of)


def _our_addresses(settings: Settings) -> set[str]:
    found = {settings.support_address.lower(), settings.from_email.lower()}
    if settings.imap_user and "@" in settings.imap_user:
        found.add(settings.imap_user.lower())
    return found


async def _named_ticket(session: AsyncSession, email: ParsedEmail) -> Ticket | None:
    ticket = await tickets_service.find_by_message_ids(
        session, [*email.in_reply_to, *email.references]
    )
    if ticket is None:
        match = _TICKET_IN_SUBJECT.search(email.subject)
        if match:
            ticket = await tickets_service.find_by_number(session, int(match[1]))
    return ticket


def _may_reply(sender: User, ticket: Ticket) -> bool:
    """The requester, the assignee or an admin: nobody writes into someone else's ticket."""
    return ticket.created_by == sender.id or policy.sees_staff_only(sender, ticket)


async def _comment(
    session: AsyncSession,
    settings: Settings,
    entry: InboundEmail,
    email: ParsedEmail,
    sender: User,
    ticket: Ticket,
) -> InboundEmail:
    text = email.reply_text.strip() or email.text.strip()
    internal = False
    if policy.sees_staff_only(sender, ticket) and _NOTE_MARK.match(text):
        internal = True
        text = _NOTE_MARK.sub("", text, count=1).strip()
    try:
        data = CommentCreate(body=_body(text, email), internal=internal)
    except ValidationError as exc:
        return _outcome(entry, InboundOutcome.rejected, _invalid(exc))
    async with _unless_refused(session) as refused:
        comment = await tickets_service.add_comment(
            session,
            settings,
            sender,
            ticket.id,
            data,
            source=Source.email,
            message_id=email.message_id,
        )
        await _attach(session, settings, ticket, comment.id, sender, email, internal=internal)
    if refused.reason:
        return _outcome(entry, InboundOutcome.rejected, refused.reason)
    entry.ticket_id, entry.comment_id = ticket.id, comment.id
    note = "internal note" if internal else "reply"
    return _outcome(entry, InboundOutcome.comment, f"{note} on #{ticket.number}")


async def _new_ticket(
    session: AsyncSession,
    settings: Settings,
    entry: InboundEmail,
    email: ParsedEmail,
    sender: User,
    follow_up_of: Ticket | None,
) -> InboundEmail:
    description = email.text.strip()
    if follow_up_of is not None:
        description = (
            f"Follow-up to ticket #{follow_up_of.number}, which is closed.\n\n{description}"
        )
    try:
        data = TicketCreate(title=_title(email.subject), description=_body(description, email))
    except ValidationError as exc:
        return _outcome(entry, InboundOutcome.rejected, _invalid(exc))
    async with _unless_refused(session) as refused:
        ticket = await tickets_service.create_ticket(
            session, settings, sender, data, source=Source.email, message_id=email.message_id
        )
        await _attach(session, settings, ticket, None, sender, email, internal=False)
    if refused.reason:
        return _outcome(entry, InboundOutcome.rejected, refused.reason)
    entry.ticket_id = ticket.id
    why = f"new ticket #{ticket.number}"
    if follow_up_of is not None:
        why += f" (#{follow_up_of.number} is closed)"
    return _outcome(entry, InboundOutcome.ticket, why)


async def _attach(
    session: AsyncSession,
    settings: Settings,
    ticket: Ticket,
    comment_id: str | None,
    sender: User,
    email: ParsedEmail,
    *,
    internal: bool,
) -> None:
    if not email.attachments:
        return
    result = await attachments_service.attach_incoming(
        session,
        settings,
        ticket.id,
        comment_id,
        sender.id,
        email.attachments,
        internal=internal,
    )
    if result.dropped:
        why = {"too_large": "over the size limit", "too_many": "too many files"}
        names = [f"{d.filename} ({why.get(d.reason, d.reason)})" for d in result.dropped]
        tickets_service.note_dropped_attachments(session, ticket, names, internal=internal)


@dataclass
class _Refusal:
    reason: str | None = None


@asynccontextmanager
async def _unless_refused(session: AsyncSession) -> AsyncIterator[_Refusal]:
    """Run a domain action in a savepoint: a refusal (a rate limit, the comment cap) undoes
    just that action and becomes the log row's reason, instead of failing the message."""
    refusal = _Refusal()
    savepoint = await session.begin_nested()
    try:
        yield refusal
    except AppError as exc:
        await savepoint.rollback()
        refusal.reason = f"refused: {exc.detail}"
    else:
        await savepoint.commit()


def _title(subject: str) -> str:
    title = " ".join(subject.split())
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "…"
    return title or NO_SUBJECT


def _body(text: str, email: ParsedEmail) -> str:
    text = text.replace("\x00", "")
    if not text.strip():
        names = ", ".join(a.filename for a in email.attachments if not a.inline)
        text = f"(no text; attached: {names})" if names else "(no text)"
    if len(text) > BODY_CHARS:
        note = "\n[… the rest of the message is not shown]"
        text = text[: BODY_CHARS - len(note)] + note
    return text


def _invalid(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"invalid {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def _outcome(entry: InboundEmail, outcome: InboundOutcome, reason: str) -> InboundEmail:
    entry.outcome = outcome
    entry.reason = reason
    return entry
