"""The email channel in a real browser, against a real mailbox: the server reads a private
Dovecot (INBOUND_EMAIL=imap, the embedded worker waits in IDLE) and sends through the SMTP test
server.

(a) A message delivered to the support mailbox becomes a ticket: the requester gets the
acknowledgement with its number, and the requester's and the moderator's pages show the ticket
with its number and an envelope.
(b) The conversation comes back by mail: the moderator answers on the page, the requester gets
that answer threaded into the same conversation, replies to it by mail, and the reply appears
on the ticket page marked as email; the ticket that waited on the requester is open again, and
the resolved notice joins the same thread.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest

from ..conftest import ADMIN_EMAIL
from ..imap_server import DovecotServer, Mailbox, dovecot_installed
from ..smtp_server import ReceivedMail, SmtpTestServer
from .conftest import LiveServer, Tab, expect, run_live_server, shot

pytestmark = pytest.mark.timeout(180)

# Mail travels: IMAP IDLE -> a transaction -> the job queue -> SMTP. Generous on a busy machine;
# every wait ends as soon as its condition holds.
MAIL_SECONDS = 45
LINK = re.compile(r"#/tickets/([A-Za-z0-9_-]+)")
CLIENT_DOMAIN = "mail.client.example.org"
MODERATOR = "mod.py@example.com"  # the fake AI's default answer asks for python: Priya


@pytest.fixture(scope="module")
def support_mailbox() -> Iterator[Mailbox]:
    if not dovecot_installed():
        if os.environ.get("REQUIRE_IMAP") == "1" or os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("Dovecot (dovecot-imapd) is not installed, and REQUIRE_IMAP/POSTGRES=1")
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd)")
    server = DovecotServer()
    server.start()
    try:
        yield server.new_mailbox()
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def live_server(
    chromium_path: str,
    smtp_server: SmtpTestServer,
    support_mailbox: Mailbox,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    """As every journey's server, and it reads the support mailbox (its address is the
    mailbox's user, so our own mail is recognised)."""
    with run_live_server(
        smtp_server,
        tmp_path_factory,
        support_email=support_mailbox.user,
        **support_mailbox.settings(imap_poll_seconds=30, imap_lease_seconds=3),
    ) as live:
        yield live


def customer_mail(
    mailbox: Mailbox,
    sender: str,
    subject: str,
    body: str,
    *,
    reply_to: ReceivedMail | None = None,
) -> str:
    """Deliver a customer's message to the support mailbox (IMAP APPEND); its Message-ID.
    `reply_to`: the mail of ours it answers, threaded as a mail client would."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mailbox.user
    message["Subject"] = subject
    message_id = make_msgid(domain=CLIENT_DOMAIN)
    message["Message-ID"] = message_id
    if reply_to is not None:
        ours = str(reply_to.message["Message-ID"])
        message["In-Reply-To"] = ours
        message["References"] = f"{reply_to.message['References']} {ours}".strip()
    message.set_content(body)
    mailbox.append([bytes(message)])
    return message_id


def references(mail: ReceivedMail) -> list[str]:
    return str(mail.message["References"] or "").split()


def mailed_in_ticket(
    live: LiveServer, mailbox: Mailbox, sender: str, subject: str, body: str
) -> tuple[str, int, str, ReceivedMail]:
    """A customer mails support; returns (ticket id, number, their Message-ID, our
    acknowledgement) once the acknowledgement has arrived."""
    earlier = live.smtp.to(sender)
    message_id = customer_mail(mailbox, sender, subject, body)
    ack = live.wait_for_mail(
        sender, subject, timeout=MAIL_SECONDS, check=lambda m: m not in earlier
    )
    number = re.fullmatch(rf"\[#(\d+)\] {re.escape(subject)}", ack.subject)
    assert number, f"the acknowledgement's subject is {ack.subject!r}"
    link = LINK.search(ack.text)
    assert link, "the acknowledgement links to the ticket"
    return link.group(1), int(number.group(1)), message_id, ack


def open_ticket_as(tab: Tab, email: str, ticket_id: str, title: str) -> None:
    tab.goto(f"#/tickets/{ticket_id}")
    tab.sign_in(email)
    expect(tab.page.get_by_role("heading", name=title)).to_be_visible()


def wait_assigned(live: LiveServer, token: str, ticket_id: str) -> None:
    live.wait_for_ticket(
        token,
        ticket_id,
        lambda t: t["assigned_to"] == live.ids[MODERATOR],
        timeout=MAIL_SECONDS,
    )


def wait_for_comment(live: LiveServer, token: str, ticket_id: str, text: str) -> dict[str, Any]:
    """The ticket's comment with `text`, once the mailbox reader has made it."""
    deadline = time.monotonic() + MAIL_SECONDS
    with live.client(token) as c:
        while True:
            r = c.get(f"/tickets/{ticket_id}/comments", params={"order": "oldest"})
            assert r.status_code == 200, r.text
            for comment in r.json()["items"]:
                if text in comment["body"]:
                    return dict(comment)
            assert time.monotonic() < deadline, f"no comment with {text!r} on the ticket"
            time.sleep(0.1)


