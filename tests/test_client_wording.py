"""Issue 14: every failure text of every endpoint names what that call is about. A call that is
not about a lead (list_tags, list_templates, list_workflows) never mentions a lead, an unreadable
answer no longer says "the lead could not be read", and a refusal (409, `success: false`) points at
this call's own way of checking. GET /workflows is undocumented: any JSON passes through.

Over `httpx2.MockTransport`: no sockets, the client's real writer and parser."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import pytest

from nexor_mcp import endpoints
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Secret, Settings
from nexor_mcp.errors import NexorError
from nexor_mcp.request import Request

pytestmark = pytest.mark.anyio

KEY = "nxr_live_unit_issue14_4b1d"
BASE = "https://api.example.test/api/public"
LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
WORKFLOW = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
Call = Callable[[NexorClient], Awaitable[Any]]


def sends(request: Request) -> Call:
    """The call that sends `request` with a client."""
    return lambda client: client.call(request)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# (name, the call, what a refusal tells the agent to do next)
READS: list[tuple[str, Call, str]] = [
    ("get_lead", sends(endpoints.get_lead(LEAD)), "try again later"),
    ("get_lead_history", sends(endpoints.get_lead_history(LEAD, None, 50, 0)), "try again later"),
    ("get_lead_meetings", sends(endpoints.get_lead_meetings(LEAD, None)), "try again later"),
    ("get_automation_status", sends(endpoints.get_automation_status(LEAD, None)), "try again later"),
    ("list_tags", sends(endpoints.list_tags(None)), "try again later"),
    ("list_templates", sends(endpoints.list_templates(None, None)), "try again later"),
    ("list_workflows", sends(endpoints.list_workflows()), "try again later"),
]
WRITES: list[tuple[str, Call, str]] = [
    ("update_lead", sends(endpoints.update_lead(LEAD, {"title": "CTO"})), "read the lead with get_lead"),
    ("create_lead", sends(endpoints.create_lead({"first_name": "Ana"})), "ask the user to look for the lead in Nexor"),
    ("add_lead_tags", sends(endpoints.add_lead_tags(LEAD, [WORKFLOW])), "list the lead's tags with get_lead"),
    ("set_lead_tags", sends(endpoints.set_lead_tags(LEAD, ["VIP"])), "read the lead's tags with get_lead"),
    ("stop_automation", sends(endpoints.stop_automation(LEAD, WORKFLOW)), "check with get_automation_status"),
    ("resume_automation", sends(endpoints.resume_automation(LEAD, WORKFLOW, False)),
     "check with get_automation_status"),
    ("record_meeting", sends(endpoints.record_meeting({"lead_id": LEAD, "title": "x",
                                                      "starts_at": "2026-12-01T10:00"})),
     "list the lead's meetings with get_lead_meetings"),
    ("assign_workflow", sends(endpoints.assign_workflow(LEAD, WORKFLOW, None)), "read the lead with get_lead"),
    ("set_lead_status", sends(endpoints.set_lead_status(LEAD, {"status_key": "qualified"})),
     "read the lead with get_lead"),
    ("send_message", sends(endpoints.send_message({"lead_id": LEAD, "workflow_id": WORKFLOW, "channel": "call"})),
     "read the conversation with get_lead_history"),
]
EVERY = READS + WRITES
NOT_ABOUT_A_LEAD = {"list_tags", "list_templates", "list_workflows"}


def answering(status: int, content: bytes, content_type: str = "application/json") -> httpx2.MockTransport:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=content, headers={"Content-Type": content_type})

    return httpx2.MockTransport(handler)


async def outcome(call: Call, transport: httpx2.MockTransport) -> Any:
    """What the call returns, or the text of the `NexorError` it raises."""
    settings = Settings(api_key=Secret(KEY), base_url=BASE, max_retries=0, retry_budget_seconds=5)
    client = NexorClient(settings, transport=transport)
    try:
        return await call(client)
    except NexorError as error:
        return str(error)
    finally:
        await client.aclose()


def assert_worded_for(name: str, text: str) -> None:
    assert "the lead could not be read" not in text
    assert KEY not in text
    if name in NOT_ABOUT_A_LEAD:
        assert "lead" not in text.lower(), (name, text)


UNREADABLE = [
    (b"[1, 2]", "is a JSON list, not an object"),
    (b'"text"', "is a JSON str, not an object"),
    (b"", "is empty"),
    (b"<html>oops</html>", "is not JSON"),
]


@pytest.mark.parametrize(("content", "fact"), UNREADABLE, ids=["list", "string", "empty", "html"])
@pytest.mark.parametrize(("name", "call", "_next"), [r for r in READS if r[0] != "list_workflows"],
                         ids=[r[0] for r in READS if r[0] != "list_workflows"])
async def test_an_unreadable_answer_to_a_read_says_so_without_naming_a_lead(
    name: str, call: Call, _next: str, content: bytes, fact: str
) -> None:
    text = await outcome(call, answering(200, content))
    assert isinstance(text, str), text
    assert text.startswith("Nexor answered HTTP 200 but its answer ")
    assert fact in text and ", so it could not be read" in text
    assert_worded_for(name, text)


@pytest.mark.parametrize(
    ("status", "content", "facts"),
    [(409, b'{"error": "Conflict"}', ["HTTP 409", "Conflict"]),
     (200, b'{"success": false, "error": "Locked"}', ["success: false", "Locked"])],
    ids=["409", "success-false"],
)
@pytest.mark.parametrize(("name", "call", "next_step"), EVERY, ids=[r[0] for r in EVERY])
async def test_a_refusal_names_this_calls_own_next_step(
    name: str, call: Call, next_step: str, status: int, content: bytes, facts: list[str]
) -> None:
    text = await outcome(call, answering(status, content))
    assert isinstance(text, str), text
    for fact in [*facts, "Nothing was changed", next_step]:
        assert fact in text, (fact, text)
    assert "Read the lead with get_lead to see its current state" not in text  # the old, lead-only wording
    assert_worded_for(name, text)


@pytest.mark.parametrize(
    ("status", "content"),
    [(400, b'{"error": "Validation error"}'), (403, b"{}"), (404, b'{"error": "Not found"}'), (418, b"{}"),
     (500, b'{"error": "boom"}'), (429, b"{}")],
)
@pytest.mark.parametrize(("name", "call", "_next"), READS, ids=[r[0] for r in READS])
async def test_no_failure_of_a_call_about_no_lead_mentions_one(
    name: str, call: Call, _next: str, status: int, content: bytes
) -> None:
    text = await outcome(call, answering(status, content))
    assert isinstance(text, str) and f"HTTP {status}" in text
    assert_worded_for(name, text)


def test_the_non_lead_check_can_fail() -> None:
    with pytest.raises(AssertionError):
        assert_worded_for("list_tags", "Nexor answered HTTP 200 but its answer is empty; the lead could not be read.")


@pytest.mark.parametrize(
    "answer",
    [[{"id": WORKFLOW, "name": "SDR inbound"}], [], "just text", 42, None, True,
     {"success": True, "workflows": [{"id": WORKFLOW}]}, {"data": [{"id": WORKFLOW}]},
     {"success": True, "items": [1], "total": 1}],
    ids=["bare-list", "empty-list", "string", "number", "null", "boolean", "workflows-key", "data-key", "other-object"],
)
async def test_list_workflows_passes_any_json_through_under_workflows(answer: Any) -> None:
    result = await outcome(sends(endpoints.list_workflows()), answering(200, json.dumps(answer).encode()))
    if isinstance(answer, dict):
        expected = answer.get("workflows", answer.get("data", {k: v for k, v in answer.items() if k != "success"}))
    else:
        expected = answer
    assert result == {"workflows": expected}


async def test_only_list_workflows_takes_a_bare_list() -> None:
    """The other list endpoints are documented as objects: a bare list there is still unreadable."""
    for call in (sends(endpoints.list_tags(None)), sends(endpoints.list_templates(None, None))):
        text = await outcome(call, answering(200, b"[]"))
        assert isinstance(text, str) and "is a JSON list, not an object" in text
