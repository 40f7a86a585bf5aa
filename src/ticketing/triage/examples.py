"""The corrected tickets most like a new one, for the Gemini and OpenAI prompts.

Similarity is the cosine of the local model's TF-IDF rows (its `vectorise`). The work is
bounded: only the latest `MAX_CANDIDATES` corrected tickets are candidates. A ticket's text
never changes once filed, so its row is computed once per model version and kept; a new
correction costs one vectorisation (of the ticket corrected), not a rebuild. While neither
the corrections nor the model change, a triage costs one vectorisation (the new ticket) and
one sparse product, and every few seconds one cheap query (`repo.correction_markers`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.triage import repository as repo
from ticketing.triage.base import PromptExample
from ticketing.triage.prompt import MAX_EXAMPLE_DESCRIPTION_CHARS, MAX_EXAMPLE_TITLE_CHARS
from ticketing.triage.registry import LoadedModel
from ticketing.vocabulary import Priority, TicketType

MAX_CANDIDATES = 2000
MIN_SIMILARITY = 0.05  # below this an "example" shares little more than stop words


@dataclass(frozen=True)
class _Cached:
    title: str  # capped to what a prompt shows
    description: str
    row: Any  # sparse (1, features), L2-normalised


@dataclass(frozen=True)
class _Index:
    key: tuple[str, int, datetime | None]
    examples: list[PromptExample]
    matrix: Any  # sparse (n, features), the examples' rows in order


def _example(key: repo.CorrectedKey, cached: _Cached) -> PromptExample | None:
    try:
        return PromptExample(
            title=cached.title,
            description=cached.description,
            ticket_type=TicketType(key.ticket_type),
            priority=Priority(key.priority) if key.priority else None,
        )
    except ValueError:
        return None


class ExampleIndex:
    """One per process; `similar()` is safe to call concurrently."""

    def __init__(self, max_candidates: int = MAX_CANDIDATES) -> None:
        self.max_candidates = max_candidates
        self._index: _Index | None = None
        self._rows_version: str | None = None
        self._rows: dict[str, _Cached] = {}
        self._lock = asyncio.Lock()

    async def _current(self, session: AsyncSession, loaded: LoadedModel) -> _Index:
        marker = repo.correction_markers.get(session)
        if marker is None:
            generation = repo.correction_markers.generation
            marker = await repo.last_correction_marker(session)
            repo.correction_markers.put(session, marker, generation)
        count, latest = marker
        key = (loaded.version, count, latest)
        index = self._index
        if index is not None and index.key == key:
            return index
        async with self._lock:
            if self._index is not None and self._index.key == key:
                return self._index
            if self._rows_version != loaded.version:  # another model: other features
                self._rows, self._rows_version = {}, loaded.version
            keys = await repo.recent_corrected_keys(session, limit=self.max_candidates)
            missing = [k.ticket_id for k in keys if k.ticket_id not in self._rows]
            if missing:
                texts = await repo.texts_of(session, missing)
                pairs = [(i, texts[i]) for i in missing if i in texts]
                matrix = await asyncio.to_thread(loaded.model.vectorise, [t for _, t in pairs])
                for n, (ticket_id, (title, description)) in enumerate(pairs):
                    self._rows[ticket_id] = _Cached(
                        title[:MAX_EXAMPLE_TITLE_CHARS],
                        description[:MAX_EXAMPLE_DESCRIPTION_CHARS],
                        matrix[n],
                    )
            wanted = {k.ticket_id for k in keys}
            for ticket_id in [i for i in self._rows if i not in wanted]:
                del self._rows[ticket_id]  # no longer among the latest candidates
            examples: list[PromptExample] = []
            rows = []
            for k in keys:
                cached = self._rows.get(k.ticket_id)
                example = _example(k, cached) if cached is not None else None
                if cached is not None and example is not None:
                    examples.append(example)
                    rows.append(cached.row)
            stacked = sp.vstack(rows, format="csr") if rows else None
            self._index = _Index(key, examples, stacked)
            return self._index

    async def similar(
        self,
        session: AsyncSession,
        loaded: LoadedModel,
        title: str,
        description: str,
        k: int,
    ) -> list[PromptExample]:
        """Up to `k` corrected tickets most like (title, description), most similar first."""
        if k <= 0:
            return []
        index = await self._current(session, loaded)
        if not index.examples or index.matrix is None:
            return []
        query = loaded.model.vectorise([(title, description)])
        scores = np.asarray((index.matrix @ query.T).todense()).ravel()
        order = np.argsort(-scores, kind="stable")[:k]
        return [index.examples[i] for i in order if scores[i] >= MIN_SIMILARITY]
