"""The AI's work on a lead: see and stop it (human takeover), give it back, move the lead to another
workflow or status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import MISSING, Field

from nexor_mcp import endpoints
from nexor_mcp.client import NexorClient, OnRetry
from nexor_mcp.json_types import Json
from nexor_mcp.quoting import quote
from nexor_mcp.request import Request
from nexor_mcp.tools.arguments import InvalidArguments, Problem, UnknownArgumentHints
from nexor_mcp.tools.fields import FreeText, Text, Uuid, confirmation, dry_run
from nexor_mcp.tools.leads import LEAD_ID, PASSED_THROUGH
from nexor_mcp.tools.preview import (
    Preview,
    PreviewInputs,
    active_run,
    change_line,
    lead_name,
    listed_workflows,
    quoted_list,
    run_workflow_id,
    shown,
    takeover,
    whole,
    workflow_in,
    workflow_label,
    workflow_name,
)
from nexor_mcp.tools.spec import CONFIRMED, Arguments, CurrentLead, Group, SendMore, ToolSpec

WORKFLOW_ID = "The workflow's UUID (get_lead shows the lead's active run)."
RUN_WORKFLOW_ID = "Default: the workflow of the lead's active run (get_lead shows it)."
NO_RUN = (
    "needed for this lead: Nexor's answer for it names no active workflow run, so there is none to take "
    "by default (and nexor-mcp never guesses one). Pass workflow_id: get_lead shows the lead's active run "
    "(active_workflow_run.workflow_id), list_workflows lists the account's workflows, and "
    "get_automation_status with a workflow_id tells whether a human has taken over there"
)
HINTS = UnknownArgumentHints(aliases={"workflowid": "workflow_id", "workflow": "workflow_id", "id": "lead_id"})


class StatusArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    workflow_id: Uuid | MISSING = Field(MISSING, description="Default: any active run.")


async def get_automation_status(client: NexorClient, arguments: StatusArguments, on_retry: OnRetry | None) -> Json:
    workflow_id = None if arguments.workflow_id is MISSING else arguments.workflow_id
    return await client.call(endpoints.get_automation_status(arguments.lead_id, workflow_id), on_retry)


GET_AUTOMATION_STATUS = ToolSpec(
    name="get_automation_status",
    title="Get automation status",
    description="Whether a human has taken over the lead (paused: the AI does not answer it).",
    group=Group.READ,
    arguments=StatusArguments,
    output_schema={"type": "object", "properties": {"paused": {"type": "boolean"}}, "required": ["paused"]},
    handler=get_automation_status,
    hints=HINTS,
)


class NoArguments(Arguments):
    pass


async def list_workflows(client: NexorClient, arguments: NoArguments, on_retry: OnRetry | None) -> Json:
    return await client.call(endpoints.list_workflows(), on_retry)


LIST_WORKFLOWS = ToolSpec(
    name="list_workflows",
    title="List workflows",
    description="List the account's workflows with their ids, as Nexor returns them (for workflow_id arguments).",
    group=Group.READ,
    arguments=NoArguments,
    output_schema={"type": "object", "properties": {"workflows": {}}, "required": ["workflows"]},
    handler=list_workflows,
)


class RunArguments(Arguments):
    """The arguments of a tool that acts on one of the lead's runs, by default its active one."""

    lead_id: Uuid = Field(description=LEAD_ID)
    workflow_id: Uuid | MISSING = Field(MISSING, description=RUN_WORKFLOW_ID)


R = TypeVar("R", bound=RunArguments)


def run_workflow(tool: str) -> Callable[[R, CurrentLead], Awaitable[R]]:
    """The `resolve` of a tool whose workflow_id may be omitted: the workflow of the active run the
    lead's answer names, or a refusal naming workflow_id (nothing is sent)."""

    async def resolve(arguments: R, lead: CurrentLead) -> R:
        if arguments.workflow_id is not MISSING:
            return arguments  # the lead is not read for it
        workflow_id = run_workflow_id(await lead.get())
        if workflow_id is None:
            raise InvalidArguments(tool, [Problem("workflow_id", NO_RUN)])
        return arguments.model_copy(update={"workflow_id": workflow_id})

    return resolve


