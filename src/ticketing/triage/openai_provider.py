"""Any OpenAI-compatible chat server (OpenAI, Ollama, vLLM, llama.cpp) through the `openai` SDK.

The SDK's own retries are switched off (`max_retries=0`); ours are the shared tenacity policy in
`ticketing.triage.retrying`, as for Gemini. Retried: connection errors, timeouts, 408, 409 (lock
timeout), 429 and 5xx, unless the server says otherwise with OpenAI's `x-should-retry` header.
The wait honours `retry-after-ms` / `Retry-After` (seconds or an HTTP date) up to a cap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from ticketing.config import Settings
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

_RETRYABLE_STATUS = frozenset({408, 409, 429})  # and every 5xx


def _retryable(exc: BaseException) -> bool:
    """Worth another attempt: a failed connection, a timeout, 408/409/429/5xx."""
    if isinstance(exc, openai.APIStatusError):
        # OpenAI's servers may say it outright; the SDK obeys this header too.
        should_retry = exc.response.headers.get("x-should-retry")
        if should_retry in ("true", "false"):
            return should_retry == "true"
        return exc.status_code in _RETRYABLE_STATUS or exc.status_code >= 500
    # APITimeoutError is an APIConnectionError; TimeoutError is our own per-attempt bound.
    return isinstance(exc, openai.APIConnectionError | TimeoutError)


def _server_delay(exc: BaseException) -> float | None:
    if isinstance(exc, openai.APIStatusError):
        return retry_after_seconds(exc.response.headers)
    return None


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, openai.APITimeoutError | TimeoutError)


class OpenAIProvider:
    """Triage with a model behind an OpenAI-compatible `chat/completions` endpoint (JSON mode)."""

    name = "openai"
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
        self.model: str | None = settings.openai_model
        self.timeout: float = settings.ai_timeout_seconds
        self.retry_policy = RetryPolicy(
            attempts=settings.ai_max_retries + 1,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
        )
        self._api_key: str | None = settings.openai_api_key
        self._base_url: str | None = settings.openai_base_url
        self._client: AsyncOpenAI | None = None
        if self._base_url:
            self._client = AsyncOpenAI(
                base_url=self._base_url,
                # Local servers (Ollama, vLLM) want no key, but the SDK insists on one.
                api_key=self._api_key or "not-needed",
                timeout=self.timeout,
                max_retries=0,  # ours, below: left on, the SDK's would multiply them
            )

    @property
    def max_total_seconds(self) -> float:
        """The longest one analyze() can take: every attempt timing out plus every wait."""
        return self.retry_policy.max_total_seconds(self.timeout)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _describe(self, exc: BaseException) -> str:
        """A retryable failure in a few words: "HTTP 429", "timed out after 20 s", ..."""
        if isinstance(exc, openai.APIStatusError):
            return f"HTTP {exc.status_code}"
        if _is_timeout(exc):
            return f"timed out after {self.timeout:g} s"
        return "connection failed"

    async def _attempt(
        self, model: str, messages: list[ChatCompletionMessageParam]
    ) -> ChatCompletion:
        assert self._client is not None
        # The SDK's timeout is per network phase; this one bounds the whole attempt.
        async with asyncio.timeout(self.timeout):
            return await self._client.chat.completions.create(
                model=model,
                messages=messages,
                temperature=0,
                response_format={"type": "json_object"},
            )

    async def analyze(
        self,
        title: str,
        description: str,
        known_skills: Sequence[str],
        *,
        examples: Sequence[PromptExample] = (),
    ) -> Analysis:
        """Ask the model in JSON mode, retrying what is worth it; TriageError when it gives up.

        `examples`: tickets staff classified, most like this one, shown in the prompt."""
        if self._client is None:
            raise TriageError("OPENAI_BASE_URL is not set")
        if not self.model:
            raise TriageError("OPENAI_MODEL is not set")
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": build_system_instruction(known_skills)},
            {"role": "user", "content": build_user_content(title, description, examples)},
        ]
        retrying = self.retry_policy.retrying(
            provider=self.name,
            retryable=_retryable,
            server_delay=_server_delay,
            describe=self._describe,
        )
        try:
            completion: ChatCompletion = await retrying(self._attempt, self.model, messages)
        except RetriesExhausted as gave_up:
            failure = gave_up.failure
            if isinstance(failure, openai.APIStatusError) and gave_up.attempts == 1:
                # Nothing was retried (AI_MAX_RETRIES=0): the server's own words say more.
                raise TriageError(self._status_error(failure)) from failure
            message = gave_up_message(
                self._describe(failure), gave_up.attempts, timed_out=_is_timeout(failure)
            )
            raise TriageError(message) from failure
        except openai.APIStatusError as exc:  # an HTTP error not worth retrying (400, 401, ...)
            raise TriageError(self._status_error(exc)) from exc
        except openai.OpenAIError as exc:
            raise TriageError(f"unexpected error ({type(exc).__name__})") from exc
        return self._read(completion)

    def _status_error(self, exc: openai.APIStatusError) -> str:
        return f"HTTP {exc.status_code}: {self._redact(str(exc.message))[:200]}"

    @staticmethod
    def _read(completion: ChatCompletion) -> Analysis:
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
