"""What a running process holds: settings, the database, the email sender and the triage
providers. Built once by the API and by each CLI verb; `ticketing.flows` puts them to work."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

from ticketing.config import Settings
from ticketing.db import Database
from ticketing.notifications.senders import EmailSender, build_sender
from ticketing.triage.base import TriageProvider
from ticketing.triage.examples import ExampleIndex
from ticketing.triage.factory import build_provider
from ticketing.triage.local import LocalAnalyzer
from ticketing.triage.registry import ModelRegistry


@dataclass
class Runtime:
    settings: Settings
    db: Database
    sender: EmailSender
    # Built once per process: SDK clients are costly to create and hold connection pools.
    provider: TriageProvider
    fallback: TriageProvider = field(default_factory=LocalAnalyzer)
    # The local model in use (the active version in the database, checked every 30 s) and the
    # corrected tickets the AI prompts draw their examples from.
    registry: ModelRegistry | None = None
    examples: ExampleIndex = field(default_factory=ExampleIndex)

    def __post_init__(self) -> None:
        if self.registry is None:
            self.registry = ModelRegistry(self.db)
        # The local provider (configured, or the fallback) uses the model the registry holds:
        # the active version in the database, else the shipped one.
        if isinstance(self.provider, LocalAnalyzer):
            self.provider = LocalAnalyzer(self.registry.model_source)
        if isinstance(self.fallback, LocalAnalyzer):
            self.fallback = LocalAnalyzer(self.registry.model_source)

    @property
    def models(self) -> ModelRegistry:
        assert self.registry is not None  # set by __post_init__
        return self.registry

    async def close(self) -> None:
        try:
            await self.provider.aclose()
            await self.sender.aclose()
        finally:
            await self.db.dispose()


def build_runtime(settings: Settings, *, sender: EmailSender | None = None) -> Runtime:
    return Runtime(
        settings=settings,
        db=Database(settings.database_url, pool_size=max(5, settings.worker_concurrency)),
        sender=sender or build_sender(settings),
        provider=build_provider(settings),
    )


def freeze_startup_heap() -> None:
    """Exclude everything built so far (imported modules, the runtime) from garbage collection.

    A full collection walks every tracked object: with the ~200,000 that FastAPI, SQLAlchemy,
    pydantic and the AI SDKs leave behind at import, that is a 100 ms pause on a slow core,
    which showed up as p99 spikes in bench/api.py. They live as long as the process anyway.
    For process entry points only: objects frozen are never freed.
    """
    gc.collect()
    gc.freeze()
