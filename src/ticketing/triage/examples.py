"""The corrected tickets most like a new one, for the Gemini and OpenAI prompts.

Similarity is the cosine of the local model's TF-IDF rows (its `vectorise`). The work is
bounded: only the latest `MAX_CANDIDATES` corrected tickets are candidates, and their rows are
computed once per (model version, corrections) state and reused until either changes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.triage import repository as repo
from ticketing.triage.base import PromptExample
from ticketing.triage.registry import LoadedModel
from ticketing.vocabulary import Priority, TicketType

MAX_CANDIDATES = 2000
MIN_SIMILARITY = 0.05  # below this an "example" shares little more than stop words


@dataclass(frozen=True)
class _Index:
    key: tuple[str, int, datetime | None]
    examples: list[PromptExample]
    matrix: Any  # sparse (n, features), L2-normalised rows


def _to_example(label: repo.LabelledTicket) -> PromptExample | None:
    try:
        return PromptExample(
            title=label.title,
            description=label.description,
            ticket_type=TicketType(label.ticket_type),
            priority=Priority(label.priority) if label.priority else None,
        )
    except ValueError:
        return None


class ExampleIndex:
    """One per process; `similar()` is safe to call concurrently."""

    def __init__(self, max_candidates: int = MAX_CANDIDATES) -> None:
        self.max_candidates = max_candidates
        self._index: _Index | None = None
        self._lock = asyncio.Lock()

    async def _current(self, session: AsyncSession, loaded: LoadedModel) -> _Index:
        count, latest = await repo.last_correction_marker(session)
        key = (loaded.version, count, latest)
        index = self._index
        if index is not None and index.key == key:
            return index
        async with self._lock:
            if self._index is not None and self._index.key == key:
                return self._index
            labels = await repo.recent_corrected(session, limit=self.max_candidates)
            examples = [e for e in (_to_example(label) for label in labels) if e is not None]
            texts = [(e.title, e.description) for e in examples]
            matrix = await asyncio.to_thread(loaded.model.vectorise, texts) if texts else None
            self._index = _Index(key, examples, matrix)
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
