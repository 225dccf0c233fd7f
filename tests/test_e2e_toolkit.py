"""End to end, every tool beyond get_lead/update_lead: the SDK client drives `python -m nexor_mcp`
over stdio, the server talks HTTP to the sandbox on loopback. For each tool: the exact request the
API received (method, path, query string, JSON body), the structured result, input refused with
nothing sent, an API error turned into an actionable error result, and the retry policy (idempotent
calls are retried after a 503, anything that could happen twice is not)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp.types import CallToolResult

from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from nexor_mcp.sandbox.seed import (
    ANA_RUN,
    ENTERPRISE_TAG,
    FIRST_CONTACT_TEMPLATE,
    HOT_TAG,
    REACTIVATION,
    REMINDER_TEMPLATE,
    SDR_INBOUND,
    VIP_TAG,
)
from tests.conftest import ANA, JOHN, MARIA, MISSING_LEAD, McpProcess, server_env, spawn_server, text_of

pytestmark = pytest.mark.anyio

ALL_GROUPS = "read,write,automation,outreach"
READ_TOOLS = ["get_lead", "get_lead_history", "get_lead_meetings", "get_automation_status", "list_tags",
              "list_templates", "list_workflows"]
WRITE_TOOLS = ["update_lead", "create_lead", "add_lead_tags", "set_lead_tags", "stop_automation", "record_meeting"]
CALL_SECONDS = 20  # a bound on any one call; the sandbox answers in milliseconds


@pytest.fixture(scope="module")
async def mcp(sandbox_server: SandboxServer) -> AsyncIterator[McpProcess]:
    """One server with every group enabled, for the whole module; confirmation is off here (this
    module tests what each tool sends; tests/test_e2e_safety.py tests the confirmation)."""
    env = server_env(sandbox_server.base_url, NEXOR_TOOLS=ALL_GROUPS, NEXOR_CONFIRM="never")
    async with spawn_server(env) as process:
        yield process


Sent = tuple[str, str, str, Any]


def sent(api: SandboxApi) -> list[Sent]:
    """(method, path, raw query string, JSON body) of every request the sandbox received."""
    return [(r.method, r.path.removeprefix("/api/public"), r.query, r.json) for r in api.requests]


async def call(mcp: McpProcess, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(CALL_SECONDS):
        return await mcp.call(tool, arguments)


async def ok(mcp: McpProcess, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A call that must work; its structured result (which the text carries as compact JSON)."""
    result = await call(mcp, tool, arguments)
    assert not result.is_error, text_of(result)
    structured = result.structured_content
    assert isinstance(structured, dict)
    assert "success" not in structured
    if list(structured) != ["lead"]:
        assert json.loads(text_of(result)) == structured
    return structured


async def failed(mcp: McpProcess, tool: str, arguments: dict[str, Any]) -> str:
    result = await call(mcp, tool, arguments)
    assert result.is_error
    assert result.structured_content is None
    return text_of(result)


async def refused(mcp: McpProcess, api: SandboxApi, tool: str, arguments: dict[str, Any], facts: list[str]) -> None:
    """Bad input: an error naming what is wrong, and not a single request."""
    text = await failed(mcp, tool, arguments)
    assert "nothing was sent" in text, text
    for fact in facts:
        assert fact in text, (fact, text)
    assert api.requests == []


# --- get_lead_history -----------------------------------------------------------------------------


async def test_history_first_page_with_the_default_query(mcp: McpProcess, api: SandboxApi) -> None:
    result = await ok(mcp, "get_lead_history", {"lead_id": ANA})
    assert sent(api) == [("GET", f"/leads/{ANA}/history", "limit=50&offset=0", None)]
    assert result["lead"]["id"] == ANA and result["next_offset"] is None
    history = result["history"]
    assert len(history) == 9
    assert [item["type"] for item in history[:4]] == ["activity", "message", "call_missed", "call"]
    assert history[-1]["direction"] == "inbound" and history[-1]["content"] == "Perfecto, gracias 🙌"


