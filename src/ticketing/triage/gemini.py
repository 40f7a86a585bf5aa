"""Google Gemini through the official `google-genai` SDK, with our own timeout and retries.

The SDK's own retries are switched off (`HttpRetryOptions(attempts=1)`): left on, they would
multiply ours, and with aiohttp installed the SDK otherwise retries connection errors once after
a random 1-10 s sleep. One loop here owns attempts, backoff and Retry-After.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import time
from collections.abc import Sequence
from typing import Any

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from ticketing.config import Settings
from ticketing.skills import MAX_SKILLS
from ticketing.triage.base import Analysis, TriageError
from ticketing.triage.parsing import parse_analysis
from ticketing.triage.prompt import build_system_instruction, build_user_content
from ticketing.vocabulary import Priority, TicketType

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0  # first retry waits about this long, then doubles
BACKOFF_MAX_SECONDS = 8.0
MAX_RETRY_AFTER_SECONDS = 30.0  # a longer server-requested wait is cut to this
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


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _server_retry_delay(exc: genai_errors.APIError) -> float | None:
    """The wait the server asked for: the Retry-After header, else Google's RetryInfo detail."""
    headers = getattr(exc.response, "headers", None)
    if headers is not None:
        delay = _parse_retry_after(headers.get("retry-after"))
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


class _Retryable(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, delay: float | None = None, *, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay  # what the server asked us to wait, if it said
        self.timed_out = timed_out

    def summary(self, attempts: int) -> str:
        noun = "attempt" if attempts == 1 else "attempts"
        if self.timed_out:  # "timed out after 20 s (3 attempts)"
            return f"{self.reason} ({attempts} {noun})"
        return f"{self.reason} after {attempts} {noun}"  # "HTTP 429 after 3 attempts"


class GeminiProvider:
    """Triage with a Gemini model: structured JSON output, temperature 0, no thinking."""

    name = "gemini"

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
        self.attempts: int = settings.ai_max_retries + 1
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._api_key: str | None = settings.gemini_api_key
        self._client: genai.Client | None = None
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
        retries = self.attempts - 1
        return self.timeout * self.attempts + retries * max(self.backoff_max, self.max_retry_after)

    def _config(self, known_skills: Sequence[str]) -> types.GenerateContentConfig:
        return types.GenerateContentConfig(
            system_instruction=build_system_instruction(known_skills),
            temperature=0,
            response_mime_type="application/json",
            response_schema=RESPONSE_SCHEMA,
            thinking_config=types.ThinkingConfig(thinking_budget=0),
            max_output_tokens=MAX_OUTPUT_TOKENS,
            # A continued answer would mean more requests behind our back; ours is short.
            automatic_continuation=False,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _backoff(self, attempt: int, server_delay: float | None) -> float:
        if server_delay is not None:
            return min(server_delay, self.max_retry_after)
        delay = min(self.backoff_base * 2.0 ** (attempt - 1), self.backoff_max)
        return delay * (0.75 + 0.25 * random.random())  # jitter spreads out a burst of retries

    async def _attempt(self, config: types.GenerateContentConfig, contents: str) -> Analysis:
        assert self._client is not None and self.model is not None
        try:
            # The SDK's timeout is per network phase; this one bounds the whole attempt.
            async with asyncio.timeout(self.timeout):
                response = await self._client.aio.models.generate_content(
                    model=self.model, contents=contents, config=config
                )
        except genai_errors.APIError as exc:
            code = int(exc.code) if isinstance(exc.code, int) else 0
            if code in _RETRYABLE_STATUS:
                raise _Retryable(f"HTTP {code}", _server_retry_delay(exc)) from exc
            message = self._redact(str(exc.message or exc.status or ""))[:200]
            raise TriageError(f"HTTP {code}: {message}" if message else f"HTTP {code}") from exc
        except _TIMEOUT_ERRORS as exc:
            raise _Retryable(f"timed out after {self.timeout:g} s", timed_out=True) from exc
        except _TRANSPORT_ERRORS as exc:
            raise _Retryable(f"connection failed ({type(exc).__name__})") from exc
        except Exception as exc:
            # An answer the SDK could not even decode, or an SDK bug: not worth retrying.
            raise TriageError(f"unexpected error ({type(exc).__name__})") from exc
        return self._read(response)

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

    async def analyze(self, title: str, description: str, known_skills: Sequence[str]) -> Analysis:
        """Ask Gemini, retrying 429/5xx/timeouts with backoff; TriageError when it gives up."""
        if self._client is None:
            raise TriageError("GEMINI_API_KEY is not set")
        if not self.model:
            raise TriageError("GEMINI_MODEL is not set")
        config = self._config(known_skills)
        contents = build_user_content(title, description)
        for attempt in range(1, self.attempts + 1):
            try:
                return await self._attempt(config, contents)
            except _Retryable as exc:
                if attempt == self.attempts:
                    raise TriageError(exc.summary(attempt)) from exc
                wait = self._backoff(attempt, exc.delay)
                log.info(
                    "gemini attempt %d/%d failed (%s); retrying in %.2f s",
                    attempt,
                    self.attempts,
                    exc.reason,
                    wait,
                )
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        if self._client is not None:
            await self._client.aio.aclose()
