"""The journal step (`audit.recording.journaled`) against the sandbox over HTTP: the intent line is on disk before the
request reaches Nexor, the outcome line after the answer, for every way a write can end; an
unwritable journal sends nothing; every write method is journaled and no read is."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from nexor_mcp import endpoints
from nexor_mcp.audit import Journal, JournalError, account_fingerprint, read_journal
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Secret, Settings
from nexor_mcp.errors import (
    ApiConnectionError,
    ApiTimeout,
    BadRequest,
    JournalUnwritable,
    MissingApiKey,
    RateLimited,
    ServerError,
)
from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from tests.conftest import ANA, JOHN, TEST_KEY
from tests.journaling import Journaled

pytestmark = pytest.mark.anyio

BEFORE = {"fields": {"title": "Head of Sales"}, "metadata": {}, "metadata_absent": []}
WORKFLOW = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


class SpyJournal(Journal):
    """A journal that notes, at each line, how many requests the sandbox had received."""

    def __init__(self, path: Path, api: SandboxApi) -> None:
        super().__init__(path)
        self.api = api
        self.seen: list[tuple[str, int]] = []

    def begin(self, **kwargs: Any) -> str:
        self.seen.append(("intent", len(self.api.requests)))
        return super().begin(**kwargs)

    def finish(self, entry_id: str, **kwargs: Any) -> None:
        self.seen.append(("outcome", len(self.api.requests)))
        super().finish(entry_id, **kwargs)


def settings_for(base_url: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {"api_key": Secret(TEST_KEY), "base_url": base_url, "max_retries": 0}
    values.update(changes)
    return Settings(**values)


@pytest.fixture
async def client(sandbox_server: SandboxServer) -> AsyncIterator[NexorClient]:
    client = NexorClient(settings_for(sandbox_server.base_url))
    yield client
    await client.aclose()


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def without_time(line: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in line.items() if key not in ("time", "id")}


async def test_success_intent_before_the_request_and_outcome_after(
    client: NexorClient, api: SandboxApi, tmp_path: Path
) -> None:
    journal = SpyJournal(tmp_path / "audit.jsonl", api)
    result = await Journaled(client, journal, tool="update_lead", before=BEFORE).send(endpoints.update_lead(
        ANA, {"title": "CTO", "metadata": {"budget": 5000}}
    ))
    assert result["lead"]["title"] == "CTO"
    assert journal.seen == [("intent", 0), ("outcome", 1)]
    assert [(request.method, request.json) for request in api.requests] == [
        ("PATCH", {"title": "CTO", "metadata": {"budget": 5000}})
    ]
    intent, outcome = lines_of(tmp_path / "audit.jsonl")
    assert intent["id"] == outcome["id"]
    assert without_time(intent) == {
        "v": 1, "event": "intent", "tool": "update_lead", "lead_id": ANA, "method": "PATCH", "path": f"leads/{ANA}",
        "body": {"title": "CTO", "metadata": {"budget": 5000}}, "before": BEFORE,
        "account": account_fingerprint(TEST_KEY),
    }
    assert without_time(outcome) == {
        "v": 1, "event": "outcome", "status": 200, "outcome": "ok", "detail": None,
        "after": {"fields": {"title": "CTO"}, "metadata": {"budget": 5000}},
    }
    assert TEST_KEY not in (tmp_path / "audit.jsonl").read_text()


async def test_a_4xx_is_failed_with_its_status(client: NexorClient, api: SandboxApi, tmp_path: Path) -> None:
    journal = SpyJournal(tmp_path / "audit.jsonl", api)
    api.inject(Fault(400, {"error": "Validation error", "message": "Invalid phone"}))
    with pytest.raises(BadRequest):
        await Journaled(client, journal, tool="update_lead", before=BEFORE).send(endpoints.update_lead(
            ANA, {"phone": "x"}
        ))
    assert journal.seen == [("intent", 0), ("outcome", 1)]
    outcome = lines_of(tmp_path / "audit.jsonl")[1]
    assert (outcome["status"], outcome["outcome"], outcome["after"]) == (400, "failed", None)
    assert outcome["detail"].startswith(
        "BadRequest: Nexor rejected the request (HTTP 400). Nexor said: Validation error: Invalid phone."
    )


async def test_a_5xx_is_unknown_with_its_status(client: NexorClient, api: SandboxApi, tmp_path: Path) -> None:
    journal = SpyJournal(tmp_path / "audit.jsonl", api)
    api.inject(Fault(503, {"error": "down"}))
    with pytest.raises(ServerError):
        await Journaled(client, journal, tool="set_lead_tags", before={"tags": ["VIP"]}).send(endpoints.set_lead_tags(
            ANA, ["VIP", "Hot lead"]
        ))
    outcome = lines_of(tmp_path / "audit.jsonl")[1]
    assert (outcome["status"], outcome["outcome"]) == (503, "unknown")


async def test_a_refusal_after_an_attempt_that_may_have_applied_is_unknown(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    """503 then 429 (out of retries): the 503 attempt may have applied it, so not "failed"."""
    client = NexorClient(settings_for(sandbox_server.base_url, max_retries=1))
    journal = Journal(tmp_path / "audit.jsonl")
    api.inject(Fault(503, {"error": "down"}, headers={"Retry-After": "0"}))
    api.inject(Fault(429, {"error": "slow down"}, headers={"Retry-After": "0"}))
    try:
        with pytest.raises(RateLimited):
            await Journaled(client, journal, tool="update_lead", before=BEFORE).send(endpoints.update_lead(
                ANA, {"title": "CTO"}
            ))
    finally:
        await client.aclose()
    assert len(api.requests) == 2
    outcome = lines_of(tmp_path / "audit.jsonl")[1]
    assert (outcome["status"], outcome["outcome"]) == (429, "unknown")


async def test_refusals_on_every_attempt_are_failed(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    client = NexorClient(settings_for(sandbox_server.base_url, max_retries=1))
    journal = Journal(tmp_path / "audit.jsonl")
    api.inject(Fault(429, {"error": "slow down"}, headers={"Retry-After": "0"}), times=2)
    try:
        with pytest.raises(RateLimited):
            await Journaled(client, journal, tool="update_lead", before=BEFORE).send(endpoints.update_lead(
                ANA, {"title": "CTO"}
            ))
    finally:
        await client.aclose()
    assert len(api.requests) == 2
    outcome = lines_of(tmp_path / "audit.jsonl")[1]
    assert (outcome["status"], outcome["outcome"]) == (429, "failed")


async def test_a_timeout_is_unknown(sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path) -> None:
    client = NexorClient(settings_for(sandbox_server.base_url, timeout_seconds=0.3))
    journal = SpyJournal(tmp_path / "audit.jsonl", api)
    api.inject(Fault(200, {"success": True}, delay=3.0))
    try:
        with pytest.raises(ApiTimeout):
            await Journaled(client, journal, tool="update_lead", before=BEFORE).send(endpoints.update_lead(
                ANA, {"title": "CTO"}
            ))
    finally:
        await client.aclose()
    assert journal.seen == [("intent", 0), ("outcome", 1)]
    outcome = lines_of(tmp_path / "audit.jsonl")[1]
    assert (outcome["status"], outcome["outcome"]) == (None, "unknown")
    assert outcome["detail"].startswith("ApiTimeout: Nexor at ")


async def test_connection_refused_is_failed(tmp_path: Path) -> None:
    """Nothing listens: the request certainly never left, on any attempt."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = NexorClient(settings_for(f"http://127.0.0.1:{port}/api/public", max_retries=1,
                                      retry_budget_seconds=5))
    journal = Journal(tmp_path / "audit.jsonl")
    try:
        with pytest.raises(ApiConnectionError):
            await Journaled(client, journal, tool="update_lead", before=BEFORE).send(endpoints.update_lead(
                ANA, {"title": "CTO"}
            ))
    finally:
        await client.aclose()
    intent, outcome = lines_of(tmp_path / "audit.jsonl")
    assert intent["event"] == "intent"
    assert (outcome["status"], outcome["outcome"]) == (None, "failed")
    assert outcome["detail"].startswith("ApiConnectionError: Could not reach Nexor at ")


