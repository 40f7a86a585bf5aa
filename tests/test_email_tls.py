"""The SMTP sender against real TLS servers: STARTTLS, implicit TLS, AUTH, certificate checks."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest
import trustme

from ticketing.config import Settings
from ticketing.notifications.senders import OutgoingEmail, SmtpSender

from .smtp_server import SMTP_PASSWORD, SMTP_USER, RecordingHandler, SmtpTestServer

MAIL = OutgoingEmail(to="x@example.com", subject="Hi", text="plain body", html="<p>html body</p>")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


def _server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def _serve(server: SmtpTestServer) -> Iterator[tuple[RecordingHandler, int]]:
    server.start()
    yield server.handler, server.port
    server.stop()


@pytest.fixture
def starttls_server(ca) -> Iterator[tuple[RecordingHandler, int]]:
    yield from _serve(
        SmtpTestServer(
            tls_context=_server_context(ca[0]), require_starttls=True, auth_require_tls=True
        )
    )


@pytest.fixture
def implicit_tls_server(ca) -> Iterator[tuple[RecordingHandler, int]]:
    # aiosmtpd only counts STARTTLS as TLS (so no auth_require_tls here): this connection is
    # encrypted from the start.
    yield from _serve(
        SmtpTestServer(ssl_context=_server_context(ca[0]), server_hostname="localhost")
    )


def _settings(port: int, tls: str, password: str = SMTP_PASSWORD) -> Settings:
    return Settings(
        _env_file=None,
        secret_key="k" * 40,
        smtp_host="127.0.0.1",
        smtp_port=port,  # type: ignore[call-arg]
        smtp_tls=tls,
        smtp_user=SMTP_USER,
        smtp_password=password,
        smtp_timeout_seconds=5,
    )


async def test_starttls_with_auth(starttls_server, ca, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(ca[1]))
    handler, port = starttls_server
    await SmtpSender(_settings(port, "starttls")).send(MAIL)
    [mail] = handler.messages
    assert mail.login == SMTP_USER and mail.recipients == ["x@example.com"]
    assert mail.text.strip() == "plain body" and "<p>html body</p>" in mail.html


async def test_implicit_tls_with_auth(implicit_tls_server, ca, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(ca[1]))
    handler, port = implicit_tls_server
    await SmtpSender(_settings(port, "ssl")).send(MAIL)
    assert [m.login for m in handler.messages] == [SMTP_USER]


async def test_untrusted_certificate_is_refused(starttls_server, tmp_path, monkeypatch):
    # The test CA is not trusted here: the sender must not talk to an impostor.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "empty.pem"))
    (tmp_path / "empty.pem").write_text("")
    handler, port = starttls_server
    with pytest.raises((aiosmtplib.SMTPException, ssl.SSLError)):
        await SmtpSender(_settings(port, "starttls")).send(MAIL)
    assert handler.messages == []


async def test_wrong_password_fails_so_the_job_retries(starttls_server, ca, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(ca[1]))
    handler, port = starttls_server
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        await SmtpSender(_settings(port, "starttls", password="wrong")).send(MAIL)
    assert handler.messages == []


async def test_plain_mode_cannot_skip_a_required_starttls(starttls_server):
    handler, port = starttls_server
    with pytest.raises(aiosmtplib.SMTPException):
        await SmtpSender(_settings(port, "none")).send(MAIL)
    assert handler.messages == []
