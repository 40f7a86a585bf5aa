"""analyze_with_fallback: AI when it works, the local analyzer (with a reason) when it does not.

The AI side is the real GeminiProvider / OpenAIProvider talking to the fake servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest

from tests.fakes import FakeGemini, FakeOpenAI
from ticketing.config import Settings
from ticketing.triage.base import Analysis
from ticketing.triage.factory import build_provider
from ticketing.triage.gemini import GeminiProvider
from ticketing.triage.local import LocalAnalyzer
from ticketing.triage.openai_provider import OpenAIProvider
from ticketing.triage.service import TriageOutcome, analyze_with_fallback
from ticketing.vocabulary import Priority, TicketType

TITLE = "Checkout page returns 500"
DESCRIPTION = "Since this morning every payment fails with a database timeout in postgres."
KNOWN_SKILLS = ["python", "postgresql", "billing"]
API_KEY = "test-key-do-not-leak"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "secret_key": "x" * 40,
        "gemini_api_key": API_KEY,
        "gemini_model": "gemini-test",
        "ai_timeout_seconds": 0.3,
        "ai_max_retries": 1,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


@pytest.fixture
async def gemini(fake: FakeGemini) -> AsyncIterator[Callable[..., GeminiProvider]]:
    made: list[GeminiProvider] = []

    def make(**overrides: Any) -> GeminiProvider:
        settings = make_settings(gemini_base_url=fake.base_url, **overrides)
        provider = GeminiProvider(settings, backoff_base=0.01, backoff_max=0.01)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


async def run(provider: Any, **kwargs: Any) -> TriageOutcome:
    return await analyze_with_fallback(
        provider, LocalAnalyzer(), TITLE, DESCRIPTION, KNOWN_SKILLS, **kwargs
    )


def assert_fell_back(outcome: TriageOutcome) -> str:
    assert outcome.status == "fallback"
    assert outcome.provider == "local"
    assert outcome.model == LocalAnalyzer().model
    assert outcome.model is not None and outcome.model.startswith("local-learned-")
    assert isinstance(outcome.analysis, Analysis)
    assert outcome.error is not None
    assert API_KEY not in outcome.error
    return outcome.error


async def test_ai_success_is_recorded_as_ai(
    fake: FakeGemini, gemini: Callable[..., GeminiProvider]
) -> None:
    outcome = await run(gemini())
    assert outcome.status == "ai"
    assert outcome.provider == "gemini"
    assert outcome.model == "gemini-test"
    assert outcome.error is None
    assert outcome.analysis.priority is Priority.high  # the fake's answer, not the local one
    assert outcome.analysis.required_skills == ["python", "postgresql"]


@pytest.mark.parametrize(
    ("mode", "expected_error"),
    [
        ("429", "gemini: HTTP 429 after 2 attempts"),
        ("500", "gemini: HTTP 500 after 2 attempts"),
        ("slow", "gemini: timed out after 0.3 s (2 attempts)"),
        ("hang", "gemini: timed out after 0.3 s (2 attempts)"),
        ("400", "gemini: HTTP 400: Request contains an invalid argument."),
        ("non_json", "gemini: invalid answer: answer is not JSON: "),
        (
            "bad_enum",
            "gemini: invalid answer: priority 'critical' is not one of low, medium, high, urgent",
        ),
    ],
)
async def test_each_failure_falls_back_with_a_readable_reason(
    fake: FakeGemini, gemini: Callable[..., GeminiProvider], mode: str, expected_error: str
) -> None:
    fake.mode, fake.delay, fake.retry_after = mode, 3.0, 0.01
    outcome = await run(gemini())
    assert assert_fell_back(outcome).startswith(expected_error)
    # The fallback really analysed the ticket (payment + database cues).
    expected = await LocalAnalyzer().analyze(TITLE, DESCRIPTION, KNOWN_SKILLS)
    assert outcome.analysis == expected


async def test_missing_api_key_falls_back(fake: FakeGemini) -> None:
    provider = build_provider(make_settings(gemini_api_key=None), "gemini")
    outcome = await run(provider)
    assert assert_fell_back(outcome) == "gemini: GEMINI_API_KEY is not set"
    assert fake.requests == []


async def test_extra_fields_do_not_leak_into_the_outcome(
    fake: FakeGemini, gemini: Callable[..., GeminiProvider]
) -> None:
    fake.mode = "extra_fields"
    outcome = await run(gemini())
    assert outcome.status == "ai"
    assert set(outcome.analysis.model_dump()) == {
        "required_skills",
        "priority",
        "ticket_type",
        "helpful_notes",
        "confidence",
    }
    assert outcome.analysis.confidence is None  # only our own model gives one


async def test_openai_failure_falls_back() -> None:
    with FakeOpenAI() as server:
        server.mode = "bad_enum"
        settings = make_settings(
            openai_base_url=f"{server.base_url}/v1",
            openai_model="m",
            ai_max_retries=0,
            ai_timeout_seconds=5,  # about the answer, not timeouts: room for a busy machine
        )
        provider = OpenAIProvider(settings)
        try:
            outcome = await run(provider)
        finally:
            await provider.aclose()
    assert assert_fell_back(outcome).startswith("openai: invalid answer: priority 'critical'")


class NeverAnswers:
    """A provider stuck beyond its own timeouts (e.g. a trickling connection)."""

    name = "stuck"
    model: str | None = "stuck-1"
    max_total_seconds = 0.1

    async def analyze(self, title: str, description: str, known_skills: Sequence[str]) -> Analysis:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass


class Crashes:
    name = "crashy"
    model: str | None = None
    max_total_seconds = 1.0

    async def analyze(self, title: str, description: str, known_skills: Sequence[str]) -> Analysis:
        raise RuntimeError(f"boom with secret {API_KEY}")

    async def aclose(self) -> None:
        pass


async def test_overall_budget_bounds_the_whole_ai_call() -> None:
    outcome = await run(NeverAnswers(), budget_seconds=0.2)
    assert assert_fell_back(outcome) == "stuck: timed out after 0.2 s overall"


async def test_budget_defaults_to_the_providers_worst_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("ticketing.triage.service.OVERALL_TIMEOUT_SLACK_SECONDS", 0.1)
    outcome = await run(NeverAnswers())
    assert assert_fell_back(outcome) == "stuck: timed out after 0.2 s overall"


async def test_the_overall_budget_stops_a_provider_between_its_retries(
    fake: FakeGemini, gemini: Callable[..., GeminiProvider]
) -> None:
    # The deadline's cancellation must end the provider's retries, not count as a failed attempt.
    fake.mode = "hang"
    outcome = await run(gemini(ai_max_retries=3), budget_seconds=0.1)
    assert assert_fell_back(outcome) == "gemini: timed out after 0.1 s overall"
    await asyncio.sleep(0.5)  # long enough for a retry, were one coming
    assert len(fake.requests) == 1


async def test_unexpected_exceptions_fall_back_without_their_text() -> None:
    outcome = await run(Crashes())
    assert assert_fell_back(outcome) == "crashy: unexpected error (RuntimeError)"


async def test_configured_local_provider_is_the_intended_result() -> None:
    outcome = await run(build_provider(make_settings(), "local"))
    assert outcome.status == "ai"
    assert outcome.provider == "local"
    assert outcome.model is not None and outcome.model.startswith("local-learned-")
    assert outcome.error is None
    assert outcome.analysis.ticket_type in set(TicketType)


# ---- the factory -----------------------------------------------------------------------------


def test_factory_builds_each_provider_by_name() -> None:
    settings = make_settings(openai_base_url="http://127.0.0.1:9/v1", openai_model="m")
    assert isinstance(build_provider(settings, "gemini"), GeminiProvider)
    assert isinstance(build_provider(settings, "openai"), OpenAIProvider)
    local = build_provider(settings, "local")
    assert local.name == "local"
    assert local.model is not None and local.model.startswith("local-learned-")


@pytest.mark.parametrize("name", ["gemini", "openai", "local"])
async def test_every_provider_has_a_budget_and_closes(name: str) -> None:
    configured = make_settings(openai_base_url="http://127.0.0.1:9/v1", openai_model="m")
    for settings in (configured, make_settings(gemini_api_key=None, openai_base_url=None)):
        provider = build_provider(settings, name)
        assert provider.max_total_seconds > 0
        await provider.aclose()  # also when it never connected, or cannot


async def test_the_budget_covers_every_attempt_and_wait() -> None:
    settings = make_settings(ai_timeout_seconds=20, ai_max_retries=2, openai_base_url=None)
    for provider in (GeminiProvider(settings), OpenAIProvider(settings)):
        # Three attempts of 20 s, two waits of at most 30 s (the Retry-After cap).
        assert provider.max_total_seconds == 3 * 20 + 2 * 30
        await provider.aclose()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "gemini"),  # auto with a Gemini key
        ({"gemini_api_key": None, "openai_base_url": "http://127.0.0.1:9/v1"}, "openai"),
        ({"gemini_api_key": None, "openai_base_url": None}, "local"),
        ({"ai_provider": "local"}, "local"),
    ],
)
def test_factory_follows_the_settings(overrides: dict[str, Any], expected: str) -> None:
    settings = make_settings(**{"ai_provider": "auto", "openai_base_url": None, **overrides})
    assert build_provider(settings).name == expected


def test_factory_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown triage provider"):
        build_provider(make_settings(), "claude")
