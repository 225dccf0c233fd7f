"""Nexor's rules live once (issue 15): JSON equality and the absent sentinel, a lead's field as GET
shows it, what a PATCH does, updated_at as an instant, and idempotence declared once per endpoint,
read both by the client's retries and by the tools' idempotentHint."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from nexor_mcp import endpoints, rules
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Secret, Settings
from nexor_mcp.errors import NexorError
from nexor_mcp.request import Request
from nexor_mcp.rules import ABSENT, WRITES, always_idempotent, current_field, is_idempotent, patched, same
from nexor_mcp.tools import ALL_TOOLS
from nexor_mcp.tools.spec import Arguments, Group, ToolSpec

KEY = "nxr_live_rules_5d1a9e3c7b20"
BASE = "https://api.example.test/api/public"
LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
WORKFLOW = "0b7e2d4c-5f61-4a8e-9c3b-2a1d0e9f8b7c"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_json_equality_tells_numbers_booleans_and_absence_apart() -> None:
    assert same({"a": 1, "b": [1]}, {"b": [1], "a": 1})
    assert not same(1, 1.0) and not same(1, True) and not same(0, None)
    assert same(ABSENT, ABSENT)
    assert not same(ABSENT, None) and not same(None, ABSENT) and not same(ABSENT, "x")


def test_there_is_one_absent_sentinel_and_one_json_equality() -> None:
    package = Path(rules.__file__).parent
    for source in package.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        if source.name != "rules.py":
            assert not re.search(r"^ABSENT\b.*=|^class _Absent|^def _?same\(", text, re.MULTILINE), source
    assert repr(ABSENT) == "(absent)"


def test_a_field_as_get_shows_it() -> None:
    lead = {"title": None, "campaign": {"id": "c1", "name": "Q1"}}
    assert current_field(lead, "title") is None
    assert current_field(lead, "campaign_id") == "c1"  # GET shows the campaign, not its id
    assert current_field({"campaign": None}, "campaign_id") is None
    assert current_field({"campaign_id": "c2", "campaign": {"id": "c1"}}, "campaign_id") == "c2"
    assert current_field(lead, "phone") is ABSENT  # not shown is not null...
    assert current_field(lead, "phone", missing=None) is None  # ...unless the caller says so


def test_a_patch_replaces_fields_and_merges_metadata_shallowly() -> None:
    lead = {"id": LEAD, "title": "CEO", "phone": "1", "metadata": {"a": {"x": 1}, "b": 2},
            "campaign": {"id": "c1", "name": "Q1"}}
    kept = json.dumps(lead, sort_keys=True)
    after = patched(lead, {"title": "CTO", "phone": None, "metadata": {"a": {"y": 2}, "c": 3}, "campaign_id": "c2"})
    assert after == {"id": LEAD, "title": "CTO", "phone": None, "metadata": {"a": {"y": 2}, "b": 2, "c": 3},
                     "campaign_id": "c2", "campaign": {"id": "c2"}}
    assert json.dumps(lead, sort_keys=True) == kept  # the lead read is not changed
    assert patched(lead, {"campaign_id": "c1"})["campaign"] == {"id": "c1", "name": "Q1"}
    assert patched(lead, {"campaign_id": None})["campaign"] is None
    assert patched({"id": LEAD}, {"metadata": {"k": 1}})["metadata"] == {"k": 1}


def test_the_guard_argument_says_what_updated_at_does_not_cover() -> None:
    for spec in ALL_TOOLS:
        field = spec.arguments.model_fields.get("if_unchanged_since")
        if field is not None:
            assert (field.description or "").endswith(rules.UPDATED_AT_COVERS)
    assert rules.same_instant("2026-11-01T10:00:00Z", "2026-11-01T11:00:00+01:00")


# --- idempotence, declared once per endpoint ------------------------------------------------------


def test_every_write_tool_names_its_endpoint_and_its_hint_is_derived_from_it() -> None:
    writes = {spec.name: spec.writes for spec in ALL_TOOLS if not spec.read_only}
    assert set(writes.values()) == set(WRITES)  # every endpoint declared is written by a tool
    for spec in ALL_TOOLS:
        hints = spec.annotations()
        if spec.read_only:
            assert spec.writes is None and hints.idempotent_hint is None
        else:
            assert spec.writes is not None
            assert hints.idempotent_hint is always_idempotent(spec.writes) is spec.idempotent
    # POST /meetings is idempotent only for some bodies, so its tool promises nothing
    assert writes["record_meeting"] == "POST /meetings"
    assert is_idempotent("POST /meetings", {"external_calendar_provider": "google", "external_event_id": "e1"})
    assert not is_idempotent("POST /meetings", {"external_event_id": "e1"})
    assert not always_idempotent("POST /meetings")


class _Empty(Arguments):
    pass


@pytest.mark.parametrize("writes", [None, "POST /nowhere", "PATCH leads/{id}"])
def test_a_write_tool_without_a_known_endpoint_is_a_declaration_error(writes: str | None) -> None:
    async def handler(client: Any, arguments: Any, on_retry: Any) -> Any:
        return {}

    with pytest.raises(ValueError, match=r"rules\.WRITES"):
        ToolSpec(name="w", title="W", description="d", group=Group.WRITE, arguments=_Empty, output_schema={},
                 handler=handler, writes=writes)


MEETING = {"lead_id": LEAD, "title": "x", "starts_at": "2026-01-01T10:00:00Z"}
DEDUPLICATED = {**MEETING, "external_calendar_provider": "google", "external_event_id": "evt-1"}


def sends(request: Request) -> Callable[[NexorClient], Any]:
    """The call that sends `request` with a client."""
    return lambda client: client.call(request)


CLIENT_WRITES: list[tuple[str, str, Callable[[NexorClient], Any], Any]] = [
    ("PATCH /leads/{id}", f"PATCH /leads/{LEAD}", sends(endpoints.update_lead(LEAD, {"title": "x"})), {"title": "x"}),
    ("POST /leads", "POST /leads", sends(endpoints.create_lead({"first_name": "Ana"})), {"first_name": "Ana"}),
    ("POST /leads/{id}/tags", f"POST /leads/{LEAD}/tags", sends(endpoints.add_lead_tags(LEAD, ["t1"])),
     {"tagIds": ["t1"]}),
    ("PUT /leads/tags", "PUT /leads/tags", sends(endpoints.set_lead_tags(LEAD, ["VIP"])),
     {"lead_id": LEAD, "tags": ["VIP"]}),
    ("POST /leads/{id}/automation/stop", f"POST /leads/{LEAD}/automation/stop",
     sends(endpoints.stop_automation(LEAD, WORKFLOW)), {"workflow_id": WORKFLOW}),
    ("POST /leads/{id}/automation/resume", f"POST /leads/{LEAD}/automation/resume",
     sends(endpoints.resume_automation(LEAD, WORKFLOW, False)), {"workflow_id": WORKFLOW, "resume_cadence": False}),
    ("POST /meetings", "POST /meetings", sends(endpoints.record_meeting(MEETING)), MEETING),
    ("POST /meetings", "POST /meetings", sends(endpoints.record_meeting(DEDUPLICATED)), DEDUPLICATED),
    ("POST /leads/{id}/assign-workflow", f"POST /leads/{LEAD}/assign-workflow",
     sends(endpoints.assign_workflow(LEAD, WORKFLOW, None)), {"workflowId": WORKFLOW}),
    ("POST /leads/{id}/status", f"POST /leads/{LEAD}/status", sends(endpoints.set_lead_status(LEAD, {"status": "won"})),
     {"status": "won"}),
    ("POST /messages", "POST /messages", sends(endpoints.send_message({"lead_id": LEAD, "channel": "call"})),
     {"lead_id": LEAD, "channel": "call"}),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("endpoint", "sent", "call_it", "body"), CLIENT_WRITES,
                         ids=[f"{e}-{i}" for i, (e, *_rest) in enumerate(CLIENT_WRITES)])
async def test_the_client_retries_a_write_exactly_when_its_endpoint_rule_says_so(
    endpoint: str, sent: str, call_it: Callable[[NexorClient], Any], body: Any
) -> None:
    """Each client write goes to the endpoint it is declared under, and a 503 is retried (once, with
    max_retries=1) only when `rules.is_idempotent` says so for that body."""
    requests: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        request.read()
        requests.append(request)
        return httpx2.Response(503, json={"error": "busy"})

    settings = Settings(api_key=Secret(KEY), base_url=BASE, max_retries=1, retry_budget_seconds=60)
    client = NexorClient(settings, transport=httpx2.MockTransport(answer))
    with pytest.raises(NexorError) as info:
        await call_it(client)
    await client.aclose()
    assert {f"{r.method} {r.url.path.removeprefix('/api/public')}" for r in requests} == {sent}
    assert json.loads(requests[0].content) == body
    repeats = is_idempotent(endpoint, body)
    assert len(requests) == (2 if repeats else 1)
    assert ("Do not repeat it blindly" in str(info.value)) is not repeats
