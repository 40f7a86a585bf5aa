"""Files in a real browser: a user attaches a file when filing a ticket and another to a reply;
a file over the cap is refused with the server's reason; the moderator sees and downloads both,
adds a file to an internal note, and the user never sees that one."""

from __future__ import annotations

from pathlib import Path

from .conftest import LiveServer, expect, shot

TITLE = "Report export crashes with a Postgres error"
DESCRIPTION = "Exporting the monthly report fails; the log is attached."
LOG = b"2026-11-30 12:00:01 ERROR psycopg: connection reset by peer\n" * 40
SCREENSHOT = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
NOTE_FILE = b"db-2 pool settings: max=20\n"


def test_files_go_with_a_ticket_and_a_reply_and_staff_download_them(
    open_tab, live_server: LiveServer, tmp_path: Path
):
    user = open_tab()
    user.expected_statuses = {413}  # the oversized file, on purpose
    page = user.page
    user.goto("#/new")
    user.sign_in("erin@example.com")
    expect(page.get_by_role("heading", name="New ticket")).to_be_visible()
    user.assert_labelled()
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Description").fill(DESCRIPTION)
    page.get_by_label("Attach files (optional)").set_input_files(
        [{"name": "export.log", "mimeType": "text/plain", "buffer": LOG}]
    )
    expect(page.get_by_role("list", name="Chosen files")).to_contain_text("export.log")
    expect(page.get_by_role("list", name="Chosen files")).to_contain_text("2.3 KB")
    page.get_by_role("button", name="Submit ticket").click()
    expect(page.get_by_role("heading", name=TITLE)).to_be_visible()
    ticket_files = page.get_by_role("list", name="Files of the ticket")
    expect(ticket_files.get_by_role("button", name="Download export.log")).to_be_visible()
    expect(ticket_files).to_contain_text("2.3 KB")
    ticket_url = page.url

    # A reply with a screenshot; then one with a file over the cap (the server says why).
    page.get_by_label("Your reply").fill("Here is what the screen shows.")
    page.get_by_label("Attach files").set_input_files(
        [{"name": "screen.png", "mimeType": "image/png", "buffer": SCREENSHOT}]
    )
    user.assert_labelled()
    page.get_by_role("button", name="Send reply").click()
    reply = page.locator(".comment", has_text="Here is what the screen shows.")
    expect(reply.get_by_role("button", name="Download screen.png")).to_be_visible()
    expect(page.get_by_role("list", name="Chosen files")).to_be_hidden()  # the form was reset

    cap = live_server.settings.attachment_max_bytes
    page.get_by_label("Your reply").fill("And the full dump.")
    page.get_by_label("Attach files").set_input_files(
        [{"name": "dump.bin", "mimeType": "application/octet-stream", "buffer": b"\0" * (cap + 1)}]
    )
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#flash")).to_contain_text("Reply sent, but not all of its files.")
    expect(page.locator("#flash")).to_contain_text(
        "dump.bin: The file is larger than the limit of 10 MiB"
    )
    expect(page.locator(".comment", has_text="And the full dump.")).to_be_visible()
    user.assert_clean()

    # The moderator sees both files where they were attached, and downloads them.
    mod = open_tab()
    mp = mod.page
    mp.goto(ticket_url)
    mod.sign_in("mod.py@example.com")
    expect(mp.get_by_role("heading", name=TITLE)).to_be_visible()
    for name, data in (("export.log", LOG), ("screen.png", SCREENSHOT)):
        with mp.expect_download() as download:
            mp.get_by_role("button", name=f"Download {name}").click()
        saved = tmp_path / name
        download.value.save_as(saved)
        assert download.value.suggested_filename == name
        assert saved.read_bytes() == data

    # A file of an internal note is marked staff only, and the requester never sees it.
    mp.get_by_label("Reply or internal note").fill("Pool settings of db-2, for us.")
    mp.get_by_label("Attach files").set_input_files(
        [{"name": "pool.txt", "mimeType": "text/plain", "buffer": NOTE_FILE}]
    )
    mp.get_by_role("button", name="Add internal note").click()
    note = mp.locator(".comment.internal")
    expect(note.get_by_role("button", name="Download pool.txt")).to_be_visible()
    expect(note.locator(".file")).to_contain_text("staff only")
    mod.assert_labelled()
    shot(mp, "ticket-files-moderator", full_page=True)
    mod.assert_clean()

    page.reload()
    expect(page.get_by_role("heading", name=TITLE)).to_be_visible()
    expect(page.get_by_role("button", name="Download screen.png")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("pool.txt")
    user.assert_clean()