async def test_history_channels_and_paging(mcp: McpProcess, api: SandboxApi) -> None:
    arguments = {"lead_id": ANA, "channels": ["whatsapp", "email"], "limit": 2, "offset": 1}
    result = await ok(mcp, "get_lead_history", arguments)
    assert sent(api) == [("GET", f"/leads/{ANA}/history", "limit=2&offset=1&channel=whatsapp%2Cemail", None)]
    assert api.requests[0].params == {"limit": "2", "offset": "1", "channel": "whatsapp,email"}
    assert [item["channel"] for item in result["history"]] == ["email", "whatsapp"]
    assert result["next_offset"] == 3
    last = await ok(mcp, "get_lead_history", {**arguments, "offset": 3, "limit": 5})
    assert len(last["history"]) == 2 and last["next_offset"] is None


@pytest.mark.parametrize(
    ("arguments", "facts"),
    [({"lead_id": ANA, "limit": 0}, ["limit"]), ({"lead_id": ANA, "limit": 201}, ["limit"]),
     ({"lead_id": ANA, "offset": -1}, ["offset"]), ({"lead_id": ANA, "channels": ["sms"]}, ["channels"]),
     ({"lead_id": ANA, "channels": []}, ["channels"]), ({"lead_id": ANA, "channel": "call"}, ["did you mean channels"]),
     ({"lead_id": "ana"}, ["lead_id", "UUID"])],
)
async def test_history_bad_arguments_send_nothing(
    mcp: McpProcess, api: SandboxApi, arguments: dict[str, Any], facts: list[str]
) -> None:
    await refused(mcp, api, "get_lead_history", arguments, facts)


async def test_history_of_a_missing_lead_is_a_clear_404(mcp: McpProcess, api: SandboxApi) -> None:
    text = await failed(mcp, "get_lead_history", {"lead_id": MISSING_LEAD})
    assert f"No lead with id {MISSING_LEAD}" in text and "HTTP 404" in text
    assert len(api.requests) == 1


# --- get_lead_meetings ----------------------------------------------------------------------------


async def test_meetings_with_and_without_a_status_filter(mcp: McpProcess, api: SandboxApi) -> None:
    everything = await ok(mcp, "get_lead_meetings", {"lead_id": ANA})
    assert [m["title"] for m in everything["meetings"]] == ["Product demo", "Discovery call"]
    confirmed = await ok(mcp, "get_lead_meetings", {"lead_id": ANA, "statuses": ["confirmed", "no_show"]})
    assert [m["title"] for m in confirmed["meetings"]] == ["Product demo"]
    assert sent(api) == [
        ("GET", f"/leads/{ANA}/meetings", "", None),
        ("GET", f"/leads/{ANA}/meetings", "status=confirmed%2Cno_show", None),
    ]


@pytest.mark.parametrize(
    ("arguments", "facts"),
    [({"lead_id": ANA, "statuses": ["done"]}, ["statuses"]), ({"lead_id": ANA, "status": "completed"},
                                                             ["did you mean statuses"]), ({}, ["lead_id"])],
)
async def test_meetings_bad_arguments_send_nothing(
    mcp: McpProcess, api: SandboxApi, arguments: dict[str, Any], facts: list[str]
) -> None:
    await refused(mcp, api, "get_lead_meetings", arguments, facts)


# --- get_automation_status, stop_automation, resume_automation ------------------------------------


