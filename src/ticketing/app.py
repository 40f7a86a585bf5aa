"""create_app(): routers, error handlers, middleware and the lifespan (embedded worker)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ticketing.attachments.routes import router as attachments_router
from ticketing.attachments.routes import upload_body_limit
from ticketing.auth.routes import router as auth_router
from ticketing.config import Settings, get_settings
from ticketing.errors import AppError, DatabaseUnavailable
from ticketing.flows import make_worker, reading_mailbox
from ticketing.health import router as health_router
from ticketing.jobs.routes import router as jobs_router
from ticketing.mail.routes import router as mail_router
from ticketing.middleware import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from ticketing.ratelimit import DistinctKeysWindow
from ticketing.reports.routes import router as reports_router
from ticketing.responses import EVERY_OPERATION
from ticketing.runtime import Runtime, build_runtime, freeze_startup_heap
from ticketing.sla.routes import router as sla_router
from ticketing.tickets.routes import admin_router as tickets_admin_router
from ticketing.tickets.routes import router as tickets_router
from ticketing.triage.routes import router as triage_router
from ticketing.users import service as users_service
from ticketing.users.routes import router as users_router
from ticketing.web.routes import router as web_router
from ticketing.web.routes import static_files

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


async def bootstrap(runtime: Runtime) -> None:
    """Start-up work that must be true before serving: ADMIN_EMAILS exist as active admins."""
    async with runtime.db.transaction() as session:
        await users_service.ensure_admins(session, runtime.settings.admin_email_list)


def create_app(
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    *,
    freeze_heap: bool = False,
) -> FastAPI:
    """`freeze_heap`: for the server process, see ticketing.runtime.freeze_startup_heap."""
    settings = settings or (runtime.settings if runtime else get_settings())
    settings.require_signing_key()  # the API signs and checks tokens

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or build_runtime(settings)
        app.state.runtime = rt
        await bootstrap(rt)
        if freeze_heap:
            freeze_startup_heap()
        worker_task = None
        worker = None
        mailbox = contextlib.AsyncExitStack()
        if settings.worker == "embedded":
            worker = make_worker(rt, name="embedded")
            worker_task = asyncio.create_task(worker.run())
            # The mailbox is read wherever the job worker runs.
            await mailbox.enter_async_context(reading_mailbox(rt))
        try:
            yield
        finally:
            await mailbox.aclose()
            if worker is not None and worker_task is not None:
                worker.stop()
                with contextlib.suppress(Exception):
                    await worker_task
            if runtime is None:
                await rt.close()

    app = FastAPI(
        title=settings.app_name,
        version="0.1.0",
        description="AI helpdesk: passwordless sign-in, AI triage, skill-based routing.",
        responses=EVERY_OPERATION,
        lifespan=lifespan,
    )
    if runtime is not None:
        app.state.runtime = runtime
    app.state.auth_limiter = DistinctKeysWindow(settings.auth_requests_per_client_per_hour, 3600)
    app.state.trusted_proxies = settings.trusted_proxy_networks

    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(users_router)
    app.include_router(tickets_router)
    app.include_router(tickets_admin_router)
    app.include_router(mail_router)
    app.include_router(attachments_router)
    app.include_router(jobs_router)
    app.include_router(sla_router)
    app.include_router(reports_router)
    app.include_router(triage_router)
    app.include_router(web_router)
    app.mount("/static", static_files(), name="static")
    _install_error_handlers(app)

    # Starlette runs the last-added middleware first. Security headers and CORS sit outside the
    # body limit so that its 400/413 answers (and CORS preflights) carry them too.
    app.add_middleware(BodySizeLimitMiddleware, path_limits=[upload_body_limit(settings)])
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PATCH"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(SecurityHeadersMiddleware, csp=CSP)
    app.add_middleware(RequestContextMiddleware)
    return app


def _allowed_methods(app: FastAPI, request: Request) -> set[str]:
    """The methods of the resource at this path; the router's 405 names only the first route's.

    A literal path (`/tickets/create`) is its own resource, even where a template
    (`/tickets/{ticket_id}`) would also match it.
    """
    literal: set[str] = set()
    templated: set[str] = set()
    for route in iter_route_contexts(app.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE and route.methods:
            (templated if "{" in (route.path or "") else literal).update(route.methods)
    return literal or templated


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each invalid input back. Text that is not valid Unicode
        # (a lone surrogate from a JSON "\\ud800" escape) cannot be encoded as a response:
        # then the echo (and the context, which may quote it) is left out.
        errors = jsonable_encoder(exc.errors())
        try:
            json.dumps(errors, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            errors = [{k: v for k, v in e.items() if k not in ("input", "ctx")} for e in errors]
            log.info("request refused: text that is not valid Unicode")
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405 and (allowed := _allowed_methods(app, request)):
            # RFC 9110: Allow lists all the methods the resource supports.
            exc = StarletteHTTPException(
                405,
                exc.detail,
                headers={**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))},
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(AppError)
    async def app_error(_request: Request, exc: AppError) -> JSONResponse:
        if isinstance(exc, DatabaseUnavailable):
            log.error("database unavailable: %r", exc.__cause__)
        return _error_response(exc)

    @app.exception_handler(IntegrityError)
    async def integrity_error(_request: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests raced to create the same thing; the loser gets a clean conflict.
        log.warning("integrity error: %s", exc.orig)
        return JSONResponse({"detail": "Conflict with the current state"}, status_code=409)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeoutError)
    async def database_down(_request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError) and not (
            exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
        ):
            return await unexpected(_request, exc)
        log.error("database unavailable: %s", type(exc).__name__, exc_info=exc)
        return _error_response(DatabaseUnavailable())

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return JSONResponse({"detail": "Internal server error"}, status_code=500)


def _error_response(exc: AppError) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
