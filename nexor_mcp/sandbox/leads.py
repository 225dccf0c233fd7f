"""Leads: POST /leads, GET /leads/{id}, PATCH and PUT /leads/{id} (shallow metadata merge, every
other field replaced, nullability rules, `updated_at`)."""

from __future__ import annotations

import json
from typing import Any

from nexor_mcp.json_types import Json
from nexor_mcp.sandbox.common import (
    EMAIL,
    Call,
    Invalid,
    Reply,
    is_uuid,
    json_object,
    lead_not_found,
    now,
    validation,
)
from nexor_mcp.sandbox.seed import CAMPAIGNS, State, activity, blank_lead, copy_of, new_run

NULLABLE_TEXT = ("last_name", "phone", "company", "title")
REQUIRED_TEXT = ("first_name", "source")
WRITABLE = {*NULLABLE_TEXT, *REQUIRED_TEXT, "email", "campaign_id", "metadata"}
CREATE_ONLY = ("workflow_id", "force_first_message")
CORE = ("id", "first_name", "last_name", "email", "phone", "source", "company", "title")


def find_lead(state: State, lead_id: str) -> Json:
    """The lead, or `Invalid` with the documented 404 body."""
    lead = state.leads.get(lead_id) if is_uuid(lead_id) else None
    if lead is None:
        raise Invalid(404, lead_not_found())
    return lead


def get_lead(state: State, call: Call) -> Reply:
    lead = find_lead(state, call.lead_id)
    if lead["id"] in state.legacy_leads:
        return 200, legacy_view(state, lead)
    variables = copy_of(state.variables.get(lead["id"], {}))
    return 200, {"success": True, "lead": full_view(state, lead), "variables": variables}


def update_lead(state: State, call: Call) -> Reply:
    lead = find_lead(state, call.lead_id)
    changes = parse_changes(call.body)
    for name, value in changes.items():
        if name == "metadata":
            lead["metadata"] = {**lead["metadata"], **value}
        else:
            lead[name] = value
    lead["updated_at"] = now()
    return 200, {"success": True, "lead": patch_view(lead)}


def create_leads(state: State, call: Call) -> Reply:
    try:
        data = json.loads(call.body)
    except ValueError:
        raise validation("Request body must be JSON") from None
    items = data if isinstance(data, list) else [data]
    created: list[Json] = []
    runs: list[Json | None] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("first_name"), str):
            raise validation("first_name is required")
        workflow = _workflow_to_enroll(state, item)
        # Nexor's documented core columns; any other top-level key (company, title, source...) is filed under metadata.
        core = {k: v for k, v in item.items() if k in ("first_name", "last_name", "email", "phone", "campaign_id")}
        extra = {k: v for k, v in item.items() if k not in (*core, *CREATE_ONLY, "metadata")}
        metadata = {**extra, **(item.get("metadata") or {})}
        lead = blank_lead(**core, metadata=metadata)
        state.leads[lead["id"]] = lead
        created.append(patch_view(lead))
        runs.append(_enroll(state, lead, workflow, item.get("force_first_message")) if workflow else None)
    if isinstance(data, list):
        return 201, {"success": True, "leads": created}
    return 201, {"success": True, "lead": created[0], "workflow_run": runs[0]}


def _workflow_to_enroll(state: State, item: Json) -> Json | None:
    workflow_id = item.get("workflow_id")
    first = item.get("force_first_message")
    if workflow_id is None:
        if first is not None:
            raise validation("force_first_message requires workflow_id")
        return None
    workflow = state.workflows.get(workflow_id) if is_uuid(workflow_id) else None
    if workflow is None:
        raise validation("workflow_id not found or does not belong to your account")
    if first is not None:
        if not isinstance(first, dict) or first.get("channel") not in ("whatsapp", "email"):
            raise validation("force_first_message.channel must be whatsapp or email")
        if not isinstance(first.get("content"), str) or not first["content"]:
            raise validation("force_first_message.content is required")
        if first["channel"] == "email" and not isinstance(first.get("subject"), str):
            raise validation("force_first_message.subject is required for email")
    return workflow


