"""One error hierarchy. Domain code raises these; app.py maps them to HTTP in one place."""

from __future__ import annotations


class ConfigurationError(Exception):
    """The service cannot start with the given settings. The message says how to fix it."""


class ModelLoadError(Exception):
    """A stored triage model cannot be used (missing, tampered, malformed, unknown version)."""


class AppError(Exception):
    status_code = 400
    default_detail = "Bad request"
    # The request's unit of work normally rolls back on an error. Some errors must keep what
    # was written first (a wrong sign-in code still counts as an attempt).
    keep_changes = False

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        self.detail = detail or self.default_detail
        self.headers = headers or {}
        super().__init__(self.detail)


class BadRequest(AppError):
    status_code = 400
    default_detail = "Bad request"

    def __init__(self, detail: str | None = None, *, keep_changes: bool = False):
        super().__init__(detail)
        self.keep_changes = keep_changes


class Unauthorized(AppError):
    status_code = 401
    default_detail = "Not authenticated"

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status_code = 403
    default_detail = "You are not allowed to do this"


class NotFound(AppError):
    status_code = 404
    default_detail = "Not found"


class Conflict(AppError):
    status_code = 409
    default_detail = "Conflict with the current state"


class PayloadTooLarge(AppError):
    """A file (or body) over its size limit."""

    status_code = 413
    default_detail = "Request body too large"


class UnsupportedMediaType(AppError):
    status_code = 415
    default_detail = "Unsupported media type"


class InvalidField(AppError):
    """A well-formed field that is not acceptable (e.g. an assignee who is not a moderator)."""

    status_code = 422
    default_detail = "Invalid field"


class RateLimited(AppError):
    status_code = 429
    default_detail = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None):
        self.retry_after = max(1, int(retry_after))
        super().__init__(
            detail or f"Too many requests; try again in {self.retry_after} s",
            headers={"Retry-After": str(self.retry_after)},
        )


class DatabaseUnavailable(AppError):
    """The database cannot be reached (refused, unresolvable, timed out): try again later."""

    status_code = 503
    default_detail = "The service is temporarily unavailable; try again"

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"Retry-After": "5"})
