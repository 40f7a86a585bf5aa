from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from ticketing.users.schemas import UserOut
from ticketing.vocabulary import Email, StrictModel


class OtpRequest(StrictModel):
    email: Email


class OtpVerify(StrictModel):
    email: Email
    otp: Annotated[str, Field(pattern=r"^\d{6}$", description="the 6-digit code")]


class MessageOut(BaseModel):
    message: str


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    user: UserOut
