"""Cross-cutting behaviour: errors, limits, health, request ids, start-up configuration."""

from __future__ import annotations

import json
import logging

import pytest

from ticketing.config import load_settings
from ticketing.errors import ConfigurationError


async def test_health_and_readiness(client):
    assert (await client.get("/health")).json() == {"status": "ok"}
    r = await client.get("/health/ready")
    assert r.status_code == 200 and r.json()["database"] == "ok"


async def test_readiness_is_503_when_the_database_is_gone(client, runtime):
    from ticketing.db import Database

    healthy = runtime.db
    # Nothing listens on port 9: connections are refused, as when PostgreSQL is down.
    runtime.db = Database("postgresql+asyncpg://postgres@127.0.0.1:9/none")
    try:
        r = await client.get("/health/ready")
        assert r.status_code == 503
        assert (await client.get("/health")).status_code == 200
        r = await client.get("/tickets", headers={"Authorization": "Bearer x.y.z"})
        assert r.status_code in (401, 503)
    finally:
        await runtime.db.dispose()
        runtime.db = healthy
    assert (await client.get("/health/ready")).status_code == 200


async def test_bodies_over_one_mebibyte_are_413(client, actors):
    big = json.dumps({"title": "x", "description": "y" * (1024 * 1024 + 10)})
    r = await client.post(
        "/tickets/create",
        content=big,
        headers=actors["alice"] | {"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert "too large" in r.json()["detail"]

    async def chunks():
        for _ in range(20):
            yield b"x" * 65536

    # No Content-Length (chunked): counted while reading.
    r = await client.post(
        "/auth/request-otp", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413


async def test_unknown_fields_are_422(client, actors):
    r = await client.post("/auth/request-otp", json={"email": "a@example.com", "role": "admin"})
    assert r.status_code == 422
    r = await client.post(
        "/tickets/create", json={"title": "t", "description": "d", "x": 1}, headers=actors["alice"]
    )
    assert r.status_code == 422


async def test_request_id_is_echoed_and_logged(client, caplog):
    caplog.set_level(logging.INFO, logger="ticketing.access")
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    r = await client.get("/health", headers={"X-Request-ID": "bad id\n<script>"})
    generated = r.headers["X-Request-ID"]
    assert generated != "bad id\n<script>" and len(generated) == 32
    assert any("/health" in rec.getMessage() for rec in caplog.records)


async def test_security_headers(client):
    r = await client.get("/health")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert (
        "unsafe-inline"
        not in r.headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    )


async def test_cors_is_closed_by_default(client):
    r = await client.options(
        "/tickets",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers


def test_secret_key_is_required_to_serve_unless_debug(monkeypatch, tmp_path):
    from ticketing.app import create_app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    settings = load_settings()  # commands that sign nothing need no key
    with pytest.raises(ConfigurationError, match="SECRET_KEY is not set"):
        settings.require_signing_key()
    with pytest.raises(ConfigurationError, match="SECRET_KEY is not set"):
        create_app(settings)
    settings = load_settings(debug=True)
    settings.require_signing_key()
    assert settings.secret_key and len(settings.secret_key) >= 32
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        load_settings(secret_key="short")
    with pytest.raises(ConfigurationError, match="ALGORITHM"):
        load_settings(secret_key="k" * 40, algorithm="RS256")


def test_mongodb_url_without_database_url_stops_start_up(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("MONGODB_URL", "mongodb+srv://cluster.example.com/db")
    with pytest.raises(ConfigurationError, match="DATABASE_URL") as info:
        load_settings()
    assert "SQL" in str(info.value)
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///./x.db")
    assert load_settings().database_url == "sqlite+aiosqlite:///./x.db"


def test_cli_reports_configuration_errors(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from ticketing.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALGORITHM", "RS256")
    result = CliRunner().invoke(app, ["users", "list"])
    assert result.exit_code == 2
    assert "ALGORITHM" in result.output


def test_database_url_forms_are_normalised(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings(secret_key="k" * 40, database_url="postgres://u:p@db:5432/app")
    assert s.database_url == "postgresql+asyncpg://u:p@db:5432/app"


async def test_nul_characters_are_refused_cleanly(client, actors):
    r = await client.post(
        "/tickets/create", json={"title": "a\u0000b", "description": "d"}, headers=actors["alice"]
    )
    assert r.status_code == 422
    r = await client.get("/tickets", params={"q": "a\u0000b"}, headers=actors["alice"])
    assert r.status_code == 400
    r = await client.post(
        "/admin/users",
        json={"email": "n@example.com", "skills": ["py\u0000"]},
        headers=actors["admin"],
    )
    assert r.status_code == 422


async def test_only_database_connection_errors_are_503(client, runtime, actors, monkeypatch):
    import httpx

    from ticketing.tickets import service

    # An OSError from anywhere but the database connection is a bug, not an outage.
    async def broken(*args, **kwargs):
        raise FileNotFoundError("/some/template")

    monkeypatch.setattr(service, "list_tickets", broken)
    # As a server would: the 500 is answered, the exception is not raised to the caller.
    transport = httpx.ASGITransport(app=client._transport.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/tickets", headers=actors["alice"])
    assert r.status_code == 500 and r.json() == {"detail": "Internal server error"}
    assert "Retry-After" not in r.headers


async def test_an_unreachable_database_is_503_with_retry_after(runtime):
    import httpx

    from ticketing.app import create_app
    from ticketing.db import Database

    from .smtp_server import free_port

    healthy = runtime.db
    runtime.db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    try:
        app = create_app(runtime.settings, runtime)  # no lifespan: the database is down
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            r = await c.post("/auth/request-otp", json={"email": "a@example.com"})
        assert r.status_code == 503
        assert r.json() == {"detail": "The service is temporarily unavailable; try again"}
        assert r.headers["Retry-After"] == "5"
    finally:
        await runtime.db.dispose()
        runtime.db = healthy
