"""Any OpenAI-compatible chat server (OpenAI, Ollama, vLLM, llama.cpp) through the `openai` SDK.

Here the SDK owns the retries (`max_retries`): it retries connection errors, timeouts, 408, 409,
429 and 5xx with exponential backoff, and honours `Retry-After` / `retry-after-ms` up to two
minutes (a longer requested wait makes it give up at once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import openai
from openai import AsyncOpenAI

from ticketing.config import Settings
from ticketing.triage.base import Analysis, TriageError
from ticketing.triage.parsing import parse_analysis
from ticketing.triage.prompt import build_system_instruction, build_user_content

# Mirrors the SDK's rules (openai._base_client: _should_retry, MAX_RETRY_AFTER_DELAY, backoff
# capped at 8 s), only to describe a failure and to budget time; the SDK decides.
_SDK_RETRYABLE = frozenset({408, 409, 429})
_SDK_MAX_RETRY_AFTER = 120.0
_SDK_MAX_BACKOFF = 8.0


def _sdk_retried(exc: openai.APIStatusError) -> bool:
    if exc.status_code not in _SDK_RETRYABLE and exc.status_code < 500:
        return False
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = exc.response.headers.get(header)
        if value is None:
            continue
        try:
            delay = float(value) / divisor
        except ValueError:
            continue
        return not (math.isfinite(delay) and delay > _SDK_MAX_RETRY_AFTER)
    return True


class OpenAIProvider:
    """Triage with a model behind an OpenAI-compatible `chat/completions` endpoint (JSON mode)."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        self.model: str | None = settings.openai_model
        self.timeout: float = settings.ai_timeout_seconds
        self.max_retries: int = settings.ai_max_retries
        self._api_key: str | None = settings.openai_api_key
        self._base_url: str | None = settings.openai_base_url
        self._client: AsyncOpenAI | None = None
        if self._base_url:
            self._client = AsyncOpenAI(
                base_url=self._base_url,
                # Local servers (Ollama, vLLM) want no key, but the SDK insists on one.
                api_key=self._api_key or "not-needed",
                timeout=self.timeout,
                max_retries=self.max_retries,
            )

    @property
    def max_total_seconds(self) -> float:
        """The longest one analyze() can take, counting the SDK's retries and waits."""
        return self.timeout * (self.max_retries + 1) + self.max_retries * _SDK_MAX_BACKOFF

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    async def analyze(self, title: str, description: str, known_skills: Sequence[str]) -> Analysis:
        """Ask the model in JSON mode; TriageError on any failure after the SDK's retries."""
        if self._client is None:
            raise TriageError("OPENAI_BASE_URL is not set")
        if not self.model:
            raise TriageError("OPENAI_MODEL is not set")
        attempts = self.max_retries + 1
        try:
            completion = await self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": build_system_instruction(known_skills)},
                    {"role": "user", "content": build_user_content(title, description)},
                ],
                temperature=0,
                response_format={"type": "json_object"},
            )
        except openai.APITimeoutError as exc:
            raise TriageError(f"timed out after {self.timeout:g} s ({attempts} attempts)") from exc
        except openai.APIConnectionError as exc:
            raise TriageError(f"connection failed after {attempts} attempts") from exc
        except openai.APIStatusError as exc:
            code = exc.status_code
            if _sdk_retried(exc) and attempts > 1:
                raise TriageError(f"HTTP {code} after {attempts} attempts") from exc
            message = self._redact(str(exc.message))[:200]
            raise TriageError(f"HTTP {code}: {message}") from exc
        except openai.OpenAIError as exc:
            raise TriageError(f"unexpected error ({type(exc).__name__})") from exc
        if not completion.choices:
            raise TriageError("no answer")
        choice = completion.choices[0]
        if choice.message.refusal:
            raise TriageError("the model refused to answer")
        text = choice.message.content
        if not text:
            raise TriageError(f"empty answer (finish reason {choice.finish_reason})")
        try:
            return parse_analysis(text)
        except TriageError as exc:
            raise TriageError(f"invalid answer: {exc}") from exc

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        if self._client is not None:
            await self._client.close()