def _enroll(state: State, lead: Json, workflow: Json, first: Any) -> Json:
    run = new_run(lead["id"], workflow)
    state.runs[run["id"]] = run
    state.record(lead["id"], activity("workflow_assigned", f"Assigned to {workflow['name']}",
                                      f"Lead enrolled in workflow {workflow['name']}", now()))
    channel = first["channel"] if isinstance(first, dict) else "whatsapp"
    return {"id": run["id"], "job_id": f"job-{run['id'][:8]}",
            "workflow": {"id": workflow["id"], "name": workflow["name"]},
            "cadence": {"stepIndex": 1 if first else 0, "channel": channel, "attemptNumber": 1, "maxAttempts": 3,
                        "totalSteps": 5}}


def parse_changes(body: bytes) -> Json:
    data = json_object(body, WRITABLE)
    for name, value in data.items():
        problem = _field_problem(name, value)
        if problem:
            raise validation(problem)
    return data


def _field_problem(name: str, value: Any) -> str | None:
    if name in REQUIRED_TEXT:
        if not isinstance(value, str) or not value:
            return f"{name} must be a non-empty string"
    elif name in NULLABLE_TEXT:
        if value is not None and not isinstance(value, str):
            return f"{name} must be a string or null"
    elif name == "email":
        if value is not None and not (isinstance(value, str) and EMAIL.fullmatch(value)):
            return "email must be a valid email address or null"
    elif name == "campaign_id":
        if value is not None and value not in CAMPAIGNS:
            return "campaign_id not found or does not belong to your account"
    elif name == "metadata":
        if not isinstance(value, dict):
            return "metadata must be an object"
        for key, item in value.items():
            if isinstance(item, dict | list):
                return f"metadata.{key} must be a string, number, boolean or null"
    return None


def patch_view(lead: Json) -> Json:
    view = {name: lead[name] for name in CORE}
    view.update(
        campaign_id=lead["campaign_id"], metadata=copy_of(lead["metadata"]),
        created_at=lead["created_at"], updated_at=lead["updated_at"],
    )
    return view


def tag_views(state: State, lead: Json) -> list[Json]:
    """The lead's tags as `{id, name, slug}`, in the order they were added."""
    return [{key: state.tags[tag_id][key] for key in ("id", "name", "slug")} for tag_id in lead["tags"]]


def full_view(state: State, lead: Json) -> Json:
    view = {name: lead[name] for name in CORE}
    campaign_id = lead["campaign_id"]
    run = state.active_run(lead["id"])
    view.update(
        metadata=copy_of(lead["metadata"]),
        tags=tag_views(state, lead),
        campaign={"id": campaign_id, "name": CAMPAIGNS.get(campaign_id, "")} if campaign_id else None,
        active_workflow_run=run_view(state, run) if run else None,
        created_at=lead["created_at"],
        updated_at=lead["updated_at"],
    )
    return view


def run_view(state: State, run: Json) -> Json:
    workflow = state.workflows[run["workflow_id"]]
    status = state.status_of(run)
    return {
        "id": run["id"], "workflow_id": run["workflow_id"], "is_active": run["is_active"],
        "human_takeover": run["human_takeover"], "cadence_state": run["cadence_state"],
        "run_status": run["run_status"],
        "workflow": {"id": workflow["id"], "name": workflow["name"], "goal_type": workflow["goal_type"]},
        "current_status": {key: status[key] for key in ("id", "key", "label", "category")},
    }


def legacy_view(state: State, lead: Json) -> Json:
    """The legacy page's flat lead: no wrapper, no tags, variables or updated_at; the run in
    camelCase with fewer fields, its workflow and status at the top (the status with a color)."""
    view = {name: lead[name] for name in CORE}
    campaign_id = lead["campaign_id"]
    run = state.active_run(lead["id"])
    workflow = state.workflows[run["workflow_id"]] if run else None
    status = state.status_of(run) if run else None
    view.update(
        metadata=copy_of(lead["metadata"]),
        campaign={"id": campaign_id, "name": CAMPAIGNS.get(campaign_id, "")} if campaign_id else None,
        activeWorkflowRun={key: run[key] for key in ("id", "workflow_id", "is_active", "run_status")} if run else None,
        workflow={key: workflow[key] for key in ("id", "name", "goal_type")} if workflow else None,
        currentStatus={**{key: status[key] for key in ("id", "key", "label", "category")}, "color": "#3b82f6"}
        if status else None,
        assigned_user=None,
        created_at=lead["created_at"],
    )
    return view
