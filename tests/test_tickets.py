"""The ticket pipeline end to end: file, triage, route, notify; visibility; PATCH rules;
comments, internal notes and the timeline; re-analysis."""

from __future__ import annotations

from sqlalchemy import func, select

from ticketing.jobs.models import Job
from ticketing.tickets import service as tickets_service
from ticketing.tickets.models import TicketEvent

from .conftest import drain

PY_TICKET = {
    "title": "Python worker crashes with a Postgres error",
    "description": "Since this morning our python import job fails with a traceback from "
    "postgres: connection reset. Steps to reproduce: run the nightly job.",
}
WEB_TICKET = {
    "title": "Button misaligned on checkout page",
    "description": "The CSS of the pay button is broken in Firefox; javascript console shows "
    "an error.",
}


async def file(client, headers, body=PY_TICKET):
    r = await client.post("/tickets/create", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def get(client, headers, ticket_id):
    r = await client.get(f"/tickets/{ticket_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_ticket_is_triaged_routed_and_the_moderator_emailed(client, runtime, smtp, actors):
    created = await file(client, actors["alice"])
    assert created["analysis_status"] == "pending"
    assert created["priority"] is None and created["assigned_to"] is None
    assert created["created_by"] == actors.ids["alice"]
    async with runtime.db.transaction() as session:
        jobs = (await session.scalars(select(Job.kind).where(Job.status == "queued"))).all()
    assert jobs == ["triage_ticket"]  # written with the ticket, in the same transaction

    await drain(runtime)
    ticket = await get(client, actors["admin"], created["id"])
    assert ticket["analysis_status"] == "ai"  # AI_PROVIDER=local is the configured analyzer
    assert ticket["analysis_provider"] == "local"
    assert set(ticket["required_skills"]) >= {"python", "postgresql"}
    assert ticket["priority"] in {"low", "medium", "high", "urgent"}
    assert ticket["ticket_type"] == "bug"
    assert ticket["assigned_to"] == actors.ids["mod_py"]
    assert "python" in ticket["assignment_reason"] and "postgresql" in ticket["assignment_reason"]
    assert ticket["analyzed_at"] and ticket["assigned_at"]

    [mail] = smtp.to("mod.py@example.com")
    assert PY_TICKET["title"] in mail.subject
    for part in (mail.text, mail.html):
        assert PY_TICKET["title"] in part
        assert ticket["priority"] in part and "bug" in part and "python" in part
        assert f"http://helpdesk.example.com/#/tickets/{ticket['id']}" in part
        assert "nightly job" in part  # an excerpt of the description
    assert smtp.to("mod.web@example.com") == []

    web = await file(client, actors["bob"], WEB_TICKET)
    await drain(runtime)
    assert (await get(client, actors["admin"], web["id"]))["assigned_to"] == actors.ids["mod_web"]


async def test_html_email_escapes_ticket_text(client, runtime, smtp, actors):
    body = {"title": "<script>alert(1)</script> python", "description": "<b>bold</b> postgres"}
    await file(client, actors["alice"], body)
    await drain(runtime)
    [mail] = smtp.to("mod.py@example.com")
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "<script>alert(1)</script>" in mail.text  # plain text needs no escaping


async def test_no_matching_moderator_goes_to_least_loaded_admin(client, runtime, smtp, actors):
    t = await file(
        client,
        actors["alice"],
        {"title": "Question about invoices", "description": "Where can I download my invoice?"},
    )
    await drain(runtime)
    ticket = await get(client, actors["admin"], t["id"])
    assert ticket["assigned_to"] == actors.ids["admin"]
    assert "admin" in ticket["assignment_reason"]
    assert len(smtp.to("admin@example.com")) == 1


async def test_equal_moderators_share_the_load(client, runtime, smtp, actors):
    admin = actors["admin"]
    # Make the two moderators equally skilled.
    await client.patch(
        f"/admin/users/{actors.ids['mod_web']}", json={"skills": ["python"]}, headers=admin
    )
    await client.patch(
        f"/admin/users/{actors.ids['mod_py']}", json={"skills": ["python"]}, headers=admin
    )
    for i in range(6):
        await file(
            client,
            actors["alice"],
            {"title": f"python issue {i}", "description": "python script fails"},
        )
    await drain(runtime)
    page = (await client.get("/tickets", params={"limit": 100}, headers=admin)).json()
    counts: dict[str, int] = {}
    for t in page["items"]:
        counts[t["assigned_to"]] = counts.get(t["assigned_to"], 0) + 1
    assert counts == {actors.ids["mod_py"]: 3, actors.ids["mod_web"]: 3}


async def test_blank_or_oversized_fields_are_422_and_nothing_is_written(client, runtime, actors):
    bad_bodies = [
        {"title": "   ", "description": "x"},
        {"title": "x", "description": "\n\t "},
        {"title": "x" * 201, "description": "x"},
        {"title": "x", "description": "x" * 20001},
        {"title": "x"},
        {"title": "x", "description": "y", "assigned_to": actors.ids["mod_py"]},
        {"title": "x", "description": "y", "status": "closed"},
        {"title": 5, "description": "y"},
    ]
    for body in bad_bodies:
        r = await client.post("/tickets/create", json=body, headers=actors["alice"])
        assert r.status_code == 422, body
    r = await client.post(
        "/tickets/create",
        content=b"{not json",
        headers=actors["alice"] | {"Content-Type": "application/json"},
    )
    assert r.status_code == 422
    async with runtime.db.transaction() as session:
        assert await session.scalar(select(func.count()).where(Job.kind == "triage_ticket")) == 0


async def test_rest_alias_and_anonymous(client, actors):
    r = await client.post("/tickets", json=PY_TICKET, headers=actors["alice"])
    assert r.status_code == 201
    assert (await client.post("/tickets/create", json=PY_TICKET)).status_code == 401
    assert (await client.get("/tickets")).status_code == 401


async def test_visibility_per_role(client, runtime, actors):
    mine = await file(client, actors["alice"])
    others = await file(client, actors["bob"], WEB_TICKET)
    await drain(runtime)

    # Someone else's ticket does not exist for you: 404, same as a missing one.
    for path in ("", "/comments", "/events"):
        r = await client.get(f"/tickets/{others['id']}{path}", headers=actors["alice"])
        assert r.status_code == 404, path
    missing = await client.get(
        "/tickets/00000000-0000-0000-0000-000000000000", headers=actors["alice"]
    )
    assert (
        missing.status_code == 404
        and missing.json()
        == (await client.get(f"/tickets/{others['id']}", headers=actors["alice"])).json()
    )

    alice_list = (await client.get("/tickets", headers=actors["alice"])).json()["items"]
    assert [t["id"] for t in alice_list] == [mine["id"]]
    # Users do not see moderator advice or routing internals.
    assert alice_list[0]["helpful_notes"] is None and alice_list[0]["assignment_reason"] is None

    # Moderators see what is assigned to them (mod_py got alice's python ticket).
    mod_list = (await client.get("/tickets", headers=actors["mod_py"])).json()["items"]
    assert [t["id"] for t in mod_list] == [mine["id"]]
    assert mod_list[0]["helpful_notes"]
    r = await client.get(f"/tickets/{others['id']}", headers=actors["mod_py"])
    assert r.status_code == 404

    admin_list = (await client.get("/tickets", headers=actors["admin"])).json()["items"]
    assert {t["id"] for t in admin_list} == {mine["id"], others["id"]}


async def pages(client, headers, params):
    """Every id of a list, read two at a time through the cursors."""
    ids: list[str] = []
    cursor = None
    while True:
        query = {"limit": 2, **params} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/tickets", params=query, headers=headers)
        assert r.status_code == 200, r.text
        ids += [t["id"] for t in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return ids


async def test_moderator_list_is_assigned_or_own_in_every_order(client, runtime, actors):
    """A moderator's list (tickets assigned to them or filed by them, read as two index ranges
    merged) holds the same tickets in the same order as the admin's list with that rule
    applied, page after page, in every order and with a filter."""
    for _ in range(3):
        await file(client, actors["alice"])  # routed to mod_py
    neither = (await file(client, actors["bob"], WEB_TICKET))["id"]  # to mod_web
    await file(client, actors["mod_py"], WEB_TICKET)  # filed by mod_py, worked by mod_web
    both = (await file(client, actors["mod_py"]))["id"]  # filed by mod_py, assigned below
    await file(client, actors["mod_web"])  # filed by mod_web, routed to mod_py
    await drain(runtime)
    moved = (await file(client, actors["bob"], WEB_TICKET))["id"]
    await drain(runtime)
    for ticket_id in (moved, both):
        r = await client.patch(
            f"/tickets/{ticket_id}",
            json={"assigned_to": actors.ids["mod_py"]},
            headers=actors["admin"],
        )
        assert r.status_code == 200, r.text
    everything = await client.get("/tickets", params={"limit": 100}, headers=actors["admin"])
    rows = {t["id"]: t for t in everything.json()["items"]}
    me = actors.ids["mod_py"]

    def mine(ticket_id: str) -> bool:
        return me in (rows[ticket_id]["assigned_to"], rows[ticket_id]["created_by"])

    for params in (
        {},
        {"order": "oldest"},
        {"order": "due"},
        {"status": "open"},
        {"order": "oldest", "q": "python"},
    ):
        expected = [i for i in await pages(client, actors["admin"], params) if mine(i)]
        assert await pages(client, actors["mod_py"], params) == expected, params
    # Both kinds are there, and a ticket of neither kind is not.
    listed = await pages(client, actors["mod_py"], {})
    assert moved in listed and neither not in listed and len(listed) >= 6
    assert listed.count(both) == 1  # assigned to and filed by mod_py: listed once
    assert any(rows[i]["created_by"] == me and rows[i]["assigned_to"] != me for i in listed)


async def test_most_urgent_first_is_soonest_due_then_the_rest_by_id_page_after_page(
    client, runtime, actors
):
    """order=due: tickets with a due time, soonest first, then those without (by id), through
    the cursors, two at a time and one at a time, for the admin's list and a moderator's queue
    (each read as two index ranges merged)."""
    from datetime import datetime

    for _ in range(3):
        await file(client, actors["alice"])
    await file(client, actors["bob"], WEB_TICKET)
    await drain(runtime)  # analysed: a priority, so SLA due times
    for _ in range(3):
        await file(client, actors["alice"])  # not analysed yet: no due time
    queued = await client.get(
        "/moderator/tickets", params={"moderator_id": actors.ids["mod_py"]}, headers=actors["admin"]
    )
    done = queued.json()["items"][0]["id"]
    r = await client.patch(f"/tickets/{done}", json={"status": "closed"}, headers=actors["admin"])
    assert r.status_code == 200, r.text  # closed: nothing pending, no due time, still assigned
    everything = await client.get("/tickets", params={"limit": 100}, headers=actors["admin"])
    rows = everything.json()["items"]

    def soonest(ticket: dict) -> tuple:
        due = ticket["sla_next_due_at"]
        return (due is None, datetime.fromisoformat(due) if due else None, ticket["id"])

    assert any(t["sla_next_due_at"] for t in rows) and any(not t["sla_next_due_at"] for t in rows)

    async def read(path: str, headers: dict, limit: int, **params: str) -> list[str]:
        ids: list[str] = []
        cursor = None
        while True:
            query = {"limit": limit, "order": "due", **params}
            r = await client.get(
                path, params=query | ({"cursor": cursor} if cursor else {}), headers=headers
            )
            assert r.status_code == 200, r.text
            ids += [t["id"] for t in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if not cursor:
                return ids

    expected = [t["id"] for t in sorted(rows, key=soonest)]
    for limit in (1, 2, 100):
        assert await read("/tickets", actors["admin"], limit) == expected, limit
    me = actors.ids["mod_py"]
    queue = [t["id"] for t in sorted(rows, key=soonest) if t["assigned_to"] == me]
    assert len(queue) >= 3 and queue[-1] == done  # the one without a due time comes last
    for limit in (1, 2):
        got = await read("/moderator/tickets", actors["admin"], limit, moderator_id=me)
        assert got == queue, limit


async def test_moderator_queue(client, runtime, actors):
    await file(client, actors["alice"])
    await file(client, actors["bob"], WEB_TICKET)
    await drain(runtime)
    queue = (await client.get("/moderator/tickets", headers=actors["mod_web"])).json()["items"]
    assert [t["title"] for t in queue] == [WEB_TICKET["title"]]
    assert (await client.get("/moderator/tickets", headers=actors["alice"])).status_code == 403
    r = await client.get(
        "/moderator/tickets", params={"moderator_id": actors.ids["mod_py"]}, headers=actors["admin"]
    )
    assert [t["title"] for t in r.json()["items"]] == [PY_TICKET["title"]]
    r = await client.get(
        "/moderator/tickets",
        params={"moderator_id": actors.ids["mod_py"]},
        headers=actors["mod_web"],
    )
    assert r.status_code == 403


async def test_filters_search_and_cursor_pagination(client, runtime, actors):
    for i in range(5):
        await file(client, actors["alice"], {"title": f"Report {i}", "description": f"body {i}"})
    await file(client, actors["alice"], {"title": "Needle 100%_done", "description": "hay"})
    await drain(runtime)
    admin = actors["admin"]
    r = await client.get("/tickets", params={"q": "needle 100%_"}, headers=admin)
    assert [t["title"] for t in r.json()["items"]] == ["Needle 100%_done"]
    r = await client.get("/tickets", params={"q": "%"}, headers=admin)  # literal, not a wildcard
    assert [t["title"] for t in r.json()["items"]] == ["Needle 100%_done"]

    titles: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "order": "oldest"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/tickets", params=params, headers=admin)).json()
        titles += [t["title"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert titles == [f"Report {i}" for i in range(5)] + ["Needle 100%_done"]

    one = titles[0]
    r = await client.get(
        "/tickets", params={"created_by": actors.ids["alice"], "status": "open"}, headers=admin
    )
    assert one in [t["title"] for t in r.json()["items"]]
    r = await client.get("/tickets", params={"status": "resolved"}, headers=admin)
    assert r.json()["items"] == []
    r = await client.get("/tickets", params={"status": "bogus"}, headers=admin)
    assert r.status_code == 422
    r = await client.get("/tickets", params={"analysis_status": "pending"}, headers=admin)
    assert r.json()["items"] == []


async def test_patch_field_rules(client, runtime, smtp, actors):
    t = await file(client, actors["alice"])
    await drain(runtime)
    tid = t["id"]
    url = f"/tickets/{tid}"

    # The creator may not triage their own ticket.
    for body in (
        {"priority": "urgent"},
        {"ticket_type": "feature"},
        {"required_skills": ["x"]},
        {"assigned_to": actors.ids["alice"]},
        {"status": "in_progress"},
        {"status": "resolved"},
    ):
        r = await client.patch(url, json=body, headers=actors["alice"])
        assert r.status_code == 403, body
    # Someone else's ticket: 404, not 403.
    assert (
        await client.patch(url, json={"status": "closed"}, headers=actors["bob"])
    ).status_code == 404
    assert (
        await client.patch(url, json={"priority": "low"}, headers=actors["mod_web"])
    ).status_code == 404

    # The assignee works it but may not reassign.
    r = await client.patch(
        url, json={"assigned_to": actors.ids["mod_web"]}, headers=actors["mod_py"]
    )
    assert r.status_code == 403
    r = await client.patch(
        url,
        json={
            "status": "in_progress",
            "priority": "high",
            "required_skills": ["Python", "SQL", "python"],
        },
        headers=actors["mod_py"],
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "in_progress" and r.json()["priority"] == "high"
    assert r.json()["required_skills"] == ["python", "sql"]
    r = await client.patch(url, json={"status": "closed"}, headers=actors["mod_py"])
    assert r.status_code == 403  # only admins or the creator close an unresolved ticket
    r = await client.patch(url, json={"priority": None}, headers=actors["mod_py"])
    assert r.status_code == 422
    r = await client.patch(url, json={"status": "resolved"}, headers=actors["mod_py"])
    assert r.status_code == 200 and r.json()["resolved_at"]

    await drain(runtime)
    [resolved_mail] = smtp.to("alice@example.com")
    # The requester's thread keeps one subject (Gmail threads by it); the text says what.
    assert resolved_mail.subject == f"[#{t['number']}] {t['title']}"
    assert "was resolved" in resolved_mail.text

    # The creator reopens, then withdraws.
    r = await client.patch(url, json={"status": "open"}, headers=actors["alice"])
    assert r.status_code == 200 and r.json()["resolved_at"] is None
    r = await client.patch(url, json={"status": "closed"}, headers=actors["alice"])
    assert r.status_code == 200
    # closed is final.
    for who in ("alice", "admin", "mod_py"):
        r = await client.patch(url, json={"status": "open"}, headers=actors[who])
        assert r.status_code == 409, who


async def test_invalid_status_moves_are_409(client, runtime, actors):
    t = await file(client, actors["alice"])
    await drain(runtime)
    url = f"/tickets/{t['id']}"
    admin = actors["admin"]
    assert (await client.patch(url, json={"status": "resolved"}, headers=admin)).status_code == 200
    r = await client.patch(url, json={"status": "in_progress"}, headers=admin)
    assert r.status_code == 409
    r = await client.patch(url, json={"status": "nonsense"}, headers=admin)
    assert r.status_code == 422


async def test_admin_reassigns_and_the_new_assignee_is_emailed(client, runtime, smtp, actors):
    t = await file(client, actors["alice"])
    await drain(runtime)
    smtp.clear()
    url = f"/tickets/{t['id']}"
    admin = actors["admin"]
    r = await client.patch(url, json={"assigned_to": actors.ids["alice"]}, headers=admin)
    assert r.status_code == 422  # not a moderator
    r = await client.patch(url, json={"assigned_to": "nobody"}, headers=admin)
    assert r.status_code == 422
    r = await client.patch(url, json={"assigned_to": actors.ids["mod_web"]}, headers=admin)
    assert r.status_code == 200
    assert r.json()["assigned_to"] == actors.ids["mod_web"]
    assert "admin" in r.json()["assignment_reason"]
    await drain(runtime)
    assert len(smtp.to("mod.web@example.com")) == 1
    assert smtp.to("mod.py@example.com") == []
    # The previous assignee no longer sees it.
    assert (await client.get(url, headers=actors["mod_py"])).status_code == 404


async def test_comments_and_internal_notes(client, runtime, actors):
    t = await file(client, actors["alice"])
    await drain(runtime)
    url = f"/tickets/{t['id']}/comments"
    r = await client.post(url, json={"body": "Any update?"}, headers=actors["alice"])
    assert r.status_code == 201 and r.json()["internal"] is False
    r = await client.post(url, json={"body": "secret", "internal": True}, headers=actors["alice"])
    assert r.status_code == 403
    r = await client.post(
        url, json={"body": "Probably the DB pool", "internal": True}, headers=actors["mod_py"]
    )
    assert r.status_code == 201
    r = await client.post(url, json={"body": "Looking into it"}, headers=actors["mod_py"])
    assert r.status_code == 201
    assert (await client.post(url, json={"body": "  "}, headers=actors["alice"])).status_code == 422
    assert (await client.post(url, json={"body": "hi"}, headers=actors["bob"])).status_code == 404

    user_view = (await client.get(url, headers=actors["alice"])).json()["items"]
    assert [c["body"] for c in user_view] == ["Looking into it", "Any update?"]
    staff_view = (await client.get(url, params={"order": "oldest"}, headers=actors["admin"])).json()
    assert [c["body"] for c in staff_view["items"]] == [
        "Any update?",
        "Probably the DB pool",
        "Looking into it",
    ]


async def test_timeline_records_what_happened(client, runtime, actors):
    t = await file(client, actors["alice"])
    await drain(runtime)
    await client.post(
        f"/tickets/{t['id']}/comments",
        json={"body": "note", "internal": True},
        headers=actors["mod_py"],
    )
    await client.patch(
        f"/tickets/{t['id']}", json={"status": "in_progress"}, headers=actors["mod_py"]
    )
    staff = (
        await client.get(
            f"/tickets/{t['id']}/events", params={"order": "oldest"}, headers=actors["admin"]
        )
    ).json()["items"]
    kinds = [e["kind"] for e in staff]
    assert kinds[:3] == ["created", "analysed", "assigned"]
    assert {"emailed", "commented", "status_changed"} <= set(kinds)
    analysed = staff[1]["data"]
    assert analysed["provider"] == "local" and analysed["outcome"] == "ai"
    assigned = staff[2]["data"]
    assert assigned["to"] == actors.ids["mod_py"] and "python" in assigned["reason"]
    status = next(e for e in staff if e["kind"] == "status_changed")
    assert status["actor_id"] == actors.ids["mod_py"]
    assert status["data"] == {"from": "open", "to": "in_progress"}

    user = (await client.get(f"/tickets/{t['id']}/events", headers=actors["alice"])).json()["items"]
    assert all(not e["internal"] for e in user)
    assert {e["kind"] for e in user} == {"created", "status_changed"}


async def test_allowed_status_is_exactly_what_patch_accepts(client, runtime, actors):
    """For every viewer and every state, `allowed_status` lists the moves PATCH accepts and
    no other: clients can trust it instead of copying the rules."""
    statuses = ["open", "in_progress", "resolved", "closed"]
    # Paths from open to each state, made by the admin.
    paths = {
        "open": [],
        "in_progress": ["in_progress"],
        "resolved": ["resolved"],
        "closed": ["resolved", "closed"],
    }
    viewers = ["alice", "mod_py", "mod_web", "admin"]  # creator, assignee, other mod, admin
    runtime.settings.ticket_create_per_minute = 1000  # a fresh ticket per probe
    checked = 0
    for state, path in paths.items():
        for viewer in viewers:
            for target in statuses:
                t = await file(client, actors["alice"])
                await drain(runtime)
                url = f"/tickets/{t['id']}"
                for step in path:
                    r = await client.patch(url, json={"status": step}, headers=actors["admin"])
                    assert r.status_code == 200, r.text
                r = await client.get(url, headers=actors[viewer])
                if r.status_code == 404:  # not theirs to see: nothing is allowed either
                    assert viewer == "mod_web"
                    continue
                allowed = r.json()["allowed_status"]
                assert state not in allowed
                if target == state:
                    continue
                r = await client.patch(url, json={"status": target}, headers=actors[viewer])
                assert (r.status_code == 200) == (target in allowed), (state, viewer, target)
                assert r.status_code in (200, 403, 409)
                checked += 1
    assert checked == 3 * 4 * 3  # three viewers who see it, four states, three other states


async def test_allowed_fields_and_actions_follow_the_viewer(client, runtime, actors):
    t = await file(client, actors["alice"])
    await drain(runtime)
    url = f"/tickets/{t['id']}"
    seen = {who: (await get(client, actors[who], t["id"])) for who in ("alice", "mod_py", "admin")}
    assert seen["alice"]["allowed_fields"] == []
    assert seen["alice"]["allowed_actions"] == []
    assert seen["mod_py"]["allowed_fields"] == ["priority", "ticket_type", "required_skills"]
    assert seen["mod_py"]["allowed_actions"] == ["internal_notes"]
    assert seen["admin"]["allowed_fields"] == [
        "priority",
        "ticket_type",
        "required_skills",
        "assigned_to",
    ]
    assert seen["admin"]["allowed_actions"] == ["internal_notes", "reanalyze"]
    # Each advertised field is accepted, each other one refused.
    for who, view in seen.items():
        for name, value in (("priority", "low"), ("assigned_to", actors.ids["mod_py"])):
            r = await client.patch(url, json={name: value}, headers=actors[who])
            assert (r.status_code == 200) == (name in view["allowed_fields"]), (who, name)
    # The list carries the same answers as the single ticket.
    listed = (await client.get("/tickets", headers=actors["mod_py"])).json()["items"]
    assert (
        listed[0]["allowed_status"]
        == (await get(client, actors["mod_py"], t["id"]))["allowed_status"]
    )


async def test_an_email_sent_is_recorded_only_while_its_ticket_exists(client, runtime, actors):
    # One INSERT ... SELECT: the line is written with the ticket's data, and nothing at all
    # when the ticket was deleted before its email went out.
    t = await file(client, actors["alice"])
    async with runtime.db.transaction() as session:
        await tickets_service.record_email_sent(
            session, t["id"], to="mod.py@example.com", kind="assignment"
        )
        await tickets_service.record_email_sent(session, "no-such-ticket", to="x@y", kind="reply")
    async with runtime.db.transaction() as session:
        rows = (
            await session.scalars(select(TicketEvent).where(TicketEvent.kind == "emailed"))
        ).all()
    assert [(e.ticket_id, e.data, e.internal, e.actor_id) for e in rows] == [
        (t["id"], {"to": "mod.py@example.com", "kind": "assignment"}, True, None)
    ]
    assert rows[0].created_at is not None and rows[0].id