async def test_takeover_round_trip(mcp: McpProcess, api: SandboxApi) -> None:
    assert await ok(mcp, "get_automation_status", {"lead_id": ANA}) == {"paused": False}
    stopped = await ok(mcp, "stop_automation", {"lead_id": ANA, "workflow_id": SDR_INBOUND})
    assert stopped == {"workflow_run_id": ANA_RUN, "cadence_paused": True, "tasks_cancelled": 2,
                       "human_takeover": True, "workflow_id": SDR_INBOUND, "message": stopped["message"]}
    again = await ok(mcp, "stop_automation", {"lead_id": ANA, "workflow_id": SDR_INBOUND})
    assert again == {"already_stopped": True, "workflow_run_id": ANA_RUN, "human_takeover": True,
                     "workflow_id": SDR_INBOUND, "message": again["message"]}
    assert await ok(mcp, "get_automation_status", {"lead_id": ANA, "workflow_id": SDR_INBOUND}) == {"paused": True}
    lead = (await ok(mcp, "get_lead", {"lead_id": ANA}))["lead"]
    assert (lead["active_workflow_run"]["human_takeover"], lead["active_workflow_run"]["cadence_state"]) == (
        True, "paused")
    resumed = await ok(mcp, "resume_automation", {"lead_id": ANA, "workflow_id": SDR_INBOUND})
    assert resumed == {"workflow_run_id": ANA_RUN, "cadence_resumed": False, "human_takeover": False,
                       "workflow_id": SDR_INBOUND, "message": resumed["message"]}
    restarted = await ok(mcp, "resume_automation", {"lead_id": ANA, "workflow_id": SDR_INBOUND,
                                                    "resume_cadence": True})
    assert restarted == {"workflow_run_id": ANA_RUN, "cadence_resumed": True, "human_takeover": False,
                         "workflow_id": SDR_INBOUND, "message": restarted["message"]}
    assert sent(api) == [
        ("GET", f"/leads/{ANA}/is_paused", "", None),
        ("POST", f"/leads/{ANA}/automation/stop", "", {"workflow_id": SDR_INBOUND}),
        ("POST", f"/leads/{ANA}/automation/stop", "", {"workflow_id": SDR_INBOUND}),
        ("GET", f"/leads/{ANA}/is_paused", f"workflow_id={SDR_INBOUND}", None),
        ("GET", f"/leads/{ANA}", "", None),
        ("POST", f"/leads/{ANA}/automation/resume", "", {"workflow_id": SDR_INBOUND, "resume_cadence": False}),
        ("POST", f"/leads/{ANA}/automation/resume", "", {"workflow_id": SDR_INBOUND, "resume_cadence": True}),
    ]


@pytest.mark.parametrize("lead", [JOHN, MARIA])
async def test_stop_without_an_active_run_says_how_to_find_one(mcp: McpProcess, api: SandboxApi, lead: str) -> None:
    workflow = SDR_INBOUND if lead == JOHN else REACTIVATION  # María's run is in the terminal status lost
    text = await failed(mcp, "stop_automation", {"lead_id": lead, "workflow_id": workflow})
    assert "HTTP 404" in text
    assert "No active workflow run found for this lead and workflow" in text
    assert "get_lead" in text and "workflow_id" in text
    assert sent(api) == [("POST", f"/leads/{lead}/automation/stop", "", {"workflow_id": workflow})]


@pytest.mark.parametrize(
    ("tool", "arguments", "facts"),
    [("stop_automation", {"lead_id": ANA, "workflowId": SDR_INBOUND}, ["did you mean workflow_id"]),
     ("resume_automation", {"lead_id": ANA, "workflow_id": SDR_INBOUND, "resume_cadence": "yes"},
      ["resume_cadence"]),
     ("resume_automation", {"lead_id": ANA, "workflow_id": "sdr"}, ["workflow_id", "UUID"]),
     ("get_automation_status", {"lead_id": ANA, "workflow_id": 7}, ["workflow_id"])],
)
async def test_automation_bad_arguments_send_nothing(
    mcp: McpProcess, api: SandboxApi, tool: str, arguments: dict[str, Any], facts: list[str]
) -> None:
    await refused(mcp, api, tool, arguments, facts)


# --- list_tags, add_lead_tags, set_lead_tags ------------------------------------------------------


async def test_list_tags_all_and_searched(mcp: McpProcess, api: SandboxApi) -> None:
    every = await ok(mcp, "list_tags", {})
    assert [tag["name"] for tag in every["tags"]] == ["VIP", "Hot lead", "Needs follow-up", "Enterprise"]
    assert set(every["tags"][0]) == {"id", "name", "slug", "description", "created_at", "updated_at"}
    searched = await ok(mcp, "list_tags", {"search": "hot lead"})
    assert [tag["id"] for tag in searched["tags"]] == [HOT_TAG]
    assert sent(api) == [("GET", "/tags", "", None), ("GET", "/tags", "search=hot+lead", None)]


async def test_add_lead_tags_sends_each_id_once_and_keeps_the_others(mcp: McpProcess, api: SandboxApi) -> None:
    result = await ok(mcp, "add_lead_tags", {"lead_id": ANA, "tag_ids": [HOT_TAG, VIP_TAG, HOT_TAG]})
    assert sent(api) == [("POST", f"/leads/{ANA}/tags", "", {"tagIds": [HOT_TAG, VIP_TAG]})]
    expected = [{"id": VIP_TAG, "name": "VIP", "slug": "vip"}, {"id": HOT_TAG, "name": "Hot lead", "slug": "hot-lead"}]
    assert result == {"tags": expected}
    assert (await ok(mcp, "get_lead", {"lead_id": ANA}))["lead"]["tags"] == expected


