"""The mailbox reader against a real Dovecot, with a stand-in handler that writes real
inbound-log rows: exactly once across crashes, one reader at a time, outages, IDLE."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import update

from ticketing.config import Settings
from ticketing.db import utcnow
from ticketing.mail import state
from ticketing.mail.imap import MailboxConfig
from ticketing.mail.models import InboundOutcome, MailboxState
from ticketing.mail.reader import MailboxBusy, MailboxReader
from ticketing.runtime import Runtime

from ..imap_server import DovecotServer, Mailbox
from .conftest import Crash, StubHandler, count_rows, eventually, log_rows, message

pytestmark = pytest.mark.timeout(120)


def make_reader(runtime: Runtime, handler: StubHandler, name: str, **options: Any) -> MailboxReader:
    options.setdefault("backoff_max_seconds", 1.0)
    return MailboxReader(runtime.db, runtime.settings, handler, name=name, **options)


@contextlib.asynccontextmanager
async def running(reader: MailboxReader) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(reader.run())
    try:
        yield task
    finally:
        reader.stop()
        await asyncio.wait_for(task, 20)


async def test_one_pass_handles_mail_and_moves_it_to_the_done_folder(
    runtime: Runtime, mailbox: Mailbox, handler: StubHandler
):
    mailbox.append([message(1), message(2), b"\x00\x01 not an email at all"])
    uidvalidity = mailbox.uidvalidity()
    reader = make_reader(runtime, handler, "one")

    counts = await reader.fetch_once()

    assert counts == {"ticket": 2, "rejected": 1}
    assert mailbox.count("INBOX") == 0
    assert mailbox.count("Processed") == 3
    assert all(b"\\Seen" in flags for flags in mailbox.flags("Processed"))
    rows = await log_rows(runtime)
    assert [r.mailbox_key for r in rows] == [f"{uidvalidity}:{uid}" for uid in (1, 2, 3)]
    assert [r.outcome for r in rows] == [InboundOutcome.ticket] * 2 + [InboundOutcome.rejected]
    assert rows[0].subject == "Problem 1" and rows[0].from_address == "alice@example.com"
    # Nothing is read twice; an empty mailbox is an empty pass.
    assert await reader.fetch_once() == {}
    assert len(handler.calls) == 3
    # The lease was released: another process may read at once.
    assert await state.acquire_lease(runtime.db, "next", 3)


async def test_the_done_folder_is_created_with_the_configured_name(
    runtime: Runtime, mailbox: Mailbox, handler: StubHandler
):
    mailbox.append([message(1)])
    settings = runtime.settings.model_copy(update={"imap_done_folder": "Helpdesk Done"})
    reader = MailboxReader(runtime.db, settings, handler, name="named")
    assert await reader.fetch_once() == {"ticket": 1}
    assert "Helpdesk Done" in mailbox.folders()
    assert mailbox.count("Helpdesk Done") == 1


async def test_a_crash_between_commit_and_move_neither_loses_nor_repeats(
    runtime: Runtime, mailbox: Mailbox, handler: StubHandler
):
    mailbox.append([message(n) for n in range(1, 6)])

    async def die_after_the_third(key: str) -> None:
        if key.endswith(":3"):
            raise Crash(key)

    handler.after_commit = die_after_the_third
    with pytest.raises(Crash):
        await make_reader(runtime, handler, "dies").fetch_once()
    assert await count_rows(runtime) == 3  # committed, but never moved
    assert mailbox.count("INBOX") == 5

    handler.after_commit = None
    counts = await make_reader(runtime, handler, "restarted").fetch_once()

    assert counts == {"moved": 3, "ticket": 2}
    assert sorted(handler.calls) == sorted(set(handler.calls))  # no key handled twice
    assert await count_rows(runtime) == 5
    assert mailbox.count("INBOX") == 0 and mailbox.count("Processed") == 5


async def test_a_message_the_handler_fails_on_never_holds_up_the_rest(
    runtime: Runtime, mailbox: Mailbox, handler: StubHandler
):
    mailbox.append([message(1), message(2, Subject="poison"), message(3)])
    handler.fail = lambda _key, raw: RuntimeError("a bug") if b"poison" in raw else None
    reader = make_reader(runtime, handler, "poisoned", failures_before_rejecting=3)

    assert await reader.fetch_once() == {"ticket": 2, "failed": 1}
    assert mailbox.count("INBOX") == 1  # tried again next time
    assert await reader.fetch_once() == {"failed": 1}
    assert await reader.fetch_once() == {"rejected": 1}  # the third failure: given up, logged

    assert mailbox.count("INBOX") == 0
    rejected = [r for r in await log_rows(runtime) if r.outcome == InboundOutcome.rejected]
    assert len(rejected) == 1
    assert rejected[0].reason == "could not be handled: RuntimeError: a bug"
    assert rejected[0].subject == "poison"


async def test_mail_over_the_size_limit_is_rejected_without_downloading_it(
    dovecot: DovecotServer, runtime: Runtime, mailbox: Mailbox, handler: StubHandler
):
    big = message(2, Subject="Huge scan", body="x" * 20_000)
    mailbox.append([message(1), big, message(3)])
    settings = runtime.settings.model_copy(update={"inbound_max_bytes": 4096})
    reader = MailboxReader(runtime.db, settings, handler, name="sizes")

    assert await reader.fetch_once() == {"ticket": 2, "rejected": 1}

    assert len(handler.calls) == 2
    row = next(r for r in await log_rows(runtime) if r.outcome == InboundOutcome.rejected)
    assert row.reason == f"message too large ({len(big) + 2} bytes > INBOUND_MAX_BYTES 4096)" or (
        row.reason.startswith("message too large (") and "> INBOUND_MAX_BYTES 4096" in row.reason
    )
    assert row.subject == "Huge scan" and row.from_address == "alice@example.com"
    assert row.message_id is not None and row.size > 20_000
    assert mailbox.count("INBOX") == 0
    # Dovecot's own account of the reader's session: two bodies fetched, not three.
    sessions = [
        line
        for line in dovecot.log.splitlines()
        if f"imap({mailbox.user})" in line and "body_count=" in line
    ]
    assert any("body_count=2 " in line for line in sessions), sessions[-3:]
    assert not any("body_count=3 " in line for line in sessions)


async def test_one_reader_at_a_time_and_a_clean_stop_hands_over(runtime: Runtime, mailbox: Mailbox):
    first_handler, second_handler = StubHandler(), StubHandler()
    first = make_reader(runtime, first_handler, "first")
    second = make_reader(runtime, second_handler, "second")
    async with running(first):
        await eventually(lambda: _is(first.reading), 10, "the first reader to read")
        with pytest.raises(MailboxBusy):
            await make_reader(runtime, StubHandler(), "third").fetch_once()
        async with running(second):
            mailbox.append([message(1), message(2)])
            await eventually(lambda: _rows_are(runtime, 2), 15, "two messages handled")
            assert len(first_handler.calls) == 2 and second_handler.calls == []
            assert not second.reading
            first.stop()  # a clean shutdown releases the lease: the other takes over
            await eventually(lambda: _is(second.reading), 10, "the second reader to take over")
            mailbox.append([message(3)])
            await eventually(lambda: _rows_are(runtime, 3), 15, "the third message handled")
            assert second_handler.calls and len(first_handler.calls) == 2


async def test_a_dead_readers_lease_runs_out_and_another_takes_over(
    runtime: Runtime, mailbox: Mailbox, handler: StubHandler
):
    # A process took the lease and died (kill -9): nobody renews or releases it.
    assert await state.acquire_lease(
        runtime.db, "dead-process", runtime.settings.imap_lease_seconds
    )
    mailbox.append([message(1)])
    reader = make_reader(runtime, handler, "survivor")
    async with running(reader):
        await asyncio.sleep(1.0)
        assert not reader.reading and handler.calls == []
        took = await eventually(lambda: _rows_are(runtime, 1), 15, "the survivor to take over")
    assert took < 3 + 3  # the lease (3 s) plus one retry period (1 s) and the pass


async def test_a_reader_that_loses_its_lease_stops_reading_at_once(
    runtime: Runtime, mailbox: Mailbox, handler: StubHandler
):
    reader = make_reader(runtime, handler, "loser")
    async with running(reader):
        await eventually(lambda: _is(reader.reading), 10, "the reader to read")
        async with runtime.db.transaction() as session:  # someone else holds it now
            await session.execute(update(MailboxState).values(holder="thief", lease_until=utcnow()))
        await eventually(lambda: _is(not reader.reading), 5, "the reader to stop")
        # The thief never renews: once its lease is over, the reader takes it back.
        await eventually(lambda: _is(reader.reading), 10, "the reader to take over again")


async def test_an_imap_outage_is_retried_shown_in_health_and_reading_resumes(
    dovecot: DovecotServer, runtime: Runtime, mailbox: Mailbox, handler: StubHandler, client
):
    reader = make_reader(runtime, handler, "patient")
    async with running(reader):
        mailbox.append([message(1)])
        await eventually(lambda: _rows_are(runtime, 1), 15, "the first message")
        dovecot.stop()
        try:
            await eventually(lambda: _health_is(runtime, "error"), 15, "the outage to show")
            response = await client.get("/health/ready")
            assert response.status_code == 200  # the API works without the mailbox
            body = response.json()["mailbox"]
            assert body["status"] == "error" and body["reader"] == "patient"
            assert body["error"] and body["since"]
        finally:
            dovecot.start()
        mailbox.append([message(2)])
        await eventually(lambda: _rows_are(runtime, 2), 20, "reading to resume")
        await eventually(lambda: _health_is(runtime, "ok"), 10, "the health to recover")
    health = await state.mailbox_health(runtime.db)
    assert health["status"] == "not running"  # the reader stopped and released the lease
    assert health["last_error"]


async def test_idle_brings_new_mail_within_seconds(
    runtime: Runtime, mailbox: Mailbox, handler: StubHandler
):
    reader = make_reader(runtime, handler, "idler", poll_seconds=120)
    async with running(reader):
        await eventually(lambda: _health_is(runtime, "ok"), 10, "the first pass")
        await asyncio.sleep(0.5)  # in IDLE now
        mailbox.append([message(1)])
        took = await eventually(lambda: _rows_are(runtime, 1), 10, "the message", step=0.05)
    assert took < 5


async def test_without_idle_or_move_it_polls_and_copies(
    dovecot_without_idle: DovecotServer, runtime: Runtime, handler: StubHandler
):
    mailbox = dovecot_without_idle.new_mailbox()
    config = MailboxConfig.from_settings(Settings(_env_file=None, **mailbox.settings()))  # type: ignore[call-arg]
    reader = make_reader(runtime, handler, "poller", config=config, poll_seconds=1)
    async with running(reader):
        await eventually(lambda: _health_is(runtime, "ok"), 10, "the first pass")
        assert reader._connection is not None and not reader._connection.supports_idle
        mailbox.append([message(1), message(2)])
        await eventually(lambda: _rows_are(runtime, 2), 10, "polling to find the mail")
    assert mailbox.count("INBOX") == 0  # copied, flagged deleted and expunged
    assert mailbox.count("Processed") == 2


async def _is(value: bool) -> bool:
    return value


async def _rows_are(runtime: Runtime, n: int) -> bool:
    return await count_rows(runtime) >= n


async def _health_is(runtime: Runtime, status: str) -> bool:
    return (await state.mailbox_health(runtime.db))["status"] == status


async def test_each_senders_mail_is_handled_in_order(
    runtime: Runtime, mailbox: Mailbox, handler: StubHandler
):
    senders = ["a@example.com", "b@example.com", "c@example.com"]
    mailbox.append([message(n, sender=senders[n % 3]) for n in range(1, 31)])
    assert await make_reader(runtime, handler, "ordered").fetch_once() == {"ticket": 30}
    uid = {key: int(key.split(":")[1]) for key in handler.calls}
    for first in range(3):  # message n is uid n; sender = n % 3
        theirs = [uid[k] for k in handler.calls if uid[k] % 3 == first]
        assert theirs == sorted(theirs) and len(theirs) == 10
