"""Issue 14, end to end over stdio against the sandbox on loopback: what the agent tripped over with
create_lead, meetings and list_workflows, and failure texts that named a lead for a call about none.

- create_lead takes company, title and source: POST /leads without them (Nexor files unknown top-level
  keys under metadata), then one PATCH with exactly them; if that second step fails, the result says
  the lead EXISTS, with its id and what is missing, and the create is never repeated.
- every meeting result carries its absolute instants (starts_at_utc, ends_at_utc), right for a
  non-UTC time zone on both sides of daylight saving time.
- list_workflows passes a bare JSON list through; a call about no lead never mentions one.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from nexor_mcp.audit import read_journal
from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from nexor_mcp.sandbox.seed import SDR_INBOUND
from tests.conftest import ANA, JOHN, TEST_KEY, McpProcess, server_env, spawn_server, text_of
from tests.test_e2e_toolkit import call, ok

pytestmark = pytest.mark.anyio

CALL_SECONDS = 30


@pytest.fixture(scope="module")
async def mcp(sandbox_server: SandboxServer) -> AsyncIterator[McpProcess]:
    async with spawn_server(server_env(sandbox_server.base_url)) as process:
        yield process


def sent(api: SandboxApi) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path.removeprefix("/api/public"), r.json) for r in api.requests]


# --- create_lead: company, title and source ---------------------------------------------------------

LEAD = {"first_name": "Tony", "email": "tony@example.com", "metadata": {"budget": 9000}}
LATER = {"company": "Stark SpA", "title": "CEO", "source": "website"}


def test_the_sandbox_files_unknown_create_keys_under_metadata(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    """What nexor-api.md §2.1 documents for POST /leads, and why create_lead needs the PATCH."""
    answer = httpx2.post(f"{sandbox_server.base_url}/leads", json={"first_name": "Tony", **LATER, "edad": 35},
                         headers={"X-API-Key": TEST_KEY}, timeout=CALL_SECONDS)
    assert answer.status_code == 201
    lead = answer.json()["lead"]
    assert (lead["company"], lead["title"], lead["source"]) == (None, None, "api")
    assert lead["metadata"] == {**LATER, "edad": 35}


async def test_create_lead_sets_company_title_and_source_with_one_patch(mcp: McpProcess, api: SandboxApi) -> None:
    result = await ok(mcp, "create_lead", {**LEAD, **LATER})
    lead = result["lead"]
    lead_id = lead["id"]
    assert sent(api) == [("POST", "/leads", LEAD), ("PATCH", f"/leads/{lead_id}", LATER)]
    assert (lead["company"], lead["title"], lead["source"], lead["metadata"]) == (
        "Stark SpA", "CEO", "website", {"budget": 9000})
    assert "accepted" not in result and "message" not in result
    stored = api.leads[lead_id]
    assert (stored["company"], stored["title"], stored["source"], stored["metadata"]) == (
        "Stark SpA", "CEO", "website", {"budget": 9000})


async def test_create_lead_with_only_some_of_them_patches_only_those(mcp: McpProcess, api: SandboxApi) -> None:
    result = await ok(mcp, "create_lead", {"first_name": "Tina", "title": "CTO"})
    lead_id = result["lead"]["id"]
    assert sent(api) == [("POST", "/leads", {"first_name": "Tina"}), ("PATCH", f"/leads/{lead_id}", {"title": "CTO"})]
    assert (api.leads[lead_id]["title"], api.leads[lead_id]["source"]) == ("CTO", "api")


class PatchFails(SandboxApi):
    """The sandbox, except that the next `patch_failures` PATCHes of a lead answer 500."""

    patch_failures = 0

    def _handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if method == "PATCH" and self.patch_failures > 0:
            self.patch_failures -= 1
            return 500, {"error": "Internal server error"}
        return super()._handle(method, path, query, headers, body)


async def test_a_failed_second_step_says_the_lead_exists_and_what_is_missing() -> None:
    api = PatchFails(api_key=TEST_KEY)
    api.patch_failures = 2  # the PATCH and its one retry
    with SandboxServer(api) as sandbox:
        env = server_env(sandbox.base_url, NEXOR_MAX_RETRIES="1")
        async with spawn_server(env) as mcp:
            result = await call(mcp, "create_lead", {**LEAD, **LATER})
            text = text_of(result)
            assert not result.is_error, text  # the lead was created: an error would invite a second create
            structured = result.structured_content
            assert isinstance(structured, dict)
            lead_id = structured["lead"]["id"]
            # The create once, never again; the idempotent PATCH retried once.
            assert sent(api) == [("POST", "/leads", LEAD), ("PATCH", f"/leads/{lead_id}", LATER),
                                 ("PATCH", f"/leads/{lead_id}", LATER)]
            assert text == structured["message"]
            assert text.startswith(f"The lead was created and EXISTS in Nexor (id {lead_id}): do not call "
                                   "create_lead again.")
            for fact in ('company "Stark SpA"', 'title "CEO"', 'source "website"', "failed", "HTTP 500"):
                assert fact in text, (fact, text)
            assert structured["accepted"] is True and structured["incomplete"] == LATER
            assert api.leads[lead_id]["company"] is None and api.leads[lead_id]["metadata"] == {"budget": 9000}

            # The message hands over the exact call that finishes the job.
            found = re.search(r"call update_lead with (\{.*\})\.$", text)
            assert found is not None, text
            finish = json.loads(found.group(1))
            assert finish == {"lead_id": lead_id, **LATER}
            await ok(mcp, "update_lead", finish)
    stored = api.leads[lead_id]
    assert (stored["company"], stored["title"], stored["source"]) == ("Stark SpA", "CEO", "website")
    assert [method for method, _, _ in sent(api)].count("POST") == 1


async def test_a_create_whose_id_cannot_be_read_sends_no_patch_and_says_so(mcp: McpProcess, api: SandboxApi) -> None:
    api.inject(Fault(201, raw_body=b""))
    result = await call(mcp, "create_lead", {**LEAD, "company": "Stark SpA"})
    text = text_of(result)
    assert not result.is_error, text
    assert [method for method, _, _ in sent(api)] == ["POST"]
    assert "Nexor accepted the lead creation (HTTP 201)" in text
    assert "The lead EXISTS, but company \"Stark SpA\" could not be set" in text
    assert "do not create it again" in text and "update_lead" in text


async def test_a_create_that_may_have_happened_is_never_repeated_nor_patched(mcp: McpProcess, api: SandboxApi) -> None:
    api.inject(Fault(503, {"error": "Service unavailable"}), times=3)
    result = await call(mcp, "create_lead", {**LEAD, **LATER})
    text = text_of(result)
    assert result.is_error
    assert sent(api) == [("POST", "/leads", LEAD)]
    assert "The lead creation may or may not have happened. Do not repeat it blindly" in text


async def test_the_patch_after_a_create_is_journaled_under_the_new_lead(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    journal = tmp_path / "audit.jsonl"
    async with spawn_server(server_env(sandbox_server.base_url, NEXOR_AUDIT_LOG=str(journal))) as mcp:
        lead_id = (await ok(mcp, "create_lead", {"first_name": "Zoe", "company": "Acme"}))["lead"]["id"]
    entries = read_journal(journal).entries
    assert [(e.tool, e.lead_id, e.method, e.path, e.body, e.outcome) for e in entries] == [
        ("create_lead", None, "POST", "leads", {"first_name": "Zoe"}, "ok"),
        ("create_lead", lead_id, "PATCH", f"leads/{lead_id}", {"company": "Acme"}, "ok"),
    ]


# --- meetings: the absolute instant ----------------------------------------------------------------

# America/Santiago is UTC-3 in (southern) summer and UTC-4 in winter.
SUMMER = {"lead_id": JOHN, "title": "Summer call", "starts_at": "2026-12-01T10:00:00",
          "timezone": "America/Santiago", "duration_minutes": 30}
WINTER = {"lead_id": JOHN, "title": "Winter call", "starts_at": "2026-07-01T10:00:00",
          "ends_at": "2026-07-01T10:45:00", "timezone": "America/Santiago"}


@pytest.mark.parametrize(
    ("meeting", "starts", "ends"),
    [(SUMMER, "2026-12-01T13:00:00Z", "2026-12-01T13:30:00Z"),
     (WINTER, "2026-07-01T14:00:00Z", "2026-07-01T14:45:00Z")],
    ids=["daylight-saving", "standard-time"],
)
async def test_record_meeting_and_the_listing_carry_the_utc_instant(
    mcp: McpProcess, api: SandboxApi, meeting: dict[str, Any], starts: str, ends: str
) -> None:
    recorded = (await ok(mcp, "record_meeting", meeting))["meeting"]
    assert sent(api) == [("POST", "/meetings", meeting)]  # sent exactly as given: Nexor reads it in timezone
    assert (recorded["starts_at_utc"], recorded["ends_at_utc"], recorded["timezone"]) == (
        starts, ends, "America/Santiago")
    listed = (await ok(mcp, "get_lead_meetings", {"lead_id": JOHN}))["meetings"]
    assert [(m["title"], m["starts_at_utc"], m["ends_at_utc"]) for m in listed] == [(meeting["title"], starts, ends)]


async def test_the_seeded_meetings_carry_their_utc_instant(mcp: McpProcess, api: SandboxApi) -> None:
    listed = (await ok(mcp, "get_lead_meetings", {"lead_id": ANA}))["meetings"]
    assert [(m["starts_at"], m["starts_at_utc"]) for m in listed] == [
        ("2026-12-03T19:00:00.000Z", "2026-12-03T19:00:00Z"), ("2026-06-20T15:00:00.000Z", "2026-06-20T15:00:00Z")]


async def test_listed_meetings_without_an_offset_are_read_as_utc(mcp: McpProcess, api: SandboxApi) -> None:
    """Nexor documents the listing's times as UTC: one without an offset is that UTC time, whatever
    the meeting's own time zone; an offset, when given, wins."""
    meetings: list[dict[str, Any]] = [
        {"title": "winter", "starts_at": "2026-01-15T09:00:00", "ends_at": "2026-01-15T09:30:00",
         "timezone": "America/New_York"},
        {"title": "summer", "starts_at": "2026-07-15T09:00:00", "ends_at": None, "timezone": "America/New_York"},
        {"title": "offset wins", "starts_at": "2026-07-15T09:00:00+02:00", "ends_at": "2026-07-15T10:00:00Z",
         "timezone": "America/New_York"},
        {"title": "no zone", "starts_at": "2026-07-15T09:00:00", "ends_at": "2026-07-15T09:15:00"},
        {"title": "unknown zone", "starts_at": "2026-07-15T09:00:00", "ends_at": "soon", "timezone": "Mars/Base"},
    ]
    api.inject(Fault(200, {"success": True, "meetings": meetings}))
    listed = (await ok(mcp, "get_lead_meetings", {"lead_id": ANA}))["meetings"]
    assert [(m["title"], m["starts_at_utc"], m["ends_at_utc"]) for m in listed] == [
        ("winter", "2026-01-15T09:00:00Z", "2026-01-15T09:30:00Z"),
        ("summer", "2026-07-15T09:00:00Z", None),
        ("offset wins", "2026-07-15T07:00:00Z", "2026-07-15T10:00:00Z"),
        ("no zone", "2026-07-15T09:00:00Z", "2026-07-15T09:15:00Z"),
        ("unknown zone", "2026-07-15T09:00:00Z", None),  # "soon" is no time: never a guess
    ]
    assert [m["starts_at"] for m in listed] == [m["starts_at"] for m in meetings]  # Nexor's own values kept


