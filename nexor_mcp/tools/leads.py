"""Leads: read one, update its fields, create one that came in elsewhere."""

from __future__ import annotations

import json
from typing import Annotated, Any, Self

from pydantic import MISSING, Field, PlainValidator, ValidationInfo, WithJsonSchema, model_validator

from nexor_mcp import endpoints
from nexor_mcp.client import NexorClient, OnRetry
from nexor_mcp.errors import NexorError
from nexor_mcp.json_types import Json
from nexor_mcp.request import Request
from nexor_mcp.tools.arguments import UnknownArgumentHints, excerpt, shown_name
from nexor_mcp.tools.fields import (
    MAX_BODY_BYTES,
    Email,
    Metadata,
    NullableEmail,
    NullableText,
    NullableUuid,
    Text,
    Timestamp,
    Uuid,
    dry_run,
    if_unchanged_since,
    problem,
    problem_at,
)
from nexor_mcp.tools.preview import Preview, PreviewInputs, lead_update
from nexor_mcp.tools.spec import CONTROL_ARGUMENTS, Arguments, Group, SendMore, ToolSpec

LEAD_ID = "The lead's UUID."
METADATA = (
    "Custom fields, merged: keys sent are set, others kept; null stores null (no key removal). "
    'Flat: string, number, boolean, null. Example: {"budget": 5000}.'
)
CAMPAIGN = "Campaign UUID: a label on the lead; unlike a workflow, it contacts nobody."

# The lenient shape of a lead in results: SDK clients validate structuredContent against output
# schemas, and one odd body from Nexor (nulls anywhere, unknown fields) must never make a lead
# unreadable, so a lead is only "an object".
LEAD_OUTPUT = {"type": "object"}
# A write Nexor accepted but whose answer could not be read: {"accepted": true, "message": ...}.
ACCEPTED_OUTPUT: dict[str, Any] = {"accepted": {"type": "boolean"}, "message": {"type": "string"}}
PASSED_THROUGH: dict[str, Any] = {"type": "object"}
"""The output of a write whose answer Nexor documents loosely: that answer minus `success`, or the
accepted outcome above."""

# Names a model plausibly uses for a lead field.
LEAD_ALIASES = {
    "email_address": "email", "mail": "email", "phone_number": "phone", "mobile": "phone",
    "telephone": "phone", "job_title": "title", "position": "title", "role": "title",
    "company_name": "company", "organization": "company", "organisation": "company",
    "surname": "last_name", "lastname": "last_name", "family_name": "last_name",
    "firstname": "first_name", "given_name": "first_name",
    "custom_fields": "metadata", "meta": "metadata", "id": "lead_id",
}
# Lead attributes that exist in Nexor but that a PATCH cannot set: pointing a model at `metadata`
# for these would silently store the wrong thing.
NOT_PATCHABLE = {
    "created_at": "it is set by Nexor",
    "updated_at": "it is set by Nexor",
    "tags": "tags are set with add_lead_tags or set_lead_tags, not by this tool",
    "workflow_id": "workflow enrollment is changed with assign_workflow, not by this tool",
    "status": "the workflow status is changed with set_lead_status, not by this tool",
    "campaign": "use campaign_id (a UUID, or null to remove the campaign)",
    "variables": "variables are extracted by Nexor's AI, not written by this tool",
}


# --- get_lead --------------------------------------------------------------------------------------


class GetLeadArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)


async def get_lead(client: NexorClient, arguments: GetLeadArguments, on_retry: OnRetry | None) -> Json:
    return await client.call(endpoints.get_lead(arguments.lead_id), on_retry)


GET_LEAD = ToolSpec(
    name="get_lead",
    title="Get lead",
    description=(
        "Read one lead: contact fields, metadata, campaign, tags, updated_at, the active workflow run "
        "and its status, and AI-extracted variables when Nexor returns them."
    ),
    group=Group.READ,
    arguments=GetLeadArguments,
    output_schema={
        "type": "object",
        "properties": {
            "lead": LEAD_OUTPUT,
            "variables": {"description": "AI-extracted values by name; {} if none."},
        },
        "required": ["lead"],
    },
    handler=get_lead,
)


# --- update_lead -----------------------------------------------------------------------------------

CLEARABLE = ("last_name", "email", "phone", "company", "title", "campaign_id")


