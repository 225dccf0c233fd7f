"""Every Nexor endpoint this server calls, as a pure function from its arguments to a `Request`:
the method and path, the body, its idempotence (from `rules.WRITES`), how to read the answer
(lenient: both documented shapes, a null list as empty), and what a failure means, worded for the
model that reads it (so it names the tools that help). Building one sends nothing; the client
(nexor_mcp/client.py) sends any of them the same way and knows none of them.
"""

from __future__ import annotations

from typing import Any

from nexor_mcp.errors import Effect, UnreadableAnswer, reading, writing
from nexor_mcp.json_types import Json
from nexor_mcp.request import Request
from nexor_mcp.rules import is_idempotent

CHECK_BASE_URL = "Check NEXOR_BASE_URL: it must point at Nexor's public API"
CHECK_LEAD_ID = "Check the lead_id (it must be the lead's UUID from Nexor)"
LEAD_RUN_STEP = "call get_lead to see the lead's workflow run and status"
AUTOMATION_CHECK = (
    "Check lead_id and workflow_id (get_lead shows the lead's active workflow run); a lead in a "
    "terminal status (expired, converted) has no active run"
)


def no_lead(lead_id: object) -> str:
    return f"No lead with id {lead_id} exists in this Nexor account"


def lead_write(
    lead_id: str, action: str, *, idempotent: bool, verify: str, also: str = "", check: str = CHECK_LEAD_ID,
) -> Effect:
    """A write on one lead; `also` says what else a 404 may mean here (a tag, a workflow, a run)."""
    what = no_lead(lead_id) + (f", or {also}" if also else "")
    return writing(what, check, action=action, idempotent=idempotent, verify=verify)


# --- reading answers -------------------------------------------------------------------------------


def lead_result(status: int, body: Json) -> Json:
    """Accept both documented shapes: `{success, lead, ...}` and a flat lead object."""
    if "lead" in body:
        lead = body["lead"]
        if not isinstance(lead, dict):
            kind = "null" if lead is None else type(lead).__name__
            raise UnreadableAnswer(status, f"has no lead object in it (lead is {kind})")
        extras = {key: value for key, value in body.items() if key not in ("success", "lead")}
        return {"lead": lead, **extras}
    if "id" in body:
        return {"lead": {key: value for key, value in body.items() if key != "success"}}
    raise UnreadableAnswer(status, "has no lead in it")


def list_in(status: int, body: Json, *keys: str) -> list[Any]:
    """The list under the first of `keys` present; a null there is an empty list."""
    for key in keys:
        if key in body:
            value = body[key]
            if value is None:
                return []
            if isinstance(value, list):
                return value
            raise UnreadableAnswer(status, f"has {key} as a JSON {type(value).__name__}, not a list")
    raise UnreadableAnswer(status, f"has no {keys[0]} list in it")


def _optional_list(body: Json, key: str) -> list[Any]:
    value = body.get(key)
    return value if isinstance(value, list) else []


def _lead_read(status: int, body: Json) -> Json:
    result = lead_result(status, body)
    if "variables" in result and result["variables"] in (None, []):
        result["variables"] = {}  # "none" in the documented shape, whichever way Nexor said it
    return result


def _read(path: str, effect: Effect, **more: Any) -> Request:
    return Request("GET", path, effect, idempotent=True, **more)


# --- reads -----------------------------------------------------------------------------------------


def get_lead(lead_id: str) -> Request:
    """GET /leads/{id}; reads as `{"lead": {...}, ...}` whichever shape Nexor used."""
    return _read(f"leads/{lead_id}", reading(no_lead(lead_id), CHECK_LEAD_ID), parse=_lead_read, lead_id=lead_id)


def get_lead_history(lead_id: str, channels: list[str] | None, limit: int, offset: int) -> Request:
    """GET /leads/{id}/history; `next_offset` is None once fewer than `limit` items came back."""
    query = {"limit": str(limit), "offset": str(offset)}
    if channels:
        query["channel"] = ",".join(channels)

    def parse(status: int, body: Json) -> Json:
        history = list_in(status, body, "history")
        lead = body.get("lead")
        return {
            "lead": lead if isinstance(lead, dict) else None,
            "history": history,
            "next_offset": offset + len(history) if len(history) >= limit else None,
        }

    effect = reading(no_lead(lead_id), CHECK_LEAD_ID)
    return _read(f"leads/{lead_id}/history", effect, query=query, parse=parse, lead_id=lead_id)


def get_lead_meetings(lead_id: str, statuses: list[str] | None) -> Request:
    """GET /leads/{id}/meetings, most recent first."""
    query = {"status": ",".join(statuses)} if statuses else None
    return _read(
        f"leads/{lead_id}/meetings", reading(no_lead(lead_id), CHECK_LEAD_ID), query=query, lead_id=lead_id,
        parse=lambda status, body: {"meetings": list_in(status, body, "meetings")},
    )


