"""The command line as a newcomer meets it: commands that issue or check no tokens run with the
configuration `make run` uses (no SECRET_KEY, no DEBUG); the API server and the worker refuse to
start without a signing key."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ticketing.cli import app

SETTINGS_ENV = ("SECRET_KEY", "DEBUG", "DATABASE_URL", "AI_PROVIDER", "SMTP_HOST", "ADMIN_EMAILS")


@pytest.fixture
def bare_env(tmp_path, monkeypatch):
    """A fresh folder and no settings at all: the embedded defaults (./ticketing.db)."""
    monkeypatch.chdir(tmp_path)
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_admin_commands_need_no_signing_key(bare_env):
    labelled = bare_env / "labelled.csv"
    labelled.write_text(
        "title,description,ticket_type\n"
        "App crashes on start,Traceback when I open it,bug\n"
        "Please add dark mode,It would be nice,feature\n",
        encoding="utf-8",
    )
    steps = [
        ("db", "upgrade"),
        ("users", "create", "me@example.com", "--role", "admin"),
        ("users", "list"),
        ("rerun-ai",),
        ("triage", "Login fails", "The password reset email never arrives", "--provider", "local"),
        ("eval", str(labelled), "--provider", "local"),
        ("jobs", "list"),
        ("jobs", "retry", "--all-failed"),
    ]
    for args in steps:
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
        assert "SECRET_KEY" not in result.output
    assert "me@example.com" in run("users", "list").output
    assert (bare_env / "ticketing.db").exists()


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["worker"]])
def test_the_server_and_the_worker_refuse_to_start_without_a_key(bare_env, command):
    result = run(*command)
    assert result.exit_code == 2
    assert "SECRET_KEY is not set" in result.output
    assert not (bare_env / "ticketing.db").exists()  # refused before touching anything
