"""When to retry a failed Nexor call and how long to wait: the whole policy in one place.

Only requests that are idempotent on Nexor's side are retried (reads, a PATCH of the same body,
stopping automation that is already stopped...; never a create or a message), only for failures
that may pass (connection errors, 429, 500/502/503/504), and never past a total
budget: hosts time tool calls out, so past the budget the error goes back at once, saying when to
retry.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from nexor_mcp.errors import ApiConnectionError, NexorError, RateLimited, ServerError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BASE_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 8.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int
    budget_seconds: float

    def should_retry(self, idempotent: bool, error: NexorError, attempt: int) -> bool:
        """Whether attempt number `attempt` (1-based) of a request may be followed by another."""
        if not idempotent or attempt > self.max_retries:
            return False
        if isinstance(error, RateLimited | ServerError):
            return error.status in RETRY_STATUSES
        return isinstance(error, ApiConnectionError)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after attempt `attempt`: the server's Retry-After, else backoff with jitter."""
        if retry_after is not None:
            return retry_after
        backoff: float = min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2.0 ** (attempt - 1))
        return backoff * random.uniform(0.5, 1.0)
