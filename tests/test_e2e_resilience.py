"""End to end: retries and their budget, progress, cancellation, 200 parallel calls, garbage on
stdin, stdout purity and secret hygiene under faults at debug level, and a bounded soak."""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Any

import anyio
import pytest

from bench.rpc import RawServer
from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from tests.conftest import ANA, JOHN, TEST_KEY, McpProcess, child_log, read_log, server_env, spawn_server, text_of
from tests.test_e2e_failures import FAULT_MATRIX

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def mcp(sandbox_server: SandboxServer) -> AsyncIterator[McpProcess]:
    async with spawn_server(server_env(sandbox_server.base_url), ("--log-level", "debug")) as process:
        yield process


def gaps(api: SandboxApi) -> list[float]:
    times = [request.at for request in api.requests]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# --- retries --------------------------------------------------------------------------------------


async def test_a_transient_503_is_retried_and_progress_reports_the_wait(mcp: McpProcess, api: SandboxApi) -> None:
    api.inject(Fault(503, None))
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    result = await mcp.session.call_tool(
        "update_lead", {"lead_id": ANA, "title": "CTO"}, progress_callback=on_progress
    )
    assert not result.is_error, text_of(result)
    assert [r.json for r in api.requests] == [{"title": "CTO"}, {"title": "CTO"}]
    assert len(reports) == 1
    done, _, message = reports[0]
    assert done == 1
    assert message is not None
    assert message.startswith("attempt 1 failed (HTTP 503); retrying in ")


async def test_get_lead_is_retried_too(mcp: McpProcess, api: SandboxApi) -> None:
    api.inject(Fault(502, None), times=2)
    result = await mcp.call("get_lead", {"lead_id": ANA})
    assert not result.is_error, text_of(result)
    assert [r.method for r in api.requests] == ["GET", "GET", "GET"]


async def test_retry_after_in_seconds_is_honoured(mcp: McpProcess, api: SandboxApi) -> None:
    api.inject(Fault(429, None, headers={"Retry-After": "1"}))
    result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CTO"})
    assert not result.is_error, text_of(result)
    assert len(api.requests) == 2
    assert gaps(api)[0] >= 0.95


async def test_retry_after_as_an_http_date_is_honoured(mcp: McpProcess, api: SandboxApi) -> None:
    api.inject(Fault(503, None, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)}))
    result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CTO"})
    assert not result.is_error, text_of(result)
    assert len(api.requests) == 2
    assert gaps(api)[0] >= 0.9  # the date has one-second resolution


async def test_a_wait_beyond_the_budget_returns_the_error_at_once(mcp: McpProcess, api: SandboxApi) -> None:
    api.inject(Fault(429, {"error": "Too many requests"}, headers={"Retry-After": "120"}))
    with anyio.fail_after(10):  # had it slept for Retry-After, this would trip
        result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CTO"})
    text = text_of(result)
    assert result.is_error
    assert "Retry after 120 seconds" in text
    assert "would pass the 20 s retry budget" in text
    assert len(api.requests) == 1


async def test_client_errors_are_never_retried(mcp: McpProcess, api: SandboxApi) -> None:
    for status in (400, 401, 403, 404, 409, 422):
        api.reset()
        api.inject(Fault(status, {"error": "x"}), times=3)
        result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CTO"})
        assert result.is_error
        assert len(api.requests) == 1, status


# --- cancellation ---------------------------------------------------------------------------------


async def cancel_after(mcp: McpProcess, seconds: float, arguments: dict[str, Any]) -> None:
    with anyio.move_on_after(seconds) as scope:
        await mcp.call("update_lead", arguments)
    assert scope.cancelled_caught, "the call was expected to still be running"


async def wait_for_log(mcp: McpProcess, needle: str, seconds: float = 5.0) -> None:
    with anyio.fail_after(seconds):
        while needle not in mcp.stderr_text():  # noqa: ASYNC110 - polling a log file, no event to wait on
            await anyio.sleep(0.02)