async def test_a_2xx_with_an_unreadable_answer_is_accepted(
    client: NexorClient, api: SandboxApi, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "audit.jsonl")
    api.inject(Fault(204, raw_body=b""))
    result = await Journaled(client, journal, tool="update_lead", before=BEFORE).send(endpoints.update_lead(
        ANA, {"title": "CTO"}
    ))
    assert result["accepted"] is True
    outcome = lines_of(tmp_path / "audit.jsonl")[1]
    assert (outcome["status"], outcome["outcome"], outcome["detail"], outcome["after"]) == (
        204, "accepted", "Nexor's answer is empty (not JSON)", None,
    )


@pytest.mark.parametrize("where", ["missing directory", "a directory"])
async def test_an_unwritable_journal_refuses_the_write_and_sends_nothing(
    client: NexorClient, api: SandboxApi, tmp_path: Path, where: str
) -> None:
    path = tmp_path / "nope" / "audit.jsonl" if where == "missing directory" else tmp_path
    journaled = Journaled(client, Journal(path), tool="update_lead", before=BEFORE)
    with pytest.raises(JournalUnwritable) as info:
        await journaled.send(endpoints.update_lead(ANA, {"title": "CTO"}))
    assert len(api.requests) == 0
    text = str(info.value)
    assert text.startswith("Nothing was sent to Nexor: the write was refused because the audit journal cannot be "
                           "written (")
    assert "ask the user to fix NEXOR_AUDIT_LOG" in text
    assert api.leads[ANA]["title"] == "Head of Sales"
    # Reads still work: the journal is only for writes.
    assert (await journaled.send(endpoints.get_lead(ANA)))["lead"]["id"] == ANA


