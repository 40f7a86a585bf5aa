"""Browser tests: the real app (uvicorn, SQLite, embedded worker, real SMTP, a fake Gemini)
driven by Playwright through Debian's Chromium.

Without Chromium these tests skip with a reason; with REQUIRE_BROWSER=1 (CI) they fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ticketing.app import create_app
from ticketing.config import Settings
from ticketing.migrate import upgrade_database
from ticketing.runtime import build_runtime
from ticketing.users import service as users_service
from ticketing.vocabulary import Role

from ..conftest import make_settings
from ..fakes.base import DEFAULT_ANSWER
from ..fakes.fake_gemini import FakeGemini
from ..smtp_server import ReceivedMail, SmtpTestServer, free_port

try:  # the journeys use `expect` from here, so a missing package skips (or fails) cleanly
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - reported by the chromium_path fixture
    expect = None

REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"
# `make screenshots` sets SCREENSHOTS_DIR=docs/screenshots; other runs write to a temp dir and
# leave the repository alone (two runs at once would overwrite each other's files).
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="screenshots-"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000
CODE_IN_SUBJECT = re.compile(r"sign-in code: (\d{6})")

MODERATORS = {
    "mod.py@example.com": ("Priya Patel", ["python", "postgresql"]),
    "mod.web@example.com": ("Wes Webb", ["javascript", "css"]),
}


def _skip_or_fail(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def find_chromium() -> str | None:
    """CHROMIUM_PATH when set (and only then), else Debian's `chromium` on PATH."""
    explicit = os.environ.get("CHROMIUM_PATH")
    candidates = [explicit] if explicit else [shutil.which("chromium"), "/usr/bin/chromium"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


# ---- the live server --------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    settings: Settings
    smtp: SmtpTestServer
    gemini: FakeGemini
    ids: dict[str, str] = field(default_factory=dict)  # email -> user id (seeded people)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def sign_in_code(self, email: str, before: int) -> str:
        """The code of the newest sign-in email to `email` once more than `before` arrived."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            mails = self.smtp.to(email)
            if len(mails) > before:
                for mail in reversed(mails):
                    match = CODE_IN_SUBJECT.search(mail.subject)
                    if match:
                        return match.group(1)
            time.sleep(0.05)
        raise AssertionError(f"no new sign-in email for {email}")

    def wait_for_mail(
        self,
        email: str,
        subject_part: str,
        *,
        timeout: float = 10,
        check: Callable[[ReceivedMail], bool] = lambda mail: True,
    ) -> ReceivedMail:
        """The newest email to `email` whose subject has `subject_part` (and that passes
        `check`), once it arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for mail in reversed(self.smtp.to(email)):
                if subject_part in mail.subject and check(mail):
                    return mail
            time.sleep(0.05)
        raise AssertionError(f"no email to {email} about {subject_part!r}")

    def api_token(self, email: str) -> str:
        """Sign in through the API (email code from the SMTP server); returns the token."""
        with self.client() as c:
            before = len(self.smtp.to(email))
            r = c.post("/auth/request-otp", json={"email": email})
            assert r.status_code == 202, r.text
            code = self.sign_in_code(email, before)
            r = c.post("/auth/verify-otp", json={"email": email, "otp": code})
            assert r.status_code == 200, r.text
            return str(r.json()["access_token"])

    def file_ticket(
        self, token: str, title: str, description: str, answer: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """File a ticket through the API (the AI answers `answer`) and wait for its triage."""
        saved = self.gemini.answer
        if answer is not None:
            self.gemini.answer = answer
        try:
            with self.client(token) as c:
                r = c.post("/tickets/create", json={"title": title, "description": description})
                assert r.status_code == 201, r.text
            return self.wait_for_ticket(
                token, r.json()["id"], lambda t: t["analysis_status"] != "pending"
            )
        finally:
            self.gemini.answer = saved

    def wait_for_ticket(
        self,
        token: str,
        ticket_id: str,
        check: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 15,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client(token) as c:
            while True:
                ticket: dict[str, Any] = c.get(f"/tickets/{ticket_id}").json()
                if check(ticket):
                    return ticket
                assert time.monotonic() < deadline, f"ticket never got there: {ticket}"
                time.sleep(0.1)


async def _seed(settings: Settings) -> dict[str, str]:
    runtime = build_runtime(settings)
    try:
        ids = {}
        async with runtime.db.transaction() as session:
            for email, (name, skills) in MODERATORS.items():
                user = await users_service.create_user(
                    session, email=email, role=Role.moderator, skills=skills, name=name
                )
                ids[email] = user.id
        return ids
    finally:
        await runtime.close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        _skip_or_fail("Chromium not found: install Debian's chromium package")
    if expect is None:
        _skip_or_fail("the playwright Python package is not installed")
    assert path is not None
    return path


@contextlib.contextmanager
def run_live_server(
    smtp_server: SmtpTestServer, tmp_path_factory: pytest.TempPathFactory, **overrides: Any
) -> Iterator[LiveServer]:
    """The app on a free port with a fresh database; `overrides` are extra settings (e.g. the
    IMAP_* settings of a mailbox to read)."""
    db = tmp_path_factory.mktemp("web") / "web.db"
    database_url = f"sqlite+aiosqlite:///{db}"
    upgrade_database(database_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FakeGemini() as gemini:
        settings = make_settings(
            database_url,
            smtp_server.port,
            worker="embedded",
            worker_poll_seconds=0.2,
            ai_provider="gemini",
            gemini_api_key="test-gemini-key",
            gemini_base_url=gemini.base_url,
            gemini_model="gemini-test-flash",
            ai_timeout_seconds=5.0,
            ai_max_retries=0,
            otp_resend_seconds=0,
            public_url=url,
            app_name="Acme Helpdesk",
            attachment_dir=str(tmp_path_factory.mktemp("attachments")),
            **overrides,
        )
        ids = asyncio.run(_seed(settings))
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="live-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive(), "the live server did not start"
            assert time.monotonic() < deadline, "the live server did not start in 15 s"
            time.sleep(0.05)
        live = LiveServer(url=url, settings=settings, smtp=smtp_server, gemini=gemini, ids=ids)
        with live.client() as c:
            assert c.get("/health").status_code == 200
        try:
            yield live
        finally:
            server.should_exit = True
            thread.join(timeout=15)


@pytest.fixture(scope="module")
def live_server(
    chromium_path: str, smtp_server: SmtpTestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    # One per test module: a fresh database, and nothing left running (or sending mail to the
    # shared SMTP server) once the module is done.
    with run_live_server(smtp_server, tmp_path_factory) as live:
        yield live


@pytest.fixture
def fresh_ai(live_server: LiveServer) -> Iterator[None]:
    """Each test starts with a healthy fake AI giving its default answer."""
    live_server.gemini.mode = "ok"
    live_server.gemini.answer = dict(DEFAULT_ANSWER)
    yield
    live_server.gemini.mode = "ok"
    live_server.gemini.answer = dict(DEFAULT_ANSWER)


# ---- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(chromium_path: str, live_server: LiveServer) -> Iterator[Any]:
    # Module scope: the sync API holds an event loop in this thread while it runs; it is
    # stopped before any other module's (async) tests run.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# Chromium logs every non-2xx fetch as a console error ("Failed to load resource: ...").
# A journey that provokes an error response on purpose lists that status as expected.
FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


@dataclass
class Tab:
    page: Any
    live: LiveServer
    errors: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)

    def goto(self, hash_path: str = "#/") -> None:
        self.page.goto(f"{self.live.url}/{hash_path}")

    def sign_in(self, email: str) -> None:
        """Sign in from the sign-in screen using the keyboard only."""
        page = self.page
        page.get_by_label("Email address").fill(email)
        before = len(self.live.smtp.to(email))
        page.get_by_label("Email address").press("Enter")
        code = self.live.sign_in_code(email, before)
        page.get_by_label("6-digit code").fill(code)
        page.get_by_label("6-digit code").press("Enter")
        page.locator("#account").get_by_role("button", name="Sign out").wait_for()

    def token(self) -> str:
        return str(self.page.evaluate("sessionStorage.getItem('helpdesk.token')"))

    def unexpected_errors(self) -> list[str]:
        found = []
        for error in self.errors:
            status = FAILED_LOAD.search(error)
            if status and int(status.group(1)) in self.expected_statuses:
                continue
            found.append(error)
        return found

    def assert_clean(self) -> None:
        assert self.unexpected_errors() == [], "errors in the browser console"

    def assert_labelled(self) -> None:
        """Every visible form control has an accessible label."""
        unlabelled = self.page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
                .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                .map((el) => el.outerHTML)"""
        )
        assert unlabelled == []


@pytest.fixture
def open_tab(browser: Any, live_server: LiveServer, fresh_ai: None) -> Iterator[Callable[..., Tab]]:
    contexts = []

    def open_(viewport: dict[str, int] = DESKTOP) -> Tab:
        context = browser.new_context(viewport=viewport, locale="en-GB", timezone_id="UTC")
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        tab = Tab(page=page, live=live_server)
        page.on(
            "console",
            lambda msg: tab.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: tab.errors.append(f"page error: {exc}"))
        return tab

    yield open_
    for context in contexts:
        context.close()


def shot(page: Any, name: str, *, full_page: bool = False) -> None:
    """Save a screenshot of the real page (for docs/screenshots/ with `make screenshots`)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(
        path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page, animations="disabled"
    )
