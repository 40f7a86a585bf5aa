"""Journeys of a user and a moderator in a real browser: sign in with the emailed code, file a
ticket that is triaged and assigned on screen, work it (internal note, reply, resolve) and see
the outcome from the user's side, without the internal note."""

from __future__ import annotations

import re

from .conftest import PHONE, LiveServer, expect, shot

TITLE = "Nightly import fails with a Postgres error"
DESCRIPTION = (
    "Since this morning our python import job fails with a traceback from postgres: "
    "connection reset.\nSteps: run the nightly job."
)
NOTE = "Pool exhausted on db-2; restarted it. Not for the customer's eyes."
REPLY = "We found the cause and fixed it. Please try the import again."
BACKGROUND = [
    (
        "Database backups take six hours",
        {
            "required_skills": ["postgresql"],
            "priority": "medium",
            "ticket_type": "technical",
            "helpful_notes": "Look at the WAL archive settings.",
        },
    ),
    (
        "Payment webhook retries flood the logs",
        {
            "required_skills": ["python"],
            "priority": "urgent",
            "ticket_type": "bug",
            "helpful_notes": "Idempotency keys are probably missing.",
        },
    ),
]


def test_user_files_a_ticket_and_the_moderator_resolves_it(open_tab, live_server: LiveServer):
    user = open_tab()
    user.expected_statuses = {400, 422}  # a wrong code and a blank title, on purpose
    page = user.page

    # Sign in: email, then the code; a wrong code first gets a clear message.
    user.goto()
    expect(page.get_by_role("heading", name="Sign in to Acme Helpdesk")).to_be_visible()
    user.assert_labelled()
    page.get_by_label("Email address").fill("alice@example.com")
    shot(page, "sign-in")
    before = len(live_server.smtp.to("alice@example.com"))
    page.get_by_label("Email address").press("Enter")
    code = live_server.sign_in_code("alice@example.com", before)
    wrong = "000000" if code != "000000" else "111111"
    page.get_by_label("6-digit code").fill(wrong)
    page.get_by_label("6-digit code").press("Enter")
    expect(page.locator("#signin-code-error")).to_have_text(re.compile("wrong or has expired"))
    expect(page.get_by_label("6-digit code")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("6-digit code").fill(code)
    page.get_by_label("6-digit code").press("Enter")
    expect(page.get_by_role("heading", name="My tickets")).to_be_visible()
    expect(page.get_by_text("You have not filed any tickets yet.")).to_be_visible()

    # File a ticket: the API's validation error shows next to the field.
    page.get_by_role("link", name="New ticket").first.click()
    expect(page.get_by_role("heading", name="New ticket")).to_be_visible()
    user.assert_labelled()
    page.get_by_label("Title").fill("   ")
    page.get_by_label("Description").fill(DESCRIPTION)
    page.get_by_role("button", name="Submit ticket").click()
    title_error = page.locator("#ticket-title-error")
    expect(title_error).to_have_text("This field is required")
    expect(page.get_by_label("Title")).to_be_focused()
    shot(page, "new-ticket-validation")

    live_server.gemini.mode = "slow"  # the AI takes a moment: the page must catch up alone
    live_server.gemini.delay = 1.5
    page.get_by_label("Title").fill(TITLE)
    page.get_by_role("button", name="Submit ticket").click()
    expect(page.get_by_role("heading", name=TITLE)).to_be_visible()
    badges = page.locator(".ticket-heading .badges")
    expect(badges).to_contain_text("Analysing…")
    # No reload: the page polls until the ticket is analysed and assigned.
    expect(badges).to_contain_text("AI triaged", timeout=10_000)
    live_server.gemini.mode = "ok"
    expect(badges).to_contain_text("High")
    expect(badges).to_contain_text("Bug")
    expect(page.locator("#ticket-details")).to_contain_text("A support agent is on it")
    expect(page.locator(".description")).to_have_text(DESCRIPTION)
    ticket_url = page.url
    ticket_id = ticket_url.rsplit("/", 1)[1]

    page.get_by_role("link", name="My tickets").click()
    row = page.locator(f'tr[data-ticket-id="{ticket_id}"]')
    expect(row).to_contain_text("AI triaged")
    expect(row).to_contain_text("A support agent")
    shot(page, "user-tickets")
    user.assert_clean()

    # The moderator follows the link in the assignment email (deep link through sign-in).
    mail = live_server.wait_for_mail("mod.py@example.com", f"New ticket for you: {TITLE}")
    link = re.search(r"(http://\S+/#/tickets/\S+)", mail.text)
    assert link and link.group(1) == f"{live_server.url}/#/tickets/{ticket_id}"
    # Other work in the same queue, so the queue has something to filter.
    carol = live_server.api_token("carol@example.com")
    for title, answer in BACKGROUND:
        live_server.file_ticket(carol, title, f"{title}. Details to follow.", answer)

    mod = open_tab()
    mod.page.goto(link.group(1))
    mod.sign_in("mod.py@example.com")
    mp = mod.page
    expect(mp.get_by_role("heading", name=TITLE)).to_be_visible()
    triage = mp.locator("#triage-details")
    expect(triage).to_contain_text("python")
    expect(triage).to_contain_text("postgresql")
    expect(triage).to_contain_text("Check the connection pool settings first.")
    expect(triage).to_contain_text(re.compile("matched skills"))
    expect(mp.locator(".timeline")).to_contain_text("Analysed by AI (gemini")
    expect(mp.locator(".timeline")).to_contain_text("Assigned to you")
    mod.assert_labelled()

    # Internal note and public reply look different; then resolve.
    reply_box = mp.get_by_label("Reply or internal note")
    reply_box.fill(NOTE)
    mp.get_by_role("button", name="Add internal note").click()
    note = mp.locator(".comment.internal")
    expect(note).to_contain_text(NOTE)
    expect(note).to_contain_text("Internal note · staff only")
    reply_box.fill(REPLY)
    mp.get_by_role("button", name="Send reply").click()
    expect(mp.locator(".comment:not(.internal)")).to_contain_text(REPLY)
    mp.get_by_label("Priority").select_option("urgent")
    mp.get_by_role("button", name="Save triage").click()
    expect(mp.locator(".ticket-heading .badges")).to_contain_text("Urgent")
    expect(mp.locator(".timeline")).to_contain_text("priority: high → urgent")
    mp.get_by_role("button", name="Start work").click()
    expect(mp.locator(".ticket-heading .badges")).to_contain_text("In progress")
    mp.get_by_role("button", name="Resolve").click()
    expect(mp.locator(".ticket-heading .badges")).to_contain_text("Resolved")
    expect(mp.locator(".timeline")).to_contain_text("Status: In progress → Resolved")
    expect(mp.locator(".timeline")).to_contain_text("Internal note added")
    shot(mp, "ticket-detail-moderator", full_page=True)

    # The queue: filters and search.
    mp.get_by_role("link", name="My queue").click()
    expect(mp.get_by_role("heading", name="My queue")).to_be_visible()
    queue_row = mp.locator(f'tr[data-ticket-id="{ticket_id}"]')
    rows = mp.locator("tbody tr")
    expect(queue_row).to_contain_text("Resolved")
    expect(rows).to_have_count(1 + len(BACKGROUND))
    mp.get_by_label("Status").select_option("open")
    expect(rows).to_have_count(len(BACKGROUND))
    expect(queue_row).to_have_count(0)
    mp.get_by_label("Priority").select_option("urgent")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Payment webhook retries flood the logs")
    mp.get_by_label("Priority").select_option("")
    mp.get_by_label("Status").select_option("resolved")
    expect(queue_row).to_be_visible()
    expect(rows).to_have_count(1)
    mp.get_by_label("Status").select_option("closed")
    expect(mp.get_by_text("Nothing in your queue right now.")).to_be_visible()
    mp.get_by_label("Status").select_option("resolved")
    mp.get_by_label("Search").fill("no such words anywhere")
    mp.get_by_label("Search").press("Enter")
    expect(queue_row).to_have_count(0)
    mp.get_by_label("Search").fill("nightly import")
    mp.get_by_label("Search").press("Enter")
    expect(queue_row).to_be_visible()
    assert "status=resolved" in mp.url and "q=nightly+import" in mp.url
    mp.get_by_label("Status").select_option("")
    mp.get_by_label("Search").fill("")
    mp.get_by_label("Search").press("Enter")
    expect(rows).to_have_count(1 + len(BACKGROUND))
    shot(mp, "moderator-queue")
    mod.assert_clean()

    # The user sees it resolved, with the public reply and without the internal note.
    page.goto(ticket_url)
    expect(page.locator(".ticket-heading .badges")).to_contain_text("Resolved")
    expect(page.locator(".comments")).to_contain_text(REPLY)
    expect(page.locator("body")).not_to_contain_text(NOTE)
    expect(page.locator("body")).not_to_contain_text("Internal note")
    expect(page.locator("#triage-details")).to_have_count(0)
    resolved = live_server.wait_for_mail("alice@example.com", TITLE)
    assert "was resolved" in resolved.text

    # Reopen, then withdraw (close).
    page.get_by_role("button", name="Reopen").click()
    expect(page.locator(".ticket-heading .badges")).to_contain_text("Open")
    page.get_by_role("button", name="Withdraw ticket").click()
    page.get_by_role("button", name="Cancel").click()  # closing is final: it asks first
    expect(page.get_by_role("button", name="Withdraw ticket")).to_be_focused()
    page.get_by_role("button", name="Withdraw ticket").click()
    expect(page.get_by_role("button", name="Yes, withdraw ticket")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".ticket-heading .badges")).to_contain_text("Closed")
    expect(page.get_by_text("Closed tickets are final.")).to_be_visible()
    user.assert_clean()


