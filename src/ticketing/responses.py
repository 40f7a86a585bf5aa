"""Error responses as documented in the OpenAPI schema.

Every status an operation can answer with is listed on it, so that clients (and the
schemathesis run in tests/test_fuzz.py) know what to expect. Bodies are `{"detail": "..."}`,
or FastAPI's list of issues for request validation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Responses = dict[int | str, dict[str, Any]]


class ErrorOut(BaseModel):
    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    detail: list[ValidationIssue]


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description, **extra}


MALFORMED = (
    "Malformed request: a NUL character in the URL, a bad Content-Length, "
    "or a body that is not JSON text in UTF-8"
)

# Every operation (app level): the middleware and the body parser answer before any route.
EVERY_OPERATION: Responses = {
    400: _error(MALFORMED),
    413: _error("Request body over 1 MiB"),
    503: _error(
        "The database does not answer; try again",
        headers={"Retry-After": {"description": "Seconds", "schema": {"type": "integer"}}},
    ),
}
UNAUTHORIZED: Responses = {
    401: _error(
        "Not signed in, or the token is bad, expired or revoked",
        headers={
            "WWW-Authenticate": {
                "description": "Always `Bearer`",
                "required": True,
                "schema": {"type": "string"},
            }
        },
    )
}
FORBIDDEN: Responses = {403: _error("Signed in, but not allowed to do this")}
# Request validation is FastAPI's list of issues; a well-formed but unacceptable value (an
# assignee who is not a moderator) is a readable string.
FIELD_ERRORS: Responses = {
    422: {"model": ValidationErrorOut | ErrorOut, "description": "Invalid fields"}
}


def bad_request(description: str) -> Responses:
    """A route's own 400, on top of the malformed requests every operation may get."""
    return {400: _error(f"{description}; or: {MALFORMED}")}


# A cursor that is not one of ours (forged, truncated, out of range) is an invalid field.
BAD_CURSOR: Responses = {
    422: {"model": ValidationErrorOut | ErrorOut, "description": "Invalid fields or cursor"}
}


def not_found(description: str) -> Responses:
    return {404: _error(description)}


def conflict(description: str) -> Responses:
    return {409: _error(description)}


def rate_limited(description: str) -> Responses:
    return {
        429: _error(
            description,
            headers={
                "Retry-After": {
                    "description": "Seconds to wait before trying again",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
        )
    }
