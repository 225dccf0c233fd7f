"""What agents see: tool names, descriptions, input/output schemas and annotations.

The schemas are written out here rather than generated from function signatures so that every
field carries a description for the model, nullable fields use the portable `anyOf [..., null]`
spelling, and `additionalProperties: false` is published (and enforced by `validation.py`).
`tests/snapshots/tools_list.json` freezes all of it: any change is a reviewed diff.
"""

from __future__ import annotations

from typing import Any

from mcp.types import Tool, ToolAnnotations

from nexor_mcp.fields import LEAD_FIELDS, LEAD_ID_DESCRIPTION, LeadField

_SCALAR = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]


def _field_schema(field: LeadField) -> dict[str, Any]:
    if field.kind == "metadata":
        return {
            "type": "object",
            "additionalProperties": {"anyOf": _SCALAR},
            "description": field.description,
        }
    base: dict[str, Any] = {"type": "string"}
    base.update({"format": field.kind} if field.kind in ("email", "uuid") else {"minLength": 1})
    if field.nullable:
        return {"anyOf": [base, {"type": "null"}], "description": field.description}
    return {**base, "description": field.description}


_LEAD_ID_SCHEMA = {"type": "string", "format": "uuid", "description": LEAD_ID_DESCRIPTION}

_NULLABLE_NAMES = [field.name for field in LEAD_FIELDS if field.nullable]

_CLEAR_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "enum": _NULLABLE_NAMES},
    "description": "Fields to clear, for clients that cannot send null: the same as passing null for each. "
    'A field cannot be both set and cleared. Example: ["phone", "title"].',
}

UPDATE_LEAD_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "lead_id": _LEAD_ID_SCHEMA,
        **{field.name: _field_schema(field) for field in LEAD_FIELDS},
        "clear": _CLEAR_SCHEMA,
    },
    "required": ["lead_id"],
    "additionalProperties": False,
}

GET_LEAD_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {"lead_id": _LEAD_ID_SCHEMA},
    "required": ["lead_id"],
    "additionalProperties": False,
}

# Lenient on purpose: SDK clients validate structuredContent against these, and one odd body from
# Nexor (nulls anywhere, an empty list where an object is documented, unknown fields) must never
# make a lead unreadable. So the lead is only "an object", and nothing else is typed more tightly
# than the server can guarantee; `tests/test_output_schemas.py` checks this with odd bodies.
_LEAD_OUTPUT = {"type": "object", "description": "The lead as Nexor returned it, every field kept; any may be null."}

UPDATE_LEAD_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "lead": {
            "anyOf": [{"type": "object"}, {"type": "null"}],
            "description": "The updated lead as Nexor returned it, every field kept (any may be null); "
            "null only when accepted is true.",
        },
        "accepted": {
            "type": "boolean",
            "description": "Present only when Nexor accepted the update but its answer could not be read: "
            "the update was applied; do not repeat it, call get_lead to see the lead.",
        },
        "message": {"type": "string", "description": "With accepted: what happened, in words."},
    },
    "required": ["lead"],
}

GET_LEAD_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "lead": _LEAD_OUTPUT,
        "variables": {
            "description": "AI-extracted values by name: {value, value_text, confidence, updated_at}; {} if none.",
        },
    },
    "required": ["lead"],
}

UPDATE_LEAD_DESCRIPTION = """\
Update fields of one Nexor lead (a partial update: PATCH).
Send lead_id plus only the fields to change:
- an omitted field is left exactly as it is;
- null clears a field (last_name, email, phone, company, title, campaign_id), as does clear: ["phone"]; \
first_name and source cannot be cleared;
- metadata is merged: keys you send are added or overwritten, keys you leave out are kept.
Custom fields (budget, notes, anything not listed) always go inside metadata.
Values are stored exactly as given. Returns the updated lead (if Nexor accepted the update but sent no \
readable lead, lead is null and accepted is true: do not repeat the update).
Example: {"lead_id": "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b", "title": "CTO", "metadata": {"budget": 5000}}"""

GET_LEAD_DESCRIPTION = """\
Read one Nexor lead by id: contact fields, source, metadata, campaign, tags, the active \
workflow run with its current status, and the variables Nexor's AI extracted. \
Use it before update_lead to see current values. Example: {"lead_id": "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"}"""

UPDATE_LEAD = Tool(
    name="update_lead",
    title="Update lead",
    description=UPDATE_LEAD_DESCRIPTION,
    input_schema=UPDATE_LEAD_INPUT,
    output_schema=UPDATE_LEAD_OUTPUT,
    annotations=ToolAnnotations(
        title="Update lead",  # also here: clients on protocol versions before Tool.title read this one
        read_only_hint=False,
        destructive_hint=True,
        idempotent_hint=True,
        open_world_hint=True,
    ),
)

GET_LEAD = Tool(
    name="get_lead",
    title="Get lead",
    description=GET_LEAD_DESCRIPTION,
    input_schema=GET_LEAD_INPUT,
    output_schema=GET_LEAD_OUTPUT,
    annotations=ToolAnnotations(
        title="Get lead",
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=True,
    ),
)

TOOLS: tuple[Tool, ...] = (GET_LEAD, UPDATE_LEAD)
