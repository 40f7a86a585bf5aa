"""The admin's dashboard in a real browser: tickets filed through the API, then given SLA
states and times as the SLA clock would (straight SQL on the live server's SQLite file: the
clock itself is another feature), and the admin reads the backlog, the at-risk and breached
counts, the times, the load per person and the AI's figures; an empty period shows dashes."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from ..conftest import ADMIN_EMAIL
from .conftest import LiveServer, expect, shot

TICKETS = [
    ("Nightly python import fails", "Our python import job fails with a postgres error."),
    ("Postgres replica lags behind", "The python reports read stale data from postgres."),
    ("Python worker leaks memory", "The python worker grows until postgres drops it."),
]


def _set_sla(live: LiveServer, ids: list[str]) -> None:
    path = live.settings.database_url.split("///", 1)[1]
    with sqlite3.connect(path, timeout=30) as db:
        at_risk, breached, done = ids
        db.execute("UPDATE tickets SET sla_status = 'at_risk' WHERE id = ?", (at_risk,))
        db.execute(
            "UPDATE tickets SET sla_status = 'breached', sla_response_breached = 1 WHERE id = ?",
            (breached,),
        )
        # Answered after 30 minutes, resolved after 2 hours, within its SLA.
        db.execute(
            "UPDATE tickets SET status = 'resolved', sla_status = 'met', "
            "first_responded_at = datetime(created_at, '+30 minutes'), "
            "resolved_at = datetime(created_at, '+120 minutes') WHERE id = ?",
            (done,),
        )
        db.commit()


def test_admin_reads_the_dashboard(open_tab, live_server: LiveServer):
    live = live_server
    grace = live.api_token("grace@example.com")
    ids = [live.file_ticket(grace, title, text)["id"] for title, text in TICKETS]
    _set_sla(live, ids)

    tab = open_tab()
    page = tab.page
    tab.goto()
    tab.sign_in(ADMIN_EMAIL)
    expect(page.get_by_role("heading", name="All tickets")).to_be_visible()
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    tab.assert_labelled()

    def figure(name: str):  # the value of one tile
        return page.locator(f'[data-figure="{name}"] .stat-value')

    expect(figure("created")).to_have_text("3")
    expect(figure("resolved")).to_have_text("1")
    expect(figure("backlog")).to_have_text("2")
    expect(figure("at-risk")).to_have_text("1")
    expect(figure("breached")).to_have_text("1")
    expect(figure("compliance")).to_have_text("50%")  # one met, one breached
    expect(page.locator('[data-figure="at-risk"]')).to_have_class(re.compile(r"\btone-warn\b"))

    # Charts are SVG images whose label carries the figures.
    expect(page.locator("#chart-backlog-status svg")).to_have_attribute(
        "aria-label", re.compile(r"Open: 2, In progress: 0, Waiting: 0, Unassigned: 0")
    )
    expect(page.locator("#chart-backlog-priority svg")).to_have_attribute(
        "aria-label", re.compile(r"High: 2")
    )
    expect(page.locator("#chart-first-response svg")).to_have_attribute(
        "aria-label", re.compile(r"Median: 30 min")
    )
    expect(page.locator("#chart-resolution svg")).to_have_attribute(
        "aria-label", re.compile(r"Median: 2 h")
    )
    # Every ticket went to the Python moderator; the load table says so.
    priya = page.locator(f'#load-table tr[data-user-id="{live.ids["mod.py@example.com"]}"]')
    expect(priya).to_contain_text("Priya Patel")
    expect(priya.locator("td").nth(1)).to_have_text("2")  # open now
    expect(priya.locator("td").nth(2)).to_have_text("1")  # resolved
    expect(priya.locator("td").nth(3)).to_have_text("1")  # breached
    expect(page.locator('[data-figure="ai-analysed"]')).to_contain_text("3 tickets analysed")
    expect(page.locator('[data-figure="ai-fallback"]')).to_contain_text("0 fell back")
    shot(page, "admin-dashboard", full_page=True)

    # A period before any ticket: no figures, dashes for the times, the backlog stays.
    page.get_by_label("From").fill("2020-01-01")
    page.get_by_label("To").fill("2020-01-31")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"#/dashboard\?from=2020-01-01&to=2020-01-31$"))
    expect(figure("created")).to_have_text("0")
    expect(figure("compliance")).to_have_text("—")
    expect(figure("backlog")).to_have_text("2")
    expect(page.locator("#chart-first-response svg")).to_have_attribute(
        "aria-label", re.compile(r"Median: —")
    )

    # A preset brings the recent tickets back; the CSV downloads with the period's rows.
    page.get_by_role("button", name="Last 7 days").click()
    expect(figure("created")).to_have_text("3")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV").click()
    content = Path(download_info.value.path()).read_text(encoding="utf-8")
    for title, _ in TICKETS:
        assert title in content
    tab.assert_clean()