def _paused(status: int, body: Json) -> Json:
    paused = body.get("paused")
    if not isinstance(paused, bool):
        raise UnreadableAnswer(status, "has no paused true/false in it")
    return {"paused": paused}


def get_automation_status(lead_id: str, workflow_id: str | None) -> Request:
    """GET /leads/{id}/is_paused: whether a human has taken over (the AI is stopped)."""
    query = {"workflow_id": workflow_id} if workflow_id else None
    effect = reading(no_lead(lead_id), CHECK_LEAD_ID)
    return _read(f"leads/{lead_id}/is_paused", effect, query=query, parse=_paused, lead_id=lead_id)


def list_tags(search: str | None) -> Request:
    """GET /tags (Nexor answers `{"data": [...]}`)."""
    return _read(
        "tags", reading("Nexor found no tags endpoint", CHECK_BASE_URL), query={"search": search} if search else None,
        parse=lambda status, body: {"tags": list_in(status, body, "data", "tags")},
    )


def get_lead_tags(lead_id: str) -> Request:
    """GET /leads/{id}/tags (`{"data": [{id, name, slug}]}`): for a lead whose answer has no `tags`."""
    return _read(
        f"leads/{lead_id}/tags", reading(no_lead(lead_id), CHECK_LEAD_ID), lead_id=lead_id,
        parse=lambda status, body: {"tags": list_in(status, body, "data", "tags")},
    )


def list_templates(template_status: str | None, category: str | None) -> Request:
    """GET /templates: the WhatsApp templates synced from Meta."""
    query = {key: value for key, value in (("status", template_status), ("category", category)) if value}
    return _read(
        "templates", reading("Nexor found no templates endpoint", CHECK_BASE_URL), query=query or None,
        parse=lambda status, body: {"templates": list_in(status, body, "templates", "data")},
    )


def _workflows(status: int, body: Json) -> Json:
    for key in ("workflows", "data"):
        if key in body:
            return {"workflows": body[key]}
    return {"workflows": {key: value for key, value in body.items() if key != "success"}}


def list_workflows() -> Request:
    """GET /workflows: documented only by reference, so whatever JSON comes back (an object, a
    bare list, anything) is passed through under `workflows`."""
    effect = reading("Nexor found no workflows endpoint", CHECK_BASE_URL)
    return _read("workflows", effect, any_json_under="workflows", parse=_workflows)


# --- writes ----------------------------------------------------------------------------------------


def update_lead(lead_id: str, changes: Json) -> Request:
    """PATCH /leads/{id} with exactly `changes`; reads as `{"lead": {...}}`."""
    idempotent = is_idempotent("PATCH /leads/{id}", changes)
    effect = lead_write(lead_id, "update", idempotent=idempotent, verify="read the lead with get_lead")
    return Request(
        "PATCH", f"leads/{lead_id}", effect, idempotent=idempotent, body=changes, parse=lead_result,
        lead_id=lead_id, change="update", next_step="call get_lead to see the current state", answers_lead=True,
    )


def create_lead(lead: Json) -> Request:
    """POST /leads with one lead. Never retried: Nexor does not deduplicate leads."""
    idempotent = is_idempotent("POST /leads", lead)
    effect = writing(
        "Nexor found no leads endpoint", CHECK_BASE_URL, action="lead creation", idempotent=idempotent,
        verify="ask the user to look for the lead in Nexor (a duplicate would be a second lead)",
    )
    return Request(
        "POST", "leads", effect, idempotent=idempotent, body=lead, parse=lead_result, change="lead creation",
        next_step="its id could not be read, so ask the user to find the new lead in Nexor", answers_lead=True,
    )


def add_lead_tags(lead_id: str, tag_ids: list[str]) -> Request:
    """POST /leads/{id}/tags with `tagIds`: tags already on the lead are skipped, so it is idempotent."""
    body: Json = {"tagIds": tag_ids}
    idempotent = is_idempotent("POST /leads/{id}/tags", body)
    effect = lead_write(
        lead_id, "tagging", idempotent=idempotent, verify="list the lead's tags with get_lead",
        also="a tag id is not in this account", check="Check the lead_id and the tag ids (list_tags lists them)",
    )
    return Request(
        "POST", f"leads/{lead_id}/tags", effect, idempotent=idempotent, body=body, lead_id=lead_id,
        parse=lambda status, answer: {"tags": list_in(status, answer, "data", "tags")},
        change="tagging", next_step="call get_lead to see the lead's tags",
    )


def _tag_change(status: int, body: Json) -> Json:
    return {
        "tags": list_in(status, body, "tags"),
        "added": _optional_list(body, "added"),
        "removed": _optional_list(body, "removed"),
    }


