"""Passwordless sign-in, tokens and their revocation, including the attacks."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import select, update

from ticketing.auth.models import LoginCode
from ticketing.db import utcnow
from ticketing.vocabulary import Role

from .conftest import ADMIN_EMAIL, SECRET, create_user, drain, latest_code, sign_in


async def test_sign_in_with_emailed_code(client, runtime, smtp):
    response = await client.post("/auth/request-otp", json={"email": "  New.Person@Example.com "})
    assert response.status_code == 202
    await drain(runtime)
    [mail] = smtp.to("new.person@example.com")
    assert mail.login == "mailer"  # the SMTP client authenticated
    code = latest_code(smtp, "new.person@example.com")
    assert code in mail.html and "Test Helpdesk" in mail.text and "Test Helpdesk" in mail.html

    response = await client.post(
        "/auth/verify-otp", json={"email": "NEW.PERSON@example.com", "otp": code}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    assert body["user"]["email"] == "new.person@example.com"
    assert body["user"]["role"] == "user"

    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == body["user"]["id"]
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    assert {"sub", "exp", "iat", "jti"} <= set(claims)


async def test_the_sign_in_email_is_marked_automatic(client, runtime, smtp):
    """Automatic mail carries Auto-Submitted (RFC 3834), so an out-of-office reply to a
    sign-in code never comes back to us as a new ticket."""
    await client.post("/auth/request-otp", json={"email": "away@example.com"})
    await drain(runtime)
    [mail] = smtp.to("away@example.com")
    assert mail.message["Auto-Submitted"] == "auto-generated"


async def test_code_is_single_use_and_stored_hashed(client, runtime, smtp):
    await client.post("/auth/request-otp", json={"email": "a@example.com"})
    await drain(runtime)
    code = latest_code(smtp, "a@example.com")
    async with runtime.db.transaction() as session:
        stored = (await session.scalars(select(LoginCode.code_hash))).all()
    assert stored and all(code not in value for value in stored)

    ok = await client.post("/auth/verify-otp", json={"email": "a@example.com", "otp": code})
    assert ok.status_code == 200
    again = await client.post("/auth/verify-otp", json={"email": "a@example.com", "otp": code})
    assert again.status_code == 400
    assert again.json() == {"detail": "Invalid or expired code"}


async def test_wrong_codes_burn_the_code_after_five_tries(client, runtime, smtp):
    await client.post("/auth/request-otp", json={"email": "a@example.com"})
    await drain(runtime)
    code = latest_code(smtp, "a@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        r = await client.post("/auth/verify-otp", json={"email": "a@example.com", "otp": wrong})
        assert r.status_code == 400
        assert r.json() == {"detail": "Invalid or expired code"}
    # The right code no longer works: brute force gets five guesses per code.
    r = await client.post("/auth/verify-otp", json={"email": "a@example.com", "otp": code})
    assert r.status_code == 400


async def test_expired_code_is_refused(client, runtime, smtp):
    await client.post("/auth/request-otp", json={"email": "a@example.com"})
    await drain(runtime)
    code = latest_code(smtp, "a@example.com")
    async with runtime.db.transaction() as session:
        await session.execute(update(LoginCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = await client.post("/auth/verify-otp", json={"email": "a@example.com", "otp": code})
    assert r.status_code == 400
    assert r.json() == {"detail": "Invalid or expired code"}


@pytest.mark.parametrize("settings_overrides", [{"otp_resend_seconds": 0}])
async def test_new_code_replaces_the_old_one(client, runtime, smtp, settings_overrides):
    await client.post("/auth/request-otp", json={"email": "a@example.com"})
    await drain(runtime)
    first = latest_code(smtp, "a@example.com")
    await client.post("/auth/request-otp", json={"email": "a@example.com"})
    await drain(runtime)
    second = latest_code(smtp, "a@example.com")
    if first != second:
        r = await client.post("/auth/verify-otp", json={"email": "a@example.com", "otp": first})
        assert r.status_code == 400
    r = await client.post("/auth/verify-otp", json={"email": "a@example.com", "otp": second})
    assert r.status_code == 200


async def test_resend_is_limited_to_one_per_minute(client, runtime, smtp):
    assert (
        await client.post("/auth/request-otp", json={"email": "a@example.com"})
    ).status_code == 202
    r = await client.post("/auth/request-otp", json={"email": "A@example.com"})
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # The limit is per address.
    assert (
        await client.post("/auth/request-otp", json={"email": "b@example.com"})
    ).status_code == 202


@pytest.mark.parametrize("settings_overrides", [{"otp_resend_seconds": 0}])
async def test_at_most_five_codes_per_hour(client, runtime, smtp, settings_overrides):
    for _ in range(5):
        r = await client.post("/auth/request-otp", json={"email": "a@example.com"})
        assert r.status_code == 202
    r = await client.post("/auth/request-otp", json={"email": "a@example.com"})
    assert r.status_code == 429
    assert 3000 < int(r.headers["Retry-After"]) <= 3600
    await drain(runtime)
    assert len(smtp.to("a@example.com")) == 5


async def test_same_answer_for_known_and_unknown_addresses(client, runtime, smtp):
    await create_user(runtime, "known@example.com")
    known = await client.post("/auth/request-otp", json={"email": "known@example.com"})
    unknown = await client.post("/auth/request-otp", json={"email": "unknown@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    # Rate limits look the same too.
    known2 = await client.post("/auth/request-otp", json={"email": "known@example.com"})
    unknown2 = await client.post("/auth/request-otp", json={"email": "unknown@example.com"})
    assert known2.status_code == unknown2.status_code == 429
    assert known2.json() == unknown2.json()


@pytest.mark.parametrize("settings_overrides", [{"signup_mode": "invite"}])
async def test_invite_mode_sends_nothing_to_strangers(client, runtime, smtp, settings_overrides):
    await create_user(runtime, "invited@example.com")
    stranger = await client.post("/auth/request-otp", json={"email": "stranger@example.com"})
    invited = await client.post("/auth/request-otp", json={"email": "invited@example.com"})
    assert stranger.status_code == invited.status_code == 202
    assert stranger.json() == invited.json()
    await drain(runtime)
    assert smtp.to("stranger@example.com") == []
    assert len(smtp.to("invited@example.com")) == 1
    # A guessed code cannot create the account either.
    r = await client.post(
        "/auth/verify-otp", json={"email": "stranger@example.com", "otp": "123456"}
    )
    assert r.status_code == 400


@pytest.mark.parametrize("settings_overrides", [{"allowed_email_domains": "corp.example.com"}])
async def test_allowed_domains_limit_sign_up(client, runtime, smtp, settings_overrides):
    await client.post("/auth/request-otp", json={"email": "x@other.example.com"})
    await client.post("/auth/request-otp", json={"email": "x@corp.example.com"})
    await drain(runtime)
    assert smtp.to("x@other.example.com") == []
    assert len(smtp.to("x@corp.example.com")) == 1


@pytest.mark.parametrize("settings_overrides", [{"otp_resend_seconds": 0}])
async def test_deactivated_accounts_get_no_code(client, runtime, smtp, actors, settings_overrides):
    r = await client.patch(
        f"/admin/users/{actors.ids['alice']}", json={"is_active": False}, headers=actors["admin"]
    )
    assert r.status_code == 200
    r = await client.post("/auth/request-otp", json={"email": "alice@example.com"})
    assert r.status_code == 202
    await drain(runtime)
    assert smtp.to("alice@example.com") == []


async def test_invalid_email_is_422(client):
    for bad in ("not-an-email", "", "a@", "@b.com"):
        r = await client.post("/auth/request-otp", json={"email": bad})
        assert r.status_code == 422, bad
    r = await client.post("/auth/verify-otp", json={"email": "a@example.com", "otp": "12ab56"})
    assert r.status_code == 422


async def test_admin_emails_exist_as_admins_after_start(client, runtime, smtp):
    headers = await sign_in(client, runtime, smtp, ADMIN_EMAIL)
    me = (await client.get("/auth/me", headers=headers)).json()
    assert me["role"] == "admin" and me["is_active"] is True


async def test_logout_revokes_the_token(client, actors):
    headers = actors["alice"]
    assert (await client.post("/auth/logout", headers=headers)).status_code == 204
    r = await client.get("/auth/me", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    # Other sessions of other people are unaffected.
    assert (await client.get("/auth/me", headers=actors["bob"])).status_code == 200


async def test_role_change_and_deactivation_revoke_tokens(client, actors):
    r = await client.patch(
        f"/admin/users/{actors.ids['alice']}", json={"role": "moderator"}, headers=actors["admin"]
    )
    assert r.status_code == 200
    assert (await client.get("/auth/me", headers=actors["alice"])).status_code == 401

    r = await client.patch(
        f"/admin/users/{actors.ids['bob']}", json={"is_active": False}, headers=actors["admin"]
    )
    assert r.status_code == 200
    assert (await client.get("/auth/me", headers=actors["bob"])).status_code == 401

    # A skills-only change keeps the moderator signed in.
    r = await client.patch(
        f"/admin/users/{actors.ids['mod_py']}", json={"skills": ["go"]}, headers=actors["admin"]
    )
    assert r.status_code == 200
    assert (await client.get("/auth/me", headers=actors["mod_py"])).status_code == 200


def _claims(user_id: str, **extra):
    now = int(time.time())
    return {"sub": user_id, "iat": now, "exp": now + 600, "jti": "x" * 32, "ver": 0} | extra


async def test_forged_expired_and_unsigned_tokens_are_rejected(client, actors):
    uid = actors.ids["admin"]
    good = jwt.encode(_claims(uid), SECRET, algorithm="HS256")
    assert (
        await client.get("/auth/me", headers={"Authorization": f"Bearer {good}"})
    ).status_code == 200

    forged = jwt.encode(
        _claims(uid), "another-secret-key-of-sufficient-length!!", algorithm="HS256"
    )
    expired = jwt.encode(_claims(uid, exp=int(time.time()) - 5), SECRET, algorithm="HS256")
    no_exp = jwt.encode(
        {k: v for k, v in _claims(uid).items() if k != "exp"}, SECRET, algorithm="HS256"
    )
    other_alg = jwt.encode(_claims(uid), SECRET, algorithm="HS384")
    unsigned = jwt.encode(_claims(uid), None, algorithm="none")
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for token in (forged, expired, no_exp, other_alg, unsigned, tampered, "garbage", ""):
        r = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
    assert (await client.get("/auth/me")).status_code == 401
    r = await client.get("/auth/me", headers={"Authorization": f"Basic {good}"})
    assert r.status_code == 401


async def test_token_of_unknown_user_is_rejected(client, actors):
    token = jwt.encode(_claims("00000000-0000-0000-0000-000000000000"), SECRET, algorithm="HS256")
    r = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"otp_resend_seconds": 0}])
async def test_new_sign_in_after_role_change_gets_new_role(
    client, runtime, smtp, actors, settings_overrides
):
    await client.patch(
        f"/admin/users/{actors.ids['bob']}", json={"role": "moderator"}, headers=actors["admin"]
    )
    smtp.clear()
    headers = await sign_in(client, runtime, smtp, "bob@example.com")
    assert (await client.get("/auth/me", headers=headers)).json()["role"] == Role.moderator
