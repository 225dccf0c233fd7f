"""An in-memory implementation of Nexor's documented lead endpoints, as a plain ASGI app.

It follows `nexor-api.md`: `X-API-Key` auth with the documented 401 bodies, GET/PATCH/PUT
`/leads/{id}` and POST `/leads`, shallow metadata merge, replacement of other fields, the
nullability rules and `updated_at`. It is strict where the real API is undocumented (unknown
fields are a 400), so a client that sends more than it should is caught. It records the latest
requests (bounded, see `RequestLog`) and can be told to misbehave (`inject`), which is what the
tests and the benchmark use.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

SANDBOX_API_KEY = "nxr_live_sandbox_demo_key"
PREFIX = "/api/public"
CONTROL_PREFIX = "/_sandbox/"  # not part of Nexor's API: stats, reset and latency for tests and benchmarks

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_NULLABLE_TEXT = ("last_name", "phone", "company", "title")
_REQUIRED_TEXT = ("first_name", "source")
_WRITABLE = {*_NULLABLE_TEXT, *_REQUIRED_TEXT, "email", "campaign_id", "metadata"}

CAMPAIGNS = {
    "0b7e2d4c-5f61-4a8e-9c3b-2a1d0e9f8b7c": "Q4 Outbound",
    "5d1e0c2b-8a7f-4e3d-9b6c-1f2e3d4c5b6a": "Webinar follow-up",
}

DEMO_LEAD_IDS = (
    "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b",
    "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "a1b2c3d4-e5f6-4a5b-8c7d-9e0f1a2b3c4d",
)


def _seed() -> dict[str, dict[str, Any]]:
    created = "2026-06-18T09:30:00.000Z"
    leads: list[dict[str, Any]] = [
        {
            "id": DEMO_LEAD_IDS[0], "first_name": "Ana", "last_name": "Rojas",
            "email": "ana.rojas@example.com", "phone": "+56987654321", "source": "website",
            "company": "Acme SpA", "title": "Head of Sales",
            "campaign_id": "0b7e2d4c-5f61-4a8e-9c3b-2a1d0e9f8b7c",
            "metadata": {"edad": 34, "utm_source": "google"}, "tags": [{"id": "t-1", "name": "VIP"}],
            "workflow": True,
        },
        {
            "id": DEMO_LEAD_IDS[1], "first_name": "John", "last_name": None, "email": None,
            "phone": None, "source": "api", "company": None, "title": None, "campaign_id": None,
            "metadata": {}, "tags": [], "workflow": False,
        },
        {
            "id": DEMO_LEAD_IDS[2], "first_name": "María", "last_name": "González",
            "email": "maria@example.org", "phone": "+34600111222", "source": "meta_ads",
            "company": "Olivos SL", "title": None, "campaign_id": "5d1e0c2b-8a7f-4e3d-9b6c-1f2e3d4c5b6a",
            "metadata": {"language": "ES"}, "tags": [], "workflow": False,
        },
    ]
    return {lead["id"]: {**lead, "created_at": created, "updated_at": created} for lead in leads}


MAX_RECORDED_REQUESTS = 1_000
MAX_RECORDED_BODY = 256 * 1024
MAX_RECORDED_BYTES = 32 * 1024 * 1024


@dataclass
class RecordedRequest:
    """One request as the sandbox received it; `body` is at most `MAX_RECORDED_BODY` bytes of it,
    `size` the true length."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int
    at: float = field(default_factory=time.monotonic)
    size: int = -1

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = len(self.body)

    @classmethod
    def capture(cls, method: str, path: str, headers: dict[str, str], body: bytes, client_port: int) -> RecordedRequest:
        return cls(method, path, headers, body[:MAX_RECORDED_BODY], client_port, size=len(body))

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
    """

    status: int = 500
    body: Any = None
    raw_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


class SandboxApi:
    """The ASGI app. Thread-safe to inspect and script from the thread that started it."""

    def __init__(self, api_key: str | None = SANDBOX_API_KEY, latency: float = 0.0) -> None:
        self.api_key = api_key
        self.latency = latency
        self.requests = RequestLog()
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.leads = _seed()

    def reset(self) -> None:
        """Back to the seeded leads, no recorded requests, no pending faults, no latency."""
        with self._lock:
            self.leads = _seed()
            self.requests.clear()
            self._faults.clear()
            self.latency = 0.0

    def inject(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    def connections(self) -> int:
        """How many distinct client connections (client ports) requests came on since the reset."""
        return self.requests.connections()

    def add_lead(self, **fields: Any) -> str:
        """Add a lead directly (for tests); returns its id."""
        lead_id = str(uuid.uuid4())
        now = _now()
        lead: dict[str, Any] = {
            "id": lead_id, "first_name": "Test", "last_name": None, "email": None, "phone": None,
            "source": "api", "company": None, "title": None, "campaign_id": None, "metadata": {},
            "tags": [], "workflow": False, "created_at": now, "updated_at": now,
        }
        lead.update(fields)
        with self._lock:
            self.leads[lead_id] = lead
        return lead_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client") or ("", 0)
        method = scope["method"]
        path = scope["path"]
        if path.startswith(CONTROL_PREFIX):
            status, payload = self._control(method, path, body)
            await _respond(send, status, json.dumps(payload).encode(), {})
            return
        self.requests.append(RecordedRequest.capture(method, path, headers, body, client[1]))
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None:
            await _play(fault, send)
            return
        status, payload = self._handle(method, path, headers, body)
        await _respond(send, status, json.dumps(payload).encode(), {})

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """Out-of-band controls for a sandbox in another process (the benchmark uses them)."""
        action = path[len(CONTROL_PREFIX):]
        if method == "GET" and action == "stats":
            return 200, {"requests": self.requests.total, "connections": self.connections()}
        if method == "POST" and action == "reset":
            self.reset()
            return 200, {"reset": True}
        if method == "POST" and action == "latency":
            self.latency = float(json.loads(body)["seconds"])
            return 200, {"latency": self.latency}
        return 404, {"error": "Not found", "message": "Unknown sandbox control"}

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        key = headers.get("x-api-key")
        if self.api_key is not None:
            if not key:
                return 401, {
                    "error": "Missing API key",
                    "message": "Please provide your API key in the X-API-Key header",
                }
            if key != self.api_key:
                return 401, {"error": "Invalid API key", "message": "The provided API key is not valid"}
        if not path.startswith(PREFIX + "/"):
            return 404, {"error": "Not found", "message": "Route not found"}
        parts = path[len(PREFIX) + 1 :].split("/")
        if parts == ["leads"] and method == "POST":
            return self._create(body)
        if len(parts) == 2 and parts[0] == "leads":
            if method == "GET":
                return self._get(parts[1])
            if method in ("PATCH", "PUT"):
                return self._update(parts[1], body)
            return 405, {"error": "Method not allowed", "message": f"{method} is not supported here"}
        return 404, {"error": "Not found", "message": "Route not found"}

    def _lookup(self, lead_id: str) -> dict[str, Any] | None:
        return self.leads.get(lead_id) if _UUID.fullmatch(lead_id) else None

    def _get(self, lead_id: str) -> tuple[int, Any]:
        lead = self._lookup(lead_id)
        if lead is None:
            return 404, _not_found()
        return 200, {"success": True, "lead": _full_view(lead), "variables": _variables(lead)}

    def _update(self, lead_id: str, body: bytes) -> tuple[int, Any]:
        lead = self._lookup(lead_id)
        if lead is None:
            return 404, _not_found()
        changes, error = _parse_changes(body)
        if error:
            return 400, {"error": "Validation error", "message": error}
        with self._lock:
            for name, value in changes.items():
                if name == "metadata":
                    lead["metadata"] = {**lead["metadata"], **value}
                else:
                    lead[name] = value
            lead["updated_at"] = _now()
            view = _patch_view(lead)
        return 200, {"success": True, "lead": view}

    def _create(self, body: bytes) -> tuple[int, Any]:
        try:
            data = json.loads(body)
        except ValueError:
            return 400, {"error": "Validation error", "message": "Request body must be JSON"}
        items = data if isinstance(data, list) else [data]
        created = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("first_name"), str):
                return 400, {"error": "Validation error", "message": "first_name is required"}
            core = {k: v for k, v in item.items() if k in _WRITABLE and k != "metadata"}
            extra = {k: v for k, v in item.items() if k not in _WRITABLE and k not in ("workflow_id",)}
            metadata = {**extra, **(item.get("metadata") or {})}
            lead_id = self.add_lead(**core, metadata=metadata)
            created.append(_patch_view(self.leads[lead_id]))
        if isinstance(data, list):
            return 201, {"success": True, "leads": created}
        return 201, {"success": True, "lead": created[0], "workflow_run": None}


def _parse_changes(body: bytes) -> tuple[dict[str, Any], str | None]:
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return {}, "Request body must be valid JSON"
    if not isinstance(data, dict):
        return {}, "Request body must be a JSON object"
    unknown = sorted(set(data) - _WRITABLE)
    if unknown:
        return {}, f"Unknown field(s): {', '.join(unknown)}"
    for name, value in data.items():
        problem = _field_problem(name, value)
        if problem:
            return {}, problem
    return data, None


def _field_problem(name: str, value: Any) -> str | None:
    if name in _REQUIRED_TEXT:
        if not isinstance(value, str) or not value:
            return f"{name} must be a non-empty string"
    elif name in _NULLABLE_TEXT:
        if value is not None and not isinstance(value, str):
            return f"{name} must be a string or null"
    elif name == "email":
        if value is not None and not (isinstance(value, str) and _EMAIL.fullmatch(value)):
            return "email must be a valid email address or null"
    elif name == "campaign_id":
        if value is not None and value not in CAMPAIGNS:
            return "campaign_id not found or does not belong to your account"
    elif name == "metadata":
        if not isinstance(value, dict):
            return "metadata must be an object"
        for key, item in value.items():
            if isinstance(item, dict | list):
                return f"metadata.{key} must be a string, number, boolean or null"
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _not_found() -> dict[str, str]:
    return {"error": "Not found", "message": "Lead not found or does not belong to your account"}


_CORE = ("id", "first_name", "last_name", "email", "phone", "source", "company", "title")


def _patch_view(lead: dict[str, Any]) -> dict[str, Any]:
    view = {name: lead[name] for name in _CORE}
    view.update(
        campaign_id=lead["campaign_id"], metadata=copy.deepcopy(lead["metadata"]),
        created_at=lead["created_at"], updated_at=lead["updated_at"],
    )
    return view


def _full_view(lead: dict[str, Any]) -> dict[str, Any]:
    view = {name: lead[name] for name in _CORE}
    campaign_id = lead["campaign_id"]
    view.update(
        metadata=copy.deepcopy(lead["metadata"]),
        tags=copy.deepcopy(lead["tags"]),
        campaign={"id": campaign_id, "name": CAMPAIGNS.get(campaign_id, "")} if campaign_id else None,
        active_workflow_run=_workflow_run(lead) if lead["workflow"] else None,
        created_at=lead["created_at"],
        updated_at=lead["updated_at"],
    )
    return view


def _workflow_run(lead: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", "workflow_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        "is_active": True, "human_takeover": False, "cadence_state": "active", "run_status": "running",
        "workflow": {"id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "name": "SDR inbound",
                     "goal_type": "appointment"},
        "current_status": {"id": "c0ffee00-0000-4000-8000-000000000001", "key": "contacted",
                           "label": "Contacted", "category": "active"},
    }


def _variables(lead: dict[str, Any]) -> dict[str, Any]:
    if not lead["workflow"]:
        return {}
    return {"budget": {"value": 5000, "value_text": "about 5k USD", "confidence": 0.95,
                       "updated_at": lead["updated_at"]}}


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    header_list = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    header_list = _merge_headers(header_list, headers.items())
    await send({"type": "http.response.start", "status": status, "headers": header_list})
    await send({"type": "http.response.body", "body": body})


def _merge_headers(
    base: list[tuple[bytes, bytes]], extra: Iterable[tuple[str, str]]
) -> list[tuple[bytes, bytes]]:
    merged = {name: value for name, value in base}
    for name, value in extra:
        merged[name.lower().encode()] = value.encode()
    return list(merged.items())


async def _play(fault: Fault, send: Send) -> None:
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.raw_body is not None:
        body = fault.raw_body
    elif fault.body is None:
        body = b""
    else:
        body = json.dumps(fault.body).encode()
    if fault.drop:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body) + 100).encode())]
        await send({"type": "http.response.start", "status": fault.status, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        raise ConnectionResetError("sandbox: connection dropped mid-response (injected fault)")
    await _respond(send, fault.status, body, fault.headers)
