"""`q=` search: substring, any case, literal wildcards and FTS5 syntax, on both engines; on
SQLite through the FTS5 trigram index of migration 0003, which must stay in step with the
tickets (insert, edit, delete) and only narrow what the LIKE would find."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, event, text, update

from ticketing.migrate import alembic_config, upgrade_database
from ticketing.tickets import repository
from ticketing.tickets.models import Ticket

from .conftest import drain

TICKETS = [
    ("Printer jams on floor 3", "The HP LaserJet eats paper since Monday."),
    ("VPN drops every hour", "Zanzibar office: the tunnel resets at :00, error 0x2F."),
    ("Invoice total is 100%_wrong", "Billing shows 100% of the tax twice."),
    ('He said "hello" OR NEAR(bye) - col:val *', "Quoted text and FTS5 syntax in a title."),
    ("Mailbox full", "Quota exceeded for user Éloïse; l'école needs more space."),
]


async def file(client, headers, title: str, description: str) -> dict[str, Any]:
    r = await client.post(
        "/tickets/create", json={"title": title, "description": description}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()


async def search(client, headers, q: str, path: str = "/tickets", **params: Any) -> list[str]:
    r = await client.get(path, params={"q": q, **params}, headers=headers)
    assert r.status_code == 200, (q, r.status_code, r.text)
    return sorted(t["title"] for t in r.json()["items"])


async def seed(client, runtime, actors) -> dict[str, str]:
    ids = {}
    for i, (title, description) in enumerate(TICKETS):
        who = "alice" if i % 2 == 0 else "bob"
        ids[title] = (await file(client, actors[who], title, description))["id"]
    await drain(runtime)  # triage assigns them to moderators
    return ids


def is_sqlite(database_url: str) -> bool:
    return database_url.startswith("sqlite")


@contextmanager
def statements(runtime) -> Iterator[list[str]]:
    """The SQL the app sends while the block runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    engine = runtime.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def fts_rowids(runtime, term: str) -> set[int]:
    async with runtime.db.transaction() as session:
        rows = await session.execute(
            text("SELECT rowid FROM tickets_fts WHERE tickets_fts MATCH :q"),
            {"q": '"' + term.replace('"', '""') + '"'},
        )
        return {row[0] for row in rows}


async def ticket_rowid(runtime, ticket_id: str) -> int:
    async with runtime.db.transaction() as session:
        rowid = await session.scalar(
            text("SELECT rowid FROM tickets WHERE id = :id"), {"id": ticket_id}
        )
        assert rowid is not None
        return int(rowid)


async def fts_integrity_check(runtime) -> None:
    """FTS5 compares the index with the tickets table; raises if they differ."""
    async with runtime.db.transaction() as session:
        await session.execute(
            text("INSERT INTO tickets_fts(tickets_fts, rank) VALUES ('integrity-check', 1)")
        )


async def test_substring_in_title_or_description_any_case(client, runtime, actors):
    await seed(client, runtime, actors)
    admin = actors["admin"]
    assert await search(client, admin, "laserjet") == ["Printer jams on floor 3"]
    assert await search(client, admin, "LASERJET") == ["Printer jams on floor 3"]
    assert await search(client, admin, "rinter ja") == ["Printer jams on floor 3"]
    assert await search(client, admin, "vPn DrOpS") == ["VPN drops every hour"]
    assert await search(client, admin, "zanzibar") == ["VPN drops every hour"]  # description
    assert await search(client, admin, "ZIBAR OFF") == ["VPN drops every hour"]
    assert await search(client, admin, "l'école") == ["Mailbox full"]  # non-ASCII, same case
    assert await search(client, admin, "zanzibar printer") == []  # the whole text, not a word
    assert await search(client, admin, "flamingo") == []
    # Both words, but only one ticket has them together as one piece of text.
    assert await search(client, admin, "exceeded for") == ["Mailbox full"]
    assert await search(client, admin, "for exceeded") == []


async def test_wildcards_are_literal(client, runtime, actors):
    await seed(client, runtime, actors)
    admin = actors["admin"]
    invoice = "Invoice total is 100%_wrong"
    assert await search(client, admin, "100%_") == [invoice]
    assert await search(client, admin, "100%") == [invoice]
    assert await search(client, admin, "%_w") == [invoice]
    assert await search(client, admin, "s 100%_wrong") == [invoice]
    assert await search(client, admin, "100_") == []  # `_` is not "any character"
    assert await search(client, admin, "in%ce") == []  # `%` is not "anything"
    assert await search(client, admin, "_") == [invoice]
    assert await search(client, admin, "%") == [invoice]