def test_a_mail_to_support_becomes_a_ticket_with_its_number_and_an_envelope(
    open_tab, live_server: LiveServer, support_mailbox: Mailbox
):
    requester = "dana@example.com"
    subject = "Invoices export times out"
    body = "Since Monday the invoices export in our python service times out after 30 s."
    ticket_id, number, message_id, ack = mailed_in_ticket(
        live_server, support_mailbox, requester, subject, body
    )

    # The acknowledgement: from the support address, automatic, in the requester's thread.
    assert ack.message["From"].addresses[0].addr_spec == support_mailbox.user
    assert ack.message["Auto-Submitted"] == "auto-generated"
    assert ack.message["In-Reply-To"] == message_id
    assert message_id in references(ack)
    assert f"#{number}" in ack.text and "reply to this email" in ack.text.lower()
    assert support_mailbox.count("Processed") == 1 and support_mailbox.count("INBOX") == 0
    with live_server.client() as c:
        assert c.get("/health/ready").json()["mailbox"]["status"] == "ok"

    # The requester (an account made for them by their mail) signs in from the emailed link.
    user = open_tab()
    page = user.page
    open_ticket_as(user, requester, ticket_id, subject)
    ref = page.locator(".ticket-ref")
    expect(ref).to_have_text(f"✉ #{number}")
    expect(ref.get_by_role("img", name="by email")).to_be_visible()
    expect(page.locator(".description")).to_have_text(body)
    expect(page.locator(".timeline")).to_contain_text("Ticket filed by email")
    page.get_by_role("link", name="My tickets").click()
    row = page.get_by_role("row").filter(has_text=subject)
    expect(row).to_contain_text(f"#{number}")
    expect(row.get_by_role("img", name="by email")).to_be_visible()
    user.assert_clean()

    # The moderator it was assigned to sees the same number and source.
    wait_assigned(live_server, user.token(), ticket_id)
    live_server.wait_for_mail(MODERATOR, f"[#{number}]", timeout=MAIL_SECONDS)
    mod = open_tab()
    open_ticket_as(mod, MODERATOR, ticket_id, subject)
    expect(mod.page.locator(".ticket-ref")).to_have_text(f"✉ #{number}")
    expect(mod.page.locator(".timeline")).to_contain_text("Ticket filed by email")
    shot(mod.page, "ticket-by-email-moderator", full_page=True)
    mod.assert_clean()


