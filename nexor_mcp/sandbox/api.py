"""An in-memory implementation of Nexor's documented public API, as a plain ASGI app.

It follows `nexor-api.md`: `X-API-Key` auth with the documented 401 bodies, and every endpoint the
client calls (leads, history, meetings, automation, workflows, statuses, tags, templates, messages)
with its documented semantics. It is strict where the real API is undocumented (unknown body fields
and query parameters are a 400), so a client that sends more than it should is caught. The account's
data is seeded (`seed.py`) and each resource's handlers live in their own module. It records the
latest requests (bounded, see `RequestLog`) and can be told to misbehave (`inject`), which is what the
tests and the benchmark use.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from nexor_mcp.json_types import Json
from nexor_mcp.sandbox import automation, leads, tags, timeline
from nexor_mcp.sandbox.common import Call, Invalid, Reply
from nexor_mcp.sandbox.recording import (
    MAX_RECORDED_BODY,
    MAX_RECORDED_BYTES,
    MAX_RECORDED_REQUESTS,
    Fault,
    RecordedRequest,
    RequestLog,
)
from nexor_mcp.sandbox.seed import CAMPAIGNS, DEMO_LEAD_IDS, State, blank_lead, seed_state

SANDBOX_API_KEY = "nxr_live_sandbox_demo_key"
PREFIX = "/api/public"
CONTROL_PREFIX = "/_sandbox/"  # not part of Nexor's API: stats, reset and latency for tests and benchmarks

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[State, Call], Reply]

# (path pattern, method) → handler; "{id}" matches one path segment (the lead's id).
ROUTES: dict[tuple[str, str], Handler] = {
    ("leads", "POST"): leads.create_leads,
    ("leads/tags", "PUT"): tags.set_lead_tags,
    ("leads/{id}", "GET"): leads.get_lead,
    ("leads/{id}", "PATCH"): leads.update_lead,
    ("leads/{id}", "PUT"): leads.update_lead,
    ("leads/{id}/history", "GET"): timeline.get_history,
    ("leads/{id}/meetings", "GET"): timeline.get_meetings,
    ("leads/{id}/is_paused", "GET"): automation.is_paused,
    ("leads/{id}/automation/stop", "POST"): automation.stop_automation,
    ("leads/{id}/automation/resume", "POST"): automation.resume_automation,
    ("leads/{id}/assign-workflow", "POST"): automation.assign_workflow,
    ("leads/{id}/status", "POST"): automation.set_status,
    ("leads/{id}/tags", "GET"): tags.lead_tags,
    ("leads/{id}/tags", "POST"): tags.add_lead_tags,
    ("workflows", "GET"): automation.list_workflows,
    ("tags", "GET"): tags.list_tags,
    ("templates", "GET"): timeline.list_templates,
    ("messages", "POST"): timeline.send_message,
    ("meetings", "POST"): timeline.record_meeting,
}

__all__ = [
    "CAMPAIGNS", "CONTROL_PREFIX", "DEMO_LEAD_IDS", "MAX_RECORDED_BODY", "MAX_RECORDED_BYTES",
    "MAX_RECORDED_REQUESTS", "PREFIX", "ROUTES", "SANDBOX_API_KEY", "Fault", "RecordedRequest", "RequestLog",
    "SandboxApi",
]


def _route(path: str) -> tuple[str, str] | None:
    """The route pattern a path matches and its `{id}` segment ("" if none); None: no such route."""
    known = {pattern for pattern, _ in ROUTES}
    if path in known:
        return path, ""
    segments = path.split("/")
    if len(segments) >= 2 and segments[0] == "leads":
        pattern = "/".join(["leads", "{id}", *segments[2:]])
        if pattern in known:
            return pattern, segments[1]
    return None


class SandboxApi:
    """The ASGI app. Thread-safe to inspect and script from the thread that started it."""

    def __init__(self, api_key: str | None = SANDBOX_API_KEY, latency: float = 0.0) -> None:
        self.api_key = api_key
        self.latency = latency
        self.requests = RequestLog()
        self._faults: deque[Fault] = deque()
        self._lock = threading.RLock()
        self.state = seed_state()
        self._accounts: dict[str, State] = {}

    @property
    def leads(self) -> dict[str, Json]:
        """The leads by id (a lead's `tags` holds tag ids; see `state` for runs, tags, history...)."""
        return self.state.leads

    def reset(self) -> None:
        """Back to the seeded account, no recorded requests, no pending faults, no latency."""
        with self._lock:
            self.state = seed_state()
            self._accounts.clear()
            self.requests.clear()
            self._faults.clear()
            self.latency = 0.0

    def inject(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    def _next_fault(self, path: str) -> Fault | None:
        """The first pending fault for this request (one for any path, or for exactly this one)."""
        relative = path.removeprefix(PREFIX + "/")
        for index, fault in enumerate(self._faults):
            if fault.path is None or fault.path == relative:
                del self._faults[index]
                return fault
        return None

    def use_legacy_shape(self, *lead_ids: str) -> None:
        """GET /leads/{id} answers for these leads in the legacy page's shape: a flat lead, with no
        `tags`, `variables` or `updated_at`, and `activeWorkflowRun` in camelCase (nexor-api.md §2.2)."""
        with self._lock:
            self.state.legacy_leads.update(lead_ids)

    def connections(self) -> int:
        """How many distinct client connections (client ports) requests came on since the reset."""
        return self.requests.connections()

    def add_account(self, api_key: str) -> State:
        """Another account, reached with its own key, with its own copy of the seeded data: what a
        hosted server serving two tenants must keep apart."""
        state = seed_state()
        with self._lock:
            self._accounts[api_key] = state
        return state

    def add_lead(self, **fields: Any) -> str:
        """Add a lead directly (for tests); returns its id."""
        lead = blank_lead(**fields)
        with self._lock:
            self.state.leads[lead["id"]] = lead
        return str(lead["id"])

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
        query = scope.get("query_string", b"").decode("latin-1")
        self.requests.append(RecordedRequest.capture(method, path, headers, body, client[1], query))
        with self._lock:
            fault = self._next_fault(path)
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None:
            await _play(fault, send)
            return
        status, payload = self._handle(method, path, query, headers, body)
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

    def _handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Reply:
        key = headers.get("x-api-key")
        state = self.state
        if self.api_key is not None:
            if not key:
                return 401, {
                    "error": "Missing API key",
                    "message": "Please provide your API key in the X-API-Key header",
                }
            if key != self.api_key:
                other = self._accounts.get(key)
                if other is None:
                    return 401, {"error": "Invalid API key", "message": "The provided API key is not valid"}
                state = other
        if not path.startswith(PREFIX + "/"):
            return 404, {"error": "Not found", "message": "Route not found"}
        matched = _route(path[len(PREFIX) + 1 :])
        if matched is None:
            return 404, {"error": "Not found", "message": "Route not found"}
        pattern, lead_id = matched
        handler = ROUTES.get((pattern, method))
        if handler is None:
            return 405, {"error": "Method not allowed", "message": f"{method} is not supported here"}
        with self._lock:
            try:
                return handler(state, Call(method, lead_id, query, body))
            except Invalid as invalid:
                return invalid.reply


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
