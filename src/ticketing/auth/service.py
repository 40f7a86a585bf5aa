"""Passwordless sign-in: issue and check 6-digit codes, issue and revoke access tokens."""

from __future__ import annotations

import logging
import math
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.auth import repository as codes_repo
from ticketing.auth.models import LoginCode
from ticketing.auth.tokens import (
    TokenClaims,
    code_matches,
    decode_access_token,
    generate_code,
    hash_code,
    issue_access_token,
)
from ticketing.config import Settings
from ticketing.db import lock_for_transaction, utcnow
from ticketing.errors import BadRequest, RateLimited, Unauthorized
from ticketing.jobs import queue
from ticketing.jobs.queue import JobKind
from ticketing.notifications import service as notifications
from ticketing.users import repository as users_repo
from ticketing.users import service as users_service
from ticketing.users.models import User

log = logging.getLogger(__name__)

INVALID_CODE = "Invalid or expired code"
RATE_WINDOW = timedelta(hours=1)
# The job that decides whether to mail a requested code, and mails it.
SEND_SIGN_IN_CODE = JobKind("send_sign_in_code", max_attempts=5)

__all__ = [
    "decode_access_token",
    "deliver_code",
    "logout",
    "may_sign_up",
    "request_code",
    "user_for_claims",
    "verify_code",
]


def may_sign_up(settings: Settings, email: str) -> bool:
    """Whether an address without an account may get one (SIGNUP_MODE, ALLOWED_EMAIL_DOMAINS)."""
    if settings.signup_mode != "open" and email not in settings.admin_email_list:
        return False
    domains = settings.allowed_domain_list
    return not domains or email.rpartition("@")[2] in domains


async def request_code(session: AsyncSession, settings: Settings, email: str) -> None:
    """Issue a new code for `email` and queue its delivery (see `deliver_code`).

    Every caller sees the same outcome (or the same 429) whether or not the address has an
    account, so the answer never tells who is registered.
    """
    now = utcnow()
    # Two simultaneous requests for one address must not both slip under the limits.
    await lock_for_transaction(session, f"otp:{email}")
    recent = await codes_repo.codes_since(session, email, now - RATE_WINDOW)
    if len(recent) >= settings.otp_max_per_hour:
        oldest = recent[-1].created_at
        raise RateLimited(
            math.ceil((oldest + RATE_WINDOW - now).total_seconds()),
            "Too many codes requested for this address; try again later",
        )
    if recent and settings.otp_resend_seconds:
        wait = recent[0].created_at + timedelta(seconds=settings.otp_resend_seconds) - now
        if wait.total_seconds() > 0:
            raise RateLimited(
                math.ceil(wait.total_seconds()),
                "A code was sent moments ago; wait before asking for another",
            )

    await codes_repo.delete_codes_before(session, email, now - RATE_WINDOW)
    await codes_repo.spend_live_codes(session, email, now)  # a new code replaces the old one
    code = generate_code()
    session.add(
        LoginCode(
            email=email,
            code_hash=hash_code(settings, email, code),
            created_at=now,
            expires_at=now + timedelta(minutes=settings.otp_ttl_minutes),
        )
    )
    # Whether the address may receive it (an active account, or one sign-up allows) is decided
    # by the job, after the answer: every address takes this same path, so neither the answer
    # nor how long it takes tells who has an account or who was deactivated.
    queue.enqueue(session, SEND_SIGN_IN_CODE, {"email": email, "code": code})


async def deliver_code(session: AsyncSession, settings: Settings, email: str, code: str) -> bool:
    """Mail `code` to `email` if the address may sign in (the job of `request_code`)."""
    user = await users_repo.get_by_email(session, email)
    if user is not None and not user.is_active:
        log.info("sign-in code not sent: account deactivated")
        return False
    if user is None and not may_sign_up(settings, email):
        log.info("sign-in code not sent: sign-up not allowed for this address")
        return False
    message = notifications.render_email(
        settings,
        "otp",
        to=email,
        subject=f"Your {settings.app_name} sign-in code: {code}",
        context={"code": code, "ttl_minutes": settings.otp_ttl_minutes},
        auto_submitted=True,  # RFC 3834: out-of-office replies must not answer it
    )
    notifications.queue_email(session, message, sensitive=True, kind="otp")
    return True


async def verify_code(
    session: AsyncSession, settings: Settings, email: str, code: str
) -> tuple[str, int, User]:
    """Check a code; on success return (token, lifetime seconds, user).

    A wrong code counts as an attempt even though the request fails, hence keep_changes.
    """
    now = utcnow()
    login = await codes_repo.latest_live_code(session, email, now)
    if login is None:
        raise BadRequest(INVALID_CODE)
    if not code_matches(settings, email, code, login.code_hash):
        login.attempts += 1
        if login.attempts >= settings.otp_max_attempts:
            login.spent_at = now  # burned: brute force gets five guesses per code, no more
        raise BadRequest(INVALID_CODE, keep_changes=True)
    login.spent_at = now

    user = await users_repo.get_by_email(session, email)
    if user is None:
        if not may_sign_up(settings, email):
            raise BadRequest(INVALID_CODE, keep_changes=True)
        user = await users_service.create_user(session, email=email)
    if not user.is_active:
        raise BadRequest(INVALID_CODE, keep_changes=True)
    token, lifetime = issue_access_token(settings, user.id, user.token_version)
    return token, lifetime, user


async def user_for_claims(session: AsyncSession, claims: TokenClaims) -> User:
    """The signed-in user behind a decoded token, or 401 if the token no longer counts."""
    user = await codes_repo.user_unless_revoked(session, claims.user_id, claims.jti)
    if user is None or not user.is_active or user.token_version != claims.version:
        raise Unauthorized("Token revoked")
    return user


async def logout(session: AsyncSession, claims: TokenClaims) -> None:
    await codes_repo.revoke(session, claims.jti, claims.expires_at)


async def forget_expired(session: AsyncSession) -> tuple[int, int]:
    """Delete sign-in codes past the rate-limit window (they are its log) and revocations of
    tokens that have expired anyway. Returns (codes, revocations) deleted."""
    now = utcnow()
    codes = await codes_repo.delete_codes_created_before(session, now - RATE_WINDOW)
    revoked = await codes_repo.delete_revocations_expired_before(session, now)
    return codes, revoked
