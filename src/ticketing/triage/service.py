"""Run the configured provider, and fall back to the local analyzer whenever it fails.

Outcome statuses (the ticket's `analysis_status`):
- "ai": the configured provider answered. That includes the local analyzer when it *is* the
  configured provider (AI_PROVIDER=local, or auto with no AI configured): it is then the
  intended result, not a degraded one, so `POST /admin/rerun-ai` (which re-runs "fallback"
  tickets) leaves it alone. Such tickets read provider "local", model "local-rules-v1".
- "fallback": an AI provider failed (error, timeout, invalid answer) and the local analyzer
  answered instead; `error` says why in one short line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ticketing.triage.base import Analysis, PromptExample, TriageError, TriageProvider

log = logging.getLogger(__name__)

# Slack over a provider's own worst case, so its precise error wins over our blunt one.
OVERALL_TIMEOUT_SLACK_SECONDS = 5.0
MAX_ERROR_CHARS = 300
LOCAL_PROVIDER = "local"


class _TakesExamples(Protocol):
    async def analyze(
        self,
        title: str,
        description: str,
        known_skills: Sequence[str],
        *,
        examples: Sequence[PromptExample] = (),
    ) -> Analysis: ...


def _ask(
    provider: TriageProvider,
    title: str,
    description: str,
    known_skills: Sequence[str],
    examples: Sequence[PromptExample],
) -> Awaitable[Analysis]:
    # Providers that say so (Gemini, OpenAI) get the examples; the others the plain call.
    if examples and getattr(provider, "takes_examples", False):
        taker: _TakesExamples = provider  # type: ignore[assignment]
        return taker.analyze(title, description, known_skills, examples=examples)
    return provider.analyze(title, description, known_skills)


@dataclass(frozen=True)
class TriageOutcome:
    """One triage result plus what the ticket records about how it was obtained."""

    analysis: Analysis
    status: Literal["ai", "fallback"]
    provider: str
    model: str | None
    error: str | None


def overall_timeout(provider: TriageProvider) -> float:
    """How long to let `provider` try (all its attempts and waits) before giving up on it."""
    return provider.max_total_seconds + OVERALL_TIMEOUT_SLACK_SECONDS


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


async def analyze_with_fallback(
    provider: TriageProvider,
    fallback: TriageProvider,
    title: str,
    description: str,
    known_skills: Sequence[str],
    *,
    budget_seconds: float | None = None,
    examples: Sequence[PromptExample] = (),
) -> TriageOutcome:
    """Analyse a ticket with `provider`; on any failure use `fallback` and say why.

    `budget_seconds` bounds the whole provider call, retries included (default: the provider's
    `max_total_seconds` plus a little slack). `examples`: corrected tickets like this one, for
    the providers that put them in their prompt. Errors from the fallback itself (the
    local analyzer, which has no network) propagate: the job that called us will retry.
    """
    if provider.name == LOCAL_PROVIDER:
        analysis = await provider.analyze(title, description, known_skills)
        degraded = _model_error(provider)
        if degraded is not None:
            # The learned model could not be loaded: the rules answered. Recorded as a
            # fallback (re-run by rerun-ai once the model is back), with the reason.
            return TriageOutcome(analysis, "fallback", provider.name, provider.model, degraded)
        return TriageOutcome(analysis, "ai", provider.name, provider.model, None)

    budget = overall_timeout(provider) if budget_seconds is None else budget_seconds
    deadline = asyncio.timeout(budget)
    try:
        async with deadline:
            analysis = await _ask(provider, title, description, known_skills, examples)
    except TriageError as exc:
        error = f"{provider.name}: {exc}"
    except TimeoutError:
        if deadline.expired():
            error = f"{provider.name}: timed out after {budget:g} s overall"
        else:  # the provider's own TimeoutError escaped it
            error = f"{provider.name}: timed out"
    except Exception as exc:
        # Only the type: an unknown exception's text could carry anything (URLs, headers).
        log.exception("triage provider %s crashed", provider.name)
        error = f"{provider.name}: unexpected error ({type(exc).__name__})"
    else:
        return TriageOutcome(analysis, "ai", provider.name, provider.model, None)

    log.warning("triage fell back to %s: %s", fallback.name, error)
    analysis = await fallback.analyze(title, description, known_skills)
    degraded = _model_error(fallback)
    if degraded is not None:
        error = f"{error}; {degraded}"
    return TriageOutcome(analysis, "fallback", fallback.name, fallback.model, _short(error))


def _model_error(provider: TriageProvider) -> str | None:
    """Why the local analyzer runs on its rules alone (its model is unusable), if it does."""
    error = getattr(provider, "model_error", None)
    return _short(error) if isinstance(error, str) and error else None
