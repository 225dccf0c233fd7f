"""End to end, hosted mode: `nexor-mcp http` served over real HTTP on loopback, driven by the SDK's
Streamable HTTP client (both protocol eras) and by raw HTTP, against the sandbox.

What a hosted deployment relies on: a key per request and no cross-talk between tenants, refusals
before any tool runs (no key, bad token, bad Origin, oversize body), narrowing that never widens,
and no state in a process (a client may switch replicas between any two requests)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import IO, Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from tests.conftest import ANA, JOHN, TEST_KEY, child_log, read_log

pytestmark = pytest.mark.anyio

OTHER_KEY = "nxr_live_other_tenant_7a1c"
ACCESS_TOKEN = "access-token-for-tests-0123456789"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def http_server(
    base_url: str, *args: str, env: dict[str, str] | None = None, before: tuple[str, ...] = ("--log-level", "debug")
) -> Iterator[tuple[str, IO[str]]]:
    """`python -m nexor_mcp [before] http [args]` on a free loopback port, until the block ends (SIGTERM)."""
    with served_process(base_url, *args, env=env, before=before) as (url, stderr, _):
        yield url, stderr


@contextmanager
def served_process(
    base_url: str, *args: str, env: dict[str, str] | None = None, before: tuple[str, ...] = ()
) -> Iterator[tuple[str, IO[str], subprocess.Popen[bytes]]]:
    port = free_port()
    with child_log() as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "nexor_mcp", "--base-url", base_url, *before, "http", "--port", str(port), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            env={"PATH": os.environ.get("PATH", ""), **(env or {})},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                assert process.poll() is None, "the server exited at start"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
            yield url, stderr, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def hosted(sandbox_server: SandboxServer) -> Iterator[tuple[str, IO[str]]]:
    with http_server(sandbox_server.base_url, env={"NEXOR_TOOLS": "read,write"}) as served:
        yield served


@asynccontextmanager
async def mcp_client(url: str, headers: dict[str, str], mode: str = "legacy") -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert block.type == "text"
    return block.text


def rpc(url: str, body: Any, headers: dict[str, str] | None = None, content: bytes | None = None) -> httpx2.Response:
    return httpx2.post(
        f"{url}/mcp", headers={**JSON_HEADERS, "MCP-Protocol-Version": "2025-11-25", **(headers or {})},
        content=content if content is not None else json.dumps(body).encode(), timeout=30,
    )


CALL_GET_ANA = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "get_lead", "arguments": {"lead_id": ANA}}}


# --- the same tools as stdio, in both protocol eras --------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_sdk_client_works_the_toolkit_in_both_eras(
    hosted: tuple[str, IO[str]], api: SandboxApi, mode: str
) -> None:
    url, _ = hosted
    async with mcp_client(url, {"X-API-Key": TEST_KEY}, mode) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert len(names) == 13 and "update_lead" in names and "send_message" not in names
        result = await client.call_tool("update_lead", {"lead_id": ANA, "title": "CTO"})
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None
        assert result.structured_content["lead"]["title"] == "CTO"
    patches = [r for r in api.requests if r.method == "PATCH"]
    assert [(r.path, r.json, r.headers["x-api-key"]) for r in patches] == [
        (f"/api/public/leads/{ANA}", {"title": "CTO"}, TEST_KEY)
    ]


async def test_a_bearer_key_works_like_x_api_key(hosted: tuple[str, IO[str]], api: SandboxApi) -> None:
    url, _ = hosted
    async with mcp_client(url, {"Authorization": f"Bearer {TEST_KEY}"}) as client:
        result = await client.call_tool("get_lead", {"lead_id": JOHN})
        assert not result.is_error, text_of(result)
    assert [r.headers["x-api-key"] for r in api.requests] == [TEST_KEY]


async def test_bad_arguments_send_nothing_over_http_too(hosted: tuple[str, IO[str]], api: SandboxApi) -> None:
    url, _ = hosted
    async with mcp_client(url, {"X-API-Key": TEST_KEY}) as client:
        result = await client.call_tool("update_lead", {"lead_id": ANA, "budget": 5})
        assert result.is_error
        assert "custom fields go inside metadata" in text_of(result)
    assert api.requests == []


# --- tenants ----------------------------------------------------------------------------------------


async def test_two_tenants_in_flight_at_once_see_only_their_own_account(
    hosted: tuple[str, IO[str]], api: SandboxApi
) -> None:
    url, stderr = hosted
    other = api.add_account(OTHER_KEY)
    del other.leads[ANA]  # the second account has no Ana
    other.leads[JOHN]["first_name"] = "Johnny"
    api.latency = 0.05  # keep calls of both tenants in flight together
    seen: dict[str, list[tuple[bool, str]]] = {TEST_KEY: [], OTHER_KEY: []}

    async def work(key: str) -> None:
        async with mcp_client(url, {"X-API-Key": key}) as client:
            for _ in range(5):
                ana = await client.call_tool("get_lead", {"lead_id": ANA})
                john = await client.call_tool("get_lead", {"lead_id": JOHN})
                assert john.structured_content is not None
                seen[key].append((bool(ana.is_error), john.structured_content["lead"]["first_name"]))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(work, TEST_KEY)
            group.start_soon(work, OTHER_KEY)
    assert seen[TEST_KEY] == [(False, "John")] * 5
    assert seen[OTHER_KEY] == [(True, "Johnny")] * 5  # Ana is not in the other account: 404
    assert {r.headers["x-api-key"] for r in api.requests} == {TEST_KEY, OTHER_KEY}
    log = read_log(stderr)
    assert "DEBUG" in log
    assert TEST_KEY not in log and OTHER_KEY not in log  # a caller's key is never logged


def test_a_request_without_a_key_is_refused_before_any_tool_runs(
    hosted: tuple[str, IO[str]], api: SandboxApi
) -> None:
    url, _ = hosted
    for headers in ({}, {"Authorization": "Basic abc"}, {"X-API-Key": "nxr live spaced"}):
        response = rpc(url, CALL_GET_ANA, headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("ApiKey")  # not Bearer: no OAuth here
        body = response.json()
        assert body["jsonrpc"] == "2.0" and body["id"] is None
        assert "X-API-Key" in body["error"]["message"] or "malformed" in body["error"]["message"]
    assert api.requests == []


def test_a_wrong_key_is_nexors_401_for_that_request_only(hosted: tuple[str, IO[str]], api: SandboxApi) -> None:
    url, _ = hosted
    wrong = rpc(url, CALL_GET_ANA, {"X-API-Key": "nxr_live_not_a_real_key_123"}).json()["result"]
    assert wrong["isError"] is True and "HTTP 401" in wrong["content"][0]["text"]
    assert "nxr_live_not_a_real_key_123" not in json.dumps(wrong)
    right = rpc(url, CALL_GET_ANA, {"X-API-Key": TEST_KEY}).json()["result"]
    assert right["isError"] is False


# --- narrowing, limits, origin -------------------------------------------------------------------------


def test_the_tools_header_narrows_and_never_widens(hosted: tuple[str, IO[str]], api: SandboxApi) -> None:
    url, _ = hosted
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    narrowed = rpc(url, listing, {"X-API-Key": TEST_KEY, "X-Nexor-Tools": "read"}).json()["result"]["tools"]
    assert [tool["name"] for tool in narrowed][:2] == ["get_lead", "get_lead_history"] and len(narrowed) == 7
    widened = rpc(url, listing, {"X-API-Key": TEST_KEY, "X-Nexor-Tools": "outreach,get_lead"}).json()
    assert [tool["name"] for tool in widened["result"]["tools"]] == ["get_lead"]
    update = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
              "params": {"name": "update_lead", "arguments": {"lead_id": ANA, "title": "x"}}}
    refused = rpc(url, update, {"X-API-Key": TEST_KEY, "X-Nexor-Tools": "read"}).json()["result"]
    assert refused["isError"] is True
    assert "not enabled for this request (its X-Nexor-Tools header leaves it out)" in refused["content"][0]["text"]
    unknown = rpc(url, listing, {"X-API-Key": TEST_KEY, "X-Nexor-Tools": "reed"})
    assert unknown.status_code == 400 and "unknown tool or group 'reed'" in unknown.json()["error"]["message"]
    assert api.requests == []


def test_an_oversize_body_is_refused_with_413(hosted: tuple[str, IO[str]], api: SandboxApi) -> None:
    url, _ = hosted
    huge = json.dumps({**CALL_GET_ANA, "params": {"name": "get_lead", "arguments": {"x": "y" * 2_000_000}}})
    assert rpc(url, None, {"X-API-Key": TEST_KEY}, content=huge.encode()).status_code == 413
    assert api.requests == []


def test_a_foreign_origin_is_refused(hosted: tuple[str, IO[str]], api: SandboxApi) -> None:
    url, _ = hosted
    response = rpc(url, CALL_GET_ANA, {"X-API-Key": TEST_KEY, "Origin": "https://evil.example"})
    assert response.status_code == 403
    assert rpc(url, CALL_GET_ANA, {"X-API-Key": TEST_KEY, "Host": "evil.example"}).status_code == 421
    assert api.requests == []


# --- no state in a process: a client may switch replicas between requests ---------------------------


async def test_two_replicas_serve_one_client_alternately(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    with http_server(sandbox_server.base_url) as (first, _), http_server(sandbox_server.base_url) as (second, _):
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        assert rpc(first, initialize, {"X-API-Key": TEST_KEY}).status_code == 200
        for n in range(6):
            url = (first, second)[n % 2]
            call = {"jsonrpc": "2.0", "id": 10 + n, "method": "tools/call",
                    "params": {"name": "update_lead", "arguments": {"lead_id": ANA, "title": f"T{n}"}}}
            result = rpc(url, call, {"X-API-Key": TEST_KEY}).json()["result"]
            assert result["isError"] is False
            assert result["structuredContent"]["lead"]["title"] == f"T{n}"
    assert [r.json for r in api.requests] == [{"title": f"T{n}"} for n in range(6)]


# --- single-tenant -------------------------------------------------------------------------------------


def test_single_tenant_needs_an_access_token(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    env = {"NEXOR_API_KEY": TEST_KEY, "NEXOR_MCP_ACCESS_TOKENS": f"old-token-000000000000,{ACCESS_TOKEN}"}
    with http_server(sandbox_server.base_url, env=env) as (url, stderr):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": TEST_KEY}):
            response = rpc(url, CALL_GET_ANA, headers)
            assert response.status_code == 401, headers
            assert "access token" in response.json()["error"]["message"]
        assert api.requests == []
        result = rpc(url, CALL_GET_ANA, {"Authorization": f"Bearer {ACCESS_TOKEN}"}).json()["result"]
        assert result["isError"] is False
        assert [r.headers["x-api-key"] for r in api.requests] == [TEST_KEY]
        log = read_log(stderr)
        assert ACCESS_TOKEN not in log and TEST_KEY not in log


def test_a_configured_key_beyond_loopback_without_a_token_refuses_to_start() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp", "http", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", ""), "NEXOR_API_KEY": TEST_KEY},
    )
    assert completed.returncode == 2
    assert "no access token is configured" in completed.stderr
    assert "NEXOR_MCP_ACCESS_TOKENS" in completed.stderr
    assert TEST_KEY not in completed.stderr


# --- operations ----------------------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_calls_answers_and_retries(hosted: tuple[str, IO[str]], api: SandboxApi) -> None:
    url, _ = hosted
    before = httpx2.get(f"{url}/metrics", timeout=10).text
    api.inject(Fault(503, None))
    assert rpc(url, CALL_GET_ANA, {"X-API-Key": TEST_KEY}).json()["result"]["isError"] is False  # retried once
    bad = {**CALL_GET_ANA, "params": {"name": "get_lead", "arguments": {"lead_id": "x"}}}
    assert rpc(url, bad, {"X-API-Key": TEST_KEY}).json()["result"]["isError"] is True
    response = httpx2.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = response.text

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("nexor_mcp_tool_calls_total", tool="get_lead", outcome="ok") == 1
    assert grew("nexor_mcp_tool_calls_total", tool="get_lead", outcome="rejected") == 1
    assert grew("nexor_mcp_nexor_responses_total", status="503") == 1
    assert grew("nexor_mcp_nexor_responses_total", status="200") == 1
    assert grew("nexor_mcp_nexor_retries_total") == 1
    assert grew("nexor_mcp_tool_call_seconds_count", tool="get_lead") == 2
    assert metric(after, "nexor_mcp_tool_calls_in_flight") == 0
    assert TEST_KEY not in after


def test_json_log_lines(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    with http_server(sandbox_server.base_url, before=("--log-format", "json")) as (url, stderr):
        assert rpc(url, CALL_GET_ANA, {"X-API-Key": TEST_KEY}).json()["result"]["isError"] is False
        time.sleep(0.3)  # let the log thread write; the assertions below do not depend on timing otherwise
        lines = [line for line in read_log(stderr).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert records and all({"time", "level", "logger", "message"} <= set(record) for record in records)
    assert any(record["message"].startswith("get_lead ok in ") for record in records)


def test_sigterm_lets_a_call_in_flight_finish(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    api.latency = 1.5
    with served_process(sandbox_server.base_url) as (url, _, process):
        answers: list[httpx2.Response] = []
        caller = threading.Thread(
            target=lambda: answers.append(rpc(url, CALL_GET_ANA, {"X-API-Key": TEST_KEY})), daemon=True
        )
        caller.start()
        deadline = time.monotonic() + 10
        while not api.requests:  # the call has reached Nexor: it is in flight
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        caller.join(timeout=20)
        assert answers and answers[0].status_code == 200
        assert answers[0].json()["result"]["isError"] is False
        # uvicorn re-raises the signal once it has shut down gracefully: "ended by SIGTERM", as
        # process supervisors expect, only after the call in flight was answered.
        assert process.wait(timeout=20) == -signal.SIGTERM


def test_workers_share_nothing_and_serve_alike(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    with http_server(sandbox_server.base_url, "--workers", "2", env={"NEXOR_TOOLS": "read"}) as (url, _):
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        for _ in range(6):
            tools = rpc(url, listing, {"X-API-Key": TEST_KEY}).json()["result"]["tools"]
            assert len(tools) == 7  # every worker has the command line's settings
        assert rpc(url, CALL_GET_ANA, {"X-API-Key": TEST_KEY}).json()["result"]["isError"] is False
