"""Security controls end to end (see docs/security.md for the threat model).

- Authorization on every route, object level and function level: each route is called as
  anonymous, the ticket's creator, another user, the assignee, another moderator and an admin,
  and must answer as the contract says. The table of rules is checked against the app's routes,
  so a new route without a rule fails the suite.
- Anti-automation: sign-in code guessing, email bombing, ticket creation rate, including
  concurrent bursts.
- Request size limits, CORS, and the browser security headers.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select
from starlette.routing import Mount

from ticketing.app import create_app
from ticketing.attachments.upload import MULTIPART_OVERHEAD_BYTES
from ticketing.auth.models import LoginCode
from ticketing.auth.tokens import issue_access_token
from ticketing.jobs.models import Job
from ticketing.middleware import MAX_BODY_BYTES
from ticketing.tickets.models import Ticket
from ticketing.users import repository as users_repo

from .conftest import drain, latest_code, make_settings

MISSING_ID = "00000000-0000-0000-0000-000000000000"
TICKET = {
    "title": "Python worker crashes with a Postgres error",
    "description": "Our python import job fails with a traceback from postgres.",
}

# --------------------------------------------------------------------------------------------
# Authorization matrix
# --------------------------------------------------------------------------------------------

ANON = "anonymous"
# The ticket under test is alice's, and triage assigns it to mod_py.
WHO = (ANON, "alice", "bob", "mod_py", "mod_web", "admin")


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(WHO, status)


def signed_in(status: int) -> dict[str, int]:
    return {**everyone(status), ANON: 401}


def admins(status: int) -> dict[str, int]:
    return {**signed_in(403), "admin": status}


def staff(status: int) -> dict[str, int]:
    return {**signed_in(403), "mod_py": status, "mod_web": status, "admin": status}


def ticket_viewers(status: int) -> dict[str, int]:
    """The creator, the assignee and admins; for anyone else the ticket does not exist."""
    return {**signed_in(404), "alice": status, "mod_py": status, "admin": status}


Body = dict[str, Any] | Callable[[str], dict[str, Any]] | None


@dataclass(frozen=True)
class Rule:
    expect: dict[str, int]
    body: Body = None
    # For lists: who finds the ticket under test among the items.
    sees: frozenset[str] | None = None
    # POST /auth/logout revokes the token it is called with: use a throw-away one.
    fresh_token: bool = False
    # Concrete path for a mount.
    path: str | None = None
    # A multipart body (file uploads) instead of JSON.
    files: dict[str, tuple[str, bytes, str]] | None = None


TICKET_SEERS = frozenset({"alice", "mod_py", "admin"})
RULES: dict[tuple[str, str], Rule] = {
    # Public.
    ("GET", "/health"): Rule(everyone(200)),
    ("GET", "/health/ready"): Rule(everyone(200)),
    ("POST", "/auth/request-otp"): Rule(
        everyone(202), body=lambda who: {"email": f"probe.{who}@example.com"}
    ),
    ("POST", "/auth/verify-otp"): Rule(
        everyone(400), body={"email": "nobody@example.com", "otp": "000000"}
    ),
    ("GET", "/"): Rule(everyone(200)),
    ("MOUNT", "/static"): Rule(everyone(200), path="/static/js/app.js"),
    **{
        (method, path): Rule(everyone(200))
        for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
        for method in ("GET", "HEAD")
    },
    # Any signed-in person.
    ("GET", "/auth/me"): Rule(signed_in(200)),
    ("PATCH", "/auth/me"): Rule(signed_in(200), body={"timezone": "Europe/Berlin"}),
    ("POST", "/auth/logout"): Rule(signed_in(204), fresh_token=True),
    ("POST", "/tickets/create"): Rule(signed_in(201), body=TICKET),
    ("POST", "/tickets"): Rule(signed_in(201), body=TICKET),
    ("GET", "/tickets"): Rule(signed_in(200), sees=TICKET_SEERS),
    # Staff.
    ("GET", "/moderator/tickets"): Rule(staff(200), sees=frozenset({"mod_py"})),
    # Object level: someone else's ticket is a 404, exactly like a missing one.
    ("GET", "/tickets/{ticket_id}"): Rule(ticket_viewers(200)),
    ("GET", "/tickets/{ticket_id}/comments"): Rule(ticket_viewers(200)),
    ("GET", "/tickets/{ticket_id}/events"): Rule(ticket_viewers(200)),
    ("POST", "/tickets/{ticket_id}/comments"): Rule(ticket_viewers(201), body={"body": "News?"}),
    ("GET", "/tickets/{ticket_id}/attachments"): Rule(ticket_viewers(200)),
    ("POST", "/tickets/{ticket_id}/attachments"): Rule(
        ticket_viewers(201), files={"file": ("log.txt", b"a log line", "text/plain")}
    ),
    # A file of the ticket: visible exactly to those who see the ticket.
    ("GET", "/attachments/{attachment_id}"): Rule(ticket_viewers(200)),
    # The creator sees the ticket but may not triage it.
    ("PATCH", "/tickets/{ticket_id}"): Rule(
        {**ticket_viewers(200), "alice": 403}, body={"priority": "high"}
    ),
    # Admins only (function level: 403 even for a ticket the caller can see).
    ("POST", "/tickets/{ticket_id}/reanalyze"): Rule(admins(202)),
    ("POST", "/admin/rerun-ai"): Rule(admins(202)),
    ("GET", "/admin/users"): Rule(admins(200)),
    ("POST", "/admin/users"): Rule(
        admins(201), body=lambda who: {"email": f"invited.{who}@example.com"}
    ),
    ("GET", "/admin/users/{user_id}"): Rule(admins(200)),
    ("PATCH", "/admin/users/{user_id}"): Rule(admins(200), body={"name": "Bob B."}),
    ("GET", "/admin/jobs"): Rule(admins(200)),
    ("GET", "/admin/inbound-emails"): Rule(admins(200)),
    ("GET", "/admin/sla"): Rule(admins(200)),
    ("PUT", "/admin/sla"): Rule(
        admins(200),
        body={"policies": {"urgent": {"first_response_minutes": 60, "resolution_minutes": 240}}},
    ),
    ("GET", "/admin/reports/summary"): Rule(admins(200)),
    ("GET", "/admin/triage/quality"): Rule(admins(200)),
    ("GET", "/admin/triage/models"): Rule(admins(200)),
    ("POST", "/admin/triage/train"): Rule(admins(202)),
    # No trained version exists here: only an admin gets as far as looking it up.
    ("POST", "/admin/triage/models/{version_id}/activate"): Rule(admins(404)),
    ("GET", "/admin/jobs/{job_id}"): Rule(admins(200)),
    ("POST", "/admin/jobs/retry-failed"): Rule(admins(202)),
    # The job under test is the ticket's triage job, done: only an admin gets as far as the
    # status check (409; only failed jobs are retried).
    ("POST", "/admin/jobs/{job_id}/retry"): Rule(admins(409)),
}


def route_keys(app: FastAPI) -> set[tuple[str, str]]:
    keys = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            keys.add(("MOUNT", route.path))
            continue
        for method in route.methods or ():
            keys.add((method, route.path))
    return keys


def test_every_route_has_an_authorization_rule():
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:", 1))
    keys = route_keys(app)
    missing = sorted(keys - RULES.keys())
    assert not missing, f"routes without a rule in RULES (who may call them?): {missing}"
    stale = sorted(RULES.keys() - keys)
    assert not stale, f"rules for routes that no longer exist: {stale}"


async def _fresh_token(runtime, user_id: str) -> str:
    async with runtime.db.transaction() as session:
        user = await users_repo.get(session, user_id)
        assert user is not None
        version = user.token_version
    return issue_access_token(runtime.settings, user_id, version)[0]


async def test_authorization_matrix(client, runtime, actors):
    r = await client.post("/tickets/create", json=TICKET, headers=actors["alice"])
    assert r.status_code == 201, r.text
    ticket_id = r.json()["id"]
    await drain(runtime)
    r = await client.get(f"/tickets/{ticket_id}", headers=actors["admin"])
    assert r.json()["assigned_to"] == actors.ids["mod_py"], "the matrix assumes this routing"
    async with runtime.db.transaction() as session:
        job_id = (await session.scalars(select(Job.id).where(Job.kind == "triage_ticket"))).one()
    r = await client.post(
        f"/tickets/{ticket_id}/attachments",
        files={"file": ("a.txt", b"alice's file", "text/plain")},
        headers=actors["alice"],
    )
    assert r.status_code == 201, r.text
    ids = {
        "ticket_id": ticket_id,
        "user_id": actors.ids["bob"],
        "attachment_id": r.json()["id"],
        "job_id": job_id,
        "version_id": MISSING_ID,
    }
    missing_ids = dict.fromkeys(ids, MISSING_ID)

    def headers_of(who: str) -> dict[str, str]:
        return {} if who == ANON else actors[who]

    failures = []
    for (method, template), rule in sorted(RULES.items()):
        path = rule.path or template.format(**ids)
        method = "GET" if method == "MOUNT" else method
        for who in WHO:
            headers = headers_of(who)
            if rule.fresh_token and who != ANON:
                token = await _fresh_token(runtime, actors.ids[who])
                headers = {"Authorization": f"Bearer {token}"}
            body = rule.body(who) if callable(rule.body) else rule.body
            r = await client.request(method, path, json=body, files=rule.files, headers=headers)
            expected = rule.expect[who]
            if r.status_code != expected:
                failures.append(f"{method} {template} as {who}: {r.status_code}, not {expected}")
                continue
            if expected == 401:
                assert r.headers["WWW-Authenticate"] == "Bearer"
                # A bad token is refused the same way as none.
                bad = await client.request(
                    method,
                    path,
                    json=body,
                    files=rule.files,
                    headers={"Authorization": "Bearer not.a.token"},
                )
                assert bad.status_code == 401, f"{method} {template} with a bad token"
            hidden = RULES[("GET", "/tickets/{ticket_id}")].expect[who] == 404
            if ("{ticket_id}" in template or "{attachment_id}" in template) and hidden:
                # No existence oracle: for a ticket (or a file of it) you may not see, the
                # answer is the same as for a missing one.
                missing = await client.request(
                    method,
                    template.format(**missing_ids),
                    json=body,
                    files=rule.files,
                    headers=headers,
                )
                assert (missing.status_code, missing.json()) == (r.status_code, r.json()), (
                    f"{method} {template} as {who} tells a hidden ticket from a missing one"
                )
            if rule.sees is not None and r.status_code == 200:
                found = ticket_id in {item["id"] for item in r.json()["items"]}
                if found != (who in rule.sees):
                    failures.append(f"{method} {template} as {who}: lists the ticket: {found}")
    assert not failures, "\n".join(failures)


async def test_list_filters_never_widen_what_you_see(client, runtime, actors):
    r = await client.post("/tickets/create", json=TICKET, headers=actors["alice"])
    ticket_id = r.json()["id"]
    await drain(runtime)
    probes = [
        ("bob", "/tickets", {"created_by": actors.ids["alice"]}),
        ("bob", "/tickets", {"assigned_to": actors.ids["mod_py"]}),
        ("bob", "/tickets", {"q": "Python worker"}),
        ("mod_web", "/tickets", {"created_by": actors.ids["alice"]}),
        ("mod_web", "/tickets", {"assigned_to": actors.ids["mod_py"]}),
        ("mod_web", "/moderator/tickets", {"created_by": actors.ids["alice"]}),
    ]
    for who, path, params in probes:
        r = await client.get(path, params=params, headers=actors[who])
        assert r.status_code == 200, (who, path, params)
        assert ticket_id not in {t["id"] for t in r.json()["items"]}, (who, path, params)
    # Another moderator's queue is for admins only.
    r = await client.get(
        "/moderator/tickets",
        params={"moderator_id": actors.ids["mod_py"]},
        headers=actors["mod_web"],
    )
    assert r.status_code == 403


# --------------------------------------------------------------------------------------------
# Anti-automation: sign-in codes, email bombing, ticket creation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"otp_resend_seconds": 0}])
async def test_at_most_25_guesses_per_address_per_hour(client, runtime, smtp, settings_overrides):
    """5 codes an hour, 5 wrong guesses burn each: 25 guesses in 10^6 per address and hour."""
    email = "target@example.com"
    for _ in range(5):
        assert (await client.post("/auth/request-otp", json={"email": email})).status_code == 202
        await drain(runtime)
        code = latest_code(smtp, email)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for _ in range(5):
            r = await client.post("/auth/verify-otp", json={"email": email, "otp": wrong})
            assert r.status_code == 400
        r = await client.post("/auth/verify-otp", json={"email": email, "otp": code})
        assert r.json() == {"detail": "Invalid or expired code"}  # burned: same answer
    r = await client.post("/auth/request-otp", json={"email": email})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


async def test_concurrent_guesses_cannot_exceed_the_attempt_limit(client, runtime, smtp):
    email = "target@example.com"
    await client.post("/auth/request-otp", json={"email": email})
    await drain(runtime)
    code = latest_code(smtp, email)
    wrong = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 21)]
    responses = await asyncio.gather(
        *(client.post("/auth/verify-otp", json={"email": email, "otp": w}) for w in wrong)
    )
    assert {r.status_code for r in responses} == {400}
    async with runtime.db.transaction() as session:
        login = (await session.scalars(select(LoginCode))).one()
        assert login.attempts == 5 and login.spent_at is not None
    r = await client.post("/auth/verify-otp", json={"email": email, "otp": code})
    assert r.status_code == 400


async def test_sign_in_codes_do_not_stay_readable_in_the_database(client, runtime, smtp):
    """Codes are stored as a keyed hash; the queued email is scrubbed once delivered."""
    await client.post("/auth/request-otp", json={"email": "a@example.com"})
    await drain(runtime)
    code = latest_code(smtp, "a@example.com")
    async with runtime.db.transaction() as session:
        jobs = (await session.scalars(select(Job))).all()
        hashes = (await session.scalars(select(LoginCode.code_hash))).all()
    assert jobs and all(job.status == "done" for job in jobs)
    assert code not in json.dumps([job.payload for job in jobs])
    assert hashes and all(code not in h for h in hashes)


async def test_concurrent_code_requests_send_one_email(client, runtime, smtp):
    email = "victim@example.com"
    variants = [email, email.upper(), f"  {email} ", "Victim@Example.COM"] * 5
    responses = await asyncio.gather(
        *(client.post("/auth/request-otp", json={"email": v}) for v in variants)
    )
    assert sorted(r.status_code for r in responses) == [202] + [429] * 19
    await drain(runtime)
    assert len(smtp.to(email)) == 1


# The per-address limits do not stop one client from mailing codes to many addresses; the
# per-client limit does (and, since a guess needs a live code, bounds guessing across them).
CLIENT_LIMIT = "auth_requests_per_client_per_hour"


@pytest.mark.parametrize("settings_overrides", [{CLIENT_LIMIT: 3, "otp_resend_seconds": 0}])
async def test_one_client_cannot_mail_many_addresses(client, runtime, smtp, settings_overrides):
    for i in range(3):
        r = await client.post("/auth/request-otp", json={"email": f"n{i}@example.com"})
        assert r.status_code == 202
    r = await client.post("/auth/request-otp", json={"email": "n9@example.com"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # Asking again for an address already used costs nothing: only new addresses count.
    r = await client.post("/auth/request-otp", json={"email": "n0@example.com"})
    assert r.status_code == 202


@pytest.mark.parametrize("settings_overrides", [{CLIENT_LIMIT: 3}])
async def test_wrong_guesses_never_lock_anyone_out_of_sign_in(
    client, runtime, smtp, settings_overrides
):
    """The attack round's finding 1: ~100 wrong codes from one client made request-otp answer
    429 for every address for an hour. Guessing is bounded per address instead."""
    await client.post("/auth/request-otp", json={"email": "victim@example.com"})
    for i in range(120):
        r = await client.post(
            "/auth/verify-otp", json={"email": f"v{i % 7}@example.com", "otp": f"{i:06d}"}
        )
        assert r.status_code == 400
    await drain(runtime)
    smtp.clear()
    r = await client.post("/auth/request-otp", json={"email": "someone.else@example.com"})
    assert r.status_code == 202
    await drain(runtime)
    code = latest_code(smtp, "someone.else@example.com")
    r = await client.post(
        "/auth/verify-otp", json={"email": "someone.else@example.com", "otp": code}
    )
    assert r.status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"ticket_create_per_minute": 3}])
async def test_ticket_creation_is_rate_limited_per_user(
    client, runtime, actors, settings_overrides
):
    for path in ("/tickets/create", "/tickets", "/tickets/create"):  # the alias shares it
        assert (await client.post(path, json=TICKET, headers=actors["alice"])).status_code == 201
    for path in ("/tickets/create", "/tickets"):
        r = await client.post(path, json=TICKET, headers=actors["alice"])
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert "too quickly" in r.json()["detail"]
    # Per user: bob is not affected.
    assert (await client.post("/tickets", json=TICKET, headers=actors["bob"])).status_code == 201
    async with runtime.db.transaction() as session:
        count = select(func.count()).where(Ticket.created_by == actors.ids["alice"])
        assert await session.scalar(count) == 3
        # A minute later the budget is back.
        for ticket in (await session.scalars(select(Ticket))).all():
            ticket.created_at -= timedelta(seconds=61)
    assert (await client.post("/tickets", json=TICKET, headers=actors["alice"])).status_code == 201


@pytest.mark.parametrize("settings_overrides", [{"ticket_create_per_minute": 3}])
async def test_a_burst_of_tickets_cannot_overrun_the_limit(
    client, runtime, actors, settings_overrides
):
    responses = await asyncio.gather(
        *(client.post("/tickets/create", json=TICKET, headers=actors["alice"]) for _ in range(10))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 3 + [429] * 7, codes
    async with runtime.db.transaction() as session:
        count = select(func.count()).where(Ticket.created_by == actors.ids["alice"])
        assert await session.scalar(count) == 3


# --------------------------------------------------------------------------------------------
# Request size limits (middleware: no database needed)
# --------------------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    body_read: bool = False


async def raw_call(
    app: Any, method: str, path: str, headers: dict[str, str], chunks: list[bytes]
) -> RawResponse:
    """One request straight into the ASGI app, with full control of headers and body chunks."""
    pending = list(chunks)
    result = RawResponse(status=0, headers={})

    async def receive() -> dict[str, Any]:
        result.body_read = True
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return result


# Uploads have their own limit (ATTACHMENT_MAX_BYTES and multipart's overhead): see
# test_file_uploads_have_their_own_body_limit and tests/test_attachments.py.
UPLOAD_ROUTES = {("POST", "/tickets/{ticket_id}/attachments")}
BODY_ROUTES = sorted(
    (
        method,
        path.format(
            ticket_id=MISSING_ID, user_id=MISSING_ID, job_id=MISSING_ID, version_id=MISSING_ID
        ),
    )
    for method, path in RULES
    if method in ("POST", "PATCH", "PUT") and (method, path) not in UPLOAD_ROUTES
)


def _app(**overrides: Any) -> Any:
    return create_app(make_settings("sqlite+aiosqlite:///:memory:", 1, **overrides))


async def test_every_route_refuses_bodies_over_one_mebibyte():
    app = _app()
    big = b"x" * (MAX_BODY_BYTES + 1)
    for method, path in BODY_ROUTES:
        # Declared: refused at once, before authentication and without reading the body.
        r = await raw_call(
            app,
            method,
            path,
            {"content-length": str(len(big)), "content-type": "application/json"},
            [],
        )
        assert r.status == 413, (method, path)
        assert not r.body_read, (method, path)
        assert json.loads(r.body) == {"detail": "Request body too large (limit 1 MiB)"}
        # Chunked (no Content-Length): counted while reading.
        chunks = [big[i : i + 65536] for i in range(0, len(big), 65536)]
        r = await raw_call(app, method, path, {"content-type": "application/json"}, chunks)
        assert r.status == 413, (method, path)


async def test_file_uploads_have_their_own_body_limit():
    app = _app(attachment_max_bytes=2 * MAX_BODY_BYTES)
    limit = 2 * MAX_BODY_BYTES + MULTIPART_OVERHEAD_BYTES
    path = f"/tickets/{MISSING_ID}/attachments"
    multipart = {"content-type": "multipart/form-data; boundary=b"}
    # Over the file cap plus multipart's overhead: refused before anything is read.
    r = await raw_call(app, "POST", path, multipart | {"content-length": str(limit + 1)}, [])
    assert r.status == 413 and not r.body_read
    assert json.loads(r.body) == {"detail": "The file is larger than the limit of 2 MiB"}
    chunks = [b"x" * 65536] * (limit // 65536 + 1)
    r = await raw_call(app, "POST", path, multipart, chunks)
    assert r.status == 413
    # (That more than 1 MiB gets through: test_attachments.py uploads 3 MiB.)
    # The same path with another method, and every other path, keep 1 MiB.
    big = {"content-length": str(MAX_BODY_BYTES + 1), "content-type": "application/json"}
    for method, other in (("POST", "/tickets/create"), ("POST", f"/tickets/{MISSING_ID}/comments")):
        r = await raw_call(app, method, other, big, [])
        assert r.status == 413, other


async def test_a_lying_or_absurd_content_length_is_refused():
    app = _app()
    r = await raw_call(app, "POST", "/auth/request-otp", {"content-length": "abc"}, [b"{}"])
    assert r.status == 400 and not r.body_read
    r = await raw_call(app, "POST", "/auth/request-otp", {"content-length": str(10**12)}, [])
    assert r.status == 413 and not r.body_read


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_exactly_one_mebibyte_is_not_too_large(client, actors):
    envelope = json.dumps({"title": "t", "description": ""}).encode()
    body = json.dumps(
        {"title": "t", "description": "y" * (MAX_BODY_BYTES - len(envelope))}
    ).encode()
    assert len(body) == MAX_BODY_BYTES
    headers = actors["alice"] | {"Content-Type": "application/json"}
    r = await client.post("/tickets/create", content=body, headers=headers)
    assert r.status_code == 422  # past the size limit; the description is over 20000 characters
    r = await client.post("/tickets/create", content=body + b" ", headers=headers)
    assert r.status_code == 413


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sign_in_cannot_be_triggered_by_a_cross_site_form(client, runtime, smtp):
    """A page elsewhere can POST a form (no preflight) but cannot send JSON without one: only
    application/json bodies are read, so no code is mailed on a stranger's behalf."""
    payload = b'{"email": "victim@example.com"}'
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ):
        r = await client.post(
            "/auth/request-otp", content=payload, headers={"Content-Type": content_type}
        )
        assert r.status_code == 422, content_type
    await drain(runtime)
    assert smtp.to("victim@example.com") == []