async def test_cancelling_a_slow_call_abandons_the_request(mcp: McpProcess, api: SandboxApi) -> None:
    api.inject(Fault(200, {"success": True, "lead": {"id": ANA}}, delay=5.0))
    await cancel_after(mcp, 0.3, {"lead_id": ANA, "title": "slow"})
    await wait_for_log(mcp, "update_lead cancelled by the client")
    result = await mcp.call("update_lead", {"lead_id": ANA, "title": "next"})
    assert not result.is_error, text_of(result)
    assert api.requests[-1].json == {"title": "next"}


async def test_cancelling_during_a_retry_wait_stops_the_retry(mcp: McpProcess, api: SandboxApi) -> None:
    api.inject(Fault(503, None, headers={"Retry-After": "1"}))
    await cancel_after(mcp, 0.3, {"lead_id": ANA, "title": "slow"})
    await wait_for_log(mcp, "update_lead cancelled by the client")
    await anyio.sleep(1.2)  # past the moment the retry would have been sent
    assert len(api.requests) == 1
    assert not (await mcp.call("get_lead", {"lead_id": ANA})).is_error


# --- concurrency ----------------------------------------------------------------------------------


async def test_200_parallel_calls_each_get_their_own_lead(mcp: McpProcess, api: SandboxApi) -> None:
    lead_ids = [api.add_lead(first_name=f"Lead {n}") for n in range(200)]
    api.latency = 0.1
    results: dict[str, Any] = {}

    async def one(n: int, lead_id: str) -> None:
        result = await mcp.call("update_lead", {"lead_id": lead_id, "title": f"title-{n}", "metadata": {"n": n}})
        assert not result.is_error, text_of(result)
        results[lead_id] = (result.structured_content or {})["lead"]

    async with anyio.create_task_group() as group:
        for n, lead_id in enumerate(lead_ids):
            group.start_soon(one, n, lead_id)
    assert len(api.requests) == 200
    for n, lead_id in enumerate(lead_ids):
        lead = results[lead_id]
        assert (lead["id"], lead["first_name"], lead["title"], lead["metadata"]) == (
            lead_id, f"Lead {n}", f"title-{n}", {"n": n}
        )


# --- garbage in, only JSON-RPC out, no secrets ----------------------------------------------------


def raw_server(base_url: str, stderr: Any, *extra: str, key: str = TEST_KEY) -> RawServer:
    env = {"PATH": "/usr/bin:/bin", "NEXOR_BASE_URL": base_url, "NEXOR_API_KEY": key}
    return RawServer([sys.executable, "-m", "nexor_mcp", *extra], env, stderr=stderr)


def assert_all_jsonrpc(lines: list[str]) -> None:
    assert lines
    for line in lines:
        message = json.loads(line)
        assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", line


