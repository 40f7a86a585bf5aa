"""FastAPI dependencies shared by every router (Annotated aliases)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.auth import service as auth_service
from ticketing.auth.tokens import TokenClaims
from ticketing.config import Settings
from ticketing.db import READ_ONLY
from ticketing.errors import AppError, Forbidden, Unauthorized
from ticketing.runtime import Runtime
from ticketing.users.models import User
from ticketing.vocabulary import Role


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(runtime: RuntimeDep, request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: commit if the endpoint succeeds, roll back if it raises."""
    read_only = request.method in ("GET", "HEAD")
    async with contextlib.AsyncExitStack() as stack:
        if not read_only:
            await stack.enter_async_context(runtime.db.writing())
        session = await stack.enter_async_context(runtime.db.sessionmaker())
        if read_only and runtime.db.dialect == "sqlite":
            # Reads take no write lock on SQLite (see ticketing.db._begin_immediate_sqlite).
            await session.connection(execution_options={READ_ONLY: True})
        try:
            yield session
        except AppError as exc:
            if exc.keep_changes:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": commit right after the endpoint returns, before the response is sent, so a
# failed commit can never be reported to the client as success.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False)


async def get_token_claims(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenClaims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Not authenticated")
    return auth_service.decode_access_token(settings, credentials.credentials)


ClaimsDep = Annotated[TokenClaims, Depends(get_token_claims)]


async def get_current_user(session: SessionDep, claims: ClaimsDep) -> User:
    return await auth_service.user_for_claims(session, claims)


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role) -> Callable[[User], Coroutine[Any, Any, User]]:
    allowed = frozenset(roles)

    async def guard(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise Forbidden("Your role does not allow this")
        return user

    return guard


AdminUser = Annotated[User, Depends(require_roles(Role.admin))]
StaffUser = Annotated[User, Depends(require_roles(Role.moderator, Role.admin))]