async def test_add_lead_tags_with_an_unknown_tag_names_it(mcp: McpProcess, api: SandboxApi) -> None:
    text = await failed(mcp, "add_lead_tags", {"lead_id": ANA, "tag_ids": [MISSING_LEAD]})
    assert "HTTP 400" in text and f"Tag(s) not found or not in your account: {MISSING_LEAD}" in text
    assert len(api.requests) == 1


async def test_set_lead_tags_replaces_the_whole_set(mcp: McpProcess, api: SandboxApi) -> None:
    result = await ok(mcp, "set_lead_tags", {"lead_id": ANA, "tags": ["Enterprise", "Partner agency", "Enterprise"]})
    assert sent(api) == [("PUT", "/leads/tags", "", {"lead_id": ANA, "tags": ["Enterprise", "Partner agency"]})]
    partner = result["tags"][1]
    assert (partner["name"], partner["slug"]) == ("Partner agency", "partner-agency")
    assert result == {
        "tags": [{"id": ENTERPRISE_TAG, "name": "Enterprise", "slug": "enterprise"}, partner],
        "added": [ENTERPRISE_TAG, partner["id"]],
        "removed": [VIP_TAG],
    }
    assert (await ok(mcp, "get_lead", {"lead_id": ANA}))["lead"]["tags"] == result["tags"]
    cleared = await ok(mcp, "set_lead_tags", {"lead_id": ANA, "tags": []})
    assert cleared == {"tags": [], "added": [], "removed": [ENTERPRISE_TAG, partner["id"]]}


@pytest.mark.parametrize(
    ("tool", "arguments", "facts"),
    [("add_lead_tags", {"lead_id": ANA, "tag_ids": []}, ["tag_ids"]),
     ("add_lead_tags", {"lead_id": ANA, "tag_ids": ["VIP"]}, ["tag_ids", "UUID"]),
     ("add_lead_tags", {"lead_id": ANA, "tags": [VIP_TAG]}, ["did you mean tag_ids"]),
     ("set_lead_tags", {"lead_id": ANA, "tag_ids": [VIP_TAG]}, ["add_lead_tags takes ids"]),
     ("set_lead_tags", {"lead_id": ANA}, ["tags", "required"]),
     ("list_tags", {"search": 5}, ["search"])],
)
async def test_tag_bad_arguments_send_nothing(
    mcp: McpProcess, api: SandboxApi, tool: str, arguments: dict[str, Any], facts: list[str]
) -> None:
    await refused(mcp, api, tool, arguments, facts)


# --- list_templates, list_workflows ---------------------------------------------------------------


async def test_list_templates_filtered(mcp: McpProcess, api: SandboxApi) -> None:
    every = await ok(mcp, "list_templates", {})
    assert len(every["templates"]) == 3
    utility = await ok(mcp, "list_templates", {"status": "APPROVED", "category": "UTILITY"})
    assert [t["id"] for t in utility["templates"]] == [REMINDER_TEMPLATE]
    assert set(utility["templates"][0]) == {"id", "name", "language", "category", "status", "components", "variables"}
    assert sent(api) == [
        ("GET", "/templates", "", None), ("GET", "/templates", "status=APPROVED&category=UTILITY", None)
    ]


async def test_list_workflows_shows_ids_and_status_keys(mcp: McpProcess, api: SandboxApi) -> None:
    result = await ok(mcp, "list_workflows", {})
    assert sent(api) == [("GET", "/workflows", "", None)]
    workflows = result["workflows"]
    assert [(w["id"], w["name"], w["paused"]) for w in workflows] == [
        (SDR_INBOUND, "SDR inbound", False), (REACTIVATION, "Reactivation outbound", False)]
    assert [s["key"] for s in workflows[0]["statuses"]] == ["new", "contacted", "engaged", "qualified", "lost",
                                                            "converted"]


