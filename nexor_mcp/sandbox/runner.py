"""Serve a `SandboxApi` with uvicorn on loopback, in a background thread."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

import uvicorn

from nexor_mcp.listening import BACKLOG, listening_socket
from nexor_mcp.sandbox.api import PREFIX, SandboxApi


class SandboxServer:
    """Runs the sandbox on `http://host:port/api/public` until `stop()` (or the `with` block ends)."""

    def __init__(self, api: SandboxApi | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = api or SandboxApi()
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{PREFIX}"

    def start(self) -> str:
        sock = listening_socket(self.host, self.port, ipv6=False)
        self.port = sock.getsockname()[1]
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.WARNING)
        config = uvicorn.Config(
            self.api,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_keep_alive=60,
            backlog=BACKLOG,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="nexor-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Nexor sandbox did not start")
            time.sleep(0.005)
        return self.base_url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
