"""Unit tests of the tool declarations and what derives from them: portable schemas, annotations
that match each tool's consequence, the size budget of tools/list, group selection, and the
README's tool table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp.types import ListToolsResult

from nexor_mcp.tools import ALL_TOOLS, TOOLS_BY_NAME, Group, UnknownToolName, markdown_table, select_tools

README = Path(__file__).parent.parent / "README.md"
TOOLS_DOC = Path(__file__).parent.parent / "docs" / "tools.md"  # each tool with a real call
NOT_IDEMPOTENT = {"create_lead", "record_meeting", "assign_workflow", "send_message"}
DESTRUCTIVE = {"update_lead", "set_lead_tags", "assign_workflow", "set_lead_status", "send_message"}
DEFAULT_BUDGET_BYTES = 14_000


def walk(node: Any, path: str = "") -> list[tuple[str, str, Any]]:
    found: list[tuple[str, str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((path, key, value))
            found.extend(walk(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(walk(value, f"{path}/{index}"))
    return found


@pytest.mark.parametrize("name", list(TOOLS_BY_NAME))
def test_input_schemas_are_portable(name: str) -> None:
    schema = TOOLS_BY_NAME[name].tool().input_schema
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    for path, key, value in walk(schema):
        assert key not in ("$ref", "$defs", "default") or (key == "default" and value is not None), (path, key)
        if key == "title":
            assert path.endswith("/properties"), f"title noise at {path}"  # only a property named title
        if key == "type":
            assert isinstance(value, str), f"{path}: use anyOf, not a type array"
    for prop in schema["properties"].values():
        assert prop.get("description") or prop.get("type") or prop.get("anyOf")


def properties_of(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every property declared anywhere in `schema` (nested objects, array items, anyOf branches)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for where, key, value in walk(schema, path):
        if key == "properties" and isinstance(value, dict):
            found.extend((f"{where}/{name}", prop) for name, prop in value.items())
    return found


def test_every_argument_of_every_tool_is_described() -> None:
    """All groups, nested properties included: a model sees nothing but the description."""
    undescribed = [
        f"{spec.name}{where}" for spec in ALL_TOOLS for where, prop in properties_of(spec.tool().input_schema)
        if not (isinstance(prop.get("description"), str) and prop["description"].strip())
    ]
    assert undescribed == []


def test_the_described_check_sees_nested_properties() -> None:
    schema = {"properties": {"a": {"description": "x", "items": {"properties": {"b": {"type": "string"}}}}}}
    assert [where for where, _ in properties_of(schema)] == ["/a", "/properties/a/items/b"]


@pytest.mark.parametrize("name", list(TOOLS_BY_NAME))
def test_annotations_follow_the_consequence(name: str) -> None:
    spec = TOOLS_BY_NAME[name]
    hints = spec.tool().annotations
    assert hints is not None
    assert hints.read_only_hint is (spec.group is Group.READ)
    if spec.group is Group.READ:
        assert hints.destructive_hint is None and hints.idempotent_hint is None
    else:
        assert hints.idempotent_hint is (name not in NOT_IDEMPOTENT)
        assert hints.destructive_hint is (name in DESTRUCTIVE)
    assert spec.tool().title and spec.tool().description


def test_groups_hold_the_documented_tools() -> None:
    by_group = {group: [spec.name for spec in ALL_TOOLS if spec.group is group] for group in Group}
    assert by_group[Group.READ] == [
        "get_lead", "get_lead_history", "get_lead_meetings", "get_automation_status", "list_tags",
        "list_templates", "list_workflows",
    ]
    assert by_group[Group.WRITE] == [
        "update_lead", "create_lead", "add_lead_tags", "set_lead_tags", "stop_automation", "record_meeting",
    ]
    assert by_group[Group.AUTOMATION] == ["resume_automation", "assign_workflow", "set_lead_status"]
    assert by_group[Group.OUTREACH] == ["send_message"]


def test_the_default_tools_list_stays_within_its_budget() -> None:
    listed = ListToolsResult(tools=[spec.tool() for spec in select_tools(("read", "write"))])
    size = len(listed.model_dump_json(by_alias=True, exclude_none=True).encode())
    assert size < DEFAULT_BUDGET_BYTES, f"tools/list for read,write is {size} bytes"


@pytest.mark.parametrize(
    ("names", "read_only", "expected"),
    [
        (["read"], False, 7),
        (["read", "write"], False, 13),
        (["read", "write", "automation", "outreach"], False, 17),
        (["read", "send_message"], False, 8),
        ([" write ", "", "write"], False, 6),
        (["read", "write", "automation", "outreach"], True, 7),
        (["update_lead"], True, 0),
    ],
)
def test_selection_by_groups_and_names(names: list[str], read_only: bool, expected: int) -> None:
    chosen = select_tools(names, read_only=read_only)
    assert len(chosen) == expected
    assert [spec.name for spec in chosen] == [spec.name for spec in ALL_TOOLS if spec in chosen]  # declaration order
    if read_only:
        assert all(spec.group is Group.READ for spec in chosen)


def test_an_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownToolName) as info:
        select_tools(["read", "writes"])
    message = str(info.value)
    assert "'writes'" in message
    assert "groups: automation, outreach, read, write" in message
    assert "update_lead" in message and "send_message" in message


def test_the_readme_tool_table_is_the_declared_one() -> None:
    table = markdown_table()
    assert table in README.read_text(encoding="utf-8"), "README's tool table is stale; paste:\n" + table


def test_every_tool_is_documented_in_the_docs_with_a_real_call() -> None:
    readme = TOOLS_DOC.read_text(encoding="utf-8")
    for spec in ALL_TOOLS:
        section = readme.split(f"#### `{spec.name}`", 1)[1].split("#### ", 1)[0]
        assert "Call:" in section and "Result" in section, spec.name
