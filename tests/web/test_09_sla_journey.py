"""The SLA in a real browser: the admin sets a policy on the SLA page (a bad value is refused
with a message), an urgent ticket soon runs at risk (the timer job fires in the embedded
worker and mails the assignee), and the queue shows it first with its time left."""

from __future__ import annotations

from ..conftest import ADMIN_EMAIL
from .conftest import LiveServer, expect, shot

URGENT_CSS = {
    "required_skills": ["css"],
    "priority": "urgent",
    "ticket_type": "bug",
    "helpful_notes": "A stylesheet change hid the pay button.",
}


def test_admin_sets_an_sla_and_sees_an_at_risk_ticket_first(open_tab, live_server: LiveServer):
    live = live_server
    tab = open_tab()
    tab.expected_statuses = {422}  # the refused policy, on purpose
    page = tab.page
    tab.goto()
    tab.sign_in(ADMIN_EMAIL)
    page.locator("#nav").get_by_role("link", name="SLA").click()
    expect(page.get_by_role("heading", name="Service levels")).to_be_visible()
    tab.assert_labelled()
    first = page.get_by_label("Urgent: first response, minutes")
    expect(first).to_have_value("60")
    expect(page.get_by_label("Low: resolution, minutes")).to_have_value("10080")

    first.fill("0")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#sla-errors")).to_contain_text("policies")
    expect(page.locator(".form-error")).to_contain_text("not saved")

    # One minute to answer urgent tickets, warned at 1 % (well under a second).
    first.fill("1")
    page.get_by_label("Urgent: resolution, minutes").fill("600")
    page.get_by_label("Warn when this much of a target is used (%)").fill("1")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#flash")).to_contain_text("SLA policy saved")
    shot(page, "admin-sla")
    with live.client(tab.token()) as c:
        saved = c.get("/admin/sla").json()
    assert saved["policies"]["urgent"] == {"first_response_minutes": 1, "resolution_minutes": 600}
    assert saved["warning_ratio"] == 0.01

    carol = live.api_token("carol@example.com")
    calm = live.file_ticket(carol, "Footer link colour", "The footer link is hard to read.")
    ticket = live.file_ticket(carol, "Pay button hidden", "The pay button is gone.", URGENT_CSS)
    assert ticket["priority"] == "urgent"
    at_risk = live.wait_for_ticket(carol, ticket["id"], lambda t: t["sla_status"] == "at_risk")
    assert at_risk["first_response_due_at"]
    warning = live.wait_for_mail("mod.web@example.com", "SLA first response due soon")
    assert f"[#{ticket['number']}]" in warning.subject

    page.locator("#nav").get_by_role("link", name="All tickets").click()
    page.get_by_label("Sort").select_option("due")
    rows = page.locator("tbody tr")
    expect(rows.first).to_have_attribute("data-ticket-id", ticket["id"])
    expect(rows.first).to_contain_text("At risk")
    expect(rows.first).to_contain_text("left")
    expect(page.locator(f'tr[data-ticket-id="{calm["id"]}"]')).to_be_visible()
    page.get_by_label("SLA").select_option("at_risk")
    expect(rows).to_have_count(1)

    page.get_by_role("link", name="Pay button hidden").click()
    details = page.locator("#ticket-details")
    expect(details).to_contain_text("First response due")
    expect(details).to_contain_text("Resolution due")
    expect(page.locator(".timeline")).to_contain_text("SLA first response at risk")
    tab.assert_clean()