@pytest.mark.parametrize(
    ("tool", "arguments", "facts"),
    [("list_templates", {"status": "approved"}, ["status"]), ("list_templates", {"category": "SALES"}, ["category"]),
     ("list_workflows", {"workflow_id": SDR_INBOUND}, ["workflow_id"])],
)
async def test_list_bad_arguments_send_nothing(
    mcp: McpProcess, api: SandboxApi, tool: str, arguments: dict[str, Any], facts: list[str]
) -> None:
    await refused(mcp, api, tool, arguments, facts)


# --- create_lead ----------------------------------------------------------------------------------


async def test_create_lead_sends_exactly_the_lead(mcp: McpProcess, api: SandboxApi) -> None:
    lead = {"first_name": "Tony", "email": "tony@example.com", "phone": "+56911112222",
            "metadata": {"company": "Stark SpA", "budget": 9000}}
    result = await ok(mcp, "create_lead", lead)
    assert sent(api) == [("POST", "/leads", "", lead)]
    assert set(result) == {"lead", "workflow_run"} and result["workflow_run"] is None
    created = result["lead"]
    assert (created["first_name"], created["email"], created["metadata"]) == ("Tony", "tony@example.com",
                                                                             {"company": "Stark SpA", "budget": 9000})
    assert api.leads[created["id"]]["phone"] == "+56911112222"


@pytest.mark.parametrize(
    ("arguments", "facts"),
    [({"first_name": "Tony", "workflow_id": SDR_INBOUND}, ["workflow_id", "assign_workflow"]),
     ({"first_name": "Tony", "company": ""}, ["company", "cannot be empty"]), ({"email": "t@example.com"},
                                                                          ["first_name", "required"])],
)
async def test_create_lead_bad_arguments_send_nothing(
    mcp: McpProcess, api: SandboxApi, arguments: dict[str, Any], facts: list[str]
) -> None:
    await refused(mcp, api, "create_lead", arguments, facts)


# --- record_meeting -------------------------------------------------------------------------------

MEETING = {"lead_id": JOHN, "title": "Intro call", "starts_at": "2026-12-01T10:00:00",
           "timezone": "America/Santiago", "duration_minutes": 30}


async def test_record_meeting_sends_the_meeting_and_it_is_listed(mcp: McpProcess, api: SandboxApi) -> None:
    result = await ok(mcp, "record_meeting", MEETING)
    assert sent(api) == [("POST", "/meetings", "", MEETING)]
    meeting = result["meeting"]
    assert (meeting["title"], meeting["starts_at"], meeting["ends_at"], meeting["status"]) == (
        "Intro call", "2026-12-01T13:00:00.000Z", "2026-12-01T13:30:00.000Z", "scheduled")
    assert (await ok(mcp, "get_lead_meetings", {"lead_id": JOHN}))["meetings"] == [meeting]


async def test_record_meeting_with_external_ids_updates_on_repeat(mcp: McpProcess, api: SandboxApi) -> None:
    external = {**MEETING, "external_calendar_provider": "google", "external_event_id": "evt-42"}
    first = await ok(mcp, "record_meeting", external)
    second = await ok(mcp, "record_meeting", {**external, "title": "Intro call (moved)"})
    assert second["meeting"]["id"] == first["meeting"]["id"]
    listed = await ok(mcp, "get_lead_meetings", {"lead_id": JOHN})
    assert [m["title"] for m in listed["meetings"]] == ["Intro call (moved)"]
    assert [body for _, _, _, body in sent(api)[:2]] == [external, {**external, "title": "Intro call (moved)"}]


async def test_record_meeting_for_a_missing_lead_says_to_create_it(mcp: McpProcess, api: SandboxApi) -> None:
    text = await failed(mcp, "record_meeting", {**MEETING, "lead_id": MISSING_LEAD})
    assert "HTTP 404" in text and f"No lead with id {MISSING_LEAD}" in text and "create the lead first" in text
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("arguments", "facts"),
    [({**MEETING, "ends_at": "2026-12-01T11:00:00Z"}, ["exactly one of ends_at and duration_minutes"]),
     ({key: v for key, v in MEETING.items() if key != "duration_minutes"}, ["exactly one of"]),
     ({**MEETING, "lead_email": "john@example.com"}, ["lead_email", "pass lead_id"]),
     ({**MEETING, "status": "completed"}, ["status"]), ({**MEETING, "starts_at": "next monday"}, ["starts_at"])],
)
async def test_record_meeting_bad_arguments_send_nothing(
    mcp: McpProcess, api: SandboxApi, arguments: dict[str, Any], facts: list[str]
) -> None:
    await refused(mcp, api, "record_meeting", arguments, facts)


