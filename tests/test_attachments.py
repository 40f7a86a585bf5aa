"""Attachments: upload, list, download with safe headers, who sees what, limits, and the files
on disk (content-addressed, kept or removed with their unit of work, orphans swept)."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from ticketing.attachments import service as attachments_service
from ticketing.attachments.service import DroppedFile
from ticketing.attachments.storage import AttachmentStorage, FileTooLarge, hold_until_end
from ticketing.middleware import MAX_BODY_BYTES
from ticketing.users import repository as users_repo

from .conftest import drain

TICKET = {
    "title": "Python worker crashes with a Postgres error",
    "description": "Our python import job fails with a traceback from postgres.",
}
MISSING_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class MailFile:
    """What the inbound mail handler passes to attach_incoming."""

    filename: str | None
    content_type: str
    data: bytes
    inline: bool = False


async def new_ticket(client: httpx.AsyncClient, runtime: Any, headers: dict[str, str]) -> str:
    r = await client.post("/tickets/create", json=TICKET, headers=headers)
    assert r.status_code == 201, r.text
    await drain(runtime)  # triage assigns it to mod_py
    return str(r.json()["id"])


async def upload(
    client: httpx.AsyncClient,
    ticket_id: str,
    headers: dict[str, str],
    data: bytes = b"hello, world\n",
    filename: str = "notes.txt",
    content_type: str = "text/plain",
    comment_id: str | None = None,
) -> httpx.Response:
    form = {"comment_id": comment_id} if comment_id is not None else None
    return await client.post(
        f"/tickets/{ticket_id}/attachments",
        files={"file": (filename, data, content_type)},
        data=form,
        headers=headers,
    )


def stored_files(root: Path) -> list[Path]:
    """Every file under ATTACHMENT_DIR (temp files included)."""
    return sorted(p for p in root.rglob("*") if p.is_file())


def age(path: Path, seconds: float) -> None:
    """Make a file look untouched for `seconds`."""
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def root(runtime: Any) -> Path:
    return Path(runtime.settings.attachment_dir)


# ---- the round trip -------------------------------------------------------------------------


async def test_upload_list_and_download_with_safe_headers(client, runtime, actors, root):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    data = b"line one\nline two\n"
    r = await upload(client, ticket_id, actors["alice"], data, "notes.txt", "text/plain")
    assert r.status_code == 201, r.text
    attachment = r.json()
    assert set(attachment) == {
        "id", "ticket_id", "comment_id", "filename", "content_type", "size", "uploaded_by",
        "internal", "created_at",
    }  # fmt: skip
    assert attachment["ticket_id"] == ticket_id and attachment["comment_id"] is None
    assert attachment["filename"] == "notes.txt" and attachment["content_type"] == "text/plain"
    assert attachment["size"] == len(data) and attachment["uploaded_by"] == actors.ids["alice"]
    assert attachment["internal"] is False
    assert r.headers["Cache-Control"] == "no-store"

    for who in ("alice", "mod_py", "admin"):
        r = await client.get(f"/tickets/{ticket_id}/attachments", headers=actors[who])
        assert r.status_code == 200
        assert r.json() == {"items": [attachment]}

    r = await client.get(f"/attachments/{attachment['id']}", headers=actors["mod_py"])
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.headers["Content-Disposition"] == (
        "attachment; filename=\"notes.txt\"; filename*=UTF-8''notes.txt"
    )
    assert r.headers.get_list("X-Content-Type-Options") == ["nosniff"]
    assert r.headers["Cache-Control"] == "no-store"
    # The route's own policy, enforced together with the app's (a browser applies every one).
    assert "sandbox; default-src 'none'" in r.headers.get_list("Content-Security-Policy")

    # On disk: one file named by its SHA-256, sharded, and nothing else (no temp file left).
    digest = hashlib.sha256(data).hexdigest()
    assert stored_files(root) == [root / digest[:2] / digest[2:4] / digest]


async def test_unicode_names_are_kept_and_offered_back_exactly(client, runtime, actors):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    name = "Résumé 报告 “final”.pdf"
    r = await upload(client, ticket_id, actors["alice"], b"%PDF-1.4", name, "application/pdf")
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == name
    r = await client.get(f"/attachments/{r.json()['id']}", headers=actors["alice"])
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Resume final.pdf"; ')
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%20%E6%8A%A5%E5%91%8A%20" in disposition
    assert r.headers["Content-Type"] == "application/pdf"


async def test_client_file_names_never_become_paths(client, runtime, actors, root, tmp_path):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    cases = {
        "../../etc/passwd": "passwd",
        "..\\..\\windows\\win.ini": "win.ini",
        "a\r\nb.html": "a b.html",  # httpx sends CR LF as %0D%0A, as browsers do
        "\u202egnp.exe": "gnp.exe",  # a bidi override that would disguise the name
        "..": "file",
        "x" * 300 + ".txt": "x" * 196 + ".txt",
    }
    for sent, kept in cases.items():
        r = await upload(client, ticket_id, actors["alice"], sent.encode(), sent, "text/plain")
        assert r.status_code == 201, (sent, r.text)
        assert r.json()["filename"] == kept, sent
        r = await client.get(f"/attachments/{r.json()['id']}", headers=actors["alice"])
        assert "\r" not in r.headers["Content-Disposition"]
        assert "\n" not in r.headers["Content-Disposition"]

    # A raw CR LF inside the part's header cannot even be sent: the header ends there.
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a\r\nb.html"\r\n'
        b"Content-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\n"
    )
    r = await client.post(
        f"/tickets/{ticket_id}/attachments",
        content=body,
        headers=actors["alice"] | {"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code in (400, 422)

    # Every file on disk is named by a hash, under the attachment directory only.
    for path in stored_files(root):
        assert path.parent.parent.parent == root
        assert len(path.name) == 64 and all(c in "0123456789abcdef" for c in path.name)
    assert not [p for p in tmp_path.rglob("*") if p.name in ("passwd", "win.ini", "gnp.exe")]


@pytest.mark.parametrize(
    ("content_type", "stored"),
    [
        ("text/html", "text/html"),
        ("text/html; charset=utf-8", "text/html"),
        ("image/svg+xml", "image/svg+xml"),
        ("application/xhtml+xml", "application/xhtml+xml"),
        ("text/javascript", "text/javascript"),
        ("application/xml", "application/xml"),
        ("not a type", "application/octet-stream"),
    ],
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_markup_and_script_are_never_served_as_such(
    client, runtime, actors, content_type, stored
):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    page = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    r = await upload(client, ticket_id, actors["alice"], page, "evil.html", content_type)
    assert r.status_code == 201, r.text
    assert r.json()["content_type"] == stored  # what the client said, when it is a type
    r = await client.get(f"/attachments/{r.json()['id']}", headers=actors["mod_py"])
    assert r.status_code == 200 and r.content == page
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox; default-src 'none'" in r.headers.get_list("Content-Security-Policy")


async def test_images_keep_their_type(client, runtime, actors):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    r = await upload(client, ticket_id, actors["alice"], png, "shot.png", "image/png")
    r = await client.get(f"/attachments/{r.json()['id']}", headers=actors["alice"])
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-Disposition"].startswith("attachment;")


# ---- who sees what ----------------------------------------------------------------------------


async def test_other_peoples_tickets_and_files_do_not_exist(client, runtime, actors):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    r = await upload(client, ticket_id, actors["alice"])
    file_id = r.json()["id"]
    for who in ("bob", "mod_web"):
        r = await upload(client, ticket_id, actors[who])
        missing = await upload(client, MISSING_ID, actors[who])
        assert r.status_code == missing.status_code == 404
        assert r.json() == missing.json()
        r = await client.get(f"/tickets/{ticket_id}/attachments", headers=actors[who])
        assert r.status_code == 404
        r = await client.get(f"/attachments/{file_id}", headers=actors[who])
        missing = await client.get(f"/attachments/{MISSING_ID}", headers=actors[who])
        assert r.status_code == missing.status_code == 404
        assert r.json() == missing.json()
    r = await client.get(f"/attachments/{file_id}")
    assert r.status_code == 401


async def test_files_of_internal_notes_are_staff_only(client, runtime, actors):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    r = await client.post(
        f"/tickets/{ticket_id}/comments",
        json={"body": "Pool exhausted on db-2", "internal": True},
        headers=actors["mod_py"],
    )
    note_id = r.json()["id"]
    r = await upload(
        client, ticket_id, actors["mod_py"], b"db-2 logs", "db2.log", comment_id=note_id
    )
    assert r.status_code == 201, r.text
    note_file = r.json()
    assert note_file["comment_id"] == note_id and note_file["internal"] is True
    r = await upload(client, ticket_id, actors["alice"], b"my screenshot", "shot.txt")
    public_file = r.json()

    r = await client.get(f"/tickets/{ticket_id}/attachments", headers=actors["alice"])
    assert [a["id"] for a in r.json()["items"]] == [public_file["id"]]
    r = await client.get(f"/attachments/{note_file['id']}", headers=actors["alice"])
    missing = await client.get(f"/attachments/{MISSING_ID}", headers=actors["alice"])
    assert r.status_code == 404 and r.json() == missing.json()

    for who in ("mod_py", "admin"):
        r = await client.get(f"/tickets/{ticket_id}/attachments", headers=actors[who])
        assert [a["id"] for a in r.json()["items"]] == [note_file["id"], public_file["id"]]
        r = await client.get(f"/attachments/{note_file['id']}", headers=actors[who])
        assert r.status_code == 200 and r.content == b"db-2 logs"
        r = await client.get(f"/tickets/{ticket_id}/comments", headers=actors[who])
        (note,) = r.json()["items"]
        assert note["attachments"] == [note_file]


async def test_files_go_with_the_uploaders_own_comments_only(client, runtime, actors):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    other_ticket = await new_ticket(client, runtime, actors["alice"])

    async def comment(who: str, ticket: str, internal: bool = False) -> str:
        r = await client.post(
            f"/tickets/{ticket}/comments",
            json={"body": f"from {who}", "internal": internal},
            headers=actors[who],
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    mine = await comment("alice", ticket_id)
    staff_reply = await comment("mod_py", ticket_id)
    note = await comment("mod_py", ticket_id, internal=True)
    elsewhere = await comment("alice", other_ticket)

    r = await upload(client, ticket_id, actors["alice"], comment_id=mine)
    assert r.status_code == 201 and r.json()["comment_id"] == mine
    refused = [staff_reply, note, elsewhere, MISSING_ID]
    answers = [(await upload(client, ticket_id, actors["alice"], comment_id=c)) for c in refused]
    assert {a.status_code for a in answers} == {422}
    assert len({a.text for a in answers}) == 1  # an internal note looks like no comment at all
    # Staff too attach only to what they wrote themselves.
    r = await upload(client, ticket_id, actors["admin"], comment_id=mine)
    assert r.status_code == 422
    r = await upload(client, ticket_id, actors["mod_py"], comment_id=staff_reply)
    assert r.status_code == 201 and r.json()["internal"] is False


async def test_comments_carry_their_files_in_one_query(client, runtime, actors):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    expected = {}
    for n in range(5):
        r = await client.post(
            f"/tickets/{ticket_id}/comments", json={"body": f"c{n}"}, headers=actors["alice"]
        )
        comment_id = r.json()["id"]
        files = []
        for k in range(n % 3):
            r = await upload(
                client, ticket_id, actors["alice"], f"{n}-{k}".encode(), f"f{n}{k}.txt",
                comment_id=comment_id,
            )  # fmt: skip
            files.append(r.json())
        expected[comment_id] = files
    await upload(client, ticket_id, actors["alice"], b"ticket file")  # not a comment's

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = runtime.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        r = await client.get(
            f"/tickets/{ticket_id}/comments", params={"order": "oldest"}, headers=actors["mod_py"]
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert r.status_code == 200
    assert {c["id"]: c["attachments"] for c in r.json()["items"]} == expected
    assert len([s for s in statements if "FROM attachments" in s]) == 1


# ---- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"attachment_max_bytes": 1000}])
async def test_files_over_the_cap_are_refused_with_413(
    client, runtime, actors, root, settings_overrides
):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    r = await upload(client, ticket_id, actors["alice"], b"x" * 1001, "big.bin")
    assert r.status_code == 413
    assert r.json() == {"detail": "The file is larger than the limit of 1000 bytes"}
    assert stored_files(root) == []  # the partial file is gone
    r = await upload(client, ticket_id, actors["alice"], b"x" * 1000, "fits.bin")
    assert r.status_code == 201
    # A body far over the cap is refused before it is read (Content-Length) ...
    big = b"y" * 200_000
    r = await upload(client, ticket_id, actors["alice"], big, "huge.bin")
    assert r.status_code == 413
    assert r.json()["detail"] == "The file is larger than the limit of 1000 bytes"
    # ... and so is one that does not say its length (chunked).

    async def chunks() -> Any:
        body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="c"\r\n\r\n'
        yield body
        for _ in range(10):
            yield b"z" * 20_000

    r = await client.post(
        f"/tickets/{ticket_id}/attachments",
        content=chunks(),
        headers=actors["alice"] | {"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413
    assert len(stored_files(root)) == 1
    # Other routes keep their 1 MiB limit.
    r = await client.post(
        "/tickets/create",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers=actors["alice"] | {"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json() == {"detail": "Request body too large (limit 1 MiB)"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_upload_route_takes_more_than_one_mebibyte(client, runtime, actors):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    data = os.urandom(3 * 1024 * 1024)
    r = await upload(client, ticket_id, actors["alice"], data, "dump.bin", "application/zip")
    assert r.status_code == 201, r.text
    r = await client.get(f"/attachments/{r.json()['id']}", headers=actors["alice"])
    assert r.content == data


@pytest.mark.parametrize(
    "settings_overrides", [{"max_attachments_per_ticket": 3, "comment_create_per_minute": 4}]
)
async def test_files_per_ticket_and_per_minute_are_bounded(
    client, runtime, actors, settings_overrides
):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    statuses = [
        (await upload(client, ticket_id, actors["alice"], f"{n}".encode())).status_code
        for n in range(4)
    ]
    assert statuses == [201, 201, 201, 409]
    other = await new_ticket(client, runtime, actors["alice"])
    r = await upload(client, other, actors["alice"])
    assert r.status_code == 201  # the fourth file of the minute
    r = await upload(client, other, actors["alice"])
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    r = await upload(client, other, actors["admin"])
    assert r.status_code == 201  # someone else is not slowed down


async def test_a_closed_ticket_takes_no_more_files(client, runtime, actors):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    r = await client.patch(
        f"/tickets/{ticket_id}", json={"status": "closed"}, headers=actors["alice"]
    )
    assert r.status_code == 200, r.text
    r = await upload(client, ticket_id, actors["alice"])
    assert r.status_code == 409
    assert r.json() == {"detail": "A closed ticket takes no more files; file a new ticket"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_malformed_uploads_get_a_4xx_and_leave_nothing_behind(client, runtime, actors, root):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    url = f"/tickets/{ticket_id}/attachments"

    async def send(body: bytes, content_type: str = "multipart/form-data; boundary=b") -> int:
        r = await client.post(
            url, content=body, headers=actors["alice"] | {"Content-Type": content_type}
        )
        assert r.headers["Content-Type"] == "application/json", r.text
        return r.status_code

    def part(name: str, value: bytes, filename: str | None = None) -> bytes:
        extra = f'; filename="{filename}"' if filename is not None else ""
        head = f'--b\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'
        return head.encode() + value + b"\r\n"

    end = b"--b--\r\n"
    assert await send(b"{}", "application/json") == 415
    assert await send(part("file", b"x", "a"), "multipart/form-data") == 400  # no boundary
    assert await send(part("comment_id", b"") + end) == 422  # no file
    assert await send(part("file", b"x", "a") + part("other", b"1") + end) == 422
    assert await send(part("file", b"x", "a") + part("file", b"y", "b") + end) == 422
    assert await send(part("file", b"x", "a") + part("comment_id", b"\xff") + end) == 422
    assert await send(part("file", b"x", "a") + part("comment_id", b"c" * 101) + end) == 422
    assert await send(part("file", b"x" * 1000, "a")) == 400  # no closing boundary
    assert await send(b"--b\r\nthis is not a header\r\n\r\nx\r\n" + end) == 400
    assert await send(b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n" + end) == 400
    assert stored_files(root) == []
    # An empty file is a file.
    assert await send(part("file", b"", "empty.txt") + end) == 201


# ---- files on disk and units of work ----------------------------------------------------------


async def test_the_same_content_is_stored_once(client, runtime, actors, root):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    first = await upload(client, ticket_id, actors["alice"], b"same bytes", "a.txt")
    second = await upload(client, ticket_id, actors["mod_py"], b"same bytes", "b.txt")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert len(stored_files(root)) == 1
    for r in (first, second):
        got = await client.get(f"/attachments/{r.json()['id']}", headers=actors["alice"])
        assert got.content == b"same bytes"


async def test_a_rolled_back_unit_of_work_leaves_no_new_file_but_keeps_shared_ones(
    client, runtime, actors, root
):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    await upload(client, ticket_id, actors["alice"], b"already here", "a.txt")
    assert len(stored_files(root)) == 1
    before = stored_files(root)

    class Boom(Exception):
        pass

    files = [MailFile("a.txt", "text/plain", b"already here"), MailFile("n", "text/plain", b"new")]
    with pytest.raises(Boom):
        async with runtime.db.transaction() as session:
            result = await attachments_service.attach_incoming(
                session,
                runtime.settings,
                ticket_id,
                None,
                actors.ids["alice"],
                files,
                internal=False,
            )
            assert len(result.attachments) == 2
            assert len(stored_files(root)) == 2  # written before the commit
            raise Boom
    assert stored_files(root) == before  # the new file went, the shared one stayed
    r = await client.get(f"/tickets/{ticket_id}/attachments", headers=actors["alice"])
    assert len(r.json()["items"]) == 1
    r = await client.get(f"/attachments/{r.json()['items'][0]['id']}", headers=actors["alice"])
    assert r.content == b"already here"

    # A failed upload through the API (its row refused after the file was written) too.
    r = await upload(client, ticket_id, actors["alice"], b"orphan?", comment_id=MISSING_ID)
    assert r.status_code == 422
    assert stored_files(root) == before


async def test_a_file_taken_by_another_unit_of_work_survives_the_creators_rollback(
    runtime, tmp_path
):
    storage = AttachmentStorage(tmp_path / "files")
    first = await storage.save_bytes(b"content", 100)
    second = await storage.save_bytes(b"content", 100)  # another request, same bytes
    assert first.created and not second.created
    second.keep()  # its row committed
    first.discard()  # the creator rolled back
    assert storage.exists(first.sha256)

    # Alone, the creator's rollback removes it; one that only reused it never does.
    alone = await storage.save_bytes(b"alone", 100)
    alone.discard()
    assert not storage.exists(alone.sha256)
    kept = await storage.save_bytes(b"kept", 100)
    kept.keep()
    reused = await storage.save_bytes(b"kept", 100)
    reused.discard()
    assert storage.exists(kept.sha256)

    with pytest.raises(FileTooLarge):
        await storage.save_bytes(b"x" * 101, 100)


async def test_the_same_file_twice_in_one_unit_of_work_is_held_once(runtime, tmp_path):
    storage = AttachmentStorage(tmp_path / "files")
    async with runtime.db.sessionmaker() as session:
        first = hold_until_end(session, await storage.save_bytes(b"twice", 100))
        again = hold_until_end(session, await storage.save_bytes(b"twice", 100))
        assert again is first
        assert hold_until_end(session, first) is first  # handed over twice: still held
        await session.rollback()
    assert not storage.exists(first.sha256)


async def test_orphan_files_are_swept(client, runtime, actors, root):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    r = await upload(client, ticket_id, actors["alice"], b"has a row", "a.txt")
    storage = AttachmentStorage(root)
    used = storage.path(hashlib.sha256(b"has a row").hexdigest())
    # A process that died between writing its file and committing its row:
    crashed = await storage.save_bytes(b"no row", 100)
    crashed.keep()
    # An upload in flight: written, its row not committed yet.
    in_flight = await storage.save_bytes(b"in flight", 100)
    recent = await storage.save_bytes(b"recent orphan", 100)
    recent.keep()
    temp = root / "tmp" / "upload-dead.part"
    temp.write_bytes(b"half an upload")
    for path in (used, crashed.path, in_flight.path, temp):
        age(path, 2 * 3600)

    removed = await attachments_service.remove_orphan_files(runtime.db, runtime.settings)
    assert removed == 2  # the crashed write and the dead temp file
    assert not crashed.path.exists() and not temp.exists()
    assert used.exists() and in_flight.path.exists() and recent.path.exists()
    in_flight.keep()
    r = await client.get(f"/tickets/{ticket_id}/attachments", headers=actors["alice"])
    r = await client.get(f"/attachments/{r.json()['items'][0]['id']}", headers=actors["alice"])
    assert r.content == b"has a row"
    # Nothing to do on a directory that does not exist yet.
    empty = runtime.settings.model_copy(update={"attachment_dir": str(root / "none")})
    assert await attachments_service.remove_orphan_files(runtime.db, empty) == 0


async def test_the_hourly_retention_job_sweeps_orphan_files(runtime, root):
    from ticketing import flows
    from ticketing.jobs import queue

    orphan = await AttachmentStorage(root).save_bytes(b"left behind by a crash", 100)
    orphan.keep()
    age(orphan.path, 2 * 3600)
    await queue.schedule_recurring(runtime.db, [flows.RETENTION])
    await drain(runtime)
    assert not orphan.path.exists()


# ---- incoming mail ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings_overrides", [{"attachment_max_bytes": 100, "max_attachments_per_ticket": 4}]
)
async def test_attach_incoming_keeps_what_fits_and_names_what_it_dropped(
    client, runtime, actors, settings_overrides
):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    r = await client.post(
        f"/tickets/{ticket_id}/comments",
        json={"body": "#note from mail", "internal": True},
        headers=actors["mod_py"],
    )
    note_id = r.json()["id"]
    files = [
        MailFile("report.txt", "text/plain; charset=utf-8", b"fine"),
        MailFile("big.bin", "application/octet-stream", b"x" * 101),
        MailFile(None, "image/png", b"\x89PNG inline", inline=True),
        MailFile("../x\r\n.html", "text/html", b"<p>hi</p>"),
        MailFile("last.txt", "bogus", b"one too many"),
    ]
    await upload(client, ticket_id, actors["alice"], b"already one")
    async with runtime.db.transaction() as session:
        result = await attachments_service.attach_incoming(
            session,
            runtime.settings,
            ticket_id,
            note_id,
            actors.ids["mod_py"],
            files,
            internal=True,
        )
    assert [(a.filename, a.content_type) for a in result.attachments] == [
        ("report.txt", "text/plain"),
        ("image-3.png", "image/png"),
        ("x .html", "text/html"),
    ]
    assert all(a.internal and a.comment_id == note_id for a in result.attachments)
    assert result.dropped == [
        DroppedFile("big.bin", 101, "too_large"),
        DroppedFile("last.txt", 12, "too_many"),
    ]
    r = await client.get(f"/tickets/{ticket_id}/attachments", headers=actors["alice"])
    assert len(r.json()["items"]) == 1  # the note's files are staff-only
    r = await client.get(f"/tickets/{ticket_id}/attachments", headers=actors["mod_py"])
    assert len(r.json()["items"]) == 4


async def test_a_revoked_token_cannot_upload(client, runtime, actors):
    ticket_id = await new_ticket(client, runtime, actors["alice"])
    await client.post("/auth/logout", headers=actors["bob"])
    r = await upload(client, ticket_id, actors["bob"])
    assert r.status_code == 401
    async with runtime.db.transaction() as session:
        alice = await users_repo.get(session, actors.ids["alice"])
        assert alice is not None
        alice.is_active = False
    r = await upload(client, ticket_id, actors["alice"])
    assert r.status_code == 401
