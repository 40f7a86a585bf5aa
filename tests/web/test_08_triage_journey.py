"""The admin's triage quality page in a real browser: corrections show up as rates and in the
confusion matrix, "Train now" trains a model from them, and the new version is listed active."""

from __future__ import annotations

from ..conftest import ADMIN_EMAIL
from .conftest import LiveServer, expect, shot

ZORBLAX = [
    (f"Zorblax node {i} stopped", f"The zorblax cluster on node {i} stopped.") for i in range(6)
]
INVOICES = [
    (f"Invoice {i} charged twice", f"Invoice {i} was charged twice, refund please.")
    for i in range(6)
]


def test_admin_sees_corrections_and_trains_a_model(open_tab, live_server: LiveServer):
    live = live_server
    grace = live.api_token("grace@example.com")
    admin = live.api_token(ADMIN_EMAIL)
    with live.client(admin) as c:
        for batch, fields in (
            (ZORBLAX, {"ticket_type": "technical"}),
            (INVOICES, {"ticket_type": "support", "priority": "low"}),
        ):
            for title, body in batch:
                ticket = live.file_ticket(grace, title, body)
                assert ticket["ticket_type"] == "bug"  # what the (fake) AI says
                r = c.patch(f"/tickets/{ticket['id']}", json=fields)
                assert r.status_code == 200, r.text

    tab = open_tab()
    page = tab.page
    tab.goto()
    tab.sign_in(ADMIN_EMAIL)
    page.get_by_role("link", name="Triage quality").click()
    expect(page.get_by_role("heading", name="Triage quality", exact=True)).to_be_visible()
    tab.assert_labelled()
    row = page.locator('#quality-providers tr[data-provider="gemini"]')
    expect(row).to_contain_text("12")
    expect(row.locator('td[data-label="Type corrected"]')).to_have_text("12 (100.0 %)")
    expect(row.locator('td[data-label="Priority corrected"]')).to_have_text("6 (50.0 %)")
    expect(
        page.locator('#quality-confusion td[data-said="bug"][data-final="technical"]')
    ).to_have_text("6")
    expect(
        page.locator('#quality-confusion td[data-said="bug"][data-final="support"]')
    ).to_have_text("6")
    expect(page.locator("#active-model")).to_contain_text("shipped with the product")
    expect(page.locator("#triage-models")).to_contain_text("No model has been trained here yet")

    page.get_by_role("button", name="Train now").click()
    expect(page.locator("#flash")).to_contain_text("Training is queued")
    version = page.locator("#triage-models tr[data-model-id]")
    expect(version).to_have_count(1, timeout=60_000)
    expect(version).to_have_attribute("data-active", "true")
    expect(version).to_contain_text("Active")
    expect(page.locator("#active-model")).to_contain_text("Active local model")
    shot(page, "admin-triage-quality", full_page=True)
    tab.assert_clean()
