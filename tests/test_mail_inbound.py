"""What mail to the support address becomes (the contract's four steps), message by message,
through `mail.service.handle_message` on both engines; the IMAP side has its own tests."""

from __future__ import annotations

import itertools
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select

from ticketing.mail.models import InboundEmail
from ticketing.mail.service import handle_message
from ticketing.tickets.models import TicketMessage
from ticketing.vocabulary import Role

from .conftest import create_user, drain

SUPPORT = "support@helpdesk.example.com"
_keys = itertools.count(1)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"support_email": SUPPORT}


def mail(
    sender: str,
    subject: str,
    body: str,
    *,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    message_id: str | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SUPPORT
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="client.example.org")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return bytes(message)


async def deliver(runtime, raw: bytes, key: str | None = None) -> InboundEmail:
    return await handle_message(runtime.db, runtime.settings, raw, key or f"7:{next(_keys)}")


async def ticket_of(client, actors, ticket_id: str) -> dict:
    r = await client.get(f"/tickets/{ticket_id}", headers=actors["admin"])
    assert r.status_code == 200
    return r.json()


async def comments(client, actors, ticket_id: str) -> list[dict]:
    r = await client.get(
        f"/tickets/{ticket_id}/comments", params={"order": "oldest"}, headers=actors["admin"]
    )
    return r.json()["items"]


async def test_a_new_mail_becomes_a_ticket_and_the_requester_gets_its_number(
    client, runtime, smtp, actors
):
    raw = mail("Alice <alice@example.com>", "VPN drops every hour", "It drops at :00.")
    entry = await deliver(runtime, raw)
    assert entry.outcome == "ticket" and entry.ticket_id
    ticket = await ticket_of(client, actors, entry.ticket_id)
    assert ticket["source"] == "email" and ticket["created_by"] == actors.ids["alice"]
    assert ticket["title"] == "VPN drops every hour"
    assert ticket["description"] == "It drops at :00."
    await drain(runtime)  # triage, routing, the acknowledgement
    [ack] = smtp.to("alice@example.com")
    number = ticket["number"]
    assert ack.subject == f"[#{number}] VPN drops every hour"
    assert f"#{number}" in ack.text
    original = _header(raw, "Message-ID")
    assert ack.message["In-Reply-To"] == original
    assert original in ack.message["References"]
    assert ack.message["Auto-Submitted"] == "auto-generated"
    assert ack.message["Reply-To"] == SUPPORT
    assert SUPPORT in ack.message["From"]


async def test_an_unknown_sender_gets_an_account_as_sign_up_would(client, runtime, actors):
    entry = await deliver(runtime, mail("new.person@example.org", "Hello", "Help me"))
    assert entry.outcome == "ticket"
    r = await client.get("/admin/users", params={"q": "new.person"}, headers=actors["admin"])
    [person] = r.json()["items"]
    assert person["role"] == "user"


@pytest.mark.parametrize("settings_overrides", [{"signup_mode": "invite"}])
async def test_a_sender_who_may_not_sign_in_is_rejected(runtime, settings_overrides):
    entry = await deliver(runtime, mail("stranger@example.org", "Hello", "Let me in"))
    assert entry.outcome == "rejected" and "may not sign in" in (entry.reason or "")
    assert entry.ticket_id is None


async def test_a_deactivated_sender_is_rejected(client, runtime, actors):
    await client.patch(
        f"/admin/users/{actors.ids['bob']}", json={"is_active": False}, headers=actors["admin"]
    )
    entry = await deliver(runtime, mail("bob@example.com", "Hello", "Still here"))
    assert entry.outcome == "rejected" and "deactivated" in (entry.reason or "")


async def test_the_requester_replies_by_mail_and_the_ticket_opens_again(
    client, runtime, smtp, actors
):
    first = await deliver(runtime, mail("alice@example.com", "Printer jams", "Page 3 jams."))
    tid = first.ticket_id
    await drain(runtime)
    [ack] = smtp.to("alice@example.com")
    assignee = (await ticket_of(client, actors, tid))["assigned_to"]
    staff = next(k for k, v in actors.ids.items() if v == assignee)
    r = await client.patch(f"/tickets/{tid}", json={"status": "waiting"}, headers=actors[staff])
    assert r.status_code == 200

    reply = mail(
        "alice@example.com",
        f"Re: {ack.subject}",
        "It is the tray.\n\nOn Monday the helpdesk wrote:\n> We received your request",
        in_reply_to=_header_of(ack, "Message-ID"),
        references=[_header_of(ack, "References"), _header_of(ack, "Message-ID")],
    )
    entry = await deliver(runtime, reply)
    assert entry.outcome == "comment" and entry.ticket_id == tid
    [comment] = await comments(client, actors, tid)
    assert comment["source"] == "email" and not comment["internal"]
    assert comment["body"].startswith("It is the tray.")
    assert "We received your request" not in comment["body"]  # quoted history stripped
    assert (await ticket_of(client, actors, tid))["status"] == "open"


