from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.attachments import service
from ticketing.attachments.sanitise import content_disposition, served_content_type
from ticketing.attachments.schemas import AttachmentList, AttachmentOut
from ticketing.attachments.storage import FileTooLarge
from ticketing.attachments.upload import MULTIPART_OVERHEAD_BYTES, REQUEST_BODY, receive_file
from ticketing.auth import service as auth_service
from ticketing.config import Settings
from ticketing.db import READ_ONLY
from ticketing.deps import ClaimsDep, CurrentUser, RuntimeDep, SessionDep
from ticketing.errors import NotFound
from ticketing.responses import (
    FIELD_ERRORS,
    UNAUTHORIZED,
    ErrorOut,
    Responses,
    bad_request,
    conflict,
    not_found,
    rate_limited,
)
from ticketing.runtime import Runtime

log = logging.getLogger(__name__)

router = APIRouter(tags=["attachments"], responses=UNAUTHORIZED)

UPLOAD_PATH = re.compile(r"/tickets/[^/]+/attachments")
TICKET_NOT_FOUND = not_found("No such ticket, or not yours to see")
FILE_NOT_FOUND = not_found(service.NOT_FOUND)
# A download is never rendered as a page of ours: on top of Content-Disposition: attachment,
# nosniff (every answer has it) and a Content-Type that is never markup or script, a sandbox
# with nothing allowed in case a browser shows it anyway.
DOWNLOAD_CSP = "sandbox; default-src 'none'"


def upload_body_limit(settings: Settings) -> tuple[re.Pattern[str], int, str]:
    """The body size limit of the upload route, for BodySizeLimitMiddleware (which otherwise
    allows 1 MiB): the file cap plus what multipart adds around it."""
    limit = settings.attachment_max_bytes + MULTIPART_OVERHEAD_BYTES
    return UPLOAD_PATH, limit, FileTooLarge(settings.attachment_max_bytes).detail


UPLOAD_RESPONSES: Responses = {
    **bad_request("Malformed multipart body, or the upload was interrupted"),
    **TICKET_NOT_FOUND,
    **conflict("The ticket is closed, or has reached its file cap"),
    413: {"model": ErrorOut, "description": "The file is over ATTACHMENT_MAX_BYTES"},
    415: {"model": ErrorOut, "description": "The body is not multipart/form-data"},
    **FIELD_ERRORS,
    **rate_limited("Too many files attached in the last minute"),
}


@contextlib.asynccontextmanager
async def _reading(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    async with runtime.db.sessionmaker() as session:
        if runtime.db.dialect == "sqlite":
            await session.connection(execution_options={READ_ONLY: True})
        yield session


@router.post(
    "/tickets/{ticket_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentOut,
    responses=UPLOAD_RESPONSES,
    openapi_extra={"requestBody": REQUEST_BODY},
)
async def upload_attachment(
    ticket_id: str, request: Request, runtime: RuntimeDep, claims: ClaimsDep
) -> AttachmentOut:
    """Attach a file to the ticket, or to one of your own comments on it (`comment_id`)."""
    settings = runtime.settings
    # No unit of work stays open while the body arrives (a slow client would hold SQLite's
    # write lock for the whole upload): first a look whether this upload may happen at all,
    # so that a refused one is answered before its body is read; then the file is stored;
    # then a short transaction checks again and writes the row.
    async with _reading(runtime) as session:
        user = await auth_service.user_for_claims(session, claims)
        await service.check_upload(session, settings, user, ticket_id)
    received = await receive_file(
        request, service.storage_for(settings), settings.attachment_max_bytes
    )
    upload = service.Upload(
        received.stored, received.filename, received.content_type, received.comment_id
    )
    try:
        async with runtime.db.transaction() as session:
            user = await auth_service.user_for_claims(session, claims)
            attachment = await service.add_upload(session, settings, user, ticket_id, upload)
        return AttachmentOut.model_validate(attachment)
    finally:
        # Settled by the transaction already, unless it never got that far.
        upload.stored.discard()


@router.get(
    "/tickets/{ticket_id}/attachments", response_model=AttachmentList, responses=TICKET_NOT_FOUND
)
async def list_attachments(
    ticket_id: str, user: CurrentUser, session: SessionDep
) -> AttachmentList:
    """The ticket's files you may see, in the order they were attached."""
    files = await service.list_ticket_files(session, user, ticket_id)
    return AttachmentList(items=[AttachmentOut.model_validate(a) for a in files])


@router.get(
    "/attachments/{attachment_id}",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The file's bytes, as a download",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **FILE_NOT_FOUND,
    },
)
async def download_attachment(
    attachment_id: str, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> FileResponse:
    """The file, always as a download (`Content-Disposition: attachment`)."""
    attachment = await service.get_visible_file(session, user, attachment_id)
    path = service.storage_for(runtime.settings).path(attachment.sha256)
    if not path.is_file():
        log.error("attachment file missing", extra={"attachment_id": attachment.id})
        raise NotFound("The file is missing from storage")
    return FileResponse(
        path,
        media_type=served_content_type(attachment.content_type),
        headers={
            "Content-Disposition": content_disposition(attachment.filename),
            "Content-Security-Policy": DOWNLOAD_CSP,
        },
    )
