"""End to end: `python -m nexor_mcp audit list | show | undo` as a subprocess against the sandbox.

The journal is written the way the server writes it (the journal step around a client, with the before-values
read from the lead first); the assertions are on what the command printed, what the sandbox
received, what the lead holds afterwards and what the journal then contains."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from nexor_mcp import endpoints
from nexor_mcp.audit import Journal, account_fingerprint, read_journal
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Secret, Settings
from nexor_mcp.sandbox import CAMPAIGNS, Fault, SandboxApi, SandboxServer
from tests.conftest import ANA, JOHN, TEST_KEY
from tests.journaling import Journaled

OTHER_KEY = "nxr_live_other_account_41c7"
WORKFLOW = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
Json = dict[str, Any]


def run_audit(journal: Path, base_url: str, *args: str, key: str = TEST_KEY) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("NEXOR_")}
    env.update(NEXOR_BASE_URL=base_url, NEXOR_API_KEY=key, NEXOR_AUDIT_LOG=str(journal))
    return subprocess.run(
        [sys.executable, "-m", "nexor_mcp", "audit", *args], capture_output=True, text=True, timeout=60,
        check=False, env=env, stdin=subprocess.DEVNULL,
    )


def write(
    base_url: str, journal: Path, tool: str, lead_id: str, arguments: Any, key: str = TEST_KEY,
    fail: tuple[SandboxApi, Fault] | None = None,
) -> str:
    """Make one write as the server does with a journal: read the before-values, then send it
    through a journaled client (`fail`: the sandbox answers the write with this fault). Returns
    the entry id."""

    async def go() -> None:
        client = NexorClient(Settings(api_key=Secret(key), base_url=base_url, max_retries=0))
        try:
            lead = (await client.call(endpoints.get_lead(lead_id)))["lead"]
            before: Json | None = None
            if tool == "update_lead":
                fields = {name: lead[name] if name != "campaign_id" else (lead["campaign"] or {}).get("id")
                          for name in arguments if name != "metadata"}
                written = arguments.get("metadata", {})
                before = {
                    "fields": fields,
                    "metadata": {key: lead["metadata"][key] for key in written if key in lead["metadata"]},
                    "metadata_absent": [key for key in written if key not in lead["metadata"]],
                }
            elif tool == "set_lead_tags":
                before = {"tags": [tag["name"] for tag in lead["tags"]]}
            journaled = Journaled(client, Journal(journal), tool=tool, before=before)
            if fail is not None:
                fail[0].inject(fail[1])
            if tool == "update_lead":
                await journaled.send(endpoints.update_lead(lead_id, arguments))
            elif tool == "set_lead_tags":
                await journaled.send(endpoints.set_lead_tags(lead_id, arguments))
            else:
                await journaled.send(endpoints.send_message(arguments))
        finally:
            await client.aclose()

    with contextlib.suppress(Exception):  # a write the test made fail on purpose: its entry is still journaled
        anyio.run(go)
    return read_journal(journal).entries[-1].id


def writes_received(api: SandboxApi) -> list[tuple[str, str, Any]]:
    return [(request.method, request.path.removeprefix("/api/public/"), request.json) for request in api.requests]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def test_list_shows_every_entry_with_its_outcome_and_filters(
    sandbox_server: SandboxServer, api: SandboxApi, journal: Path
) -> None:
    base = sandbox_server.base_url
    first = write(base, journal, "update_lead", ANA, {"title": "CTO", "metadata": {"budget": 5000}})
    second = write(base, journal, "set_lead_tags", ANA, ["VIP", "Hot lead"])
    third = write(base, journal, "update_lead", JOHN, {"phone": "x"},
                  fail=(api, Fault(400, {"error": "Validation error", "message": "Invalid phone"})))
    fourth = Journal(journal).begin(tool="update_lead", lead_id=JOHN, method="PATCH", path=f"leads/{JOHN}",
                                    body={"title": "Boss"}, before={"fields": {"title": None}}, account=None)
    completed = run_audit(journal, base, "list")
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    lines = completed.stdout.splitlines()
    assert lines[0].split() == ["ID", "TIME", "(UTC)", "TOOL", "LEAD", "WHAT", "OUTCOME"]
    rows = [line.split("  ") for line in lines[1:]]
    assert [[cell.strip() for cell in row if cell.strip()] for row in rows] == [
        [first, *_time_and(first), "update_lead", ANA, "title, metadata.budget", "ok (HTTP 200)"],
        [second, *_time_and(second), "set_lead_tags", ANA, "tags = [VIP, Hot lead]", "ok (HTTP 200)"],
        [third, *_time_and(third), "update_lead", JOHN, "phone", "failed (HTTP 400)"],
        [fourth, *_time_and(fourth), "update_lead", JOHN, "title",
         "unknown (no outcome recorded: the process may have died mid-request)"],
    ]
    assert _ids(run_audit(journal, base, "list", "--lead", JOHN).stdout) == [third, fourth]
    assert _ids(run_audit(journal, base, "list", "--tool", "set_lead_tags").stdout) == [second]
    assert _ids(run_audit(journal, base, "list", "--since", second).stdout) == [second, third, fourth]
    assert _ids(run_audit(journal, base, "list", "--since", "2000-01-01").stdout) == [first, second, third, fourth]
    assert run_audit(journal, base, "list", "--since", "2999-01-01").stdout == "No entries match.\n"
    as_json = [json.loads(line) for line in run_audit(journal, base, "list", "--json").stdout.splitlines()]
    assert [(item["id"], item["outcome"], item["outcome_recorded"], item["status"]) for item in as_json] == [
        (first, "ok", True, 200), (second, "ok", True, 200), (third, "failed", True, 400),
        (fourth, "unknown", False, None),
    ]
    assert as_json[0]["before"] == {"fields": {"title": "Head of Sales"}, "metadata": {}, "metadata_absent": ["budget"]}
    assert TEST_KEY not in journal.read_text()


def _time_and(entry: str) -> list[str]:
    return [f"{entry[:4]}-{entry[4:6]}-{entry[6:8]} {entry[9:11]}:{entry[11:13]}:{entry[13:15]}"]


def _ids(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines()[1:]]


def test_list_of_a_journal_not_yet_written_says_so(sandbox_server: SandboxServer, journal: Path) -> None:
    completed = run_audit(journal, sandbox_server.base_url, "list")
    assert completed.returncode == 0
    assert completed.stdout == f"The journal {journal} does not exist yet: no write has been recorded.\n"


def test_list_skips_a_cut_off_line_and_says_so_on_stderr(
    sandbox_server: SandboxServer, api: SandboxApi, journal: Path
) -> None:
    first = write(sandbox_server.base_url, journal, "update_lead", ANA, {"title": "CTO"})
    with journal.open("a") as file:
        file.write('{"v":1,"id":"2026')
    completed = run_audit(journal, sandbox_server.base_url, "list")
    assert completed.returncode == 0
    assert _ids(completed.stdout) == [first]
    assert completed.stderr == (
        f"nexor-mcp audit: warning: {journal} line 3: cut off (the process may have died while writing it); skipped\n"
    )


def test_audit_without_a_journal_configured_says_how_to_set_one(sandbox_server: SandboxServer) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("NEXOR_")}
    completed = subprocess.run([sys.executable, "-m", "nexor_mcp", "audit", "list"], capture_output=True, text=True,
                               timeout=60, check=False, env=env)
    assert completed.returncode == 2
    assert completed.stderr == (
        "nexor-mcp audit: no audit journal is configured: set NEXOR_DATABASE_URL (or database_url, "
        "--database-url), or NEXOR_AUDIT_LOG (audit_log, --audit-log PATH): the journal the server writes\n"
    )


def test_show_an_update_gives_its_changes_and_how_to_undo_it(
    sandbox_server: SandboxServer, api: SandboxApi, journal: Path
) -> None:
    entry = write(sandbox_server.base_url, journal, "update_lead", ANA,
                  {"title": "CTO", "phone": None, "metadata": {"edad": 35, "budget": 5000}})
    read = read_journal(journal).entries[0]
    completed = run_audit(journal, sandbox_server.base_url, "show", entry[:20])  # a unique start is enough
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == [
        f"entry      {entry}",
        f"time       {read.time}",
        "tool       update_lead",
        f"lead       {ANA}",
        f"account    {account_fingerprint(TEST_KEY)}",
        f"request    PATCH leads/{ANA}",
        'body       {"title":"CTO","phone":null,"metadata":{"edad":35,"budget":5000}}',
        f"outcome    ok (HTTP 200), at {read.finished}",
        'changes    title: "Head of Sales" → "CTO"',
        '           phone: "+56987654321" → null',
        "           metadata.edad: 34 → 35",
        "           metadata.budget: (absent) → 5000",
        f"undo       can be undone, if the lead still holds what it wrote: nexor-mcp audit undo {entry}",
    ]


@pytest.mark.parametrize(
    ("tool", "why"),
    [
        ("send_message", "cannot be undone: a message went to a real person, and a message cannot be unsent"),
    ],
)
def test_show_says_plainly_what_cannot_be_undone(
    sandbox_server: SandboxServer, api: SandboxApi, journal: Path, tool: str, why: str
) -> None:
    entry = write(sandbox_server.base_url, journal, tool, ANA,
                  {"lead_id": ANA, "workflow_id": WORKFLOW, "channel": "whatsapp", "content": "Hola Ana"})
    completed = run_audit(journal, sandbox_server.base_url, "show", entry)
    assert completed.returncode == 0
    lines = completed.stdout.splitlines()
    assert lines[-1] == f"undo       {why}"
    assert 'body       {"lead_id":"' + ANA + '","workflow_id":"' + WORKFLOW + '","channel":"whatsapp",' \
        '"content":"Hola Ana"}' in lines
    undo = run_audit(journal, sandbox_server.base_url, "undo", entry)
    assert undo.returncode == 1
    assert undo.stdout.splitlines()[:2] == [f"{entry} send_message on {ANA}: refused", f"  {why}"]


def test_show_of_an_unknown_entry_fails(sandbox_server: SandboxServer, journal: Path) -> None:
    Journal(journal).problem()  # an empty journal
    completed = run_audit(journal, sandbox_server.base_url, "show", "2026nope")
    assert completed.returncode == 1
    assert completed.stderr == "nexor-mcp audit show: no entry '2026nope' in the journal\n"


def test_undo_restores_the_exact_before_values_newest_first_and_is_journaled(
    sandbox_server: SandboxServer, api: SandboxApi, journal: Path
) -> None:
    base = sandbox_server.base_url
    update = write(base, journal, "update_lead", ANA,
                   {"title": "CTO", "phone": None, "metadata": {"edad": 35, "budget": 5000}})
    tags = write(base, journal, "set_lead_tags", ANA, ["vip", "Hot lead"])
    assert api.leads[ANA]["title"] == "CTO"
    api.requests.clear()
    completed = run_audit(journal, base, "undo", update, tags)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stderr == ""
    assert completed.stdout.splitlines() == [
        f"{tags} set_lead_tags on {ANA}: undone",
        "  tags: [VIP, Hot lead] → [VIP]",
        f"{update} update_lead on {ANA}: undone",
        '  title: "CTO" → "Head of Sales"',
        '  phone: null → "+56987654321"',
        "  metadata.edad: 35 → 34",
        "  metadata.budget: 5000 → null (metadata.budget did not exist before; Nexor documents no way to delete a "
        "metadata key, so it is set to null)",
        "Done: 2 undone, 0 with nothing to undo, 0 refused, 0 failed.",
    ]
    assert writes_received(api) == [
        ("GET", f"leads/{ANA}", None),
        ("PUT", "leads/tags", {"lead_id": ANA, "tags": ["VIP"]}),
        ("GET", f"leads/{ANA}", None),
        ("PATCH", f"leads/{ANA}", {"title": "Head of Sales", "phone": "+56987654321",
                                   "metadata": {"edad": 34, "budget": None}}),
    ]
    lead = api.leads[ANA]
    assert (lead["title"], lead["phone"]) == ("Head of Sales", "+56987654321")
    assert lead["metadata"] == {"edad": 34, "utm_source": "google", "budget": None}
    assert [api.state.tags[tag]["name"] for tag in lead["tags"]] == ["VIP"]
    entries = read_journal(journal).entries
    assert [(entry.tool, entry.undoes, entry.outcome) for entry in entries] == [
        ("update_lead", None, "ok"), ("set_lead_tags", None, "ok"), ("undo", tags, "ok"), ("undo", update, "ok"),
    ]
    assert entries[2].before == {"tags": ["VIP", "Hot lead"]}
    assert entries[3].before == {"fields": {"title": "CTO", "phone": None}, "metadata": {"edad": 35, "budget": 5000},
                                 "metadata_absent": []}
    assert entries[3].account == account_fingerprint(TEST_KEY)
    # Undone already: listed so, and a second undo is refused (the lead no longer holds what it wrote).
    again = run_audit(journal, base, "show", update)
    assert again.stdout.splitlines()[-1].startswith(f"undo       already undone by entry {entries[3].id} (")
    assert run_audit(journal, base, "undo", update).returncode == 1


def test_undo_refuses_when_the_lead_changed_since_and_force_overrides(
    sandbox_server: SandboxServer, api: SandboxApi, journal: Path
) -> None:
    base = sandbox_server.base_url
    entry = write(base, journal, "update_lead", ANA, {"title": "CTO", "metadata": {"edad": 35}})
    api.leads[ANA]["title"] = "CEO"  # a colleague's edit after the entry
    api.requests.clear()
    refused = run_audit(journal, base, "undo", entry)
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == [
        f"{entry} update_lead on {ANA}: refused",
        "  the lead changed after this entry, so nothing was sent (--force undoes it anyway):",
        '  - title is "CEO", not "CTO" as the entry wrote',
        "Done: 0 undone, 0 with nothing to undo, 1 refused, 0 failed.",
    ]
    assert writes_received(api) == [("GET", f"leads/{ANA}", None)]  # no PATCH
    assert api.leads[ANA]["title"] == "CEO"
    api.requests.clear()
    forced = run_audit(journal, base, "undo", entry, "--force")
    assert forced.returncode == 0, forced.stdout
    assert forced.stdout.splitlines()[1:3] == [
        "  the lead changed after this entry; undoing anyway (--force):",
        '  - title is "CEO", not "CTO" as the entry wrote',
    ]
    assert writes_received(api) == [
        ("GET", f"leads/{ANA}", None),
        ("PATCH", f"leads/{ANA}", {"title": "Head of Sales", "metadata": {"edad": 34}}),
    ]
    assert api.leads[ANA]["title"] == "Head of Sales"


def test_undo_of_a_chain_since_its_first_entry_goes_back_to_the_start(
    sandbox_server: SandboxServer, api: SandboxApi, journal: Path
) -> None:
    base = sandbox_server.base_url
    first = write(base, journal, "update_lead", ANA, {"title": "VP"})
    write(base, journal, "update_lead", ANA, {"title": "CTO"})
    write(base, journal, "update_lead", ANA, {"title": "CEO"})
    message = write(base, journal, "send_message", ANA,
                    {"lead_id": ANA, "workflow_id": WORKFLOW, "channel": "whatsapp", "content": "Hola"})
    without_yes = run_audit(journal, base, "undo", "--since", first)
    assert without_yes.returncode == 1
    assert without_yes.stdout.splitlines()[-1] == "Not undone: rerun with --yes to undo them without this question."
    assert api.leads[ANA]["title"] == "CEO"
    completed = run_audit(journal, base, "undo", "--since", first, "--yes")
    assert completed.returncode == 0, completed.stdout
    lines = completed.stdout.splitlines()
    assert lines[0] == (f"{message} send_message: skipped: cannot be undone: a message went to a real person, and a "
                        "message cannot be unsent")
    assert [line for line in lines if line.startswith("  title")] == [
        '  title: "CEO" → "CTO"', '  title: "CTO" → "VP"', '  title: "VP" → "Head of Sales"',
    ]
    assert lines[-1] == "Done: 3 undone, 0 with nothing to undo, 0 refused, 0 failed."
    assert api.leads[ANA]["title"] == "Head of Sales"
    # The undone entries (and the undos themselves) are not chosen again.
    again = run_audit(journal, base, "undo", "--since", first, "--yes")
    assert again.returncode == 0
    assert again.stdout.splitlines()[-1] == "Nothing to undo since then."


def test_undo_refuses_an_entry_of_another_account_and_sends_nothing(
    sandbox_server: SandboxServer, api: SandboxApi, journal: Path
) -> None:
    api.add_account(OTHER_KEY)
    entry = write(sandbox_server.base_url, journal, "update_lead", ANA, {"title": "CTO"}, key=OTHER_KEY)
    api.requests.clear()
    completed = run_audit(journal, sandbox_server.base_url, "undo", entry)
    assert completed.returncode == 1
    assert completed.stdout.splitlines()[:2] == [
        f"{entry} update_lead on {ANA}: refused",
        f"  it was written with another Nexor account's key (account {account_fingerprint(OTHER_KEY)}; the "
        f"configured key is account {account_fingerprint(TEST_KEY)}); undo uses the configured key, so it cannot "
        "undo it",
    ]
    assert len(api.requests) == 0
    assert run_audit(journal, sandbox_server.base_url, "undo", entry, key=OTHER_KEY).returncode == 0


def test_undo_of_a_failed_write_has_nothing_to_undo(
    sandbox_server: SandboxServer, api: SandboxApi, journal: Path
) -> None:
    entry = write(sandbox_server.base_url, journal, "update_lead", ANA, {"title": "CTO"},
                  fail=(api, Fault(400, {"error": "Validation error"})))
    api.requests.clear()
    completed = run_audit(journal, sandbox_server.base_url, "undo", entry)
    assert completed.returncode == 0
    assert completed.stdout.splitlines() == [
        f"{entry} update_lead on {ANA}: nothing to undo",
        "  nothing to undo: the write failed (failed (HTTP 400)), so Nexor changed nothing",
        "Done: 0 undone, 1 with nothing to undo, 0 refused, 0 failed.",
    ]
    assert len(api.requests) == 0


def test_undo_of_a_campaign_change_puts_the_campaign_back(
    sandbox_server: SandboxServer, api: SandboxApi, journal: Path
) -> None:
    """GET shows the campaign as {id, name}, PATCH takes campaign_id: undo compares and restores the id."""
    old = api.leads[ANA]["campaign_id"]
    new = next(campaign for campaign in CAMPAIGNS if campaign != old)
    entry = write(sandbox_server.base_url, journal, "update_lead", ANA, {"campaign_id": new})
    api.requests.clear()
    completed = run_audit(journal, sandbox_server.base_url, "undo", entry)
    assert completed.returncode == 0, completed.stdout
    assert writes_received(api)[-1] == ("PATCH", f"leads/{ANA}", {"campaign_id": old})
    assert api.leads[ANA]["campaign_id"] == old


def test_undo_of_tags_matches_names_as_nexor_does(
    sandbox_server: SandboxServer, api: SandboxApi, journal: Path
) -> None:
    """Written as "hot-lead" and "vip", shown by Nexor as "Hot lead" and "VIP": the same tags."""
    entry = write(sandbox_server.base_url, journal, "set_lead_tags", JOHN, ["vip", "hot-lead"],
                  fail=(api, Fault(204, raw_body=b"")))  # accepted, answer unreadable: no `after` on record
    api.leads[JOHN]["tags"] = [tag_id for tag_id, tag in api.state.tags.items() if tag["name"] in ("VIP", "Hot lead")]
    assert read_journal(journal).entries[0].outcome == "accepted"
    completed = run_audit(journal, sandbox_server.base_url, "undo", entry)
    assert completed.returncode == 0, completed.stdout
    assert api.leads[JOHN]["tags"] == []


def test_undo_dry_run_sends_no_write(sandbox_server: SandboxServer, api: SandboxApi, journal: Path) -> None:
    entry = write(sandbox_server.base_url, journal, "update_lead", ANA, {"title": "CTO"})
    api.requests.clear()
    completed = run_audit(journal, sandbox_server.base_url, "undo", entry, "--dry-run")
    assert completed.returncode == 0
    assert completed.stdout.splitlines() == [
        f"{entry} update_lead on {ANA}: would be undone",
        '  title: "CTO" → "Head of Sales"',
        f'  would send: PATCH leads/{ANA} {{"title":"Head of Sales"}}',
        "Done: 1 would be undone, 0 with nothing to undo, 0 refused, 0 failed.",
    ]
    assert writes_received(api) == [("GET", f"leads/{ANA}", None)]
    assert len(read_journal(journal).entries) == 1
