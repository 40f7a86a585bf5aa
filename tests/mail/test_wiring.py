"""The reader runs wherever the job worker runs: here, the API process's embedded worker."""

from __future__ import annotations

import httpx
import pytest

from ticketing.app import create_app
from ticketing.runtime import Runtime

from ..imap_server import Mailbox
from .conftest import count_rows, eventually, message

pytestmark = pytest.mark.timeout(60)


async def test_the_embedded_worker_reads_the_mailbox_and_health_shows_it(
    runtime: Runtime, mailbox: Mailbox
):
    settings = runtime.settings.model_copy(update={"worker": "embedded"})
    rt = Runtime(settings, runtime.db, runtime.sender, runtime.provider)
    app = create_app(settings, rt)
    async with app.router.lifespan_context(app):
        mailbox.append([message(1), message(2)])

        async def handled() -> bool:
            return await count_rows(runtime) == 2

        await eventually(handled, 15, "the embedded reader to handle the mail")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def healthy() -> bool:
                # The reader records its health when the pass ends, just after the commits.
                response = await client.get("/health/ready")
                assert response.status_code == 200
                return bool(response.json()["mailbox"]["status"] == "ok")

            await eventually(healthy, 15, "health to show the mailbox as read")
    assert mailbox.count("Processed") == 2


async def test_health_says_when_no_process_reads_the_mailbox(client, settings):
    assert settings.inbound_email == "imap" and settings.worker == "external"
    response = await client.get("/health/ready")  # no `ticketing worker` runs here
    assert response.status_code == 200
    assert response.json()["mailbox"] == {"status": "not running", "reader": None}
