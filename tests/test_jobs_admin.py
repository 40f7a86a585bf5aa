"""Failed work that admins can see and retry: GET /admin/jobs, POST /admin/jobs/{id}/retry,
POST /admin/jobs/retry-failed, and `ticketing jobs list|retry`."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select, update
from typer.testing import CliRunner

from ticketing.cli import app as cli_app
from ticketing.db import utcnow
from ticketing.jobs import queue
from ticketing.jobs.models import Job, JobStatus
from ticketing.jobs.queue import JobKind
from ticketing.runtime import build_runtime

from .conftest import CODE_RE, drain, make_settings

TICKET = {
    "title": "Python worker crashes with a Postgres error",
    "description": "Our python import job fails with a traceback from postgres: "
    "connection reset while copying the invoices table.",
}
JOB_FIELDS = {
    "id",
    "kind",
    "status",
    "attempts",
    "max_attempts",
    "last_error",
    "run_after",
    "created_at",
    "updated_at",
    "ticket_id",
}
REFUSED = "550 5.7.1 Relaying denied"


def _at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


async def file_ticket(client, headers) -> str:
    r = await client.post("/tickets/create", json=TICKET, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def exhaust_queued_mail(runtime) -> None:
    """Make every queued email job's next attempt its last, due now, and run it."""
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Job)
            .where(Job.kind == "send_email", Job.status == JobStatus.queued)
            .values(max_attempts=Job.attempts + 1, run_after=utcnow())
        )
    await drain(runtime)


async def failed_assignment_email(client, runtime, smtp, actors) -> str:
    """alice files a ticket; the email to its assignee fails for good. Returns the ticket id."""
    smtp.handler.fail_with = REFUSED
    ticket_id = await file_ticket(client, actors["alice"])
    await drain(runtime)  # triage and routing work; the assignment email fails once
    await exhaust_queued_mail(runtime)
    return ticket_id


async def test_a_failed_job_is_listed_with_its_error_retried_and_then_done(
    client, runtime, smtp, actors
):
    ticket_id = await failed_assignment_email(client, runtime, smtp, actors)
    admin = actors["admin"]

    r = await client.get("/admin/jobs", params={"status": "failed"}, headers=admin)
    assert r.status_code == 200, r.text
    [job] = r.json()["items"]
    assert set(job) == JOB_FIELDS
    assert job["kind"] == "send_email" and job["status"] == "failed"
    assert job["attempts"] == job["max_attempts"] == 2
    assert "550" in job["last_error"] and "Relaying denied" in job["last_error"]
    assert job["ticket_id"] == ticket_id
    # Never the payload: not the message, its subject or its recipient.
    for secret in (TICKET["description"][:40], "New ticket for you", "mod.py@example.com"):
        assert secret not in r.text
    r = await client.get(f"/admin/jobs/{job['id']}", headers=admin)
    assert r.status_code == 200 and r.json() == job

    smtp.handler.fail_with = None  # the mail server is fixed
    r = await client.post(f"/admin/jobs/{job['id']}/retry", headers=admin)
    assert r.status_code == 202, r.text
    assert r.json() == {"queued": 1}
    retried = (await client.get(f"/admin/jobs/{job['id']}", headers=admin)).json()
    # Queued again, due now, with a fresh attempt budget; the error stays until the next try.
    assert retried["status"] == "queued"
    assert retried["attempts"] == 0 and retried["max_attempts"] == 2
    assert "Relaying denied" in retried["last_error"]
    assert _at(retried["updated_at"]) > _at(job["updated_at"])
    async with runtime.db.transaction() as session:
        row = await session.get(Job, job["id"])
        assert row is not None and row.run_after <= utcnow() and row.finished_at is None
    r = await client.get("/admin/jobs", params={"status": "failed"}, headers=admin)
    assert r.json()["items"] == []

    await drain(runtime)
    [mail] = smtp.to("mod.py@example.com")
    assert TICKET["title"] in mail.subject
    done = (await client.get(f"/admin/jobs/{job['id']}", headers=admin)).json()
    assert done["status"] == "done" and done["attempts"] == 1

    r = await client.post(f"/admin/jobs/{job['id']}/retry", headers=admin)
    assert r.status_code == 409
    assert r.json()["detail"] == "Only failed jobs can be retried; this job is done"