def test_a_reply_goes_out_by_mail_and_the_answer_comes_back_onto_the_ticket(
    open_tab, live_server: LiveServer, support_mailbox: Mailbox
):
    requester = "omar@example.com"
    subject = "Password reset link expired"
    ticket_id, number, first_id, ack = mailed_in_ticket(
        live_server,
        support_mailbox,
        requester,
        subject,
        "The reset link in your email says it expired, though I clicked it at once.",
    )

    # The moderator answers on the page and waits for the requester.
    mod = open_tab()
    mp = mod.page
    mod.goto()
    mod.sign_in(MODERATOR)  # signed in first: the ticket is theirs once triage assigns it
    wait_assigned(live_server, mod.token(), ticket_id)
    mp.goto(f"{live_server.url}/#/tickets/{ticket_id}")
    expect(mp.get_by_role("heading", name=subject)).to_be_visible()
    answer = "Which browser do you use? Links from some mail apps open in a private window."
    mp.get_by_label("Reply or internal note").fill(answer)
    mp.get_by_role("button", name="Send reply").click()
    expect(mp.locator(".comment", has_text=answer)).to_be_visible()
    mp.get_by_role("button", name="Wait for requester").click()
    badges = mp.locator(".badges")
    expect(badges).to_contain_text("Waiting on requester")

    # The requester gets the answer in the same conversation as the acknowledgement.
    relayed = live_server.wait_for_mail(
        requester, subject, timeout=MAIL_SECONDS, check=lambda m: answer in m.text
    )
    assert relayed.subject == f"[#{number}] {subject}" == ack.subject
    assert relayed.message["Auto-Submitted"] is None  # a person wrote it
    assert relayed.message["Message-ID"] not in (ack.message["Message-ID"], first_id)
    thread = references(relayed)
    assert thread[0] == first_id  # the conversation's root: the requester's first message
    assert str(ack.message["Message-ID"]) in thread
    assert relayed.message["In-Reply-To"] == thread[-1]
    assert relayed.message["From"].addresses[0].addr_spec == support_mailbox.user
    assert relayed.message["Reply-To"].addresses[0].addr_spec == support_mailbox.user

    # They answer from their mail client, quoting as mail clients do.
    reply_text = "Chrome on a laptop, not private. It happens with Firefox too."
    quoted = "\n".join(f"> {line}" for line in relayed.text.splitlines())
    reply_id = customer_mail(
        support_mailbox,
        requester,
        f"Re: {relayed.subject}",
        f"{reply_text}\n\nOn Mon, 30 Nov 2026 at 13:00, Support wrote:\n{quoted}\n",
        reply_to=relayed,
    )

    # Once the mailbox is read, it is on the ticket page, marked as email, without the quoted
    # history, and the ticket no longer waits.
    came_back = wait_for_comment(live_server, mod.token(), ticket_id, reply_text)
    assert came_back["source"] == "email" and came_back["body"] == reply_text
    mp.reload()
    comment = mp.locator(".comment", has_text=reply_text)
    expect(comment).to_be_visible()
    expect(comment).to_contain_text("by email")
    expect(comment).not_to_contain_text("Support wrote")
    expect(badges).to_contain_text("Open")
    expect(badges).not_to_contain_text("Waiting on requester")
    expect(mp.locator(".timeline")).to_contain_text("Reply posted by email")
    shot(mp, "ticket-reply-by-email-moderator", full_page=True)

    # The requester's page shows the whole conversation.
    user = open_tab()
    open_ticket_as(user, requester, ticket_id, subject)
    up = user.page
    expect(up.locator(".comment", has_text=answer)).to_be_visible()
    mine = up.locator(".comment", has_text=reply_text)
    expect(mine).to_contain_text("by email")
    expect(up.locator(".ticket-ref")).to_have_text(f"✉ #{number}")
    user.assert_clean()

    # Resolved: the notice joins the thread, answering the requester's last message.
    mp.get_by_role("button", name="Resolve").click()
    expect(badges).to_contain_text("Resolved")
    resolved = live_server.wait_for_mail(
        requester, subject, timeout=MAIL_SECONDS, check=lambda m: "resolved" in m.text
    )
    assert resolved.subject == f"[#{number}] {subject}"
    assert resolved.message["Auto-Submitted"] == "auto-generated"
    assert resolved.message["In-Reply-To"] == reply_id
    assert references(resolved)[0] == first_id and reply_id in references(resolved)
    assert support_mailbox.count("INBOX") == 0
    mod.assert_clean()


def test_an_admin_sees_which_mail_was_ignored_or_rejected_and_why(
    open_tab, live_server: LiveServer, support_mailbox: Mailbox
):
    handled = support_mailbox.count("Processed")
    away = EmailMessage()
    away["From"] = "dana@example.com"
    away["To"] = support_mailbox.user
    away["Subject"] = "Out of office: Invoices export times out"
    away["Auto-Submitted"] = "auto-replied"
    away["Message-ID"] = make_msgid(domain=CLIENT_DOMAIN)
    away.set_content("I am away until Monday.")
    nobody = EmailMessage()
    nobody["To"] = support_mailbox.user
    nobody["Subject"] = "Who sent this?"
    nobody["Message-ID"] = make_msgid(domain=CLIENT_DOMAIN)
    nobody.set_content("A message without a sender.")
    support_mailbox.append([bytes(away), bytes(nobody)])
    deadline = time.monotonic() + MAIL_SECONDS
    while support_mailbox.count("Processed") < handled + 2:
        assert time.monotonic() < deadline, "the two messages were never read"
        time.sleep(0.1)

    admin = open_tab()
    page = admin.page
    admin.goto("#/")
    admin.sign_in(ADMIN_EMAIL)
    page.get_by_role("link", name="Inbound mail").click()
    expect(page.get_by_role("heading", name="Inbound mail")).to_be_visible()
    rows = page.locator("table.inbound tbody tr")
    ignored = rows.filter(has_text="Out of office")
    expect(ignored).to_contain_text("Ignored")
    expect(ignored).to_contain_text("Auto-Submitted: auto-replied")
    expect(ignored).to_contain_text("dana@example.com")
    rejected = rows.filter(has_text="Who sent this?")
    expect(rejected).to_contain_text("Rejected")
    expect(rejected).to_contain_text("no usable sender address")
    # The earlier journeys' mail is there too, with what it became and a link to the ticket.
    reply = rows.filter(has_text="Re: [#").filter(has_text="omar@example.com")
    expect(reply).to_contain_text("Reply")
    expect(reply.get_by_role("link", name="Open ticket")).to_be_visible()
    first = rows.filter(has_text="dana@example.com").filter(has_text="Invoices export times out")
    expect(first.filter(has_text="New ticket")).to_have_count(1)

    shot(page, "admin-inbound-mail", full_page=True)

    page.get_by_label("Outcome").select_option("rejected")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Who sent this?")
    admin.assert_labelled()
    admin.assert_clean()