# --- assign_workflow, set_lead_status -------------------------------------------------------------


async def test_assign_workflow_enrolls_and_get_lead_shows_the_new_run(mcp: McpProcess, api: SandboxApi) -> None:
    result = await ok(mcp, "assign_workflow", {"lead_id": JOHN, "workflow_id": REACTIVATION, "reason": "Cold lead"})
    assert sent(api) == [("POST", f"/leads/{JOHN}/assign-workflow", "",
                          {"workflowId": REACTIVATION, "reason": "Cold lead"})]
    assert result == {"workflowRunId": result["workflowRunId"], "workflowId": REACTIVATION,
                      "workflowName": "Reactivation outbound", "movementType": "enrollment", "paused": False}
    run = (await ok(mcp, "get_lead", {"lead_id": JOHN}))["lead"]["active_workflow_run"]
    assert (run["id"], run["workflow_id"], run["current_status"]["key"]) == (result["workflowRunId"], REACTIVATION,
                                                                             "new")
    moved = await ok(mcp, "assign_workflow", {"lead_id": ANA, "workflow_id": REACTIVATION})
    assert moved["movementType"] == "reassignment"
    assert api.requests[-1].json == {"workflowId": REACTIVATION}


async def test_assign_an_unknown_workflow_is_refused_by_nexor(mcp: McpProcess, api: SandboxApi) -> None:
    text = await failed(mcp, "assign_workflow", {"lead_id": ANA, "workflow_id": MISSING_LEAD})
    assert "HTTP 400" in text and "not found" in text and "Nothing was changed" in text
    assert len(api.requests) == 1


async def test_set_lead_status_changes_then_is_a_no_op(mcp: McpProcess, api: SandboxApi) -> None:
    arguments = {"lead_id": ANA, "status_key": "qualified", "reason": "Budget confirmed"}
    result = await ok(mcp, "set_lead_status", arguments)
    assert result == {"changed": True, "previous_status": "contacted", "new_status": "qualified",
                      "workflow_run": {"id": ANA_RUN, "workflow_id": SDR_INBOUND}}
    again = await ok(mcp, "set_lead_status", {"lead_id": ANA, "status_key": "qualified", "workflow_id": SDR_INBOUND})
    assert again["changed"] is False
    assert sent(api) == [
        ("POST", f"/leads/{ANA}/status", "", {"status_key": "qualified", "reason": "Budget confirmed"}),
        ("POST", f"/leads/{ANA}/status", "", {"status_key": "qualified", "workflow_id": SDR_INBOUND}),
    ]
    lead = (await ok(mcp, "get_lead", {"lead_id": ANA}))["lead"]
    assert lead["active_workflow_run"]["current_status"]["key"] == "qualified"


async def test_set_an_unknown_status_lists_the_valid_keys(mcp: McpProcess, api: SandboxApi) -> None:
    text = await failed(mcp, "set_lead_status", {"lead_id": ANA, "status_key": "won"})
    assert "HTTP 400" in text and "valid keys: new, contacted, engaged, qualified, lost, converted" in text
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("tool", "arguments", "facts"),
    [("assign_workflow", {"lead_id": ANA, "workflow_id": "SDR inbound"}, ["workflow_id", "UUID"]),
     ("assign_workflow", {"lead_id": ANA}, ["workflow_id", "required"]),
     ("set_lead_status", {"lead_id": ANA, "status": "qualified"}, ["did you mean status_key"]),
     ("set_lead_status", {"lead_id": ANA, "status_key": ""}, ["status_key"])],
)
async def test_workflow_bad_arguments_send_nothing(
    mcp: McpProcess, api: SandboxApi, tool: str, arguments: dict[str, Any], facts: list[str]
) -> None:
    await refused(mcp, api, tool, arguments, facts)


# --- send_message ---------------------------------------------------------------------------------


