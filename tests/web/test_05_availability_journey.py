"""Availability in a real browser: a moderator sets themselves away with "My availability" and
a new ticket goes to someone else; back again, the next one is theirs. The admin sees everyone's
availability on the People page and sets a cap and working hours there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ..conftest import ADMIN_EMAIL
from .conftest import LiveServer, expect, shot

PY_ANSWER = {
    "required_skills": ["python"],
    "priority": "high",
    "ticket_type": "bug",
    "helpful_notes": "Look at the worker's traceback.",
}


def test_moderator_goes_away_and_tickets_go_to_someone_else(open_tab, live_server: LiveServer):
    live = live_server
    mod_py = live.ids["mod.py@example.com"]
    requester = live.api_token("rita@example.com")

    tab = open_tab()
    page = tab.page
    tab.goto()
    tab.sign_in("mod.py@example.com")
    page.get_by_role("link", name="My availability").click()
    expect(page.get_by_role("heading", name="My availability")).to_be_visible()
    status = page.locator("#my-availability-status")
    expect(status).to_contain_text("Available")
    expect(status).to_contain_text("Working hours (UTC): Any time.")
    tab.assert_labelled()

    # Away until tomorrow (the browser runs in UTC here).
    back_at = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    page.get_by_label("Away until").fill(back_at.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Save availability").click()
    expect(page.locator("#flash")).to_contain_text("New tickets go to someone else")
    expect(status).to_contain_text("Away until")
    shot(page, "my-availability")
    with live.client(tab.token()) as c:
        me = c.get("/auth/me").json()
    assert me["available"] is False
    assert datetime.fromisoformat(me["away_until"]) == back_at

    ticket = live.file_ticket(
        requester, "Python worker crashes", "Traceback in the worker.", PY_ANSWER
    )
    assert ticket["assigned_to"] not in (None, mod_py)
    with live.client(live.api_token(ADMIN_EMAIL)) as c:
        seen = c.get(f"/tickets/{ticket['id']}").json()
    assert seen["assignment_reason"].startswith("no available moderator has python")

    # Back: clear "away until"; the next python ticket is theirs again.
    page.get_by_role("button", name="Not away").click()
    page.get_by_role("button", name="Save availability").click()
    expect(page.locator("#flash")).to_contain_text("You are available for new tickets")
    expect(status).to_contain_text("Available")
    again = live.file_ticket(requester, "Python import fails", "Another traceback.", PY_ANSWER)
    assert again["assigned_to"] == mod_py

    # A bad time zone is refused by the server and shown on the field.
    tab.expected_statuses = {422}
    page.get_by_label("Time zone").fill("Mars/Olympus_Mons")
    page.get_by_role("button", name="Save availability").click()
    expect(page.locator("#me-timezone-error")).to_be_visible()
    expect(page.get_by_label("Time zone")).to_have_attribute("aria-invalid", "true")
    tab.assert_clean()


def test_admin_sees_and_sets_everyones_availability(open_tab, live_server: LiveServer):
    live = live_server
    tab = open_tab()
    page = tab.page
    tab.goto()
    tab.sign_in(ADMIN_EMAIL)
    expect(page.get_by_role("heading", name="All tickets")).to_be_visible()
    page.get_by_role("link", name="People").click()
    expect(page.get_by_role("heading", name="People", exact=True)).to_be_visible()
    web_row = page.locator('tr[data-email="mod.web@example.com"]')
    expect(web_row).to_contain_text("Available")
    expect(web_row).to_contain_text("No cap")

    page.get_by_role("button", name="Edit mod.web@example.com").click()
    editor = page.locator("form.editor-form")
    tab.assert_labelled()
    editor.get_by_label("Most open tickets").fill("2")
    editor.get_by_label("Time zone").fill("Asia/Tokyo")
    # Hours that are never now: a one-hour shift three days from today (Tokyo time).
    editor.get_by_role("button", name="Add hours").click()
    day = (datetime.now(UTC) + timedelta(hours=9, days=3)).weekday()
    editor.get_by_label("Day of working hours 1").select_option(str(day))
    editor.get_by_label("Start of working hours 1").fill("09:00")
    editor.get_by_label("End of working hours 1").fill("10:00")
    shot(page, "admin-people-availability", full_page=True)
    editor.get_by_role("button", name="Save changes").click()
    expect(page.locator("#flash")).to_contain_text("Saved changes for mod.web@example.com")
    expect(web_row).to_contain_text("Off shift")
    expect(web_row).to_contain_text("At most 2 open")
    expect(web_row).to_contain_text("09:00\u201310:00 (Asia/Tokyo)")
    with live.client(tab.token()) as c:
        [saved] = c.get("/admin/users", params={"q": "mod.web@"}).json()["items"]
    assert saved["max_open_tickets"] == 2 and saved["timezone"] == "Asia/Tokyo"
    assert saved["working_hours"] == [{"day": day, "start": "09:00", "end": "10:00"}]
    assert saved["available"] is False
    tab.assert_clean()
