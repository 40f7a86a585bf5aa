"""GET /admin/reports/summary (and ?format=csv): every figure against tickets with known
timestamps, the period, the CSV and who may see it. Tickets are written straight to the
database with the SLA and analysis columns set, as the SLA clock and triage would set them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ticketing.db import utcnow
from ticketing.reports import service
from ticketing.tickets.models import Ticket
from ticketing.triage.models import TriageCorrection
from ticketing.users.models import User
from ticketing.vocabulary import Role

from .conftest import ADMIN_EMAIL, create_user, sign_in

OCT = datetime(2026, 10, 1, tzinfo=UTC)
PERIOD = {"from": "2026-10-01", "to": "2026-10-31"}  # a date as `to` includes that day


class Seeder:
    """Writes tickets with given columns; numbers count up from 1."""

    def __init__(self, runtime: Any, creator_id: str) -> None:
        self.runtime = runtime
        self.creator_id = creator_id
        self.number = 0

    async def ticket(self, created_at: datetime, **columns: Any) -> str:
        self.number += 1
        values: dict[str, Any] = {
            "number": self.number,
            "title": f"Ticket {self.number}",
            "description": "Something is wrong.",
            "created_by": self.creator_id,
            "created_at": created_at,
            "updated_at": created_at,
            "status": "open",
        }
        for name in ("first_response", "resolution"):
            minutes = columns.pop(f"{name}_after", None)
            if minutes is not None:
                column = "first_responded_at" if name == "first_response" else "resolved_at"
                values[column] = created_at + timedelta(minutes=minutes)
        values.update(columns)
        async with self.runtime.db.transaction() as session:
            ticket = Ticket(**values)
            session.add(ticket)
            await session.flush()
            return ticket.id

    async def correction(self, ticket_id: str, field: str, at: datetime) -> None:
        async with self.runtime.db.transaction() as session:
            session.add(
                TriageCorrection(
                    ticket_id=ticket_id,
                    field=field,
                    before="low",
                    after="high",
                    provider="local",
                    created_at=at,
                )
            )


@pytest.fixture
async def admin(client, runtime, smtp) -> dict[str, str]:
    return await sign_in(client, runtime, smtp, ADMIN_EMAIL)


@pytest.fixture
async def people(runtime, admin) -> dict[str, User]:
    async with runtime.db.transaction() as session:
        from sqlalchemy import select

        the_admin = (await session.scalars(select(User).where(User.email == ADMIN_EMAIL))).one()
    return {
        "admin": the_admin,
        "ann": await create_user(runtime, "ann@example.com", Role.moderator, name="Ann"),
        "bo": await create_user(runtime, "bo@example.com", Role.moderator, name="Bo"),
        "user": await create_user(runtime, "user@example.com", Role.user, name="Uma"),
    }


@pytest.fixture
def seed(runtime, people) -> Seeder:
    return Seeder(runtime, people["user"].id)


async def summary(client, headers, **params: str) -> dict[str, Any]:
    r = await client.get("/admin/reports/summary", params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


async def test_every_figure_of_the_summary(client, admin, people, seed):
    ann, bo = people["ann"].id, people["bo"].id
    day = timedelta(days=1)
    # Created in October: five first responses (10, 20, 30, 40, 100 minutes) and four
    # resolutions (60, 120, 240, 480 minutes), one of them resolved only in November.
    a = await seed.ticket(
        OCT + 1 * day, first_response_after=10, resolution_after=60, status="resolved",
        assigned_to=ann, priority="high", ticket_type="bug", sla_status="met",
        analysis_status="ai", analysis_provider="gemini",
    )  # fmt: skip
    b = await seed.ticket(
        OCT + 2 * day, first_response_after=20, resolution_after=120, status="closed",
        assigned_to=ann, priority="high", ticket_type="bug", sla_status="met",
        analysis_status="fallback", analysis_provider="local",
    )  # fmt: skip
    await seed.ticket(
        OCT + 3 * day, first_response_after=30, resolution_after=240, status="resolved",
        assigned_to=bo, priority="low", ticket_type="feature", sla_status="breached",
        sla_resolution_breached=True, analysis_status="ai", analysis_provider="gemini",
    )  # fmt: skip
    await seed.ticket(  # resolved on 3 November: its time counts, but not as resolved in October
        datetime(2026, 10, 31, 23, 0, tzinfo=UTC), first_response_after=40,
        resolution_after=3 * 24 * 60, status="resolved", assigned_to=bo, priority="urgent",
        ticket_type="support", sla_status="met", analysis_status="fallback",
        analysis_provider="local",
    )  # fmt: skip
    await seed.ticket(
        OCT + 5 * day, first_response_after=100, status="in_progress", assigned_to=ann,
        priority="urgent", ticket_type="bug", sla_status="at_risk", analysis_status="ai",
    )  # fmt: skip
    await seed.ticket(
        OCT + 6 * day, status="waiting", assigned_to=bo, priority="medium",
        ticket_type="technical", sla_status="breached", sla_response_breached=True,
        analysis_status="ai",
    )  # fmt: skip
    await seed.ticket(OCT + 7 * day, status="open")  # not analysed yet, unassigned, no SLA
    # Before October: resolved on 2 October (counts as resolved in October, nothing else),
    # and an old open ticket that is part of today's backlog.
    old = await seed.ticket(
        OCT - 5 * day, first_response_after=5, resolution_after=7 * 24 * 60, status="resolved",
        assigned_to=ann, priority="low", ticket_type="other", sla_status="breached",
        analysis_status="ai",
    )  # fmt: skip
    await seed.ticket(
        OCT - 40 * day, status="open", assigned_to=bo, priority="urgent", sla_status="breached"
    )
    # After October: nothing of it counts, except in the backlog.
    await seed.ticket(datetime(2026, 11, 1, tzinfo=UTC), status="open", priority="low")

    # Corrections made in October: priority on two tickets (one of them twice), type on one;
    # the skills of the old ticket were corrected in September, and one in November.
    await seed.correction(a, "priority", OCT + 1 * day)
    await seed.correction(a, "priority", OCT + 2 * day)
    await seed.correction(b, "priority", OCT + 3 * day)
    await seed.correction(b, "ticket_type", OCT + 3 * day)
    await seed.correction(old, "required_skills", OCT - 4 * day)
    await seed.correction(old, "ticket_type", datetime(2026, 11, 2, tzinfo=UTC))

    report = await summary(client, admin, **PERIOD)
    assert report["from"] == "2026-10-01T00:00:00Z"
    assert report["to"] == "2026-11-01T00:00:00Z"
    assert report["created"] == 7
    assert report["resolved"] == 4  # a, b, the 3 October one and the September one
    assert report["backlog"] == {
        "open": 3,
        "in_progress": 1,
        "waiting": 1,
        "unassigned": 2,
        "at_risk": 1,
        "breached": 2,
        "by_priority": {"low": 1, "medium": 1, "high": 0, "urgent": 2, "none": 1},
    }
    # 10, 20, 30, 40, 100: median 30; p90 at 0.9 x 4 = 3.6 -> 40 + 0.6 x 60 = 76
    assert report["first_response_minutes"] == {"median": 30.0, "p90": 76.0}
    # 60, 120, 240, 4320: median 180; p90 at 2.7 -> 240 + 0.7 x 4080 = 3096
    assert report["resolution_minutes"] == {"median": 180.0, "p90": 3096.0}
    assert report["sla"] == {"met": 3, "breached": 2, "compliance": 0.6}
    assert report["by_priority"] == {"low": 1, "medium": 1, "high": 2, "urgent": 2, "none": 1}
    assert report["by_type"] == {
        "bug": 3,
        "feature": 1,
        "support": 1,
        "technical": 1,
        "other": 0,
        "none": 1,
    }
    assert report["by_assignee"] == [
        # open now; resolved in October; breached among October's tickets
        {"user_id": bo, "name": "Bo", "open": 2, "resolved": 1, "breached": 2},
        {"user_id": ann, "name": "Ann", "open": 1, "resolved": 3, "breached": 0},
        # staff without tickets are listed too (the admin has no name: the email stands in)
        {"user_id": people["admin"].id, "name": people["admin"].name or ADMIN_EMAIL,
         "open": 0, "resolved": 0, "breached": 0},
    ]  # fmt: skip
    assert report["ai"] == {
        "analysed": 6,
        "fallback": 2,
        "corrected": {"priority": 2, "ticket_type": 1, "required_skills": 0},
    }

    # Another period: only September's tickets.
    september = await summary(client, admin, **{"from": "2026-09-01", "to": "2026-09-30"})
    assert september["created"] == 1
    assert september["resolved"] == 0
    assert september["first_response_minutes"] == {"median": 5.0, "p90": 5.0}
    assert september["resolution_minutes"] == {"median": 10080.0, "p90": 10080.0}
    assert september["sla"] == {"met": 0, "breached": 1, "compliance": 0.0}
    assert september["ai"]["corrected"] == {"priority": 0, "ticket_type": 0, "required_skills": 1}
    assert september["backlog"] == report["backlog"]  # the backlog is now, whatever the period


async def test_timestamps_with_offsets_bound_the_period_exactly(client, admin, seed):
    at = datetime(2026, 10, 10, 12, 0, tzinfo=UTC)
    await seed.ticket(at, first_response_after=15)
    await seed.ticket(at + timedelta(hours=1), first_response_after=45)

    # 14:00 in Berlin summer time is 12:00 UTC: from is inclusive, to is exclusive.
    both = await summary(
        client, admin, **{"from": "2026-10-10T14:00:00+02:00", "to": "2026-10-10T13:00:01Z"}
    )
    assert both["created"] == 2
    assert both["first_response_minutes"] == {"median": 30.0, "p90": 42.0}
    first = await summary(
        client, admin, **{"from": "2026-10-10T12:00:00", "to": "2026-10-10T13:00:00Z"}
    )
    assert first["created"] == 1
    assert first["from"] == "2026-10-10T12:00:00Z"  # no offset means UTC
    none = await summary(
        client, admin, **{"from": "2026-10-10T12:00:00.000001Z", "to": "2026-10-10T13:00:00Z"}
    )
    assert none["created"] == 0


async def test_an_empty_period_gives_zeros_and_nulls(client, admin, people):
    report = await summary(client, admin, **{"from": "2020-01-01", "to": "2020-01-31"})
    assert report["created"] == 0 and report["resolved"] == 0
    assert report["first_response_minutes"] == {"median": None, "p90": None}
    assert report["resolution_minutes"] == {"median": None, "p90": None}
    assert report["sla"] == {"met": 0, "breached": 0, "compliance": None}
    assert set(report["by_priority"].values()) == {0}
    assert set(report["by_type"].values()) == {0}
    assert report["ai"] == {
        "analysed": 0,
        "fallback": 0,
        "corrected": {"priority": 0, "ticket_type": 0, "required_skills": 0},
    }
    names = sorted(row["name"] for row in report["by_assignee"])
    assert "Ann" in names and "Bo" in names and "Uma" not in names  # staff only
    assert all(
        row["open"] == row["resolved"] == row["breached"] == 0 for row in report["by_assignee"]
    )

    r = await client.get("/admin/reports/summary", params={"format": "csv"}, headers=admin)
    assert r.status_code == 200
    assert list(csv.reader(io.StringIO(r.text))) == [list(CSV_HEADER)]


async def test_the_default_period_is_the_last_30_days(client, admin, seed):
    now = utcnow()
    await seed.ticket(now - timedelta(days=1))
    await seed.ticket(now - timedelta(days=29, hours=23))
    await seed.ticket(now - timedelta(days=31))
    report = await summary(client, admin)
    start = datetime.fromisoformat(report["from"])
    end = datetime.fromisoformat(report["to"])
    assert end - start == timedelta(days=30)
    assert abs((end - now).total_seconds()) < 60
    assert report["created"] == 2

    # Only `to`: the 30 days before it. Only `from`: 30 days from it.
    only_to = await summary(client, admin, to="2026-10-31")
    assert (only_to["from"], only_to["to"]) == ("2026-10-02T00:00:00Z", "2026-11-01T00:00:00Z")
    only_from = await summary(client, admin, **{"from": "2020-03-01"})
    assert (only_from["from"], only_from["to"]) == ("2020-03-01T00:00:00Z", "2020-03-31T00:00:00Z")


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-10-31", "to": "2026-10-01"},  # from after to
        {"from": "2026-10-02T00:00:00Z", "to": "2026-10-01T23:59:59Z"},
        {"from": "2025-01-01", "to": "2026-01-02"},  # 367 days
        {"from": "yesterday"},
        {"to": "2026-13-01"},
        {"from": "2026-10-01T25:00:00"},
        {"from": "9999-12-31"},  # the period would end after year 9999
        {"format": "xlsx"},
        {"from": "2" * 41},
    ],
)
async def test_bad_periods_are_422(client, admin, params):
    r = await client.get("/admin/reports/summary", params=params, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


async def test_a_whole_leap_year_is_allowed(client, admin):
    report = await summary(client, admin, **{"from": "2024-01-01", "to": "2024-12-31"})
    assert report["created"] == 0


async def test_only_admins_see_reports(client, runtime, smtp, people):
    for email in ("ann@example.com", "user@example.com"):
        headers = await sign_in(client, runtime, smtp, email)
        for params in ({}, {"format": "csv"}):
            r = await client.get("/admin/reports/summary", params=params, headers=headers)
            assert r.status_code == 403, r.text
    r = await client.get("/admin/reports/summary")
    assert r.status_code == 401


CSV_HEADER = (
    "id",
    "number",
    "created_at",
    "title",
    "status",
    "priority",
    "ticket_type",
    "source",
    "assignee_name",
    "assignee_email",
    "first_responded_at",
    "resolved_at",
    "first_response_minutes",
    "resolution_minutes",
    "sla_status",
    "analysis_status",
    "analysis_provider",
)


async def test_csv_has_one_row_per_ticket_of_the_period(client, admin, people, seed, runtime):
    async with runtime.db.transaction() as session:
        mallory = await session.get(User, people["bo"].id)
        assert mallory is not None
        mallory.name = '=HYPERLINK("http://evil.example","x")'
    first = await seed.ticket(
        OCT + timedelta(days=2), title="=1+2", first_response_after=12.5,
        resolution_after=90, status="resolved", priority="high", ticket_type="bug",
        assigned_to=people["ann"].id, sla_status="met", analysis_status="ai",
        analysis_provider="gemini", source="email",
    )  # fmt: skip
    second = await seed.ticket(
        OCT + timedelta(days=3), title="+cmd|' /C calc'!A0", assigned_to=people["bo"].id
    )
    third = await seed.ticket(OCT + timedelta(days=1), title="-2 and @SUM(A1)")
    fourth = await seed.ticket(OCT + timedelta(days=4), title='@me plain, "quoted"')
    await seed.ticket(OCT - timedelta(seconds=1), title="September")
    await seed.ticket(datetime(2026, 11, 1, tzinfo=UTC), title="November")

    r = await client.get(
        "/admin/reports/summary", params={**PERIOD, "format": "csv"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        'attachment; filename="tickets-20261001-20261101.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(rows[0].keys()) == CSV_HEADER
    assert [row["id"] for row in rows] == [third, first, second, fourth]  # oldest first
    by_id = {row["id"]: row for row in rows}
    assert by_id[first] == {
        "id": first,
        "number": "1",
        "created_at": "2026-10-03T00:00:00+00:00",
        "title": "'=1+2",
        "status": "resolved",
        "priority": "high",
        "ticket_type": "bug",
        "source": "email",
        "assignee_name": "Ann",
        "assignee_email": "ann@example.com",
        "first_responded_at": "2026-10-03T00:12:30+00:00",
        "resolved_at": "2026-10-03T01:30:00+00:00",
        "first_response_minutes": "12.5",
        "resolution_minutes": "90.0",
        "sla_status": "met",
        "analysis_status": "ai",
        "analysis_provider": "gemini",
    }
    # Formula injection: every cell a spreadsheet would run starts with a quote instead.
    assert by_id[second]["title"] == "'+cmd|' /C calc'!A0"
    assert by_id[second]["assignee_name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert by_id[third]["title"] == "'-2 and @SUM(A1)"
    assert by_id[fourth]["title"] == '\'@me plain, "quoted"'
    assert by_id[third]["assignee_name"] == by_id[third]["first_response_minutes"] == ""
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), row


async def test_csv_streams_many_rows(client, admin, seed, runtime):
    # More rows than one batch: every one arrives, in order, once.
    async with runtime.db.transaction() as session:
        for i in range(1234):
            session.add(
                Ticket(
                    number=10_000 + i,
                    title=f"Bulk {i}",
                    description="x",
                    created_by=seed.creator_id,
                    created_at=OCT + timedelta(minutes=i),
                    updated_at=OCT,
                )
            )
    r = await client.get(
        "/admin/reports/summary", params={**PERIOD, "format": "csv"}, headers=admin
    )
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["title"] for row in rows] == [f"Bulk {i}" for i in range(1234)]

    # The body is produced batch by batch (httpx's ASGI transport gathers it into one, so the
    # response's generator is read here directly): the header, then 500 + 500 + 234 rows.
    period = service.resolve_period("2026-10-01", "2026-10-31")
    chunks = [chunk async for chunk in service.stream_csv(runtime.db, period)]
    assert [chunk.count(b"\r\n") for chunk in chunks] == [1, 500, 500, 234]
    assert b"".join(chunks).decode() == r.text
