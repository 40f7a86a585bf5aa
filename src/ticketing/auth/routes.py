from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from ticketing.auth import service
from ticketing.auth.schemas import MessageOut, OtpRequest, OtpVerify, TokenOut
from ticketing.deps import ClaimsDep, CurrentUser, SessionDep, SettingsDep
from ticketing.errors import RateLimited
from ticketing.ratelimit import DistinctKeysWindow, IPNetwork, client_address
from ticketing.responses import FIELD_ERRORS, UNAUTHORIZED, bad_request, rate_limited
from ticketing.users import service as users_service
from ticketing.users.schemas import AvailabilityUpdate, UserOut

router = APIRouter(prefix="/auth", tags=["auth"])


def limit_addresses_per_client(request: Request, email: str) -> None:
    """One client may not have codes mailed to many addresses (nor, since guessing needs a
    live code, guess codes of many addresses). Asking again for the same address costs
    nothing here, and wrong guesses never count: the per-address limits bound those, and a
    client guessing cannot lock anyone else out of signing in."""
    limiter: DistinctKeysWindow = request.app.state.auth_limiter
    trusted: list[IPNetwork] = request.app.state.trusted_proxies
    wait = limiter.hit(client_address(request, trusted), email)
    if wait is not None:
        raise RateLimited(
            wait, "Too many addresses asked for sign-in codes from your network; try again later"
        )


@router.post(
    "/request-otp",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessageOut,
    responses=rate_limited("Too many codes requested for this address, or from this client"),
)
async def request_otp(
    body: OtpRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> MessageOut:
    limit_addresses_per_client(request, body.email)
    await service.request_code(session, settings, body.email)
    return MessageOut(
        message="If this address may sign in, a 6-digit code is on its way. It expires in "
        f"{settings.otp_ttl_minutes} minutes."
    )


@router.post(
    "/verify-otp",
    response_model=TokenOut,
    responses=bad_request("Invalid or expired code"),
)
async def verify_otp(body: OtpVerify, session: SessionDep, settings: SettingsDep) -> TokenOut:
    token, lifetime, user = await service.verify_code(session, settings, body.email, body.otp)
    return TokenOut(access_token=token, expires_in=lifetime, user=UserOut.model_validate(user))


@router.get("/me", response_model=UserOut, responses=UNAUTHORIZED)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.patch("/me", response_model=UserOut, responses={**UNAUTHORIZED, **FIELD_ERRORS})
async def update_me(body: AvailabilityUpdate, user: CurrentUser, session: SessionDep) -> UserOut:
    """Change your own name, time zone, working hours and away time (role, skills and the
    ticket cap are an admin's to set)."""
    return UserOut.model_validate(await users_service.update_me(session, user, body))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=UNAUTHORIZED)
async def logout(_user: CurrentUser, claims: ClaimsDep, session: SessionDep) -> Response:
    await service.logout(session, claims)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