async def test_send_whatsapp_text_inside_the_window(mcp: McpProcess, api: SandboxApi) -> None:
    message = {"lead_id": ANA, "workflow_id": SDR_INBOUND, "channel": "whatsapp", "content": "¡Nos vemos el jueves!"}
    result = await ok(mcp, "send_message", message)
    assert sent(api) == [("POST", "/messages", "", message)]
    assert (result["channel"], result["type"], result["call_id"]) == ("whatsapp", "text", None)
    assert result["provider_message_id"].startswith("wamid.")
    last = (await ok(mcp, "get_lead_history", {"lead_id": ANA, "offset": 9}))["history"]
    assert [(m["id"], m["direction"], m["content"]) for m in last] == [
        (result["message_id"], "outbound", "¡Nos vemos el jueves!")]


async def test_send_a_template_and_start_a_call(mcp: McpProcess, api: SandboxApi) -> None:
    template = {"lead_id": JOHN, "workflow_id": SDR_INBOUND, "channel": "whatsapp",
                "template_id": FIRST_CONTACT_TEMPLATE,
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "John"}]}]}
    assert (await ok(mcp, "send_message", template))["type"] == "template"
    phone = await ok(mcp, "send_message", {"lead_id": JOHN, "workflow_id": SDR_INBOUND, "channel": "call"})
    assert (phone["call_status"], phone["message_id"]) == ("registered", None)
    assert [body for _, _, _, body in sent(api)] == [
        template, {"lead_id": JOHN, "workflow_id": SDR_INBOUND, "channel": "call"}]


async def test_free_text_outside_the_24_hour_window_says_use_a_template(mcp: McpProcess, api: SandboxApi) -> None:
    text = await failed(mcp, "send_message", {"lead_id": JOHN, "workflow_id": SDR_INBOUND, "channel": "whatsapp",
                                              "content": "Hi John"})
    assert "HTTP 400" in text and "24-hour window" in text and "template" in text
    assert len(api.requests) == 1


async def test_email_to_a_lead_without_an_email_is_refused_by_nexor(mcp: McpProcess, api: SandboxApi) -> None:
    text = await failed(mcp, "send_message", {"lead_id": JOHN, "workflow_id": SDR_INBOUND, "channel": "email",
                                              "content": "Hi", "subject": "Hello"})
    assert "HTTP 400" in text and "no email address" in text
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("arguments", "facts"),
    [({"channel": "whatsapp"}, ["content or template_id"]),
     ({"channel": "email", "subject": "Hi"}, ["email needs content"]),
     ({"channel": "call", "content": "Hi"}, ["a call takes no content"]),
     ({"channel": "email", "content": "Hi", "template_id": FIRST_CONTACT_TEMPLATE}, ["whatsapp only"]),
     ({"channel": "email", "html": "<p>Hi</p>"}, ["html", "plain content"]),
     ({"channel": "sms", "content": "Hi"}, ["channel"])],
)
async def test_send_message_bad_arguments_send_nothing(
    mcp: McpProcess, api: SandboxApi, arguments: dict[str, Any], facts: list[str]
) -> None:
    await refused(mcp, api, "send_message", {"lead_id": ANA, "workflow_id": SDR_INBOUND, **arguments}, facts)


# --- retries: a 503 is retried only when repeating cannot do a thing twice ------------------------

RETRIED: list[tuple[str, dict[str, Any]]] = [
    ("get_lead_history", {"lead_id": ANA}),
    ("get_lead_meetings", {"lead_id": ANA}),
    ("get_automation_status", {"lead_id": ANA}),
    ("list_tags", {}),
    ("list_templates", {}),
    ("list_workflows", {}),
    ("stop_automation", {"lead_id": ANA, "workflow_id": SDR_INBOUND}),
    ("resume_automation", {"lead_id": ANA, "workflow_id": SDR_INBOUND}),
    ("add_lead_tags", {"lead_id": ANA, "tag_ids": [HOT_TAG]}),
    ("set_lead_tags", {"lead_id": ANA, "tags": ["VIP"]}),
    ("set_lead_status", {"lead_id": ANA, "status_key": "engaged"}),
    ("record_meeting", {**MEETING, "external_calendar_provider": "google", "external_event_id": "evt-7"}),
]
NOT_RETRIED: list[tuple[str, dict[str, Any]]] = [
    ("create_lead", {"first_name": "Tony"}),
    ("send_message", {"lead_id": ANA, "workflow_id": SDR_INBOUND, "channel": "whatsapp", "content": "Hola"}),
    ("assign_workflow", {"lead_id": ANA, "workflow_id": REACTIVATION}),
    ("record_meeting", MEETING),
]
UNAVAILABLE = Fault(status=503, body={"error": "Service unavailable"}, headers={"Retry-After": "0"})


