"""The admin's journey in a real browser: all tickets with fallback ones standing out,
reassignment, re-running the AI on fallback tickets, and people (invite, role, skills chips,
deactivate/activate)."""

from __future__ import annotations

import re

from ..conftest import ADMIN_EMAIL
from .conftest import LiveServer, expect, shot

CHECKOUT = ("Checkout page javascript error", "Clicking pay shows a javascript error.")
INVOICE = ("Invoice PDF is blank", "The invoice download gives an empty PDF file.")
JS_ANSWER = {
    "required_skills": ["javascript"],
    "priority": "high",
    "ticket_type": "bug",
    "helpful_notes": "Check the payment widget's console output.",
}

BACKGROUND = [
    (
        "Dark mode colours are unreadable",
        {"required_skills": ["css"], "priority": "low", "ticket_type": "feature"},
    ),
    (
        "Password reset email never arrives",
        {"required_skills": [], "priority": "medium", "ticket_type": "support"},
    ),
]
CSS_ANSWER = {
    "required_skills": ["css"],
    "priority": "urgent",
    "ticket_type": "bug",
    "helpful_notes": "A stylesheet change hid the pay button.",
}


def test_admin_reassigns_reruns_ai_and_manages_people(open_tab, live_server: LiveServer):
    live = live_server
    dave = live.api_token("dave@example.com")
    carol = live.api_token("carol@example.com")
    for title, answer in BACKGROUND:
        live.file_ticket(carol, title, f"{title}. More details to follow.", answer)
    live.gemini.mode = "500"  # the AI is down: both tickets get the local fallback analysis
    checkout = live.file_ticket(dave, *CHECKOUT)
    invoice = live.file_ticket(dave, *INVOICE)
    live.gemini.mode = "ok"
    assert checkout["analysis_status"] == invoice["analysis_status"] == "fallback"

    tab = open_tab()
    tab.expected_statuses = {409}  # deactivating the last admin, on purpose
    page = tab.page
    tab.goto()
    tab.sign_in(ADMIN_EMAIL)
    expect(page.get_by_role("heading", name="All tickets")).to_be_visible()
    tab.assert_labelled()
    for ticket in (checkout, invoice):
        row = page.locator(f'tr[data-ticket-id="{ticket["id"]}"]')
        expect(row).to_have_class(re.compile("row-fallback"))
        expect(row).to_contain_text("Fallback")
        expect(row).to_contain_text("dave@example.com")
    expect(page.locator(f'tr[data-ticket-id="{checkout["id"]}"]')).to_contain_text("Wes Webb")
    shot(page, "admin-tickets")

    page.get_by_label("Analysis").select_option("fallback")
    expect(page.locator("tbody tr:not(.row-fallback)")).to_have_count(0)
    for ticket in (checkout, invoice):
        expect(page.locator(f'tr[data-ticket-id="{ticket["id"]}"]')).to_be_visible()
    page.get_by_label("Search").fill("invoice")
    page.get_by_label("Search").press("Enter")
    expect(page.locator("tbody tr")).to_have_count(1)

    # Reassign the invoice ticket to a moderator.
    page.get_by_role("link", name=INVOICE[0]).click()
    expect(page.get_by_role("heading", name=INVOICE[0])).to_be_visible()
    expect(page.locator("#triage-details")).to_contain_text("Local model (AI failed)")
    expect(page.locator(".timeline")).to_contain_text(
        "AI analysis failed; the local model used instead"
    )
    expect(page.locator("#triage-details")).to_contain_text("500")  # the AI error, for admins
    page.get_by_label("Assign to").select_option(live.ids["mod.py@example.com"])
    page.get_by_role("button", name="Reassign").click()
    expect(page.locator("#ticket-details")).to_contain_text("Priya Patel (mod.py@example.com)")
    expect(page.locator(".timeline")).to_contain_text(
        f"Assigned to Priya Patel (mod.py@example.com) — assigned by admin {ADMIN_EMAIL}"
    )
    live.wait_for_mail("mod.py@example.com", f"New ticket for you: {INVOICE[0]}")
    tab.assert_labelled()

    # The AI is back: re-run it on every fallback ticket; the list catches up by itself.
    page.get_by_role("link", name="All tickets").click()
    expect(page.get_by_role("heading", name="All tickets")).to_be_visible()
    with live.client(tab.token()) as c:
        fallback = c.get("/tickets", params={"analysis_status": "fallback", "limit": 100})
    expected = sum(t["status"] in ("open", "in_progress") for t in fallback.json()["items"])
    assert expected >= 2
    live.gemini.answer = JS_ANSWER
    page.get_by_role("button", name="Re-run AI on fallback tickets").click()
    expect(page.locator("#flash")).to_contain_text(
        f"Queued {expected} fallback tickets for AI re-analysis."
    )
    for ticket in (checkout, invoice):
        row = page.locator(f'tr[data-ticket-id="{ticket["id"]}"]')
        expect(row).to_contain_text("AI triaged", timeout=10_000)
        expect(row).not_to_have_class(re.compile("row-fallback"))

    # Re-analyse one ticket: its page updates by itself when the new analysis lands.
    live.gemini.answer = CSS_ANSWER
    page.get_by_role("link", name=CHECKOUT[0]).click()
    expect(page.locator(".ticket-heading .badges")).to_contain_text("High")
    page.get_by_role("button", name="Re-analyse with AI").click()
    expect(page.locator("#flash")).to_contain_text("Queued for AI re-analysis.")
    expect(page.locator(".ticket-heading .badges")).to_contain_text("Urgent", timeout=10_000)
    expect(page.locator("#triage-details")).to_contain_text(CSS_ANSWER["helpful_notes"])

    # People: invite, change a role and skills with the chips editor, deactivate/activate.
    page.get_by_role("link", name="People").click()
    expect(page.get_by_role("heading", name="People", exact=True)).to_be_visible()
    tab.assert_labelled()
    invite = page.locator("form.invite")
    invite.get_by_label("Email").fill("erin@example.com")
    invite.get_by_label("Name (optional)").fill("Erin Ops")
    invite.get_by_label("Role").select_option("moderator")
    chips = invite.get_by_label("Skills (for moderators)", exact=True)
    chips.fill("Linux")
    chips.press("Enter")
    invite.get_by_role("button", name="Invite").click()
    expect(page.locator("#flash")).to_contain_text("Invited erin@example.com as moderator")
    erin = page.locator('tr[data-email="erin@example.com"]')
    expect(erin).to_contain_text("Moderator")
    expect(erin).to_contain_text("linux")

    dave_row = page.locator('tr[data-email="dave@example.com"]')
    expect(dave_row).to_contain_text("User")
    page.get_by_role("button", name="Edit dave@example.com").click()
    editor = page.locator("form.editor-form")
    expect(editor.get_by_label("Role")).to_be_focused()
    editor.get_by_label("Name").fill("Dave Ops")
    editor.get_by_label("Role").select_option("moderator")
    skills = editor.get_by_label("Skills", exact=True)
    for skill in ("Kubernetes", "docker,", "linux"):
        skills.press_sequentially(skill)
        if not skill.endswith(","):
            skills.press("Enter")
    editor.get_by_role("button", name="Remove linux").click()
    expect(editor.locator(".chip")).to_have_text([re.compile("kubernetes"), re.compile("docker")])
    shot(page, "admin-people", full_page=True)
    editor.get_by_role("button", name="Save changes").click()
    expect(page.locator("#flash")).to_contain_text("Saved changes for dave@example.com")
    expect(dave_row).to_contain_text("Dave Ops")
    expect(dave_row).to_contain_text("Moderator")
    expect(dave_row.locator(".chip")).to_have_text(["kubernetes", "docker"])
    with live.client(tab.token()) as c:
        [saved] = c.get("/admin/users", params={"q": "dave@"}).json()["items"]
    assert saved["role"] == "moderator" and saved["skills"] == ["kubernetes", "docker"]
    with live.client(dave) as c:  # a role change signs the person out everywhere
        assert c.get("/auth/me").status_code == 401

    page.get_by_role("button", name="Deactivate erin@example.com").click()
    expect(erin).to_contain_text("Deactivated")
    page.get_by_role("button", name="Activate erin@example.com").click()
    expect(erin).to_contain_text("Active")
    page.get_by_role("button", name=f"Deactivate {ADMIN_EMAIL}").click()
    expect(page.locator("#flash")).to_contain_text(re.compile("admin", re.I))
    expect(page.locator(f'tr[data-email="{ADMIN_EMAIL}"]')).to_contain_text("Active")
    tab.assert_clean()