async def test_a_meeting_answer_without_the_meeting_gets_the_instants_of_what_was_sent(
    mcp: McpProcess, api: SandboxApi
) -> None:
    api.inject(Fault(201, {"success": True, "id": "m-1"}))
    result = await ok(mcp, "record_meeting", SUMMER)
    assert result == {"id": "m-1", "starts_at_utc": "2026-12-01T13:00:00Z", "ends_at_utc": "2026-12-01T13:30:00Z"}


# --- list_workflows and calls about no lead ---------------------------------------------------------


async def test_list_workflows_passes_a_bare_list_through(mcp: McpProcess, api: SandboxApi) -> None:
    workflows = [{"id": SDR_INBOUND, "name": "SDR inbound"}]
    api.inject(Fault(200, workflows))
    assert await ok(mcp, "list_workflows", {}) == {"workflows": workflows}
    assert sent(api) == [("GET", "/workflows", None)]


@pytest.mark.parametrize(
    ("tool", "fault", "facts"),
    [("list_tags", Fault(200, [{"id": "t"}]), ["is a JSON list, not an object, so it could not be read"]),
     ("list_templates", Fault(200, {"success": False, "error": "Meta sync failed"}),
      ["success: false", "Meta sync failed", "Nothing was changed; try again later"]),
     ("list_workflows", Fault(409, {"error": "Conflict"}), ["HTTP 409", "Nothing was changed; try again later"])],
    ids=["list_tags-list", "list_templates-success-false", "list_workflows-409"],
)
async def test_a_call_about_no_lead_fails_without_naming_a_lead(
    mcp: McpProcess, api: SandboxApi, tool: str, fault: Fault, facts: list[str]
) -> None:
    api.inject(fault)
    result = await call(mcp, tool, {})
    text = text_of(result)
    assert result.is_error
    for fact in facts:
        assert fact in text, (fact, text)
    assert "lead" not in text.lower(), text