async def test_a_reply_found_by_the_number_in_its_subject(client, runtime, actors):
    first = await deliver(runtime, mail("alice@example.com", "Scanner", "Scanner is slow."))
    number = (await ticket_of(client, actors, first.ticket_id))["number"]
    # No In-Reply-To or References (a client that drops them): the [#number] finds it.
    entry = await deliver(runtime, mail("alice@example.com", f"Re: [#{number}] Scanner", "Still"))
    assert entry.outcome == "comment" and entry.ticket_id == first.ticket_id


async def test_staff_reply_by_mail_goes_on_to_the_requester_or_stays_an_internal_note(
    client, runtime, smtp, actors
):
    first = await deliver(runtime, mail("alice@example.com", "Laptop fan", "Loud fan."))
    tid = first.ticket_id
    await drain(runtime)
    ticket = await ticket_of(client, actors, tid)
    staff_email = next(
        e
        for e, k in (
            ("mod.py@example.com", "mod_py"),
            ("mod.web@example.com", "mod_web"),
            ("admin@example.com", "admin"),
        )
        if actors.ids[k] == ticket["assigned_to"]
    )
    [assigned] = smtp.to(staff_email)
    smtp.clear()
    note = mail(
        staff_email,
        f"Re: {assigned.subject}",
        "#note\nThis laptop is out of warranty.",
        in_reply_to=_header_of(assigned, "Message-ID"),
    )
    entry = await deliver(runtime, note)
    assert entry.outcome == "comment"
    public = mail(
        staff_email,
        f"Re: {assigned.subject}",
        "Please send it to us; we will clean it.",
        in_reply_to=_header_of(assigned, "Message-ID"),
    )
    assert (await deliver(runtime, public)).outcome == "comment"
    internal, shared = await comments(client, actors, tid)
    assert internal["internal"] and internal["body"] == "This laptop is out of warranty."
    assert not shared["internal"]
    await drain(runtime)
    [relayed] = smtp.to("alice@example.com")  # the public reply, not the note
    assert "we will clean it" in relayed.text and "warranty" not in relayed.text
    assert relayed.subject == f"[#{ticket['number']}] Laptop fan"
    assert relayed.message["In-Reply-To"] and relayed.message["Auto-Submitted"] is None


async def test_nobody_writes_into_someone_elses_ticket(client, runtime, actors):
    first = await deliver(runtime, mail("alice@example.com", "Badge", "My badge fails."))
    number = (await ticket_of(client, actors, first.ticket_id))["number"]
    entry = await deliver(runtime, mail("bob@example.com", f"Re: [#{number}] Badge", "Mine too"))
    assert entry.outcome == "ticket" and entry.ticket_id != first.ticket_id
    assert (await ticket_of(client, actors, entry.ticket_id))["created_by"] == actors.ids["bob"]
    assert await comments(client, actors, first.ticket_id) == []


async def test_a_reply_to_a_closed_ticket_becomes_a_new_one_that_names_it(client, runtime, actors):
    first = await deliver(runtime, mail("alice@example.com", "Wifi", "No wifi."))
    tid = first.ticket_id
    number = (await ticket_of(client, actors, tid))["number"]
    for status in ("resolved", "closed"):
        r = await client.patch(f"/tickets/{tid}", json={"status": status}, headers=actors["admin"])
        assert r.status_code == 200
    entry = await deliver(runtime, mail("alice@example.com", f"Re: [#{number}] Wifi", "Again"))
    assert entry.outcome == "ticket" and entry.ticket_id != tid
    follow_up = await ticket_of(client, actors, entry.ticket_id)
    assert f"#{number}" in follow_up["description"]