# --------------------------------------------------------------------------------------------
# CORS and browser security headers
# --------------------------------------------------------------------------------------------

ALLOWED_ORIGIN = "https://helpdesk.example.com"


def _preflight(origin: str, method: str = "PATCH") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


def _client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_cors_is_closed_by_default():
    async with _client_for(_app()) as c:
        for origin in (ALLOWED_ORIGIN, "https://evil.example.com", "null"):
            r = await c.options("/tickets", headers=_preflight(origin))
            assert "access-control-allow-origin" not in r.headers, origin
            r = await c.get("/health", headers={"Origin": origin})
            assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


async def test_cors_allows_only_the_configured_origins():
    app = _app(cors_origins=f"{ALLOWED_ORIGIN}, https://other.example.com")
    async with _client_for(app) as c:
        for origin in (ALLOWED_ORIGIN, "https://other.example.com"):
            r = await c.options("/tickets/abc", headers=_preflight(origin))
            assert r.status_code == 200
            assert r.headers["access-control-allow-origin"] == origin
            assert "PATCH" in r.headers["access-control-allow-methods"]
            assert "authorization" in r.headers["access-control-allow-headers"].lower()
            # Bearer tokens, no cookies: credentials are never allowed.
            assert "access-control-allow-credentials" not in r.headers
            r = await c.get("/health", headers={"Origin": origin})
            assert r.headers["access-control-allow-origin"] == origin
        for origin in ("https://evil.example.com", "https://helpdesk.example.com.evil.net", "null"):
            r = await c.options("/tickets", headers=_preflight(origin))
            assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
            r = await c.get("/health", headers={"Origin": origin})
            assert "access-control-allow-origin" not in r.headers


