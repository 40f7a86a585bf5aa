"""SLA end to end on both engines: the policy endpoints, due times on tickets, the first
response (web and email), the pause while waiting, and the timer jobs that warn and escalate.

Time is the process clock (`ticketing.db.set_clock`), moved forward by the tests: nothing waits.
Sign-in happens before the clock is taken over, so tokens stay valid however far it moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ticketing.db import set_clock
from ticketing.jobs import queue
from ticketing.jobs.models import Job, JobStatus
from ticketing.mail.service import handle_message
from ticketing.tickets.deadlines import SLA_TIMER, timer_key

from .conftest import drain
from .test_mail_inbound import SUPPORT, mail

DEFAULTS = {
    "policies": {
        "urgent": {"first_response_minutes": 60, "resolution_minutes": 240},
        "high": {"first_response_minutes": 240, "resolution_minutes": 1440},
        "medium": {"first_response_minutes": 480, "resolution_minutes": 4320},
        "low": {"first_response_minutes": 1440, "resolution_minutes": 10080},
    },
    "business_hours": None,
    "holidays": [],
    "warning_ratio": 0.8,
}
PY_TICKET = {
    "title": "Python worker crashes with a Postgres error",
    "description": "Our python import job fails with a traceback from postgres.",
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"support_email": SUPPORT, "comment_create_per_minute": 1000}


@pytest.fixture
def clock() -> Iterator[Clock]:
    fake = Clock()
    set_clock(fake)
    yield fake
    set_clock(None)


def ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def file_urgent(client, runtime, actors, requester: str = "alice") -> dict:
    """A ticket for mod_py (python, postgres), made urgent by the admin right after triage."""
    r = await client.post("/tickets/create", json=PY_TICKET, headers=actors[requester])
    assert r.status_code == 201, r.text
    await drain(runtime)
    r = await client.patch(
        f"/tickets/{r.json()['id']}", json={"priority": "urgent"}, headers=actors["admin"]
    )
    assert r.status_code == 200, r.text
    ticket = r.json()
    assert ticket["assigned_to"] == actors.ids["mod_py"]
    return ticket


async def get(client, actors, ticket_id: str, who: str = "admin") -> dict:
    r = await client.get(f"/tickets/{ticket_id}", headers=actors[who])
    assert r.status_code == 200, r.text
    return r.json()


async def events(client, actors, ticket_id: str, who: str = "admin") -> list[dict]:
    r = await client.get(
        f"/tickets/{ticket_id}/events", params={"order": "oldest"}, headers=actors[who]
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


def sla_events(items: list[dict]) -> list[tuple[str, str]]:
    return [(e["kind"], e["data"]["target"]) for e in items if e["kind"].startswith("sla_")]


# ---- the policy --------------------------------------------------------------------------


async def test_policy_defaults_replace_and_403_for_others(client, actors):
    r = await client.get("/admin/sla", headers=actors["admin"])
    assert r.status_code == 200 and r.json() == DEFAULTS
    for who in ("mod_py", "alice"):
        assert (await client.get("/admin/sla", headers=actors[who])).status_code == 403
        assert (
            await client.put("/admin/sla", json=DEFAULTS, headers=actors[who])
        ).status_code == 403

    policy = {
        "policies": {"urgent": {"first_response_minutes": 30, "resolution_minutes": 120}},
        "business_hours": {
            "timezone": "Europe/Berlin",
            "days": [{"day": d, "start": "09:00", "end": "17:00"} for d in range(5)],
        },
        "holidays": ["2026-12-25", "2026-12-24", "2026-12-25"],
        "warning_ratio": 0.5,
    }
    r = await client.put("/admin/sla", json=policy, headers=actors["admin"])
    assert r.status_code == 200, r.text
    stored = (await client.get("/admin/sla", headers=actors["admin"])).json()
    assert stored == r.json()
    assert stored["holidays"] == ["2026-12-24", "2026-12-25"]  # sorted, once each
    assert list(stored["policies"]) == ["urgent"]  # the others have no SLA now
    assert stored["business_hours"]["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize(
    "change",
    [
        {"policies": {"urgent": {"first_response_minutes": 0, "resolution_minutes": 240}}},
        {"policies": {"urgent": {"first_response_minutes": 1.5, "resolution_minutes": 240}}},
        {"policies": {"urgent": {"first_response_minutes": "60", "resolution_minutes": 240}}},
        {"policies": {"urgent": {"first_response_minutes": 60}}},
        {"policies": {"critical": {"first_response_minutes": 60, "resolution_minutes": 240}}},
        {"warning_ratio": 1},
        {"warning_ratio": 0},
        {"holidays": ["2026-02-30"]},
        {"holidays": ["Christmas"]},
        {"holidays": [20261225]},
        {
            "business_hours": {
                "timezone": "Mars/Olympus",
                "days": [{"day": 0, "start": "09:00", "end": "17:00"}],
            }
        },
        {
            "business_hours": {
                "timezone": "/etc/localtime",
                "days": [{"day": 0, "start": "09:00", "end": "17:00"}],
            }
        },
        {"business_hours": {"timezone": "UTC", "days": []}},
        {
            "business_hours": {
                "timezone": "UTC",
                "days": [{"day": 7, "start": "09:00", "end": "17:00"}],
            }
        },
        {
            "business_hours": {
                "timezone": "UTC",
                "days": [{"day": 1, "start": "9:00", "end": "17:00"}],
            }
        },
        {
            "business_hours": {
                "timezone": "UTC",
                "days": [{"day": 1, "start": "09:00", "end": "09:00"}],
            }
        },
        {"unknown": True},
    ],
)
async def test_invalid_policies_are_422_and_change_nothing(client, actors, change):
    r = await client.put("/admin/sla", json=DEFAULTS | change, headers=actors["admin"])
    assert r.status_code == 422, r.text
    assert (await client.get("/admin/sla", headers=actors["admin"])).json() == DEFAULTS


# ---- due times -----------------------------------------------------------------------------


async def test_due_times_follow_the_priority_from_creation(client, runtime, actors, clock):
    r = await client.post("/tickets/create", json=PY_TICKET, headers=actors["alice"])
    created = r.json()
    assert created["sla_status"] is None and created["first_response_due_at"] is None
    await drain(runtime)
    ticket = await get(client, actors, created["id"])
    start = ts(ticket["created_at"])
    minutes = DEFAULTS["policies"][ticket["priority"]]  # type: ignore[index]
    assert ts(ticket["first_response_due_at"]) == start + timedelta(
        minutes=minutes["first_response_minutes"]
    )
    assert ts(ticket["resolution_due_at"]) == start + timedelta(
        minutes=minutes["resolution_minutes"]
    )
    assert ticket["sla_status"] == "on_track" and ticket["first_responded_at"] is None

    clock.advance(minutes=30)
    r = await client.patch(
        f"/tickets/{created['id']}", json={"priority": "urgent"}, headers=actors["admin"]
    )
    ticket = r.json()
    # From the start, not from the change.
    assert ts(ticket["first_response_due_at"]) == start + timedelta(minutes=60)
    assert ts(ticket["resolution_due_at"]) == start + timedelta(minutes=240)
    # The requester sees the due times and the status too.
    mine = await get(client, actors, created["id"], "alice")
    assert mine["first_response_due_at"] == ticket["first_response_due_at"]
    assert mine["sla_status"] == "on_track"


async def test_first_response_is_the_first_public_staff_comment(client, runtime, actors, clock):
    ticket = await file_urgent(client, runtime, actors)
    tid = ticket["id"]
    clock.advance(minutes=5)
    await client.post(
        f"/tickets/{tid}/comments", json={"body": "More logs"}, headers=actors["alice"]
    )
    await client.post(
        f"/tickets/{tid}/comments",
        json={"body": "looking", "internal": True},
        headers=actors["mod_py"],
    )
    assert (await get(client, actors, tid))["first_responded_at"] is None
    clock.advance(minutes=5)
    answered_at = clock.now
    r = await client.post(
        f"/tickets/{tid}/comments", json={"body": "On it"}, headers=actors["mod_py"]
    )
    assert r.status_code == 201
    clock.advance(minutes=5)
    await client.post(f"/tickets/{tid}/comments", json={"body": "Again"}, headers=actors["mod_py"])
    ticket = await get(client, actors, tid)
    assert ts(ticket["first_responded_at"]) == answered_at
    assert ticket["sla_status"] == "on_track"
    # The response target is met: the warning at 48 minutes never comes for it.
    clock.advance(minutes=50)
    await drain(runtime)
    assert sla_events(await events(client, actors, tid)) == []


async def test_first_response_by_email_reply(client, runtime, smtp, actors, clock):
    ticket = await file_urgent(client, runtime, actors)
    [assigned] = smtp.to("mod.py@example.com")
    clock.advance(minutes=20)
    reply = mail(
        "mod.py@example.com",
        f"Re: {assigned.subject}",
        "Please restart the worker.",
        in_reply_to=str(assigned.message["Message-ID"]),
    )
    entry = await handle_message(runtime.db, runtime.settings, reply, "7:1")
    assert entry.outcome == "comment"
    answered = await get(client, actors, ticket["id"])
    assert ts(answered["first_responded_at"]) == clock.now


async def test_waiting_pauses_the_resolution_clock(client, runtime, actors, clock):
    ticket = await file_urgent(client, runtime, actors)
    tid, due = ticket["id"], ts(ticket["resolution_due_at"])
    await client.post(
        f"/tickets/{tid}/comments", json={"body": "Which version?"}, headers=actors["mod_py"]
    )
    clock.advance(minutes=30)
    r = await client.patch(f"/tickets/{tid}", json={"status": "waiting"}, headers=actors["mod_py"])
    assert r.status_code == 200
    clock.advance(minutes=500)  # long past the 240-minute target, but waiting on the requester
    await drain(runtime)
    waiting = await get(client, actors, tid)
    assert waiting["sla_status"] == "on_track"
    assert sla_events(await events(client, actors, tid)) == []
    # The requester answers: open again, and the due time moved out by the 500 minutes.
    await client.post(f"/tickets/{tid}/comments", json={"body": "3.12"}, headers=actors["alice"])
    resumed = await get(client, actors, tid)
    assert resumed["status"] == "open"
    assert ts(resumed["resolution_due_at"]) == due + timedelta(minutes=500)
    assert resumed["sla_status"] == "on_track"


async def test_resolved_in_time_is_met(client, runtime, actors, clock):
    ticket = await file_urgent(client, runtime, actors)
    tid = ticket["id"]
    clock.advance(minutes=10)
    await client.post(f"/tickets/{tid}/comments", json={"body": "Fixed"}, headers=actors["mod_py"])
    r = await client.patch(f"/tickets/{tid}", json={"status": "resolved"}, headers=actors["mod_py"])
    assert r.json()["sla_status"] == "met"
    clock.advance(days=2)
    await drain(runtime)
    assert (await get(client, actors, tid))["sla_status"] == "met"


# ---- warnings and breaches ------------------------------------------------------------------


async def test_at_risk_then_breached_mail_exactly_once(client, runtime, smtp, actors, clock):
    ticket = await file_urgent(client, runtime, actors)
    tid, number = ticket["id"], ticket["number"]
    await drain(runtime)
    smtp.clear()

    clock.advance(minutes=47)
    await drain(runtime)
    assert smtp.messages == [] and (await get(client, actors, tid))["sla_status"] == "on_track"

    clock.advance(minutes=2)  # 49 minutes: past 80 % of the 60-minute response target
    await drain(runtime)
    [warning] = smtp.messages
    assert warning.recipients == ["mod.py@example.com"]
    assert warning.subject.strip().startswith(f"[#{number}] SLA first response due soon")
    assert warning.message["In-Reply-To"] and warning.message["Auto-Submitted"]
    assert "first response" in warning.text and "first response" in warning.html
    assert (await get(client, actors, tid))["sla_status"] == "at_risk"
    for _ in range(2):  # running the timers again raises nothing more
        await drain(runtime)
    assert len(smtp.messages) == 1

    clock.advance(minutes=12)  # 61 minutes: missed
    await drain(runtime)
    breach = [m for m in smtp.messages if "missed" in m.subject]
    assert sorted(r for m in breach for r in m.recipients) == [
        "admin@example.com",
        "mod.py@example.com",
    ]
    assert all(
        m.subject.strip().startswith(f"[#{number}] SLA first response target missed")
        for m in breach
    )
    assert (await get(client, actors, tid))["sla_status"] == "breached"
    await drain(runtime)
    assert len(smtp.messages) == 3

    # Staff see the events; the requester does not.
    assert sla_events(await events(client, actors, tid)) == [
        ("sla_warning", "first_response"),
        ("sla_breached", "first_response"),
    ]
    assert sla_events(await events(client, actors, tid, "alice")) == []

    # Answering now does not undo the breach.
    await client.post(f"/tickets/{tid}/comments", json={"body": "Sorry"}, headers=actors["mod_py"])
    assert (await get(client, actors, tid))["sla_status"] == "breached"


async def test_a_timer_run_twice_raises_nothing_twice(client, runtime, smtp, actors, clock):
    ticket = await file_urgent(client, runtime, actors)
    tid = ticket["id"]
    await drain(runtime)
    smtp.clear()
    clock.advance(minutes=50)
    # As after a crash between claim and commit, or a second worker: two timer jobs are due.
    async with runtime.db.transaction() as session:
        queue.enqueue(session, SLA_TIMER, {"ticket_id": tid}, key=timer_key(tid))
        queue.enqueue(session, SLA_TIMER, {"ticket_id": tid}, key=timer_key(tid))
    await drain(runtime)
    assert len(smtp.to("mod.py@example.com")) == 1
    assert sla_events(await events(client, actors, tid)) == [("sla_warning", "first_response")]
    # Exactly one timer is planned, for the breach at 60 minutes.
    async with runtime.db.transaction() as session:
        planned = (
            await session.scalars(
                select(Job).where(Job.key == timer_key(tid), Job.status == JobStatus.queued)
            )
        ).all()
    assert len(planned) == 1
    assert planned[0].run_after == ts(ticket["first_response_due_at"])


async def test_a_priority_change_replans_the_timer(client, runtime, actors, clock):
    ticket = await file_urgent(client, runtime, actors)
    tid = ticket["id"]
    r = await client.patch(f"/tickets/{tid}", json={"priority": "low"}, headers=actors["admin"])
    low = r.json()
    async with runtime.db.transaction() as session:
        planned = (
            await session.scalars(
                select(Job.run_after).where(
                    Job.key == timer_key(tid), Job.status == JobStatus.queued
                )
            )
        ).all()
    created = ts(low["created_at"])
    assert planned == [created + timedelta(minutes=1440 * 0.8)]
    clock.advance(minutes=70)  # past the urgent targets: nothing, the ticket is low now
    await drain(runtime)
    assert (await get(client, actors, tid))["sla_status"] == "on_track"
    assert sla_events(await events(client, actors, tid)) == []


async def test_a_breached_ticket_of_someone_unavailable_is_routed_again(
    client, runtime, smtp, actors, clock
):
    ticket = await file_urgent(client, runtime, actors)
    tid = ticket["id"]
    r = await client.patch(
        f"/admin/users/{actors.ids['mod_py']}", json={"is_active": False}, headers=actors["admin"]
    )
    assert r.status_code == 200
    await drain(runtime)
    smtp.clear()
    clock.advance(minutes=61)
    await drain(runtime)
    moved = await get(client, actors, tid)
    assert moved["sla_status"] == "breached"
    assert moved["assigned_to"] not in (None, actors.ids["mod_py"])
    assert "SLA breached" in moved["assignment_reason"]
    # The deactivated assignee gets no mail; the admins do.
    assert smtp.to("mod.py@example.com") == []
    assert any("missed" in m.subject for m in smtp.to("admin@example.com"))


async def test_a_policy_change_recomputes_open_tickets_in_the_background(
    client, runtime, actors, clock
):
    ticket = await file_urgent(client, runtime, actors)
    policy = DEFAULTS | {
        "policies": {"urgent": {"first_response_minutes": 10, "resolution_minutes": 20}}
    }
    r = await client.put("/admin/sla", json=policy, headers=actors["admin"])
    assert r.status_code == 200
    assert (await get(client, actors, ticket["id"]))["first_response_due_at"] == ticket[
        "first_response_due_at"
    ]  # not in the request
    await drain(runtime)
    created = ts(ticket["created_at"])
    after = await get(client, actors, ticket["id"])
    assert ts(after["first_response_due_at"]) == created + timedelta(minutes=10)
    assert ts(after["resolution_due_at"]) == created + timedelta(minutes=20)
    # Dropping the priority from the policy takes the SLA away.
    r = await client.put("/admin/sla", json=DEFAULTS | {"policies": {}}, headers=actors["admin"])
    await drain(runtime)
    gone = await get(client, actors, ticket["id"])
    assert gone["sla_status"] is None and gone["resolution_due_at"] is None


# ---- lists ---------------------------------------------------------------------------------


async def test_filter_by_sla_status_and_most_urgent_first(client, runtime, actors, clock):
    admin = actors["admin"]
    ids = {}
    for priority in ("low", "urgent", "high", "medium"):
        r = await client.post("/tickets/create", json=PY_TICKET, headers=actors["alice"])
        ids[priority] = r.json()["id"]
        clock.advance(seconds=1)
    finished = (await client.post("/tickets/create", json=PY_TICKET, headers=actors["bob"])).json()
    await drain(runtime)
    for priority, tid in ids.items():
        r = await client.patch(f"/tickets/{tid}", json={"priority": priority}, headers=admin)
        assert r.status_code == 200
    # The fifth is done: nothing is due on it any more, so it comes last.
    done = finished["id"]
    r = await client.patch(f"/tickets/{done}", json={"status": "resolved"}, headers=admin)
    assert r.status_code == 200 and r.json()["sla_status"] == "met"
    clock.advance(minutes=50)
    await drain(runtime)

    order = []
    cursor = None
    while True:
        params = {"order": "due", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/tickets", params=params, headers=admin)).json()
        order += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert order == [ids["urgent"], ids["high"], ids["medium"], ids["low"], finished["id"]]

    r = await client.get("/tickets", params={"sla_status": "at_risk"}, headers=admin)
    assert [t["id"] for t in r.json()["items"]] == [ids["urgent"]]
    r = await client.get(
        "/moderator/tickets",
        params={"sla_status": "on_track", "order": "due"},
        headers=actors["mod_py"],
    )
    assert [t["id"] for t in r.json()["items"]] == [ids["high"], ids["medium"], ids["low"]]
    assert (
        await client.get("/tickets", params={"sla_status": "late"}, headers=admin)
    ).status_code == 422
    assert (
        await client.get("/tickets", params={"order": "due", "cursor": "bm9wZQ"}, headers=admin)
    ).status_code == 422


async def test_the_resolution_target_warns_once_of_its_own(client, runtime, smtp, actors, clock):
    ticket = await file_urgent(client, runtime, actors)
    tid = ticket["id"]
    await client.post(f"/tickets/{tid}/comments", json={"body": "On it"}, headers=actors["mod_py"])
    await drain(runtime)
    smtp.clear()
    clock.advance(minutes=193)  # past 80 % of the 240-minute resolution target
    await drain(runtime)
    [warning] = smtp.messages
    assert warning.recipients == ["mod.py@example.com"]
    assert "SLA resolution due soon" in warning.subject
    assert sla_events(await events(client, actors, tid)) == [("sla_warning", "resolution")]
    assert (await get(client, actors, tid))["sla_status"] == "at_risk"
    # Resolved in time after all: met, and no breach follows.
    r = await client.patch(f"/tickets/{tid}", json={"status": "resolved"}, headers=actors["mod_py"])
    assert r.json()["sla_status"] == "met"
    clock.advance(hours=5)
    await drain(runtime)
    assert sla_events(await events(client, actors, tid)) == [("sla_warning", "resolution")]
