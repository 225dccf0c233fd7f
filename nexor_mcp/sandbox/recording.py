"""What the sandbox keeps of the requests it receives, and the faults it can be told to play."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, overload
from urllib.parse import parse_qsl

MAX_RECORDED_REQUESTS = 1_000
MAX_RECORDED_BODY = 256 * 1024
MAX_RECORDED_BYTES = 32 * 1024 * 1024


@dataclass
class RecordedRequest:
    """One request as the sandbox received it; `body` is at most `MAX_RECORDED_BODY` bytes of it,
    `size` the true length, `query` the raw query string (without the `?`, percent-encoding kept)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int
    at: float = field(default_factory=time.monotonic)
    size: int = -1
    query: str = ""

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = len(self.body)

    @classmethod
    def capture(
        cls, method: str, path: str, headers: dict[str, str], body: bytes, client_port: int, query: str = ""
    ) -> RecordedRequest:
        return cls(method, path, headers, body[:MAX_RECORDED_BODY], client_port, size=len(body), query=query)

    @property
    def params(self) -> dict[str, str]:
        """The query string decoded (one value per name; a repeated name keeps its last value)."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    @property
    def truncated(self) -> bool:
        return self.size > len(self.body)

    @property
    def json(self) -> Any:
        if self.truncated:
            raise ValueError(f"only {len(self.body)} of this request's {self.size} body bytes were kept")
        return json.loads(self.body) if self.body else None


class RequestLog:
    """The latest requests, list-like (len, index, slice, iterate, compare with a list).

    Bounded so a long session cannot grow the sandbox without limit: at most `MAX_RECORDED_REQUESTS`
    requests and `MAX_RECORDED_BYTES` of kept bodies, oldest dropped first. `total` and
    `connections()` count every request since the last reset, dropped or not."""

    def __init__(
        self, max_requests: int = MAX_RECORDED_REQUESTS, max_bytes: int = MAX_RECORDED_BYTES
    ) -> None:
        self._items: deque[RecordedRequest] = deque()
        self._max_requests = max_requests
        self._max_bytes = max_bytes
        self._bytes = 0
        self._ports: set[int] = set()
        self._lock = threading.Lock()
        self.total = 0

    def append(self, request: RecordedRequest) -> None:
        with self._lock:
            self._items.append(request)
            self._bytes += len(request.body)
            self._ports.add(request.client_port)
            self.total += 1
            while len(self._items) > self._max_requests or (self._bytes > self._max_bytes and len(self._items) > 1):
                self._bytes -= len(self._items.popleft().body)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._ports.clear()
            self._bytes = 0
            self.total = 0

    def connections(self) -> int:
        return len(self._ports)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[RecordedRequest]:
        with self._lock:
            return iter(list(self._items))

    @overload
    def __getitem__(self, index: int) -> RecordedRequest: ...

    @overload
    def __getitem__(self, index: slice) -> list[RecordedRequest]: ...

    def __getitem__(self, index: int | slice) -> RecordedRequest | list[RecordedRequest]:
        with self._lock:
            return list(self._items)[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RequestLog):
            return list(self) == list(other)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RequestLog({list(self)!r}, total={self.total})"


@dataclass
class Fault:
    """A scripted answer for the next request: a status and body, a delay, or a broken connection.

    `drop=True` sends the headers and part of the body, then closes the connection mid-response.
    `path`: only for a request to this path (after /api/public/, e.g. "templates"); None: the next
    request, whatever it is.
    """

    status: int = 500
    body: Any = None
    raw_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    path: str | None = None
