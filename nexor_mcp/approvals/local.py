"""The approval page for a stdio server: the routes on a loopback port of its own, opened on demand.

It runs in the server's own event loop (no thread: `on_decided` can set an `anyio.Event` directly)
and writes nothing to stdout, which carries the MCP protocol: uvicorn's logging is left to the
process's handlers (stderr), at warnings only, and it installs no signal handlers (the stdio
server keeps its own). Only `127.0.0.1:PORT` and `localhost:PORT` are answered as Host, so a web
page that rebinds its own name to 127.0.0.1 cannot read the page (and its token) through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from nexor_mcp.approvals import page
from nexor_mcp.approvals.registry import ApprovalStore
from nexor_mcp.approvals.routes import OnDecided, approval_routes, html_response
from nexor_mcp.listening import listening_socket

HOST = "127.0.0.1"
START_SECONDS = 10.0
CLOSE_SECONDS = 5.0


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: SIGINT and SIGTERM stay the stdio server's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # the name in older uvicorn releases
        return None


async def _not_here(request: Request, exc: Exception) -> Response:
    """Anything but an approval's page: a 404 (or 405) with the page's headers, never a decision."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if status == 405:
        return html_response(page.problem_page("Not here", "This page only shows an approval and takes its "
                                               "decision. Nothing was decided."), 405, {"Allow": "GET, HEAD, POST"})
    return html_response(page.not_found_page(), 404)


class LocalApprovalServer:
    """`approval_routes` served at `http://127.0.0.1:PORT` (a free port) from `start()` to `close()`."""

    def __init__(self, approvals: ApprovalStore, key: bytes, *, on_decided: OnDecided | None = None,
                 prefix: str = "/approve") -> None:
        self.approvals = approvals
        self.key = key
        self.on_decided = on_decided
        self.prefix = prefix
        self.port: int | None = None
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`; only once started."""
        if self.port is None:
            raise RuntimeError("the approval page's server is not started")
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def url_for(self, approval_id: str) -> str:
        """The page of `approval_id`: what the person opens."""
        return f"{self.base_url}{self.prefix}/{urllib.parse.quote(approval_id, safe='')}"

    async def start(self) -> str:
        """Listen (once; later calls return the same URL) and return the base URL."""
        async with self._lock:
            if self.running:
                return self.base_url
            sock = listening_socket(HOST, 0, ipv6=False)
            port = sock.getsockname()[1]
            routes = approval_routes(self.approvals, self.key, prefix=self.prefix, on_decided=self.on_decided,
                                     allowed_hosts={f"{HOST}:{port}", f"localhost:{port}"})
            app = Starlette(routes=routes, exception_handlers={404: _not_here, 405: _not_here})
            config = uvicorn.Config(app, lifespan="off", log_config=None, log_level="warning", access_log=False,
                                    server_header=False, timeout_keep_alive=5, timeout_graceful_shutdown=2)
            server = _QuietServer(config)
            task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]),
                                                          name="nexor-mcp approval page")
            deadline = asyncio.get_running_loop().time() + START_SECONDS
            while not server.started:
                if task.done() or asyncio.get_running_loop().time() > deadline:
                    server.should_exit = True
                    sock.close()
                    error = task.exception() if task.done() and not task.cancelled() else None
                    raise RuntimeError("the approval page's server did not start") from error
                await asyncio.sleep(0.005)
            self.port, self._server, self._task = port, server, task
            return self.base_url

    async def close(self) -> None:
        """Stop listening and end open connections (idempotent)."""
        async with self._lock:
            server, task = self._server, self._task
            self._server = self._task = None
            if server is None or task is None:
                return
            server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(task), CLOSE_SECONDS)
            except TimeoutError:
                server.force_exit = True
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


__all__ = ["LocalApprovalServer"]
