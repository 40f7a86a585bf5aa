"""How the AI providers retry: one tenacity policy, and the wait a server asks for.

Both remote providers switch their SDK's own retries off and call `RetryPolicy.retrying()`:
- attempts: `AI_MAX_RETRIES + 1`, each bounded by the provider's own timeout;
- the wait before a retry is the server's requested delay when it names one (`retry-after-ms`,
  `Retry-After` in seconds or as an HTTP date, or a provider-specific field), cut to
  `max_retry_after`; otherwise exponential backoff, `backoff_base` doubling up to `backoff_max`,
  less up to 25 % jitter so a burst of failures does not retry in lockstep;
- a server asking for longer than `max_retry_after` is still retried, after `max_retry_after`:
  a per-minute quota often frees up sooner than the server's estimate, the cut keeps the worst
  case (`max_total_seconds`) small, and if it is still refused the ticket falls back to the
  local analyzer with "HTTP 429 after N attempts".

Which failures are worth another attempt, and how a server spells its delay beyond the headers,
is each provider's business: they pass those in as functions.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.wait import wait_base

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0  # the first retry waits about this long, then it doubles
BACKOFF_MAX_SECONDS = 8.0
MAX_RETRY_AFTER_SECONDS = 30.0  # a longer server-requested wait is cut to this
JITTER = 0.25  # a backoff wait is shortened by up to this fraction

ServerDelay = Callable[[BaseException], float | None]


def retry_after_seconds(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """The wait a response's headers ask for, in seconds; None when they do not say.

    `headers` is looked up by lower-case name: pass the HTTP client's case-insensitive headers.
    `retry-after-ms` (OpenAI, Azure) first, then `Retry-After` as delta-seconds or as an HTTP
    date (RFC 9110). A date in the past or a negative number means "now" (0). An absurdly large
    number is returned as is (inf included): the caller caps it.
    """
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if not value:
            continue
        try:
            seconds = float(value.strip()) * scale
        except ValueError:
            continue
        if not math.isnan(seconds):
            return max(0.0, seconds)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class wait_retry_after(wait_base):  # lower case like tenacity's own waits
    """Wait what the server asked for (at most `cap` seconds), else fall back to `otherwise`."""

    def __init__(self, server_delay: ServerDelay, *, cap: float, otherwise: wait_base) -> None:
        self.server_delay = server_delay
        self.cap = cap
        self.otherwise = otherwise

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None and outcome.failed else None
        delay = self.server_delay(failure) if failure is not None else None
        if delay is None:
            return self.otherwise(retry_state)
        return min(max(0.0, delay), self.cap)


def wait_backoff(base: float, maximum: float) -> wait_base:
    """`min(base * 2**(n-1), maximum)` before retry n, less up to 25 % jitter.

    Three quarters of it fixed (`wait_exponential`) plus a random part of up to one quarter
    (`wait_random_exponential`, uniform in [0, its bound]): the sum lies in [75 %, 100 %].
    """
    fixed = 1.0 - JITTER
    return wait_exponential(multiplier=base * fixed, max=maximum * fixed) + wait_random_exponential(
        multiplier=base * JITTER, max=maximum * JITTER
    )


class RetriesExhausted(RetryError):
    """Every attempt failed in a way worth retrying; the last failure says how."""

    @property
    def attempts(self) -> int:
        return self.last_attempt.attempt_number

    @property
    def failure(self) -> BaseException:
        failure = self.last_attempt.exception()
        assert failure is not None  # only failed attempts are retried
        return failure


def attempts_phrase(attempts: int) -> str:
    """ "1 attempt", "3 attempts"."""
    return f"{attempts} attempt" if attempts == 1 else f"{attempts} attempts"


def gave_up_message(reason: str, attempts: int, *, timed_out: bool = False) -> str:
    """ "HTTP 429 after 3 attempts"; a timeout, which already says "after", reads
    "timed out after 20 s (3 attempts)"."""
    if timed_out:
        return f"{reason} ({attempts_phrase(attempts)})"
    return f"{reason} after {attempts_phrase(attempts)}"


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, and how long to wait between them."""

    attempts: int  # the first one included
    backoff_base: float = BACKOFF_BASE_SECONDS
    backoff_max: float = BACKOFF_MAX_SECONDS
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")

    @property
    def longest_wait(self) -> float:
        """The longest wait between two attempts: a full backoff, or a capped server delay."""
        return max(self.backoff_max, self.max_retry_after)

    def max_total_seconds(self, attempt_timeout: float) -> float:
        """The longest a call can take when each attempt is bounded by `attempt_timeout`."""
        return attempt_timeout * self.attempts + (self.attempts - 1) * self.longest_wait

    def retrying(
        self,
        *,
        provider: str,
        retryable: Callable[[BaseException], bool],
        server_delay: ServerDelay,
        describe: Callable[[BaseException], str],
    ) -> AsyncRetrying:
        """A fresh controller for one call: `await controller(fn, *args)`.

        Fresh each time because tenacity keeps a call's state on the controller, per thread:
        concurrent calls on one event loop must not share one. A failure `retryable` rejects is
        raised as is, at once; when the attempts run out, `RetriesExhausted` wraps the last one.
        `server_delay` reads the wait a failure asks for, `describe` says it in the log.
        """

        def log_retry(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome is not None else None
            log.info(
                "%s attempt %d/%d failed (%s); retrying in %.2f s",
                provider,
                state.attempt_number,
                self.attempts,
                describe(failure) if failure is not None else "no exception",
                state.upcoming_sleep,
            )

        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_retry_after(
                server_delay,
                cap=self.max_retry_after,
                otherwise=wait_backoff(self.backoff_base, self.backoff_max),
            ),
            retry=retry_if_exception(retryable),
            before_sleep=log_retry,
            retry_error_cls=RetriesExhausted,
        )
