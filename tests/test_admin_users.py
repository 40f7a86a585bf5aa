"""Admin user management: listing, invitations, roles, skills, the last-admin rule."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ticketing.cli import app as cli_app
from ticketing.db import Database
from ticketing.users import service as users_service
from ticketing.users.models import User
from ticketing.users.schemas import UserUpdate
from ticketing.vocabulary import Role


async def test_create_user_normalises_and_refuses_duplicates(client, actors):
    admin = actors["admin"]
    r = await client.post(
        "/admin/users",
        json={
            "email": " Carol@Example.com",
            "name": "Carol",
            "role": "moderator",
            "skills": [" Python", "python", "PostgreSQL ", ""],
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["email"] == "carol@example.com"
    assert body["skills"] == ["python", "postgresql"]
    assert body["role"] == "moderator" and body["is_active"] is True

    dup = await client.post("/admin/users", json={"email": "carol@EXAMPLE.com"}, headers=admin)
    assert dup.status_code == 409


async def test_patch_changes_only_what_is_sent(client, actors):
    uid = actors.ids["mod_py"]
    admin = actors["admin"]
    r = await client.patch(f"/admin/users/{uid}", json={"name": "Py Mod"}, headers=admin)
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "Py Mod"
    assert body["skills"] == ["python", "postgresql"]
    assert body["role"] == "moderator"

    r = await client.patch(
        f"/admin/users/{uid}", json={"skills": ["Go", "go ", "RUST"]}, headers=admin
    )
    assert r.json()["skills"] == ["go", "rust"]
    assert r.json()["name"] == "Py Mod"


async def test_patch_rejects_unknown_fields_and_bad_values(client, actors):
    uid = actors.ids["alice"]
    admin = actors["admin"]
    r = await client.patch(f"/admin/users/{uid}", json={"email": "x@example.com"}, headers=admin)
    assert r.status_code == 422
    r = await client.patch(f"/admin/users/{uid}", json={"role": "superuser"}, headers=admin)
    assert r.status_code == 422
    r = await client.patch(f"/admin/users/{uid}", json={"role": None}, headers=admin)
    assert r.status_code == 422
    r = await client.patch("/admin/users/does-not-exist", json={"name": "x"}, headers=admin)
    assert r.status_code == 404
    me = await client.get("/auth/me", headers=actors["alice"])
    assert me.json()["email"] == "alice@example.com" and me.json()["role"] == "user"


async def test_last_active_admin_is_protected(client, actors):
    admin = actors["admin"]
    admin_id = actors.ids["admin"]
    r = await client.patch(f"/admin/users/{admin_id}", json={"role": "moderator"}, headers=admin)
    assert r.status_code == 409
    r = await client.patch(f"/admin/users/{admin_id}", json={"is_active": False}, headers=admin)
    assert r.status_code == 409
    assert (await client.get("/auth/me", headers=admin)).json()["role"] == "admin"

    # With a second admin, the first may step down.
    r = await client.patch(
        f"/admin/users/{actors.ids['mod_web']}", json={"role": "admin"}, headers=admin
    )
    assert r.status_code == 200
    r = await client.patch(f"/admin/users/{admin_id}", json={"role": "user"}, headers=admin)
    assert r.status_code == 200


@pytest.mark.parametrize("who", ["alice", "mod_py"])
async def test_non_admins_cannot_manage_users(client, actors, who):
    headers = actors[who]
    own_id = actors.ids[who]
    assert (await client.get("/admin/users", headers=headers)).status_code == 403
    r = await client.post(
        "/admin/users", json={"email": "z@example.com", "role": "admin"}, headers=headers
    )
    assert r.status_code == 403
    # Role escalation through PATCH of one's own account.
    r = await client.patch(f"/admin/users/{own_id}", json={"role": "admin"}, headers=headers)
    assert r.status_code == 403
    me = await client.get("/auth/me", headers=headers)
    assert me.json()["role"] != "admin"


async def test_anonymous_gets_401(client):
    assert (await client.get("/admin/users")).status_code == 401
    assert (await client.patch("/admin/users/x", json={})).status_code == 401


async def test_list_users_paginates_and_filters(client, actors):
    admin = actors["admin"]
    for i in range(7):
        await client.post(
            "/admin/users",
            json={"email": f"p{i}@example.com", "name": f"Person {i}"},
            headers=admin,
        )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/admin/users", params=params, headers=admin)).json()
        assert len(page["items"]) <= 3
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 12  # 5 actors + 7 invited
    assert seen.index("p6@example.com") < seen.index("p0@example.com")  # newest first

    mods = (await client.get("/admin/users", params={"role": "moderator"}, headers=admin)).json()
    assert {u["email"] for u in mods["items"]} == {"mod.py@example.com", "mod.web@example.com"}
    found = (await client.get("/admin/users", params={"q": "PERSON 3"}, headers=admin)).json()
    assert [u["email"] for u in found["items"]] == ["p3@example.com"]
    await client.patch(
        f"/admin/users/{actors.ids['bob']}", json={"is_active": False}, headers=admin
    )
    inactive = (
        await client.get("/admin/users", params={"is_active": "false"}, headers=admin)
    ).json()
    assert [u["email"] for u in inactive["items"]] == ["bob@example.com"]
    r = await client.get("/admin/users", params={"limit": 101}, headers=admin)
    assert r.status_code == 422
    r = await client.get("/admin/users", params={"cursor": "not-a-cursor"}, headers=admin)
    assert r.status_code == 422 and r.json() == {"detail": "Invalid cursor"}


def test_cli_users_create_and_list(tmp_path, monkeypatch, sqlite_template):
    import shutil

    db = tmp_path / "cli.db"
    shutil.copy(sqlite_template, db)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    result = runner.invoke(
        cli_app,
        [
            "users",
            "create",
            "Dana@Example.com",
            "--role",
            "moderator",
            "--skills",
            "Python, postgres,python",
            "--name",
            "Dana",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "dana@example.com" in result.output
    result = runner.invoke(cli_app, ["users", "create", "dana@example.com"])
    assert result.exit_code == 1
    assert "already exists" in result.output
    result = runner.invoke(cli_app, ["users", "list"], terminal_width=200)
    assert result.exit_code == 0
    assert "dana@example.com" in result.output and "python, postgres" in result.output
    result = runner.invoke(cli_app, ["users", "create", "not-an-email"])
    assert result.exit_code == 2


async def test_known_skills_follow_changes_here_at_once_and_elsewhere_within_the_cache_time(
    runtime, monkeypatch
):
    # Triage keeps the known skills a few seconds per process: a change made by this process
    # drops them when it commits; one made through another connection pool (another process)
    # shows once they are older than the cache time.
    async def known() -> list[str]:
        async with runtime.db.reading() as session:
            return await users_service.known_skills(session)

    async with runtime.db.transaction() as session:
        mod = await users_service.create_user(
            session, email="cache.mod@example.com", role=Role.moderator, skills=["python"]
        )
    assert "python" in await known()
    async with runtime.db.transaction() as session:
        await users_service.update_user(session, mod.id, UserUpdate(skills=["python", "rust"]))
    assert "rust" in await known()

    other = Database(runtime.settings.database_url)
    try:
        async with other.transaction() as session:
            await users_service.update_user(session, mod.id, UserUpdate(skills=["golang"]))
    finally:
        await other.dispose()
    # The other pool's commit dropped this process's copy too (same process); what another
    # process would see is the copy kept until it expires:
    async with runtime.db.reading() as session:
        users_service._known_skills.put(session, ("stale",), users_service._known_skills.generation)
    assert await known() == ["stale"]
    monkeypatch.setattr(users_service._known_skills, "seconds", 0.0)
    assert "golang" in await known() and "rust" not in await known()


async def test_a_skill_committed_while_a_read_was_open_is_not_hidden_by_the_cache(runtime):
    # SQLite reads from the snapshot of its transaction's first statement: known skills read
    # after another transaction committed may be older than that commit, and must not be kept.
    async with runtime.db.transaction() as session:
        mod = await users_service.create_user(
            session, email="race.mod@example.com", role=Role.moderator, skills=["python"]
        )
    async with runtime.db.reading() as reader:
        await reader.execute(select(User.id).limit(1))  # the snapshot starts here
        async with runtime.db.transaction() as session:
            await users_service.update_user(session, mod.id, UserUpdate(skills=["rustlang"]))
        await users_service.known_skills(reader)  # old or new, depending on the engine
    async with runtime.db.reading() as session:
        assert "rustlang" in await users_service.known_skills(session)


async def test_a_rolled_back_savepoint_does_not_keep_a_skill_change_from_the_cache(runtime):
    async with runtime.db.transaction() as session:
        mod = await users_service.create_user(
            session, email="nested.mod@example.com", role=Role.moderator, skills=["python"]
        )
    async with runtime.db.reading() as session:
        assert "elixir" not in await users_service.known_skills(session)  # cached now
    async with runtime.db.transaction() as session:
        await users_service.update_user(session, mod.id, UserUpdate(skills=["elixir"]))
        await session.flush()
        savepoint = await session.begin_nested()
        await savepoint.rollback()
    async with runtime.db.reading() as session:
        assert "elixir" in await users_service.known_skills(session)