def sent_workflow_id(inputs: PreviewInputs) -> str:
    """The workflow_id the request carries: the caller's, or the one resolved from the lead."""
    body = inputs.request.body or {}
    workflow_id = body.get("workflow_id", body.get("workflowId"))
    return str(workflow_id)


def run_for(lead: Json | None, workflow_id: str) -> Json | None:
    """The lead as far as its active run is the one in `workflow_id` (else None: what the answer
    says of another run says nothing of this one)."""
    return lead if run_workflow_id(lead) == workflow_id else None


def cadence_line(lead: Json | None, state: str) -> list[str]:
    """The change of the run's cadence_state to `state` (none when it is already there)."""
    run = active_run(lead)
    old = run.get("cadence_state", run.get("cadenceState")) if run else None
    if not isinstance(old, str):
        return [f"cadence_state: → {shown(state)}"]
    return [change_line("cadence_state", old, state)] if old != state else []


class TakeoverArguments(RunArguments):
    dry_run: bool = dry_run()


def stop_automation(arguments: TakeoverArguments) -> Request:
    return endpoints.stop_automation(arguments.lead_id, str(arguments.workflow_id))


async def took_over(arguments: TakeoverArguments, result: Json, send_more: SendMore) -> Json:
    """Nexor's answer to a stop, saying in words what it means: a human has the lead now."""
    workflow_id = str(arguments.workflow_id)
    if result.get("accepted") is True:
        return result  # applied, but the answer could not be read: its message says so
    if result.get("already_stopped") is True:
        message = (f"A human had already taken over this lead in workflow {workflow_id}; nothing changed. "
                   "The AI does not answer it; resume_automation gives it back.")
    else:
        cancelled = result.get("tasks_cancelled")
        tasks = (f"{cancelled} pending task(s) were cancelled" if type(cancelled) is int
                 else "its pending tasks were cancelled")
        message = (f"A human has taken over this lead in workflow {workflow_id}: the AI no longer answers it, "
                   f"its cadence is paused and {tasks}. resume_automation gives it back to the AI.")
    return {**result, "human_takeover": True, "workflow_id": workflow_id, "message": message}


async def preview_stop(arguments: TakeoverArguments, inputs: PreviewInputs) -> Preview:
    workflow_id = sent_workflow_id(inputs)
    lead = run_for(inputs.lead, workflow_id)
    before, after, changes = takeover(lead, paused=True)
    who = lead_name(inputs.lead, arguments.lead_id)
    workflow = await workflow_name(inputs.client, workflow_id)
    if before is not None and not changes:
        return Preview(summary=f"A human has already taken over {who} in workflow {workflow}: Nexor changes nothing.",
                       before=before, after=after, no_op=True)
    changes += [*cadence_line(lead, "paused"), "pending scheduled tasks: cancelled (Nexor's answer says how many)"]
    return Preview(
        summary=f"Stop the AI for {who} in workflow {workflow}: a human takes over. The AI stops answering the "
        "lead, its cadence is paused and its pending scheduled tasks are cancelled; resume_automation gives "
        "it back.",
        before=before, after={**after, "cadence_state": "paused", "pending_tasks": "cancelled"}, changes=changes,
    )


STOP_AUTOMATION = ToolSpec(
    name="stop_automation",
    title="Stop automation (human takeover)",
    description=(
        "Hand the lead to a human: the AI stops answering, the cadence pauses, pending tasks are "
        "cancelled. Undo with resume_automation."
    ),
    group=Group.WRITE,
    arguments=TakeoverArguments,
    output_schema=PASSED_THROUGH,
    request=stop_automation,
    after=took_over,
    writes="POST /leads/{id}/automation/stop",
    hints=HINTS,
    preview=preview_stop,
    resolve=run_workflow("stop_automation"),
)


class ResumeArguments(RunArguments):
    resume_cadence: bool = Field(
        False, description="false (default): only the AI's replies come back. true also restarts outreach: "
        "Nexor starts contacting the lead again."
    )
    dry_run: bool = dry_run()
    confirmation: Text | MISSING = confirmation()


def resume_automation(arguments: ResumeArguments) -> Request:
    return endpoints.resume_automation(arguments.lead_id, str(arguments.workflow_id), arguments.resume_cadence)


