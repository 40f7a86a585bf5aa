from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from ticketing.auth import service
from ticketing.auth.schemas import MessageOut, OtpRequest, OtpVerify, TokenOut
from ticketing.deps import ClaimsDep, CurrentUser, SessionDep, SettingsDep
from ticketing.users.schemas import UserOut

router = APIRouter(prefix="/auth", tags=["auth"])

RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many codes requested (see Retry-After)"}
}


@router.post(
    "/request-otp",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessageOut,
    responses=RATE_LIMITED,
)
async def request_otp(body: OtpRequest, session: SessionDep, settings: SettingsDep) -> MessageOut:
    await service.request_code(session, settings, body.email)
    return MessageOut(
        message="If this address may sign in, a 6-digit code is on its way. It expires in "
        f"{settings.otp_ttl_minutes} minutes."
    )


@router.post("/verify-otp", response_model=TokenOut, responses={400: {"description": "Bad code"}})
async def verify_otp(body: OtpVerify, session: SessionDep, settings: SettingsDep) -> TokenOut:
    token, lifetime, user = await service.verify_code(session, settings, body.email, body.otp)
    return TokenOut(access_token=token, expires_in=lifetime, user=UserOut.model_validate(user))


@router.get("/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(_user: CurrentUser, claims: ClaimsDep, session: SessionDep) -> Response:
    await service.logout(session, claims)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
