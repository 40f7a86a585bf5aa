"""Availability and capacity: the user fields and who may set them, routing that skips people
who are away, off shift or full, tickets that wait, and the offer job that hands them out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from ticketing import flows
from ticketing.jobs import queue
from ticketing.jobs.models import Job
from ticketing.routing import offers
from ticketing.routing import service as routing
from ticketing.runtime import build_runtime
from ticketing.tickets import service as tickets_service
from ticketing.tickets.models import EventKind, TicketEvent
from ticketing.tickets.schemas import TicketCreate
from ticketing.users import repository as users_repo
from ticketing.users.availability import Availability, availability, is_available
from ticketing.users.models import User
from ticketing.vocabulary import Role

from .conftest import create_user, drain
from .test_tickets import PY_TICKET, file, get

ME = "/auth/me"


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def hours_around_now(tz: str) -> list[dict[str, object]]:
    """One period from half an hour ago to half an hour ahead, in `tz`'s wall-clock time."""
    now = datetime.now(ZoneInfo(tz))
    start, end = now - timedelta(minutes=30), now + timedelta(minutes=30)
    return [{"day": start.weekday(), "start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}]


async def patch_user(client, actors, who: str, body: dict[str, object]) -> dict[str, object]:
    r = await client.patch(f"/admin/users/{actors.ids[who]}", json=body, headers=actors["admin"])
    assert r.status_code == 200, r.text
    return r.json()


async def everyone_away(client, actors) -> None:
    for who in ("admin", "mod_py", "mod_web"):
        await patch_user(client, actors, who, {"away_until": later(days=1)})


async def assigned_events(client, actors, ticket_id: str) -> list[dict[str, object]]:
    r = await client.get(f"/tickets/{ticket_id}/events", headers=actors["admin"])
    return [e for e in r.json()["items"] if e["kind"] == "assigned"]


# ---- the fields ------------------------------------------------------------------------------


async def test_user_shape_has_the_availability_fields(client, actors):
    me = (await client.get(ME, headers=actors["mod_py"])).json()
    assert me["timezone"] == "UTC"
    assert me["working_hours"] == []
    assert me["away_until"] is None and me["max_open_tickets"] is None
    assert me["available"] is True
    listed = (await client.get("/admin/users", headers=actors["admin"])).json()["items"]
    assert all("available" in u and "max_open_tickets" in u for u in listed)


async def test_anyone_sets_their_own_availability(client, actors):
    hours = [
        {"day": 0, "start": "09:00", "end": "17:00"},
        {"day": 4, "start": "22:00", "end": "06:00"},
    ]
    away = later(days=3)
    r = await client.patch(
        ME,
        json={
            "name": "Py Mod",
            "timezone": "Europe/Berlin",
            "working_hours": hours,
            "away_until": away,
        },
        headers=actors["mod_py"],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "Py Mod" and body["timezone"] == "Europe/Berlin"
    assert body["working_hours"] == hours
    assert datetime.fromisoformat(body["away_until"]) == datetime.fromisoformat(away)
    assert body["available"] is False  # away
    assert body["role"] == "moderator" and body["skills"] == ["python", "postgresql"]

    # The admin sees the same, and clearing away_until brings them back (hours permitting).
    seen = (
        await client.get(f"/admin/users/{actors.ids['mod_py']}", headers=actors["admin"])
    ).json()
    assert seen["timezone"] == "Europe/Berlin" and seen["away_until"] is not None
    r = await client.patch(
        ME, json={"away_until": None, "working_hours": []}, headers=actors["mod_py"]
    )
    assert r.json()["away_until"] is None and r.json()["available"] is True

    # A plain user may set theirs too.
    r = await client.patch(ME, json={"timezone": "Asia/Tokyo"}, headers=actors["alice"])
    assert r.status_code == 200 and r.json()["timezone"] == "Asia/Tokyo"


@pytest.mark.parametrize(
    "body",
    [
        {"timezone": "Mars/Olympus_Mons"},
        {"timezone": "../../etc/passwd"},
        {"timezone": ""},
        {"timezone": None},
        {"working_hours": None},
        {"working_hours": [{"day": 7, "start": "09:00", "end": "17:00"}]},
        {"working_hours": [{"day": -1, "start": "09:00", "end": "17:00"}]},
        {"working_hours": [{"day": 0, "start": "25:00", "end": "26:00"}]},
        {"working_hours": [{"day": 0, "start": "9:00", "end": "17:00"}]},
        {"working_hours": [{"day": 0, "start": "09:00", "end": "09:00"}]},
        {"working_hours": [{"day": 0, "start": "24:00", "end": "09:00"}]},
        {"working_hours": [{"day": 0, "start": "09:00"}]},
        {"working_hours": [{"day": 0, "start": "09:00", "end": "17:00", "tz": "UTC"}]},
        {"working_hours": "always"},
        {"working_hours": [{"day": 0, "start": "09:00", "end": "17:00"}] * 51},
        {"away_until": "tomorrow"},
        {"away_until": "2030-01-01T10:00:00"},  # no offset: ambiguous
        {"away_until": "9999-12-31T23:00:00-12:00"},  # past year 9999 in UTC
        {"max_open_tickets": 5},  # an admin's to set
        {"role": "admin"},
        {"skills": ["python"]},
        {"is_active": False},
        {"email": "other@example.com"},
    ],
)
async def test_auth_me_refuses_bad_values_and_what_is_not_yours(client, actors, body):
    r = await client.patch(ME, json=body, headers=actors["mod_py"])
    assert r.status_code == 422, r.text
    me = (await client.get(ME, headers=actors["mod_py"])).json()
    assert me["role"] == "moderator" and me["max_open_tickets"] is None
    assert me["timezone"] == "UTC" and me["working_hours"] == [] and me["away_until"] is None


async def test_auth_me_needs_a_token(client):
    assert (await client.patch(ME, json={"name": "x"})).status_code == 401


async def test_admin_sets_all_four_and_the_cap_is_validated(client, actors):
    hours = [{"day": 2, "start": "08:00", "end": "12:30"}]
    body = await patch_user(
        client,
        actors,
        "mod_web",
        {
            "timezone": "America/New_York",
            "working_hours": hours,
            "away_until": later(hours=2),
            "max_open_tickets": 3,
        },
    )
    assert body["timezone"] == "America/New_York" and body["working_hours"] == hours
    assert body["max_open_tickets"] == 3 and body["available"] is False
    body = await patch_user(client, actors, "mod_web", {"max_open_tickets": None})
    assert body["max_open_tickets"] is None and body["timezone"] == "America/New_York"
    assert (await patch_user(client, actors, "mod_web", {"max_open_tickets": 0}))[
        "max_open_tickets"
    ] == 0
    uid = actors.ids["mod_web"]
    for bad in (-1, 1.5, "3", True, 10**12):
        r = await client.patch(
            f"/admin/users/{uid}", json={"max_open_tickets": bad}, headers=actors["admin"]
        )
        assert r.status_code == 422, (bad, r.text)
    for bad in ({"timezone": "Nowhere"}, {"working_hours": [{"day": 9}]}, {"timezone": None}):
        r = await client.patch(f"/admin/users/{uid}", json=bad, headers=actors["admin"])
        assert r.status_code == 422, (bad, r.text)
    # Moderators cannot use the admin route to set their own cap.
    r = await client.patch(
        f"/admin/users/{uid}", json={"max_open_tickets": 99}, headers=actors["mod_web"]
    )
    assert r.status_code == 403


def test_is_available_rules():
    class Person:
        def __init__(self, **kw: object) -> None:
            self.is_active = True
            self.away_until = None
            self.timezone = "UTC"
            self.working_hours: list[dict[str, object]] = []
            self.__dict__.update(kw)

    monday_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday
    assert is_available(Person(), monday_10)
    assert availability(Person(is_active=False), monday_10) == Availability.inactive
    assert availability(Person(away_until=monday_10 + timedelta(seconds=1)), monday_10) == "away"
    assert is_available(Person(away_until=monday_10), monday_10)  # away until now: back
    office = [{"day": 0, "start": "09:00", "end": "17:00"}]
    assert is_available(Person(working_hours=office), monday_10)
    # The same hours in Tokyo: 10:00 UTC is 19:00 there.
    tokyo = Person(working_hours=office, timezone="Asia/Tokyo")
    assert availability(tokyo, monday_10) == Availability.off_shift
    assert is_available(tokyo, datetime(2026, 11, 30, 1, 0, tzinfo=UTC))
    # A night shift from Sunday 22:00 runs into Monday morning.
    night = Person(working_hours=[{"day": 6, "start": "22:00", "end": "06:00"}])
    assert is_available(night, datetime(2026, 11, 30, 5, 59, tzinfo=UTC))
    assert not is_available(night, datetime(2026, 11, 30, 6, 0, tzinfo=UTC))
    # Stored garbage in the zone does not crash: treated as UTC.
    assert is_available(Person(timezone="Not/AZone", working_hours=office), monday_10)


# ---- routing -----------------------------------------------------------------------------


async def test_an_away_moderator_is_skipped(client, runtime, actors):
    await patch_user(client, actors, "mod_py", {"away_until": later(days=2)})
    t = await file(client, actors["alice"])
    await drain(runtime)
    ticket = await get(client, actors["admin"], t["id"])
    assert ticket["assigned_to"] == actors.ids["admin"]
    assert ticket["assignment_reason"].startswith("no available moderator has python")

    # Back (away_until in the past counts as back): the next one goes to them again.
    await patch_user(client, actors, "mod_py", {"away_until": later(minutes=-1)})
    t = await file(client, actors["bob"])
    await drain(runtime)
    assert (await get(client, actors["admin"], t["id"]))["assigned_to"] == actors.ids["mod_py"]


async def test_working_hours_count_in_the_persons_time_zone(client, runtime, actors):
    # Both moderators can do python and work "the same hours", one in Tokyo, one in New York:
    # only the one whose zone makes those hours now is on shift.
    window = hours_around_now("Asia/Tokyo")
    await patch_user(client, actors, "mod_web", {"skills": ["python", "postgresql"]})
    # mod_py already has a ticket, so only the hours can explain them winning the next one.
    earlier = await file(client, actors["bob"])
    await drain(runtime)
    r = await client.patch(
        f"/tickets/{earlier['id']}",
        json={"assigned_to": actors.ids["mod_py"]},
        headers=actors["admin"],
    )
    assert r.status_code == 200
    await patch_user(client, actors, "mod_py", {"timezone": "Asia/Tokyo", "working_hours": window})
    await patch_user(
        client, actors, "mod_web", {"timezone": "America/New_York", "working_hours": window}
    )
    users = (await client.get("/admin/users", headers=actors["admin"])).json()["items"]
    on_shift = {u["email"]: u["available"] for u in users}
    assert on_shift["mod.py@example.com"] is True and on_shift["mod.web@example.com"] is False
    first = await file(client, actors["alice"])
    await drain(runtime)
    ticket = await get(client, actors["admin"], first["id"])
    assert ticket["assigned_to"] == actors.ids["mod_py"]
    assert ticket["assignment_reason"] == "matched skills: python, postgresql; 1 open ticket"


async def test_routing_with_an_injected_clock_follows_shifts_across_zones(runtime):
    tokyo = await create_user(runtime, "tokyo@example.com", Role.moderator, ["python"])
    york = await create_user(runtime, "york@example.com", Role.moderator, ["python"])
    office = [{"day": 0, "start": "09:00", "end": "17:00"}]  # Mondays
    async with runtime.db.transaction() as session:
        for user, tz in ((tokyo, "Asia/Tokyo"), (york, "America/New_York")):
            row = await users_repo.get(session, user.id)
            assert row is not None
            row.timezone, row.working_hours = tz, office
    tokyo_morning = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # Mon 10:00 in Tokyo
    york_morning = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # Mon 10:00 in New York
    night = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # both off shift; no admin exists
    async with runtime.db.transaction() as session:
        d = await routing.choose_assignee(session, ["python"], now=tokyo_morning)
        assert d.assignee is not None and d.assignee.id == tokyo.id
        d = await routing.choose_assignee(session, ["python"], now=york_morning)
        assert d.assignee is not None and d.assignee.id == york.id
        d = await routing.choose_assignee(session, ["python"], now=night)
        assert d.assignee is None
        assert d.reason == "waiting: nobody available (2 off shift)"


async def test_the_cap_is_respected(client, runtime, actors):
    await patch_user(client, actors, "mod_web", {"skills": ["python"]})
    await patch_user(client, actors, "mod_py", {"max_open_tickets": 1})
    ids = []
    for i in range(4):
        t = await file(
            client, actors["alice"], {"title": f"python bug {i}", "description": "python"}
        )
        ids.append(t["id"])
    await drain(runtime)
    owners = [(await get(client, actors["admin"], i))["assigned_to"] for i in ids]
    assert owners.count(actors.ids["mod_py"]) == 1
    assert owners.count(actors.ids["mod_web"]) == 3


async def test_nobody_can_take_it_so_it_waits_and_says_why(client, runtime, smtp, actors):
    await patch_user(client, actors, "admin", {"away_until": later(days=1)})
    await patch_user(
        client,
        actors,
        "mod_py",
        {
            "working_hours": [
                {"day": (datetime.now(UTC).weekday() + 3) % 7, "start": "09:00", "end": "10:00"}
            ]
        },
    )
    await patch_user(client, actors, "mod_web", {"max_open_tickets": 0})
    smtp.clear()
    t = await file(client, actors["alice"])
    await drain(runtime)
    ticket = await get(client, actors["admin"], t["id"])
    assert ticket["assigned_to"] is None and ticket["status"] == "open"
    assert ticket["assignment_reason"] == (
        "waiting: nobody available (1 away, 1 off shift, 1 at capacity)"
    )
    events = (await client.get(f"/tickets/{t['id']}/events", headers=actors["admin"])).json()
    assert any(e["kind"] == "unassigned" for e in events["items"])
    for staff in ("admin@example.com", "mod.py@example.com", "mod.web@example.com"):
        assert smtp.to(staff) == []
    # The requester sees the ticket but not why it waits.
    mine = await get(client, actors["alice"], t["id"])
    assert mine["assignment_reason"] is None


async def test_the_requester_is_never_given_their_own_waiting_ticket(client, runtime, actors):
    await patch_user(client, actors, "admin", {"away_until": later(days=1)})
    await patch_user(client, actors, "mod_web", {"away_until": later(days=1)})
    t = await file(client, actors["mod_py"])  # the only one available files it
    await drain(runtime)
    ticket = await get(client, actors["admin"], t["id"])
    assert ticket["assigned_to"] is None
    assert ticket["assignment_reason"] == "waiting: nobody available (2 away)"
    assert await flows.offer_waiting_tickets(runtime) == 0
    # mod_web is back but has no python and there is still no admin: it keeps waiting.
    await patch_user(client, actors, "mod_web", {"away_until": None})
    await drain(runtime)
    ticket = await get(client, actors["admin"], t["id"])
    assert ticket["assigned_to"] is None
    assert ticket["assignment_reason"] == (
        "waiting: no available moderator has python, postgresql and no admin is available (1 away)"
    )
    await patch_user(client, actors, "admin", {"away_until": None})
    await drain(runtime)
    ticket = await get(client, actors["admin"], t["id"])
    assert ticket["assigned_to"] == actors.ids["admin"]


# ---- offering waiting tickets again ------------------------------------------------------


async def test_a_waiting_ticket_goes_to_whoever_comes_back(client, runtime, smtp, actors):
    await everyone_away(client, actors)
    t = await file(client, actors["alice"])
    await drain(runtime)
    assert (await get(client, actors["admin"], t["id"]))["assigned_to"] is None
    smtp.clear()

    # mod_py comes back through their own availability form: an offer runs at once.
    r = await client.patch(ME, json={"away_until": None}, headers=actors["mod_py"])
    assert r.status_code == 200 and r.json()["available"] is True
    async with runtime.db.transaction() as session:
        assert await queue.has_queued(session, offers.OFFER_NOW_KEY)
    await drain(runtime)
    ticket = await get(client, actors["admin"], t["id"])
    assert ticket["assigned_to"] == actors.ids["mod_py"]
    assert ticket["assignment_reason"].startswith("matched skills: python")
    [event] = await assigned_events(client, actors, t["id"])
    assert event["data"]["to"] == actors.ids["mod_py"]
    [mail] = smtp.to("mod.py@example.com")
    assert PY_TICKET["title"] in mail.subject


async def test_a_resolved_ticket_frees_room_for_a_waiting_one(client, runtime, smtp, actors):
    for who in ("admin", "mod_web"):
        await patch_user(client, actors, who, {"away_until": later(days=1)})
    await patch_user(client, actors, "mod_py", {"max_open_tickets": 1})
    first = await file(client, actors["alice"])
    await drain(runtime)
    second = await file(client, actors["bob"])
    await drain(runtime)
    assert (await get(client, actors["admin"], first["id"]))["assigned_to"] == actors.ids["mod_py"]
    waiting = await get(client, actors["admin"], second["id"])
    assert waiting["assigned_to"] is None
    assert waiting["assignment_reason"] == "waiting: nobody available (2 away, 1 at capacity)"

    # Moving the first to "waiting" (on the requester) frees nothing: it still counts.
    r = await client.patch(
        f"/tickets/{first['id']}", json={"status": "waiting"}, headers=actors["mod_py"]
    )
    assert r.status_code == 200
    await drain(runtime)
    assert (await get(client, actors["admin"], second["id"]))["assigned_to"] is None

    smtp.clear()
    r = await client.patch(
        f"/tickets/{first['id']}", json={"status": "resolved"}, headers=actors["mod_py"]
    )
    assert r.status_code == 200
    await drain(runtime)
    ticket = await get(client, actors["admin"], second["id"])
    assert ticket["assigned_to"] == actors.ids["mod_py"]
    assert len(smtp.to("mod.py@example.com")) == 1


async def test_a_new_staff_member_takes_waiting_tickets(client, runtime, actors):
    await everyone_away(client, actors)
    t = await file(client, actors["alice"])
    await drain(runtime)
    r = await client.post(
        "/admin/users",
        json={"email": "newmod@example.com", "role": "moderator", "skills": ["python"]},
        headers=actors["admin"],
    )
    assert r.status_code == 201
    await drain(runtime)
    assert (await get(client, actors["admin"], t["id"]))["assigned_to"] == r.json()["id"]


async def test_most_urgent_then_oldest_first(client, runtime, actors):
    await everyone_away(client, actors)
    priorities = ["low", "high", "urgent", "urgent", "medium"]
    ids = []
    for i, priority in enumerate(priorities):
        t = await file(
            client, actors["alice"], {"title": f"python crash {i}", "description": "python"}
        )
        await drain(runtime)
        r = await client.patch(
            f"/tickets/{t['id']}", json={"priority": priority}, headers=actors["admin"]
        )
        assert r.status_code == 200
        ids.append(t["id"])
    expected = [ids[2], ids[3], ids[1], ids[4], ids[0]]  # urgent (older first), high, medium, low

    taken: list[str] = []
    for cap in range(1, len(ids) + 1):
        await patch_user(client, actors, "mod_py", {"away_until": None, "max_open_tickets": cap})
        await drain(runtime)
        now_assigned = [
            i for i in ids if (await get(client, actors["admin"], i))["assigned_to"] is not None
        ]
        new = [i for i in now_assigned if i not in taken]
        assert len(new) == 1, (cap, new)
        taken += new
    assert taken == expected


async def test_two_offer_runs_at_once_never_give_a_ticket_twice(client, runtime, settings, actors):
    await everyone_away(client, actors)
    ids = []
    for i in range(10):
        t = await file(
            client, actors["alice"], {"title": f"python job {i}", "description": "python"}
        )
        ids.append(t["id"])
    await drain(runtime)
    await patch_user(client, actors, "mod_web", {"skills": ["python"]})
    for who in ("mod_py", "mod_web"):
        await patch_user(client, actors, who, {"away_until": None, "max_open_tickets": 3})

    # Two runs from separate engines, as two worker processes would, each in small batches.
    others = [build_runtime(settings), build_runtime(settings)]
    try:
        results = await asyncio.gather(*(flows.offer_waiting_tickets(rt, batch=2) for rt in others))
    finally:
        for rt in others:
            await rt.close()
    assert sum(results) == 6
    await drain(runtime)  # the queued offer finds nothing more to do
    async with runtime.db.transaction() as session:
        per_ticket = dict(
            (
                await session.execute(
                    select(TicketEvent.ticket_id, func.count())
                    .where(TicketEvent.kind == EventKind.assigned)
                    .group_by(TicketEvent.ticket_id)
                )
            ).all()
        )
    assert all(n == 1 for n in per_ticket.values()) and len(per_ticket) == 6
    owners = [(await get(client, actors["admin"], i))["assigned_to"] for i in ids]
    assert owners.count(actors.ids["mod_py"]) == 3 and owners.count(actors.ids["mod_web"]) == 3
    assert owners.count(None) == 4


async def test_the_offer_runs_every_routing_retry_seconds(runtime, settings):
    handlers = flows.job_handlers(runtime)
    [recurring] = [k for k in handlers if k.name == offers.OFFER_WAITING.name]
    assert recurring.every_seconds == settings.routing_retry_seconds == 30
    await queue.schedule_recurring(runtime.db, handlers)
    await drain(runtime)
    async with runtime.db.transaction() as session:
        nxt = (
            await session.scalars(
                select(Job).where(Job.key == recurring.recurring_key, Job.status == "queued")
            )
        ).one()
    wait = (nxt.run_after - datetime.now(UTC)).total_seconds()
    assert 10 < wait <= 30  # queued at the end of the run, ROUTING_RETRY_SECONDS later


@pytest.fixture
def settings_overrides():
    return {"routing_retry_seconds": 30}


async def test_a_shift_that_starts_is_picked_up_by_the_next_offer(runtime):
    # The recurring offer with an injected clock: off shift now, on shift at the next run.
    admin = await create_user(runtime, "boss@example.com", Role.admin)
    early = await create_user(runtime, "early@example.com", Role.moderator, ["python"])
    async with runtime.db.transaction() as session:
        row = await session.get(User, early.id)
        assert row is not None
        row.working_hours = [{"day": 0, "start": "09:00", "end": "17:00"}]
        boss = await session.get(User, admin.id)
        assert boss is not None
        boss.max_open_tickets = 0
    monday_8 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    monday_9 = monday_8 + timedelta(hours=1)
    requester = await create_user(runtime, "req@example.com")
    async with runtime.db.transaction() as session:
        user = await session.get(User, requester.id)
        assert user is not None
        ticket = await tickets_service.create_ticket(
            session, runtime.settings, user, TicketCreate(title="python", description="python")
        )
        ticket_id = ticket.id
    async with runtime.db.transaction() as session:
        t = await tickets_service.find(session, ticket_id, for_update=True)
        assert t is not None
        t.required_skills = ["python"]
        d = await routing.choose_assignee(session, ["python"], now=monday_8)
        assert d.reason == "waiting: nobody available (1 off shift, 1 at capacity)"
        tickets_service.leave_unassigned(session, t, d.reason)
    assert await flows.offer_waiting_tickets(runtime, now=monday_8) == 0
    assert await flows.offer_waiting_tickets(runtime, now=monday_9) == 1
    async with runtime.db.transaction() as session:
        t = await tickets_service.find(session, ticket_id)
        assert t is not None and t.assigned_to == early.id


async def test_promoting_or_reactivating_someone_offers_what_waits(client, runtime, actors):
    await everyone_away(client, actors)
    t = await file(client, actors["alice"])
    await drain(runtime)
    # Deactivated staff cannot take it; once active again (and back), they do.
    await patch_user(client, actors, "mod_py", {"is_active": False, "away_until": None})
    await drain(runtime)
    assert (await get(client, actors["admin"], t["id"]))["assigned_to"] is None
    # Promoting a user with the skills: an offer runs at once, and it is theirs.
    await patch_user(client, actors, "bob", {"role": "moderator", "skills": ["python"]})
    await drain(runtime)
    assert (await get(client, actors["admin"], t["id"]))["assigned_to"] == actors.ids["bob"]

    second = await file(client, actors["alice"], {"title": "python again", "description": "py"})
    await patch_user(client, actors, "bob", {"max_open_tickets": 1})
    await drain(runtime)
    assert (await get(client, actors["admin"], second["id"]))["assigned_to"] is None
    await patch_user(client, actors, "mod_py", {"is_active": True})
    await drain(runtime)
    assert (await get(client, actors["admin"], second["id"]))["assigned_to"] == actors.ids["mod_py"]


async def test_many_changes_queue_one_offer(client, runtime, actors):
    await everyone_away(client, actors)
    await file(client, actors["alice"])
    await drain(runtime)
    for who in ("admin", "mod_py", "mod_web"):
        await patch_user(client, actors, who, {"away_until": later(hours=5)})
    async with runtime.db.transaction() as session:
        queued = await session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.key == offers.OFFER_NOW_KEY, Job.status == "queued")
        )
    assert queued == 1
