"""End to end: every way the API can fail becomes an `isError` result a model can act on, and the
server survives it (the next call in the same session works). Retries are off here
(NEXOR_MAX_RETRIES=0) so each case is one request; retry behaviour has its own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from tests.conftest import ANA, TEST_KEY, McpProcess, server_env, spawn_server, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def mcp(sandbox_server: SandboxServer) -> AsyncIterator[McpProcess]:
    env = server_env(sandbox_server.base_url, NEXOR_MAX_RETRIES="0", NEXOR_TIMEOUT_SECONDS="1")
    async with spawn_server(env) as process:
        yield process


FAILURES: list[tuple[str, Fault, list[str]]] = [
    (
        "400 with field errors",
        Fault(400, {"error": "Validation error", "message": "Invalid phone",
                    "errors": {"phone": "must be E.164"}}),
        ["HTTP 400", "Validation error: Invalid phone", "phone: must be E.164", "Nothing was changed"],
    ),
    (
        "422",
        Fault(422, {"error": "Unprocessable", "message": "email already used by another lead"}),
        ["HTTP 422", "email already used by another lead"],
    ),
    (
        "401",
        Fault(401, {"error": "Invalid API key", "message": "The provided API key is not valid"}),
        ["HTTP 401", "NEXOR_API_KEY", "nxr_live_", "restart"],
    ),
    ("403", Fault(403, {"error": "Forbidden"}), ["HTTP 403", "not allowed", "retrying will not help"]),
    ("404", Fault(404, {"error": "Not found"}), [f"No lead with id {ANA}", "HTTP 404"]),
    ("409", Fault(409, {"error": "Conflict", "message": "lead is locked"}), ["HTTP 409", "lead is locked", "get_lead"]),
    (
        "429 with Retry-After",
        Fault(429, {"error": "Too many"}, headers={"Retry-After": "7"}),
        ["HTTP 429", "Retry after 7 seconds"],
    ),
    ("429 without Retry-After", Fault(429, None), ["HTTP 429", "Wait a few seconds"]),
    ("500", Fault(500, {"error": "boom"}), ["HTTP 500", "retrying the same update is safe"]),
    ("502 html", Fault(502, raw_body=b"<html>Bad gateway</html>"), ["HTTP 502"]),
    ("503", Fault(503, None), ["HTTP 503"]),
    ("504", Fault(504, None), ["HTTP 504"]),
    ("timeout", Fault(200, {"success": True}, delay=3.0), ["did not answer within 1 s", "get_lead"]),
    ("dropped mid-response", Fault(200, {"success": True, "lead": {"id": ANA}}, drop=True),
     ["Could not reach Nexor", "closed mid-response"]),
    ("200 not JSON", Fault(200, raw_body=b"<html>oops</html>"), ["HTTP 200", "not JSON", "<html>oops"]),
    ("200 JSON array", Fault(200, [1, 2]), ["JSON list, not an object"]),
    (
        "200 success false",
        Fault(200, {"success": False, "error": "Lead is archived"}),
        ["success: false", "Lead is archived"],
    ),
    ("200 without lead", Fault(200, {"success": True}), ["no lead"]),
    ("200 lead null", Fault(200, {"success": True, "lead": None}), ["no lead object", "null"]),
]


@pytest.mark.parametrize(("fault", "facts"), [(f, facts) for _, f, facts in FAILURES], ids=[c for c, _, _ in FAILURES])
async def test_api_failure_is_an_actionable_error_and_the_server_survives(
    mcp: McpProcess, api: SandboxApi, fault: Fault, facts: list[str]
) -> None:
    api.inject(fault)
    result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CTO"})
    text = text_of(result)
    assert result.is_error
    assert text.startswith("update_lead failed: ")
    for fact in facts:
        assert fact in text, (fact, text)
    assert TEST_KEY not in text
    assert len(api.requests) == 1

    after = await mcp.call("update_lead", {"lead_id": ANA, "title": "CEO"})
    assert not after.is_error, text_of(after)
    assert len(api.requests) == 2


async def test_the_real_404_body_of_the_sandbox(mcp: McpProcess, api: SandboxApi) -> None:
    result = await mcp.call("update_lead", {"lead_id": "00000000-0000-4000-8000-000000000000", "title": "x"})
    assert result.is_error
    assert "Lead not found or does not belong to your account" in text_of(result)


async def test_the_real_400_of_the_sandbox_for_an_unknown_campaign(mcp: McpProcess, api: SandboxApi) -> None:
    args: dict[str, Any] = {"lead_id": ANA, "campaign_id": "11111111-2222-4333-8444-555555555555"}
    result = await mcp.call("update_lead", args)
    assert result.is_error
    assert "campaign_id not found or does not belong to your account" in text_of(result)
    assert api.requests[0].json == {"campaign_id": args["campaign_id"]}


async def test_connection_refused_names_the_base_url() -> None:
    dead = "http://127.0.0.1:9/api/public"  # discard port: nothing listens there
    async with spawn_server(server_env(dead, NEXOR_MAX_RETRIES="0")) as process:
        result = await process.call("get_lead", {"lead_id": ANA})
        assert result.is_error
        text = text_of(result)
        assert f"Could not reach Nexor at {dead}" in text
        assert "NEXOR_BASE_URL" in text
