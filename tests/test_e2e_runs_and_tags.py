"""Issue 14, end to end over stdio against the sandbox: workflow_id may be left to the lead's one
active run (stop_automation, resume_automation, send_message), resolved with one GET of the lead,
sent exactly, shown in the dry run and bound to the confirmation, and refused before any write when
Nexor's answer names no run; a stop says a human took over and its dry run shows the pause and the
cancelled tasks; a lead in the legacy shape (no `tags`) still gets tag before-values, so the dry
run shows them and the journal keeps them for undo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nexor_mcp.audit import read_journal
from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from nexor_mcp.sandbox.seed import ANA_RUN, HOT_TAG, REACTIVATION, SDR_INBOUND
from tests.conftest import ANA, JOHN, text_of
from tests.test_e2e_safety import YES, call, connect, structured, writes

pytestmark = pytest.mark.anyio

OMITTED: dict[str, dict[str, Any]] = {  # each tool's arguments with workflow_id left out
    "stop_automation": {"lead_id": ANA},
    "resume_automation": {"lead_id": ANA, "resume_cadence": True},
    "send_message": {"lead_id": ANA, "channel": "whatsapp", "content": "Hola Ana"},
}
SENT = {  # what each then sends: the resolved id, exactly
    "stop_automation": ("POST", f"/leads/{ANA}/automation/stop", {"workflow_id": SDR_INBOUND}),
    "resume_automation": ("POST", f"/leads/{ANA}/automation/resume", {"workflow_id": SDR_INBOUND,
                                                                     "resume_cadence": True}),
    "send_message": ("POST", "/messages", {"lead_id": ANA, "workflow_id": SDR_INBOUND, "channel": "whatsapp",
                                           "content": "Hola Ana"}),
}


def lead_reads(api: SandboxApi, lead_id: str = ANA) -> int:
    return sum(1 for r in api.requests if r.method == "GET" and r.path == f"/api/public/leads/{lead_id}")


@pytest.mark.parametrize("tool", sorted(OMITTED))
async def test_an_omitted_workflow_id_is_the_active_runs_with_one_read_of_the_lead(
    sandbox_server: SandboxServer, api: SandboxApi, tool: str
) -> None:
    """Both paths: the handler's own (nothing to confirm) and the write-safety one (confirmed by a yes)."""
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM="never") as (client, _):
        result = await call(client, tool, OMITTED[tool])
    assert not result.is_error, text_of(result)
    assert writes(api) == [SENT[tool]] and lead_reads(api) == 1
    api.reset()
    async with connect(sandbox_server.base_url, "legacy", YES) as (client, asked):
        confirmed = await call(client, tool, OMITTED[tool])
    assert not confirmed.is_error, text_of(confirmed)
    assert writes(api) == [SENT[tool]] and lead_reads(api) == 1
    if tool != "stop_automation":  # the write group is not asked
        assert len(asked) == 1 and SDR_INBOUND in asked[0].message


@pytest.mark.parametrize("tool", sorted(OMITTED))
async def test_a_dry_run_shows_the_resolved_workflow(sandbox_server: SandboxServer, api: SandboxApi, tool: str) -> None:
    async with connect(sandbox_server.base_url) as (client, _):
        dry = structured(await call(client, tool, {**OMITTED[tool], "dry_run": True}))
    method, path, body = SENT[tool]
    assert dry["would_send"] == {"method": method, "path": path, "body": body}
    assert f'"SDR inbound" ({SDR_INBOUND})' in dry["summary"]
    assert writes(api) == [] and lead_reads(api) == 1


async def test_the_confirmation_is_bound_to_the_resolved_workflow(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    """A token (NEXOR_CONFIRM_VIA=token) issued while Ana's run was in SDR inbound does not send
    through another workflow."""
    message = OMITTED["send_message"]
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM_VIA="token") as (client, _):
        first = structured(await call(client, "send_message", message))
        assert first["would_send"]["body"]["workflow_id"] == SDR_INBOUND
        async with connect(sandbox_server.base_url, NEXOR_CONFIRM="never") as (colleague, _):
            moved = await call(colleague, "assign_workflow", {"lead_id": ANA, "workflow_id": REACTIVATION})
            assert not moved.is_error, text_of(moved)
        api.requests.clear()
        stale = await call(client, "send_message", {**message, "confirmation": first["confirmation"]})
        assert stale.is_error and "not issued for these exact arguments" in text_of(stale)
        assert writes(api) == []
        fresh = structured(await call(client, "send_message", message))
        sent = await call(client, "send_message", {**message, "confirmation": fresh["confirmation"]})
    assert not sent.is_error, text_of(sent)
    assert writes(api) == [("POST", "/messages", {**message, "workflow_id": REACTIVATION})]


