"""Write safety end to end: `python -m nexor_mcp` over stdio (and hosted mode over HTTP) against the
sandbox, driven by the SDK's client. Dry runs send no write and predict the real call; the
stale-write guard refuses after a concurrent change and sends nothing; confirmation by elicitation
(legacy and 2026-07-28) and by token refuses everything but an explicit yes."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.context import ClientRequestContext
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult

from nexor_mcp.config import Secret
from nexor_mcp.confirm import TOKEN_SECONDS, Sealer
from nexor_mcp.safety import confirmation_binding
from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from nexor_mcp.sandbox.seed import ANA_RUN, HOT_TAG, SDR_INBOUND
from nexor_mcp.tools import TOOLS_BY_NAME
from tests.conftest import ANA, JOHN, TEST_KEY, child_log, server_env, text_of

pytestmark = pytest.mark.anyio

ALL_GROUPS = "read,write,automation,outreach"
SECRET = "s" * 40
WHATSAPP: dict[str, Any] = {
    "lead_id": ANA, "workflow_id": SDR_INBOUND, "channel": "whatsapp", "content": "Hola Ana, ¿hablamos mañana?"
}
Answer = ElicitResult | None


@asynccontextmanager
async def connect(
    base_url: str, mode: str = "legacy", answer: Answer = None, **env: str
) -> AsyncIterator[tuple[Client, list[ElicitRequestParams]]]:
    """A real client on a real `python -m nexor_mcp` over stdio. With `answer`, the client can
    elicit and answers every question so (the questions are recorded); without, it cannot."""
    asked: list[ElicitRequestParams] = []

    async def elicit(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params)
        assert answer is not None
        return answer

    settings = server_env(base_url, NEXOR_TOOLS=ALL_GROUPS, NEXOR_MCP_SECRET=SECRET, **env)
    params = StdioServerParameters(command=sys.executable, args=["-m", "nexor_mcp"], env=settings)
    with child_log() as errlog:
        transport = stdio_client(params, errlog=errlog)
        callback = elicit if answer is not None else None
        async with Client(transport, mode=mode, elicitation_callback=callback) as client:
            yield client, asked


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(20):
        return await client.call_tool(tool, arguments)


def writes(api: SandboxApi) -> list[tuple[str, str, Any]]:
    """Every request that was not a read: what a dry run or a refusal must never send."""
    return [(r.method, r.path.removeprefix("/api/public"), r.json) for r in api.requests if r.method != "GET"]


def structured(result: CallToolResult) -> dict[str, Any]:
    content: dict[str, Any] | None = result.structured_content
    assert content is not None, text_of(result)
    return content


# --- dry runs ----------------------------------------------------------------------------------------


async def test_a_dry_run_update_sends_nothing_and_predicts_the_real_call(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    update = {"lead_id": ANA, "title": "CTO", "phone": None, "metadata": {"budget": 5000, "source_detail": "fair"}}
    async with connect(sandbox_server.base_url) as (client, _):
        before = structured(await call(client, "get_lead", {"lead_id": ANA}))["lead"]
        api.requests.clear()
        dry = await call(client, "update_lead", {**update, "dry_run": True})
        assert not dry.is_error, text_of(dry)
        assert writes(api) == [] and [r.method for r in api.requests] == ["GET"]
        preview = structured(dry)
        assert preview["would_send"] == {
            "method": "PATCH", "path": f"/leads/{ANA}",
            "body": {"title": "CTO", "phone": None, "metadata": {"budget": 5000, "source_detail": "fair"}},
        }
        assert preview["before"] == before
        assert preview["changes"] == [  # in the order of the body, which follows the schema
            f'phone: {json_of(before["phone"])} → null (cleared)',
            f'title: {json_of(before["title"])} → "CTO"',
            "metadata.budget: (absent) → 5000",
            'metadata.source_detail: (absent) → "fair"',
        ]
        assert preview["no_op"] is False
        assert "nothing was sent" in text_of(dry)
        real = structured(await call(client, "update_lead", update))["lead"]
    assert writes(api) == [("PATCH", f"/leads/{ANA}", preview["would_send"]["body"])]
    shared = set(real) & set(preview["after"]) - {"updated_at"}
    assert shared >= {"title", "phone", "metadata", "first_name", "email"}
    assert {key: preview["after"][key] for key in shared} == {key: real[key] for key in shared}


def json_of(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


async def test_a_dry_run_that_changes_nothing_says_so(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    async with connect(sandbox_server.base_url) as (client, _):
        lead = structured(await call(client, "get_lead", {"lead_id": JOHN}))["lead"]
        dry = structured(await call(client, "update_lead", {"lead_id": JOHN, "first_name": lead["first_name"],
                                                             "dry_run": True}))
    assert dry["no_op"] is True and dry["changes"] == []
    assert writes(api) == []


async def test_a_dry_run_of_set_lead_tags_names_what_is_added_and_removed(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    async with connect(sandbox_server.base_url) as (client, _):
        lead = structured(await call(client, "get_lead", {"lead_id": ANA}))["lead"]
        had = [tag["name"] for tag in lead["tags"]]
        assert had, "the seeded lead has tags"
        wanted = [had[0], "Referral"]
        dry = structured(await call(client, "set_lead_tags", {"lead_id": ANA, "tags": wanted, "dry_run": True}))
        assert writes(api) == []
        assert dry["after"] == {"tags": wanted, "added": ["Referral"], "removed": had[1:], "kept": had[:1]}
        assert dry["changes"] == ['tags: + "Referral"', *(f'tags: - "{name}"' for name in had[1:]),
                                  f'tags kept: "{had[0]}"']
        real = structured(await call(client, "set_lead_tags", {"lead_id": ANA, "tags": wanted}))
    assert [tag["name"] for tag in real["tags"]] == dry["after"]["tags"]


DRY_RUN_CALLS: dict[str, dict[str, Any]] = {
    "update_lead": {"lead_id": ANA, "company": "Acme SpA"},
    "add_lead_tags": {"lead_id": JOHN, "tag_ids": [HOT_TAG]},
    "set_lead_tags": {"lead_id": JOHN, "tags": ["VIP"]},
    "stop_automation": {"lead_id": ANA, "workflow_id": SDR_INBOUND},
    "resume_automation": {"lead_id": ANA, "workflow_id": SDR_INBOUND, "resume_cadence": True},
    "assign_workflow": {"lead_id": JOHN, "workflow_id": SDR_INBOUND, "reason": "inbound"},
    "set_lead_status": {"lead_id": ANA, "status_key": "qualified", "reason": "budget confirmed"},
    "send_message": WHATSAPP,
}


def test_every_tool_with_dry_run_is_covered_here() -> None:
    assert {name for name, spec in TOOLS_BY_NAME.items() if "dry_run" in spec.arguments.model_fields} == set(
        DRY_RUN_CALLS
    )


@pytest.mark.parametrize("tool", sorted(DRY_RUN_CALLS))
async def test_each_dry_run_sends_no_write_and_shows_exactly_what_the_real_call_sends(
    sandbox_server: SandboxServer, api: SandboxApi, tool: str
) -> None:
    arguments = DRY_RUN_CALLS[tool]
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM="never") as (client, _):
        dry = await call(client, tool, {**arguments, "dry_run": True})
        assert not dry.is_error, text_of(dry)
        assert writes(api) == [], "a dry run sent a write"
        would_send = structured(dry)["would_send"]
        real = await call(client, tool, {**arguments, "dry_run": False})
        assert not real.is_error, text_of(real)
    assert writes(api) == [(would_send["method"], would_send["path"], would_send["body"])]
    assert "dry_run" not in str(would_send["body"])


# --- the stale-write guard ---------------------------------------------------------------------------


async def test_the_guard_writes_when_the_lead_is_unchanged_and_refuses_after_a_concurrent_change(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    async with connect(sandbox_server.base_url) as (agent, _), connect(sandbox_server.base_url) as (colleague, _):
        seen = structured(await call(agent, "get_lead", {"lead_id": ANA}))["lead"]
        guarded = {"lead_id": ANA, "title": "CTO", "if_unchanged_since": seen["updated_at"]}
        ok = await call(agent, "update_lead", guarded)
        assert not ok.is_error, text_of(ok)
        mine = structured(ok)["lead"]
        await anyio.sleep(0.01)  # a later updated_at for the colleague's edit
        await call(colleague, "update_lead", {"lead_id": ANA, "title": "VP Sales", "metadata": {"budget": 1}})
        api.requests.clear()
        stale = await call(agent, "update_lead", {**guarded, "title": "CEO", "if_unchanged_since": mine["updated_at"]})
    assert stale.is_error
    assert writes(api) == []
    conflict = structured(stale)
    assert conflict["written"] is False and conflict["conflict"] is True
    assert conflict["your_updated_at"] == mine["updated_at"] and conflict["current_updated_at"] != mine["updated_at"]
    assert conflict["changed_since"] == ['title: "CTO" → "VP Sales"', "metadata.budget: (absent) → 1"]
    assert conflict["current"] == {"title": "VP Sales"}
    assert "Not written" in text_of(stale) and conflict["current_updated_at"] in text_of(stale)


async def test_the_guard_on_set_lead_tags_refuses_a_stale_write(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    async with connect(sandbox_server.base_url) as (client, _):
        seen = structured(await call(client, "get_lead", {"lead_id": JOHN}))["lead"]
        await anyio.sleep(0.01)
        await call(client, "update_lead", {"lead_id": JOHN, "company": "Other Co"})
        api.requests.clear()
        guarded = {"lead_id": JOHN, "tags": [], "if_unchanged_since": seen["updated_at"]}
        stale = await call(client, "set_lead_tags", guarded)
    assert stale.is_error and writes(api) == []
    assert structured(stale)["changed_since"] == [f'company: {json_of(seen["company"])} → "Other Co"']


async def test_the_guard_compares_instants_not_spellings(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    async with connect(sandbox_server.base_url) as (client, _):
        seen = structured(await call(client, "get_lead", {"lead_id": ANA}))["lead"]["updated_at"]
        assert seen.endswith("Z")
        same_moment = seen[:-1] + "+00:00"
        ok = await call(client, "update_lead", {"lead_id": ANA, "title": "CTO", "if_unchanged_since": same_moment})
    assert not ok.is_error, text_of(ok)


async def test_the_guard_fails_closed_when_nexor_gives_no_updated_at(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    api.inject(Fault(200, {"success": True, "lead": {"id": ANA, "first_name": "Ana"}}))
    async with connect(sandbox_server.base_url) as (client, _):
        result = await call(client, "update_lead", {"lead_id": ANA, "title": "CTO",
                                                     "if_unchanged_since": "2026-01-01T00:00:00Z"})
    assert result.is_error and writes(api) == []
    assert "no updated_at" in text_of(result)


async def test_a_malformed_if_unchanged_since_is_refused_before_any_request(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    async with connect(sandbox_server.base_url) as (client, _):
        result = await call(client, "update_lead", {"lead_id": ANA, "title": "CTO", "if_unchanged_since": "yesterday"})
    assert result.is_error and api.requests == []
    assert "if_unchanged_since" in text_of(result) and "ISO 8601" in text_of(result)


# --- confirmation by token (the opt-in NEXOR_CONFIRM_VIA=token, agent-relayed) ----------------------


async def test_a_token_confirms_exactly_once_and_only_for_the_same_arguments(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM_VIA="token") as (client, asked):
        first = await call(client, "send_message", WHATSAPP)
        assert not first.is_error and writes(api) == []
        pending = structured(first)
        assert pending["sent"] is False and pending["confirmation_required"] is True
        assert "Ana" in pending["question"] and WHATSAPP["content"] in pending["question"]
        assert pending["would_send"] == {"method": "POST", "path": "/messages", "body": WHATSAPP}
        assert text_of(first).startswith("NOT DONE") and pending["confirmation"] in text_of(first)
        token = pending["confirmation"]

        other = await call(client, "send_message", {**WHATSAPP, "content": "something else", "confirmation": token})
        assert other.is_error and writes(api) == []
        assert "not issued for these exact arguments" in text_of(other)

        forged = await call(client, "send_message", {**WHATSAPP, "confirmation": token[:-4] + "AAAA"})
        assert forged.is_error and writes(api) == []

        sent = await call(client, "send_message", {**WHATSAPP, "confirmation": token})
        assert not sent.is_error, text_of(sent)
        assert [(method, path) for method, path, _ in writes(api)] == [("POST", "/messages")]
        assert writes(api)[0][2] == WHATSAPP  # the token itself is never sent to Nexor

        again = await call(client, "send_message", {**WHATSAPP, "confirmation": token})
    assert again.is_error and "already used" in text_of(again)
    assert len(writes(api)) == 1
    assert asked == []  # this client cannot elicit: nobody was asked through it


async def test_an_expired_token_is_refused(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    spec = TOOLS_BY_NAME["send_message"]
    binding = confirmation_binding(spec.parse(WHATSAPP))
    account = __import__("hashlib").sha256(TEST_KEY.encode()).hexdigest()
    expired = Sealer(Secret(SECRET)).issue("c1", "send_message", binding, account, now=0.0)
    still_good = Sealer(Secret(SECRET)).issue("c1", "send_message", binding, account)
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM_VIA="token") as (client, _):
        refused = await call(client, "send_message", {**WHATSAPP, "confirmation": expired})
        assert refused.is_error and "expired" in text_of(refused) and writes(api) == []
        accepted = await call(client, "send_message", {**WHATSAPP, "confirmation": still_good})
    assert not accepted.is_error, text_of(accepted)  # the same secret, so the same key: only the expiry differed
    assert len(writes(api)) == 1
    assert TOKEN_SECONDS == 300


async def test_automation_tools_ask_too_and_never_turns_it_off(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    status = {"lead_id": ANA, "status_key": "qualified"}
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM_VIA="token") as (client, _):
        pending = await call(client, "set_lead_status", status)
        assert structured(pending)["confirmation_required"] is True and writes(api) == []
        ran = await call(client, "stop_automation", {"lead_id": ANA, "workflow_id": SDR_INBOUND})
        assert not ran.is_error and len(writes(api)) == 1  # the write group never asks
    api.requests.clear()
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM="never") as (client, _):
        done = await call(client, "set_lead_status", status)
    assert not done.is_error and [(m, p) for m, p, _ in writes(api)] == [("POST", f"/leads/{ANA}/status")]


# --- confirmation by elicitation -----------------------------------------------------------------------


YES = ElicitResult(action="accept", content={"confirm": True})


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_person_who_accepts_lets_it_through(sandbox_server: SandboxServer, api: SandboxApi, mode: str) -> None:
    async with connect(sandbox_server.base_url, mode, YES) as (client, asked):
        result = await call(client, "send_message", WHATSAPP)
    assert not result.is_error, text_of(result)
    assert len(asked) == 1
    question = asked[0].message
    assert "Ana" in question and "WhatsApp" in question and WHATSAPP["content"] in question
    assert "SDR" in question or SDR_INBOUND in question  # the workflow, by name where Nexor gives one
    assert [(m, p) for m, p, _ in writes(api)] == [("POST", "/messages")]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (ElicitResult(action="decline"), "declined"),
        (ElicitResult(action="cancel"), "cancelled"),
        (ElicitResult(action="accept", content={"confirm": False}), "did not check"),
    ],
)
async def test_anything_but_yes_sends_nothing(
    sandbox_server: SandboxServer, api: SandboxApi, mode: str, answer: ElicitResult, words: str
) -> None:
    async with connect(sandbox_server.base_url, mode, answer) as (client, asked):
        result = await call(client, "assign_workflow", {"lead_id": JOHN, "workflow_id": SDR_INBOUND})
    assert result.is_error and words in text_of(result) and "Nothing was sent" in text_of(result)
    assert len(asked) == 1 and "John" in asked[0].message
    assert writes(api) == []


async def test_a_dry_run_never_asks(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    async with connect(sandbox_server.base_url, "legacy", YES) as (client, asked):
        result = await call(client, "send_message", {**WHATSAPP, "dry_run": True})
    assert not result.is_error and asked == [] and writes(api) == []


async def test_the_run_the_question_names_is_the_one_changed(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    async with connect(sandbox_server.base_url, "legacy", YES) as (client, asked):
        await call(client, "set_lead_status", {"lead_id": ANA, "status_key": "qualified", "workflow_id": SDR_INBOUND})
    assert '"qualified"' in asked[0].message
    assert [(m, p) for m, p, _ in writes(api)] == [("POST", f"/leads/{ANA}/status")]
    assert ANA_RUN  # the seeded run the status lives in


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_question_a_person_sees_never_shows_the_key(
    sandbox_server: SandboxServer, api: SandboxApi, mode: str
) -> None:
    """The question leaves the server outside any tool result, so it is masked on its own."""
    pasted = {**WHATSAPP, "content": f"your key is {TEST_KEY}, and a piece: {TEST_KEY[:14]}"}
    async with connect(sandbox_server.base_url, mode, ElicitResult(action="decline")) as (client, asked):
        result = await call(client, "send_message", pasted)
    assert result.is_error and writes(api) == []
    assert len(asked) == 1 and TEST_KEY not in asked[0].message and TEST_KEY[:14] not in asked[0].message
    assert "nxr_****" in asked[0].message


async def test_confirm_via_token_never_elicits_even_from_a_client_that_can(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    """For hosts that declare elicitation and then decline without showing anyone."""
    async with connect(sandbox_server.base_url, "legacy", YES, NEXOR_CONFIRM_VIA="token") as (client, asked):
        first = await call(client, "send_message", WHATSAPP)
        assert structured(first)["confirmation_required"] is True and writes(api) == []
        token = structured(first)["confirmation"]
        sent = await call(client, "send_message", {**WHATSAPP, "confirmation": token})
    assert not sent.is_error and asked == []
    assert len(writes(api)) == 1
