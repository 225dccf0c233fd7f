"""The sandbox's request log is bounded (count, per-body and total bytes) yet stays list-like, and
its counters (`total`, `connections()`, `/_sandbox/stats`) still count every request."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nexor_mcp.sandbox import DEMO_LEAD_IDS, SANDBOX_API_KEY, RecordedRequest, RequestLog, SandboxApi
from nexor_mcp.sandbox.api import MAX_RECORDED_BODY, MAX_RECORDED_BYTES, MAX_RECORDED_REQUESTS

LEAD = DEMO_LEAD_IDS[1]


async def asgi_call(
    api: SandboxApi, method: str, path: str, body: bytes = b"", port: int = 50000
) -> tuple[int, Any]:
    """One HTTP request straight into the ASGI app (no sockets): its status and JSON body."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "method": method, "path": path, "client": ("127.0.0.1", port),
        "headers": [(b"x-api-key", SANDBOX_API_KEY.encode())],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await api(scope, receive, send)
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def request(n: int, body: bytes = b"", port: int = 1) -> RecordedRequest:
    return RecordedRequest.capture("PATCH", f"/r/{n}", {}, body, port)


def test_the_log_keeps_the_latest_requests_and_counts_all_of_them() -> None:
    log = RequestLog(max_requests=3)
    for n in range(5):
        log.append(request(n, port=n % 2))
    assert len(log) == 3
    assert log.total == 5
    assert [r.path for r in log] == ["/r/2", "/r/3", "/r/4"]
    assert log[0].path == "/r/2" and log[-1].path == "/r/4"
    assert [r.path for r in log[1:]] == ["/r/3", "/r/4"]
    assert log.connections() == 2
    assert log == list(log) and log != []
    log.clear()
    assert log == [] and len(log) == 0 and log.total == 0 and log.connections() == 0


def test_a_large_body_is_kept_only_in_part_and_says_so() -> None:
    body = json.dumps({"metadata": {"blob": "x" * 1_000_000}}).encode()
    recorded = request(0, body)
    assert recorded.size == len(body)
    assert recorded.body == body[:MAX_RECORDED_BODY]
    assert recorded.truncated
    with pytest.raises(ValueError, match=f"only {MAX_RECORDED_BODY} of this request's {len(body)} body bytes"):
        _ = recorded.json
    small = request(1, b'{"title": "CTO"}')
    assert (small.size, small.truncated, small.json) == (16, False, {"title": "CTO"})


def test_the_bodies_kept_are_bounded_in_total() -> None:
    log = RequestLog(max_requests=1_000, max_bytes=10 * MAX_RECORDED_BODY)
    for n in range(25):
        log.append(request(n, b"y" * (2 * MAX_RECORDED_BODY)))
    assert len(log) == 10
    assert log.total == 25
    assert sum(len(r.body) for r in log) == 10 * MAX_RECORDED_BODY


@pytest.mark.anyio
async def test_200_one_megabyte_updates_keep_a_bounded_log_and_true_counts() -> None:
    """The issue's case: before, every body was kept whole (200 MB here)."""
    api = SandboxApi()
    body = json.dumps({"metadata": {"notes": "n" * 1_000_000}}).encode()
    for n in range(200):
        status, _ = await asgi_call(api, "PATCH", f"/api/public/leads/{LEAD}", body, port=40000 + n % 4)
        assert status == 200
    kept = sum(len(r.body) for r in api.requests)
    assert kept <= MAX_RECORDED_BYTES
    assert all(r.size == len(body) and len(r.body) <= MAX_RECORDED_BODY for r in api.requests)
    assert api.requests.total == 200
    assert api.connections() == 4
    assert await asgi_call(api, "GET", "/_sandbox/stats") == (200, {"requests": 200, "connections": 4})


@pytest.mark.anyio
async def test_more_requests_than_the_log_holds() -> None:
    api = SandboxApi()
    for _ in range(MAX_RECORDED_REQUESTS + 5):
        assert (await asgi_call(api, "GET", f"/api/public/leads/{LEAD}"))[0] == 200
    assert len(api.requests) == MAX_RECORDED_REQUESTS
    assert api.requests.total == MAX_RECORDED_REQUESTS + 5
    assert (await asgi_call(api, "GET", "/_sandbox/stats"))[1]["requests"] == MAX_RECORDED_REQUESTS + 5
    assert (await asgi_call(api, "POST", "/_sandbox/reset"))[0] == 200
    assert api.requests == [] and api.requests.total == 0