async def test_a_legacy_lead_names_its_run_in_camel_case(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    api.use_legacy_shape(ANA)
    async with connect(sandbox_server.base_url) as (client, _):
        result = await call(client, "stop_automation", {"lead_id": ANA})
    assert not result.is_error, text_of(result)
    assert writes(api) == [SENT["stop_automation"]]


@pytest.mark.parametrize("confirm", ["never", "automation,outreach"])
@pytest.mark.parametrize("tool", sorted(OMITTED))
async def test_no_run_named_is_refused_before_any_write_and_says_where_to_find_one(
    sandbox_server: SandboxServer, api: SandboxApi, tool: str, confirm: str
) -> None:
    """John has no workflow run: nothing is guessed, nothing is written."""
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM=confirm) as (client, _):
        result = await call(client, tool, {**OMITTED[tool], "lead_id": JOHN})
    text = text_of(result)
    assert result.is_error and f"Invalid arguments for {tool}" in text
    assert "- workflow_id: needed for this lead: Nexor's answer for it names no active workflow run" in text
    assert "Pass workflow_id: get_lead shows the lead's active run" in text and "list_workflows" in text
    assert writes(api) == [] and [r.method for r in api.requests] == ["GET"]


async def test_a_stop_says_a_human_took_over_and_its_dry_run_shows_what_stops(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    async with connect(sandbox_server.base_url) as (client, _):
        dry = structured(await call(client, "stop_automation", {"lead_id": ANA, "dry_run": True}))
        result = await call(client, "stop_automation", {"lead_id": ANA})
        again = structured(await call(client, "stop_automation", {"lead_id": ANA, "dry_run": True}))
    assert dry["changes"] == [
        "human_takeover: false → true", 'cadence_state: "active" → "paused"',
        "pending scheduled tasks: cancelled (Nexor's answer says how many)",
    ]
    assert "a human takes over" in dry["summary"] and "pending scheduled tasks are cancelled" in dry["summary"]
    assert dry["before"] == {"human_takeover": False}
    assert dry["after"] == {"human_takeover": True, "cadence_state": "paused", "pending_tasks": "cancelled"}
    stopped = structured(result)
    assert stopped == {"human_takeover": True, "workflow_id": SDR_INBOUND, "workflow_run_id": ANA_RUN,
                       "cadence_paused": True, "tasks_cancelled": 2, "message": stopped["message"]}
    assert stopped["message"] == (
        f"A human has taken over this lead in workflow {SDR_INBOUND}: the AI no longer answers it, its cadence "
        "is paused and 2 pending task(s) were cancelled. resume_automation gives it back to the AI."
    )
    assert stopped["message"] in text_of(result)  # in the text every host shows the model, too
    assert again["no_op"] is True and "already taken over" in again["summary"]


async def test_a_legacy_lead_gets_its_tags_read_for_the_dry_run_and_the_journal(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    api.use_legacy_shape(ANA)
    journal = tmp_path / "audit.jsonl"
    async with connect(sandbox_server.base_url, NEXOR_AUDIT_LOG=str(journal)) as (client, _):
        dry = structured(await call(client, "set_lead_tags", {"lead_id": ANA, "tags": ["Hot lead"], "dry_run": True}))
        assert [(r.method, r.path.removeprefix("/api/public")) for r in api.requests] == [
            ("GET", f"/leads/{ANA}"), ("GET", f"/leads/{ANA}/tags")]
        added = structured(await call(client, "add_lead_tags", {"lead_id": ANA, "tag_ids": [HOT_TAG], "dry_run": True}))
        real = await call(client, "set_lead_tags", {"lead_id": ANA, "tags": ["Hot lead"]})
        assert not real.is_error, text_of(real)
    assert dry["before"] == {"tags": ["VIP"]} and dry["changes"] == ['tags: + "Hot lead"', 'tags: - "VIP"']
    assert "unknown" not in dry["summary"]
    assert added["changes"] == ['tags: + "Hot lead"', 'tags kept: "VIP"']
    entry = read_journal(journal).entries[0]
    assert (entry.tool, entry.body, entry.before) == ("set_lead_tags", {"lead_id": ANA, "tags": ["Hot lead"]},
                                                       {"tags": ["VIP"]})


async def test_when_the_tag_list_cannot_be_read_the_dry_run_says_so(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    api.use_legacy_shape(ANA)
    api.inject(Fault(404, {"error": "Not found"}, path=f"leads/{ANA}/tags"))
    async with connect(sandbox_server.base_url) as (client, _):
        dry = structured(await call(client, "set_lead_tags", {"lead_id": ANA, "tags": ["Hot lead"], "dry_run": True}))
    assert dry["before"] is None and dry["no_op"] is False
    assert "Its tags now are unknown (Nexor's lead has no tag list, and its tags could not be read:" in dry["summary"]
    assert dry["changes"] == ['tags: unknown before; after: "Hot lead"']
    assert writes(api) == []
