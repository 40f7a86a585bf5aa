"""Which local model this process uses: the active version in the database, else the default.

Every process holds one `ModelRegistry`. Whoever needs the model asks `await current()`: at
most every `check_seconds` that costs one indexed query for the active version's id, and only
when the id changed are the version's bytes read, their SHA-256 checked and the arrays loaded
(in a thread). So a version activated anywhere is in use everywhere within a minute, without a
restart. A stored version that does not load (tampered, truncated, from an incompatible
release) is logged and skipped: the process keeps the model it had (or the shipped default).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ticketing.db import Database
from ticketing.errors import ModelLoadError
from ticketing.triage import repository as repo
from ticketing.triage.learned import TrainedModel, default_model, load
from ticketing.triage.local import learned_model_name

log = logging.getLogger(__name__)

CHECK_SECONDS = 30.0
DEFAULT_VERSION = "default"


@dataclass(frozen=True)
class LoadedModel:
    model: TrainedModel
    version: str  # a triage_models id, or "default" (the model shipped in the package)

    @property
    def name(self) -> str:
        """What tickets record as their analysis model (the model's content hash)."""
        return learned_model_name(self.model)


def load_version_bytes(data: bytes, manifest: dict[str, object], sha256: str) -> TrainedModel:
    """A stored version's model, after checking its bytes are the ones stored with it."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ModelLoadError("stored model bytes do not match their SHA-256")
    return load(data, dict(manifest))


class ModelRegistry:
    def __init__(
        self,
        db: Database | None,
        *,
        check_seconds: float = CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        default: Callable[[], TrainedModel] = default_model,
    ) -> None:
        self.db = db
        self.check_seconds = check_seconds
        self.clock = clock
        self._default = default
        self._loaded: LoadedModel | None = None
        self._default_failed = False
        self._default_error = ""
        self._next_check = float("-inf")
        self._refused: set[str] = set()  # versions that failed to load: not retried
        self._lock = asyncio.Lock()

    def _load_default(self) -> LoadedModel | None:
        if self._default_failed:
            return None
        try:
            return LoadedModel(self._default(), DEFAULT_VERSION)
        except ModelLoadError as exc:
            # The local analyzer falls back to its rules and says why; no confidence then.
            self._default_failed = True
            self._default_error = str(exc)
            log.error("the shipped triage model does not load: %s", exc)
            return None

    @property
    def loaded(self) -> LoadedModel | None:
        """The model in use now (the default until a refresh found an active version); None
        when no version is active and the shipped model does not load."""
        if self._loaded is None:
            self._loaded = self._load_default()
        return self._loaded

    def model_source(self) -> TrainedModel:
        """The model in use, for the local analyzer (which asks before every analysis; the
        caller refreshed with `current()` first). ModelLoadError: none loads, rules decide."""
        loaded = self.loaded
        if loaded is None:
            raise ModelLoadError(self._default_error or "no model loads")
        return loaded.model

    @property
    def version(self) -> str | None:
        loaded = self.loaded
        return loaded.version if loaded is not None else None

    def expire(self) -> None:
        """Check the database at the next `current()` (this process activated a version)."""
        self._next_check = float("-inf")

    async def current(self) -> LoadedModel | None:
        """The model to use, checking the database first when the last check is old enough."""
        await self.refresh()
        return self.loaded

    async def refresh(self, *, force: bool = False) -> bool:
        """Check the active version (when due, or `force`); True if the model changed."""
        if self.db is None:
            return False
        if not force and self.clock() < self._next_check:
            return False
        async with self._lock:
            if not force and self.clock() < self._next_check:
                return False
            self._next_check = self.clock() + self.check_seconds
            try:
                return await self._refresh(self.db)
            except Exception:
                # The database may be restarting: keep the model we have, try again later.
                log.exception("checking the active triage model failed")
                return False

    async def _refresh(self, db: Database) -> bool:
        async with repo.reading(db) as session:
            active = await repo.active_version_id(session)
            wanted = active or DEFAULT_VERSION
            if wanted == self.version or wanted in self._refused:
                return False
            if active is None:
                self._loaded = self._load_default()
                log.info("triage model: back to the shipped default")
                return True
            row = await repo.get_version(session, active)
            if row is None:  # deactivated and deleted meanwhile
                return False
            data, manifest, sha256 = row.data, dict(row.manifest), row.sha256
        try:
            model = await asyncio.to_thread(load_version_bytes, data, manifest, sha256)
        except ModelLoadError as exc:
            self._refused.add(active)
            log.error(
                "triage model %s does not load (%s); still using %s",
                active,
                exc,
                self.version or "no model",
            )
            return False
        self._loaded = LoadedModel(model, active)
        log.info("triage model %s in use", active)
        return True
