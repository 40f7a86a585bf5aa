"""Reading a multipart/form-data upload as it arrives.

The file part goes straight to storage, hashed and counted on the way and refused (413) the
moment it passes the cap: nothing is buffered whole, in memory or in a temp directory
elsewhere. The only other field, `comment_id`, is a few bytes kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from ticketing.attachments.storage import AttachmentStorage, FileTooLarge, FileWriter, StoredFile
from ticketing.errors import BadRequest, InvalidField, UnsupportedMediaType

FILE_FIELD = "file"
COMMENT_FIELD = "comment_id"
COMMENT_ID_MAX_BYTES = 100
# What a multipart body may carry besides the file: boundaries, part headers, comment_id.
# BodySizeLimitMiddleware allows the upload route ATTACHMENT_MAX_BYTES plus this.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_HEADERS_PER_PART = 8
MAX_HEADER_BYTES = 4096

# The request body, for the OpenAPI schema (the route reads the body itself).
REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FILE_FIELD],
                "properties": {
                    FILE_FIELD: {"type": "string", "format": "binary"},
                    COMMENT_FIELD: {
                        "type": "string",
                        "maxLength": 36,
                        "description": "One of your own comments on this ticket",
                    },
                },
                "additionalProperties": False,
            }
        }
    },
}


@dataclass
class ReceivedFile:
    """The file stored and held (see storage.StoredFile), and what the client said."""

    stored: StoredFile
    filename: str | None
    content_type: str | None
    comment_id: str | None


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None
    value: bytearray = field(default_factory=bytearray)


class _Form:
    """python-multipart's callbacks. They run inside `parser.write()`, which cannot await: file
    bytes are queued in `file_chunks` and written by the caller after each write."""

    def __init__(self) -> None:
        self.part = _Part()
        self.file_chunks: list[bytes] = []
        self.file_started = False
        self.file_ended = False
        self.filename: str | None = None
        self.content_type: str | None = None
        self.comment_id: bytes | None = None
        self.ended = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        part = self.part
        part.headers.append((bytes(part.header_name).lower(), bytes(part.header_value)))
        part.header_name.clear()
        part.header_value.clear()

    def on_headers_finished(self) -> None:
        part = self.part
        headers = dict(part.headers)
        disposition, options = parse_options_header(headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise BadRequest("Malformed multipart body: a part without a form-data name")
        name = options[b"name"]
        if name == FILE_FIELD.encode():
            if self.file_started:
                raise InvalidField("Send one file per request")
            self.file_started = True
            raw = options.get(b"filename")
            self.filename = None if raw is None else _form_filename(raw)
            self.content_type = _text(headers.get(b"content-type", b""))
            part.name = FILE_FIELD
        elif name == COMMENT_FIELD.encode():
            if self.comment_id is not None or part.name == COMMENT_FIELD:
                raise InvalidField("comment_id is given twice")
            part.name = COMMENT_FIELD
        else:
            raise InvalidField("Unknown form field: only file and comment_id are accepted")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.name == FILE_FIELD:
            self.file_chunks.append(data[start:end])
            return
        self.part.value += data[start:end]
        if len(self.part.value) > COMMENT_ID_MAX_BYTES:
            raise InvalidField("comment_id is too long")

    def on_part_end(self) -> None:
        if self.part.name == FILE_FIELD:
            self.file_ended = True
        elif self.part.name == COMMENT_FIELD:
            self.comment_id = bytes(self.part.value)

    def on_end(self) -> None:
        self.ended = True


def _text(raw: bytes) -> str:
    """Header bytes as text: UTF-8 as browsers send it, else Latin-1 (never an error)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _form_filename(raw: bytes) -> str:
    # HTML's form encoding escapes `"`, CR and LF in file names as %22, %0D and %0A.
    name = _text(raw)
    for escaped, char in (("%22", '"'), ("%0D", "\r"), ("%0A", "\n")):
        name = name.replace(escaped, char)
    return name


async def receive_file(
    request: Request, storage: AttachmentStorage, max_bytes: int
) -> ReceivedFile:
    """Read the request's multipart body: the `file` part into storage (held: settle it), and
    `comment_id`. 415 if the body is not multipart/form-data, 400 if it is malformed, 413 if
    the file is over `max_bytes`, 422 for a missing file or unknown fields."""
    media_type, params = parse_options_header(request.headers.get("content-type"))
    if media_type != b"multipart/form-data":
        raise UnsupportedMediaType("Send the file as multipart/form-data")
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("Malformed multipart body: no boundary")
    form = _Form()
    writer: FileWriter | None = None
    received = 0
    try:
        parser = MultipartParser(
            boundary,
            form.callbacks(),  # type: ignore[arg-type]
            max_header_count=MAX_HEADERS_PER_PART,
            max_header_size=MAX_HEADER_BYTES,
        )
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + MULTIPART_OVERHEAD_BYTES:
                raise FileTooLarge(max_bytes)
            parser.write(chunk)
            if form.file_started and writer is None:
                writer = await storage.writer(max_bytes)
            if form.file_chunks:
                assert writer is not None
                chunks, form.file_chunks = form.file_chunks, []
                for piece in chunks:
                    await writer.write(piece)
        parser.finalize()
        if not form.file_started:
            raise InvalidField("file is required")
        if not (form.ended and form.file_ended):
            raise BadRequest("Malformed multipart body: it ends before its closing boundary")
        comment_id = _comment_id(form.comment_id)
        if writer is None:
            writer = await storage.writer(max_bytes)
        stored = await writer.finish()
    except FormParserError as exc:
        _abort(writer)
        raise BadRequest("Malformed multipart body") from exc
    except ClientDisconnect as exc:
        _abort(writer)
        raise BadRequest("The upload was interrupted") from exc
    except BaseException:
        _abort(writer)
        raise
    return ReceivedFile(stored, form.filename, form.content_type, comment_id)


def _abort(writer: FileWriter | None) -> None:
    if writer is not None:
        writer.abort()


def _comment_id(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidField("comment_id is not valid UTF-8") from None
    return value or None
