"""The writable lead fields: one table that both the published schema and the validator read.

Keeping the field list in one place means the schema an agent sees and the checks the server
applies can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldKind = Literal["text", "email", "uuid", "metadata"]


@dataclass(frozen=True, slots=True)
class LeadField:
    """One field of the `PATCH /leads/{id}` body."""

    name: str
    kind: FieldKind
    nullable: bool
    description: str


LEAD_ID_DESCRIPTION = (
    "Id of the lead to act on, a UUID as Nexor returns it, "
    'e.g. "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b".'
)

LEAD_FIELDS: tuple[LeadField, ...] = (
    LeadField(
        "first_name", "text", False,
        'New first name. Cannot be null or empty. Example: "Ana".',
    ),
    LeadField(
        "last_name", "text", True,
        'New last name. null clears it. Example: "Rojas".',
    ),
    LeadField(
        "email", "email", True,
        'New email address. null clears it. Example: "ana.rojas@example.com".',
    ),
    LeadField(
        "phone", "text", True,
        'New phone number, ideally E.164 (+ and digits). null clears it. Example: "+56987654321".',
    ),
    LeadField(
        "company", "text", True,
        'Company the lead works for. null clears it. Example: "Acme SpA".',
    ),
    LeadField(
        "title", "text", True,
        'Job title. null clears it. Example: "Head of Sales".',
    ),
    LeadField(
        "source", "text", False,
        'Where the lead came from. Cannot be null or empty. Example: "website".',
    ),
    LeadField(
        "campaign_id", "uuid", True,
        "UUID of the Nexor campaign to attach the lead to. null removes the lead from its campaign. "
        'Example: "0b7e2d4c-5f61-4a8e-9c3b-2a1d0e9f8b7c".',
    ),
    LeadField(
        "metadata", "metadata", False,
        "Custom fields, merged into the lead's existing metadata: keys you send are added or "
        "overwritten, keys you leave out are kept. Values are strings, numbers, booleans or null "
        "(no nested objects or arrays); a null value sets that key to null (Nexor documents no way "
        "to delete a key). Any field not listed above goes here. "
        'Example: {"budget": 5000, "interested_in": "premium plan", "decision_maker": true}.',
    ),
)

FIELDS_BY_NAME: dict[str, LeadField] = {field.name: field for field in LEAD_FIELDS}
