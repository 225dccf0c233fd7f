"""The AI's work on a lead: see and stop it (human takeover), give it back, move the lead to another
workflow or status."""

from __future__ import annotations

from pydantic import MISSING, Field

from nexor_mcp.client import Json, NexorClient, OnRetry
from nexor_mcp.tools.arguments import UnknownArgumentHints
from nexor_mcp.tools.fields import FreeText, Text, Uuid, confirmation, dry_run
from nexor_mcp.tools.leads import LEAD_ID, PASSED_THROUGH
from nexor_mcp.tools.preview import Facts, Preview, active_run, change_line, lead_name, takeover, workflow_name
from nexor_mcp.tools.spec import CONFIRMED, Arguments, Group, ToolSpec

WORKFLOW_ID = "The workflow's UUID (get_lead shows the lead's active run)."
HINTS = UnknownArgumentHints(aliases={"workflowid": "workflow_id", "workflow": "workflow_id", "id": "lead_id"})


class StatusArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    workflow_id: Uuid | MISSING = Field(MISSING, description="Default: any active run.")


async def get_automation_status(client: NexorClient, arguments: StatusArguments, on_retry: OnRetry | None) -> Json:
    workflow_id = None if arguments.workflow_id is MISSING else arguments.workflow_id
    return await client.get_automation_status(arguments.lead_id, workflow_id, on_retry)


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
    return await client.list_workflows(on_retry)


LIST_WORKFLOWS = ToolSpec(
    name="list_workflows",
    title="List workflows",
    description="List the account's workflows with their ids, as Nexor returns them (for workflow_id arguments).",
    group=Group.READ,
    arguments=NoArguments,
    output_schema={"type": "object", "properties": {"workflows": {}}, "required": ["workflows"]},
    handler=list_workflows,
)


class TakeoverArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    workflow_id: Uuid = Field(description=WORKFLOW_ID)
    dry_run: bool = dry_run()


async def stop_automation(client: NexorClient, arguments: TakeoverArguments, on_retry: OnRetry | None) -> Json:
    return await client.stop_automation(arguments.lead_id, arguments.workflow_id, on_retry)


async def preview_stop(arguments: TakeoverArguments, facts: Facts) -> Preview:
    before, after, changes = takeover(facts.lead, paused=True)
    who = lead_name(facts.lead, arguments.lead_id)
    return Preview(
        summary=f"Stop the AI for {who} in workflow {arguments.workflow_id}: a human takes over.",
        before=before, after=after, changes=changes, no_op=before is not None and not changes,
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
    handler=stop_automation,
    hints=HINTS,
    preview=preview_stop,
)


class ResumeArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    workflow_id: Uuid = Field(description=WORKFLOW_ID)
    resume_cadence: bool = Field(
        False, description="false (default): only the AI's replies come back. true also restarts outreach: "
        "Nexor starts contacting the lead again."
    )
    dry_run: bool = dry_run()
    confirmation: Text | MISSING = confirmation()


async def resume_automation(client: NexorClient, arguments: ResumeArguments, on_retry: OnRetry | None) -> Json:
    return await client.resume_automation(arguments.lead_id, arguments.workflow_id, arguments.resume_cadence, on_retry)


async def preview_resume(arguments: ResumeArguments, facts: Facts) -> Preview:
    before, after, changes = takeover(facts.lead, paused=False)
    who = lead_name(facts.lead, arguments.lead_id)
    workflow = await workflow_name(facts.client, arguments.workflow_id)
    what = (
        "the AI answers again AND Nexor restarts outreach: it will contact the lead"
        if arguments.resume_cadence else "the AI answers the lead's messages again; no new outreach"
    )
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
    handler=resume_automation,
    hints=HINTS,
    preview=preview_resume,
)


class AssignArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    workflow_id: Uuid = Field(description="The workflow to enroll the lead in (from list_workflows).")
    reason: FreeText | MISSING = Field(MISSING, description="Why; kept on the replaced run.")
    dry_run: bool = dry_run()
    confirmation: Text | MISSING = confirmation()


async def assign_workflow(client: NexorClient, arguments: AssignArguments, on_retry: OnRetry | None) -> Json:
    reason = None if arguments.reason is MISSING else arguments.reason
    return await client.assign_workflow(arguments.lead_id, arguments.workflow_id, reason, on_retry)


async def preview_assign(arguments: AssignArguments, facts: Facts) -> Preview:
    run = active_run(facts.lead)
    old = run.get("workflow_id") if run else None
    workflow = await workflow_name(facts.client, arguments.workflow_id)
    who = lead_name(facts.lead, arguments.lead_id)
    replaced = f", replacing its current workflow {old}" if old else ""
    return Preview(
        summary=f"Enroll {who} in workflow {workflow}{replaced}. Its cadence starts at once: Nexor may "
        "contact the lead.",
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
    handler=assign_workflow,
    destructive=True,
    idempotent=False,
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


async def set_lead_status(client: NexorClient, arguments: SetStatusArguments, on_retry: OnRetry | None) -> Json:
    return await client.set_lead_status(arguments.lead_id, arguments.payload(exclude=("lead_id",)), on_retry)


async def preview_status(arguments: SetStatusArguments, facts: Facts) -> Preview:
    run = active_run(facts.lead)
    status = run.get("current_status", run.get("currentStatus")) if run else None
    old = status.get("key") if isinstance(status, dict) else None
    who = lead_name(facts.lead, arguments.lead_id)
    return Preview(
        summary=f"Set the status of {who} to {arguments.status_key!r} (now {old or 'unknown'}); a terminal "
        "status cancels its follow-ups.",
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
    handler=set_lead_status,
    preview=preview_status,
    destructive=True,
    hints=UnknownArgumentHints(aliases={"status": "status_key", "statuskey": "status_key", "id": "lead_id"}),
)