def test_garbage_on_stdin_never_kills_the_server(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    with child_log() as stderr, raw_server(sandbox_server.base_url, stderr) as server:
        server.initialize()
        for line in (
            "this is not json",
            "{",
            "[]",
            "42",
            '{"jsonrpc": "2.0"}',
            '{"jsonrpc": "2.0", "id": 900, "method": "no/such/method"}',
            '{"jsonrpc": "2.0", "id": 901, "method": "tools/call", "params": "not an object"}',
            '{"jsonrpc": "2.0", "id": 902, "method": "tools/call", "params": {"name": 5}}',
            '{"jsonrpc": "2.0", "id": 903, "method": "tools/call", "params": {"name": "update_lead", "arguments": 7}}',
            "\x00\x01\x02",
        ):
            server.send_line(line)
        # 901 is not a valid JSON-RPC request (params must be an object): the SDK drops it unanswered.
        answers = server.wait_for([900, 902, 903])
        assert answers[900]["error"]["code"] == -32601
        assert answers[902]["error"]["code"] == answers[903]["error"]["code"] == -32602
        result = server.call_tool("update_lead", {"lead_id": ANA, "title": "still alive"})
        assert result["isError"] is False
        assert result["structuredContent"]["lead"]["title"] == "still alive"
        assert server.process.poll() is None
    assert_all_jsonrpc(server.stdout_lines)


def test_fault_matrix_at_debug_level_keeps_stdout_pure_and_the_key_secret(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    leaky_401 = Fault(401, {"error": "Invalid API key", "message": f"key {TEST_KEY} is not valid"})
    results: list[dict[str, Any]] = []
    with child_log() as stderr:
        with raw_server(sandbox_server.base_url, stderr, "--log-level", "debug") as server:
            server.initialize()
            server.request("tools/list")
            for case in [*FAULT_MATRIX]:
                api.inject(case.fault, times=case.requests)
                results.append(server.call_tool("update_lead", {"lead_id": ANA, "title": "x"}))
            api.inject(leaky_401)
            results.append(server.call_tool("get_lead", {"lead_id": ANA}))
            results.append(server.call_tool("update_lead", {"lead_id": ANA, "email": TEST_KEY}))
            results.append(server.call_tool("update_lead", {"lead_id": JOHN, "metadata": {"k": TEST_KEY}}))
        log = read_log(stderr)
    assert_all_jsonrpc(server.stdout_lines)
    # With the default 30 s timeout the "read timeout" fault's slow 2xx does arrive: an accepted update.
    expected = [not (case.accepted or case.name == "read timeout") for case in FAULT_MATRIX] + [True, True, False]
    assert [r["isError"] for r in results] == expected
    assert "nxr_****" in results[len(FAULT_MATRIX)]["content"][0]["text"]
    # A successful result is masked too: the lead field holding the key is shown as the mask.
    assert results[-1]["structuredContent"]["lead"]["metadata"]["k"] == "nxr_****"
    assert '"k":"nxr_****"' in results[-1]["content"][0]["text"]
    for result in results:
        assert TEST_KEY not in json.dumps(result)
    assert "DEBUG" in log and "PATCH /leads/" in log  # debug logging really was on
    assert TEST_KEY not in log
    assert "x-api-key" not in log.lower()


@pytest.mark.soak
def test_soak_thousands_of_calls_in_one_session(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    calls = 3000
    with raw_server(sandbox_server.base_url, None) as server:
        server.initialize()
        for n in range(200):  # warm up: pools, caches, lazy imports
            server.call_tool("update_lead", {"lead_id": ANA, "title": f"warm {n}"})
        before = server.rss_kib()
        for n in range(calls):
            tool, args = (
                ("get_lead", {"lead_id": JOHN})
                if n % 5 == 0
                else ("update_lead", {"lead_id": ANA, "title": f"t{n}", "metadata": {"n": n}})
            )
            result = server.call_tool(tool, args)
            assert result["isError"] is False, result
        after = server.rss_kib()
    growth_mib = (after - before) / 1024
    print(f"\nsoak: {calls} calls, RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB ({growth_mib:+.2f} MiB)")
    assert growth_mib < 10
    assert api.connections() == 1


def test_messages_larger_than_the_pipe_buffer_both_ways(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    """A 5,000-key metadata makes request and answer ~150 KB: more than a pipe holds, so the
    server's writer must wait for room without stalling, and stdin must keep being read."""
    metadata = {f"custom_field_{n:05d}": f"value number {n}" for n in range(5000)}
    with raw_server(sandbox_server.base_url, None) as server:
        server.initialize()
        results = server.call_many([("update_lead", {"lead_id": JOHN, "metadata": metadata})] * 3)
        assert all(result["isError"] is False for result in results)
        assert all(result["structuredContent"]["lead"]["metadata"] == metadata for result in results)
        assert len(server.stdout_lines[-1]) > 150_000
        assert server.call_tool("get_lead", {"lead_id": ANA})["isError"] is False
    assert [request.json for request in api.requests] == [{"metadata": metadata}] * 3 + [None]
