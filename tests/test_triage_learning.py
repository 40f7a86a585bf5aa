"""Triage that learns: corrections as labels, training from the database with an activation
gate, versions every process picks up, confidence and the review flag, quality figures."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import pytest
from sqlalchemy import select, update

from ticketing.runtime import Runtime, build_runtime
from ticketing.tickets import service as tickets_service
from ticketing.tickets.schemas import TicketCreate, TicketUpdate
from ticketing.triage import learning
from ticketing.triage.learned import Example, train
from ticketing.triage.models import TriageCorrection, TriageModelVersion
from ticketing.users.models import User
from ticketing.vocabulary import Priority, Role, TicketType

from .conftest import create_user, drain

ZORBLAX = "zorblax"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ticket_create_per_minute": 100_000}


# --- helpers -----------------------------------------------------------------------------


async def new_ticket(runtime: Runtime, user: User, title: str, description: str) -> str:
    async with runtime.db.transaction() as session:
        ticket = await tickets_service.create_ticket(
            session, runtime.settings, user, TicketCreate(title=title, description=description)
        )
        return ticket.id


async def patch(runtime: Runtime, user: User, ticket_id: str, **changes: Any) -> None:
    async with runtime.db.transaction() as session:
        await tickets_service.update_ticket(
            session, runtime.settings, user, ticket_id, TicketUpdate(**changes)
        )


async def corrections(runtime: Runtime) -> list[TriageCorrection]:
    async with runtime.db.sessionmaker() as session:
        stmt = select(TriageCorrection).order_by(TriageCorrection.created_at)
        return list((await session.scalars(stmt)).all())


async def versions(runtime: Runtime) -> list[TriageModelVersion]:
    async with runtime.db.sessionmaker() as session:
        stmt = select(TriageModelVersion).order_by(TriageModelVersion.created_at)
        return list((await session.scalars(stmt)).all())


_WORDS = {
    TicketType.bug: ["crash", "error", "exception", "broken", "stack trace", "regression"],
    TicketType.feature: ["please add", "would like", "new option", "feature request", "wish"],
    TicketType.support: ["how do i", "question", "help me", "where can i", "password reset"],
}
_PRIORITY = {
    TicketType.bug: Priority.high,
    TicketType.feature: Priority.low,
    TicketType.support: Priority.medium,
}
_FILLER = ["the app", "our team", "since monday", "on the dashboard", "in the report", "today"]


def synthetic_base(n_per_class: int = 15, seed: int = 1) -> list[Example]:
    """A small labelled set standing in for the shipped file (weighted less)."""
    rng = random.Random(seed)
    out = []
    for ticket_type, words in _WORDS.items():
        for _ in range(n_per_class):
            a, b = rng.sample(words, 2)
            text = f"{a} {rng.choice(_FILLER)} {b} {rng.choice(_FILLER)}"
            out.append(
                Example(text, text, ticket_type, _PRIORITY[ticket_type], learning.BASE_WEIGHT)
            )
    return out


async def labelled_org(runtime: Runtime, admin: User, requester: User, n: int = 15) -> None:
    """n tickets about zorblax corrected to technical/high, n resolved support/low ones."""
    zorblax = []
    for i in range(n):
        zorblax.append(
            await new_ticket(
                runtime,
                requester,
                f"The {ZORBLAX} on node {i} stopped",
                f"Our {ZORBLAX} cluster {i} needs attention, {rng_word(i)} since this morning.",
            )
        )
    invoices = []
    for i in range(n):
        invoices.append(
            await new_ticket(
                runtime,
                requester,
                f"Invoice {i} shows the wrong amount",
                f"The invoice for order {i} was charged twice; refund {rng_word(i)} please.",
            )
        )
    await drain(runtime)
    for ticket_id in zorblax:
        await patch(runtime, admin, ticket_id, ticket_type="technical", priority="high")
    for ticket_id in invoices:
        await patch(runtime, admin, ticket_id, ticket_type="support", priority="low")
        await patch(runtime, admin, ticket_id, status="resolved")


def rng_word(i: int) -> str:
    return ["slowly", "badly", "again", "quickly", "oddly"][i % 5]


async def admin_user(runtime: Runtime) -> User:
    from .conftest import ADMIN_EMAIL

    return await user_by_email(runtime, ADMIN_EMAIL)


async def user_by_email(runtime: Runtime, email: str) -> User:
    from ticketing.users import repository as users_repo

    async with runtime.db.sessionmaker() as session:
        user = await users_repo.get_by_email(session, email)
        assert user is not None
        return user


async def staff(runtime: Runtime) -> tuple[User, User, User]:
    admin = await create_user(runtime, "boss@example.com", Role.admin)
    mod = await create_user(runtime, "mod@example.com", Role.moderator, ["python"])
    user = await create_user(runtime, "requester@example.com", Role.user)
    return admin, mod, user


# --- corrections -------------------------------------------------------------------------


async def test_staff_change_of_an_analysed_ticket_is_a_correction(runtime):
    admin, _mod, user = await staff(runtime)
    ticket_id = await new_ticket(runtime, user, "Login page crashes", "Error 500 on login")
    await drain(runtime)
    async with runtime.db.sessionmaker() as session:
        analysed = await tickets_service.find(session, ticket_id)
        assert analysed is not None and analysed.analyzed_at is not None
        before_type, before_priority = analysed.ticket_type, analysed.priority
        provider, model = analysed.analysis_provider, analysed.analysis_model
    new_type = "feature" if before_type != TicketType.feature else "support"
    await patch(runtime, admin, ticket_id, ticket_type=new_type, priority=before_priority)
    await patch(runtime, admin, ticket_id, required_skills=["billing"])

    rows = await corrections(runtime)
    # Setting the priority to what it already was is no correction.
    assert [(r.field, r.before, r.after) for r in rows] == [
        ("ticket_type", before_type.value if before_type else None, new_type),
        ("required_skills", rows[1].before, ["billing"]),
    ]
    assert all(r.provider == provider == "local" and r.model == model for r in rows)
    assert all(r.actor_id == admin.id and r.ticket_id == ticket_id for r in rows)


async def test_no_correction_before_analysis_or_by_the_requester(runtime):
    admin, _mod, user = await staff(runtime)
    ticket_id = await new_ticket(runtime, user, "Printer jams", "Paper jam every time")
    # Not analysed yet: staff setting the fields is no correction of an analysis.
    await patch(runtime, admin, ticket_id, ticket_type="support", priority="low")
    assert await corrections(runtime) == []
    from ticketing.errors import Forbidden

    with pytest.raises(Forbidden):
        await patch(runtime, user, ticket_id, priority="urgent")
    assert await corrections(runtime) == []


# --- confidence and the review flag ------------------------------------------------------


async def file_api(client, headers, title: str, description: str) -> dict[str, Any]:
    r = await client.post(
        "/tickets", json={"title": title, "description": description}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()


async def get_api(client, headers, ticket_id: str) -> dict[str, Any]:
    r = await client.get(f"/tickets/{ticket_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_confidence_is_staff_only_and_low_confidence_is_flagged(client, runtime, actors):
    runtime.settings.triage_review_threshold = 1.0  # every real probability is below it
    t = await file_api(
        client, actors["alice"], "Export fails", "The CSV export crashes with an error"
    )
    await drain(runtime)
    seen = await get_api(client, actors["admin"], t["id"])
    confidence = seen["analysis_confidence"]
    # Priority too when the model predicts it (the shipped one learnt types only).
    assert "ticket_type" in confidence and set(confidence) <= {"ticket_type", "priority"}
    assert all(0 < p < 1 for p in confidence.values())
    assert seen["needs_review"] is True
    # The requester sees neither.
    mine = await get_api(client, actors["alice"], t["id"])
    assert mine["analysis_confidence"] is None and mine["needs_review"] is None
    listed = await client.get("/tickets", headers=actors["alice"])
    assert all(x["analysis_confidence"] is None for x in listed.json()["items"])

    # Staff confirming the type (same value) clears the flag, and is no correction.
    r = await client.patch(
        f"/tickets/{t['id']}", json={"ticket_type": seen["ticket_type"]}, headers=actors["admin"]
    )
    assert r.status_code == 200, r.text
    assert r.json()["needs_review"] is False
    assert await corrections(runtime) == []

    runtime.settings.triage_review_threshold = 0.0
    t2 = await file_api(client, actors["alice"], "Export fails", "The CSV export crashes")
    await drain(runtime)
    assert (await get_api(client, actors["admin"], t2["id"]))["needs_review"] is False


# --- training, the activation gate, versions --------------------------------------------


def write_base_csv(path) -> str:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["title", "description", "ticket_type", "priority"])
        for e in synthetic_base():
            writer.writerow([e.title, e.description, e.ticket_type.value, e.priority.value])
    return str(path)


async def test_corrections_and_retraining_teach_it_an_invented_word(
    client, runtime, actors, tmp_path
):
    runtime.settings.triage_base_csv = write_base_csv(tmp_path / "base.csv")
    admin = await admin_user(runtime)
    requester = await user_by_email(runtime, "alice@example.com")
    probe = ("Zorblax is down again", f"The {ZORBLAX} on node 99 stopped answering.")

    before = await file_api(client, actors["alice"], *probe)
    await drain(runtime)
    untaught = await get_api(client, actors["admin"], before["id"])
    assert untaught["ticket_type"] != "technical"  # the shipped model knows no such word
    assert untaught["analysis_model"].startswith("local-learned-")  # the shipped model

    await labelled_org(runtime, admin, requester)
    r = await client.post("/admin/triage/train", headers=actors["admin"])
    assert r.status_code == 202 and r.json() == {"queued": 1}
    again = await client.post("/admin/triage/train", headers=actors["admin"])
    assert again.json() == {"queued": 0}  # one at a time
    await drain(runtime)

    listed = (await client.get("/admin/triage/models", headers=actors["admin"])).json()["items"]
    [version] = listed
    assert version["active"] is True
    assert version["labels"] > 30  # the organisation's labels (training part) + the base file
    scores = version["scores"]
    assert scores["compared_with"] == "default"
    assert scores["heldout"] >= 4 and scores["base_labels"] == 45
    assert scores["ticket_type"]["macro_f1"] >= scores["compared_scores"]["ticket_type"]["macro_f1"]

    after = await file_api(client, actors["alice"], *probe)
    await drain(runtime)
    taught = await get_api(client, actors["admin"], after["id"])
    assert (taught["ticket_type"], taught["priority"]) == ("technical", "high")
    [stored] = await versions(runtime)
    assert taught["analysis_model"] == f"local-learned-{stored.sha256[:12]}"
    assert taught["analysis_model"] != untaught["analysis_model"]
    assert 0 < taught["analysis_confidence"]["ticket_type"] <= 1


def _rotate(examples):
    """A deliberately worse model: every label moved to another class."""
    types = [TicketType.bug, TicketType.feature, TicketType.support, TicketType.technical]
    shift = {t: types[(i + 1) % len(types)] for i, t in enumerate(types)}
    return [
        Example(
            e.title, e.description, shift.get(e.ticket_type, e.ticket_type), e.priority, e.weight
        )
        for e in examples
    ]


async def test_the_gate_refuses_a_worse_model_and_any_version_can_be_reactivated(
    client, runtime, actors
):
    admin = await admin_user(runtime)
    requester = await user_by_email(runtime, "alice@example.com")
    await labelled_org(runtime, admin, requester)
    good = await learning.train_from_db(runtime.db, base=synthetic_base())
    assert good.activated

    worse = await learning.train_from_db(
        runtime.db,
        base=synthetic_base(),
        trainer=lambda examples, seed: train(_rotate(examples), seed=seed),
    )
    assert not worse.activated
    assert worse.compared_with == good.version_id
    assert worse.scores["headline"] < worse.active_scores["headline"]
    assert "kept" in worse.reason

    items = (await client.get("/admin/triage/models", headers=actors["admin"])).json()["items"]
    assert {(m["id"], m["active"]) for m in items} == {
        (good.version_id, True),
        (worse.version_id, False),
    }
    assert items[0]["id"] == worse.version_id  # newest first
    assert "kept" in items[0]["scores"]["decision"]

    # An admin may still choose the other version, and go back.
    r = await client.post(
        f"/admin/triage/models/{worse.version_id}/activate", headers=actors["admin"]
    )
    assert r.status_code == 200 and r.json()["active"] is True
    items = (await client.get("/admin/triage/models", headers=actors["admin"])).json()["items"]
    assert [m["id"] for m in items if m["active"]] == [worse.version_id]
    r = await client.post(
        f"/admin/triage/models/{good.version_id}/activate", headers=actors["admin"]
    )
    assert r.status_code == 200
    assert (await runtime.models.current()).version == good.version_id  # type: ignore[union-attr]
    r = await client.post("/admin/triage/models/nope/activate", headers=actors["admin"])
    assert r.status_code == 404


async def test_training_needs_labels(runtime, client, actors):
    with pytest.raises(learning.NotEnoughLabels):
        await learning.train_from_db(runtime.db, base=synthetic_base())
    r = await client.post("/admin/triage/train", headers=actors["admin"])
    assert r.status_code == 202
    await drain(runtime)
    jobs = (await client.get("/admin/jobs?status=failed", headers=actors["admin"])).json()
    [job] = [j for j in jobs["items"] if j["kind"] == "triage_train"]
    assert "labelled tickets" in job["last_error"]


async def test_every_process_picks_up_a_newly_activated_model(runtime, settings):
    admin, _mod, requester = await staff(runtime)
    await labelled_org(runtime, admin, requester, n=8)
    other = build_runtime(settings)  # another process on the same database
    clock = [1000.0]
    other.models.clock = lambda: clock[0]
    try:
        assert (await other.models.current()).version == "default"  # type: ignore[union-attr]
        report = await learning.train_from_db(
            runtime.db, base=synthetic_base(), activation="always"
        )
        clock[0] += 10  # checked 10 s ago: not yet
        assert (await other.models.current()).version == "default"  # type: ignore[union-attr]
        clock[0] += 25  # more than 30 s since the last check: it looks, and loads the new one
        loaded = await other.models.current()
        assert loaded is not None and loaded.version == report.version_id
        p = loaded.model.predict("zorblax stopped", f"The {ZORBLAX} cluster needs attention")
        assert p.ticket_type == TicketType.technical
    finally:
        await other.close()


async def test_a_tampered_stored_model_fails_safely(runtime, client, actors, caplog):
    admin = await admin_user(runtime)
    requester = await user_by_email(runtime, "alice@example.com")
    await labelled_org(runtime, admin, requester, n=8)
    good = await learning.train_from_db(runtime.db, base=synthetic_base(), activation="always")
    bad = await learning.train_from_db(runtime.db, base=synthetic_base(), activation="never")
    await runtime.models.refresh(force=True)
    assert runtime.models.version == good.version_id
    async with runtime.db.transaction() as session:
        row = await session.get(TriageModelVersion, bad.version_id)
        assert row is not None
        row.data = row.data[:-64] + bytes(64)  # flipped bytes, hash left as stored

    r = await client.post(
        f"/admin/triage/models/{bad.version_id}/activate", headers=actors["admin"]
    )
    assert r.status_code == 409 and "SHA-256" in r.json()["detail"]
    assert runtime.models.version == good.version_id

    # Activated behind the API's back (e.g. by hand in the database): processes keep theirs.
    from ticketing.triage import repository as triage_repo

    async with runtime.db.transaction() as session:
        await triage_repo.activate(session, bad.version_id)
    with caplog.at_level(logging.ERROR, logger="ticketing.triage.registry"):
        assert await runtime.models.refresh(force=True) is False
    assert runtime.models.version == good.version_id
    assert any("does not load" in r.getMessage() for r in caplog.records)
    # Triage still works, with the model it had.
    t = await file_api(client, actors["alice"], "Zorblax down", f"{ZORBLAX} cluster stopped")
    await drain(runtime)
    got = await get_api(client, actors["admin"], t["id"])
    good_row = next(v for v in await versions(runtime) if v.id == good.version_id)
    assert got["analysis_model"] == f"local-learned-{good_row.sha256[:12]}"
    assert got["analysis_status"] == "ai"


async def test_retraining_runs_by_itself_once_enough_new_labels_arrived(runtime, settings):
    from ticketing.jobs import queue
    from ticketing.jobs.models import Job, JobStatus

    admin, _mod, requester = await staff(runtime)
    kind = learning.retrain_kind(runtime.settings)
    assert kind.every_seconds == 24 * 3600  # TRIAGE_RETRAIN_HOURS
    runtime.settings.triage_min_new_labels = 100
    await labelled_org(runtime, admin, requester, n=8)
    await queue.schedule_recurring(runtime.db, [kind])  # what every worker does at start
    await drain(runtime)
    assert await versions(runtime) == []  # 16 new labels < 100: nothing trained

    async def due_run() -> Job:
        async with runtime.db.sessionmaker() as session:
            stmt = select(Job).where(Job.key == kind.recurring_key, Job.status == JobStatus.queued)
            return (await session.scalars(stmt)).one()

    nxt = await due_run()
    assert (nxt.run_after - nxt.created_at).total_seconds() >= 24 * 3600 - 5
    runtime.settings.triage_min_new_labels = 10
    async with runtime.db.transaction() as session:  # a day later: the next run is due
        await session.execute(update(Job).where(Job.id == nxt.id).values(run_after=Job.created_at))
    await drain(runtime)
    [version] = await versions(runtime)
    assert version.active and version.scores["org_labels"] == 16
    async with runtime.db.sessionmaker() as session:
        assert await learning.retrain_due(session, 10) == (False, 0)
    assert (await due_run()).id != nxt.id  # and the run after that is queued


# --- quality -----------------------------------------------------------------------------


async def test_quality_counts_corrections_and_the_type_confusion(client, runtime, actors):
    ids = []
    for title in ("Crash on save", "Add dark mode please", "How do I reset my password"):
        ids.append((await file_api(client, actors["alice"], title, title + " today"))["id"])
    await drain(runtime)
    analysed = {i: await get_api(client, actors["admin"], i) for i in ids}
    said = {i: t["ticket_type"] for i, t in analysed.items()}
    # Ticket 0: type corrected twice (the first correction's "before" is what the analysis said).
    first, second = [x for x in ("other", "technical", "bug") if x != said[ids[0]]][:2]
    for new_type in (first, second):
        r = await client.patch(
            f"/tickets/{ids[0]}", json={"ticket_type": new_type}, headers=actors["admin"]
        )
        assert r.status_code == 200
    # Ticket 1: priority corrected, skills corrected.
    new_priority = "urgent" if analysed[ids[1]]["priority"] != "urgent" else "low"
    r = await client.patch(
        f"/tickets/{ids[1]}",
        json={"priority": new_priority, "required_skills": ["css"]},
        headers=actors["admin"],
    )
    assert r.status_code == 200

    r = await client.get("/admin/triage/quality", headers=actors["admin"])
    assert r.status_code == 200, r.text
    q = r.json()
    [local] = q["providers"]
    assert local["provider"] == "local" and local["analysed"] == 3
    assert local["corrected"]["ticket_type"] == {"count": 1, "rate": 0.3333}
    assert local["corrected"]["priority"] == {"count": 1, "rate": 0.3333}
    skills_changed = analysed[ids[1]]["required_skills"] != ["css"]
    assert local["corrected"]["required_skills"]["count"] == int(skills_changed)
    expected: dict[str, dict[str, int]] = {}
    finals = {ids[0]: second, ids[1]: said[ids[1]], ids[2]: said[ids[2]]}
    for i in ids:
        row = expected.setdefault(said[i], {})
        row[finals[i]] = row.get(finals[i], 0) + 1
    assert q["confusion"] == expected == local["confusion"]
    assert q["active_model"]["id"] == "default"

    # The period: nothing analysed in the future; from after to is a 422.
    r = await client.get("/admin/triage/quality?from=2999-01-01T00:00:00", headers=actors["admin"])
    assert r.status_code == 200 and r.json()["providers"] == [] and r.json()["confusion"] == {}
    r = await client.get(
        "/admin/triage/quality?from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z",
        headers=actors["admin"],
    )
    assert r.status_code == 422
    r = await client.get("/admin/triage/quality?from=yesterday", headers=actors["admin"])
    assert r.status_code == 422


async def test_learning_endpoints_are_for_admins_only(client, runtime, actors):
    for who in ("mod_py", "alice"):
        headers = actors[who]
        assert (await client.post("/admin/triage/train", headers=headers)).status_code == 403
        assert (await client.get("/admin/triage/models", headers=headers)).status_code == 403
        assert (await client.get("/admin/triage/quality", headers=headers)).status_code == 403
        r = await client.post("/admin/triage/models/x/activate", headers=headers)
        assert r.status_code == 403
    assert (await client.get("/admin/triage/models")).status_code == 401


# --- the command line ----------------------------------------------------------------------


def test_model_train_from_db_and_list_on_the_command_line(
    settings, database_url, tmp_path, monkeypatch
):
    import asyncio

    from typer.testing import CliRunner

    from ticketing.cli import app as cli_app

    async def seed() -> None:
        rt = build_runtime(settings)
        try:
            admin, _mod, requester = await staff(rt)
            await labelled_org(rt, admin, requester, n=8)
        finally:
            await rt.close()

    asyncio.run(seed())
    base = write_base_csv(tmp_path / "base.csv")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "250")
    for name in ("SECRET_KEY", "DEBUG", "ADMIN_EMAILS", "SMTP_HOST", "TRIAGE_BASE_CSV"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str):
        return CliRunner().invoke(cli_app, ["model", *args], catch_exceptions=False)

    result = run("list")
    assert result.exit_code == 0 and "No stored versions" in result.output
    result = run("train", "--from-db", "--csv", base)
    assert result.exit_code == 0, result.output
    assert "not activated (as asked)" in result.output and "default" in result.output

    async def stored() -> list[tuple[str, bool]]:
        rt = build_runtime(settings)
        try:
            return [(v.id, v.active) for v in await versions(rt)]
        finally:
            await rt.close()

    [(first, active)] = asyncio.run(stored())
    assert not active and first in run("list").output
    result = run("train", "--from-db", "--csv", base, "--activate")
    assert result.exit_code == 0, result.output
    assert "activated" in result.output
    [(_, first_active), (second, second_active)] = asyncio.run(stored())
    assert (first_active, second_active) == (False, True)
    [active_line] = [line for line in run("list").output.splitlines() if "yes" in line]
    assert second in active_line
    # `ticketing triage` / `ticketing eval` with the local provider use the active version.
    result = CliRunner().invoke(
        cli_app,
        ["triage", "Zorblax stopped", f"The {ZORBLAX} cluster stopped", "--provider", "local"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["ticket_type"] == "technical"
    assert answer["model"].startswith("local-learned-") and answer["status"] == "ai"
    assert run("train").exit_code == 2  # neither --csv nor --from-db


# --- prompt examples: bounded work --------------------------------------------------------


async def test_example_rows_are_computed_once_per_ticket(runtime):
    from ticketing.triage.examples import ExampleIndex
    from ticketing.triage.registry import LoadedModel

    loaded = await runtime.models.current()
    assert loaded is not None
    texts_vectorised: list[int] = []

    class Counting:
        def vectorise(self, texts):
            texts_vectorised.append(len(texts))
            return loaded.model.vectorise(texts)

    counted = LoadedModel(Counting(), loaded.version)  # type: ignore[arg-type]
    admin, _mod, requester = await staff(runtime)
    await labelled_org(runtime, admin, requester, n=3)  # 3 zorblax + 3 invoices corrected
    index = ExampleIndex(max_candidates=5)
    probe = ("Zorblax again", f"The {ZORBLAX} cluster stopped")
    async with runtime.db.sessionmaker() as session:
        found = await index.similar(session, counted, *probe, k=2)
    assert [e.ticket_type for e in found] == [TicketType.technical] * 2
    assert texts_vectorised == [5, 1]  # the 5 latest corrected tickets once, then the probe
    async with runtime.db.sessionmaker() as session:
        await index.similar(session, counted, *probe, k=2)
    assert texts_vectorised == [5, 1, 1]  # nothing changed: only the probe
    more = await new_ticket(runtime, requester, "Zorblax node 7 slow", f"The {ZORBLAX} is slow")
    await drain(runtime)
    await patch(runtime, admin, more, ticket_type="technical")
    async with runtime.db.sessionmaker() as session:
        found = await index.similar(session, counted, *probe, k=5)
    assert texts_vectorised == [5, 1, 1, 1, 1]  # only the newly corrected ticket, and the probe
    assert "Zorblax node 7 slow" in [e.title for e in found]