def set_lead_tags(lead_id: str, tags: list[str]) -> Request:
    """PUT /leads/tags: the lead's whole tag set becomes `tags` (names; missing ones are created)."""
    body: Json = {"lead_id": lead_id, "tags": tags}
    idempotent = is_idempotent("PUT /leads/tags", body)
    effect = lead_write(lead_id, "tag change", idempotent=idempotent, verify="read the lead's tags with get_lead")
    return Request(
        "PUT", "leads/tags", effect, idempotent=idempotent, body=body, parse=_tag_change, lead_id=lead_id,
        change="tag change", next_step="call get_lead to see the lead's tags",
    )


def _automation(lead_id: str, verb: str, body: Json, action: str) -> Request:
    idempotent = is_idempotent(f"POST /leads/{{id}}/automation/{verb}", body)
    effect = writing(
        "Nexor found no active workflow run for this lead and workflow", AUTOMATION_CHECK,
        action=action, idempotent=idempotent, verify="check with get_automation_status",
    )
    return Request(
        "POST", f"leads/{lead_id}/automation/{verb}", effect, idempotent=idempotent, body=body, lead_id=lead_id,
        change=action, next_step="call get_automation_status to see it",
    )


def stop_automation(lead_id: str, workflow_id: str) -> Request:
    """POST /leads/{id}/automation/stop: human takeover. Idempotent on Nexor's side."""
    return _automation(lead_id, "stop", {"workflow_id": workflow_id}, "takeover")


def resume_automation(lead_id: str, workflow_id: str, resume_cadence: bool) -> Request:
    """POST /leads/{id}/automation/resume. Idempotent on Nexor's side."""
    return _automation(lead_id, "resume", {"workflow_id": workflow_id, "resume_cadence": resume_cadence}, "resume")


def record_meeting(meeting: Json) -> Request:
    """POST /meetings: a meeting booked outside Nexor. Retried only when Nexor can deduplicate it
    (an external calendar provider and event id were given)."""
    idempotent = is_idempotent("POST /meetings", meeting)
    effect = writing(
        no_lead(meeting.get("lead_id")), "Check the lead_id (create the lead first if it is new)",
        action="meeting", idempotent=idempotent, verify="list the lead's meetings with get_lead_meetings",
    )
    lead_id = meeting.get("lead_id")
    return Request(
        "POST", "meetings", effect, idempotent=idempotent, body=meeting, change="meeting",
        lead_id=lead_id if isinstance(lead_id, str) else None, next_step="call get_lead_meetings to see it",
    )


def assign_workflow(lead_id: str, workflow_id: str, reason: str | None) -> Request:
    """POST /leads/{id}/assign-workflow (camelCase body). Not idempotent: a second call reassigns."""
    body: Json = {"workflowId": workflow_id}
    if reason is not None:
        body["reason"] = reason
    idempotent = is_idempotent("POST /leads/{id}/assign-workflow", body)
    effect = lead_write(
        lead_id, "workflow assignment", idempotent=idempotent, verify="read the lead with get_lead",
        also="the workflow is not in this account",
        check="Check the lead_id and the workflow_id (list_workflows lists them)",
    )
    return Request(
        "POST", f"leads/{lead_id}/assign-workflow", effect, idempotent=idempotent, body=body, lead_id=lead_id,
        change="workflow assignment", next_step=LEAD_RUN_STEP,
    )


def set_lead_status(lead_id: str, body: Json) -> Request:
    """POST /leads/{id}/status. Setting the status it already has changes nothing: idempotent."""
    idempotent = is_idempotent("POST /leads/{id}/status", body)
    effect = lead_write(
        lead_id, "status change", idempotent=idempotent, verify="read the lead with get_lead",
        also="the lead has no active workflow run",
        check="Check the lead_id; its status lives in an active workflow run (get_lead shows it, "
        "assign_workflow enrolls one)",
    )
    return Request(
        "POST", f"leads/{lead_id}/status", effect, idempotent=idempotent, body=body, lead_id=lead_id,
        change="status change", next_step=LEAD_RUN_STEP,
    )


def send_message(message: Json) -> Request:
    """POST /messages: contacts a real person. Never retried: a retry could send it twice."""
    idempotent = is_idempotent("POST /messages", message)
    effect = writing(
        f"No lead with id {message.get('lead_id')} (or no such workflow) exists in this Nexor account",
        "Check lead_id and workflow_id",
        action="message", idempotent=idempotent, verify="read the conversation with get_lead_history",
    )
    lead_id = message.get("lead_id")
    return Request(
        "POST", "messages", effect, idempotent=idempotent, body=message, change="message",
        lead_id=lead_id if isinstance(lead_id, str) else None, next_step="call get_lead_history to see it",
    )