async def test_only_failed_jobs_can_be_retried_and_unknown_ones_are_404(client, runtime, actors):
    ticket_id = await file_ticket(client, actors["alice"])  # its triage job waits, queued
    admin = actors["admin"]
    r = await client.get(
        "/admin/jobs", params={"status": "queued", "kind": "triage_ticket"}, headers=admin
    )
    [job] = r.json()["items"]
    assert job["ticket_id"] == ticket_id and job["attempts"] == 0
    r = await client.post(f"/admin/jobs/{job['id']}/retry", headers=admin)
    assert r.status_code == 409
    assert r.json()["detail"] == "Only failed jobs can be retried; this job is queued"
    assert (await client.get(f"/admin/jobs/{job['id']}", headers=admin)).json() == job

    missing = "00000000-0000-0000-0000-000000000000"
    for method, path in (
        ("GET", f"/admin/jobs/{missing}"),
        ("POST", f"/admin/jobs/{missing}/retry"),
    ):
        r = await client.request(method, path, headers=admin)
        assert (r.status_code, r.json()) == (404, {"detail": "No such job"})


async def test_jobs_are_for_admins_only(client, runtime, smtp, actors):
    await failed_assignment_email(client, runtime, smtp, actors)
    async with runtime.db.transaction() as session:
        job_id = (await session.scalars(select(Job.id).where(Job.status == "failed"))).one()
    calls = [
        ("GET", "/admin/jobs"),
        ("GET", f"/admin/jobs/{job_id}"),
        ("POST", f"/admin/jobs/{job_id}/retry"),
        ("POST", "/admin/jobs/retry-failed"),
    ]
    for who in ("alice", "mod_py"):
        for method, path in calls:
            r = await client.request(method, path, headers=actors[who])
            assert r.status_code == 403, (who, method, path)
    for method, path in calls:
        assert (await client.request(method, path)).status_code == 401
    async with runtime.db.transaction() as session:
        job = await session.get(Job, job_id)
        assert job is not None and job.status == "failed"  # nobody but an admin retried it


