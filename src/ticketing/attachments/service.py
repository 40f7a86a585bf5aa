"""Attachments: files of a ticket or of one of its comments; who may add and see them.

Who may attach: whoever may comment on the ticket (whoever sees it). A file goes with the
ticket, or with one of the uploader's own comments on it; a file of an internal note is
internal, and internal files are for the people `tickets.policy.sees_staff_only` allows.

Services never commit: the caller's unit of work does, and the files written for it stay or
go with it (storage.hold_until_end).
"""

from __future__ import annotations

import logging
import math
import mimetypes
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.attachments import repository as repo
from ticketing.attachments.models import Attachment
from ticketing.attachments.sanitise import display_filename, stored_content_type
from ticketing.attachments.storage import AttachmentStorage, StoredFile, hold_until_end
from ticketing.config import Settings
from ticketing.db import READ_ONLY, Database, lock_for_transaction, new_id, utcnow
from ticketing.errors import Conflict, InvalidField, NotFound, RateLimited
from ticketing.tickets import policy
from ticketing.tickets import service as tickets_service
from ticketing.tickets.models import Comment, Ticket
from ticketing.users.models import User
from ticketing.vocabulary import TicketStatus

log = logging.getLogger(__name__)

NOT_FOUND = "No such file, or not yours to see"
RATE_WINDOW = timedelta(minutes=1)  # of COMMENT_CREATE_PER_MINUTE, which also counts files
# A file no row points to is removed once it has been left alone this long: long enough for
# any upload in flight to commit its row.
ORPHAN_MIN_AGE = timedelta(hours=1)
_SWEEP_BATCH = 500  # hashes looked up per query


def storage_for(settings: Settings) -> AttachmentStorage:
    return AttachmentStorage(settings.attachment_dir)


# ---- seeing ------------------------------------------------------------------------------


async def list_ticket_files(
    session: AsyncSession, user: User, ticket_id: str
) -> Sequence[Attachment]:
    """The files of a ticket `user` may see (404 if they may not see the ticket)."""
    ticket = await tickets_service.get_visible(session, user, ticket_id)
    return await repo.list_for_ticket(
        session, ticket.id, include_internal=policy.sees_staff_only(user, ticket)
    )


async def get_visible_file(session: AsyncSession, user: User, attachment_id: str) -> Attachment:
    """One file, or 404 whether it is missing or merely not for `user`."""
    attachment = await repo.get(session, attachment_id)
    if attachment is None:
        raise NotFound(NOT_FOUND)
    ticket = await tickets_service.find(session, attachment.ticket_id)
    if ticket is None or not policy.can_see(user, ticket):
        raise NotFound(NOT_FOUND)
    if attachment.internal and not policy.sees_staff_only(user, ticket):
        raise NotFound(NOT_FOUND)
    return attachment


async def files_of_comments(
    session: AsyncSession, ticket_id: str, comments: Sequence[Comment]
) -> dict[str, list[Attachment]]:
    """Each comment's files, in one query. The comments are ones the viewer may see: a file
    is shown with its comment unless it is internal and the comment is not (a viewer who sees
    an internal note sees staff-only content)."""
    files: dict[str, list[Attachment]] = {c.id: [] for c in comments}
    internal_notes = {c.id for c in comments if c.internal}
    for attachment in await repo.list_for_comments(session, ticket_id, list(files)):
        if attachment.comment_id is None:
            continue
        if attachment.internal and attachment.comment_id not in internal_notes:
            continue
        files[attachment.comment_id].append(attachment)
    return files


# ---- uploads from the API ------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A file received from a client, stored and held, with what the client said about it."""

    stored: StoredFile
    filename: str | None
    content_type: str | None
    comment_id: str | None


async def check_upload(
    session: AsyncSession,
    settings: Settings,
    user: User,
    ticket_id: str,
    *,
    serialise: bool = False,
) -> Ticket:
    """Whether `user` may attach a file to the ticket now: 404 (may not see it), 409 (closed,
    as for comments, or it has MAX_ATTACHMENTS_PER_TICKET files), 429 (COMMENT_CREATE_PER_MINUTE
    files from this person in the last minute). `serialise`: hold the person's rate lock until
    the end of the transaction, so that concurrent uploads cannot all pass the count."""
    ticket = await tickets_service.get_visible(session, user, ticket_id)
    if ticket.status == TicketStatus.closed:
        raise Conflict("A closed ticket takes no more files; file a new ticket")
    now = utcnow()
    if serialise:
        await lock_for_transaction(session, f"attachments:create:{user.id}")
    count, oldest = await repo.uploaded_since(session, user.id, now - RATE_WINDOW)
    if count >= settings.comment_create_per_minute:
        wait = math.ceil(((oldest or now) + RATE_WINDOW - now).total_seconds())
        raise RateLimited(wait, "You are attaching files too quickly; try again shortly")
    if await repo.count_for_ticket(session, ticket.id) >= settings.max_attachments_per_ticket:
        raise Conflict(
            f"This ticket has reached {settings.max_attachments_per_ticket} files; "
            "file a new ticket to attach more"
        )
    return ticket


