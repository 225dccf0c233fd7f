"""Unit tests for `NexorClient` (over `httpx2.MockTransport`), settings loading and log redaction.

No sockets: every exchange goes through an in-process handler that records the request it got.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from nexor_mcp import __version__, endpoints
from nexor_mcp.client import MAX_RESPONSE_BYTES, USER_AGENT, NexorClient, parse_retry_after
from nexor_mcp.config import (
    DEFAULT_BASE_URL,
    DEFAULT_LOG_LEVEL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BUDGET_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    ConfigError,
    Secret,
    Settings,
    load_settings,
)
from nexor_mcp.errors import (
    ApiConnectionError,
    ApiStatusError,
    ApiTimeout,
    AuthenticationFailed,
    BadRequest,
    Conflict,
    InvalidResponse,
    LeadNotFound,
    MissingApiKey,
    NexorError,
    PermissionDenied,
    RateLimited,
    ServerError,
    UnexpectedStatus,
)
from nexor_mcp.logs import MASK, RedactingFilter, redact

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


KEY = "nxr_live_unit_9c4e1f27b3a8"
BASE = "https://api.example.test/api/public"
LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
LEAD_PATH = f"/api/public/leads/{LEAD}"
Json = dict[str, Any]
Handler = Callable[[httpx2.Request], httpx2.Response]

A_LEAD: Json = {
    "id": LEAD,
    "first_name": "Ana",
    "last_name": None,
    "email": "ana@example.com",
    "metadata": {"budget": 5000},
    "tags": [],
    "campaign": {"id": "0b7e2d4c-5f61-4a8e-9c3b-2a1d0e9f8b7c", "name": "Q1"},
    "created_at": "2025-01-01T00:00:00Z",
}


class Recorder:
    """A MockTransport handler that answers with a fixed response and keeps every request."""

    def __init__(
        self,
        status: int = 200,
        body: Any = None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.content = content if content is not None else json.dumps(
            {"success": True, "lead": A_LEAD} if body is None else body
        ).encode()
        self.headers = headers or {}
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        self.requests.append(request)
        return httpx2.Response(self.status, content=self.content, headers=self.headers)

    @property
    def only(self) -> httpx2.Request:
        assert len(self.requests) == 1
        return self.requests[0]


def raising(exc_type: type[httpx2.TransportError], message: str = "boom") -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise exc_type(message, request=request)

    return handler


def make_client(
    handler: Any,
    *,
    api_key: str | None = KEY,
    base_url: str = BASE,
    timeout: float = 5.0,
) -> NexorClient:
    # Retries off: each unit test is about exactly one exchange.
    settings = Settings(
        api_key=Secret(api_key) if api_key is not None else None,
        base_url=base_url,
        timeout_seconds=timeout,
        max_retries=0,
    )
    return NexorClient(settings, transport=httpx2.MockTransport(handler))


async def get(handler: Any, **kwargs: Any) -> Json:
    client = make_client(handler, **kwargs)
    try:
        return await client.call(endpoints.get_lead(LEAD))
    finally:
        await client.aclose()


async def patch(handler: Any, changes: Json | None = None, **kwargs: Any) -> Json:
    client = make_client(handler, **kwargs)
    try:
        return await client.call(endpoints.update_lead(LEAD, {"first_name": "Ana"} if changes is None else changes))
    finally:
        await client.aclose()


async def call(method: str, handler: Any, **kwargs: Any) -> Json:
    return await (get(handler, **kwargs) if method == "GET" else patch(handler, **kwargs))


async def failure(method: str, handler: Any, **kwargs: Any) -> NexorError:
    with pytest.raises(NexorError) as info:
        await call(method, handler, **kwargs)
    exc = info.value
    assert KEY not in str(exc)
    assert KEY not in repr(exc)
    assert all(KEY not in str(arg) for arg in exc.args)
    return exc


# --------------------------------------------------------------------------------------------------
# The request on the wire
# --------------------------------------------------------------------------------------------------

async def test_get_request_is_exact() -> None:
    recorder = Recorder()
    await get(recorder)
    request = recorder.only
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/leads/{LEAD}"
    assert request.url.path == LEAD_PATH
    assert request.url.host == "api.example.test"
    assert request.url.query == b""
    assert request.content == b""
    assert request.headers["X-API-Key"] == KEY
    assert request.headers["User-Agent"] == f"nexor-mcp/{__version__}" == USER_AGENT
    assert request.headers["Accept"] == "application/json"
    assert "Content-Type" not in request.headers
    assert "Authorization" not in request.headers


PATCH_BODIES: list[Json] = [
    {"first_name": "Ana"},
    {"last_name": None},
    {"title": "[1, 2]", "company": "ñandú 😀", "phone": "+56987654321"},
    {"metadata": {"budget": 5000, "decision_maker": True, "score": 0.5, "cleared": None}},
    {"source": "web", "email": "ana@example.com", "campaign_id": None, "first_name": "Zoë"},
]


@pytest.mark.parametrize("changes", PATCH_BODIES, ids=lambda c: ",".join(c))
async def test_patch_request_is_exact(changes: Json) -> None:
    recorder = Recorder()
    await patch(recorder, changes)
    request = recorder.only
    assert request.method == "PATCH"
    assert request.url.path == LEAD_PATH
    assert str(request.url) == f"{BASE}/leads/{LEAD}"
    assert request.content == json.dumps(changes, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert json.loads(request.content) == changes
    assert list(json.loads(request.content)) == list(changes)  # key order kept
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-API-Key"] == KEY
    assert request.headers["User-Agent"] == f"nexor-mcp/{__version__}"
    assert request.headers["Content-Length"] == str(len(request.content))


async def test_patch_body_keeps_null_and_is_compact() -> None:
    recorder = Recorder()
    await patch(recorder, {"last_name": None, "metadata": {"a": "b"}})
    assert recorder.only.content == b'{"last_name":null,"metadata":{"a":"b"}}'


@pytest.mark.parametrize("base", [BASE, BASE + "/"])
async def test_base_url_from_settings_builds_the_right_path(base: str) -> None:
    settings = load_settings(flags={"base_url": base, "api_key": KEY}, environ={})
    recorder = Recorder()
    client = NexorClient(settings, transport=httpx2.MockTransport(recorder))
    try:
        await client.call(endpoints.get_lead(LEAD))
    finally:
        await client.aclose()
    assert recorder.only.url.path == LEAD_PATH


async def test_one_client_serves_several_calls_and_closes_twice() -> None:
    recorder = Recorder()
    client = make_client(recorder)
    await client.call(endpoints.get_lead(LEAD))
    await client.call(endpoints.update_lead(LEAD, {"first_name": "Ana"}))
    await client.call(endpoints.get_lead(LEAD))
    assert [r.method for r in recorder.requests] == ["GET", "PATCH", "GET"]
    await client.aclose()
    await client.aclose()


# --------------------------------------------------------------------------------------------------
# Response shapes
# --------------------------------------------------------------------------------------------------

async def test_wrapped_get_response() -> None:
    variables = {"budget": {"value": 5000, "value_text": "5000", "confidence": 0.95, "updated_at": "x"}}
    result = await get(Recorder(body={"success": True, "lead": A_LEAD, "variables": variables}))
    assert result == {"lead": A_LEAD, "variables": variables}
    assert "success" not in result


async def test_wrapped_response_without_variables() -> None:
    result = await get(Recorder(body={"success": True, "lead": A_LEAD}))
    assert result == {"lead": A_LEAD}


async def test_flat_get_response_is_wrapped() -> None:
    flat = {**A_LEAD, "activeWorkflowRun": None, "currentStatus": {"key": "new", "color": "#3b82f6"}}
    result = await get(Recorder(body=flat))
    assert result == {"lead": flat}
    assert list(result) == ["lead"]


async def test_flat_response_drops_success_only() -> None:
    result = await get(Recorder(body={"success": True, **A_LEAD}))
    assert result == {"lead": A_LEAD}
    assert "success" not in result["lead"]


async def test_unknown_fields_are_kept() -> None:
    lead = {**A_LEAD, "brand_new_field": {"nested": [1, 2]}, "score": 7}
    result = await get(Recorder(body={"success": True, "lead": lead, "variables": {}, "meta": {"v": 2}}))
    assert result["lead"]["brand_new_field"] == {"nested": [1, 2]}
    assert result["lead"]["score"] == 7
    assert result["meta"] == {"v": 2}
    assert result["variables"] == {}


async def test_patch_response() -> None:
    updated = {**A_LEAD, "first_name": "Ana María", "campaign_id": None}
    result = await patch(Recorder(body={"success": True, "lead": updated}))
    assert result == {"lead": updated}


async def test_success_may_be_absent_when_lead_present() -> None:
    assert await get(Recorder(body={"lead": A_LEAD})) == {"lead": A_LEAD}


@pytest.mark.parametrize("status", [200, 201, 299])
async def test_any_2xx_is_success(status: int) -> None:
    assert await get(Recorder(status)) == {"lead": A_LEAD}


# --------------------------------------------------------------------------------------------------
# Status codes
# --------------------------------------------------------------------------------------------------

STATUS_CASES: list[tuple[int, Any, type[ApiStatusError], list[str]]] = [
    (
        400,
        {"error": "Validation error", "message": "email is invalid", "errors": {"email": ["must be an email"]}},
        BadRequest,
        ["HTTP 400", "Validation error: email is invalid", "email: must be an email", "Nothing was changed"],
    ),
    (
        400,
        {"error": "Validation error", "errors": [{"field": "phone", "message": "too long"}, "plain text"]},
        BadRequest,
        ["HTTP 400", "phone: too long", "-: plain text"],
    ),
    (
        422,
        {"message": "Unprocessable", "details": [{"loc": ["body", "email"], "msg": "bad"}]},
        BadRequest,
        ["HTTP 422", "Unprocessable", "body.email: bad"],
    ),
    (
        401,
        {"error": "Invalid API key", "message": "The provided API key is not valid"},
        AuthenticationFailed,
        ["HTTP 401", "Invalid API key", "NEXOR_API_KEY", "nxr_live_"],
    ),
    (403, {"error": "Forbidden"}, PermissionDenied, ["HTTP 403", "Forbidden", "retrying will not help"]),
    (404, {"error": "Not found", "message": "Lead not found"}, LeadNotFound, ["HTTP 404", LEAD, "Lead not found"]),
    (409, {"error": "Conflict"}, Conflict, ["HTTP 409", "conflict", "Nothing was changed"]),
    (429, {}, RateLimited, ["HTTP 429", "Wait a few seconds"]),
    (500, {"error": "Internal"}, ServerError, ["HTTP 500", "Internal"]),
    (502, None, ServerError, ["HTTP 502"]),
    (503, {}, ServerError, ["HTTP 503"]),
    (504, {}, ServerError, ["HTTP 504"]),
    (418, {"error": "teapot"}, UnexpectedStatus, ["unexpected HTTP 418", "teapot"]),
    (301, {}, UnexpectedStatus, ["HTTP 301"]),
]


@pytest.mark.parametrize("method", ["GET", "PATCH"])
@pytest.mark.parametrize(
    ("status", "body", "exc_type", "facts"),
    STATUS_CASES,
    ids=[f"{s}-{t.__name__}" for s, _, t, _ in STATUS_CASES],
)
async def test_status_maps_to_exception(
    method: str, status: int, body: Any, exc_type: type[ApiStatusError], facts: list[str]
) -> None:
    content = b"<html>Bad gateway</html>" if body is None else json.dumps(body).encode()
    recorder = Recorder(status, content=content)
    exc = await failure(method, recorder)
    assert recorder.only.method == method
    assert type(exc) is exc_type
    assert isinstance(exc, ApiStatusError)
    assert exc.status == status
    text = str(exc)
    for fact in facts:
        assert fact in text
    assert "<html>" not in text
    assert "\n" not in text
    assert exc.retryable is (exc_type in (RateLimited, ServerError))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_error_wording_depends_on_method(status: int) -> None:
    on_patch = str(await failure("PATCH", Recorder(status, body={})))
    on_get = str(await failure("GET", Recorder(status, body={})))
    assert "may or may not have been applied" in on_patch
    assert "get_lead" in on_patch
    assert "may or may not" not in on_get
    assert "Try again shortly" in on_get


@pytest.mark.parametrize(
    ("header", "seconds", "shown"),
    [
        ("7", 7.0, "Retry after 7 seconds."),
        ("1", 1.0, "Retry after 1 second."),
        ("0", 0.0, "Nexor allows retrying at once (Retry-After: 0)."),
        ("0.2", 0.2, "Retry after 1 second."),
        ("2.6", 2.6, "Retry after 3 seconds."),
        ("120", 120.0, "Retry after 120 seconds."),
    ],
)
async def test_429_with_retry_after_seconds(header: str, seconds: float, shown: str) -> None:
    exc = await failure("PATCH", Recorder(429, body={}, headers={"Retry-After": header}))
    assert isinstance(exc, RateLimited)
    assert exc.retry_after == pytest.approx(seconds)
    assert shown in str(exc)
    assert "1 seconds" not in str(exc)


async def test_429_with_retry_after_http_date() -> None:
    when = datetime.fromtimestamp(int(time.time()) + 121, tz=UTC)
    exc = await failure("GET", Recorder(429, body={}, headers={"Retry-After": format_datetime(when, usegmt=True)}))
    assert isinstance(exc, RateLimited)
    assert exc.retry_after is not None
    assert 115 <= exc.retry_after <= 121
    match = re.search(r"Retry after (\d+) seconds\.", str(exc))
    assert match is not None
    assert 115 <= int(match.group(1)) <= 121


async def test_429_with_invalid_retry_after() -> None:
    exc = await failure("GET", Recorder(429, body={}, headers={"Retry-After": "soon"}))
    assert isinstance(exc, RateLimited)
    assert exc.retry_after is None
    assert "Wait a few seconds before retrying" in str(exc)


async def test_5xx_keeps_retry_after() -> None:
    exc = await failure("GET", Recorder(503, body={}, headers={"Retry-After": "4"}))
    assert isinstance(exc, ServerError)
    assert exc.retry_after == 4.0


async def test_api_error_text_is_clipped() -> None:
    exc = await failure("PATCH", Recorder(400, body={"error": "Validation error", "message": "y" * 10_000}))
    assert "y" * 301 not in str(exc)
    assert "…" in str(exc)
    assert len(str(exc)) < 700


async def test_error_body_that_is_not_an_object_is_ignored() -> None:
    exc = await failure("GET", Recorder(404, body=["Lead", "not", "found"]))
    assert isinstance(exc, LeadNotFound)
    assert "Nexor said" not in str(exc)


async def test_attempts_suffix() -> None:
    exc = await failure("GET", Recorder(503, body={}))
    exc.attempts = 3
    assert str(exc).endswith("(3 attempts were made.)")


# --------------------------------------------------------------------------------------------------
# Invalid 2xx bodies
# --------------------------------------------------------------------------------------------------

INVALID_2XX: list[tuple[bytes, list[str]]] = [
    (b"<html>hello</html>", ["not JSON", "<html>hello</html>"]),
    (b"", ["is empty"]),
    (b"\xff\xfe garbage", ["not JSON"]),
    (b"[1, 2]", ["JSON list, not an object"]),
    (b'"lead"', ["JSON str, not an object"]),
    (b"null", ["JSON NoneType, not an object"]),
    (b'{"success": true}', ["no lead"]),
    (b"{}", ["no lead"]),
    (b'{"success": true, "lead": null}', ["lead is null"]),
    (b'{"success": true, "lead": []}', ["lead is list"]),
    (b'{"success": true, "lead": "abc"}', ["lead is str"]),
    (b"[" * 70 + b"]" * 70, ["nested deeper than 64 levels"]),
    (b"[" * 100_000 + b"]" * 100_000, ["nested deeper than 64 levels"]),
]
INVALID_IDS = [c[:30].decode(errors="replace") for c, _ in INVALID_2XX]


@pytest.mark.parametrize(("content", "facts"), INVALID_2XX, ids=INVALID_IDS)
async def test_an_unreadable_2xx_on_a_read_is_an_error(content: bytes, facts: list[str]) -> None:
    exc = await failure("GET", Recorder(200, content=content))
    assert isinstance(exc, InvalidResponse)
    assert str(exc).startswith("Nexor answered HTTP 200 but its answer ")
    assert ", so it could not be read" in str(exc)
    for fact in facts:
        assert fact in str(exc)
    assert exc.retryable is False


@pytest.mark.parametrize(("content", "facts"), INVALID_2XX, ids=INVALID_IDS)
@pytest.mark.parametrize("status", [200, 201, 204])
async def test_an_unreadable_2xx_on_a_write_is_an_accepted_update(
    status: int, content: bytes, facts: list[str]
) -> None:
    # Nexor applied the change: reporting a failure would invite the agent to write it again.
    result = await patch(Recorder(status, content=content))
    if status == 204:  # HTTP/1.1: a 204 has no body, whatever bytes follow its head
        facts = ["is empty"]
    assert result["lead"] is None
    assert result["accepted"] is True
    message = result["message"]
    assert message.startswith(f"Nexor accepted the update (HTTP {status}), so it was applied")
    assert "Do not send the same update again" in message
    assert "call get_lead" in message
    for fact in facts:
        assert fact in message


async def test_a_write_answered_over_the_size_cap_is_an_accepted_update() -> None:
    result = await patch(Recorder(200, content=b" " * (MAX_RESPONSE_BYTES + 1)))
    assert result["accepted"] is True
    assert "larger than 4 MB" in result["message"]


async def test_strings_from_nexor_are_valid_unicode_and_numbers_are_finite() -> None:
    # Half an emoji (a lone surrogate escape) cannot be encoded as UTF-8; NaN is not JSON.
    body = (
        '{"success": true, "lead": {"id": "LEAD", "first_name": "Ana \\ud83d", "\\udc00key": ["\\ud83d\\ude00"],'
        ' "score": NaN, "low": -Infinity, "big": 1e400, "huge": HUGE, "metadata": {"n": 1.5}}}'
    ).replace("LEAD", LEAD).replace("HUGE", "9" * 5000)
    result = await get(Recorder(200, content=body.encode()))
    lead = result["lead"]
    assert lead["first_name"] == "Ana \ufffd"
    assert lead["\ufffdkey"] == ["\U0001f600"]  # a proper pair is kept
    assert lead["score"] is None and lead["low"] is None and lead["big"] is None
    assert lead["huge"] == "9" * 5000
    assert lead["metadata"] == {"n": 1.5}
    json.dumps(result, allow_nan=False).encode("utf-8")  # sendable as is


async def test_a_key_straddling_the_clip_of_nexors_error_text_is_masked() -> None:
    for pad in range(280, 300):
        body = {"error": "x" * pad + " " + KEY + " tail"}
        exc = await failure("GET", Recorder(400, body=body))
        assert KEY[:9 + 1] not in str(exc), pad
    for pad in range(100, 121):
        exc = await failure("GET", Recorder(200, content=("y" * pad + KEY).encode()))
        assert KEY[:9 + 1] not in str(exc), pad


@pytest.mark.parametrize("method", ["GET", "PATCH"])
@pytest.mark.parametrize(
    "content",
    [b'{"success": false, "error": "Lead locked"}', json.dumps({"success": False, "lead": A_LEAD}).encode()],
)
async def test_success_false_is_an_error_for_reads_and_writes(method: str, content: bytes) -> None:
    exc = await failure(method, Recorder(200, content=content))
    assert type(exc) is InvalidResponse
    assert "success: false" in str(exc)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/problem+json", ""]
)
async def test_json_content_types_are_accepted(content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    assert await get(Recorder(200, headers=headers)) == {"lead": A_LEAD}


@pytest.mark.parametrize("content_type", ["text/html", "text/plain; charset=utf-8"])
async def test_non_json_content_type_on_2xx_is_invalid_response(content_type: str) -> None:
    exc = await failure("GET", Recorder(200, headers={"Content-Type": content_type}))
    assert isinstance(exc, InvalidResponse)
    assert content_type in str(exc)
    assert "not JSON" in str(exc)


async def test_non_json_body_is_described_briefly() -> None:
    exc = await failure("GET", Recorder(200, content=b"z" * 50_000))
    assert "z" * 121 not in str(exc)
    assert len(str(exc)) < 400


async def test_body_over_the_cap_is_refused() -> None:
    exc = await failure("GET", Recorder(200, content=b" " * (MAX_RESPONSE_BYTES + 1)))
    assert isinstance(exc, InvalidResponse)
    assert "larger than 4 MB" in str(exc)


async def test_an_error_status_with_an_oversized_body_keeps_its_status() -> None:
    # The body is not read past the cap, but the status still decides the error (and retries).
    exc = await failure("GET", Recorder(500, content=b"x" * (MAX_RESPONSE_BYTES * 2)))
    assert type(exc) is ServerError
    assert "HTTP 500" in str(exc)


async def test_body_exactly_at_the_cap_is_read() -> None:
    skeleton = json.dumps({"id": LEAD, "pad": ""}).encode()
    padding = "p" * (MAX_RESPONSE_BYTES - len(skeleton))
    content = json.dumps({"id": LEAD, "pad": padding}).encode()
    assert len(content) == MAX_RESPONSE_BYTES
    result = await get(Recorder(200, content=content))
    assert result["lead"]["id"] == LEAD
    assert len(result["lead"]["pad"]) == len(padding)


# --------------------------------------------------------------------------------------------------
# Transport failures, timeouts, missing key
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "PATCH"])
@pytest.mark.parametrize(
    ("exc_type", "reason"),
    [
        (httpx2.ConnectError, "connection refused or host unreachable"),
        (httpx2.RemoteProtocolError, "closed mid-response"),
        (httpx2.ReadError, "connection was reset"),
        (httpx2.WriteError, "reset while sending"),
        (httpx2.ProxyError, "ProxyError"),
    ],
)
async def test_transport_errors_become_connection_errors(
    method: str, exc_type: type[httpx2.TransportError], reason: str
) -> None:
    exc = await failure(method, raising(exc_type, f"low-level detail {KEY}"))
    assert type(exc) is ApiConnectionError
    assert exc.retryable is True
    assert f"Could not reach Nexor at {BASE}" in str(exc)
    assert reason in str(exc)
    if method == "GET" or exc_type in (httpx2.ConnectError, httpx2.ProxyError):
        # Nothing can have been applied (a proxy that refuses the tunnel never forwards the request):
        # point at the configuration.
        assert "NEXOR_BASE_URL" in str(exc)
    else:
        # The PATCH may have reached Nexor before the connection broke.
        assert "may or may not have been applied" in str(exc)
    assert "low-level detail" not in str(exc)
    assert exc.__cause__ is None
    assert exc.__suppress_context__ is True


@pytest.mark.parametrize(
    "exc_type", [httpx2.ReadTimeout, httpx2.ConnectTimeout, httpx2.WriteTimeout, httpx2.PoolTimeout]
)
async def test_httpx_timeouts_become_api_timeout(exc_type: type[httpx2.TransportError]) -> None:
    exc = await failure("GET", raising(exc_type), timeout=2.5)
    assert type(exc) is ApiTimeout
    assert exc.retryable is True
    assert f"Nexor at {BASE} did not answer within 2.5 s" in str(exc)
    assert "Try again shortly" in str(exc)


async def test_timeout_on_patch_warns_it_may_have_applied() -> None:
    exc = await failure("PATCH", raising(httpx2.ReadTimeout))
    assert type(exc) is ApiTimeout
    assert "may or may not have been applied" in str(exc)


async def test_total_deadline_applies_to_a_slow_server() -> None:
    async def slow(request: httpx2.Request) -> httpx2.Response:
        await anyio.sleep(10)
        return httpx2.Response(200, json=A_LEAD)

    started = time.perf_counter()
    exc = await failure("GET", slow, timeout=0.05)
    assert type(exc) is ApiTimeout
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("method", ["GET", "PATCH"])
async def test_missing_api_key_sends_nothing(method: str) -> None:
    recorder = Recorder()
    with pytest.raises(MissingApiKey) as info:
        await call(method, recorder, api_key=None)
    assert recorder.requests == []
    assert "NEXOR_API_KEY" in str(info.value)
    assert "nothing was sent" in str(info.value)
    assert info.value.retryable is False


# --------------------------------------------------------------------------------------------------
# The key never shows
# --------------------------------------------------------------------------------------------------

def test_repr_of_client_and_settings_hide_the_key() -> None:
    client = make_client(Recorder())
    assert KEY not in repr(client)
    assert BASE in repr(client)
    settings = Settings(api_key=Secret(KEY))
    assert KEY not in repr(settings)
    assert KEY not in str(settings)


def test_secret_masks() -> None:
    secret = Secret(KEY)
    assert repr(secret) == "Secret('********')"
    assert str(secret) == "Secret('********')"
    assert f"{secret}" == "Secret('********')"
    assert KEY not in repr([secret])
    assert secret.reveal() == KEY
    assert secret == Secret(KEY)
    assert secret != Secret(KEY + "x")
    assert secret != KEY


async def test_key_not_in_any_error_text() -> None:
    cases: list[tuple[str, Any]] = [
        ("GET", Recorder(401, body={"error": "Invalid API key"})),
        ("PATCH", Recorder(400, body={"error": "Validation error"})),
        ("GET", Recorder(200, content=b"nope")),
        ("GET", raising(httpx2.ConnectError, KEY)),
        ("PATCH", raising(httpx2.ReadTimeout, KEY)),
    ]
    for method, handler in cases:
        await failure(method, handler)  # asserts the key is absent


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({"error": "Invalid API key", "message": f"Key {KEY} is not valid"}).encode(),
        f"bad key {KEY}".encode(),
    ],
    ids=["error-field", "non-json-body"],
)
async def test_key_echoed_by_the_api_is_not_shown(content: bytes) -> None:
    status = 401 if content.startswith(b"{") else 200
    await failure("GET", Recorder(status, content=content))


# --------------------------------------------------------------------------------------------------
# parse_retry_after
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("5", 5.0),
        (" 5 ", 5.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("Infinity", None),
        ("1e400", None),
        ("soon", None),
        ("5 seconds", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
        ("Wed, 21 Oct 2015 07:28:00 -0000", None),  # no usable zone
        ("Wed, 21 Oct 2015 25:61:00 GMT", None),
        ("Mon, 32 Foo 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_future_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=300)
    parsed = parse_retry_after(format_datetime(when, usegmt=True))
    assert parsed is not None
    assert 295 <= parsed <= 300


# --------------------------------------------------------------------------------------------------
# load_settings
# --------------------------------------------------------------------------------------------------

def write_config(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "nexor.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.api_key is None
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.timeout_seconds == DEFAULT_TIMEOUT_SECONDS
    assert settings.max_retries == DEFAULT_MAX_RETRIES
    assert settings.retry_budget_seconds == DEFAULT_RETRY_BUDGET_SECONDS
    assert settings.log_level == DEFAULT_LOG_LEVEL
    assert settings.warnings == ()


def test_precedence_flags_over_environ_over_file_over_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, {
        "api_key": "nxr_live_from_file",
        "base_url": "https://file.example.test/api",
        "timeout_seconds": 11,
        "max_retries": 1,
        "log_level": "warning",
    })
    environ = {
        "NEXOR_API_KEY": "nxr_live_from_env",
        "NEXOR_BASE_URL": "https://env.example.test/api",
        "NEXOR_TIMEOUT_SECONDS": "12",
    }
    flags = {"api_key": "nxr_live_from_flag", "max_retries": None, "log_level": None}
    settings = load_settings(flags=flags, environ=environ, config_path=path)
    assert settings.api_key == Secret("nxr_live_from_flag")  # flag
    assert settings.base_url == "https://env.example.test/api"  # env beats file
    assert settings.timeout_seconds == 12.0  # env beats file
    assert settings.max_retries == 1  # None flag ignored; file beats default
    assert settings.log_level == "WARNING"  # file, normalised
    assert settings.retry_budget_seconds == DEFAULT_RETRY_BUDGET_SECONDS  # default


def test_each_layer_alone(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"timeout_seconds": 3})
    assert load_settings(environ={}, config_path=path).timeout_seconds == 3.0
    assert load_settings(environ={"NEXOR_TIMEOUT_SECONDS": "4"}, config_path=path).timeout_seconds == 4.0
    assert load_settings(
        flags={"timeout_seconds": 5}, environ={"NEXOR_TIMEOUT_SECONDS": "4"}, config_path=path
    ).timeout_seconds == 5.0


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"max_retries": 7})
    assert load_settings(environ={"NEXOR_MCP_CONFIG": path}).max_retries == 7


def test_explicit_config_path_beats_environment_variable(tmp_path: Path) -> None:
    chosen = write_config(tmp_path, {"max_retries": 3})
    assert load_settings(environ={"NEXOR_MCP_CONFIG": str(tmp_path / "absent.json")},
                         config_path=chosen).max_retries == 3


def test_blank_environment_values_are_ignored(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"api_key": "nxr_live_file", "log_level": "DEBUG"})
    settings = load_settings(environ={"NEXOR_API_KEY": "   ", "NEXOR_LOG_LEVEL": ""}, config_path=path)
    assert settings.api_key == Secret("nxr_live_file")
    assert settings.log_level == "DEBUG"


def test_null_values_in_config_file_mean_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"api_key": None, "timeout_seconds": None})
    settings = load_settings(environ={}, config_path=path)
    assert settings.api_key is None
    assert settings.timeout_seconds == DEFAULT_TIMEOUT_SECONDS


def test_values_are_normalised() -> None:
    settings = load_settings(
        environ={
            "NEXOR_API_KEY": f"  {KEY}\n",
            "NEXOR_BASE_URL": " https://x.example.test/api/public/// ",
            "NEXOR_TIMEOUT_SECONDS": "2.5",
            "NEXOR_MAX_RETRIES": "0",
            "NEXOR_LOG_LEVEL": " debug ",
        }
    )
    assert settings.api_key is not None
    assert settings.api_key.reveal() == KEY
    assert settings.base_url == "https://x.example.test/api/public"
    assert settings.timeout_seconds == 2.5
    assert settings.max_retries == 0
    assert settings.log_level == "DEBUG"
    assert settings.warnings == ()


@pytest.mark.parametrize("key", ["sk_test_123", "NXR_LIVE_abc", "live_abc", "nxr_test_abc"])
def test_key_without_prefix_warns(key: str) -> None:
    settings = load_settings(environ={"NEXOR_API_KEY": key})
    assert settings.api_key == Secret(key)
    assert len(settings.warnings) == 1
    assert "nxr_live_" in settings.warnings[0]
    assert key not in settings.warnings[0]


def test_whitespace_key_means_no_key() -> None:
    settings = load_settings(flags={"api_key": "   "}, environ={})
    assert settings.api_key is None
    assert settings.warnings == ()


BAD_SETTINGS: list[tuple[str, Any, str]] = [
    ("timeout_seconds", "0", "timeout_seconds"),
    ("timeout_seconds", "-1", "timeout_seconds"),
    ("timeout_seconds", "abc", "timeout_seconds"),
    ("timeout_seconds", "nan", "timeout_seconds"),
    ("timeout_seconds", "inf", "timeout_seconds"),
    ("timeout_seconds", True, "timeout_seconds"),
    ("timeout_seconds", [], "timeout_seconds"),
    ("retry_budget_seconds", "0", "retry_budget_seconds"),
    ("max_retries", "11", "max_retries"),
    ("max_retries", "-1", "max_retries"),
    ("max_retries", "2.5", "max_retries"),
    ("max_retries", "two", "max_retries"),
    ("max_retries", True, "max_retries"),
    ("base_url", "ftp://api.example.test", "base_url"),
    ("base_url", "api.example.test", "base_url"),
    ("base_url", "https://", "base_url"),
    ("base_url", "https://user:pw@api.example.test", "base_url"),
    ("base_url", 42, "base_url"),
    ("log_level", "LOUD", "log_level"),
    ("log_level", "TRACE", "log_level"),
    ("api_key", 12345, "api_key"),
]


@pytest.mark.parametrize(("name", "value", "named"), BAD_SETTINGS, ids=[f"{n}={v!r}" for n, v, _ in BAD_SETTINGS])
def test_bad_flag_values_raise_config_error(name: str, value: Any, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(flags={name: value}, environ={})
    message = str(info.value)
    assert named in message
    assert "\n" not in message
    assert 0 < len(message) < 300


def test_bad_base_url_never_echoes_credentials() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(flags={"base_url": "https://user:hunter2@api.example.test"}, environ={})
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("var", "value"),
    [("NEXOR_TIMEOUT_SECONDS", "zero"), ("NEXOR_MAX_RETRIES", "99"), ("NEXOR_LOG_LEVEL", "chatty"),
     ("NEXOR_BASE_URL", "not a url"), ("NEXOR_RETRY_BUDGET_SECONDS", "-3")],
)
def test_bad_environment_values_raise_config_error(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={var: value})
    assert "\n" not in str(info.value)
    assert value in str(info.value)


@pytest.mark.parametrize(
    ("content", "fact"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"api_key": "nxr_live_x", "colour": "blue"}', "unknown key(s) colour"),
        ('{"max_retries": "lots"}', "max_retries"),
    ],
)
def test_bad_config_file_raises_config_error(tmp_path: Path, content: str, fact: str) -> None:
    path = write_config(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, config_path=path)
    assert fact in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file_raises_config_error(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.json")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, config_path=path)
    assert path in str(info.value)
    assert "cannot read config file" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["http://[", "https://[::1/api"])
def test_malformed_ipv6_base_url_raises_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(flags={"base_url": url}, environ={})


def test_non_utf8_config_file_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"api_key": "nxr_live_\xe9"}')
    with pytest.raises(ConfigError):
        load_settings(environ={}, config_path=str(path))


def test_base_url_with_bad_port_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        load_settings(flags={"base_url": "https://api.example.test:abc/api"}, environ={})


# --------------------------------------------------------------------------------------------------
# Log redaction
# --------------------------------------------------------------------------------------------------

def make_record(msg: str, args: Any = None, exc_info: Any = None) -> logging.LogRecord:
    return logging.LogRecord("nexor_mcp.test", logging.INFO, __file__, 1, msg, args, exc_info)


def test_filter_masks_key_in_message_args() -> None:
    record = make_record("sending %s with key %s", ("GET", KEY))
    assert RedactingFilter((KEY,)).filter(record) is True
    assert KEY not in record.getMessage()
    assert record.getMessage() == f"sending GET with key {MASK}"


def test_filter_masks_key_in_mapping_args_and_message() -> None:
    record = make_record(f"literal {KEY} and %(k)s", ({"k": KEY},))
    RedactingFilter((KEY,)).filter(record)
    assert record.getMessage() == f"literal {MASK} and {MASK}"


def test_filter_masks_key_in_exception_text() -> None:
    try:
        raise ValueError(f"upstream said {KEY}")
    except ValueError:
        record = make_record("failed", exc_info=sys.exc_info())
    RedactingFilter((KEY,)).filter(record)
    assert record.exc_text is not None
    assert KEY not in record.exc_text
    assert MASK in record.exc_text
    assert KEY not in logging.Formatter().format(record)


def test_filter_masks_precomputed_exception_text() -> None:
    record = make_record("failed")
    record.exc_text = f"Traceback ...\nValueError: {KEY}"
    RedactingFilter((KEY,)).filter(record)
    assert record.exc_text == f"Traceback ...\nValueError: {MASK}"


def test_filter_on_a_handler_masks_everything_written() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter((KEY,)))
    logger = logging.getLogger("nexor_mcp.test_client_unit.redaction")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        logger.debug("headers: %r", {"X-API-Key": KEY})
        try:
            raise RuntimeError(KEY)
        except RuntimeError:
            logger.exception("call failed for %s", KEY)
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert KEY not in output
    assert output.count(MASK) >= 3
    assert "RuntimeError" in output


def test_filter_without_secrets_leaves_record_alone() -> None:
    record = make_record("value %s", ("x",))
    assert RedactingFilter(("",)).filter(record) is True
    assert record.args == ("x",)
    assert record.getMessage() == "value x"


def test_redact() -> None:
    assert redact(f"a {KEY} b {KEY}", (KEY,)) == f"a {MASK} b {MASK}"
    assert redact("nothing here", (KEY, "")) == "nothing here"


# --------------------------------------------------------------------------------------------------
# Non-idempotent writes: sent once, and an unknown outcome says not to repeat blindly
# --------------------------------------------------------------------------------------------------

NOT_IDEMPOTENT_CALLS: list[tuple[str, Callable[[NexorClient], Any]]] = [
    ("lead creation", lambda c: c.call(endpoints.create_lead({"first_name": "Ana"}))),
    ("message", lambda c: c.call(endpoints.send_message({"lead_id": LEAD, "workflow_id": LEAD, "channel": "call"}))),
    ("workflow assignment", lambda c: c.call(endpoints.assign_workflow(LEAD, LEAD, None))),
    ("meeting",
     lambda c: c.call(endpoints.record_meeting({"lead_id": LEAD, "title": "x", "starts_at": "2026-01-01T10:00:00Z"}))),
]


@pytest.mark.parametrize(("action", "call_it"), NOT_IDEMPOTENT_CALLS, ids=[a for a, _ in NOT_IDEMPOTENT_CALLS])
@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_a_write_that_is_not_idempotent_is_sent_once(
    action: str, call_it: Callable[[NexorClient], Any], status: int
) -> None:
    recorder = Recorder(status, body={"error": "boom"})
    settings = Settings(api_key=Secret(KEY), base_url=BASE, max_retries=3, retry_budget_seconds=60)
    client = NexorClient(settings, transport=httpx2.MockTransport(recorder))
    with pytest.raises(NexorError) as info:
        await call_it(client)
    await client.aclose()
    assert len(recorder.requests) == 1
    if status != 429:
        assert f"The {action} may or may not have happened. Do not repeat it blindly" in str(info.value)


async def test_a_meeting_with_external_ids_is_retried_because_nexor_deduplicates_it() -> None:
    recorder = Recorder(503, body={})
    settings = Settings(api_key=Secret(KEY), base_url=BASE, max_retries=1, retry_budget_seconds=60)
    client = NexorClient(settings, transport=httpx2.MockTransport(recorder))
    meeting = {"lead_id": LEAD, "title": "x", "starts_at": "2026-01-01T10:00:00Z",
               "external_calendar_provider": "google", "external_event_id": "evt-1"}
    with pytest.raises(NexorError) as info:
        await client.call(endpoints.record_meeting(meeting))
    await client.aclose()
    assert len(recorder.requests) == 2
    assert "retrying the same meeting is safe" in str(info.value)


async def test_query_strings_carry_the_filters() -> None:
    recorder = Recorder(200, body={"success": True, "history": [], "lead": {"id": LEAD}})
    client = make_client(recorder)
    result = await client.call(endpoints.get_lead_history(LEAD, ["whatsapp", "email"], 20, 40))
    await client.aclose()
    assert str(recorder.only.url) == f"{BASE}/leads/{LEAD}/history?limit=20&offset=40&channel=whatsapp%2Cemail"
    assert result == {"lead": {"id": LEAD}, "history": [], "next_offset": None}


@pytest.mark.parametrize(("count", "limit", "offset", "expected"), [(5, 5, 0, 5), (5, 5, 10, 15), (4, 5, 0, None)])
async def test_next_offset_is_null_only_on_a_short_page(
    count: int, limit: int, offset: int, expected: int | None
) -> None:
    recorder = Recorder(200, body={"success": True, "history": [{"n": n} for n in range(count)]})
    client = make_client(recorder)
    result = await client.call(endpoints.get_lead_history(LEAD, None, limit, offset))
    await client.aclose()
    assert result["next_offset"] == expected
    assert result["lead"] is None
