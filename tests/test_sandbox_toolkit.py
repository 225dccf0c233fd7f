"""The sandbox's endpoints beyond the lead itself, called straight into the ASGI app: Nexor's
documented semantics (nexor-api.md §2.4–2.9), the seeded account, and strictness (400) where Nexor
is undocumented. State changes show up in GET /leads/{id}, as they do in Nexor."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nexor_mcp.sandbox import DEMO_LEAD_IDS, SANDBOX_API_KEY, SandboxApi
from nexor_mcp.sandbox.seed import (
    ANA_RUN,
    FIRST_CONTACT_TEMPLATE,
    HOT_TAG,
    PROMO_TEMPLATE,
    REACTIVATION,
    SDR_INBOUND,
    VIP_TAG,
)

pytestmark = pytest.mark.anyio

ANA, JOHN, MARIA = DEMO_LEAD_IDS
MISSING = "00000000-0000-4000-8000-000000000000"
LEAD_404 = {"error": "Not found", "message": "Lead not found or does not belong to your account"}


async def call(api: SandboxApi, method: str, path: str, body: Any = None, query: str = "") -> tuple[int, Any]:
    """One request straight into the ASGI app: its status and JSON body."""
    raw = b"" if body is None else json.dumps(body).encode()
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "method": method, "path": "/api/public/" + path, "query_string": query.encode(),
        "client": ("127.0.0.1", 50000), "headers": [(b"x-api-key", SANDBOX_API_KEY.encode())],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await api(scope, receive, send)
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


async def run_of(api: SandboxApi, lead_id: str) -> Any:
    status, body = await call(api, "GET", f"leads/{lead_id}")
    assert status == 200
    return body["lead"]["active_workflow_run"]


# --- history ----------------------------------------------------------------------------------------


async def test_history_is_chronological_with_every_documented_item_type() -> None:
    api = SandboxApi()
    status, body = await call(api, "GET", f"leads/{ANA}/history")
    assert status == 200
    assert body["lead"] == {key: api.leads[ANA][key] for key in
                            ("id", "first_name", "last_name", "phone", "email", "source", "created_at")}
    history = body["history"]
    stamps = [item["timestamp"] for item in history]
    assert stamps == sorted(stamps) and len(history) == 9
    assert {item["type"] for item in history} == {"activity", "message", "call", "call_missed"}
    assert {(i["channel"], i["direction"]) for i in history if i["type"] == "message"} == {
        ("whatsapp", "inbound"), ("whatsapp", "outbound"), ("email", "outbound")}
    call_item = next(item for item in history if item["type"] == "call")
    assert call_item["call_status"] == "ended" and "5k USD" in call_item["summary"]


@pytest.mark.parametrize(
    ("query", "count", "channels"),
    [("channel=call", 2, {"call"}), ("channel=whatsapp,email", 5, {"whatsapp", "email"}),
     ("limit=3&offset=7", 2, None), ("limit=200&offset=9", 0, None)],
)
async def test_history_filters_and_pages(query: str, count: int, channels: set[str] | None) -> None:
    status, body = await call(SandboxApi(), "GET", f"leads/{ANA}/history", query=query)
    assert status == 200
    assert len(body["history"]) == count
    if channels:
        assert {item["channel"] for item in body["history"]} == channels


@pytest.mark.parametrize(
    ("query", "fact"),
    [("limit=0", "limit must be an integer between 1 and 200"), ("limit=201", "between 1 and 200"),
     ("limit=ten", "limit"), ("offset=-1", "offset must be an integer 0 or more"),
     ("channel=sms", "channel must be a comma-separated list of call, whatsapp, email"),
     ("channel=call,", "channel"), ("page=2", "Unknown query parameter(s): page"),
     ("limit=5&limit=6", "more than once: limit")],
)
async def test_history_refuses_bad_parameters(query: str, fact: str) -> None:
    status, body = await call(SandboxApi(), "GET", f"leads/{ANA}/history", query=query)
    assert status == 400
    assert body["error"] == "Validation error" and fact in body["message"]


@pytest.mark.parametrize("path", [f"leads/{MISSING}/history", f"leads/{MISSING}/meetings",
                                  f"leads/{MISSING}/is_paused", f"leads/{MISSING}/tags", "leads/nope/history"])
async def test_a_missing_lead_is_the_documented_404(path: str) -> None:
    assert await call(SandboxApi(), "GET", path) == (404, LEAD_404)


# --- meetings ---------------------------------------------------------------------------------------

MEETING = {"lead_id": JOHN, "title": "Intro", "starts_at": "2026-12-01T10:00:00", "timezone": "America/Santiago",
           "duration_minutes": 30}


async def test_meetings_are_most_recent_first_and_filter_by_status() -> None:
    api = SandboxApi()
    status, body = await call(api, "GET", f"leads/{ANA}/meetings")
    assert status == 200
    assert [m["title"] for m in body["meetings"]] == ["Product demo", "Discovery call"]
    assert set(body["meetings"][0]) == {
        "id", "title", "starts_at", "ends_at", "duration_minutes", "timezone", "status", "meeting_url",
        "location_type", "location_details", "host_name", "meeting_type", "attendee_name", "attendee_email",
        "confirmed_by_lead", "cancelled_at", "cancellation_reason", "no_show_reason", "outcome_notes", "created_at"}
    _, done = await call(api, "GET", f"leads/{ANA}/meetings", query="status=completed,no_show")
    assert [m["title"] for m in done["meetings"]] == ["Discovery call"]
    assert (await call(api, "GET", f"leads/{ANA}/meetings", query="status=done"))[0] == 400


async def test_a_recorded_meeting_shows_in_meetings_and_history() -> None:
    api = SandboxApi()
    status, body = await call(api, "POST", "meetings", MEETING)
    assert status == 201 and body["success"] is True
    recorded = body["meeting"]
    # a naive time is read in the given timezone (Santiago is UTC-3 in December)
    assert (recorded["starts_at"], recorded["ends_at"]) == ("2026-12-01T13:00:00.000Z", "2026-12-01T13:30:00.000Z")
    assert (recorded["attendee_name"], recorded["status"], recorded["location_type"]) == ("John", "scheduled", "video")
    _, listed = await call(api, "GET", f"leads/{JOHN}/meetings")
    assert listed["meetings"] == [recorded]
    _, history = await call(api, "GET", f"leads/{JOHN}/history")
    assert history["history"][-1]["activity_type"] == "meeting_booked"


async def test_a_meeting_with_external_ids_is_updated_not_duplicated() -> None:
    api = SandboxApi()
    external = {**MEETING, "external_calendar_provider": "google", "external_event_id": "evt-1"}
    first = await call(api, "POST", "meetings", external)
    second = await call(api, "POST", "meetings", {**external, "title": "Intro (moved)", "duration_minutes": 45})
    assert (first[0], second[0]) == (201, 200)
    assert second[1]["meeting"]["id"] == first[1]["meeting"]["id"]
    _, listed = await call(api, "GET", f"leads/{JOHN}/meetings")
    assert [(m["title"], m["duration_minutes"]) for m in listed["meetings"]] == [("Intro (moved)", 45)]
    third = await call(api, "POST", "meetings", MEETING)  # no external ids: a second meeting
    assert third[0] == 201
    assert len((await call(api, "GET", f"leads/{JOHN}/meetings"))[1]["meetings"]) == 2


@pytest.mark.parametrize(
    ("change", "status", "fact"),
    [({"lead_id": MISSING}, 404, "Lead not found"),
     ({"ends_at": "2026-12-01T11:00:00"}, 400, "exactly one of ends_at and duration_minutes"),
     ({"duration_minutes": None}, 400, "exactly one of"), ({"timezone": "Mars/Olympus"}, 400, "IANA"),
     ({"starts_at": "tomorrow"}, 400, "ISO 8601"), ({"status": "completed"}, 400, "status must be one of"),
     ({"host_email": "nobody@example.com"}, 400, "not an active user"), ({"color": "red"}, 400, "Unknown field"),
     ({"title": None}, 400, "title is required")],
)
async def test_record_meeting_refusals(change: dict[str, Any], status: int, fact: str) -> None:
    body = {key: value for key, value in {**MEETING, **change}.items() if value is not None}
    answer = await call(SandboxApi(), "POST", "meetings", body)
    assert answer[0] == status and fact in answer[1]["message"]


async def test_a_meeting_can_match_the_lead_by_email() -> None:
    body = {key: value for key, value in MEETING.items() if key != "lead_id"}
    status, answer = await call(SandboxApi(), "POST", "meetings", {**body, "lead_email": "MARIA@example.org"})
    assert status == 201 and answer["meeting"]["attendee_name"] == "María González"
    missing = await call(SandboxApi(), "POST", "meetings", {**body, "lead_email": "x@example.org"})
    assert missing[0] == 404


# --- automation -------------------------------------------------------------------------------------


async def test_stop_then_resume_changes_what_get_lead_shows() -> None:
    api = SandboxApi()
    stop = await call(api, "POST", f"leads/{ANA}/automation/stop", {"workflow_id": SDR_INBOUND})
    assert stop == (200, {"success": True, "workflow_run_id": ANA_RUN, "cadence_paused": True, "tasks_cancelled": 2})
    run = await run_of(api, ANA)
    assert (run["human_takeover"], run["cadence_state"]) == (True, "paused")
    assert (await call(api, "GET", f"leads/{ANA}/is_paused"))[1] == {"success": True, "paused": True}
    again = await call(api, "POST", f"leads/{ANA}/automation/stop", {"workflow_id": SDR_INBOUND})
    assert again == (200, {"success": True, "already_stopped": True, "workflow_run_id": ANA_RUN})
    resume = await call(api, "POST", f"leads/{ANA}/automation/resume", {"workflow_id": SDR_INBOUND})
    assert resume == (200, {"success": True, "workflow_run_id": ANA_RUN, "cadence_resumed": False})
    run = await run_of(api, ANA)
    assert (run["human_takeover"], run["cadence_state"]) == (False, "paused")
    assert (await call(api, "GET", f"leads/{ANA}/is_paused"))[1]["paused"] is False
    cadence = await call(api, "POST", f"leads/{ANA}/automation/resume",
                         {"workflow_id": SDR_INBOUND, "resume_cadence": True})
    assert cadence[1]["cadence_resumed"] is True and (await run_of(api, ANA))["cadence_state"] == "active"
    running = await call(api, "POST", f"leads/{ANA}/automation/resume", {"workflow_id": SDR_INBOUND})
    assert running == (200, {"success": True, "already_running": True, "workflow_run_id": ANA_RUN})


NO_RUN = {"error": "No active workflow run found for this lead and workflow"}


@pytest.mark.parametrize(
    ("lead", "body", "answer"),
    [(ANA, {}, (400, {"error": "workflow_id is required"})),
     (ANA, {"workflow_id": REACTIVATION}, (404, NO_RUN)),
     (JOHN, {"workflow_id": SDR_INBOUND}, (404, NO_RUN)),
     # María's run is in the terminal status lost: Nexor answers 404 then too
     (MARIA, {"workflow_id": REACTIVATION}, (404, NO_RUN)),
     (ANA, {"workflow_id": SDR_INBOUND, "force": True}, (400, {"error": "Validation error",
                                                               "message": "Unknown field(s): force"})),
     (MISSING, {"workflow_id": SDR_INBOUND}, (404, LEAD_404))],
)
async def test_automation_stop_errors(lead: str, body: dict[str, Any], answer: tuple[int, Any]) -> None:
    assert await call(SandboxApi(), "POST", f"leads/{lead}/automation/stop", body) == answer


async def test_is_paused_validates_its_workflow_id() -> None:
    api = SandboxApi()
    assert (await call(api, "GET", f"leads/{ANA}/is_paused", query=f"workflow_id={SDR_INBOUND}"))[0] == 200
    assert (await call(api, "GET", f"leads/{ANA}/is_paused", query="workflow_id=x"))[0] == 400


async def test_assign_workflow_enrolls_then_reassigns() -> None:
    api = SandboxApi()
    status, body = await call(api, "POST", f"leads/{JOHN}/assign-workflow", {"workflowId": REACTIVATION})
    assert status == 201
    assert body == {"workflowRunId": body["workflowRunId"], "workflowId": REACTIVATION,
                    "workflowName": "Reactivation outbound", "movementType": "enrollment", "paused": False}
    run = await run_of(api, JOHN)
    assert (run["id"], run["current_status"]["key"], run["cadence_state"]) == (body["workflowRunId"], "new", "active")
    status, moved = await call(api, "POST", f"leads/{ANA}/assign-workflow",
                               {"workflowId": REACTIVATION, "reason": "Cold", "actorId": "user-1"})
    assert (status, moved["movementType"]) == (201, "reassignment")
    assert (await run_of(api, ANA))["workflow"]["name"] == "Reactivation outbound"
    assert api.state.runs[ANA_RUN]["is_active"] is False and api.state.runs[ANA_RUN]["deactivation_reason"] == "Cold"
    unknown = await call(api, "POST", f"leads/{ANA}/assign-workflow", {"workflowId": MISSING})
    assert unknown[0] == 400 and "not found" in unknown[1]["message"]
    snake = await call(api, "POST", f"leads/{ANA}/assign-workflow", {"workflow_id": REACTIVATION})
    assert snake == (400, {"error": "Validation error", "message": "Unknown field(s): workflow_id"})


async def test_set_status_changes_reports_and_refuses_unknown_keys() -> None:
    api = SandboxApi()
    status, body = await call(api, "POST", f"leads/{ANA}/status", {"status_key": "qualified", "reason": "Budget ok"})
    assert (status, body) == (200, {"success": True, "changed": True, "previous_status": "contacted",
                                    "new_status": "qualified",
                                    "workflow_run": {"id": ANA_RUN, "workflow_id": SDR_INBOUND}})
    assert (await run_of(api, ANA))["current_status"]["key"] == "qualified"
    same = await call(api, "POST", f"leads/{ANA}/status", {"status_key": "qualified"})
    assert same[1]["changed"] is False
    unknown = await call(api, "POST", f"leads/{ANA}/status", {"status_key": "interested"})
    assert unknown[0] == 400
    assert "valid keys: new, contacted, engaged, qualified, lost, converted" in unknown[1]["message"]
    lost = await call(api, "POST", f"leads/{ANA}/status", {"status_key": "lost"})
    assert lost[1]["changed"] is True
    run = await run_of(api, ANA)
    assert (run["cadence_state"], run["run_status"]) == ("stopped", "completed")
    assert run["current_status"]["category"] == "lost"
    # terminal: no automation to stop any more
    assert (await call(api, "POST", f"leads/{ANA}/automation/stop", {"workflow_id": SDR_INBOUND}))[0] == 404
    none = await call(api, "POST", f"leads/{JOHN}/status", {"status_key": "new"})
    assert none[0] == 404 and "No active workflow run" in none[1]["message"]


async def test_workflows_list_their_statuses() -> None:
    status, body = await call(SandboxApi(), "GET", "workflows")
    assert status == 200
    assert [(w["id"], w["name"]) for w in body["workflows"]] == [
        (SDR_INBOUND, "SDR inbound"), (REACTIVATION, "Reactivation outbound")]
    terminal = [s["key"] for s in body["workflows"][0]["statuses"] if s["is_terminal"]]
    assert terminal == ["lost", "converted"]


# --- tags -------------------------------------------------------------------------------------------


async def test_tags_search_add_and_set() -> None:
    api = SandboxApi()
    _, found = await call(api, "GET", "tags", query="search=pricing")
    assert [tag["name"] for tag in found["data"]] == ["Hot lead"]
    status, added = await call(api, "POST", f"leads/{ANA}/tags", {"tagIds": [HOT_TAG, VIP_TAG]})
    assert status == 201
    assert added == {"data": [{"id": VIP_TAG, "name": "VIP", "slug": "vip"},
                              {"id": HOT_TAG, "name": "Hot lead", "slug": "hot-lead"}]}
    assert (await call(api, "GET", f"leads/{ANA}"))[1]["lead"]["tags"] == added["data"]
    assert (await call(api, "GET", f"leads/{ANA}/tags"))[1] == added
    status, replaced = await call(api, "PUT", "leads/tags", {"lead_id": ANA, "tags": ["vip", "Partner Agency"]})
    assert status == 200
    partner = replaced["tags"][1]
    assert (partner["name"], partner["slug"]) == ("Partner Agency", "partner-agency")
    assert replaced == {"success": True, "lead_id": ANA, "tags": [added["data"][0], partner],
                        "added": [partner["id"]], "removed": [HOT_TAG]}
    cleared = await call(api, "PUT", "leads/tags", {"email": "ANA.ROJAS@example.com", "tags": []})
    assert cleared[1]["removed"] == [VIP_TAG, partner["id"]] and cleared[1]["tags"] == []


@pytest.mark.parametrize(
    ("body", "answer"),
    [({"tagId": VIP_TAG, "tagIds": [VIP_TAG]}, (400, {"error": "Provide either tagId or tagIds, not both"})),
     ({}, (400, {"error": "tagId or tagIds is required"})),
     ({"tagIds": [MISSING]}, (400, {"error": "Validation error",
                                    "message": f"Tag(s) not found or not in your account: {MISSING}"})),
     ({"tag_ids": [VIP_TAG]}, (400, {"error": "Validation error", "message": "Unknown field(s): tag_ids"}))],
)
async def test_add_lead_tags_refusals(body: dict[str, Any], answer: tuple[int, Any]) -> None:
    assert await call(SandboxApi(), "POST", f"leads/{ANA}/tags", body) == answer


# --- templates and messages -------------------------------------------------------------------------


async def test_templates_filter() -> None:
    api = SandboxApi()
    _, approved = await call(api, "GET", "templates", query="status=APPROVED&category=MARKETING")
    assert [t["id"] for t in approved["templates"]] == [FIRST_CONTACT_TEMPLATE]
    assert (await call(api, "GET", "templates", query="status=approved"))[0] == 400


async def test_messages_per_channel_are_recorded_in_the_history() -> None:
    api = SandboxApi()
    base = {"lead_id": ANA, "workflow_id": SDR_INBOUND}
    status, text = await call(api, "POST", "messages", {**base, "channel": "whatsapp", "content": "Hola"})
    assert status == 200
    assert (text["type"], text["call_id"], text["provider_message_id"][:5]) == ("text", None, "wamid")
    _, email = await call(api, "POST", "messages", {**base, "channel": "email", "content": "Hi", "subject": "S"})
    assert email["activity_id"] and email["type"] is None
    _, phone = await call(api, "POST", "messages", {**base, "channel": "call"})
    assert phone["call_status"] == "registered" and phone["message_id"] is None
    _, template = await call(api, "POST", "messages", {"lead_id": JOHN, "workflow_id": SDR_INBOUND,
                                                       "channel": "whatsapp", "template_id": FIRST_CONTACT_TEMPLATE})
    assert template["type"] == "template"
    _, history = await call(api, "GET", f"leads/{ANA}/history", query="limit=3&offset=9")
    assert [(i["type"], i["channel"], i.get("content")) for i in history["history"]] == [
        ("message", "whatsapp", "Hola"), ("message", "email", "Hi"), ("call", "call", None)]


@pytest.mark.parametrize(
    ("body", "status", "fact"),
    [({"lead_id": JOHN, "channel": "whatsapp", "content": "Hi"}, 400, "24-hour window"),
     ({"lead_id": JOHN, "channel": "email", "content": "Hi"}, 400, "no email address"),
     ({"lead_id": ANA, "channel": "whatsapp"}, 400, "content or template_id"),
     ({"lead_id": ANA, "channel": "email"}, 400, "email needs content"),
     ({"lead_id": ANA, "channel": "whatsapp", "template_id": PROMO_TEMPLATE}, 400, "is PENDING"),
     ({"lead_id": ANA, "channel": "sms", "content": "Hi"}, 400, "channel must be one of"),
     ({"lead_id": ANA, "channel": "call", "template_id": FIRST_CONTACT_TEMPLATE}, 400, "whatsapp channel only"),
     ({"lead_id": ANA, "channel": "call", "priority": 1}, 400, "Unknown field(s): priority"),
     ({"lead_id": MISSING, "channel": "call"}, 404, "Lead not found"),
     ({"lead_id": ANA, "workflow_id": MISSING, "channel": "call"}, 404, "Workflow not found")],
)
async def test_message_refusals(body: dict[str, Any], status: int, fact: str) -> None:
    answer = await call(SandboxApi(), "POST", "messages", {"workflow_id": SDR_INBOUND, **body})
    assert answer[0] == status and fact in answer[1]["message"], answer


async def test_a_lead_without_a_phone_cannot_get_a_call_or_whatsapp() -> None:
    api = SandboxApi()
    lead = api.add_lead(first_name="Nophone")
    for channel, extra in (("call", {}), ("whatsapp", {"template_id": FIRST_CONTACT_TEMPLATE})):
        status, body = await call(api, "POST", "messages",
                                  {"lead_id": lead, "workflow_id": SDR_INBOUND, "channel": channel, **extra})
        assert status == 400 and "no phone number" in body["message"]


# --- create -----------------------------------------------------------------------------------------


async def test_create_lead_without_workflow_has_a_null_run_and_with_one_enrolls() -> None:
    api = SandboxApi()
    status, body = await call(api, "POST", "leads", {"first_name": "Tony"})
    assert status == 201 and body["workflow_run"] is None
    status, body = await call(api, "POST", "leads", {"first_name": "Tina", "workflow_id": SDR_INBOUND})
    assert status == 201 and body["workflow_run"]["workflow"] == {"id": SDR_INBOUND, "name": "SDR inbound"}
    assert (await run_of(api, body["lead"]["id"]))["current_status"]["key"] == "new"
    bad = await call(api, "POST", "leads", {"first_name": "Tom", "workflow_id": MISSING})
    assert bad[0] == 400


async def test_reset_restores_the_seeded_account() -> None:
    api = SandboxApi()
    await call(api, "POST", f"leads/{ANA}/automation/stop", {"workflow_id": SDR_INBOUND})
    await call(api, "PUT", "leads/tags", {"lead_id": ANA, "tags": []})
    api.reset()
    run = await run_of(api, ANA)
    assert run["human_takeover"] is False
    assert (await call(api, "GET", f"leads/{ANA}"))[1]["lead"]["tags"][0]["name"] == "VIP"
