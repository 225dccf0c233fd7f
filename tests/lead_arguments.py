"""The argument checks of `get_lead` and `update_lead` as the unit tests use them: the arguments a
caller sends in, the lead id and the exact PATCH body out, or `InvalidArguments`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nexor_mcp.tools.leads import CLEARABLE, GET_LEAD, UPDATABLE, UPDATE_LEAD, update_body

NULLABLE_FIELDS = CLEARABLE
UPDATABLE_FIELDS = UPDATABLE


@dataclass(frozen=True, slots=True)
class LeadUpdate:
    lead_id: str
    body: dict[str, Any]


def parse_update_arguments(arguments: dict[str, Any] | None) -> LeadUpdate:
    checked = UPDATE_LEAD.parse(arguments)
    return LeadUpdate(checked.lead_id, update_body(checked))


def parse_get_arguments(arguments: dict[str, Any] | None) -> str:
    return GET_LEAD.parse(arguments).lead_id
