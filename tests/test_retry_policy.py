"""Unit tests of the retry policy: what is retried, for how long, and that creates never are."""

from __future__ import annotations

import pytest

from nexor_mcp.errors import (
    ApiConnectionError,
    ApiTimeout,
    BadRequest,
    InvalidResponse,
    LeadNotFound,
    NexorError,
    RateLimited,
    ServerError,
    UnexpectedStatus,
)
from nexor_mcp.retry import BASE_DELAY_SECONDS, MAX_DELAY_SECONDS, RetryPolicy

POLICY = RetryPolicy(max_retries=2)

RETRYABLE: list[NexorError] = [
    ApiConnectionError("x"), RateLimited(429, "x"), ServerError(500, "x"), ServerError(502, "x"),
    ServerError(503, "x"), ServerError(504, "x"),
]
NOT_RETRYABLE: list[NexorError] = [
    ApiTimeout("x"), BadRequest(400, "x"), LeadNotFound(404, "x"), ServerError(501, "x"),
    UnexpectedStatus(418, "x"), InvalidResponse("x"),
]


@pytest.mark.parametrize("error", RETRYABLE, ids=repr)
def test_idempotent_requests_retry_transient_failures_up_to_max(error: NexorError) -> None:
    assert POLICY.should_retry(True, error, attempt=1)
    assert POLICY.should_retry(True, error, attempt=2)
    assert not POLICY.should_retry(True, error, attempt=3)


@pytest.mark.parametrize("error", RETRYABLE, ids=repr)
def test_a_request_that_is_not_idempotent_is_never_retried(error: NexorError) -> None:
    assert not POLICY.should_retry(False, error, attempt=1)


@pytest.mark.parametrize("error", NOT_RETRYABLE, ids=repr)
def test_other_failures_are_not_retried(error: NexorError) -> None:
    assert not POLICY.should_retry(True, error, attempt=1)


def test_zero_retries_means_one_attempt() -> None:
    assert not RetryPolicy(max_retries=0).should_retry(True, ServerError(503, "x"), 1)


def test_retry_after_wins_over_backoff() -> None:
    assert POLICY.delay(1, retry_after=7.0) == 7.0
    assert POLICY.delay(3, retry_after=0.0) == 0.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 10])
def test_backoff_doubles_with_jitter_and_is_capped(attempt: int) -> None:
    ceiling = min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2 ** (attempt - 1))
    delays = [POLICY.delay(attempt, None) for _ in range(200)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1  # jittered, so parallel callers do not retry in lockstep
