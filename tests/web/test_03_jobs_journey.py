"""The admin's jobs page in a real browser: the mail server refuses, the assignment email of a
new ticket fails for good, the admin sees it on the Jobs page with its error (as text), retries
it once the server is fixed, and the email arrives."""

from __future__ import annotations

import re
import sqlite3
import time

from ..conftest import ADMIN_EMAIL
from .conftest import LiveServer, expect, shot

TITLE = "Invoices export stops at the first page"
DESCRIPTION = "The python export job stops after one page; postgres logs a timeout."
# The SMTP server's refusal becomes the job's error. Markup in it must show as text.
REFUSAL = "550 5.7.1 <b>Relaying</b> denied for this sender"


def _database_path(live: LiveServer) -> str:
    return live.settings.database_url.split("///", 1)[1]


def _fail_for_good(live: LiveServer, ticket_id: str) -> None:
    """Make the ticket's queued email's next attempt its last, until the job has failed.

    Straight SQL on the live server's SQLite file: the attempts a real outage would use up
    take minutes of backoff."""
    deadline = time.monotonic() + 20
    with sqlite3.connect(_database_path(live), timeout=30) as db:
        while time.monotonic() < deadline:
            db.execute(
                "UPDATE jobs SET max_attempts = attempts + 1 "
                "WHERE kind = 'send_email' AND status = 'queued' "
                "AND json_extract(payload, '$.ticket_id') = ?",
                (ticket_id,),
            )
            db.commit()
            row = db.execute(
                "SELECT status FROM jobs WHERE kind = 'send_email' "
                "AND json_extract(payload, '$.ticket_id') = ?",
                (ticket_id,),
            ).fetchone()
            if row and row[0] == "failed":
                return
            time.sleep(0.2)
    raise AssertionError("the email job never failed for good")


def test_admin_sees_a_failed_email_and_retries_it(open_tab, live_server: LiveServer):
    live = live_server
    grace = live.api_token("grace@example.com")
    tab = open_tab()
    page = tab.page
    tab.goto()
    tab.sign_in(ADMIN_EMAIL)
    expect(page.get_by_role("heading", name="All tickets")).to_be_visible()

    live.smtp.handler.fail_with = REFUSAL
    try:
        ticket = live.file_ticket(grace, TITLE, DESCRIPTION)
        assert ticket["assigned_to"] == live.ids["mod.py@example.com"]
        _fail_for_good(live, ticket["id"])
        with live.client(tab.token()) as c:
            failed = c.get("/admin/jobs", params={"status": "failed"}).json()["items"]
        [job] = [j for j in failed if j["ticket_id"] == ticket["id"]]
        assert job["kind"] == "send_email" and "Relaying" in job["last_error"]

        # The Jobs page lists failed jobs by default, with the error as text.
        page.get_by_role("link", name="Jobs").click()
        expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
        tab.assert_labelled()
        expect(page.get_by_label("Status")).to_have_value("failed")
        row = page.locator(f'tr[data-job-id="{job["id"]}"]')
        expect(row).to_contain_text("Email")
        expect(row).to_contain_text("Failed")
        expect(row).to_contain_text(f"{job['attempts']} / {job['max_attempts']}")
        expect(row).to_contain_text("<b>Relaying</b> denied")  # shown, never parsed as HTML
        expect(row.locator("b")).to_have_count(0)
        expect(row.get_by_role("link", name="Open ticket")).to_have_attribute(
            "href", f"#/tickets/{ticket['id']}"
        )
        expect(page.get_by_role("button", name="Retry all failed")).to_be_visible()
        shot(page, "admin-jobs")
    finally:
        live.smtp.handler.fail_with = None  # the mail server is fixed

    row.get_by_role("button", name=re.compile(r"^Retry email job")).click()
    expect(page.locator("#flash")).to_contain_text("is queued again")
    expect(row).to_have_count(0)  # no longer failed
    mail = live.wait_for_mail("mod.py@example.com", f"New ticket for you: {TITLE}")
    assert TITLE in mail.text
    # The page follows the retried job and says how it ended.
    expect(page.locator("#flash")).to_contain_text(f"Email job {job['id'][:8]} is done.")

    page.get_by_label("Status").select_option("done")
    expect(page).to_have_url(re.compile(r"#/jobs\?status=done$"))
    done = page.locator(f'tr[data-job-id="{job["id"]}"]')
    expect(done).to_contain_text("Done")
    expect(done.get_by_role("button")).to_have_count(0)  # nothing to retry
    tab.assert_labelled()

    # The ticket link leads to the ticket, whose timeline shows the email went out.
    done.get_by_role("link", name="Open ticket").click()
    expect(page.get_by_role("heading", name=TITLE)).to_be_visible()
    tab.assert_clean()
