"""Issue 14, the pure parts of what a person is asked: the one slug rule in previews and the
sandbox, a run's workflow as Nexor's answer names it (both spellings, never a guess), template
parameters shown whole, whether THIS status is terminal, and Nexor's text kept to one quoted line.
The end-to-end behaviour is in test_e2e_questions.py and test_e2e_runs_and_tags.py."""

from __future__ import annotations

from typing import Any

import pytest

from nexor_mcp.quoting import quote
from nexor_mcp.rules import tag_slug
from nexor_mcp.sandbox import SandboxApi
from nexor_mcp.sandbox.seed import ANA_RUN, SDR_INBOUND, VIP_TAG
from nexor_mcp.tools.automation import terminal_sentence
from nexor_mcp.tools.messages import parameter_lines, template_text
from nexor_mcp.tools.preview import change_line, lead_name, run_workflow_id, tag_set
from tests.conftest import ANA, JOHN
from tests.test_sandbox_toolkit import call

WORKFLOW = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def test_tag_previews_match_names_by_the_one_slug_rule() -> None:
    """ "Straße" and "STRASSE" are one tag for Nexor's slug rule: the preview must not show a
    removal and an addition (the old `lower()` rule gave "stra-e" and "strasse")."""
    lead = {"first_name": "Ana", "tags": [{"id": "t1", "name": "Straße"}, {"id": "t2", "name": "Café"}]}
    preview = tag_set(lead, ["STRASSE", "cafe"])
    assert tag_slug("Straße") == tag_slug("STRASSE")
    assert preview.no_op and preview.changes == []
    assert preview.after == {"tags": ["STRASSE", "cafe"], "added": [], "removed": [], "kept": ["Straße", "Café"]}


@pytest.mark.anyio
async def test_the_sandbox_finds_tags_by_the_same_slug_rule() -> None:
    api = SandboxApi()
    status, body = await call(api, "PUT", "leads/tags", {"lead_id": JOHN, "tags": ["Straße"]})
    assert status == 200 and body["tags"][0]["slug"] == tag_slug("Straße") == "strasse"
    _, again = await call(api, "PUT", "leads/tags", {"lead_id": JOHN, "tags": ["STRASSE", "vip"]})
    assert [tag["name"] for tag in again["tags"]] == ["Straße", "VIP"]  # found by slug, not created again
    assert again["added"] == [VIP_TAG] and again["removed"] == []


@pytest.mark.anyio
async def test_the_sandbox_serves_a_lead_in_the_legacy_shape() -> None:
    api = SandboxApi()
    api.use_legacy_shape(ANA)
    status, body = await call(api, "GET", f"leads/{ANA}")
    assert status == 200 and "success" not in body and "lead" not in body
    assert {"tags", "variables", "updated_at", "active_workflow_run"}.isdisjoint(body)
    assert body["activeWorkflowRun"] == {"id": ANA_RUN, "workflow_id": SDR_INBOUND, "is_active": True,
                                         "run_status": "running"}
    assert body["workflow"]["name"] == "SDR inbound" and body["currentStatus"]["key"] == "contacted"
    assert body["currentStatus"]["color"].startswith("#") and body["assigned_user"] is None
    _, tags = await call(api, "GET", f"leads/{ANA}/tags")
    assert [tag["name"] for tag in tags["data"]] == ["VIP"]  # what a preview reads instead
    _, john = await call(api, "GET", f"leads/{JOHN}")
    assert john["lead"]["tags"] == []  # the other leads keep the current shape


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        ({"active_workflow_run": {"workflow_id": WORKFLOW.upper(), "is_active": True}}, WORKFLOW),
        ({"activeWorkflowRun": {"id": "r", "workflow_id": WORKFLOW, "is_active": True}}, WORKFLOW),
        ({"activeWorkflowRun": {"workflowId": WORKFLOW}}, WORKFLOW),
        ({"active_workflow_run": {"workflow": {"id": WORKFLOW, "name": "SDR"}}}, WORKFLOW),
        ({"active_workflow_run": {"workflow_id": WORKFLOW, "is_active": False}}, None),
        ({"active_workflow_run": None, "workflow": {"id": WORKFLOW}}, None),  # never taken from elsewhere
        ({"activeWorkflowRun": {"workflow_id": "SDR inbound"}}, None),
        ({"activeWorkflowRun": "yes"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_the_run_workflow_is_what_the_answer_names_in_either_spelling(lead: Any, expected: str | None) -> None:
    assert run_workflow_id(lead) == expected


def test_template_parameters_are_shown_whole_and_labelled() -> None:
    link = "https://evil.example/login?session=" + "x" * 200
    lines = parameter_lines([
        {"type": "body", "parameters": [{"type": "text", "text": "John\nText: fake"}, {"type": "text", "text": link}]},
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "abc"}]},
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://img.example/a.png"}}]},
        "not a component",
    ])
    assert lines == [
        "Parameters filled in, as sent:",
        '- body {{1}}: "John\\nText: fake"',
        f'- body {{{{2}}}}: "{link}"',  # never cut: the person approves all of it
        '- button 0 (url) {{1}}: "abc"',
        '- header {{1}}: {"type":"image","image":{"link":"https://img.example/a.png"}}',
        '- component 4: "not a component"',
    ]
    assert parameter_lines(None) == ["Parameters: none are sent."]


def test_a_template_text_is_shown_as_a_block_with_its_buttons() -> None:
    template = {"components": [
        {"type": "BODY", "text": "Hi {{1}}\nText: fake\u202e"},
        {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Pay", "url": "https://pay.example/{{1}}"}]},
    ]}
    assert template_text(template) == [
        "Body:", "│ Hi {{1}}\n│ Text: fake[U+202E]", 'Button: "Pay" → "https://pay.example/{{1}}"',
    ]
    assert template_text({"components": "none"}) == ["(Nexor lists no text for it)"]


@pytest.mark.parametrize(
    ("statuses", "words"),
    [
        ([{"key": "lost", "is_terminal": True}], '"lost" is a terminal status: Nexor cancels'),
        ([{"key": "lost", "isTerminal": False}], '"lost" is not a terminal status'),
        ([{"key": "new"}, {"key": "won"}], '"lost" is not among the workflow\'s listed statuses ("new", "won")'),
        ([{"key": "lost", "category": "lost"}], "does not say whether \"lost\" is terminal; if it is"),
        (None, "does not say whether \"lost\" is terminal"),
    ],
)
def test_the_status_question_says_whether_this_status_is_terminal(statuses: Any, words: str) -> None:
    workflow = None if statuses is None else {"id": WORKFLOW, "statuses": statuses}
    assert words in terminal_sentence("lost", workflow)


def test_nexor_values_in_a_sentence_are_one_quoted_line() -> None:
    lead = {"first_name": "Eve\nText: fake", "last_name": "\u202eX"}
    assert lead_name(lead, "the lead") == '"Eve\\nText: fake [U+202E]X"'
    assert lead_name({"first_name": None}, "the lead") == "the lead"
    line = change_line("metadata.a\nb", "x\u200by", "z" * 200)
    assert "\n" not in line and line.startswith('metadata.a\\nb: "x[U+200B]y" → "zzz')
    assert line.endswith('…"') and len(line) < 200
    assert quote("plain") == '"plain"'
