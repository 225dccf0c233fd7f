"""The end of input: at stdin EOF or SIGTERM, reading stops but the session stays open until every
request read has been answered, bounded by the calls' deadline.

So a write already sent to Nexor is never abandoned by our shutdown. The server is told that input
ended (`on_input_end`), since a call waiting for the client's answer (a person's confirmation) can
no longer get one. A second SIGTERM stops waiting at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections import Counter
from collections.abc import Callable

import anyio
import anyio.lowlevel

logger = logging.getLogger(__package__)

SETTLE_TURNS = 20
"""Event-loop turns given to the session, at end of input, to route the messages already read (an
elicitation answer reaches the waiting call in 3 to 4 with mcp 2.3; each turn costs microseconds)."""


class Drain:
    """Knows which requests are still unanswered and when to stop reading, so that the end of
    input can wait for them (the same after EOF and SIGTERM: what matters is the calls' deadline,
    not how input ended)."""

    def __init__(self, drain_seconds: float, on_input_end: Callable[[], None] = lambda: None) -> None:
        self.reading = anyio.CancelScope()
        """The scope reading stdin runs in; cancelled when nothing more should be read."""
        self._drain_seconds = drain_seconds
        self._on_input_end = on_input_end
        self._unanswered: Counter[str | int] = Counter()
        self._waiting: anyio.CancelScope | None = None
        self._draining = False
        self._all_answered = anyio.Event()
        self._terminations = 0

    # the requests in flight

    def request_read(self, request_id: str | int) -> None:
        self._unanswered[request_id] += 1

    def answer_sent(self, request_id: str | int) -> None:
        if request_id in self._unanswered:
            self._unanswered[request_id] -= 1
            if self._unanswered[request_id] <= 0:
                del self._unanswered[request_id]
            self._settled()

    def request_cancelled(self, request_id: object) -> None:
        """A cancelled request is never answered (the spec forbids it), so it is not waited for."""
        if isinstance(request_id, str | int) and request_id in self._unanswered:
            del self._unanswered[request_id]
            self._settled()

    def _settled(self) -> None:
        if self._draining and not self._unanswered:
            self._all_answered.set()

    # the end of input

    async def wait_for_answers(self) -> None:
        """Keep the session open until every request read has its answer, within the bound."""
        self._draining = True
        # Let the session take in what was read last (a person's yes just before EOF must count)
        # before the calls still waiting for an answer are told that none can come.
        for _ in range(SETTLE_TURNS):
            await anyio.lowlevel.checkpoint()
        self._on_input_end()
        if not self._unanswered:
            return
        bound = 0 if self._terminations > 1 else self._drain_seconds
        count = sum(self._unanswered.values())
        logger.info("input ended; waiting up to %g s for %d call(s) in flight", bound, count)
        with anyio.CancelScope(deadline=anyio.current_time() + bound) as scope:
            self._waiting = scope
            await self._all_answered.wait()
        if scope.cancel_called and self._unanswered:
            logger.warning(
                "gave up waiting for %d call(s) in flight (ids %s); they are cancelled now",
                sum(self._unanswered.values()), ", ".join(map(repr, self._unanswered)),
            )

    def terminate(self) -> None:
        """SIGTERM: stop reading and drain as at EOF; a second SIGTERM ends the drain at once."""
        self._terminations += 1
        if self._terminations == 1:
            logger.info("SIGTERM received: finishing the calls in flight, then exiting (a second one exits at once)")
        else:
            logger.info("second SIGTERM received: not waiting for the calls in flight")
        self.reading.cancel()
        if self._terminations > 1 and self._waiting is not None:
            self._waiting.cancel()

    def stop(self) -> None:
        """The session ended on its own: nothing more will be read or awaited."""
        self.reading.cancel()
        if self._waiting is not None:
            self._waiting.cancel()


def on_sigterm(handler: Callable[[], None]) -> Callable[[], None]:
    """Call `handler` on SIGTERM (where the loop can take signals); returns the undo."""
    if sys.platform == "win32":
        return lambda: None
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, handler)
    except (RuntimeError, ValueError):  # not the main thread
        return lambda: None

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGTERM)

    return remove