@pytest.mark.parametrize("zone", ["Santiago", "America", "../../etc/passwd", "Mars/Base"])
async def test_a_timezone_that_is_not_an_iana_name_is_refused_and_nothing_is_sent(
    mcp: McpProcess, api: SandboxApi, zone: str
) -> None:
    """It decides the meeting's instant: a wrong name would book it at the wrong time."""
    result = await call(mcp, "record_meeting", {**SUMMER, "timezone": zone})
    text = text_of(result)
    assert result.is_error and "nothing was sent" in text
    assert "timezone: expected an IANA time zone name like \"America/Santiago\"" in text
    assert api.requests == []


async def test_a_meeting_echoed_without_its_offset_gets_the_instants_of_what_was_sent(
    mcp: McpProcess, api: SandboxApi
) -> None:
    """Nexor's answer to POST /meetings is undocumented: an echo of the wall-clock time (no offset)
    must not be taken for UTC; the instant is the one that was booked."""
    echo = {"id": "m-2", "starts_at": SUMMER["starts_at"], "ends_at": None, "timezone": "America/Santiago"}
    api.inject(Fault(201, {"success": True, "meeting": echo}))
    result = await ok(mcp, "record_meeting", SUMMER)
    assert result["meeting"] == {**echo, "starts_at_utc": "2026-12-01T13:00:00Z", "ends_at_utc": "2026-12-01T13:30:00Z"}