@pytest.mark.parametrize(
    "q",
    [
        '"',
        '""',
        '"hello"',
        'hello" OR "printer',
        "printer OR vpn",
        "NEAR(bye",
        "NEAR(printer vpn)",
        "col:val",
        "title:printer",
        "- col",
        "-printer",
        "printer*",
        "*",
        "^printer",
        "(printer)",
        "printer AND",
        "NOT vpn",
        "{title}: x",
        "\\",
        "'",
    ],
)
async def test_fts_syntax_in_q_is_plain_text(client, runtime, actors, q):
    await seed(client, runtime, actors)
    titles = [title for title, _ in TICKETS]
    expected = sorted(
        title
        for title, description in TICKETS
        if q.lower() in title.lower() or q.lower() in description.lower()
    )
    assert await search(client, actors["admin"], q) == expected
    assert set(expected) <= set(titles)


async def test_syntax_ticket_found_by_its_own_text(client, runtime, actors):
    await seed(client, runtime, actors)
    admin = actors["admin"]
    syntax = 'He said "hello" OR NEAR(bye) - col:val *'
    for q in ('"hello"', 'said "hello" or near(', "NEAR(bye) - col:val *", ") - c", "l *"):
        assert await search(client, admin, q) == [syntax], q
    assert await search(client, admin, "printer OR vpn") == []  # no OR between words


async def test_one_and_two_character_queries(client, runtime, actors):
    await seed(client, runtime, actors)
    admin = actors["admin"]
    assert await search(client, admin, "0x") == ["VPN drops every hour"]
    assert await search(client, admin, "ÿ") == []
    assert await search(client, admin, "É") == ["Mailbox full"]
    assert len(await search(client, admin, "e")) == len(TICKETS)
    assert await search(client, admin, "Z") == ["VPN drops every hour"]
    assert await search(client, admin, "%_") == ["Invoice total is 100%_wrong"]


async def test_visibility_and_moderator_queue_still_apply(client, runtime, actors):
    await seed(client, runtime, actors)
    # Alice filed tickets 0, 2, 4; Bob 1, 3.
    assert await search(client, actors["alice"], "laserjet") == ["Printer jams on floor 3"]
    assert await search(client, actors["bob"], "laserjet") == []
    assert await search(client, actors["bob"], "zanzibar") == ["VPN drops every hour"]
    queue = await client.get("/moderator/tickets", headers=actors["mod_py"])
    mine = sorted(t["title"] for t in queue.json()["items"])
    for title, _ in TICKETS:
        found = await search(client, actors["mod_py"], title[1:12], path="/moderator/tickets")
        assert found == ([title] if title in mine else []), title
    r = await client.get("/moderator/tickets", params={"q": "laserjet"}, headers=actors["alice"])
    assert r.status_code == 403


async def test_paging_through_results(client, runtime, actors):
    for i in range(7):
        await file(client, actors["alice"], f"Pelican report {i}", "Nothing else.")
    await file(client, actors["alice"], "Something else", "No bird here.")
    titles: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": "PELICAN", "limit": 3, "order": "oldest"}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/tickets", params=params, headers=actors["admin"])
        assert r.status_code == 200, r.text
        titles += [t["title"] for t in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert titles == [f"Pelican report {i}" for i in range(7)]


async def test_common_text_gives_the_same_results(client, runtime, actors, monkeypatch):
    """Text in more tickets than the index hands over goes to the plain scan: same answer."""
    for i in range(5):
        await file(client, actors["alice"], f"Heron sighting {i}", "Grey heron by the lake.")
    await file(client, actors["alice"], "Other", "Nothing to see.")
    admin = actors["admin"]
    expected = [f"Heron sighting {i}" for i in range(5)]
    assert await search(client, admin, "heron") == expected
    monkeypatch.setattr(repository, "FTS_MAX_CANDIDATES", 2)
    assert await search(client, admin, "heron") == expected
    assert await search(client, admin, "heron sighting 3") == ["Heron sighting 3"]


async def test_edited_text_is_found_by_the_new_text_only(client, runtime, actors, database_url):
    ids = await seed(client, runtime, actors)
    admin = actors["admin"]
    printer = ids["Printer jams on floor 3"]
    # The API edits no title or description (see the contract): another process or an admin
    # tool might, so edit the row directly.
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.id == printer)
            .values(title="Scanner offline", description="The Canon flatbed is unplugged.")
        )
    assert await search(client, admin, "scanner") == ["Scanner offline"]
    assert await search(client, admin, "flatbed") == ["Scanner offline"]
    assert await search(client, admin, "printer") == []
    assert await search(client, admin, "laserjet") == []

    # Changes through the API (status, triage) leave the text searchable.
    r = await client.patch(f"/tickets/{printer}", json={"status": "closed"}, headers=admin)
    assert r.status_code == 200, r.text
    assert await search(client, admin, "flatbed") == ["Scanner offline"]
    if is_sqlite(database_url):
        await fts_integrity_check(runtime)


