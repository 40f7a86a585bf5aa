"""Malformed input on every operation, driven by the app's own OpenAPI schema.

Schemathesis (test_fuzz.py) generates requests that fit the schema, and its strings are valid
Unicode: it never sent the lone UTF-16 surrogate or the out-of-range cursor that gave 500s in
the attack round. This sends exactly that kind of input to every operation that takes a JSON
body and every list that takes a cursor, and requires a 4xx with a JSON body, never a 5xx.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from ticketing.app import create_app
from ticketing.auth.tokens import issue_access_token
from ticketing.migrate import upgrade_database
from ticketing.runtime import build_runtime
from ticketing.tickets import service as tickets_service
from ticketing.tickets.schemas import TicketCreate
from ticketing.users import service as users_service
from ticketing.vocabulary import Role

from .conftest import make_settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 0) or 40
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same cases on every run
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Text no database can store or no header can carry: lone surrogates (what JSON's "\ud800"
# escape decodes to), NUL, line and paragraph separators, controls, invisible characters.
NASTY_CHAR = st.one_of(
    st.characters(categories=["Cs"]),
    st.sampled_from(["\x00", "\r", "\n", "\u2028", "\u2029", "\x85", "\u200b", "\ufeff"]),
)
# Plausible text with at least one nasty character in it, so every case tests something.
NASTY_TEXT = st.tuples(st.text(max_size=12), NASTY_CHAR, st.text(max_size=12)).map("".join)
NASTY_VALUE = st.one_of(
    NASTY_TEXT,
    st.lists(NASTY_TEXT, min_size=1, max_size=3),
    st.emails().map(lambda e: "\ud800" + e),
)


@st.composite
def cursors(draw: st.DrawFn) -> str:
    """Cursors as ours look (base64 of [timestamp, id]) with values anywhere in range, and
    garbage of every other kind."""
    # The edges of what a datetime can hold, where an offset pushes it out of range, as often
    # as anything in between.
    limit = 23 * 60 + 59
    offset = timedelta(
        minutes=draw(st.one_of(st.sampled_from([-limit, limit]), st.integers(-limit, limit)))
    )
    moment = draw(st.one_of(st.sampled_from([datetime.min, datetime.max]), st.datetimes()))
    stamp = moment.replace(tzinfo=timezone(offset)).isoformat()
    shaped = draw(
        st.one_of(
            st.just([stamp, draw(NASTY_TEXT)]),
            st.just([stamp, draw(st.text(max_size=200))]),
            st.lists(st.one_of(st.integers(), st.text(max_size=30), st.none()), max_size=3),
            st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
        )
    )
    raw = json.dumps(shaped).encode()
    return draw(
        st.one_of(
            st.just(base64.urlsafe_b64encode(raw).decode().rstrip("=")),
            st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode()),
            st.text(max_size=60),
        )
    )


@dataclass
class Target:
    client: TestClient
    token: str
    ticket_id: str
    schema: dict[str, Any]

    def path(self, template: str) -> str:
        return template.replace("{ticket_id}", self.ticket_id).replace("{user_id}", "x")


async def _seed(database_url: str) -> tuple[str, str]:
    s = make_settings(database_url, 1, email_backend="console", worker="external")
    runtime = build_runtime(s)
    try:
        async with runtime.db.transaction() as session:
            admin = await users_service.create_user(
                session, email="admin@example.com", role=Role.admin
            )
            ticket = await tickets_service.create_ticket(
                session, s, admin, TicketCreate(title="Seed", description="Seed ticket")
            )
            return issue_access_token(s, admin.id, admin.token_version)[0], ticket.id
    finally:
        await runtime.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    path: Path = tmp_path_factory.mktemp("malformed") / "fuzz.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade_database(url)
    token, ticket_id = asyncio.run(_seed(url))
    app = create_app(
        make_settings(
            url,
            1,
            email_backend="console",
            worker="external",
            ticket_create_per_minute=1_000_000,
            comment_create_per_minute=1_000_000,
        )
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Target(client, token, ticket_id, app.openapi())


def _operations(schema: dict[str, Any], want: str) -> list[tuple[str, str]]:
    found = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            if want == "body" and "application/json" in op.get("requestBody", {}).get(
                "content", {}
            ):
                found.append((method, path))
            if want == "cursor" and any(p["name"] == "cursor" for p in op.get("parameters", [])):
                found.append((method, path))
    return found


def _body_fields(schema: dict[str, Any], method: str, path: str) -> list[str]:
    ref = schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    name = ref["$ref"].rsplit("/", 1)[-1]
    return list(schema["components"]["schemas"][name]["properties"])


def _check(response: Any) -> None:
    assert response.status_code < 500, response.text
    assert response.status_code >= 400 or response.status_code < 300
    response.json()  # a JSON answer, not a bare error page


def test_the_schema_has_what_this_fuzzes(target: Target) -> None:
    # If these lists went empty, the tests below would pass without testing anything.
    assert len(_operations(target.schema, "body")) >= 6
    assert len(_operations(target.schema, "cursor")) >= 5


@FUZZ
@given(data=st.data())
def test_bodies_with_broken_text_are_refused_cleanly(target: Target, data: st.DataObject) -> None:
    method, path = data.draw(st.sampled_from(_operations(target.schema, "body")), "operation")
    fields = _body_fields(target.schema, method, path)
    body = data.draw(st.dictionaries(st.sampled_from(fields), NASTY_VALUE, min_size=1), "body")
    # json.dumps escapes lone surrogates as \udXXX, exactly as an attacker's client would.
    raw = json.dumps(body).encode()
    response = target.client.request(
        method,
        target.path(path),
        content=raw,
        headers={"Authorization": f"Bearer {target.token}", "Content-Type": "application/json"},
    )
    _check(response)


@FUZZ
@given(data=st.data())
def test_lists_with_forged_cursors_are_refused_cleanly(target: Target, data: st.DataObject) -> None:
    method, path = data.draw(st.sampled_from(_operations(target.schema, "cursor")), "operation")
    cursor = data.draw(cursors(), "cursor")
    response = target.client.request(
        method,
        target.path(path),
        params={"cursor": cursor},
        headers={"Authorization": f"Bearer {target.token}"},
    )
    _check(response)
