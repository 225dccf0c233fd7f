"""How uvicorn serves hosted mode: HTTP/1.1 with a read timeout, and the options for one process
and for `--workers` alike."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, cast

import h11
from uvicorn.config import Config as UvicornConfig
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from nexor_mcp.config import Settings
from nexor_mcp.hosted.settings import DEFAULT_READ_TIMEOUT_SECONDS, HostedSettings
from nexor_mcp.retry import CallDeadline

logger = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 60


class ReadTimeoutH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the timeout it lacks: uvicorn only times out the idle time
    after a response, so a client that connects and says nothing, or sends half a request line,
    headers or body and then stops, would hold its connection forever (slowloris). Here a request
    must arrive whole within `read_timeout` seconds of its first byte (of the connection, for the
    first request), or the connection is closed. Once the request is in, the timer stops: how long
    the tool call takes is not the client's doing."""

    def __init__(
        self,
        config: UvicornConfig,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        read_timeout: float = DEFAULT_READ_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._read_timeout = read_timeout
        self._read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_request()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_read_timer()
        super().connection_lost(exc)

    def _watch_request(self) -> None:
        """Run the timer while a request is partly received, from its first byte to its last."""
        receiving = self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing()
        if not receiving:
            self._stop_read_timer()
        elif self._read_timer is None:
            self._read_timer = self.loop.call_later(self._read_timeout, self._read_timed_out)

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        logger.debug("closed a connection whose request did not arrive whole within %g s", self._read_timeout)
        self.transport.close()


def uvicorn_options(settings: Settings, hosted: HostedSettings) -> dict[str, Any]:
    """uvicorn's settings for hosted mode, the same for one process and for `--workers`. On
    SIGTERM, calls in flight get their whole deadline (every request of a call starts within the
    retry budget and has one timeout), so a write already on its way is finished and answered."""
    # uvicorn calls the protocol "class" with (config, server_state, app_state): a partial carries
    # the timeout, and pickles (the class by name) into --workers processes.
    protocol = functools.partial(ReadTimeoutH11Protocol, read_timeout=hosted.read_timeout_seconds)
    return {
        "http": cast("type[asyncio.Protocol]", protocol),
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": CallDeadline.drain_seconds(settings),
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        # uvicorn answers 503 once its count of open connections (the new request's own included)
        # or of requests in flight reaches the limit: + 1 makes `max_connections` the number served.
        "limit_concurrency": hosted.max_connections + 1,
    }