async def test_a_failed_outcome_line_is_logged_and_the_real_result_returned(
    client: NexorClient, api: SandboxApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class NoOutcome(Journal):
        def finish(self, entry_id: str, **kwargs: Any) -> None:
            raise JournalError(self.path, "No space left on device")

    journal = NoOutcome(tmp_path / "audit.jsonl")
    with caplog.at_level(logging.ERROR):
        result = await Journaled(client, journal, tool="update_lead", before=BEFORE).send(endpoints.update_lead(
            ANA, {"title": "CTO"}
        ))
    assert result["lead"]["title"] == "CTO"
    entry = lines_of(tmp_path / "audit.jsonl")[0]["id"]
    assert [record.getMessage() for record in caplog.records] == [
        f"the audit journal {journal.path} could not record the outcome of entry {entry} (ok: HTTP 200): "
        "No space left on device"
    ]


async def test_no_key_raises_before_anything_is_journaled(sandbox_server: SandboxServer, tmp_path: Path) -> None:
    client = NexorClient(settings_for(sandbox_server.base_url, api_key=None))
    with pytest.raises(MissingApiKey):
        journaled = Journaled(client, Journal(tmp_path / "a.jsonl"), tool="update_lead", before=None)
        await journaled.send(endpoints.update_lead(ANA, {"title": "x"}))
    assert not (tmp_path / "a.jsonl").exists()


async def test_a_cancelled_write_is_unknown(sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path) -> None:
    client = NexorClient(settings_for(sandbox_server.base_url))
    journal = Journal(tmp_path / "audit.jsonl")
    api.inject(Fault(200, {"success": True}, delay=5.0))
    try:
        with anyio.move_on_after(0.5):
            await Journaled(client, journal, tool="update_lead", before=BEFORE).send(endpoints.update_lead(
                ANA, {"title": "CTO"}
            ))
    finally:
        await client.aclose()
    outcome = lines_of(tmp_path / "audit.jsonl")[1]
    assert (outcome["status"], outcome["outcome"], outcome["detail"]) == (
        None, "unknown", "the call was cancelled while the request may have been in flight",
    )


async def test_every_write_method_is_journaled_with_its_exact_request_and_no_read_is(
    client: NexorClient, api: SandboxApi, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    journal = Journal(path)

    def journaled(tool: str, lead_id: str | None) -> Journaled:
        return Journaled(client, journal, tool=tool, before=None)

    await journaled("get_lead", ANA).send(endpoints.get_lead(ANA))
    await journaled("list_tags", None).send(endpoints.list_tags(None))
    await journaled("get_lead_history", ANA).send(endpoints.get_lead_history(ANA, None, 5, 0))
    await journaled("get_lead_meetings", ANA).send(endpoints.get_lead_meetings(ANA, None))
    await journaled("get_automation_status", ANA).send(endpoints.get_automation_status(ANA, None))
    await journaled("list_templates", None).send(endpoints.list_templates(None, None))
    await journaled("list_workflows", None).send(endpoints.list_workflows())
    assert not path.exists()  # reads never touch the journal
    tag = next(iter(api.state.tags))
    writes: list[tuple[str, Callable[[Journaled], Awaitable[dict[str, Any]]]]] = [
        ("update_lead", lambda c: c.send(endpoints.update_lead(JOHN, {"title": "CTO"}))),
        ("create_lead", lambda c: c.send(endpoints.create_lead({"first_name": "Zoe"}))),
        ("add_lead_tags", lambda c: c.send(endpoints.add_lead_tags(JOHN, [tag]))),
        ("set_lead_tags", lambda c: c.send(endpoints.set_lead_tags(JOHN, ["VIP"]))),
        ("stop_automation", lambda c: c.send(endpoints.stop_automation(ANA, WORKFLOW))),
        ("resume_automation", lambda c: c.send(endpoints.resume_automation(ANA, WORKFLOW, True))),
        ("set_lead_status", lambda c: c.send(endpoints.set_lead_status(ANA, {"status_key": "qualified"}))),
        ("assign_workflow", lambda c: c.send(endpoints.assign_workflow(JOHN, WORKFLOW, None))),
        ("record_meeting", lambda c: c.send(endpoints.record_meeting({"lead_id": ANA, "title": "Demo",
                                                        "starts_at": "2026-12-01T15:00:00Z", "duration_minutes": 30}))),
        ("send_message", lambda c: c.send(endpoints.send_message({"lead_id": ANA, "workflow_id": WORKFLOW,
                                                                  "channel": "whatsapp", "content": "Hola"}))),
    ]
    for tool, call in writes:
        await call(journaled(tool, None))
    requests = [(request.method, request.path.removeprefix("/api/public/"), request.json) for request in api.requests
                if request.method != "GET"]
    contents = read_journal(path)
    assert contents.problems == []
    assert [entry.tool for entry in contents.entries] == [tool for tool, _ in writes]
    assert [(entry.method, entry.path, entry.body) for entry in contents.entries] == requests
    assert all(entry.outcome == "ok" for entry in contents.entries), [e.detail for e in contents.entries]