def _clear(value: Any, info: ValidationInfo) -> list[str]:
    expected = f"expected an array of field names to clear, from {', '.join(CLEARABLE)}"
    if not isinstance(value, list):
        raise problem(f'{expected}, e.g. ["phone", "title"]; got {excerpt(value)}')
    names: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise problem(f"{expected}; got {excerpt(item)} in it")
        if item in UPDATABLE and item not in CLEARABLE:
            raise problem(f"{item} cannot be cleared (only {', '.join(CLEARABLE)} can)")
        if item not in CLEARABLE:
            raise problem(f"{shown_name(item)!r} is not a field; {expected}")
        if item not in names:
            names.append(item)
    return names


Clear = Annotated[
    list[str],
    PlainValidator(_clear),
    WithJsonSchema({"type": "array", "items": {"type": "string", "enum": list(CLEARABLE)}}),
]


class UpdateLeadArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    first_name: Text | MISSING = Field(MISSING, description='Cannot be null. Example: "Ana".')
    last_name: NullableText | MISSING = Field(MISSING, description='null clears it. Example: "Rojas".')
    email: NullableEmail | MISSING = Field(MISSING, description='null clears it. Example: "ana@example.com".')
    phone: NullableText | MISSING = Field(
        MISSING, description='Ideally E.164. null clears it. Example: "+56987654321".'
    )
    company: NullableText | MISSING = Field(MISSING, description='null clears it. Example: "Acme SpA".')
    title: NullableText | MISSING = Field(MISSING, description='Job title. null clears it. Example: "CTO".')
    source: Text | MISSING = Field(MISSING, description='Where the lead came from. Cannot be null. Example: "website".')
    campaign_id: NullableUuid | MISSING = Field(MISSING, description=CAMPAIGN + " null removes it.")
    metadata: Metadata | MISSING = Field(MISSING, description=METADATA)
    clear: Clear | MISSING = Field(
        MISSING,
        description='Fields to clear (as null does), for clients that cannot send null. Example: ["phone"].',
    )
    if_unchanged_since: Timestamp | MISSING = if_unchanged_since()
    dry_run: bool = dry_run()

    @model_validator(mode="after")
    def _whole_update(self) -> Self:
        for name in self.clear if self.clear is not MISSING else ():
            if name in self.model_fields_set:
                raise problem_at("clear", f"{name} is both set and cleared; pass it in one place only")
        body = update_body(self)
        if not body:
            raise problem(f"nothing to update: pass lead_id and at least one field to change ({', '.join(UPDATABLE)})"
                          ", or clear")
        size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_BODY_BYTES:
            raise problem(
                f"the update is {size:,} bytes of JSON, over the {MAX_BODY_BYTES // 1024} KiB limit; "
                "send less at once (split metadata over several calls)"
            )
        return self


UPDATABLE = tuple(
    name for name in UpdateLeadArguments.model_fields if name not in ("lead_id", "clear", *CONTROL_ARGUMENTS)
)


def update_body(arguments: UpdateLeadArguments) -> Json:
    """The PATCH body: exactly the fields the caller wrote (`null` kept), plus null for each cleared one."""
    body: Json = {name: getattr(arguments, name) for name in UPDATABLE if name in arguments.model_fields_set}
    if arguments.clear is not MISSING:
        body.update(dict.fromkeys(arguments.clear))
    return body


def update_lead(arguments: UpdateLeadArguments) -> Request:
    return endpoints.update_lead(arguments.lead_id, update_body(arguments))


async def preview_update(arguments: UpdateLeadArguments, inputs: PreviewInputs) -> Preview:
    assert inputs.lead is not None and inputs.request.body is not None
    return lead_update(inputs.lead, inputs.request.body)


UPDATE_LEAD = ToolSpec(
    name="update_lead",
    title="Update lead",
    description="""\
Update one lead: send lead_id and only the fields to change. Omitted fields stay; null (or clear) clears; \
metadata is merged. Custom fields (budget, notes...) go in metadata.
Returns the lead; if lead is null and accepted is true, it was applied: do not repeat it.
Example: {"lead_id": "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b", "title": "CTO", "metadata": {"budget": 5000}}""",
    group=Group.WRITE,
    arguments=UpdateLeadArguments,
    output_schema={
        "type": "object",
        "properties": {
            "lead": {"anyOf": [{"type": "object"}, {"type": "null"}]},
            **ACCEPTED_OUTPUT,
        },
    },
    request=update_lead,
    writes="PATCH /leads/{id}",
    destructive=True,
    hints=UnknownArgumentHints(aliases=LEAD_ALIASES, not_here=NOT_PATCHABLE, custom_fields=True),
    preview=preview_update,
    undoable=True,
)


# --- create_lead ---------------------------------------------------------------------------------

