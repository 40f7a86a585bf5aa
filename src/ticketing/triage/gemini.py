"""Google Gemini through the official `google-genai` SDK, with our own timeout and retries.

The SDK's own retries are switched off (`HttpRetryOptions(attempts=1)`): left on, they would
multiply ours, and with aiohttp installed the SDK otherwise retries connection errors once after
a random 1-10 s sleep. Ours are the shared tenacity policy in `ticketing.triage.retrying`;
this module only says which failures are worth another attempt and how Gemini asks for a wait.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from ticketing.config import Settings
from ticketing.skills import MAX_SKILLS
from ticketing.triage.base import Analysis, PromptExample, TriageError
from ticketing.triage.parsing import parse_analysis
from ticketing.triage.prompt import build_system_instruction, build_user_content
from ticketing.triage.retrying import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_MAX_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    RetriesExhausted,
    RetryPolicy,
    gave_up_message,
    retry_after_seconds,
)
from ticketing.vocabulary import Priority, TicketType

MAX_OUTPUT_TOKENS = 1024  # the answer is ~100 tokens; this bounds cost if the model rambles

# Codes worth another try: rate limit, request timeout and server-side failures.
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Network failures of whichever httpx flavour the SDK picked (it prefers httpx2)."""
    found: list[type[BaseException]] = [ConnectionError]
    try:
        import httpx

        found.append(httpx.TransportError)
    except ImportError:  # pragma: no cover - depends on the installed extras
        pass
    try:
        import httpx2

        found.append(httpx2.TransportError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


def _timeout_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [TimeoutError]
    try:
        import httpx

        found.append(httpx.TimeoutException)
    except ImportError:  # pragma: no cover
        pass
    try:
        import httpx2

        found.append(httpx2.TimeoutException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()
_TIMEOUT_ERRORS = _timeout_errors()

RESPONSE_SCHEMA = types.Schema(
    type=types.Type.OBJECT,
    properties={
        "required_skills": types.Schema(
            type=types.Type.ARRAY, items=types.Schema(type=types.Type.STRING), max_items=MAX_SKILLS
        ),
        "priority": types.Schema(type=types.Type.STRING, enum=[p.value for p in Priority]),
        "ticket_type": types.Schema(type=types.Type.STRING, enum=[t.value for t in TicketType]),
        "helpful_notes": types.Schema(type=types.Type.STRING),
    },
    required=["required_skills", "priority", "ticket_type", "helpful_notes"],
    property_ordering=["required_skills", "priority", "ticket_type", "helpful_notes"],
)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _status_code(exc: genai_errors.APIError) -> int:
    return int(exc.code) if isinstance(exc.code, int) else 0


def _retryable(exc: BaseException) -> bool:
    """Worth another attempt: 408, 429, 5xx, a timeout, a failed connection."""
    if isinstance(exc, genai_errors.APIError):
        return _status_code(exc) in _RETRYABLE_STATUS
    return isinstance(exc, _TIMEOUT_ERRORS + _TRANSPORT_ERRORS)


def _server_delay(exc: BaseException) -> float | None:
    """The wait the server asked for: the Retry-After header, else Google's RetryInfo detail."""
    if not isinstance(exc, genai_errors.APIError):
        return None
    delay = retry_after_seconds(getattr(exc.response, "headers", None))
    if delay is not None:
        return delay
    # Gemini usually says it in the body: {"@type": ".../google.rpc.RetryInfo", "retryDelay": "7s"}
    details: Any = exc.details
    error = details.get("error") if isinstance(details, dict) else None
    items = error.get("details") if isinstance(error, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.match(str(item.get("retryDelay", "")))
            if match:
                return float(match[1])
    return None


class GeminiProvider:
    """Triage with a Gemini model: structured JSON output, temperature 0, no thinking."""

    name = "gemini"
    # analyze() takes `examples` (see ticketing.triage.service.analyze_with_fallback).
    takes_examples = True

    def __init__(
        self,
        settings: Settings,
        *,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        backoff_max: float = BACKOFF_MAX_SECONDS,
        max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
    ) -> None:
        self.model: str | None = settings.gemini_model
        self.timeout: float = settings.ai_timeout_seconds
        self.retry_policy = RetryPolicy(
            attempts=settings.ai_max_retries + 1,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
        )
        self._api_key: str | None = settings.gemini_api_key
        self._client: genai.Client | None = None
        self._last_config: tuple[tuple[str, ...], types.GenerateContentConfig] | None = None
        if self._api_key:
            http_options = types.HttpOptions(
                timeout=max(1, int(self.timeout * 1000)),  # the SDK wants milliseconds
                retry_options=types.HttpRetryOptions(attempts=1),
            )
            if settings.gemini_base_url:
                http_options.base_url = settings.gemini_base_url
            # vertexai=False: an ambient GOOGLE_GENAI_USE_VERTEXAI must not reroute our key.
            self._client = genai.Client(
                api_key=self._api_key, vertexai=False, http_options=http_options
            )

    @property
    def max_total_seconds(self) -> float:
        """The longest one analyze() can take: every attempt timing out plus every wait."""
        return self.retry_policy.max_total_seconds(self.timeout)

    def _config(self, known_skills: Sequence[str]) -> types.GenerateContentConfig:
        # Built once per set of known skills (they rarely change): the SDK copies it per call.
        skills = tuple(known_skills)
        cached = self._last_config
        if cached is not None and cached[0] == skills:
            return cached[1]
        config = types.GenerateContentConfig(
            system_instruction=build_system_instruction(known_skills),
            temperature=0,
            response_mime_type="application/json",
            response_schema=RESPONSE_SCHEMA,
            thinking_config=types.ThinkingConfig(thinking_budget=0),
            max_output_tokens=MAX_OUTPUT_TOKENS,
            # A continued answer would mean more requests behind our back; ours is short.
            automatic_continuation=False,
            # We declare no tools: without this the SDK runs its function-calling loop anyway,
            # which deep-copies the whole config a second time per call.
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        self._last_config = (skills, config)
        return config

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _describe(self, exc: BaseException) -> str:
        """A retryable failure in a few words: "HTTP 429", "timed out after 20 s", ..."""
        if isinstance(exc, genai_errors.APIError):
            return f"HTTP {_status_code(exc)}"
        if isinstance(exc, _TIMEOUT_ERRORS):
            return f"timed out after {self.timeout:g} s"
        return f"connection failed ({type(exc).__name__})"

    async def _attempt(
        self, config: types.GenerateContentConfig, contents: str
    ) -> types.GenerateContentResponse:
        assert self._client is not None and self.model is not None
        # The SDK's timeout is per network phase; this one bounds the whole attempt.
        async with asyncio.timeout(self.timeout):
            return await self._client.aio.models.generate_content(
                model=self.model, contents=contents, config=config
            )

    @staticmethod
    def _read(response: types.GenerateContentResponse) -> Analysis:
        candidates = response.candidates or []
        if not candidates:
            feedback = response.prompt_feedback
            reason = feedback.block_reason if feedback is not None else None
            raise TriageError(f"no answer (blocked: {reason})" if reason else "no answer")
        candidate = candidates[0]
        parts = candidate.content.parts if candidate.content is not None else None
        text = "".join(p.text for p in parts or [] if p.text and not p.thought)
        if not text:
            raise TriageError(f"empty answer (finish reason {candidate.finish_reason})")
        try:
            return parse_analysis(text)
        except TriageError as exc:
            raise TriageError(f"invalid answer: {exc}") from exc

    async def analyze(
        self,
        title: str,
        description: str,
        known_skills: Sequence[str],
        *,
        examples: Sequence[PromptExample] = (),
    ) -> Analysis:
        """Ask Gemini, retrying 408/429/5xx/timeouts with backoff; TriageError when it gives up.

        `examples`: tickets staff classified, most like this one, shown in the prompt."""
        if self._client is None:
            raise TriageError("GEMINI_API_KEY is not set")
        if not self.model:
            raise TriageError("GEMINI_MODEL is not set")
        config = self._config(known_skills)
        contents = build_user_content(title, description, examples)
        retrying = self.retry_policy.retrying(
            provider=self.name,
            retryable=_retryable,
            server_delay=_server_delay,
            describe=self._describe,
        )
        try:
            response: types.GenerateContentResponse = await retrying(
                self._attempt, config, contents
            )
        except RetriesExhausted as gave_up:
            failure = gave_up.failure
            message = gave_up_message(
                self._describe(failure),
                gave_up.attempts,
                timed_out=isinstance(failure, _TIMEOUT_ERRORS),
            )
            raise TriageError(message) from failure
        except genai_errors.APIError as exc:  # an HTTP error not worth retrying (400, 401, ...)
            code = _status_code(exc)
            message = self._redact(str(exc.message or exc.status or ""))[:200]
            raise TriageError(f"HTTP {code}: {message}" if message else f"HTTP {code}") from exc
        except Exception as exc:
            # An answer the SDK could not even decode, or an SDK bug: not worth retrying.
            raise TriageError(f"unexpected error ({type(exc).__name__})") from exc
        return self._read(response)

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        if self._client is not None:
            await self._client.aio.aclose()
