"""Every tool, declared once per resource module, and the choice of which ones an agent sees."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nexor_mcp.config import DEFAULT_TOOLS
from nexor_mcp.tools.automation import (
    ASSIGN_WORKFLOW,
    GET_AUTOMATION_STATUS,
    LIST_WORKFLOWS,
    RESUME_AUTOMATION,
    SET_LEAD_STATUS,
    STOP_AUTOMATION,
)
from nexor_mcp.tools.history import GET_LEAD_HISTORY, GET_LEAD_MEETINGS, RECORD_MEETING
from nexor_mcp.tools.leads import CREATE_LEAD, GET_LEAD, UPDATE_LEAD
from nexor_mcp.tools.messages import LIST_TEMPLATES, SEND_MESSAGE
from nexor_mcp.tools.spec import Group, ToolSpec
from nexor_mcp.tools.tags import ADD_LEAD_TAGS, LIST_TAGS, SET_LEAD_TAGS

ALL_TOOLS: tuple[ToolSpec[Any], ...] = (
    GET_LEAD,
    GET_LEAD_HISTORY,
    GET_LEAD_MEETINGS,
    GET_AUTOMATION_STATUS,
    LIST_TAGS,
    LIST_TEMPLATES,
    LIST_WORKFLOWS,
    UPDATE_LEAD,
    CREATE_LEAD,
    ADD_LEAD_TAGS,
    SET_LEAD_TAGS,
    STOP_AUTOMATION,
    RECORD_MEETING,
    RESUME_AUTOMATION,
    ASSIGN_WORKFLOW,
    SET_LEAD_STATUS,
    SEND_MESSAGE,
)
TOOLS_BY_NAME: dict[str, ToolSpec[Any]] = {spec.name: spec for spec in ALL_TOOLS}
DEFAULT_SELECTION = DEFAULT_TOOLS
"""The tools enabled when NEXOR_TOOLS is not set (the settings' default, defined there)."""


class UnknownToolName(ValueError):
    """A name in a tool selection is neither a group nor a tool."""


def select_tools(names: Iterable[str], *, read_only: bool = False) -> tuple[ToolSpec[Any], ...]:
    """The tools a selection enables, in declaration order: groups and tool names may be mixed;
    `read_only` keeps only the read group whatever else was asked for."""
    wanted: set[str] = set()
    groups = {group.value for group in Group}
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name in groups:
            wanted.update(spec.name for spec in ALL_TOOLS if spec.group.value == name)
        elif name in TOOLS_BY_NAME:
            wanted.add(name)
        else:
            raise UnknownToolName(
                f"unknown tool or group {name!r}; groups: {', '.join(sorted(groups))}; "
                f"tools: {', '.join(TOOLS_BY_NAME)}"
            )
    return tuple(
        spec for spec in ALL_TOOLS if spec.name in wanted and (not read_only or spec.group is Group.READ)
    )


def markdown_table() -> str:
    """The README's tool table, derived from the declarations (a test keeps the README in step)."""
    lines = [
        "| Tool | Group | Arguments (* required) | Read-only | Destructive | Idempotent |",
        "|---|---|---|---|---|---|",
    ]
    for spec in ALL_TOOLS:
        fields = spec.arguments.model_fields
        arguments = ", ".join(
            f"`{name}`{'*' if info.is_required() else ''}" for name, info in fields.items()
        ) or "none"
        hints = spec.annotations()
        yes_no = {True: "yes", False: "no", None: "–"}
        lines.append(
            f"| `{spec.name}` | {spec.group.value} | {arguments} | {yes_no[hints.read_only_hint]} "
            f"| {yes_no[hints.destructive_hint]} | {yes_no[hints.idempotent_hint]} |"
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "ALL_TOOLS",
    "DEFAULT_SELECTION",
    "TOOLS_BY_NAME",
    "Group",
    "ToolSpec",
    "UnknownToolName",
    "markdown_table",
    "select_tools",
]
