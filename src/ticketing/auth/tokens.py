"""Access tokens (JWT via PyJWT) and sign-in code hashing."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from ticketing.config import ALLOWED_ALGORITHMS, Settings
from ticketing.db import utcnow
from ticketing.errors import Unauthorized

REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti"]


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    jti: str
    version: int
    expires_at: datetime


def issue_access_token(settings: Settings, user_id: str, token_version: int) -> tuple[str, int]:
    """Return (token, lifetime in seconds)."""
    now = utcnow()
    lifetime = settings.access_token_expire_minutes * 60
    claims = {
        "sub": user_id,
        "iat": now,
        "exp": now + timedelta(seconds=lifetime),
        "jti": uuid.uuid4().hex,
        "ver": token_version,
    }
    return jwt.encode(claims, settings.jwt_key, algorithm=settings.algorithm), lifetime


def decode_access_token(settings: Settings, token: str) -> TokenClaims:
    try:
        header = jwt.get_unverified_header(token)
        # Only the configured HMAC algorithm: never "none", never an asymmetric confusion.
        if header.get("alg") != settings.algorithm or header.get("alg") not in ALLOWED_ALGORITHMS:
            raise Unauthorized("Invalid token")
        data = jwt.decode(
            token,
            settings.jwt_key,
            algorithms=[settings.algorithm],
            options={"require": REQUIRED_CLAIMS},
        )
        version = data.get("ver", 0)
        if not isinstance(data["sub"], str) or not isinstance(version, int):
            raise Unauthorized("Invalid token")
        return TokenClaims(
            user_id=data["sub"],
            jti=str(data["jti"]),
            version=version,
            expires_at=datetime.fromtimestamp(int(data["exp"]), tz=utcnow().tzinfo),
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Token expired") from exc
    except (jwt.PyJWTError, OverflowError, OSError, ValueError) as exc:
        # OverflowError/OSError/ValueError: an `exp` beyond what a datetime can hold.
        raise Unauthorized("Invalid token") from exc


def generate_code() -> str:
    """Six digits from the OS's CSPRNG."""
    return f"{secrets.randbelow(1_000_000):06d}"


def hash_code(settings: Settings, email: str, code: str) -> str:
    # Keyed with SECRET_KEY: a leaked table does not let anyone test the 10^6 codes offline.
    message = f"{email}:{code}".encode()
    return hmac.new(settings.jwt_key.encode(), message, hashlib.sha256).hexdigest()


def code_matches(settings: Settings, email: str, code: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_code(settings, email, code), expected_hash)
