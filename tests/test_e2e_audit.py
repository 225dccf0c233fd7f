"""End to end over stdio: the server started with NEXOR_AUDIT_LOG journals every write tool call
(intent before, outcome after, the before-values of update_lead / set_lead_tags, never the key),
refuses every write when the journal cannot be written, and `nexor-mcp audit undo` puts back what
a call changed."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from nexor_mcp.audit import account_fingerprint, read_journal
from nexor_mcp.sandbox import SandboxApi, SandboxServer
from tests.conftest import ANA, JOHN, TEST_KEY, server_env, spawn_server, text_of

pytestmark = pytest.mark.anyio

WORKFLOW = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def env_with_journal(base_url: str, journal: Path, **extra: str) -> dict[str, str]:
    return server_env(base_url, NEXOR_AUDIT_LOG=str(journal), NEXOR_TOOLS="read,write,outreach",
                      NEXOR_CONFIRM="never", **extra)


def writes(api: SandboxApi) -> list[tuple[str, str, Any]]:
    return [(request.method, request.path.removeprefix("/api/public/"), request.json) for request in api.requests
            if request.method != "GET"]


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_update_lead_is_journaled_with_its_before_values_and_never_the_key(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    journal = tmp_path / "audit.jsonl"
    async with spawn_server(env_with_journal(sandbox_server.base_url, journal)) as mcp:
        await mcp.call("get_lead", {"lead_id": ANA})
        assert not journal.exists() or journal.read_text() == ""  # reads are not journaled
        result = await mcp.call("update_lead", {"lead_id": ANA, "title": "CTO", "phone": None,
                                                "metadata": {"edad": 35, "budget": 5000, "note": TEST_KEY}})
        assert not result.is_error, text_of(result)
    assert writes(api) == [("PATCH", f"leads/{ANA}", {"title": "CTO", "phone": None,
                                                      "metadata": {"edad": 35, "budget": 5000, "note": TEST_KEY}})]
    intent, outcome = lines_of(journal)
    assert (intent["event"], intent["tool"], intent["lead_id"], intent["method"], intent["path"]) == (
        "intent", "update_lead", ANA, "PATCH", f"leads/{ANA}",
    )
    assert intent["body"] == {"title": "CTO", "phone": None, "metadata": {"edad": 35, "budget": 5000,
                                                                          "note": "nxr_****"}}
    assert intent["before"] == {"fields": {"title": "Head of Sales", "phone": "+56987654321"},
                                "metadata": {"edad": 34}, "metadata_absent": ["budget", "note"]}
    assert intent["account"] == account_fingerprint(TEST_KEY)
    assert (outcome["event"], outcome["id"], outcome["status"], outcome["outcome"]) == (
        "outcome", intent["id"], 200, "ok",
    )
    assert TEST_KEY not in journal.read_text()


async def test_set_lead_tags_and_send_message_are_journaled(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    journal = tmp_path / "audit.jsonl"
    message = {"lead_id": ANA, "workflow_id": WORKFLOW, "channel": "whatsapp", "content": "Hola Ana"}
    async with spawn_server(env_with_journal(sandbox_server.base_url, journal)) as mcp:
        tagged = await mcp.call("set_lead_tags", {"lead_id": ANA, "tags": ["VIP", "Hot lead"]})
        assert not tagged.is_error, text_of(tagged)
        sent = await mcp.call("send_message", message)
        assert not sent.is_error, text_of(sent)
    entries = read_journal(journal).entries
    assert [(entry.tool, entry.method, entry.path, entry.body, entry.before, entry.outcome, entry.status)
            for entry in entries] == [
        ("set_lead_tags", "PUT", "leads/tags", {"lead_id": ANA, "tags": ["VIP", "Hot lead"]}, {"tags": ["VIP"]},
         "ok", 200),
        ("send_message", "POST", "messages", message, None, "ok", 200),
    ]
    assert entries[0].after == {"tags": ["VIP", "Hot lead"]}


async def test_an_unwritable_journal_refuses_the_write_and_sends_nothing(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    journal = tmp_path / "no-such-directory" / "audit.jsonl"
    async with spawn_server(env_with_journal(sandbox_server.base_url, journal)) as mcp:
        read = await mcp.call("get_lead", {"lead_id": JOHN})
        assert not read.is_error  # reads still work
        calls: list[tuple[str, dict[str, Any]]] = [
            ("update_lead", {"lead_id": ANA, "title": "CTO"}),
            ("set_lead_tags", {"lead_id": ANA, "tags": []}),
            ("send_message", {"lead_id": ANA, "workflow_id": WORKFLOW, "channel": "whatsapp", "content": "Hola"}),
        ]
        for tool, arguments in calls:
            result = await mcp.call(tool, arguments)
            assert result.is_error
            assert "Nothing was sent to Nexor: the write was refused because the audit journal cannot be written " \
                "(No such file or directory)" in text_of(result)
            assert "NEXOR_AUDIT_LOG" in text_of(result)
        stderr = mcp.stderr_text()
    assert writes(api) == []
    assert api.leads[ANA]["title"] == "Head of Sales"
    assert f"the audit journal {journal} cannot be written (No such file or directory)" in stderr
    assert not journal.parent.exists()


async def test_audit_undo_puts_back_what_a_call_changed(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    journal = tmp_path / "audit.jsonl"
    async with spawn_server(env_with_journal(sandbox_server.base_url, journal)) as mcp:
        result = await mcp.call("update_lead", {"lead_id": JOHN, "title": "CTO", "metadata": {"budget": 5000}})
        assert not result.is_error, text_of(result)
    entry = read_journal(journal).entries[-1].id
    env = {name: value for name, value in os.environ.items() if not name.startswith("NEXOR_")}
    env.update(NEXOR_BASE_URL=sandbox_server.base_url, NEXOR_API_KEY=TEST_KEY, NEXOR_AUDIT_LOG=str(journal))
    completed = await anyio.run_process([sys.executable, "-m", "nexor_mcp", "audit", "undo", entry], env=env,
                                        check=False)
    assert completed.returncode == 0, completed.stdout.decode() + completed.stderr.decode()
    assert writes(api)[-1] == ("PATCH", f"leads/{JOHN}", {"title": None, "metadata": {"budget": None}})
    assert api.leads[JOHN]["title"] is None
    assert api.leads[JOHN]["metadata"] == {"budget": None}


async def test_writes_without_a_preview_are_journaled_too(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    """create_lead and record_meeting have no before-values, but they are writes: on record all the same."""
    journal = tmp_path / "audit.jsonl"
    meeting = {"lead_id": ANA, "title": "Demo", "starts_at": "2026-12-01T15:00:00Z", "duration_minutes": 30}
    async with spawn_server(env_with_journal(sandbox_server.base_url, journal)) as mcp:
        created = await mcp.call("create_lead", {"first_name": "Zoe"})
        assert not created.is_error, text_of(created)
        booked = await mcp.call("record_meeting", meeting)
        assert not booked.is_error, text_of(booked)
    entries = read_journal(journal).entries
    assert [(entry.tool, entry.method, entry.path, entry.body, entry.before, entry.outcome) for entry in entries] == [
        ("create_lead", "POST", "leads", {"first_name": "Zoe"}, None, "ok"),
        ("record_meeting", "POST", "meetings", meeting, None, "ok"),
    ]
    assert writes(api) == [("POST", "leads", {"first_name": "Zoe"}), ("POST", "meetings", meeting)]
