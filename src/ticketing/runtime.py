"""What a running process holds: settings, the database, the email sender, the triage provider,
and the job handlers that tie the domains together. Built once by the API and by each CLI verb."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

from ticketing.config import Settings
from ticketing.db import Database
from ticketing.jobs.worker import JobHandler, Worker
from ticketing.notifications.senders import EmailSender, build_sender
from ticketing.triage.base import TriageProvider
from ticketing.triage.factory import build_provider
from ticketing.triage.local import LocalAnalyzer


@dataclass
class Runtime:
    settings: Settings
    db: Database
    sender: EmailSender
    # Built once per process: SDK clients are costly to create and hold connection pools.
    provider: TriageProvider
    fallback: TriageProvider = field(default_factory=LocalAnalyzer)
    handlers: dict[str, JobHandler] = field(default_factory=dict)

    def make_worker(self, concurrency: int | None = None, name: str | None = None) -> Worker:
        s = self.settings
        return Worker(
            self.db,
            self.handlers,
            concurrency=concurrency or s.worker_concurrency,
            poll_seconds=s.worker_poll_seconds,
            lease_seconds=s.job_lease_seconds,
            name=name,
        )

    async def close(self) -> None:
        try:
            await self.provider.aclose()
            await self.sender.aclose()
        finally:
            await self.db.dispose()


def build_runtime(settings: Settings, *, sender: EmailSender | None = None) -> Runtime:
    from ticketing import flows

    db = Database(settings.database_url, pool_size=max(5, settings.worker_concurrency))
    runtime = Runtime(
        settings=settings,
        db=db,
        sender=sender or build_sender(settings),
        provider=build_provider(settings),
    )
    runtime.handlers = flows.job_handlers(runtime)
    return runtime


def freeze_startup_heap() -> None:
    """Exclude everything built so far (imported modules, the runtime) from garbage collection.

    A full collection walks every tracked object: with the ~200,000 that FastAPI, SQLAlchemy,
    pydantic and the AI SDKs leave behind at import, that is a 100 ms pause on a slow core,
    which showed up as p99 spikes in bench/api.py. They live as long as the process anyway.
    For process entry points only: objects frozen are never freed.
    """
    gc.collect()
    gc.freeze()