async def add_upload(
    session: AsyncSession, settings: Settings, user: User, ticket_id: str, upload: Upload
) -> Attachment:
    """Record a file a client uploaded (already stored) on the ticket, or on one of the
    uploader's own comments on it. The file stays only if the caller's transaction commits."""
    hold_until_end(session, upload.stored)
    ticket = await check_upload(session, settings, user, ticket_id, serialise=True)
    internal = False
    if upload.comment_id is not None:
        comment = await tickets_service.find_comment(session, ticket.id, upload.comment_id)
        # Files go with what their uploader said: nobody adds files to another person's
        # comment. Someone who may not see internal notes cannot name one either.
        if (
            comment is None
            or comment.author_id != user.id
            or (comment.internal and not policy.sees_staff_only(user, ticket))
        ):
            raise InvalidField("comment_id must name one of your own comments on this ticket")
        internal = comment.internal
    attachment = repo.add(
        session,
        _row(
            ticket.id,
            upload.comment_id,
            user.id,
            upload.stored,
            display_filename(upload.filename),
            stored_content_type(upload.content_type),
            internal=internal,
            now=utcnow(),
        ),
    )
    await session.flush()
    return attachment


def _row(
    ticket_id: str,
    comment_id: str | None,
    uploaded_by: str,
    stored: StoredFile,
    filename: str,
    content_type: str,
    *,
    internal: bool,
    now: datetime,
) -> Attachment:
    return Attachment(
        id=new_id(),
        ticket_id=ticket_id,
        comment_id=comment_id,
        filename=filename,
        content_type=content_type,
        size=stored.size,
        sha256=stored.sha256,
        uploaded_by=uploaded_by,
        internal=internal,
        created_at=now,
    )


# ---- incoming mail -------------------------------------------------------------------------


class IncomingFile(Protocol):
    """A file that came with an email (an attachment or an inline image)."""

    @property
    def filename(self) -> str | None: ...

    @property
    def content_type(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def inline(self) -> bool: ...


@dataclass(frozen=True)
class DroppedFile:
    """A file of a mail that was not kept, and why: over ATTACHMENT_MAX_BYTES (`too_large`),
    or the ticket already has MAX_ATTACHMENTS_PER_TICKET files (`too_many`)."""

    filename: str
    size: int
    reason: Literal["too_large", "too_many"]


@dataclass(frozen=True)
class AttachResult:
    attachments: list[Attachment]  # the rows written, in the order of the files
    dropped: list[DroppedFile]


async def attach_incoming(
    session: AsyncSession,
    settings: Settings,
    ticket_id: str,
    comment_id: str | None,
    uploaded_by: str,
    files: Sequence[IncomingFile],
    *,
    internal: bool,
) -> AttachResult:
    """Store the files of an incoming mail with the ticket (and the comment) it became, in the
    caller's unit of work: the rows are flushed, never committed, and the files written stay
    only if the caller's transaction commits. Files over ATTACHMENT_MAX_BYTES, and files past
    the ticket's MAX_ATTACHMENTS_PER_TICKET, are not kept but listed in `dropped` (the caller
    notes the drop on the ticket). No rate limit: the mail reader has its own per sender."""
    storage = storage_for(settings)
    room = settings.max_attachments_per_ticket - await repo.count_for_ticket(session, ticket_id)
    now = utcnow()
    kept: list[Attachment] = []
    dropped: list[DroppedFile] = []
    for number, file in enumerate(files, 1):
        name = display_filename(file.filename, fallback=_unnamed(file, number))
        size = len(file.data)
        if size > settings.attachment_max_bytes:
            dropped.append(DroppedFile(name, size, "too_large"))
            continue
        if room <= 0:
            dropped.append(DroppedFile(name, size, "too_many"))
            continue
        stored = await storage.save_bytes(file.data, settings.attachment_max_bytes)
        stored = hold_until_end(session, stored)
        content_type = stored_content_type(file.content_type)
        row = _row(
            ticket_id,
            comment_id,
            uploaded_by,
            stored,
            name,
            content_type,
            internal=internal,
            now=now,
        )
        kept.append(repo.add(session, row))
        room -= 1
    if kept:
        await session.flush()
    return AttachResult(kept, dropped)


def _unnamed(file: IncomingFile, number: int) -> str:
    """A name for a file that came without one (inline images often do)."""
    extension = mimetypes.guess_extension(stored_content_type(file.content_type)) or ""
    return f"{'image' if file.inline else 'attachment'}-{number}{extension}"


# ---- retention -----------------------------------------------------------------------------


@asynccontextmanager
async def _reading(db: Database) -> AsyncIterator[AsyncSession]:
    """A unit of work that only reads (on SQLite it takes no write lock)."""
    async with db.sessionmaker() as session:
        if db.dialect == "sqlite":
            await session.connection(execution_options={READ_ONLY: True})
        yield session


async def remove_orphan_files(
    db: Database, settings: Settings, *, min_age: timedelta = ORPHAN_MIN_AGE
) -> int:
    """Remove the files under ATTACHMENT_DIR that no row points to and nobody has written or
    taken for `min_age` (a crash between a write and its commit, a rolled-back savepoint, rows
    deleted with their ticket), and temp files of uploads that died. Returns how many files
    were removed."""
    storage = storage_for(settings)
    cutoff = time.time() - min_age.total_seconds()
    removed = await anyio.to_thread.run_sync(storage.remove_stale_temp_files, cutoff)
    batch: list[str] = []

    async def sweep(hashes: list[str]) -> int:
        async with _reading(db) as session:
            used = await repo.hashes_in_use(session, hashes)
        count = 0
        for sha256 in hashes:
            if sha256 not in used and await anyio.to_thread.run_sync(
                storage.remove_if_unheld, sha256, cutoff
            ):
                count += 1
        return count

    for shard in await anyio.to_thread.run_sync(storage.shards):
        batch += await anyio.to_thread.run_sync(storage.files_older_than, shard, cutoff)
        while len(batch) >= _SWEEP_BATCH:
            removed += await sweep(batch[:_SWEEP_BATCH])
            batch = batch[_SWEEP_BATCH:]
    if batch:
        removed += await sweep(batch)
    if removed:
        log.info("orphan attachment files removed", extra={"files_removed": removed})
    return removed
