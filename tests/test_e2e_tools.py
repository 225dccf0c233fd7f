"""End to end: the SDK client drives `python -m nexor_mcp` over stdio; the server talks HTTP to the
sandbox on loopback. Every assertion is on what crossed a real wire: the request body the API
received, the number of requests, and the tool result the agent read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nexor_mcp import __version__
from nexor_mcp.sandbox import CAMPAIGNS, Fault, SandboxApi, SandboxServer
from tests.conftest import ANA, JOHN, MISSING_LEAD, TEST_KEY, McpProcess, server_env, spawn_server, text_of

pytestmark = pytest.mark.anyio

CAMPAIGN = next(iter(CAMPAIGNS))


@pytest.fixture(scope="module")
async def mcp(sandbox_server: SandboxServer) -> AsyncIterator[McpProcess]:
    """One server process for the module: calls in one session, as an agent makes them."""
    async with spawn_server(server_env(sandbox_server.base_url)) as process:
        yield process


async def update(mcp: McpProcess, **arguments: Any) -> tuple[bool, str, Any]:
    result = await mcp.call("update_lead", arguments)
    return bool(result.is_error), text_of(result), result.structured_content


# --- the body holds exactly what the caller wrote -------------------------------------------------

FIELD_VALUES = [
    ("first_name", "Anita"),
    ("last_name", "Rojas Pérez"),
    ("email", "anita@example.com"),
    ("phone", "+56911112222"),
    ("company", "Globex"),
    ("title", "CTO"),
    ("source", "referral"),
    ("campaign_id", CAMPAIGN),
    ("metadata", {"budget": 5000, "vip": True, "score": 0.5, "note": None}),
]


@pytest.mark.parametrize(("field", "value"), FIELD_VALUES)
async def test_each_field_is_sent_alone_and_exactly(
    mcp: McpProcess, api: SandboxApi, field: str, value: Any
) -> None:
    is_error, text, structured = await update(mcp, lead_id=JOHN, **{field: value})
    assert not is_error, text
    assert [(r.method, r.path) for r in api.requests] == [("PATCH", f"/api/public/leads/{JOHN}")]
    assert api.requests[0].json == {field: value}
    assert structured["lead"]["id"] == JOHN
    if field != "metadata":
        assert structured["lead"][field] == value


@pytest.mark.parametrize("field", ["last_name", "email", "phone", "company", "title", "campaign_id"])
async def test_null_clears_a_nullable_field(mcp: McpProcess, api: SandboxApi, field: str) -> None:
    is_error, text, structured = await update(mcp, lead_id=ANA, **{field: None})
    assert not is_error, text
    assert api.requests[0].body == json.dumps({field: None}, separators=(",", ":")).encode()
    assert structured["lead"][field] is None
    # every other field of the lead is untouched
    assert structured["lead"]["first_name"] == "Ana"
    assert structured["lead"]["metadata"] == {"edad": 34, "utm_source": "google"}


@pytest.mark.parametrize(
    "text_value", ["[1, 2]", "Null", "true", "42", '{"a": 1}', '"quoted"', "  padded  ", "emoji 🚀 ñ"]
)
async def test_strings_are_sent_as_text_never_parsed(mcp: McpProcess, api: SandboxApi, text_value: str) -> None:
    is_error, text, structured = await update(mcp, lead_id=ANA, title=text_value, last_name=text_value)
    assert not is_error, text
    assert api.requests[0].json == {"title": text_value, "last_name": text_value}
    assert structured["lead"]["title"] == text_value


async def test_several_fields_only_the_named_ones(mcp: McpProcess, api: SandboxApi) -> None:
    is_error, text, structured = await update(
        mcp, lead_id=ANA, company="Initech", phone=None, metadata={"stage": "qualified"}
    )
    assert not is_error, text
    assert api.requests[0].json == {"company": "Initech", "phone": None, "metadata": {"stage": "qualified"}}
    lead = structured["lead"]
    assert (lead["company"], lead["phone"], lead["title"], lead["email"]) == (
        "Initech", None, "Head of Sales", "ana.rojas@example.com"
    )


async def test_metadata_is_merged_keys_not_sent_are_kept(mcp: McpProcess, api: SandboxApi) -> None:
    is_error, text, structured = await update(mcp, lead_id=ANA, metadata={"edad": 35, "plan": "pro"})
    assert not is_error, text
    assert api.requests[0].json == {"metadata": {"edad": 35, "plan": "pro"}}
    assert structured["lead"]["metadata"] == {"edad": 35, "utm_source": "google", "plan": "pro"}


async def test_metadata_sent_as_a_json_string_is_parsed(mcp: McpProcess, api: SandboxApi) -> None:
    is_error, text, _ = await update(mcp, lead_id=ANA, metadata='{"budget": 1200, "hot": true}')
    assert not is_error, text
    assert api.requests[0].json == {"metadata": {"budget": 1200, "hot": True}}


async def test_uppercase_lead_id_is_accepted_and_normalised(mcp: McpProcess, api: SandboxApi) -> None:
    is_error, text, _ = await update(mcp, lead_id=ANA.upper(), title="VP")
    assert not is_error, text
    assert api.requests[0].path == f"/api/public/leads/{ANA}"


# --- rejected input: a clear error and not a single request ---------------------------------------

REJECTED: list[tuple[dict[str, Any], list[str]]] = [
    ({"lead_id": "not-a-uuid", "title": "x"}, ["lead_id", "UUID", "not-a-uuid"]),
    ({"lead_id": "../../tags", "title": "x"}, ["lead_id", "UUID"]),
    ({"title": "x"}, ["lead_id", "required"]),
    ({"lead_id": ANA}, ["nothing to update", "first_name"]),
    ({"lead_id": ANA, "budget": 5000}, ["budget", "inside metadata", '{"metadata": {"budget": 5000}}']),
    ({"lead_id": ANA, "firstName": "Ana"}, ["firstName", "did you mean first_name"]),
    ({"lead_id": ANA, "workflow_id": CAMPAIGN}, ["workflow_id", "changed with assign_workflow, not by this tool"]),
    ({"lead_id": ANA, "first_name": None}, ["first_name", "cannot be null"]),
    ({"lead_id": ANA, "source": None}, ["source", "cannot be null"]),
    ({"lead_id": ANA, "first_name": ""}, ["first_name", "cannot be empty"]),
    ({"lead_id": ANA, "title": ""}, ["title", "pass null or clear"]),
    ({"lead_id": ANA, "email": "ana.example.com"}, ["email", "email address", "ana.example.com"]),
    ({"lead_id": ANA, "phone": 56987654321}, ["phone", "expected a string or null", "number"]),
    ({"lead_id": ANA, "first_name": ["Ana"]}, ["first_name", "expected a string", "array"]),
    ({"lead_id": ANA, "campaign_id": "q4"}, ["campaign_id", "UUID"]),
    ({"lead_id": ANA, "metadata": "budget=5"}, ["metadata", "expected an object"]),
    ({"lead_id": ANA, "metadata": [1, 2]}, ["metadata", "expected an object"]),
    ({"lead_id": ANA, "metadata": {"address": {"city": "Lima"}}}, ["metadata.address", "nested"]),
    ({"lead_id": ANA, "metadata": {"langs": ["es", "en"]}}, ["metadata.langs", "nested"]),
    ({"lead_id": ANA, "metadata": None}, ["metadata", "cannot be null"]),
]


@pytest.mark.parametrize(("arguments", "facts"), REJECTED)
async def test_bad_input_is_rejected_before_any_request(
    mcp: McpProcess, api: SandboxApi, arguments: dict[str, Any], facts: list[str]
) -> None:
    result = await mcp.call("update_lead", arguments)
    text = text_of(result)
    assert result.is_error
    assert result.structured_content is None
    for fact in facts:
        assert fact in text, (fact, text)
    assert "nothing was sent" in text
    assert "pydantic" not in text
    assert api.requests == []


async def test_every_bad_argument_is_named_in_one_error(mcp: McpProcess, api: SandboxApi) -> None:
    huge = "x" * 50_000
    result = await mcp.call(
        "update_lead", {"lead_id": huge, "email": huge, "source": None, "metadata": {"a": [1]}}
    )
    text = text_of(result)
    assert result.is_error
    assert [line.split(":")[0] for line in text.splitlines()[1:]] == [
        "- lead_id", "- email", "- source", "- metadata.a"
    ]
    assert len(text) < 800
    assert api.requests == []


async def test_after_a_rejection_the_next_call_works(mcp: McpProcess, api: SandboxApi) -> None:
    bad = await mcp.call("update_lead", {"lead_id": "nope"})
    assert bad.is_error
    good = await mcp.call("update_lead", {"lead_id": ANA, "title": "COO"})
    assert not good.is_error
    assert len(api.requests) == 1


# --- results --------------------------------------------------------------------------------------


async def test_result_text_is_the_compact_json_of_the_lead(mcp: McpProcess, api: SandboxApi) -> None:
    result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CEO"})
    text = text_of(result)
    structured = result.structured_content or {}
    assert set(structured) == {"lead"}
    assert text == json.dumps(structured["lead"], ensure_ascii=False, separators=(",", ":"))
    assert "\n" not in text


async def test_get_lead_text_carries_the_variables_too(mcp: McpProcess, api: SandboxApi) -> None:
    result = await mcp.call("get_lead", {"lead_id": ANA})
    assert json.loads(text_of(result)) == result.structured_content
    assert '"variables":{"budget"' in text_of(result)


async def test_result_keeps_unknown_fields_and_tolerates_nulls(mcp: McpProcess, api: SandboxApi) -> None:
    odd_lead: dict[str, Any] = {key: None for key in ("id", "first_name", "source", "metadata", "created_at")}
    odd_lead["lead_score"] = 87
    api.inject(Fault(status=200, body={"success": True, "lead": odd_lead, "request_id": "r-1"}))
    # The SDK client validates structuredContent against outputSchema: nulls must pass.
    result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CEO"})
    assert not result.is_error, text_of(result)
    assert result.structured_content == {"lead": odd_lead, "request_id": "r-1"}


async def test_requests_carry_key_and_user_agent_and_reuse_one_connection(
    mcp: McpProcess, api: SandboxApi
) -> None:
    for title in ("A", "B", "C", "D", "E"):
        assert not (await mcp.call("update_lead", {"lead_id": ANA, "title": title})).is_error
    assert await mcp.call("get_lead", {"lead_id": ANA})
    assert len(api.requests) == 6
    for request in api.requests:
        assert request.headers["x-api-key"] == TEST_KEY
        assert request.headers["user-agent"] == f"nexor-mcp/{__version__}"
    assert api.requests[0].headers["content-type"] == "application/json"
    assert "content-type" not in api.requests[-1].headers
    assert api.connections() == 1


# --- get_lead -------------------------------------------------------------------------------------


async def test_get_lead_returns_everything_the_api_sent(mcp: McpProcess, api: SandboxApi) -> None:
    result = await mcp.call("get_lead", {"lead_id": ANA})
    assert not result.is_error, text_of(result)
    structured = result.structured_content or {}
    lead = structured["lead"]
    assert lead["campaign"] == {"id": CAMPAIGN, "name": "Q4 Outbound"}
    assert lead["active_workflow_run"]["current_status"]["key"] == "contacted"
    assert lead["tags"] == [{"id": "8f14e45f-ceea-467f-a0e6-1b2c3d4e5f60", "name": "VIP", "slug": "vip"}]
    assert structured["variables"]["budget"]["confidence"] == 0.95
    assert "success" not in structured
    assert [(r.method, r.body) for r in api.requests] == [("GET", b"")]


async def test_get_lead_accepts_the_flat_legacy_shape(mcp: McpProcess, api: SandboxApi) -> None:
    flat = {"id": ANA, "first_name": "Ana", "activeWorkflowRun": None, "currentStatus": {"key": "new"}}
    api.inject(Fault(status=200, body=flat))
    result = await mcp.call("get_lead", {"lead_id": ANA})
    assert not result.is_error, text_of(result)
    assert result.structured_content == {"lead": flat}


async def test_get_lead_unknown_id_is_a_clear_404(mcp: McpProcess, api: SandboxApi) -> None:
    result = await mcp.call("get_lead", {"lead_id": MISSING_LEAD})
    assert result.is_error
    assert f"No lead with id {MISSING_LEAD}" in text_of(result)
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("arguments", "fact"),
    [({"lead_id": "42"}, "UUID"), ({}, "required"), ({"lead_id": ANA, "fields": "all"}, "only lead_id")],
)
async def test_get_lead_rejects_bad_arguments_without_a_request(
    mcp: McpProcess, api: SandboxApi, arguments: dict[str, Any], fact: str
) -> None:
    result = await mcp.call("get_lead", arguments)
    assert result.is_error
    assert fact in text_of(result)
    assert api.requests == []


async def test_unknown_tool_is_an_error_result(mcp: McpProcess, api: SandboxApi) -> None:
    result = await mcp.call("delete_lead", {"lead_id": ANA})
    assert result.is_error
    assert "This server has: get_lead, get_lead_history," in text_of(result)
    assert api.requests == []