def _csp(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_security_headers(headers: Any, what: str) -> None:
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("x-frame-options") == "DENY", what
    assert headers.get("referrer-policy") == "no-referrer", what
    csp = _csp(headers.get("content-security-policy", ""))
    assert csp.get("frame-ancestors") == ["'none'"], what


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_front_end_is_served_with_strict_security_headers(client):
    r = await client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert_security_headers(r.headers, "/")
    csp = _csp(r.headers["content-security-policy"])
    # Scripts only from this origin: no inline code, no eval, no other hosts.
    for directive in ("script-src", "default-src"):
        assert csp[directive] == ["'self'"], directive
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert r.headers["cross-origin-opener-policy"] == "same-origin"
    # Nothing in the page relies on what the policy forbids.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text)
    assert not re.search(r"\son[a-z]+\s*=", r.text)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_api_answers_carry_the_security_headers_too(client, actors):
    for r in (
        await client.get("/auth/me", headers=actors["alice"]),
        await client.get("/auth/me"),
        await client.get("/no/such/page"),
        await client.post("/tickets/create", json={}, headers=actors["alice"]),
    ):
        assert_security_headers(r.headers, f"{r.request.url.path} {r.status_code}")


async def test_middleware_answers_and_preflights_carry_the_security_headers():
    app = _app(cors_origins=ALLOWED_ORIGIN)
    r = await raw_call(app, "POST", "/tickets/create", {"content-length": str(10**9)}, [])
    assert r.status == 413
    assert_security_headers(r.headers, "413")
    r = await raw_call(app, "POST", "/tickets/create", {"content-length": "x"}, [])
    assert r.status == 400
    assert_security_headers(r.headers, "400")
    async with _client_for(app) as c:
        r = await c.options("/tickets", headers=_preflight(ALLOWED_ORIGIN))
        assert r.status_code == 200
        assert_security_headers(r.headers, "preflight")
        # A cross-origin page can read why its upload was refused.
        r = await c.post(
            "/tickets/create",
            content=b"x" * (MAX_BODY_BYTES + 1),
            headers={"Origin": ALLOWED_ORIGIN, "Content-Type": "application/json"},
        )
        assert r.status_code == 413
        assert r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
