"""`ticketing mail fetch` against a real Dovecot: one pass, a summary line, no SECRET_KEY."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from ticketing.cli import app
from ticketing.db import Database
from ticketing.mail.models import InboundEmail, MailboxState

from ..imap_server import Mailbox
from .conftest import message


@pytest.fixture
def mail_env(monkeypatch, tmp_path, database_url: str, mailbox: Mailbox):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("DEBUG", raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    asyncio.run(_forget_mailbox_state(database_url))
    for name, value in mailbox.settings().items():
        monkeypatch.setenv(name.upper(), str(value))
    return mailbox


async def _forget_mailbox_state(url: str) -> None:
    db = Database(url)
    try:
        async with db.transaction() as session:
            await session.execute(delete(MailboxState))
            await session.execute(delete(InboundEmail))
    finally:
        await db.dispose()


def test_mail_fetch_reads_the_mailbox_once(mail_env: Mailbox):
    mail_env.append([message(1), b"garbage"])
    result = CliRunner().invoke(app, ["mail", "fetch"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # The placeholder handle_message (until the ticket side lands) logs readable mail as
    # rejected; what matters here is the pass and its summary.
    assert "Read 2 message(s)" in result.output
    assert mail_env.count("INBOX") == 0 and mail_env.count("Processed") == 2
    again = CliRunner().invoke(app, ["mail", "fetch"], catch_exceptions=False)
    assert again.exit_code == 0 and "No new mail." in again.output


def test_mail_fetch_when_the_server_is_down(mail_env: Mailbox, monkeypatch):
    from ..smtp_server import free_port

    monkeypatch.setenv("IMAP_PORT", str(free_port()))  # nobody listens there
    result = CliRunner().invoke(app, ["mail", "fetch"], catch_exceptions=False)
    assert result.exit_code == 1
    assert "could not be read: connection refused" in result.output
