"""The triage provider interface and the validated shape of an analysis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, Field

from ticketing.skills import MAX_SKILLS
from ticketing.vocabulary import Priority, TicketType

MAX_NOTES_CHARS = 2000


class Analysis(BaseModel):
    """What triage decides about a ticket. Every provider's output is validated into this."""

    required_skills: list[str] = Field(default_factory=list, max_length=MAX_SKILLS)
    priority: Priority
    ticket_type: TicketType
    helpful_notes: str = Field(default="", max_length=MAX_NOTES_CHARS)


class TriageError(Exception):
    """The provider failed (network, timeout, HTTP error, invalid answer). The message says how."""


class TriageProvider(Protocol):
    name: str  # "gemini", "openai", "local"
    model: str | None

    async def analyze(self, title: str, description: str, known_skills: Sequence[str]) -> Analysis:
        """Analyse one ticket. Raises TriageError on any failure; never returns unvalidated data."""
