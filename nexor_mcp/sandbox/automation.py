"""Workflows and a lead's runs in them: GET /workflows, GET /leads/{id}/is_paused, automation
stop/resume (human takeover), POST /leads/{id}/assign-workflow and POST /leads/{id}/status."""

from __future__ import annotations

from nexor_mcp.json_types import Json
from nexor_mcp.sandbox.common import (
    Call,
    Invalid,
    Reply,
    is_uuid,
    json_object,
    now,
    query_params,
    text,
    uuid_field,
    validation,
)
from nexor_mcp.sandbox.leads import find_lead
from nexor_mcp.sandbox.seed import State, activity, copy_of, new_run

NO_RUN = {"error": "No active workflow run found for this lead and workflow"}


def list_workflows(state: State, call: Call) -> Reply:
    query_params(call.query, ())
    return 200, {"success": True, "workflows": copy_of(list(state.workflows.values()))}


def is_paused(state: State, call: Call) -> Reply:
    lead = find_lead(state, call.lead_id)
    params = query_params(call.query, ("workflow_id",))
    workflow_id = params.get("workflow_id")
    if workflow_id is not None and not is_uuid(workflow_id):
        raise validation("workflow_id must be a UUID")
    paused = any(
        run["human_takeover"]
        for run in state.runs.values()
        if run["lead_id"] == lead["id"] and state.is_live(run) and workflow_id in (None, run["workflow_id"])
    )
    return 200, {"success": True, "paused": paused}


def _live_run(state: State, call: Call, allowed: tuple[str, ...]) -> tuple[Json, Json]:
    """The body and the live run it names, or the documented 400/404."""
    lead = find_lead(state, call.lead_id)
    body = json_object(call.body, allowed)
    workflow_id = body.get("workflow_id")
    if workflow_id is None or workflow_id == "":
        raise Invalid(400, {"error": "workflow_id is required"})
    if not is_uuid(workflow_id):
        raise validation("workflow_id must be a UUID")
    run = state.active_run(lead["id"], workflow_id)
    if run is None or not state.is_live(run):
        raise Invalid(404, dict(NO_RUN))
    return body, run


def stop_automation(state: State, call: Call) -> Reply:
    _, run = _live_run(state, call, ("workflow_id",))
    if run["human_takeover"]:
        return 200, {"success": True, "already_stopped": True, "workflow_run_id": run["id"]}
    cancelled = run["pending_tasks"]
    run.update(human_takeover=True, cadence_state="paused", pending_tasks=0)
    state.record(run["lead_id"], activity("automation_stopped", "Automation stopped",
                                          f"Human takeover; {cancelled} pending task(s) cancelled", now(), "api"))
    return 200, {"success": True, "workflow_run_id": run["id"], "cadence_paused": True, "tasks_cancelled": cancelled}


def resume_automation(state: State, call: Call) -> Reply:
    body, run = _live_run(state, call, ("workflow_id", "resume_cadence"))
    resume_cadence = body.get("resume_cadence", False)
    if not isinstance(resume_cadence, bool):
        raise validation("resume_cadence must be a boolean")
    cadence_to_restart = resume_cadence and run["cadence_state"] != "active"
    if not run["human_takeover"] and not cadence_to_restart:
        return 200, {"success": True, "already_running": True, "workflow_run_id": run["id"]}
    run["human_takeover"] = False
    if cadence_to_restart:
        run.update(cadence_state="active", pending_tasks=1)
    state.record(run["lead_id"], activity("automation_resumed", "Automation resumed",
                                          "AI replies on" + (", cadence restarted" if cadence_to_restart else ""),
                                          now(), "api"))
    return 200, {"success": True, "workflow_run_id": run["id"], "cadence_resumed": cadence_to_restart}


def assign_workflow(state: State, call: Call) -> Reply:
    lead = find_lead(state, call.lead_id)
    body = json_object(call.body, ("workflowId", "reason", "actorId"))
    workflow_id = uuid_field(body, "workflowId", required=True)
    reason = text(body, "reason")
    text(body, "actorId")
    workflow = state.workflows.get(workflow_id or "")
    if workflow is None:
        raise validation(f"Workflow {workflow_id} not found or does not belong to your account")
    previous = state.active_run(lead["id"])
    if previous is not None:
        previous.update(is_active=False, run_status="reassigned", cadence_state="stopped", pending_tasks=0,
                        deactivation_reason=reason)
    run = new_run(lead["id"], workflow)
    state.runs[run["id"]] = run
    state.record(lead["id"], activity("workflow_assigned", f"Assigned to {workflow['name']}",
                                      reason or f"Lead enrolled in workflow {workflow['name']}", now(), "api"))
    return 201, {
        "workflowRunId": run["id"], "workflowId": workflow["id"], "workflowName": workflow["name"],
        "movementType": "reassignment" if previous else "enrollment", "paused": workflow["paused"],
    }


def set_status(state: State, call: Call) -> Reply:
    lead = find_lead(state, call.lead_id)
    body = json_object(call.body, ("status_key", "reason", "workflow_id"))
    key = text(body, "status_key", required=True)
    reason = text(body, "reason")
    workflow_id = uuid_field(body, "workflow_id")
    run = state.active_run(lead["id"], workflow_id)
    if run is None:
        raise Invalid(404, {"error": "Not found", "message": "No active workflow run found for this lead"
                            + (" and workflow" if workflow_id else "")})
    workflow = state.workflows[run["workflow_id"]]
    target = next((status for status in workflow["statuses"] if status["key"] == key), None)
    if target is None:
        keys = ", ".join(status["key"] for status in workflow["statuses"])
        raise validation(f"Unknown status_key {key!r} for workflow {workflow['name']}; valid keys: {keys}")
    previous = run["status_key"]
    answer: Json = {"success": True, "changed": previous != key, "previous_status": previous, "new_status": key,
                    "workflow_run": {"id": run["id"], "workflow_id": run["workflow_id"]}}
    if previous == key:
        return 200, answer
    run.update(status_key=key, status_reason=reason)
    if target["is_terminal"]:
        run.update(cadence_state="stopped", run_status="completed", pending_tasks=0)
    elif run["run_status"] == "completed":
        run.update(cadence_state="paused", run_status="running")
    state.record(lead["id"], activity("status_changed", f"Status changed to {target['label']}",
                                      reason or f"{previous} → {key}", now(), "api"))
    return 200, answer