async def given_back(arguments: ResumeArguments, result: Json, send_more: SendMore) -> Json:
    """Nexor's answer to a resume, in words: whether the AI has the lead again, and its cadence."""
    workflow_id = str(arguments.workflow_id)
    if result.get("accepted") is True:
        return result
    if result.get("already_running") is True:
        message = f"The AI already had this lead in workflow {workflow_id}; nothing changed."
    else:
        cadence = ("its cadence restarted: Nexor will contact the lead" if result.get("cadence_resumed") is True
                   else "its cadence was not restarted")
        message = f"The AI answers this lead again in workflow {workflow_id}; {cadence}."
    return {**result, "human_takeover": False, "workflow_id": workflow_id, "message": message}


async def preview_resume(arguments: ResumeArguments, inputs: PreviewInputs) -> Preview:
    workflow_id = sent_workflow_id(inputs)
    lead = run_for(inputs.lead, workflow_id)
    before, after, changes = takeover(lead, paused=False)
    who = lead_name(inputs.lead, arguments.lead_id)
    workflow = await workflow_name(inputs.client, workflow_id)
    what = (
        "the AI answers again AND Nexor restarts outreach: it will contact the lead"
        if arguments.resume_cadence else "the AI answers the lead's messages again; no new outreach"
    )
    if arguments.resume_cadence:
        changes += cadence_line(lead, "active")
    return Preview(summary=f"Give {who} back to the AI in workflow {workflow}: {what}.",
                   before=before, after={**after, "resume_cadence": arguments.resume_cadence}, changes=changes)


RESUME_AUTOMATION = ToolSpec(
    name="resume_automation",
    title="Resume automation",
    description="Give the lead back to the AI after a human takeover. With resume_cadence: true, outreach restarts."
    + CONFIRMED,
    group=Group.AUTOMATION,
    arguments=ResumeArguments,
    output_schema=PASSED_THROUGH,
    request=resume_automation,
    after=given_back,
    writes="POST /leads/{id}/automation/resume",
    hints=HINTS,
    preview=preview_resume,
    resolve=run_workflow("resume_automation"),
)


class AssignArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    workflow_id: Uuid = Field(description="The workflow to enroll the lead in (from list_workflows).")
    reason: FreeText | MISSING = Field(MISSING, description="Why; kept on the replaced run.")
    dry_run: bool = dry_run()
    confirmation: Text | MISSING = confirmation()


def assign_workflow(arguments: AssignArguments) -> Request:
    reason = None if arguments.reason is MISSING else arguments.reason
    return endpoints.assign_workflow(arguments.lead_id, arguments.workflow_id, reason)


def run_workflow_label(lead: Json | None, listed: list[Json]) -> str | None:
    """The workflow of the lead's active run, for a person: from the listing, else the run's own
    `workflow` object; None when the lead's answer names no run."""
    workflow_id = run_workflow_id(lead)
    if workflow_id is None:
        return None
    run = active_run(lead) or {}
    own = run.get("workflow") if isinstance(run.get("workflow"), dict) else None
    return workflow_label(workflow_id, workflow_in(listed, workflow_id) or own)


async def preview_assign(arguments: AssignArguments, inputs: PreviewInputs) -> Preview:
    old = run_workflow_id(inputs.lead)
    listed = await listed_workflows(inputs.client)
    workflow = workflow_label(arguments.workflow_id, workflow_in(listed, arguments.workflow_id))
    current = run_workflow_label(inputs.lead, listed)
    who = lead_name(inputs.lead, arguments.lead_id)
    replaced = f", replacing its current workflow {current}" if current else ""
    lines = [f"Enroll {who} in workflow {workflow}{replaced}. Its cadence starts at once: Nexor may contact the lead."]
    if arguments.reason is not MISSING:
        kept = "kept on the replaced run" if current else "Nexor keeps it only when a run is replaced"
        lines.append(f"Reason ({kept}): {whole(arguments.reason)}")
    return Preview(
        summary="\n".join(lines),
        before={"workflow_id": old}, after={"workflow_id": arguments.workflow_id},
        changes=[change_line("workflow_id", old, arguments.workflow_id)],
    )


