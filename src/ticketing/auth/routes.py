from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response, status

from ticketing.auth import service
from ticketing.auth.schemas import MessageOut, OtpRequest, OtpVerify, TokenOut
from ticketing.deps import ClaimsDep, CurrentUser, SessionDep, SettingsDep
from ticketing.errors import RateLimited
from ticketing.ratelimit import SlidingWindow, client_address
from ticketing.responses import UNAUTHORIZED, bad_request, rate_limited
from ticketing.users.schemas import UserOut

router = APIRouter(prefix="/auth", tags=["auth"])


async def limit_per_client(request: Request) -> None:
    """One client may not mail codes to many addresses, nor guess codes for many addresses."""
    limiter: SlidingWindow = request.app.state.auth_limiter
    wait = limiter.hit(client_address(request))
    if wait is not None:
        raise RateLimited(wait, "Too many sign-in requests from your network; try again later")


PER_CLIENT = [Depends(limit_per_client)]


@router.post(
    "/request-otp",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessageOut,
    responses=rate_limited("Too many codes requested for this address, or from this client"),
    dependencies=PER_CLIENT,
)
async def request_otp(body: OtpRequest, session: SessionDep, settings: SettingsDep) -> MessageOut:
    await service.request_code(session, settings, body.email)
    return MessageOut(
        message="If this address may sign in, a 6-digit code is on its way. It expires in "
        f"{settings.otp_ttl_minutes} minutes."
    )


@router.post(
    "/verify-otp",
    response_model=TokenOut,
    responses={
        **bad_request("Invalid or expired code"),
        **rate_limited("Too many sign-in requests from this client"),
    },
    dependencies=PER_CLIENT,
)
async def verify_otp(body: OtpVerify, session: SessionDep, settings: SettingsDep) -> TokenOut:
    token, lifetime, user = await service.verify_code(session, settings, body.email, body.otp)
    return TokenOut(access_token=token, expires_in=lifetime, user=UserOut.model_validate(user))


@router.get("/me", response_model=UserOut, responses=UNAUTHORIZED)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=UNAUTHORIZED)
async def logout(_user: CurrentUser, claims: ClaimsDep, session: SessionDep) -> Response:
    await service.logout(session, claims)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
