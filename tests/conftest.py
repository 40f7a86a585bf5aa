"""Shared fixtures: every DB test runs on SQLite and on a real PostgreSQL; mail goes to a real
SMTP server; the job worker is driven explicitly so tests are deterministic."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from ticketing import flows, models
from ticketing.app import create_app
from ticketing.config import Settings
from ticketing.migrate import upgrade_database
from ticketing.runtime import Runtime, build_runtime
from ticketing.users import service as users_service
from ticketing.users.models import User
from ticketing.vocabulary import Role

from . import pg_databases
from .pg_cluster import ClusterUnavailable, PrivateCluster, private_cluster
from .smtp_server import SMTP_PASSWORD, SMTP_USER, SmtpTestServer

SECRET = "test-secret-key-that-is-long-enough-0123456789"
ADMIN_EMAIL = "admin@example.com"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """This run's own freshly migrated PostgreSQL database (see pg_databases), dropped at the
    end of the session; None (the tests skip) when there is no server."""
    name = pg_databases.run_object_name()
    try:
        asyncio.run(pg_databases.create_database(name))
    except pg_databases.PostgresUnreachable as exc:
        if pg_databases.REQUIRE_POSTGRES:
            pytest.fail(f"REQUIRE_POSTGRES=1 but {exc}")
        yield None
        return
    try:
        url = pg_databases.sqlalchemy_url(name)
        upgrade_database(url)
        yield url
    finally:
        asyncio.run(pg_databases.drop_database(name))
        with contextlib.suppress(pg_databases.PostgresUnreachable):
            _leftovers.extend(asyncio.run(pg_databases.leftovers()))


_leftovers: list[str] = []


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    """A private PostgreSQL cluster of this test's own, for tests that stop or restart it."""
    try:
        with private_cluster() as cluster:
            yield cluster
    except ClusterUnavailable as exc:
        pg_databases.skip_or_fail(str(exc))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # Databases and roles of killed runs are never dropped by another run (see pg_databases).
    if _leftovers:
        terminalreporter.write_sep("-", "left on PostgreSQL by other test runs (not dropped)")
        for line in _leftovers:
            terminalreporter.write_line(line)
        terminalreporter.write_line("drop them (dropdb, DROP ROLE) once no run is using them")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade_database(f"sqlite+aiosqlite:///{path}")
    return path


# Every table of the schema, so a new table is emptied between tests without a list to keep.
TABLES = [table.name for table in models.Base.metadata.sorted_tables]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    """The database of a test: each test runs on both engines. A test that stops or restarts
    PostgreSQL asks for "private_postgres" instead (parametrize with indirect=True)."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    if request.param == "private_postgres":
        cluster: PrivateCluster = request.getfixturevalue("private_postgres")
        yield cluster.url
        return
    url = request.getfixturevalue("postgres_url")
    if url is None:
        pytest.skip("PostgreSQL is not reachable (set REQUIRE_POSTGRES=1 to fail instead)")

    async def truncate() -> None:
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            await conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
        finally:
            await conn.close()

    asyncio.run(truncate())
    yield url


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpTestServer]:
    server = SmtpTestServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server: SmtpTestServer) -> Iterator[SmtpTestServer]:
    smtp_server.clear()
    yield smtp_server
    smtp_server.clear()


# Tests never write into the repository: attachment files go to a temp directory (per test
# with the `settings` fixture, this one for settings made elsewhere), removed at exit.
_ATTACHMENT_DIR = Path(tempfile.mkdtemp(prefix="ticketing-test-files-"))
atexit.register(shutil.rmtree, _ATTACHMENT_DIR, ignore_errors=True)


def make_settings(database_url: str, smtp_port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "attachment_dir": str(_ATTACHMENT_DIR),
        "database_url": database_url,
        "secret_key": SECRET,
        "email_backend": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_tls": "none",
        "smtp_user": SMTP_USER,
        "smtp_password": SMTP_PASSWORD,
        "smtp_timeout_seconds": 5,
        "ai_provider": "local",
        "admin_emails": ADMIN_EMAIL,
        "worker": "external",
        "worker_poll_seconds": 0.2,
        "public_url": "http://helpdesk.example.com",
        "app_name": "Test Helpdesk",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its tests."""
    return {}


@pytest.fixture
def settings(
    database_url: str, smtp: SmtpTestServer, settings_overrides: dict[str, Any], tmp_path: Path
) -> Settings:
    overrides = {"attachment_dir": str(tmp_path / "attachments"), **settings_overrides}
    return make_settings(database_url, smtp.port, **overrides)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = build_runtime(settings)
    yield rt
    await rt.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.settings, runtime)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def drain(runtime: Runtime) -> int:
    """Run every job that is due now (triage, email) to completion."""
    worker = flows.make_worker(runtime, name="test-drain")
    return await worker.drain()


CODE_RE = re.compile(r"\b(\d{6})\b")


def latest_code(smtp: SmtpTestServer, email: str) -> str:
    mails = smtp.to(email)
    assert mails, f"no sign-in email for {email}"
    match = CODE_RE.search(mails[-1].text)
    assert match, "no code in the email"
    return match.group(1)


async def sign_in(
    client: httpx.AsyncClient, runtime: Runtime, smtp: SmtpTestServer, email: str
) -> dict[str, str]:
    """Full passwordless sign-in through the API and the SMTP server; returns auth headers."""
    response = await client.post("/auth/request-otp", json={"email": email})
    assert response.status_code == 202, response.text
    await drain(runtime)
    code = latest_code(smtp, email)
    response = await client.post("/auth/verify-otp", json={"email": email, "otp": code})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def create_user(
    runtime: Runtime,
    email: str,
    role: Role = Role.user,
    skills: list[str] | None = None,
    name: str | None = None,
) -> User:
    async with runtime.db.transaction() as session:
        return await users_service.create_user(
            session, email=email, role=role, skills=skills or [], name=name
        )


class Actors:
    """Signed-in people for a test: admin, two moderators, two users."""

    def __init__(self) -> None:
        self.headers: dict[str, dict[str, str]] = {}
        self.ids: dict[str, str] = {}

    def __getitem__(self, name: str) -> dict[str, str]:
        return self.headers[name]


@pytest.fixture
async def actors(client: httpx.AsyncClient, runtime: Runtime, smtp: SmtpTestServer) -> Actors:
    people = {
        "admin": (ADMIN_EMAIL, Role.admin, []),
        "mod_py": ("mod.py@example.com", Role.moderator, ["python", "postgresql"]),
        "mod_web": ("mod.web@example.com", Role.moderator, ["javascript", "css"]),
        "alice": ("alice@example.com", Role.user, []),
        "bob": ("bob@example.com", Role.user, []),
    }
    result = Actors()
    for key, (email, role, skills) in people.items():
        if key != "admin":  # ADMIN_EMAILS creates the admin at start-up
            await create_user(runtime, email, role, skills)
        result.headers[key] = await sign_in(client, runtime, smtp, email)
        me = await client.get("/auth/me", headers=result.headers[key])
        result.ids[key] = me.json()["id"]
    smtp.clear()
    return result