@pytest.mark.parametrize(
    ("headers", "sender"),
    [
        ({"Auto-Submitted": "auto-replied"}, "alice@example.com"),
        ({"Precedence": "bulk"}, "alice@example.com"),
        ({"X-Autoreply": "yes"}, "alice@example.com"),
        ({}, "MAILER-DAEMON@mx.example.org"),
        ({}, SUPPORT),
    ],
)
async def test_automatic_mail_bounces_and_our_own_mail_are_ignored(runtime, smtp, headers, sender):
    entry = await deliver(runtime, mail(sender, "Out of office", "Back Monday", headers=headers))
    assert entry.outcome == "ignored" and entry.reason and entry.ticket_id is None
    await drain(runtime)
    assert smtp.messages == []  # no reply: no mail loop


async def test_the_same_message_twice_makes_one_ticket(client, runtime, actors):
    raw = mail("alice@example.com", "Duplicate", "Sent to two aliases")
    first = await deliver(runtime, raw, "9:1")
    again = await deliver(runtime, raw, "9:1")  # the same mailbox key: nothing new
    copy = await deliver(runtime, raw, "9:2")  # the same Message-ID, delivered twice
    assert first.outcome == "ticket" and again.id == first.id
    assert copy.outcome == "ignored" and "already handled" in (copy.reason or "")
    r = await client.get("/tickets", params={"source": "email"}, headers=actors["admin"])
    assert len(r.json()["items"]) == 1


@pytest.mark.parametrize("settings_overrides", [{"inbound_max_bytes": 2000}])
async def test_too_large_or_unreadable_mail_is_rejected_and_the_next_one_is_fine(
    runtime, settings_overrides
):
    big = await deliver(runtime, mail("alice@example.com", "Big", "x" * 5000))
    assert big.outcome == "rejected" and "too large" in (big.reason or "")
    junk = await deliver(runtime, b"\x00\xff garbage that is not a message \xfe" * 3)
    assert junk.outcome in ("rejected", "ignored")
    good = await deliver(runtime, mail("alice@example.com", "Small", "fine"))
    assert good.outcome == "ticket"


@pytest.mark.parametrize("settings_overrides", [{"ticket_create_per_minute": 2}])
async def test_a_sender_who_floods_meets_the_same_limit_as_the_api(runtime, settings_overrides):
    outcomes = [
        (await deliver(runtime, mail("alice@example.com", f"Flood {i}", "x"))).outcome
        for i in range(4)
    ]
    assert outcomes == ["ticket", "ticket", "rejected", "rejected"]


async def test_admins_see_every_message_and_what_became_of_it(client, runtime, actors):
    await deliver(runtime, mail("alice@example.com", "Real", "A real request"))
    await deliver(runtime, mail("alice@example.com", "Away", "Auto", headers={"X-Autoreply": "1"}))
    r = await client.get("/admin/inbound-emails", headers=actors["admin"])
    assert r.status_code == 200
    items = r.json()["items"]
    assert [i["outcome"] for i in items] == ["ignored", "ticket"]  # newest first
    assert items[1]["from"] == "alice@example.com" and items[1]["subject"] == "Real"
    assert set(items[0]) == {
        "id",
        "message_id",
        "from",
        "subject",
        "received_at",
        "outcome",
        "reason",
        "ticket_id",
    }
    r = await client.get(
        "/admin/inbound-emails", params={"outcome": "ignored"}, headers=actors["admin"]
    )
    assert [i["subject"] for i in r.json()["items"]] == ["Away"]
    for who in ("mod_py", "alice"):
        r = await client.get("/admin/inbound-emails", headers=actors[who])
        assert r.status_code == 403


async def test_outgoing_ticket_mail_is_recorded_for_threading(client, runtime, smtp, actors):
    await create_user(runtime, "carol@example.com", Role.user)
    r = await client.post(
        "/tickets",
        json={"title": "Web ticket", "description": "filed on the page"},
        headers=actors["alice"],
    )
    tid = r.json()["id"]
    await drain(runtime)
    sent = [m for m in smtp.messages if "[#" in m.subject]
    assert sent and all(m.subject.startswith(f"[#{r.json()['number']}]") for m in sent)
    async with runtime.db.transaction() as session:
        recorded = set(
            (
                await session.scalars(
                    select(TicketMessage.message_id).where(TicketMessage.ticket_id == tid)
                )
            ).all()
        )
    assert {m.message["Message-ID"] for m in sent} <= recorded


def _header(raw: bytes, name: str) -> str:
    from email import message_from_bytes, policy

    return str(message_from_bytes(raw, policy=policy.default)[name])


def _header_of(received, name: str) -> str:
    return str(received.message[name])
