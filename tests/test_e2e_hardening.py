"""End to end over stdio: what an outside review broke stays fixed. Odd strings and numbers from
Nexor, the key inside results and errors, odd `variables`, writes whose answer cannot be read,
values too large to send, `clear`, and floods of bad arguments. After each, the same process must
still answer: one bad call fails alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from tests.conftest import ANA, JOHN, TEST_KEY, McpProcess, server_env, spawn_server, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def mcp(sandbox_server: SandboxServer) -> AsyncIterator[McpProcess]:
    async with spawn_server(server_env(sandbox_server.base_url)) as process:
        yield process


async def still_alive(mcp: McpProcess, api: SandboxApi) -> None:
    result = await mcp.call("get_lead", {"lead_id": JOHN})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["lead"]["first_name"] == "John"


def lead_body(**fields: Any) -> bytes:
    return json.dumps({"success": True, "lead": {"id": ANA, **fields}}).encode()


# --- 1. whatever Nexor sends, the process lives --------------------------------------------------

SURROGATE_BODIES = {
    "lead field": lead_body(first_name="Ana \ud83d"),
    "metadata value": lead_body(metadata={"note": "cut \udc00 here"}),
    "metadata key": lead_body(metadata={"k\ud83d": 1}),
    "top-level extra": json.dumps({"success": True, "lead": {"id": ANA}, "variables": {"x\ud800": {}}}).encode(),
}


@pytest.mark.parametrize("tool", ["get_lead", "update_lead"])
@pytest.mark.parametrize("where", list(SURROGATE_BODIES))
async def test_a_lone_surrogate_from_nexor_becomes_a_replacement_character(
    mcp: McpProcess, api: SandboxApi, tool: str, where: str
) -> None:
    api.inject(Fault(200, raw_body=SURROGATE_BODIES[where]))
    arguments: dict[str, Any] = {"lead_id": ANA} if tool == "get_lead" else {"lead_id": ANA, "title": "CTO"}
    result = await mcp.call(tool, arguments)
    text = text_of(result)
    assert not result.is_error, text
    assert "\ufffd" in text
    assert "\ufffd" in json.dumps(result.structured_content, ensure_ascii=False)
    await still_alive(mcp, api)


async def test_a_lone_surrogate_in_nexors_error_text_is_shown_cleanly(mcp: McpProcess, api: SandboxApi) -> None:
    api.inject(Fault(400, {"error": "Validation error", "message": "bad name \ud83d"}))
    result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CTO"})
    assert result.is_error
    assert "bad name \ufffd" in text_of(result)
    await still_alive(mcp, api)


async def test_nan_and_infinity_from_nexor_are_null_in_text_and_structured(mcp: McpProcess, api: SandboxApi) -> None:
    api.inject(Fault(200, raw_body=lead_body(metadata={"a": 1}).replace(b'{"a": 1}', b'{"a": NaN, "b": -Infinity}')))
    result = await mcp.call("get_lead", {"lead_id": ANA})
    text = text_of(result)
    assert not result.is_error, text
    assert "NaN" not in text and "Infinity" not in text
    assert result.structured_content is not None
    assert result.structured_content["lead"]["metadata"] == {"a": None, "b": None}
    assert json.loads(text)["metadata"] == {"a": None, "b": None}  # the text agrees


async def test_deeply_nested_json_on_a_read_is_a_clear_error_not_an_internal_one(
    mcp: McpProcess, api: SandboxApi
) -> None:
    api.inject(Fault(200, raw_body=b'{"success": true, "lead": {"id": "x", "m": ' + b"[" * 3000 + b"]" * 3000 + b"}}"))
    result = await mcp.call("get_lead", {"lead_id": ANA})
    text = text_of(result)
    assert result.is_error
    assert "nested deeper than 64 levels" in text
    assert "internal error" not in text and "may or may not have been changed" not in text
    await still_alive(mcp, api)


# --- 2. the key never leaves, in any result ---------------------------------------------------------


async def test_a_lead_field_holding_the_key_is_masked_in_a_successful_result(
    mcp: McpProcess, api: SandboxApi
) -> None:
    api.inject(Fault(200, raw_body=lead_body(first_name=f"x{TEST_KEY}y", metadata={TEST_KEY: TEST_KEY[:15]})))
    result = await mcp.call("get_lead", {"lead_id": ANA})
    text = text_of(result)
    assert not result.is_error
    everything = text + json.dumps(result.structured_content)
    assert TEST_KEY[:10] not in everything
    assert result.structured_content is not None
    assert result.structured_content["lead"]["first_name"] == "xnxr_****y"
    assert result.structured_content["lead"]["metadata"] == {"nxr_****": "nxr_****"}


@pytest.mark.parametrize("pad", [290, 295, 299])
async def test_a_key_straddling_the_clip_of_nexors_error_is_masked(
    mcp: McpProcess, api: SandboxApi, pad: int
) -> None:
    api.inject(Fault(422, {"error": "Unprocessable", "message": "y" * (pad - 15) + TEST_KEY}))
    result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CTO"})
    text = text_of(result)
    assert result.is_error and "HTTP 422" in text
    assert TEST_KEY[:10] not in text


# --- 3. output schemas hold for odd shapes (the SDK client validates structuredContent) -----------


@pytest.mark.parametrize("variables", [[], None, "none", [{"name": "budget"}]], ids=repr)
async def test_get_lead_with_odd_variables_is_readable_by_an_sdk_client(
    mcp: McpProcess, api: SandboxApi, variables: Any
) -> None:
    body = {"success": True, "lead": {"id": ANA, "first_name": None, "metadata": None}, "variables": variables}
    api.inject(Fault(200, body))
    result = await mcp.call("get_lead", {"lead_id": ANA})  # raises if the schema rejected it
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["variables"] == ({} if variables in ([], None) else variables)


# --- 4. a write Nexor accepted is never told as failed; nothing too big is sent --------------------


@pytest.mark.parametrize(
    "fault",
    [Fault(204, raw_body=b""), Fault(200, raw_body=b""), Fault(200, raw_body=b"OK"),
     Fault(200, raw_body=b" " * (4 * 1024 * 1024 + 1))],
    ids=["204", "empty 200", "text 200", "200 over the cap"],
)
async def test_a_write_accepted_with_an_unreadable_answer_says_it_was_applied(
    mcp: McpProcess, api: SandboxApi, fault: Fault
) -> None:
    api.inject(fault)
    result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CTO"})
    text = text_of(result)
    assert not result.is_error, text
    assert text.startswith(f"Nexor accepted the update (HTTP {fault.status}), so it was applied")
    assert "call get_lead" in text
    assert result.structured_content == {"lead": None, "accepted": True, "message": text}
    assert len(api.requests) == 1  # and it was not retried


@pytest.mark.parametrize(
    "arguments",
    [
        {"first_name": "x" * (5 * 1024 * 1024)},
        {"company": "é" * 40_000},
        {"metadata": {"notes": "n" * 70_000}},
        {"metadata": {f"k{i}": "v" * 60_000 for i in range(5)}},
    ],
    ids=["5 MB first_name", "80 KB company", "70 KB metadata value", "300 KB body"],
)
async def test_values_over_the_send_limits_are_rejected_before_any_request(
    mcp: McpProcess, api: SandboxApi, arguments: dict[str, Any]
) -> None:
    result = await mcp.call("update_lead", {"lead_id": ANA, **arguments})
    text = text_of(result)
    assert result.is_error
    assert "nothing was sent to Nexor" in text
    assert "KiB limit" in text
    assert len(text) < 1000
    assert api.requests == []


# --- validation rules and clear, over the wire -------------------------------------------------------


async def test_clear_sets_the_named_fields_to_null(mcp: McpProcess, api: SandboxApi) -> None:
    result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CTO", "clear": ["phone", "company"]})
    assert not result.is_error, text_of(result)
    assert api.requests[0].json == {"title": "CTO", "phone": None, "company": None}
    assert result.structured_content is not None
    assert result.structured_content["lead"]["phone"] is None


@pytest.mark.parametrize(
    ("arguments", "fact"),
    [
        ({"first_name": "\u200b\u3164"}, "first_name: cannot be empty"),
        ({"last_name": "Ro\x00jas"}, "control character"),
        ({"email": "a@-.x"}, "expected an email address"),
        ({"phone": "null"}, 'the text "null" is not stored'),
        ({"phone": "+1", "clear": ["phone"]}, "phone is both set and cleared"),
        ({"clear": ["first_name"]}, "first_name cannot be cleared"),
    ],
    ids=["invisible", "NUL", "email", "text null", "set and cleared", "clear first_name"],
)
async def test_bad_values_are_rejected_with_nothing_sent(
    mcp: McpProcess, api: SandboxApi, arguments: dict[str, Any], fact: str
) -> None:
    result = await mcp.call("update_lead", {"lead_id": ANA, **arguments})
    assert result.is_error
    assert fact in text_of(result)
    assert api.requests == []


async def test_campaign_id_is_lower_cased(mcp: McpProcess, api: SandboxApi) -> None:
    campaign = "0b7e2d4c-5f61-4a8e-9c3b-2a1d0e9f8b7c"
    result = await mcp.call("update_lead", {"lead_id": ANA, "campaign_id": campaign.upper()})
    assert not result.is_error, text_of(result)
    assert api.requests[0].json == {"campaign_id": campaign}


async def test_a_flood_of_bad_arguments_gets_a_bounded_answer(mcp: McpProcess, api: SandboxApi) -> None:
    arguments: dict[str, Any] = {"lead_id": ANA, **{f"f{i}\nforged": i for i in range(50_000)}}
    result = await mcp.call("update_lead", arguments)
    text = text_of(result)
    assert result.is_error
    assert len(text) < 5000
    assert text.endswith("- … and 49980 more problems not listed here.")
    assert "\nforged" not in text
    assert api.requests == []
    log = mcp.stderr_text()
    assert "forged" not in log.replace("\\u000aforged", "")  # the name is escaped in the log line
    await still_alive(mcp, api)