async def test_deleted_ticket_is_not_found(client, runtime, actors, database_url):
    ids = await seed(client, runtime, actors)
    admin = actors["admin"]
    vpn = ids["VPN drops every hour"]
    rowid = await ticket_rowid(runtime, vpn) if is_sqlite(database_url) else None
    # There is no delete endpoint: remove the row directly (events cascade).
    async with runtime.db.transaction() as session:
        await session.execute(delete(Ticket).where(Ticket.id == vpn))
    assert await search(client, admin, "zanzibar") == []
    assert await search(client, admin, "vpn drops") == []
    # A new ticket (which may reuse the rowid on SQLite) is found by its own text only.
    await file(client, actors["alice"], "Projector bulb", "Room Zanzibar needs a new bulb.")
    assert await search(client, admin, "zanzibar") == ["Projector bulb"]
    assert await search(client, admin, "vpn drops") == []
    if rowid is not None:
        assert rowid not in await fts_rowids(runtime, "tunnel resets")
        await fts_integrity_check(runtime)


async def test_sqlite_search_goes_through_the_fts_index(client, runtime, actors, database_url):
    if not is_sqlite(database_url):
        pytest.skip("the FTS5 index is SQLite's")
    ids = await seed(client, runtime, actors)
    printer = ids["Printer jams on floor 3"]
    # Indexed by the insert trigger, as soon as the ticket is created.
    assert await fts_rowids(runtime, "laserjet") == {await ticket_rowid(runtime, printer)}
    await fts_integrity_check(runtime)

    with statements(runtime) as seen:
        assert await search(client, actors["admin"], "LaserJet eats") == ["Printer jams on floor 3"]
    assert len([s for s in seen if "tickets_fts MATCH" in s]) == 1
    [listing] = [s for s in seen if s.lstrip().startswith("SELECT tickets.")]
    assert "tickets.rowid IN" in listing and "LIKE" in listing

    # Too short for trigrams: the plain scan, no lookup.
    with statements(runtime) as seen:
        assert await search(client, actors["admin"], "0x") == ["VPN drops every hour"]
    assert not [s for s in seen if "tickets_fts" in s]

    # Nothing in the index: no scan at all.
    with statements(runtime) as seen:
        assert await search(client, actors["admin"], "flamingo") == []
    assert [s for s in seen if "tickets_fts MATCH" in s]
    assert not [s for s in seen if s.lstrip().startswith("SELECT tickets.")]


async def test_sqlite_without_the_fts_table_scans(client, runtime, actors, database_url):
    if not is_sqlite(database_url):
        pytest.skip("the FTS5 index is SQLite's")
    await seed(client, runtime, actors)
    async with runtime.db.transaction() as session:
        for trigger in ("tickets_fts_ai", "tickets_fts_ad", "tickets_fts_au"):
            await session.execute(text(f"DROP TRIGGER {trigger}"))
        await session.execute(text("DROP TABLE tickets_fts"))
    with statements(runtime) as seen:
        assert await search(client, actors["admin"], "laserjet") == ["Printer jams on floor 3"]
        assert await search(client, actors["admin"], "100%_") == ["Invoice total is 100%_wrong"]
    assert not [s for s in seen if "tickets_fts MATCH" in s]


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path)) as conn, conn:
        yield conn


def _sqlite_objects(path: Path) -> set[str]:
    with connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'tickets_fts%'")
        return {row[0] for row in rows}


def test_migration_indexes_existing_tickets_and_downgrades(tmp_path: Path):
    path = tmp_path / "m.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade_database(url, "0002")
    with connect(path) as conn:
        conn.execute(
            "INSERT INTO users (id, email, role, skills, is_active, token_version, created_at,"
            " updated_at) VALUES ('u1', 'u@example.com', 'user', '[]', 1, 0, '2026-01-01',"
            " '2026-01-01')"
        )
        conn.execute(
            "INSERT INTO tickets (id, title, description, status, required_skills,"
            " analysis_status, created_by, created_at, updated_at) VALUES ('t1', 'Old Pelican',"
            " 'Filed before the index', 'open', '[]', 'pending', 'u1', '2026-01-01',"
            " '2026-01-01')"
        )
    upgrade_database(url, "0003")
    assert {"tickets_fts", "tickets_fts_ai", "tickets_fts_ad", "tickets_fts_au"} <= (
        _sqlite_objects(path)
    )
    with connect(path) as conn:
        match = "SELECT rowid FROM tickets_fts WHERE tickets_fts MATCH ?"
        assert conn.execute(match, ['"pelican"']).fetchall() == [(1,)]
        conn.execute("UPDATE tickets SET status = 'closed'")  # not the text: no re-index
        conn.execute("UPDATE tickets SET description = 'Now about herons'")
        assert conn.execute(match, ['"before the"']).fetchall() == []
        assert conn.execute(match, ['"herons"']).fetchall() == [(1,)]
        conn.execute("INSERT INTO tickets_fts(tickets_fts, rank) VALUES ('integrity-check', 1)")

    command.downgrade(alembic_config(url), "0002")
    assert _sqlite_objects(path) == set()
    with connect(path) as conn:  # tickets still writable without the triggers
        conn.execute("UPDATE tickets SET title = 'Renamed'")


def test_migration_skips_without_trigram_support(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 33, 0))
    path = tmp_path / "old.db"
    upgrade_database(f"sqlite+aiosqlite:///{path}", "0003")
    assert _sqlite_objects(path) == set()
    with connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0003",)]