async def test_filters_order_and_pages(client, runtime, actors):
    admin = actors["admin"]
    tickets = [await file_ticket(client, actors["alice"]) for _ in range(3)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"kind": "triage_ticket", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/admin/jobs", params=params, headers=admin)).json()
        seen += [job["ticket_id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == tickets[::-1]  # newest first, each once
    oldest = await client.get(
        "/admin/jobs", params={"kind": "triage_ticket", "order": "oldest"}, headers=admin
    )
    assert [job["ticket_id"] for job in oldest.json()["items"]] == tickets
    r = await client.get("/admin/jobs", params={"kind": "no_such_kind"}, headers=admin)
    assert r.json() == {"items": [], "next_cursor": None}
    r = await client.get("/admin/jobs", params={"status": "broken"}, headers=admin)
    assert r.status_code == 422
    r = await client.get("/admin/jobs", params={"cursor": "not-a-cursor"}, headers=admin)
    assert r.status_code == 422


async def test_retry_all_failed(client, runtime, smtp, actors):
    smtp.handler.fail_with = REFUSED
    for _ in range(2):
        await file_ticket(client, actors["alice"])
    await drain(runtime)
    await exhaust_queued_mail(runtime)
    admin = actors["admin"]
    failed = (await client.get("/admin/jobs", params={"status": "failed"}, headers=admin)).json()
    assert len(failed["items"]) == 2

    smtp.handler.fail_with = None
    r = await client.post("/admin/jobs/retry-failed", headers=admin)
    assert (r.status_code, r.json()) == (202, {"queued": 2})
    r = await client.post("/admin/jobs/retry-failed", headers=admin)
    assert (r.status_code, r.json()) == (202, {"queued": 0})
    await drain(runtime)
    assert len(smtp.to("mod.py@example.com")) == 2
    for job in failed["items"]:
        assert (await client.get(f"/admin/jobs/{job['id']}", headers=admin)).json()[
            "status"
        ] == "done"


async def test_a_failed_sign_in_email_shows_neither_code_nor_message(client, runtime, smtp, actors):
    smtp.handler.fail_with = REFUSED
    r = await client.post("/auth/request-otp", json={"email": "newcomer@example.com"})
    assert r.status_code == 202
    await drain(runtime)
    await exhaust_queued_mail(runtime)
    async with runtime.db.transaction() as session:
        job = (await session.scalars(select(Job).where(Job.status == "failed"))).one()
        payload = dict(job.payload)
    code = CODE_RE.search(payload["text"])
    assert code is not None

    r = await client.get("/admin/jobs", headers=actors["admin"])
    [listed] = [j for j in r.json()["items"] if j["id"] == job.id]
    assert listed["ticket_id"] is None and "550" in listed["last_error"]
    detail = await client.get(f"/admin/jobs/{job.id}", headers=actors["admin"])
    for answer in (r.text, detail.text):
        assert code.group(1) not in answer
        assert payload["subject"] not in answer and "newcomer@example.com" not in answer


async def test_ticket_id_is_only_a_string_from_the_payload(client, runtime, actors):
    async with runtime.db.transaction() as session:
        for payload in ({"ticket_id": 42}, {"ticket_id": ""}, {"ticket_id": None}, {}):
            queue.enqueue(session, JobKind("odd"), payload)
    r = await client.get("/admin/jobs", params={"kind": "odd"}, headers=actors["admin"])
    items = r.json()["items"]
    assert len(items) == 4 and {job["ticket_id"] for job in items} == {None}


# ---- the command line --------------------------------------------------------------------


def test_jobs_list_and_retry_from_the_command_line(database_url, smtp, tmp_path, monkeypatch):
    settings = make_settings(database_url, smtp.port)

    async def seed() -> dict[str, str]:
        runtime = build_runtime(settings)
        try:
            async with runtime.db.transaction() as session:
                jobs = {
                    name: queue.enqueue(session, JobKind("cli_probe"), {"ticket_id": f"t-{name}"})
                    for name in ("failed", "other_failed", "done")
                }
                await session.flush()
                for name, job in jobs.items():
                    job.status = JobStatus.done if name == "done" else JobStatus.failed
                    job.attempts = job.max_attempts
                    job.last_error = f"RuntimeError: [bold]{name} broke"  # brackets: not markup
                    # Newest first: done, then failed, then other_failed.
                    age = {"done": 1, "failed": 2, "other_failed": 3}[name]
                    job.created_at = utcnow() - timedelta(minutes=age)
                return {name: job.id for name, job in jobs.items()}
        finally:
            await runtime.close()

    async def statuses() -> dict[str, tuple[str, int]]:
        runtime = build_runtime(settings)
        try:
            async with runtime.db.transaction() as session:
                rows = (await session.scalars(select(Job))).all()
                return {job.id: (job.status.value, job.attempts) for job in rows}
        finally:
            await runtime.close()

    ids = asyncio.run(seed())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "250")  # whole ids on one line
    for name in ("SECRET_KEY", "DEBUG", "ADMIN_EMAILS", "SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str):
        return CliRunner().invoke(cli_app, ["jobs", *args], catch_exceptions=False)

    result = run("list", "--status", "failed")
    assert result.exit_code == 0, result.output
    assert ids["failed"] in result.output and ids["other_failed"] in result.output
    assert ids["done"] not in result.output
    assert "[bold]failed broke" in result.output and "t-failed" in result.output
    result = run("list", "--kind", "cli_probe", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert ids["done"] in result.output and "--limit" in result.output  # newest first, more
    assert run("list", "--status", "nonsense").exit_code == 2

    result = run("retry", ids["done"])
    assert result.exit_code == 1
    assert "Only failed jobs can be retried; this job is done" in result.output
    result = run("retry", "no-such-[/job]")
    assert result.exit_code == 1 and "No job with id no-such-[/job]" in result.output
    assert run("retry").exit_code == 2
    assert run("retry", ids["failed"], "--all-failed").exit_code == 2

    result = run("retry", ids["failed"])
    assert result.exit_code == 0, result.output
    assert f"Job {ids['failed']} is queued again" in result.output
    assert asyncio.run(statuses())[ids["failed"]] == ("queued", 0)
    result = run("retry", "--all-failed")
    assert result.exit_code == 0 and "Queued 1 failed job again" in result.output
    assert asyncio.run(statuses())[ids["other_failed"]] == ("queued", 0)
    assert "No failed jobs to retry" in run("retry", "--all-failed").output
    assert asyncio.run(statuses())[ids["done"]] == ("done", 5)
