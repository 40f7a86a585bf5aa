"""The retry policy both AI providers share: Retry-After parsing, waits, attempts, giving up."""

from __future__ import annotations

import email.utils
import math
import random

import pytest
from tenacity import AsyncRetrying, RetryCallState

from ticketing.triage.retrying import (
    RetriesExhausted,
    RetryPolicy,
    gave_up_message,
    retry_after_seconds,
)

NOW = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()


class AskedToWait(Exception):
    def __init__(self, seconds: float | None) -> None:
        super().__init__("busy")
        self.seconds = seconds


def asked_delay(exc: BaseException) -> float | None:
    return exc.seconds if isinstance(exc, AskedToWait) else None


def wait_after(policy: RetryPolicy, attempt: int, exc: BaseException) -> float:
    """The wait the policy chooses after failed attempt number `attempt`."""
    retrying = policy.retrying(
        provider="test", retryable=lambda e: True, server_delay=asked_delay, describe=repr
    )
    state = RetryCallState(retry_object=AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return float(retrying.wait(state))


# ---- Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 1.5 "}, 1.5),  # not standard, but servers send it
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # milliseconds win
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
        ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "1e999"}, math.inf),  # the caller caps it
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({"x-other": "1"}, None),
        (None, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str] | None, expected: float | None) -> None:
    assert retry_after_seconds(headers, now=NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Wed, 21 Oct 2015 07:29:30 GMT", 90.0),
        ("Wed, 21 Oct 2015 07:29:30 -0000", 90.0),  # no zone: still GMT, not local time
        ("Wednesday, 21-Oct-15 07:29:30 GMT", 90.0),  # the obsolete RFC 850 form
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past: now
    ],
)
def test_retry_after_as_an_http_date(value: str, expected: float) -> None:
    assert retry_after_seconds({"retry-after": value}, now=NOW) == expected


# ---- waits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 10, 60])
def test_backoff_doubles_up_to_its_maximum_less_up_to_a_quarter(attempt: int) -> None:
    policy = RetryPolicy(attempts=3, backoff_base=1.0, backoff_max=8.0)
    full = min(2.0 ** (attempt - 1), 8.0)
    waits = [wait_after(policy, attempt, ConnectionError()) for _ in range(200)]
    assert all(0.75 * full <= w <= full for w in waits)
    assert max(waits) - min(waits) > 0.05 * full  # jitter: retries of a burst spread out


@pytest.mark.parametrize(
    ("asked", "expected"),
    [(5.0, 5.0), (0.0, 0.0), (30.0, 30.0), (3600.0, 30.0), (math.inf, 30.0)],
)
def test_a_servers_delay_replaces_the_backoff_up_to_the_cap(asked: float, expected: float) -> None:
    policy = RetryPolicy(attempts=3, backoff_base=1.0, backoff_max=8.0, max_retry_after=30.0)
    assert wait_after(policy, 1, AskedToWait(asked)) == expected


def test_no_delay_from_the_server_means_backoff() -> None:
    policy = RetryPolicy(attempts=3, backoff_base=1.0, backoff_max=8.0)
    assert 0.75 <= wait_after(policy, 1, AskedToWait(None)) <= 1.0


def test_no_wait_is_longer_than_the_longest_wait() -> None:
    rng = random.Random(7)
    for _ in range(500):
        policy = RetryPolicy(
            attempts=3,
            backoff_base=rng.uniform(0.01, 5),
            backoff_max=rng.uniform(0.01, 20),
            max_retry_after=rng.uniform(0, 60),
        )
        failure = rng.choice([ConnectionError(), AskedToWait(rng.uniform(0, 1e6))])
        assert wait_after(policy, rng.randint(1, 50), failure) <= policy.longest_wait


def test_max_total_seconds_is_every_attempt_plus_every_longest_wait() -> None:
    policy = RetryPolicy(attempts=3, backoff_base=1.0, backoff_max=8.0, max_retry_after=30.0)
    assert policy.longest_wait == 30.0
    assert policy.max_total_seconds(20.0) == 3 * 20.0 + 2 * 30.0
    assert RetryPolicy(attempts=1).max_total_seconds(20.0) == 20.0  # no retry, no wait
    short_cap = RetryPolicy(attempts=2, backoff_max=8.0, max_retry_after=1.0)
    assert short_cap.max_total_seconds(5.0) == 2 * 5.0 + 8.0  # a full backoff is longer


def test_a_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        RetryPolicy(attempts=0)


# ---- attempts --------------------------------------------------------------------------------


def controller(policy: RetryPolicy) -> AsyncRetrying:
    return policy.retrying(
        provider="test",
        retryable=lambda e: isinstance(e, ConnectionError),
        server_delay=asked_delay,
        describe=repr,
    )


FAST = RetryPolicy(attempts=3, backoff_base=0.001, backoff_max=0.001)


async def test_gives_up_after_the_last_attempt_with_its_failure() -> None:
    failures = [ConnectionError(f"try {i}") for i in range(1, 4)]
    calls = iter(failures)

    async def attempt() -> str:
        raise next(calls)

    with pytest.raises(RetriesExhausted) as info:
        await controller(FAST)(attempt)
    assert info.value.attempts == 3
    assert info.value.failure is failures[-1]


async def test_a_failure_not_worth_retrying_is_raised_as_is_at_once() -> None:
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        raise ValueError("bad request")

    with pytest.raises(ValueError, match="bad request"):
        await controller(FAST)(attempt)
    assert calls == 1


async def test_the_first_success_is_returned() -> None:
    outcomes: list[Exception | str] = [ConnectionError(), ConnectionError(), "answer"]

    async def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert await controller(FAST)(attempt) == "answer"
    assert outcomes == []


@pytest.mark.parametrize(
    ("reason", "attempts", "timed_out", "expected"),
    [
        ("HTTP 429", 3, False, "HTTP 429 after 3 attempts"),
        ("HTTP 500", 1, False, "HTTP 500 after 1 attempt"),
        ("timed out after 20 s", 3, True, "timed out after 20 s (3 attempts)"),
        ("timed out after 0.3 s", 1, True, "timed out after 0.3 s (1 attempt)"),
    ],
)
def test_gave_up_message(reason: str, attempts: int, timed_out: bool, expected: str) -> None:
    assert gave_up_message(reason, attempts, timed_out=timed_out) == expected
