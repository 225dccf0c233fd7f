"""A raw JSON-RPC driver for MCP stdio servers: newline-delimited JSON over pipes, no SDK client.

Used by the benchmark (client overhead stays out of the figures) and by tests that need the
server's pid or every byte it writes to stdout.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

PROTOCOL_VERSION = "2025-11-25"


class RpcError(Exception):
    pass


class RawServer:
    """One server subprocess. Every stdout line read is kept in `stdout_lines`."""

    def __init__(self, argv: list[str], env: dict[str, str], stderr: IO[Any] | int | None = None) -> None:
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if stderr is None else stderr,
            env=env,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._next_id = 0
        self.stdout_lines: list[str] = []
        self.notifications: list[dict[str, Any]] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    def initialize(self) -> dict[str, Any]:
        result = self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "raw-driver", "version": "0"},
            },
        )
        self.notify("notifications/initialized")
        return result

    def send_line(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send_line(json.dumps(message))

    def send_request(self, method: str, params: dict[str, Any] | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send_line(json.dumps(message))
        return self._next_id

    def read_message(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RpcError(f"server closed stdout (exit code {self.process.poll()})")
        self.stdout_lines.append(line)
        message: dict[str, Any] = json.loads(line)
        return message

    def wait_for(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Read until every id in `ids` has its response; notifications are kept aside."""
        pending = set(ids)
        answers: dict[int, dict[str, Any]] = {}
        while pending:
            message = self.read_message()
            if "id" in message and message["id"] in pending:
                pending.discard(message["id"])
                answers[message["id"]] = message
            elif "method" in message:
                self.notifications.append(message)
        return answers

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = self.send_request(method, params)
        message = self.wait_for([request_id])[request_id]
        if "error" in message:
            raise RpcError(json.dumps(message["error"]))
        result: dict[str, Any] = message["result"]
        return result

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return self.request("tools/call", {"name": name, "arguments": arguments})

    def call_many(self, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Send every call before reading any answer: they are all in flight at once."""
        ids = [self.send_request("tools/call", {"name": name, "arguments": args}) for name, args in calls]
        answers = self.wait_for(ids)
        return [answers[request_id]["result"] for request_id in ids]

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RpcError("no VmRSS for the server process")

    def close(self, timeout: float = 10.0) -> int:
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if self.process.stdout:
            # Keep whatever was written after the last answer too: purity checks read it.
            self.stdout_lines.extend(self.process.stdout.readlines())
            self.process.stdout.close()
        return code

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spawn_timed(argv: list[str], env: dict[str, str]) -> tuple[RawServer, float]:
    """Start a server and initialize it; returns it and the seconds from spawn to the result."""
    started = time.perf_counter()
    server = RawServer(argv, env)
    server.initialize()
    return server, time.perf_counter() - started
