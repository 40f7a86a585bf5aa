"""The ticket pipeline with a real AI SDK against the fake Gemini server: success, fallback,
prompt-injected output, re-analysis (API and CLI) and re-routing."""

from __future__ import annotations

import asyncio
import os

import pytest
from typer.testing import CliRunner

from ticketing.cli import app as cli_app

from .conftest import drain
from .fakes.fake_gemini import FakeGemini

CHECKOUT = {
    "title": "Checkout page javascript error",
    "description": "Clicking pay shows a javascript error in the console and nothing happens.",
}


@pytest.fixture
def fake_gemini():
    with FakeGemini() as fake:
        yield fake


@pytest.fixture
def settings_overrides(fake_gemini):
    return {
        "ai_provider": "gemini",
        "gemini_api_key": "test-gemini-key",
        "gemini_base_url": fake_gemini.base_url,
        "gemini_model": "gemini-test-flash",
        "ai_timeout_seconds": 1.0,
        "ai_max_retries": 1,
    }


async def file(client, headers, body):
    r = await client.post("/tickets/create", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def ticket(client, actors, ticket_id):
    return (await client.get(f"/tickets/{ticket_id}", headers=actors["admin"])).json()


async def test_gemini_answer_drives_triage_and_routing(client, runtime, smtp, actors, fake_gemini):
    fake_gemini.answer = {
        "required_skills": ["Python", "POSTGRESQL", "python"],
        "priority": "urgent",
        "ticket_type": "bug",
        "helpful_notes": "Check the pool.",
    }
    t = await file(client, actors["alice"], CHECKOUT)
    await drain(runtime)
    got = await ticket(client, actors, t["id"])
    assert got["analysis_status"] == "ai"
    assert got["analysis_provider"] == "gemini" and got["analysis_model"] == "gemini-test-flash"
    assert got["analysis_error"] is None
    assert got["required_skills"] == ["python", "postgresql"]
    assert got["priority"] == "urgent" and got["helpful_notes"] == "Check the pool."
    assert got["assigned_to"] == actors.ids["mod_py"]
    assert len(smtp.to("mod.py@example.com")) == 1

    # The prompt carried the ticket as delimited data and the skills people actually have.
    [request] = fake_gemini.requests
    sent = str(request.body)
    assert CHECKOUT["description"] in sent
    for skill in ("python", "postgresql", "javascript", "css"):
        assert skill in sent


async def test_model_output_cannot_set_assignee_or_status(client, runtime, actors, fake_gemini):
    fake_gemini.mode = "extra_fields"  # the answer also says assigned_to=attacker, status=closed
    t = await file(client, actors["alice"], CHECKOUT)
    await drain(runtime)
    got = await ticket(client, actors, t["id"])
    assert got["analysis_status"] == "ai"
    assert got["status"] == "open"
    assert got["assigned_to"] == actors.ids["mod_py"]


@pytest.mark.parametrize(
    ("mode", "error_part"),
    [("500", "500"), ("bad_enum", "invalid"), ("non_json", "invalid"), ("hang", "timed out")],
)
async def test_ai_failure_falls_back_to_the_local_analyzer(
    client, runtime, smtp, actors, fake_gemini, mode, error_part
):
    fake_gemini.mode = mode
    t = await file(client, actors["alice"], CHECKOUT)
    await drain(runtime)
    got = await ticket(client, actors, t["id"])
    assert got["analysis_status"] == "fallback"
    assert got["analysis_provider"] == "local"
    assert error_part in got["analysis_error"].lower()
    assert "test-gemini-key" not in got["analysis_error"]
    # The local analyzer still routes it sensibly: javascript -> the web moderator.
    assert "javascript" in got["required_skills"]
    assert got["assigned_to"] == actors.ids["mod_web"]
    assert len(smtp.to("mod.web@example.com")) == 1
    # The user never sees the error text.
    mine = (await client.get(f"/tickets/{t['id']}", headers=actors["alice"])).json()
    assert mine["analysis_error"] is None and mine["analysis_status"] == "fallback"


async def test_rerun_ai_reanalyses_and_reroutes_fallback_tickets(
    client, runtime, smtp, actors, fake_gemini
):
    fake_gemini.mode = "500"
    t = await file(client, actors["alice"], CHECKOUT)
    done = await file(client, actors["alice"], {"title": "Old javascript bug", "description": "js"})
    await drain(runtime)
    assert (await ticket(client, actors, t["id"]))["assigned_to"] == actors.ids["mod_web"]
    r = await client.patch(
        f"/tickets/{done['id']}", json={"status": "resolved"}, headers=actors["admin"]
    )
    assert r.status_code == 200
    smtp.clear()

    # Gemini is back, and it thinks this is a Python problem.
    fake_gemini.mode = "ok"
    fake_gemini.answer = {
        "required_skills": ["python"],
        "priority": "high",
        "ticket_type": "bug",
        "helpful_notes": "Backend issue.",
    }
    assert (await client.post("/admin/rerun-ai", headers=actors["mod_py"])).status_code == 403
    r = await client.post("/admin/rerun-ai", headers=actors["admin"])
    assert r.status_code == 202 and r.json() == {"queued": 1}  # the resolved one is left alone
    r = await client.post("/admin/rerun-ai", headers=actors["admin"])
    assert r.json() == {"queued": 0}  # already queued, not twice
    await drain(runtime)

    got = await ticket(client, actors, t["id"])
    assert got["analysis_status"] == "ai" and got["analysis_provider"] == "gemini"
    assert got["analysis_error"] is None
    assert got["assigned_to"] == actors.ids["mod_py"]
    assert got["status"] == "open"
    assert len(smtp.to("mod.py@example.com")) == 1
    assert (await ticket(client, actors, done["id"]))["analysis_status"] == "fallback"


async def test_reanalyze_one_ticket_never_touches_its_status(
    client, runtime, smtp, actors, fake_gemini
):
    fake_gemini.mode = "500"
    t = await file(client, actors["alice"], CHECKOUT)
    await drain(runtime)
    r = await client.patch(
        f"/tickets/{t['id']}", json={"status": "in_progress"}, headers=actors["mod_web"]
    )
    assert r.status_code == 200
    fake_gemini.mode = "ok"
    fake_gemini.answer = {
        "required_skills": ["python"],
        "priority": "low",
        "ticket_type": "support",
        "helpful_notes": "",
    }
    url = f"/tickets/{t['id']}/reanalyze"
    assert (await client.post(url, headers=actors["mod_web"])).status_code == 403
    assert (await client.post(url, headers=actors["alice"])).status_code == 403
    r = await client.post("/tickets/nope/reanalyze", headers=actors["admin"])
    assert r.status_code == 404
    r = await client.post(url, headers=actors["admin"])
    assert r.status_code == 202 and r.json() == {"queued": 1}
    await drain(runtime)
    got = await ticket(client, actors, t["id"])
    assert got["analysis_status"] == "ai" and got["priority"] == "low"
    # In progress: analysed again but neither re-routed nor moved.
    assert got["status"] == "in_progress"
    assert got["assigned_to"] == actors.ids["mod_web"]


async def test_rerun_ai_command_does_the_work_itself(
    client, runtime, smtp, actors, fake_gemini, database_url, monkeypatch, tmp_path
):
    fake_gemini.mode = "500"
    t = await file(client, actors["alice"], CHECKOUT)
    await drain(runtime)
    fake_gemini.mode = "ok"
    fake_gemini.answer = {
        "required_skills": ["python"],
        "priority": "high",
        "ticket_type": "bug",
        "helpful_notes": "",
    }
    s = runtime.settings
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": s.jwt_key,
        "AI_PROVIDER": "gemini",
        "GEMINI_API_KEY": "test-gemini-key",
        "GEMINI_BASE_URL": fake_gemini.base_url,
        "AI_TIMEOUT_SECONDS": "2",
        "EMAIL_BACKEND": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_TLS": "none",
        "SMTP_USER": s.smtp_user or "",
        "SMTP_PASSWORD": s.smtp_password or "",
    }
    monkeypatch.chdir(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # The command runs its own event loop, so give it a thread of its own.
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, ["rerun-ai"])
    assert result.exit_code == 0, result.output
    assert "Re-analysed 1 of 1 tickets: 1 by AI, 0 fell back again, 1 re-routed" in result.output
    got = await ticket(client, actors, t["id"])
    assert got["analysis_status"] == "ai" and got["assigned_to"] == actors.ids["mod_py"]
    # The assignment email was queued in the same transaction; the worker sends it.
    await drain(runtime)
    assert len(smtp.to("mod.py@example.com")) == 1

    result = await asyncio.to_thread(CliRunner().invoke, cli_app, ["rerun-ai"])
    assert result.exit_code == 0 and "No fallback tickets" in result.output
    result = await asyncio.to_thread(
        CliRunner().invoke, cli_app, ["rerun-ai", "--ticket", "missing-id"]
    )
    assert result.exit_code == 1
    assert os.environ["AI_PROVIDER"] == "gemini"


