"""The triage provider interface and the validated shape of an analysis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    # Per field ("ticket_type", "priority") the model's probability of its answer, 0..1, where
    # a learned model decided that field; None when nothing gives one (rules, AI providers).
    confidence: dict[str, float] | None = None


@dataclass(frozen=True)
class PromptExample:
    """A ticket staff classified (a correction), shown to an AI provider as an example."""

    title: str
    description: str
    ticket_type: TicketType
    priority: Priority | None


class TriageError(Exception):
    """The provider failed (network, timeout, HTTP error, invalid answer). The message says how."""


class TriageProvider(Protocol):
    """What every provider offers; the service, the runtime and the CLI need nothing more.

    A Protocol rather than a base class, like `EmailSender`: the providers share no code, and a
    test double only has to have these members. mypy checks each provider against it where the
    factory returns one.
    """

    name: str  # "gemini", "openai", "local"
    model: str | None

    @property
    def max_total_seconds(self) -> float:
        """The longest one analyze() can take, all attempts and waits included (seconds).

        A true upper bound: the service gives up on the provider a little after it.
        """

    async def analyze(self, title: str, description: str, known_skills: Sequence[str]) -> Analysis:
        """Analyse one ticket. Raises TriageError on any failure; never returns unvalidated data."""

    async def aclose(self) -> None:
        """Let go of any connections (process shutdown). Safe to call on an unused provider."""