@pytest.mark.parametrize(("tool", "arguments"), RETRIED, ids=[f"{t}-{n}" for n, (t, _) in enumerate(RETRIED)])
async def test_idempotent_tools_are_retried_after_a_503(
    mcp: McpProcess, api: SandboxApi, tool: str, arguments: dict[str, Any]
) -> None:
    api.inject(UNAVAILABLE)
    await ok(mcp, tool, arguments)
    requests = sent(api)
    assert len(requests) == 2
    assert requests[0] == requests[1]


@pytest.mark.parametrize(("tool", "arguments"), NOT_RETRIED, ids=[f"{t}-{n}" for n, (t, _) in enumerate(NOT_RETRIED)])
async def test_tools_that_could_act_twice_are_not_retried(
    mcp: McpProcess, api: SandboxApi, tool: str, arguments: dict[str, Any]
) -> None:
    api.inject(UNAVAILABLE)
    text = await failed(mcp, tool, arguments)
    assert len(api.requests) == 1
    assert "HTTP 503" in text
    assert "may or may not have happened" in text and "Do not repeat it blindly" in text


# --- which tools a server offers ------------------------------------------------------------------


async def test_default_server_offers_read_and_write_only(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    with anyio.fail_after(CALL_SECONDS):
        async with spawn_server(server_env(sandbox_server.base_url)) as process:
            names = [tool.name for tool in (await process.session.list_tools()).tools]
            assert names == READ_TOOLS + WRITE_TOOLS
            text = await failed(process, "resume_automation", {"lead_id": ANA, "workflow_id": SDR_INBOUND})
    assert "resume_automation is not enabled on this server, so nothing was done" in text
    assert "'automation'" in text and "NEXOR_TOOLS" in text
    assert api.requests == []


async def test_read_only_server_offers_the_read_tools_and_refuses_writes(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    env = server_env(sandbox_server.base_url, NEXOR_READ_ONLY="1", NEXOR_TOOLS=ALL_GROUPS)
    with anyio.fail_after(CALL_SECONDS):
        async with spawn_server(env) as process:
            names = [tool.name for tool in (await process.session.list_tools()).tools]
            assert names == READ_TOOLS
            text = await failed(process, "update_lead", {"lead_id": ANA, "title": "CTO"})
    assert "update_lead is not enabled on this server" in text and "read-only" in text
    assert api.requests == []


def test_an_unknown_tool_name_stops_the_server_at_start(sandbox_server: SandboxServer) -> None:
    env = server_env(sandbox_server.base_url, NEXOR_TOOLS="read,send_whatsapp")
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60,
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stdout == ""
    assert "unknown tool or group 'send_whatsapp'" in completed.stderr
    assert "groups: automation, outreach, read, write" in completed.stderr
    every = [*READ_TOOLS, *WRITE_TOOLS, "resume_automation", "assign_workflow", "set_lead_status", "send_message"]
    assert completed.stderr.rstrip().endswith("tools: " + ", ".join(every))


# --- the body limit, under every write ---------------------------------------------------------------

BIG_COMPONENT = {"type": "body", "parameters": [{"type": "text", "text": "x" * 60_000}]}


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("send_message", {"lead_id": ANA, "workflow_id": SDR_INBOUND, "channel": "whatsapp",
                          "template_id": FIRST_CONTACT_TEMPLATE, "components": [BIG_COMPONENT] * 5}),
        ("record_meeting", {"lead_id": ANA, "title": "Demo", "starts_at": "2026-12-01T15:00:00Z",
                            "duration_minutes": 30,
                            "additional_attendees": [{"name": f"Guest {n}", "email": f"guest{n}@example.com"}
                                                     for n in range(6_000)]}),
    ],
    ids=["template components", "attendees"],
)
async def test_a_body_over_256_kib_is_refused_by_any_write_tool(
    mcp: McpProcess, api: SandboxApi, tool: str, arguments: dict[str, Any]
) -> None:
    """Tools check their usual big values themselves; these are the shapes no tool-level limit covers."""
    await refused(mcp, api, tool, arguments, ["over the 256 KiB limit", "Send less at once"])
