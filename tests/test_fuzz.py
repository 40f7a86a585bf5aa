"""Schemathesis against the app's own OpenAPI schema: every operation, all checks.

In process (the ASGI app, no network), on a migrated SQLite database seeded with users,
tickets and comments; path parameters mostly name those seeded objects. Each generated request
is sent as an admin, a moderator and a user, and every response goes through all of
schemathesis' checks (`--checks all`): no 5xx, documented status codes, content types, headers
and bodies that match the schema, schema-violating requests refused, valid ones accepted, auth
enforced. SQLite only, to keep `make test` quick: the HTTP surface is the same on PostgreSQL,
which the rest of the suite covers. Object-level authorization is tested in test_security.py
(schemathesis' own BOLA check needs several identities configured through WFC auth).

`make test` runs 10 derandomised cases per operation (30 requests); `make fuzz` sets
FUZZ_EXAMPLES (cases per operation) and adds schemathesis' coverage phase (boundary values,
missing parameters, undeclared methods: about 40 more requests per operation).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import note
from schemathesis.python import asgi as schemathesis_asgi
from sqlalchemy import select, update
from starlette.types import ASGIApp, Receive, Scope, Send

from ticketing.app import bootstrap, create_app
from ticketing.attachments import service as attachments_service
from ticketing.auth.tokens import issue_access_token
from ticketing.config import Settings
from ticketing.jobs.models import Job, JobStatus
from ticketing.migrate import upgrade_database
from ticketing.runtime import build_runtime
from ticketing.tickets import service as tickets_service
from ticketing.tickets.schemas import CommentCreate, TicketCreate
from ticketing.users import service as users_service
from ticketing.vocabulary import Role

from .conftest import ADMIN_EMAIL, make_settings

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 0)
MAX_EXAMPLES = FUZZ_EXAMPLES or 10
ROLES = ("admin", "moderator", "user")


def _settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        1,  # no SMTP: mail goes to the console backend, and no worker runs anyway
        email_backend="console",
        worker="external",
        # Limits are tested in test_security.py; here they would only stop the fuzzing. (Unknown
        # settings are ignored, so the per-client one may be named before it exists.)
        ticket_create_per_minute=1_000_000,
        comment_create_per_minute=1_000_000,
        auth_requests_per_client_per_hour=1_000_000,
    )


class _AppProxy:
    """The ASGI app schemathesis talks to. The real one needs a seeded database, which only
    exists once the `fuzz_app` fixture has run, long after the schema is loaded."""

    target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.target is not None, "the fuzz_app fixture sets the app"
        await self.target(scope, receive, send)


APP = _AppProxy()
# The schema is read from the app itself: no server, no network.
_SCHEMA_APP = create_app(_settings("sqlite+aiosqlite:///:memory:"))
# Statuses a schema-valid request may get besides 2xx/401/403/404/409/429, and why: the
# positive_data_acceptance check cannot know that a random code or cursor is wrong.
# Free text in a query string (a cursor, `q=`) may be a NUL, which the middleware refuses with
# the 400 every operation documents (PostgreSQL cannot hold NUL in text).
_ALSO_ACCEPTABLE = [
    ("/tickets", ["400", "422"], "a generated cursor does not decode; NUL in the URL"),
    ("/moderator/tickets", ["400", "422"], "a generated cursor does not decode; NUL in the URL"),
    ("/tickets/{ticket_id}/comments", ["400", "422"], "a generated cursor; NUL in the URL"),
    ("/tickets/{ticket_id}/events", ["400", "422"], "a generated cursor; NUL in the URL"),
    ("/tickets/{ticket_id}", ["422"], "assigned_to must name an active moderator or admin"),
    # email-validator is stricter than the `email` format: it refuses dotless domains such as
    # `noreply@localhost` (a constant schemathesis finds in the code) and reserved ones (.test).
    ("/auth/request-otp", ["422"], "email-validator"),
    ("/auth/verify-otp", ["400", "422"], "wrong code; email-validator"),
    ("/admin/users", ["400", "422"], "bad cursor or NUL (GET); email-validator (POST)"),
    ("/tickets/{ticket_id}/attachments", ["422"], "a generated comment_id is not one of yours"),
    ("/admin/jobs", ["400", "422"], "a generated cursor does not decode; NUL in the URL"),
    ("/admin/inbound-emails", ["400", "422"], "a generated cursor; NUL in the URL"),
    ("/admin/reports/summary", ["422"], "a generated from/to is not a date, or from is after to"),
    # A time zone must be a real IANA name, and a period's start must differ from its end (and
    # not be 24:00): rules a JSON Schema pattern cannot say.
    ("/auth/me", ["422"], "not an IANA time zone; a period that is empty"),
    ("/admin/users/{user_id}", ["422"], "not an IANA time zone; a period that is empty"),
    ("/admin/triage/quality", ["422"], "a generated `from` after `to`"),
]
_POSITIVE_DEFAULT = ["2xx", "3xx", "401", "403", "404", "409", "429"]
_config = schemathesis.Config.from_dict(
    {
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,  # hypothesis' derandomize: the same cases on every run
            "database": "none",
            # The tests send real tokens; generated (or removed) ones only test the fuzzer.
            "with-security-parameters": False,
        },
        "phases": {"coverage": {"enabled": FUZZ_EXAMPLES > 0}},
        "operations": [
            {
                "include-path": path,
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": _POSITIVE_DEFAULT + extra}
                },
            }
            for path, extra, _why in _ALSO_ACCEPTABLE
        ],
    }
)
# The equivalent of `--checks all`: every built-in check, whatever the defaults become.
_config.projects.default.checks.update(included_check_names=["all"])
schema = schemathesis.openapi.from_dict(_SCHEMA_APP.openapi(), config=_config)
schema.app = APP


@dataclass
class Seed:
    """What the seeded database holds: actors (signed in by role) and objects to aim at."""

    settings: Settings
    actors: dict[str, tuple[str, int]] = field(default_factory=dict)  # role -> (id, version)
    ticket_ids: list[str] = field(default_factory=list)
    readable_user_ids: list[str] = field(default_factory=list)
    # Targets for PATCH /admin/users/{id}: never the actors, whose tokens must keep working.
    victim_user_ids: list[str] = field(default_factory=list)
    attachment_ids: list[str] = field(default_factory=list)
    # The seeded tickets' triage jobs (never run: no worker); the first one failed for good, so
    # POST /admin/jobs/{id}/retry can answer 202 as well as 409.
    job_ids: list[str] = field(default_factory=list)

    def token(self, role: str) -> str:
        # A fresh token per request: POST /auth/logout revokes the one it is called with.
        user_id, version = self.actors[role]
        return issue_access_token(self.settings, user_id, version)[0]


SEED: Seed | None = None


@dataclass(frozen=True)
class SeedFile:
    filename: str
    content_type: str
    data: bytes
    inline: bool = False


async def _seed(settings: Settings) -> Seed:
    seed = Seed(settings)
    runtime = build_runtime(settings)
    try:
        await bootstrap(runtime)
        async with runtime.db.transaction() as session:
            admin = (await users_service.ensure_admins(session, [ADMIN_EMAIL]))[0]
            mod = await users_service.create_user(
                session, email="mod@example.com", role=Role.moderator, skills=["python"]
            )
            user = await users_service.create_user(session, email="user@example.com")
            other = await users_service.create_user(session, email="other@example.com")
            victims = [
                await users_service.create_user(session, email="victim.user@example.com"),
                await users_service.create_user(
                    session, email="victim.mod@example.com", role=Role.moderator
                ),
            ]
            for role, person in (("admin", admin), ("moderator", mod), ("user", user)):
                seed.actors[role] = (person.id, person.token_version)
            seed.readable_user_ids = [admin.id, mod.id, user.id, other.id]
            seed.victim_user_ids = [v.id for v in victims]

            for author, title in ((user, "Printer on fire"), (other, "VPN drops"), (mod, "Own")):
                ticket = await tickets_service.create_ticket(
                    session,
                    settings,
                    author,
                    TicketCreate(title=title, description=f"{title}: details, python"),
                )
                seed.ticket_ids.append(ticket.id)
                comment = await tickets_service.add_comment(
                    session, settings, author, ticket.id, CommentCreate(body="More details")
                )
                files = [
                    SeedFile("log.txt", "text/plain", b"a log line"),
                    SeedFile("page.html", "text/html", b"<script>alert(1)</script>"),
                ]
                attached = await attachments_service.attach_incoming(
                    session, settings, ticket.id, comment.id, author.id, files, internal=False
                )
                seed.attachment_ids += [a.id for a in attached.attachments]
            first = await tickets_service.get_visible(session, admin, seed.ticket_ids[0])
            await tickets_service.assign(session, settings, first, mod, "seeded", admin.id)
            note = await tickets_service.add_comment(
                session, settings, mod, first.id, CommentCreate(body="internal note", internal=True)
            )
            attached = await attachments_service.attach_incoming(
                session,
                settings,
                first.id,
                note.id,
                mod.id,
                [SeedFile("secret.txt", "text/plain", b"staff only")],
                internal=True,
            )
            seed.attachment_ids += [a.id for a in attached.attachments]
            await session.flush()
            seed.job_ids = list((await session.scalars(select(Job.id).order_by(Job.id))).all())
            await session.execute(
                update(Job)
                .where(Job.id == seed.job_ids[0])
                .values(status=JobStatus.failed, last_error="RuntimeError: seeded failure")
            )
    finally:
        await runtime.close()
    return seed


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_AppProxy]:
    global SEED
    path: Path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade_database(url)
    settings = _settings(url)
    SEED = asyncio.run(_seed(settings))
    # No runtime passed: the app's lifespan builds one on schemathesis' own event loop.
    APP.target = create_app(settings)
    yield APP
    schemathesis_asgi.shutdown_lifespans()  # stops the app's runtime (database pool)
    APP.target = None
    SEED = None


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Aim path parameters at seeded objects most of the time, at generated values otherwise."""
    if SEED is None or not path_parameters:
        return st.just(path_parameters)
    operation = context.operation
    if "ticket_id" in path_parameters:
        choices = SEED.ticket_ids
        key = "ticket_id"
    elif "job_id" in path_parameters:
        choices = SEED.job_ids
        key = "job_id"
    elif "user_id" in path_parameters:
        choices = (
            SEED.victim_user_ids if operation.method.upper() == "PATCH" else SEED.readable_user_ids
        )
        key = "user_id"
    elif "attachment_id" in path_parameters:
        choices = SEED.attachment_ids
        key = "attachment_id"
    else:
        return st.just(path_parameters)
    # Seeded first: hypothesis favours the first branch, so most cases reach a real object.
    return st.one_of(
        st.sampled_from(choices).map(lambda v: {**path_parameters, key: v}),
        st.just(path_parameters),
    )


@schema.parametrize()
def test_api_conforms_to_its_schema(case, fuzz_app):
    """Each generated request is sent as an admin, a moderator and a user (in that order)."""
    assert SEED is not None
    for role in ROLES:
        note(f"sent as: {role}")
        case.call_and_validate(headers={"Authorization": f"Bearer {SEED.token(role)}"})