def test_expired_session_keeps_the_draft_and_sign_in_limits(open_tab, live_server: LiveServer):
    """At phone width: the token dies while typing a ticket; signing in again restores it."""
    tab = open_tab(PHONE)
    tab.expected_statuses = {401, 429}  # the revoked token and the rate limit, on purpose
    page = tab.page
    tab.goto("#/new")  # a deep link: sign in first, then land on the form
    tab.sign_in("bob@example.com")
    expect(page.get_by_role("heading", name="New ticket")).to_be_visible()
    page.get_by_label("Title").fill("Export button does nothing")
    page.get_by_label("Description").fill("Clicking export on the reports page does nothing.")

    # The token stops working (revoked elsewhere, or expired) before the form is sent.
    with live_server.client(tab.token()) as c:
        assert c.post("/auth/logout").status_code == 204
    page.get_by_role("button", name="Submit ticket").click()
    expect(page.locator("#flash")).to_contain_text("Your session has ended")
    tab.sign_in("bob@example.com")
    expect(page.get_by_role("heading", name="New ticket")).to_be_visible()
    expect(page.get_by_text("Your unsent draft was restored.")).to_be_visible()
    expect(page.get_by_label("Title")).to_have_value("Export button does nothing")
    page.get_by_label("Description").focus()  # keyboard only: Tab to the button, Enter
    page.keyboard.press("Tab")
    expect(page.get_by_label("Attach files (optional)")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Submit ticket")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Export button does nothing")).to_be_visible()
    expect(page.locator(".ticket-heading .badges")).to_contain_text("AI triaged")
    shot(page, "phone-ticket")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("link", name="My tickets").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    shot(page, "phone-tickets")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # Sign out; too many codes for one address -> 429 with the wait time.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Acme Helpdesk")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('helpdesk.token')") is None
    with live_server.client() as c:
        for _ in range(live_server.settings.otp_max_per_hour):
            c.post("/auth/request-otp", json={"email": "limited@example.com"})
    page.get_by_label("Email address").fill("limited@example.com")
    page.get_by_role("button", name="Email me a code").click()
    expect(page.locator(".form-error")).to_have_text(
        re.compile(r"Too many sign-in codes .* Try again in \d+ (min|s)")
    )
    tab.assert_clean()
