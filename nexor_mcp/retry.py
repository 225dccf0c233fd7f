"""When to retry a failed Nexor call, how long to wait, and the one deadline of a tool call: the
whole policy in one place.

Only requests that are idempotent on Nexor's side are retried (reads, a PATCH of the same body,
stopping automation that is already stopped...; never a create or a message), only for failures
that may pass (connection errors, 429, 500/502/503/504), and never past a total
budget: hosts time tool calls out, so past the budget the error goes back at once, saying when to
retry.

The budget is the tool call's, not each request's (`CallDeadline`): a confirmed message reads
the lead, reads the workflow names and then posts, and all three share it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from nexor_mcp.errors import ApiConnectionError, Effect, NexorError, RateLimited, ServerError

if TYPE_CHECKING:
    from nexor_mcp.config import Settings

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BASE_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 8.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int

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


class CallDeadline:
    """The one deadline of a tool call's Nexor requests, however many it makes.

    Every request, first attempt or retry, starts within `budget_seconds` (retry_budget_seconds)
    of the call's start, and each attempt has at most `timeout_seconds`: so all of a call's
    requests are over within `seconds` (the two added), which is what a stdio shutdown waits for,
    and a request once sent is never cut short by the deadline (a write on its way finishes, or
    times out on its own and says its outcome is unknown). The deadline gates starts rather than
    shortening the last request to fit: a write cut short has an unknown outcome, one not sent has
    none.

    The clock measures Nexor's time, not a person's: it restarts when a live confirmation has been
    answered (`waiting_for_person`), so a person may take minutes and the write still has the whole
    budget. Once the session's input has ended (`InputEnd`) no answer can arrive anymore, so a call
    waiting for a person is stopped at once (`unanswerable`): nothing of it was sent, and the wait
    does not hold the shutdown.
    """

    def __init__(
        self,
        budget_seconds: float,
        timeout_seconds: float,
        *,
        input_end: InputEnd | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget_seconds = budget_seconds
        self.seconds = budget_seconds + timeout_seconds
        self._input_end = input_end
        self._clock = clock
        self._started = clock()
        self._scope = anyio.CancelScope()
        self.unanswerable = False
        """Set when the call was stopped because input ended while it waited for a person."""

    @classmethod
    def for_settings(cls, settings: Settings, input_end: InputEnd | None = None) -> CallDeadline:
        return cls(settings.retry_budget_seconds, settings.timeout_seconds, input_end=input_end)

    @staticmethod
    def drain_seconds(settings: Settings) -> float:
        """How long a shutdown waits for calls in flight (stdio and hosted alike): a call's whole
        deadline, plus a second to write its answer."""
        return settings.retry_budget_seconds + settings.timeout_seconds + 1.0

    def elapsed(self) -> float:
        return self._clock() - self._started

    def check_start(self, effect: Effect) -> None:
        """Raise `DeadlinePassed` (nothing is sent) if a request may no longer start."""
        if self.elapsed() > self.budget_seconds:
            raise DeadlinePassed(self, effect)

    def allows_wait(self, delay: float) -> bool:
        """Whether a retry after waiting `delay` seconds would still start within the budget."""
        return self.elapsed() + delay <= self.budget_seconds

    @contextmanager
    def running(self) -> Iterator[None]:
        """Around the whole call: the deadline is the current one for the requests made inside, and
        the call can be stopped from outside (see `unanswerable`): the block then just ends."""
        token = _current.set(self)
        try:
            with self._scope:
                yield
        finally:
            _current.reset(token)

    @contextmanager
    def waiting_for_person(self) -> Iterator[None]:
        """See the module function `waiting_for_person`."""
        input_end = self._input_end
        if input_end is not None:
            input_end.watch(self)
        try:
            yield
        finally:
            if input_end is not None:
                input_end.forget(self)
        self._started = self._clock()

    def stop_unanswerable(self) -> None:
        """Input ended while this call waits for a person: stop it (its `running` block ends)."""
        self.unanswerable = True
        self._scope.cancel()


class InputEnd:
    """Whether the session's input has ended (stdio: EOF, SIGTERM or a broken stdout), after which
    no answer from the client can arrive: calls waiting for a person's answer are then stopped."""

    def __init__(self) -> None:
        self.ended = False
        self._waiting: set[CallDeadline] = set()

    def end(self) -> None:
        self.ended = True
        for deadline in list(self._waiting):
            deadline.stop_unanswerable()

    def watch(self, deadline: CallDeadline) -> None:
        """`deadline`'s call waits for a person from now on (stopped at once if input has ended)."""
        if self.ended:
            deadline.stop_unanswerable()
        self._waiting.add(deadline)

    def forget(self, deadline: CallDeadline) -> None:
        self._waiting.discard(deadline)


_current: ContextVar[CallDeadline | None] = ContextVar("nexor_mcp_call_deadline", default=None)


def current_deadline() -> CallDeadline | None:
    """The deadline of the tool call running in this task, if any (see `CallDeadline.running`)."""
    return _current.get()


@contextmanager
def waiting_for_person() -> Iterator[None]:
    """Around a wait for a person's answer (a live confirmation): its time is not the call's Nexor
    time, so the call's clock restarts when it ends; if input ends meanwhile (or already has), the
    call is stopped, since nobody can answer anymore. Outside a tool call it does nothing."""
    deadline = _current.get()
    if deadline is None:
        yield
        return
    with deadline.waiting_for_person():
        yield


class DeadlinePassed(NexorError):
    """A request not sent because its tool call's earlier requests used up the call's budget."""

    def __init__(self, deadline: CallDeadline, effect: Effect) -> None:
        outcome = (
            "This write was not sent, so it changed nothing; try again shortly."
            if effect.writes else "Nothing was changed; try again shortly."
        )
        super().__init__(
            f"Not sent: Nexor answered this call's earlier requests slowly ({deadline.elapsed():.1f} s so far), "
            f"and every request of one call must start within its {deadline.budget_seconds:g} s retry budget "
            f"(retry_budget_seconds), so that the call is answered within {deadline.seconds:g} s. {outcome}"
        )

    def may_have_taken_effect(self) -> bool:
        return False
