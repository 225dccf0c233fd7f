"""Every published `outputSchema` accepts every result the server can build from odd-but-plausible
Nexor bodies, checked with a real JSON Schema validator (the one SDK clients use, jsonschema).

A result that breaks its own schema makes that lead unreadable from SDK-based hosts: the client
raises instead of showing it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from jsonschema import Draft202012Validator

from nexor_mcp import endpoints
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Secret, Settings
from nexor_mcp.server import success_result
from nexor_mcp.tools import ALL_TOOLS

pytestmark = pytest.mark.anyio

LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
KEY = "nxr_live_schema_0a1b2c3d4e"
ALL_NULL_LEAD = dict.fromkeys(
    ["first_name", "last_name", "email", "phone", "source", "company", "title", "campaign_id", "metadata",
     "tags", "campaign", "active_workflow_run", "created_at", "updated_at"]
) | {"id": LEAD}

ODD_BODIES: list[Any] = [
    {"success": True, "lead": {"id": LEAD}},
    {"success": True, "lead": ALL_NULL_LEAD},
    {"success": True, "lead": {"id": LEAD}, "variables": []},
    {"success": True, "lead": {"id": LEAD}, "variables": None},
    {"success": True, "lead": {"id": LEAD}, "variables": [{"name": "budget", "value": 1}]},
    {"success": True, "lead": {"id": LEAD}, "variables": "none"},
    {"success": True, "lead": {"id": LEAD}, "variables": {"budget": None}},
    {"success": True, "lead": {"id": LEAD, "metadata": [], "tags": None, "campaign": []}},
    {"success": True, "lead": {"id": LEAD}, "workflow_run": None, "extra": [1, "x", None]},
    {"id": LEAD, "first_name": None, "metadata": None},  # the flat shape
    {"success": True, "lead": {"id": LEAD, "first_name": "Ana \ud83d", "score": float("nan")}},
    {"success": True, "lead": {"id": LEAD, "note": KEY}},
]
# Bodies a write may get back: Nexor accepted the update but the lead cannot be read from them.
UNREADABLE_BODIES: list[bytes] = [b"", b"not json", b"[]", b"null", b'{"success": true}', b'{"lead": null}']


def validators() -> dict[str, Draft202012Validator]:
    found = {}
    for spec in ALL_TOOLS:
        Draft202012Validator.check_schema(spec.output_schema)
        found[spec.name] = Draft202012Validator(spec.output_schema)
    return found


def client_answering(status: int, content: bytes) -> NexorClient:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=content, headers={"Content-Type": "application/json"})

    settings = Settings(api_key=Secret(KEY), base_url="https://nexor.test/api/public", max_retries=0)
    return NexorClient(settings, transport=httpx2.MockTransport(handler))


async def result_of(tool: str, status: int, content: bytes) -> dict[str, Any]:
    client = client_answering(status, content)
    try:
        if tool == "get_lead":
            structured = await client.call(endpoints.get_lead(LEAD))
        else:
            structured = await client.call(endpoints.update_lead(LEAD, {"title": "CTO"}))
    finally:
        await client.aclose()
    result = success_result(structured, (KEY,))
    assert result.structured_content is not None
    text = result.content[0].text  # type: ignore[union-attr]
    if result.structured_content.get("lead") is not None:
        # The text is the JSON the structured content holds: the two always agree.
        shown = json.loads(text)
        assert shown in (result.structured_content, result.structured_content["lead"])
    shaped: dict[str, Any] = result.structured_content
    return shaped


@pytest.mark.parametrize("tool", ["get_lead", "update_lead"])
@pytest.mark.parametrize("body", ODD_BODIES, ids=lambda b: json.dumps(b)[:60])
async def test_odd_bodies_validate_against_the_published_schema(tool: str, body: Any) -> None:
    content = json.dumps(body).encode()  # NaN is written as NaN, as a careless API would
    structured = await result_of(tool, 200, content)
    errors = [error.message for error in validators()[tool].iter_errors(structured)]
    assert errors == []
    assert KEY not in json.dumps(structured)
    json.dumps(structured, allow_nan=False).encode("utf-8")


@pytest.mark.parametrize("status", [200, 201, 204])
@pytest.mark.parametrize("content", UNREADABLE_BODIES, ids=repr)
async def test_an_accepted_but_unreadable_write_validates_too(status: int, content: bytes) -> None:
    structured = await result_of("update_lead", status, content)
    assert structured["accepted"] is True and structured["lead"] is None
    assert list(validators()["update_lead"].iter_errors(structured)) == []


async def test_empty_variables_are_normalised_to_an_object() -> None:
    empty: list[Any] = [[], None]
    for variables in empty:
        body = json.dumps({"success": True, "lead": {"id": LEAD}, "variables": variables}).encode()
        assert (await result_of("get_lead", 200, body))["variables"] == {}
