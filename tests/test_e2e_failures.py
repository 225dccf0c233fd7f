"""End to end, the fault matrix: every way the API can fail becomes an `isError` result that says
what happened and what to do, the API sees exactly the expected number of requests (retries
included, with the default policy of 2 retries), and the next call in the same session works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from tests.conftest import ANA, TEST_KEY, McpProcess, server_env, spawn_server, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def mcp(sandbox_server: SandboxServer) -> AsyncIterator[McpProcess]:
    env = server_env(sandbox_server.base_url, NEXOR_TIMEOUT_SECONDS="1")
    async with spawn_server(env) as process:
        yield process


@dataclass
class Case:
    name: str
    fault: Fault
    facts: list[str]
    requests: int = 1  # how many requests the API must see: 3 = first attempt + 2 retries
    extra: list[str] = field(default_factory=list)
    accepted: bool = False  # a 2xx on the PATCH: the update was applied, though its answer is unreadable


RETRIED = ["(3 attempts were made.)"]

FAULT_MATRIX: list[Case] = [
    Case("400", Fault(400, {"error": "Validation error", "message": "Invalid phone",
                            "errors": {"phone": "must be E.164"}}),
         ["HTTP 400", "Validation error: Invalid phone", "phone: must be E.164", "Nothing was changed"]),
    Case("401", Fault(401, {"error": "Invalid API key", "message": "The provided API key is not valid"}),
         ["HTTP 401", "NEXOR_API_KEY", "nxr_live_", "restart"]),
    Case("403", Fault(403, {"error": "Forbidden"}), ["HTTP 403", "not allowed", "retrying will not help"]),
    Case("404", Fault(404, {"error": "Not found"}), [f"No lead with id {ANA}", "HTTP 404", "Check the lead_id"]),
    Case("409", Fault(409, {"error": "Conflict", "message": "lead is locked"}),
         ["HTTP 409", "lead is locked", "get_lead"]),
    Case("422", Fault(422, {"error": "Unprocessable", "message": "email already used by another lead"}),
         ["HTTP 422", "email already used by another lead"]),
    Case("429 with Retry-After", Fault(429, {"error": "Too many"}, headers={"Retry-After": "0.2"}),
         ["HTTP 429", "Retry after 1 second", *RETRIED], requests=3),
    Case("429 without Retry-After", Fault(429, None), ["HTTP 429", "Wait a few seconds", *RETRIED], requests=3),
    Case("500", Fault(500, {"error": "boom"}), ["HTTP 500", "retrying the same update is safe", *RETRIED], 3),
    Case("502", Fault(502, raw_body=b"<html>Bad gateway</html>"), ["HTTP 502", *RETRIED], 3),
    Case("503", Fault(503, None), ["HTTP 503", *RETRIED], 3),
    Case("504", Fault(504, None), ["HTTP 504", *RETRIED], 3),
    Case("connection reset mid-response", Fault(200, {"success": True, "lead": {"id": ANA}}, drop=True),
         ["Could not reach Nexor", "closed mid-response", *RETRIED], 3),
    Case("read timeout", Fault(200, {"success": True}, delay=3.0),
         ["did not answer within 1 s", "retrying the same update is safe"]),
    Case("invalid JSON", Fault(200, raw_body=b"<html>oops</html>"), ["HTTP 200", "not JSON", "<html>oops"],
         accepted=True),
    Case("JSON array", Fault(200, [1, 2]), ["JSON list, not an object"], accepted=True),
    Case("wrong content type", Fault(200, {"success": True, "lead": {"id": ANA}},
                                     headers={"Content-Type": "text/html"}),
         ["Content-Type 'text/html', not JSON"], accepted=True),
    Case("huge body", Fault(200, raw_body=b"[" + b"0," * 2_500_000 + b"0]"), ["larger than 4 MB", "not read"],
         accepted=True),
    Case("success: false", Fault(200, {"success": False, "error": "Lead is archived"}),
         ["success: false", "Lead is archived"]),
    Case("no lead", Fault(200, {"success": True}), ["no lead"], accepted=True),
    Case("lead is null", Fault(200, {"success": True, "lead": None}), ["no lead object", "null"], accepted=True),
    Case("204 No Content", Fault(204, raw_body=b""), ["HTTP 204", "is empty"], accepted=True),
    Case("empty 200", Fault(200, raw_body=b""), ["HTTP 200", "is empty"], accepted=True),
    Case("deeply nested JSON", Fault(200, raw_body=b"[" * 5000 + b"]" * 5000), ["nested deeper than 64"],
         accepted=True),
]


@pytest.mark.parametrize("case", FAULT_MATRIX, ids=[case.name for case in FAULT_MATRIX])
async def test_fault_matrix(mcp: McpProcess, api: SandboxApi, case: Case) -> None:
    api.inject(case.fault, times=case.requests)
    result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CTO"})
    text = text_of(result)
    if case.accepted:
        # Nexor took the update: telling the model it failed would invite a second write.
        assert not result.is_error, text
        assert result.structured_content is not None
        assert result.structured_content["lead"] is None
        assert result.structured_content["accepted"] is True
        assert text == result.structured_content["message"]
        assert text.startswith("Nexor accepted the update (HTTP ")
        assert "Do not send the same update again: call get_lead" in text
    else:
        assert result.is_error
        assert text.startswith("update_lead failed: ")
    for fact in case.facts:
        assert fact in text, (fact, text)
    if case.requests == 1:
        assert "attempts" not in text
    assert TEST_KEY not in text
    assert len(api.requests) == case.requests

    after = await mcp.call("update_lead", {"lead_id": ANA, "title": "CEO"})
    assert not after.is_error, text_of(after)
    assert len(api.requests) == case.requests + 1


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
    async with spawn_server(server_env(dead)) as process:
        result = await process.call("get_lead", {"lead_id": ANA})
        assert result.is_error
        text = text_of(result)
        assert f"Could not reach Nexor at {dead}" in text
        assert "connection refused" in text
        assert "NEXOR_BASE_URL" in text
        assert "(3 attempts were made.)" in text
