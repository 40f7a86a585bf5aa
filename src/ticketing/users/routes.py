from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from ticketing.deps import AdminUser, SessionDep
from ticketing.pagination import Order, Page, page_of
from ticketing.responses import (
    BAD_CURSOR,
    FIELD_ERRORS,
    FORBIDDEN,
    UNAUTHORIZED,
    conflict,
    not_found,
)
from ticketing.users import service
from ticketing.users.schemas import UserCreate, UserOut, UserUpdate
from ticketing.vocabulary import Role

router = APIRouter(prefix="/admin/users", tags=["admin"], responses={**UNAUTHORIZED, **FORBIDDEN})
NO_USER = not_found("No such user")

Limit = Annotated[int, Query(ge=1, le=100)]


@router.get("", response_model=Page[UserOut], responses=BAD_CURSOR)
async def list_users(
    _admin: AdminUser,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    order: Order = "newest",
    role: Role | None = None,
    is_active: bool | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[UserOut]:
    rows = await service.list_users(
        session, limit=limit, cursor=cursor, order=order, role=role, is_active=is_active, q=q
    )
    items, next_cursor = page_of(list(rows), limit)
    return Page(items=[UserOut.model_validate(u) for u in items], next_cursor=next_cursor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=conflict("A user with this email exists"),
)
async def create_user(body: UserCreate, _admin: AdminUser, session: SessionDep) -> UserOut:
    user = await service.create_user(
        session, email=body.email, role=body.role, name=body.name, skills=body.skills
    )
    return UserOut.model_validate(user)


@router.get("/{user_id}", response_model=UserOut, responses=NO_USER)
async def get_user(user_id: str, _admin: AdminUser, session: SessionDep) -> UserOut:
    return UserOut.model_validate(await service.get_user(session, user_id))


@router.patch(
    "/{user_id}",
    response_model=UserOut,
    responses={
        **NO_USER,
        **conflict("Would remove the last active admin"),
        **FIELD_ERRORS,
    },
)
async def update_user(
    user_id: str, body: UserUpdate, _admin: AdminUser, session: SessionDep
) -> UserOut:
    return UserOut.model_validate(await service.update_user(session, user_id, body))
