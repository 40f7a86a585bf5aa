"""The attack round's findings, each reproduced as it was reported, and what must hold now."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from datetime import timedelta

import httpx
import jwt
import pytest
from sqlalchemy import event, select, update

from ticketing.auth.models import LoginCode
from ticketing.db import utcnow
from ticketing.jobs import queue
from ticketing.jobs.models import Job, JobStatus
from ticketing.logging_setup import ConsoleFormatter, JsonFormatter
from ticketing.notifications.service import SEND_EMAIL
from ticketing.tickets.models import Ticket
from ticketing.vocabulary import Role

from .conftest import ADMIN_EMAIL, create_user, drain, sign_in
from .smtp_server import free_port

TICKET = {"title": "Printer jams", "description": "Every page jams since Monday."}

# ---- 1. no lock-outs, no bypass of the per-client limit ----------------------------------


def _start_server(tmp_path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    settings = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "SECRET_KEY": "k" * 40,
        "EMAIL_BACKEND": "console",
        "LOG_LEVEL": "WARNING",
        "AUTH_REQUESTS_PER_CLIENT_PER_HOUR": "3",
        "OTP_RESEND_SECONDS": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "ticketing", "serve", "--port", str(port)],
        env={**os.environ, **settings, **env},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


async def _wait_ready(process: subprocess.Popen[bytes], url: str) -> None:
    async with httpx.AsyncClient() as c:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if (await c.get(f"{url}/health")).status_code == 200:
                    return
            assert process.poll() is None, "the server died at start-up"
            await asyncio.sleep(0.05)
    raise AssertionError("the server did not start")


async def _ask_codes(url: str, forwarded_for: list[str]) -> list[int]:
    async with httpx.AsyncClient(base_url=url) as c:
        return [
            (
                await c.post(
                    "/auth/request-otp",
                    json={"email": f"p{i}@example.com"},
                    headers={"X-Forwarded-For": xff},
                )
            ).status_code
            for i, xff in enumerate(forwarded_for)
        ]


async def test_a_rotating_x_forwarded_for_does_not_bypass_the_per_client_limit(tmp_path):
    # Nobody configured a proxy: the header is the client's own claim and changes nothing.
    process, url = _start_server(tmp_path)
    try:
        await _wait_ready(process, url)
        statuses = await _ask_codes(url, [f"203.0.113.{i}" for i in range(5)])
    finally:
        process.terminate()
        process.wait(10)
    assert statuses == [202, 202, 202, 429, 429]


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(tmp_path):
    process, url = _start_server(tmp_path, TRUSTED_PROXIES="127.0.0.1")
    try:
        await _wait_ready(process, url)
        # Two people behind the proxy; the second also writes a fake address of its own on the
        # left, which the proxy's appended entry (on the right) overrules.
        first = await _ask_codes(url, ["198.51.100.1"] * 4)
        second = await _ask_codes(url, ["10.9.9.9, 198.51.100.2"] * 3)
    finally:
        process.terminate()
        process.wait(10)
    assert first == [202, 202, 202, 429]
    assert second == [202, 202, 202]


# ---- 2. a lone surrogate --------------------------------------------------------------------


async def test_a_lone_surrogate_is_a_422_for_anyone_without_a_traceback(client, actors, caplog):
    caplog.set_level(logging.INFO)
    raw = b'{"email":"\\ud800@example.com"}'
    r = await client.post(
        "/auth/request-otp", content=raw, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    for body in (
        b'{"title":"\\ud800","description":"d"}',
        b'{"title":"ok","description":"broken \\udfff text"}',
    ):
        r = await client.post(
            "/tickets",
            content=body,
            headers={**actors["alice"], "content-type": "application/json"},
        )
        assert r.status_code == 422, r.text
    assert not [rec for rec in caplog.records if rec.exc_info]


# ---- 3. forged cursors and tokens ------------------------------------------------------------


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


FORGED_CURSORS = [
    "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzIzOjU5IiwgImEiXQ",  # the reported one
    _cursor(["9999-12-31T23:59:59-23:59", "a"]),
    _cursor([12345, "a"]),
    _cursor(["2026-01-01T00:00:00+00:00", 7]),
    _cursor(["2026-01-01T00:00:00+00:00", "x" * 1000]),
    _cursor(["2026-01-01T00:00:00", "a"]),  # no offset
    _cursor({"a": 1}),
    "%%%",
]


async def test_forged_cursors_are_422_on_every_list(client, actors):
    t = (await client.post("/tickets", json=TICKET, headers=actors["alice"])).json()
    lists = [
        ("/tickets", actors["alice"]),
        ("/moderator/tickets", actors["mod_py"]),
        (f"/tickets/{t['id']}/comments", actors["alice"]),
        (f"/tickets/{t['id']}/events", actors["alice"]),
        ("/admin/users", actors["admin"]),
    ]
    for path, headers in lists:
        for cursor in FORGED_CURSORS:
            r = await client.get(path, params={"cursor": cursor}, headers=headers)
            assert r.status_code == 422, (path, cursor, r.text)


async def test_a_token_with_an_absurd_expiry_is_401(client, runtime, actors):
    me = (await client.get("/auth/me", headers=actors["alice"])).json()
    now = int(utcnow().timestamp())
    for exp in (10**18, 2**62):
        token = jwt.encode(
            {"sub": me["id"], "iat": now, "exp": exp, "jti": "j", "ver": 0},
            runtime.settings.jwt_key,
            algorithm="HS256",
        )
        r = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401


# ---- 4. single-line fields and mail headers ---------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "Line one\r\nBcc: everyone@example.com",
        "Line one\nline two",
        "Paragraph\u2028separator",
        "Tab\tinside",
        "\u200b\u200b",  # zero-width spaces only
        "\u202e\ufeff",  # a direction override and a BOM only
    ],
)
async def test_single_line_fields_refuse_line_breaks_and_invisible_text(client, actors, title):
    r = await client.post(
        "/tickets", json={"title": title, "description": "d"}, headers=actors["alice"]
    )
    assert r.status_code == 422
    r = await client.post(
        "/admin/users",
        json={"email": "n@example.com", "name": title, "skills": ["ok"]},
        headers=actors["admin"],
    )
    assert r.status_code == 422
    r = await client.post(
        "/admin/users",
        json={"email": "n@example.com", "skills": [title]},
        headers=actors["admin"],
    )
    assert r.status_code == 422


async def test_descriptions_keep_their_lines(client, actors):
    body = {"title": "Two lines", "description": "First line.\r\nSecond line.\n\u200bThird."}
    r = await client.post("/tickets", json=body, headers=actors["alice"])
    assert r.status_code == 201 and r.json()["description"] == body["description"]


async def test_an_old_title_with_a_line_break_no_longer_stops_its_mail(
    client, runtime, smtp, actors
):
    t = (await client.post("/tickets", json=TICKET, headers=actors["alice"])).json()
    async with runtime.db.transaction() as session:  # as a row written before the rule
        await session.execute(
            update(Ticket)
            .where(Ticket.id == t["id"])
            .values(title="Python broke\r\nBcc: all@example.com\u2028x")
        )
    await drain(runtime)
    async with runtime.db.transaction() as session:
        # Every mail job went out; only timers due later (the ticket's SLA) may still wait.
        stuck = (
            await session.scalars(
                select(Job.kind).where(Job.status != JobStatus.done, Job.kind == SEND_EMAIL.name)
            )
        ).all()
        failed = (
            await session.scalars(select(Job.kind).where(Job.status == JobStatus.failed))
        ).all()
    assert stuck == [] and failed == []
    [mail] = smtp.to("mod.py@example.com") or smtp.to(ADMIN_EMAIL)
    assert "\n" not in mail.subject and "Bcc" in mail.subject
    assert mail.message["Bcc"] is None and all("all@" not in r for r in mail.recipients)


# ---- 5. a requester never sees staff-only content ----------------------------------------------


async def test_a_moderator_who_files_a_ticket_is_its_requester(client, runtime, smtp, actors):
    t = await client.post(
        "/tickets",
        json={"title": "My laptop's python is broken", "description": "postgresql python"},
        headers=actors["mod_py"],
    )
    await drain(runtime)
    ticket = (await client.get(f"/tickets/{t.json()['id']}", headers=actors["admin"])).json()
    # Never routed to the person who filed it, even with the best skills for it.
    assert ticket["assigned_to"] not in (None, actors.ids["mod_py"])
    r = await client.patch(
        f"/tickets/{ticket['id']}",
        json={"assigned_to": actors.ids["mod_web"]},
        headers=actors["admin"],
    )
    assert r.status_code == 200
    url = f"/tickets/{ticket['id']}"
    note = {"body": "Their disk is nearly full; do not tell them yet.", "internal": True}
    assert (await client.post(f"{url}/comments", json=note, headers=actors["mod_web"])).is_success

    mine = (await client.get(url, headers=actors["mod_py"])).json()
    assert mine["helpful_notes"] is None and mine["assignment_reason"] is None
    assert "internal_notes" not in mine["allowed_actions"]
    comments = (await client.get(f"{url}/comments", headers=actors["mod_py"])).json()["items"]
    assert [c["internal"] for c in comments] == []
    events = (await client.get(f"{url}/events", headers=actors["mod_py"])).json()["items"]
    assert not [e for e in events if e["internal"]]
    r = await client.post(f"{url}/comments", json=note, headers=actors["mod_py"])
    assert r.status_code == 403
    # The assignee and admins still see it all.
    for who in ("mod_web", "admin"):
        comments = (await client.get(f"{url}/comments", headers=actors[who])).json()["items"]
        assert [c["internal"] for c in comments] == [True]


# ---- 6. the same work for every address on request-otp --------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"allowed_email_domains": "example.com"}])
async def test_request_otp_does_the_same_work_for_every_address(
    client, runtime, settings_overrides
):
    await create_user(runtime, "active@example.com")
    gone = await create_user(runtime, "gone@example.com")
    async with runtime.db.transaction() as session:
        (await session.get(type(gone), gone.id)).is_active = False  # type: ignore[union-attr]
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = runtime.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        seen = {}
        for email in (
            "active@example.com",  # an account
            "gone@example.com",  # a deactivated one
            "new@example.com",  # no account; sign-up allowed
            "stranger@elsewhere.org",  # no account; sign-up refused
        ):
            statements.clear()
            r = await client.post("/auth/request-otp", json={"email": email})
            assert r.status_code == 202
            seen[email] = list(statements)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    first = next(iter(seen.values()))
    assert first and all(work == first for work in seen.values())


async def test_codes_still_reach_only_those_who_may_sign_in(client, runtime, smtp):
    await create_user(runtime, "active@example.com")
    gone = await create_user(runtime, "gone@example.com")
    async with runtime.db.transaction() as session:
        (await session.get(type(gone), gone.id)).is_active = False  # type: ignore[union-attr]
    for email in ("active@example.com", "gone@example.com"):
        await client.post("/auth/request-otp", json={"email": email})
    await drain(runtime)
    assert len(smtp.to("active@example.com")) == 1
    assert smtp.to("gone@example.com") == []
    async with runtime.db.transaction() as session:
        payloads = json.dumps([j.payload for j in (await session.scalars(select(Job))).all()])
    assert '"code"' not in payloads  # no job row keeps a code once handled


# ---- 7. no-store --------------------------------------------------------------------------------


async def test_tokens_and_signed_in_answers_are_not_stored_by_caches(client, runtime, smtp):
    await client.post("/auth/request-otp", json={"email": "c@example.com"})
    await drain(runtime)
    from .conftest import latest_code

    code = latest_code(smtp, "c@example.com")
    r = await client.post("/auth/verify-otp", json={"email": "c@example.com", "otp": code})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    for path in ("/auth/me", "/tickets", "/tickets/nope"):
        r = await client.get(path, headers=headers)
        assert r.headers["Cache-Control"] == "no-store", path


# ---- 8. bounded growth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings_overrides", [{"comment_create_per_minute": 5, "max_comments_per_ticket": 8}]
)
async def test_comments_are_rate_limited_and_capped(client, actors, settings_overrides):
    t = (await client.post("/tickets", json=TICKET, headers=actors["alice"])).json()
    url = f"/tickets/{t['id']}/comments"
    body = {"body": "x" * 20000}
    statuses = [
        (await client.post(url, json=body, headers=actors["alice"])).status_code for _ in range(7)
    ]
    assert statuses == [201] * 5 + [429] * 2
    r = await client.post(url, json=body, headers=actors["alice"])
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    # Another person is not slowed down by that; the ticket's cap then stops everyone.
    statuses = [
        (await client.post(url, json=body, headers=actors["admin"])).status_code for _ in range(4)
    ]
    assert statuses == [201, 201, 201, 409]


@pytest.mark.parametrize("settings_overrides", [{"job_retention_days": 14}])
async def test_retention_deletes_old_done_jobs_and_spent_codes(
    client, runtime, smtp, actors, settings_overrides
):
    from ticketing import flows

    await client.post("/auth/request-otp", json={"email": "old@example.com"})
    await drain(runtime)
    long_ago = utcnow() - timedelta(days=15)
    async with runtime.db.transaction() as session:
        done = (await session.scalars(select(Job.id).where(Job.status == "done"))).all()
        keep = done[0]
        await session.execute(
            update(Job).where(Job.id != keep, Job.status == "done").values(finished_at=long_ago)
        )
        await session.execute(update(LoginCode).values(created_at=utcnow() - timedelta(hours=2)))
        failed = queue.enqueue(session, queue.JobKind("gone_wrong"), {})
        await session.flush()
        await session.execute(
            update(Job)
            .where(Job.id == failed.id)
            .values(status=JobStatus.failed, finished_at=long_ago)
        )
    await queue.schedule_recurring(runtime.db, [flows.RETENTION])
    await queue.schedule_recurring(runtime.db, [flows.RETENTION])  # idempotent
    await drain(runtime)
    async with runtime.db.transaction() as session:
        left = {j.id: j for j in (await session.scalars(select(Job))).all()}
        codes = (await session.scalars(select(LoginCode))).all()
    assert keep in left and failed.id in left  # recent done jobs and failed ones stay
    assert len(done) > 1 and not set(done[1:]) & set(left)
    assert codes == []
    # It runs again in an hour: exactly one next run is queued.
    nxt = [j for j in left.values() if j.kind == "retention" and j.status == JobStatus.queued]
    assert len(nxt) == 1 and nxt[0].run_after > utcnow() + timedelta(minutes=59)


# ---- 9. log forging -----------------------------------------------------------------------------


@pytest.mark.parametrize("formatter", [ConsoleFormatter(), JsonFormatter()])
async def test_a_forged_log_line_stays_inside_its_record(client, formatter):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    access = logging.getLogger("ticketing.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        await client.get("/nothing%0d%0aINFO%20ticketing.auth:%20admin%20signed%20in\u2028x")
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = stream.getvalue().splitlines()  # str.splitlines breaks at U+2028 too
    assert len(lines) == 1 and "\u2028" not in lines[0]


async def test_routing_never_gives_a_ticket_to_its_requester(client, runtime, smtp, actors):
    # The only moderator with the skill files it: it goes to an admin instead. (An admin may
    # still assign anyone by hand.)
    await create_user(runtime, "solo@example.com", Role.moderator, ["cobol"])
    headers = await sign_in(client, runtime, smtp, "solo@example.com")
    t = await client.post(
        "/tickets", json={"title": "cobol", "description": "cobol cobol"}, headers=headers
    )
    await drain(runtime)
    got = (await client.get(f"/tickets/{t.json()['id']}", headers=actors["admin"])).json()
    me = (await client.get("/auth/me", headers=headers)).json()
    assert got["assigned_to"] == actors.ids["admin"] != me["id"]
