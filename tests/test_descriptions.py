"""Issue 14: the descriptions a model reads say what the agent had to guess. Each assertion is one
fact the agent tripped over (nexor-api.md is the source for each)."""

from __future__ import annotations

from typing import Any

import pytest

from nexor_mcp.tools import TOOLS_BY_NAME


def describe(tool: str, argument: str | None = None) -> str:
    spec = TOOLS_BY_NAME[tool].tool()
    if argument is None:
        return spec.description or ""
    prop: dict[str, Any] = spec.input_schema["properties"][argument]
    return str(prop.get("description", ""))


def test_starts_at_says_a_time_without_offset_is_local_and_its_example_has_none() -> None:
    text = describe("record_meeting", "starts_at")
    assert "without offset, local time in timezone" in text
    assert '"2026-12-01T10:00:00"' in text and 'Z"' not in text


@pytest.mark.parametrize("tool", ["record_meeting", "get_lead_meetings"])
def test_meeting_tools_name_the_absolute_instants(tool: str) -> None:
    text = describe(tool)
    assert "starts_at_utc/ends_at_utc are the absolute instants (Z)" in text
    assert "times (UTC)" not in text


def test_meeting_statuses_are_explained() -> None:
    assert "confirmed (the lead said they will attend)" in describe("get_lead_meetings")
    assert "scheduled (booked)" in describe("get_lead_meetings")
    assert "confirmed: the lead said they will attend" in describe("record_meeting", "status")


def test_create_lead_is_honest_about_duplicates_and_takes_the_real_fields() -> None:
    text = describe("create_lead")
    assert "make sure" not in text
    assert "no lead search" in text and "each call makes a new lead" in text
    assert "the lead exists" in text
    properties = TOOLS_BY_NAME["create_lead"].tool().input_schema["properties"]
    assert {"company", "title", "source"} <= set(properties)
    assert "company" not in describe("create_lead", "metadata").lower()  # no longer steered into metadata


@pytest.mark.parametrize("tool", ["update_lead"])
def test_metadata_says_null_keeps_the_key(tool: str) -> None:
    assert "null stores null (no key removal)" in describe(tool, "metadata")


@pytest.mark.parametrize("tool", ["update_lead", "create_lead"])
def test_campaign_id_says_how_a_campaign_differs_from_a_workflow(tool: str) -> None:
    assert "unlike a workflow, it contacts nobody" in describe(tool, "campaign_id")


def test_get_lead_promises_variables_only_when_nexor_returns_them() -> None:
    assert "AI-extracted variables when Nexor returns them" in describe("get_lead")


@pytest.mark.parametrize("tool", ["update_lead", "set_lead_tags"])
def test_if_unchanged_since_says_what_does_not_move_updated_at(tool: str) -> None:
    assert "A status change or takeover does not move it." in describe(tool, "if_unchanged_since")