ASSIGN_WORKFLOW = ToolSpec(
    name="assign_workflow",
    title="Assign workflow",
    description=(
        "Enroll the lead in a workflow, replacing its current one. Its cadence starts at once: "
        "Nexor begins contacting the lead unless the workflow is paused." + CONFIRMED
    ),
    group=Group.AUTOMATION,
    arguments=AssignArguments,
    output_schema=PASSED_THROUGH,
    request=assign_workflow,
    writes="POST /leads/{id}/assign-workflow",
    destructive=True,
    hints=HINTS,
    preview=preview_assign,
)


class SetStatusArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    status_key: Text = Field(description='A status key of the lead\'s workflow. Example: "qualified".')
    reason: FreeText | MISSING = Field(MISSING, description="Why; saved in the status history.")
    workflow_id: Uuid | MISSING = Field(MISSING, description="Needed only when the lead has several active runs.")
    dry_run: bool = dry_run()
    confirmation: Text | MISSING = confirmation()


def set_lead_status(arguments: SetStatusArguments) -> Request:
    return endpoints.set_lead_status(arguments.lead_id, arguments.payload(exclude=("lead_id",)))


def current_status_key(lead: Json | None) -> str | None:
    """The key of the lead's status now: in its active run, or at the top of the legacy shape."""
    run = active_run(lead) or {}
    for holder in (run, lead or {}):
        status = holder.get("current_status", holder.get("currentStatus"))
        if isinstance(status, dict) and isinstance(status.get("key"), str):
            return str(status["key"])
    return None


def terminal_sentence(key: str, workflow: Json | None) -> str:
    """Whether THIS status is terminal (Nexor then cancels the run's pending follow-ups), as far as
    the workflow listing says; said plainly when it does not."""
    statuses = workflow.get("statuses") if workflow else None
    listed = [status for status in statuses if isinstance(status, dict)] if isinstance(statuses, list) else []
    target = next((status for status in listed if status.get("key") == key), None)
    flag = next((target[name] for name in ("is_terminal", "isTerminal", "terminal")
                 if target is not None and isinstance(target.get(name), bool)), None)
    if flag is True:
        return (f"{quote(key)} is a terminal status: Nexor cancels the run's pending follow-ups (and runs a "
                "workflow transfer if one is set for it).")
    if flag is False:
        return f"{quote(key)} is not a terminal status: the run's follow-ups go on."
    if listed and target is None:
        keys = [str(status.get("key")) for status in listed]
        return f"{quote(key)} is not among the workflow's listed statuses ({quoted_list(keys)}): Nexor will refuse it."
    return (f"Nexor's workflow listing does not say whether {quote(key)} is terminal; if it is, the run's "
            "pending follow-ups are cancelled.")


async def preview_status(arguments: SetStatusArguments, inputs: PreviewInputs) -> Preview:
    workflow_id = arguments.workflow_id if arguments.workflow_id is not MISSING else run_workflow_id(inputs.lead)
    old = current_status_key(run_for(inputs.lead, workflow_id) if workflow_id else inputs.lead)
    workflow = workflow_in(await listed_workflows(inputs.client), workflow_id) if workflow_id else None
    who = lead_name(inputs.lead, arguments.lead_id)
    where = f" in workflow {workflow_label(workflow_id, workflow)}" if workflow_id else ""
    now = quote(old) if old is not None else "unknown"
    lines = [f"Set the status of {who} to {quote(arguments.status_key)} (now {now}){where}.",
             terminal_sentence(arguments.status_key, workflow)]
    if arguments.reason is not MISSING:
        lines.append(f"Reason (saved in the status history): {whole(arguments.reason)}")
    return Preview(
        summary="\n".join(lines),
        before={"status_key": old}, after={"status_key": arguments.status_key},
        changes=[change_line("status_key", old, arguments.status_key)] if old != arguments.status_key else [],
        no_op=old == arguments.status_key,
    )


SET_LEAD_STATUS = ToolSpec(
    name="set_lead_status",
    title="Set lead status",
    description=(
        "Force the lead's status in its workflow. A terminal status (e.g. lost) cancels its follow-ups. "
        "Returns changed, previous_status and new_status." + CONFIRMED
    ),
    group=Group.AUTOMATION,
    arguments=SetStatusArguments,
    output_schema=PASSED_THROUGH,
    request=set_lead_status,
    writes="POST /leads/{id}/status",
    preview=preview_status,
    destructive=True,
    hints=UnknownArgumentHints(aliases={"status": "status_key", "statuskey": "status_key", "id": "lead_id"}),
)
