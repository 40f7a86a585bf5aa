"""Pure ASGI middleware: request ids, access logs, body size limit, security headers."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing.logging_setup import request_id_var

log = logging.getLogger("ticketing.access")

MAX_BODY_BYTES = 1024 * 1024
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


class RequestContextMiddleware:
    """Give every request an id (kept from X-Request-ID when sane), log it, echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_code = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status_code,
                extra={
                    "status": status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            request_id_var.reset(token)


# A path (full match) with its own body limit, and the message of its 413.
PathLimit = tuple[re.Pattern[str], int, str]
TOO_LARGE = "Request body too large (limit 1 MiB)"


class BodySizeLimitMiddleware:
    """Refuse bodies over the limit with 413, whether or not Content-Length tells the truth.

    The limit is `max_bytes`, or that of the first of `path_limits` whose pattern matches the
    whole path (file uploads).
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, path_limits: Sequence[PathLimit] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = tuple(path_limits)

    def _limit(self, path: str) -> tuple[int, str]:
        for pattern, max_bytes, message in self.path_limits:
            if pattern.fullmatch(path):
                return max_bytes, message
        return self.max_bytes, TOO_LARGE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # NUL cannot be stored or searched in PostgreSQL text: refuse it in paths and queries.
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await _send_json(send, 400, {"detail": "NUL characters are not allowed in URLs"})
            return
        max_bytes, too_large = self._limit(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > max_bytes
            except ValueError:
                await _send_json(send, 400, {"detail": "Invalid Content-Length"})
                return
            if too_big:
                await _send_json(send, 413, {"detail": too_large})
                return

            await self.app(scope, receive, send)
            return

        # No Content-Length (chunked upload): read it here, up to the limit, then replay it.
        # Raising from inside receive() would be turned into a 400 by the body parser.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > max_bytes:
                await _send_json(send, 413, {"detail": too_large})
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.csp = csp.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Swagger UI loads its assets from a CDN and runs an inline script: leave /docs alone.
        is_docs = scope["path"].startswith(("/docs", "/redoc"))
        # Answers to a signed-in person, and the token itself, must not be kept by a browser or
        # a shared cache (a later user of the same computer, a proxy).
        private = scope["path"].startswith("/auth/") or any(
            name == b"authorization" for name, _ in scope["headers"]
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *SECURITY_HEADERS]
                if not is_docs:
                    headers.append((b"content-security-policy", self.csp))
                if private:
                    headers = [h for h in headers if h[0].lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