SET_AFTER_CREATE = ("company", "title", "source")
"""Lead fields POST /leads does not take as fields (it files unknown top-level keys under metadata):
they are set by one PATCH right after the create."""


class CreateLeadArguments(Arguments):
    first_name: Text = Field(description='Example: "Ana".')
    last_name: Text | MISSING = Field(MISSING, description='Example: "Rojas".')
    email: Email | MISSING = Field(MISSING, description='Example: "ana@example.com".')
    phone: Text | MISSING = Field(MISSING, description='Ideally E.164. Example: "+56987654321".')
    company: Text | MISSING = Field(MISSING, description='Example: "Acme SpA".')
    title: Text | MISSING = Field(MISSING, description='Job title. Example: "CTO".')
    source: Text | MISSING = Field(MISSING, description='Where it came from; default "api".')
    campaign_id: Uuid | MISSING = Field(MISSING, description=CAMPAIGN)
    metadata: Metadata | MISSING = Field(
        MISSING, description='Custom fields, flat. Example: {"budget": 5000}.'
    )

    @model_validator(mode="after")
    def _whole_lead(self) -> Self:
        size = len(json.dumps(self.model_dump(exclude_unset=True), ensure_ascii=False).encode())
        if size > MAX_BODY_BYTES:
            raise problem(f"the lead is {size:,} bytes of JSON, over the {MAX_BODY_BYTES // 1024} KiB limit")
        return self


def create_lead(arguments: CreateLeadArguments) -> Request:
    """POST /leads (never retried) with all but company, title and source (see `set_after_create`)."""
    return endpoints.create_lead(arguments.payload(exclude=SET_AFTER_CREATE))


async def set_after_create(arguments: CreateLeadArguments, created: Json, send_more: SendMore) -> Json:
    """If company, title or source were given, one PATCH with exactly them on the new lead. A failed
    second step never undoes or repeats the first: it says the lead exists."""
    later: Json = {name: getattr(arguments, name) for name in SET_AFTER_CREATE if name in arguments.model_fields_set}
    if not later:
        return created
    lead = created.get("lead")
    lead_id = lead.get("id") if isinstance(lead, dict) else None
    missing = ", ".join(f"{name} {json.dumps(value, ensure_ascii=False)}" for name, value in later.items())
    if not isinstance(lead_id, str):
        message = (
            f"{created.get('message', 'Nexor created the lead, but its answer has no lead id.')} "
            f"The lead EXISTS, but {missing} could not be set, since that needs its id: do not create it "
            "again; once the user has found its id in Nexor, set them with update_lead."
        )
        return {**created, "accepted": True, "incomplete": later, "message": message}
    try:
        updated = await send_more(endpoints.update_lead(lead_id, later))
    except NexorError as error:
        retry = json.dumps({"lead_id": lead_id, **later}, ensure_ascii=False)
        message = (
            f"The lead was created and EXISTS in Nexor (id {lead_id}): do not call create_lead again. "
            f"But setting {missing} on it failed: {error} To set them, call update_lead with {retry}."
        )
        return {**created, "accepted": True, "incomplete": later, "message": message}
    if updated.get("lead") is None:  # Nexor accepted the PATCH but its answer could not be read
        message = (
            f"The lead was created (id {lead_id}) and Nexor accepted {missing} for it, but its answer "
            "could not be read: call get_lead to see the lead. Do not create it again."
        )
        return {**created, "accepted": True, "message": message}
    return {**created, "lead": updated["lead"]}


CREATE_LEAD = ToolSpec(
    name="create_lead",
    title="Create lead",
    description=(
        "Create one lead that came in elsewhere, in no workflow. Nexor has no lead search and no dedup: "
        "each call makes a new lead; never retried. company/title/source are set by a second request; "
        "if it fails, the message says the lead exists."
    ),
    group=Group.WRITE,
    arguments=CreateLeadArguments,
    output_schema={
        "type": "object",
        "properties": {
            "lead": {"anyOf": [{"type": "object"}, {"type": "null"}]},
            **ACCEPTED_OUTPUT,
            "incomplete": {"type": "object"},
        },
        "required": ["lead"],
    },
    request=create_lead,
    after=set_after_create,
    writes="POST /leads",
    destructive=False,
    hints=UnknownArgumentHints(
        aliases=LEAD_ALIASES,
        not_here={
            "workflow_id": "create_lead never enrolls; use assign_workflow after creating",
            "tags": "tag the lead after creating it, with add_lead_tags or set_lead_tags",
        },
        custom_fields=True,
    ),
)