async def test_openai_compatible_server_drives_triage(client, runtime, actors):
    from ticketing.triage.openai_provider import OpenAIProvider

    from .fakes.fake_openai import FakeOpenAI

    with FakeOpenAI() as fake:
        fake.answer = {
            "required_skills": ["JavaScript", "css"],
            "priority": "low",
            "ticket_type": "feature",
            "helpful_notes": "Cosmetic.",
        }
        settings = runtime.settings.model_copy(
            update={
                "ai_provider": "openai",
                "openai_base_url": f"{fake.base_url}/v1",
                "openai_model": "llama3.1",
                "ai_timeout_seconds": 2.0,
                "ai_max_retries": 0,
            }
        )
        runtime.provider = OpenAIProvider(settings)
        t = await file(client, actors["alice"], {"title": "Dark mode", "description": "please"})
        await drain(runtime)
        got = await ticket(client, actors, t["id"])
        assert got["analysis_status"] == "ai"
        assert got["analysis_provider"] == "openai" and got["analysis_model"] == "llama3.1"
        assert got["required_skills"] == ["javascript", "css"]
        assert got["assigned_to"] == actors.ids["mod_web"]
        [request] = fake.requests
        assert request.body["temperature"] == 0
        assert request.body["response_format"] == {"type": "json_object"}
