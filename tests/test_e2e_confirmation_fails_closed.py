"""Issue 14, confirmation: `python -m nexor_mcp` over stdio against the sandbox, driven by the SDK's
client (and, for answers the SDK client would never send, by raw JSON-RPC lines).

- Once a client declared form elicitation, any failure of asking it (an error answer, a callback
  that raises, an answer that cannot be read, a malformed 2026-07-28 come-back) is a no: nothing is
  sent and no token is handed out.
- A token (the opt-in NEXOR_CONFIRM_VIA=token) refused for its MAC names NEXOR_MCP_SECRET when
  the server has no shared key.
- A dry run of a confirmed tool carries what the real call's confirmation needs.
- The stale-write conflict's text holds the current values.
- The question a person sees spells out invisible characters.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, MCPError, StdioServerParameters, stdio_client
from mcp.client.context import ClientRequestContext
from mcp.client.stdio import get_default_environment
from mcp.types import (
    CallToolResult,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    ErrorData,
    InputRequiredResult,
    InputResponses,
    ListRootsResult,
    TextContent,
)

from nexor_mcp.sandbox import SandboxApi, SandboxServer
from nexor_mcp.sandbox.seed import HOT_TAG, SDR_INBOUND
from tests.conftest import ANA, JOHN, child_log, server_env, text_of
from tests.test_e2e_safety import call, structured, writes

pytestmark = pytest.mark.anyio

ALL_GROUPS = "read,write,automation,outreach"
SECRET = "s" * 40
WHATSAPP: dict[str, Any] = {
    "lead_id": ANA, "workflow_id": SDR_INBOUND, "channel": "whatsapp", "content": "Hola Ana, ¿hablamos mañana?"
}
STATUS: dict[str, Any] = {"lead_id": JOHN, "status_key": "qualified"}
YES = ElicitResult(action="accept", content={"confirm": True})
Callback = Callable[[ClientRequestContext, ElicitRequestParams], Awaitable[Any]]


@asynccontextmanager
async def connect(
    base_url: str, mode: str = "legacy", callback: Callback | None = None, **env: str
) -> AsyncIterator[tuple[Client, list[ElicitRequestParams]]]:
    """A real SDK client on a real `python -m nexor_mcp` over stdio; with `callback` it declares
    elicitation and every question it is asked is recorded. `env` replaces the defaults
    (NEXOR_MCP_SECRET="" leaves the secret out)."""
    asked: list[ElicitRequestParams] = []

    async def elicit(context: ClientRequestContext, params: ElicitRequestParams) -> Any:
        asked.append(params)
        assert callback is not None
        return await callback(context, params)

    settings = {"NEXOR_TOOLS": ALL_GROUPS, "NEXOR_MCP_SECRET": SECRET, **env}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "nexor_mcp"],
        env=server_env(base_url, **{key: value for key, value in settings.items() if value}),
    )
    with child_log() as errlog:
        transport = stdio_client(params, errlog=errlog)
        async with Client(transport, mode=mode, elicitation_callback=elicit if callback else None) as client:
            yield client, asked


def answering(answer: Any) -> Callback:
    async def callback(context: ClientRequestContext, params: ElicitRequestParams) -> Any:
        return answer

    return callback


async def raising(context: ClientRequestContext, params: ElicitRequestParams) -> Any:
    raise RuntimeError("the host's dialog crashed")


def assert_refused_without_token(result: CallToolResult, api: SandboxApi) -> None:
    """A no: an error result that says nothing was sent, carries no token, and sent nothing."""
    text = text_of(result)
    assert result.is_error, text
    assert "Not sent" in text and "Nothing was sent" in text
    assert "c1." not in text and "confirmation" not in (result.structured_content or {})
    assert writes(api) == []


# --- 1. a failure of asking is a no, never a token ------------------------------------------------


FAILED_ANSWERS: dict[str, tuple[Callback, str]] = {
    "a JSON-RPC error": (answering(ErrorData(code=-32000, message="no dialog here")), '"no dialog here"'),
    "a callback that raises": (raising, "counts as no"),
    "a result of the wrong kind": (answering(ListRootsResult(roots=[])), "counts as no"),
    "garbage": (answering("yes please"), "counts as no"),
}


@pytest.mark.parametrize("failure", sorted(FAILED_ANSWERS))
@pytest.mark.parametrize(("tool", "arguments"), [("send_message", WHATSAPP), ("set_lead_status", STATUS)])
async def test_an_elicitation_that_fails_is_a_refusal_never_a_token(
    sandbox_server: SandboxServer, api: SandboxApi, failure: str, tool: str, arguments: dict[str, Any]
) -> None:
    callback, words = FAILED_ANSWERS[failure]
    async with connect(sandbox_server.base_url, "legacy", callback) as (client, asked):
        result = await call(client, tool, arguments)
        assert len(asked) == 1  # the client was asked, so only its yes may send
        assert_refused_without_token(result, api)
        assert words in text_of(result)
        again = await call(client, tool, arguments)  # and a second try asks again: still no token
    assert len(asked) == 2
    assert_refused_without_token(again, api)


@asynccontextmanager
async def raw_session(base_url: str) -> AsyncIterator[tuple[Process, BufferedByteReceiveStream]]:
    """`python -m nexor_mcp` spoken to in raw JSON-RPC lines, as a client that declared form
    elicitation on protocol 2025-11-25: for answers the SDK's client would refuse to send."""
    env = {**get_default_environment(), **server_env(base_url, NEXOR_TOOLS=ALL_GROUPS)}
    with child_log() as errlog:
        async with await anyio.open_process([sys.executable, "-m", "nexor_mcp"], env=env, stderr=errlog) as process:
            assert process.stdin is not None and process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            await send(process, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"form": {}}},
                "clientInfo": {"name": "raw", "version": "0"}}})
            assert (await receive(lines))["id"] == 1
            await send(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            yield process, lines
            await process.stdin.aclose()


async def send(process: Process, message: dict[str, Any]) -> None:
    assert process.stdin is not None
    await process.stdin.send(json.dumps(message).encode() + b"\n")


async def receive(lines: BufferedByteReceiveStream) -> dict[str, Any]:
    with anyio.fail_after(20):
        message: dict[str, Any] = json.loads(await lines.receive_until(b"\n", 1 << 20))
    return message


@pytest.mark.parametrize(
    "answer",
    [{"action": "maybe"}, {"action": "accept", "content": "yes"}, {}, {"content": {"confirm": True}}],
    ids=["unknown action", "content not an object", "empty", "no action"],
)
async def test_an_answer_that_cannot_be_read_is_a_refusal(
    sandbox_server: SandboxServer, api: SandboxApi, answer: dict[str, Any]
) -> None:
    async with raw_session(sandbox_server.base_url) as (process, lines):
        await send(process, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                             "params": {"name": "send_message", "arguments": WHATSAPP}})
        question = await receive(lines)
        assert question["method"] == "elicitation/create"
        await send(process, {"jsonrpc": "2.0", "id": question["id"], "result": answer})
        response = await receive(lines)
    assert response["id"] == 2
    result = CallToolResult.model_validate(response["result"])
    assert_refused_without_token(result, api)
    assert "could not be read" in text_of(result)


async def test_a_2026_client_whose_callback_errs_gets_no_token_and_nothing_is_sent(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    """On 2026-07-28 the question rides in the result; a failed answer stops the call at the client."""
    for callback in (answering(ErrorData(code=-32000, message="no dialog here")), raising):
        async with connect(sandbox_server.base_url, "2026-07-28", callback) as (client, asked):
            with anyio.fail_after(20), pytest.raises((MCPError, ExceptionGroup)):
                await client.call_tool("send_message", WHATSAPP)
        assert len(asked) == 1
    assert writes(api) == []


async def ask_2026(client: Client) -> InputRequiredResult:
    with anyio.fail_after(20):
        asked = await client.session.call_tool("send_message", WHATSAPP, allow_input_required=True)
    assert isinstance(asked, InputRequiredResult) and asked.request_state is not None
    return asked


async def test_a_malformed_2026_come_back_is_a_refusal_never_go(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    wrong_kind = CreateMessageResult(role="assistant", content=TextContent(type="text", text="yes"), model="m")
    async with connect(sandbox_server.base_url, "2026-07-28", answering(YES)) as (client, _):
        session = client.session
        outcomes: dict[str, Any] = {}
        cases: list[tuple[str, InputResponses | None]] = [
            ("roots for an answer", {"confirm": ListRootsResult(roots=[])}),
            ("a sampling result for an answer", {"confirm": wrong_kind}),
            ("the answer under another key", {"other": YES}),
            ("no answer at all", None),
        ]
        for name, responses in cases:
            state = (await ask_2026(client)).request_state
            with anyio.fail_after(20):
                outcomes[name] = await session.call_tool(
                    "send_message", WHATSAPP, allow_input_required=True, request_state=state, input_responses=responses
                )
        with anyio.fail_after(20):  # a yes without the sealed state it answers
            outcomes["a yes without requestState"] = await session.call_tool(
                "send_message", WHATSAPP, allow_input_required=True, input_responses={"confirm": YES}
            )
    for name, outcome in outcomes.items():
        assert isinstance(outcome, CallToolResult), name  # refused, not asked again
        assert_refused_without_token(outcome, api)


# --- 2. the refusal of a token from another process names NEXOR_MCP_SECRET -------------------------


async def test_a_token_from_before_a_restart_is_refused_naming_the_secret(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    async with connect(sandbox_server.base_url, NEXOR_MCP_SECRET="", NEXOR_CONFIRM_VIA="token") as (first, _):
        token = structured(await call(first, "send_message", WHATSAPP))["confirmation"]
    async with connect(sandbox_server.base_url, NEXOR_MCP_SECRET="", NEXOR_CONFIRM_VIA="token") as (restarted, _):
        refused = await call(restarted, "send_message", {**WHATSAPP, "confirmation": token})
    assert refused.is_error and writes(api) == []
    assert "not issued for these exact arguments" in text_of(refused)
    assert "if the server was restarted or runs as several processes" in text_of(refused)
    assert "NEXOR_MCP_SECRET is set" in text_of(refused)


async def test_with_a_shared_secret_the_refusal_does_not_blame_the_secret(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM_VIA="token") as (client, _):
        token = structured(await call(client, "send_message", WHATSAPP))["confirmation"]
        refused = await call(client, "send_message", {**WHATSAPP, "content": "otro", "confirmation": token})
    assert refused.is_error and writes(api) == []
    assert "not issued for these exact arguments" in text_of(refused) and "NEXOR_MCP_SECRET" not in text_of(refused)


# --- 3. a dry run of a confirmed tool carries what the real call's confirmation needs --------------


@pytest.mark.parametrize("how", ["cannot elicit", "NEXOR_CONFIRM_VIA=token"])
async def test_a_dry_run_in_token_mode_gives_the_token_and_the_next_call_is_the_real_one(
    sandbox_server: SandboxServer, api: SandboxApi, how: str
) -> None:
    """Token mode (NEXOR_CONFIRM_VIA=token), whether or not the client could elicit."""
    token_mode: dict[str, Any] = {"NEXOR_CONFIRM_VIA": "token"}
    options = token_mode if how == "cannot elicit" else {"callback": answering(YES), **token_mode}
    async with connect(sandbox_server.base_url, "legacy", **options) as (client, asked):
        dry = await call(client, "send_message", {**WHATSAPP, "dry_run": True})
        assert not dry.is_error and writes(api) == []
        preview = structured(dry)
        assert preview["dry_run"] is True and preview["needs_confirmation"] is True
        assert preview["confirmation_by"] == "token" and preview["expires_in_seconds"] == 300
        token = preview["confirmation"]
        assert WHATSAPP["content"] in preview["question"] and "Ana" in preview["question"]
        text = text_of(dry)
        assert token in text and preview["question"] in text and "without dry_run" in text
        assert "Only if the user approves" in text

        changed = await call(client, "send_message", {**WHATSAPP, "content": "otra cosa", "confirmation": token})
        assert changed.is_error and "not issued for these exact arguments" in text_of(changed)
        assert writes(api) == []

        sent = await call(client, "send_message", {**WHATSAPP, "confirmation": token})
        assert not sent.is_error, text_of(sent)
        again = await call(client, "send_message", {**WHATSAPP, "confirmation": token})
    assert again.is_error and "already used" in text_of(again)
    assert writes(api) == [("POST", "/messages", WHATSAPP)]
    assert asked == []


async def test_a_dry_run_token_is_bound_like_the_real_calls_token(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    """Control arguments are not bound: the real call may drop dry_run or say dry_run false
    (token mode, NEXOR_CONFIRM_VIA=token)."""
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM_VIA="token") as (client, _):
        status = {**STATUS, "lead_id": ANA}  # Ana has an active run to hold a status
        token = structured(await call(client, "set_lead_status", {**status, "dry_run": True}))["confirmation"]
        other_tool = await call(client, "assign_workflow", {"lead_id": JOHN, "workflow_id": SDR_INBOUND,
                                                             "confirmation": token})
        assert other_tool.is_error and writes(api) == []
        done = await call(client, "set_lead_status", {**status, "dry_run": False, "confirmation": token})
    assert not done.is_error, text_of(done)
    assert [(method, path) for method, path, _ in writes(api)] == [("POST", f"/leads/{ANA}/status")]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_dry_run_for_a_client_that_can_elicit_says_the_real_call_asks(
    sandbox_server: SandboxServer, api: SandboxApi, mode: str
) -> None:
    async with connect(sandbox_server.base_url, mode, answering(YES)) as (client, asked):
        dry = await call(client, "send_message", {**WHATSAPP, "dry_run": True})
        assert not dry.is_error and asked == [] and writes(api) == []
        preview = structured(dry)
        assert preview["needs_confirmation"] is True and preview["confirmation_by"] == "asking the user"
        assert "confirmation" not in preview and "c1." not in text_of(dry)
        assert "asks the user" in text_of(dry)
        sent = await call(client, "send_message", WHATSAPP)
    assert not sent.is_error and len(asked) == 1
    assert writes(api) == [("POST", "/messages", WHATSAPP)]


async def test_a_dry_run_that_needs_no_confirmation_offers_none(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    async with connect(sandbox_server.base_url) as (client, _):
        update = structured(await call(client, "update_lead", {"lead_id": ANA, "title": "CTO", "dry_run": True}))
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM="never") as (client, _):
        message = structured(await call(client, "send_message", {**WHATSAPP, "dry_run": True}))
    for preview in (update, message):
        assert "needs_confirmation" not in preview and "confirmation" not in preview
    assert writes(api) == []


# --- 4. the conflict's text holds the current values ----------------------------------------------


async def test_the_conflict_text_states_the_current_value_of_each_touched_field(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    async with connect(sandbox_server.base_url) as (agent, _):
        seen = structured(await call(agent, "get_lead", {"lead_id": ANA}))["lead"]
        # A colleague edits the lead in Nexor itself, which accepts any text.
        lead = api.leads[ANA]
        lead["title"], lead["metadata"] = "VP\n\u202eSales", {**lead["metadata"], "budget": 1}
        lead["updated_at"] = "2099-01-01T00:00:00.000Z"
        api.requests.clear()
        stale = await call(agent, "update_lead", {"lead_id": ANA, "title": "CTO", "phone": "+56911112222",
                                                  "metadata": {"budget": 9, "fresh": 1},
                                                  "if_unchanged_since": seen["updated_at"]})
    assert stale.is_error and writes(api) == []
    text = text_of(stale)
    assert "Current values of the fields this call sets:" in text
    assert 'title: "VP\\n[U+202E]Sales"' in text  # quoted: Nexor's data cannot break or reorder the line
    assert "2099-01-01T00:00:00.000Z" in text
    assert f"phone: {json.dumps(seen['phone'])}" in text and "metadata.budget: 1" in text
    assert "metadata.fresh: (absent)" in text
    assert text.split("Changed since: ")[1].startswith("title: ")  # this process served the read: what changed
    assert "\u202e" not in text and "see current" not in text


async def test_the_conflict_text_holds_current_values_when_the_version_read_is_unknown(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    """The read was served by another process, so what changed is unknown; the current values are not."""
    async with connect(sandbox_server.base_url) as (reader, _):
        seen = structured(await call(reader, "get_lead", {"lead_id": JOHN}))["lead"]
    await anyio.sleep(0.01)
    async with connect(sandbox_server.base_url) as (agent, _):
        await call(agent, "add_lead_tags", {"lead_id": JOHN, "tag_ids": [HOT_TAG]})
        await call(agent, "update_lead", {"lead_id": JOHN, "company": "Other Co"})
        api.requests.clear()
        guarded = {"lead_id": JOHN, "tags": [], "if_unchanged_since": seen["updated_at"]}
        stale = await call(agent, "set_lead_tags", guarded)
    assert stale.is_error and writes(api) == []
    text = text_of(stale)
    assert "the version you read is not known here" in text
    current_tags = [tag["name"] for tag in structured(stale)["current"]["tags"]]
    assert f"tags: {json.dumps(current_tags, ensure_ascii=False, separators=(',', ':'))}" in text


# --- 5. the question spells out invisible characters -----------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_question_shows_bidi_and_zero_width_characters_visibly(
    sandbox_server: SandboxServer, api: SandboxApi, mode: str
) -> None:
    hidden = {**WHATSAPP, "content": "Pay at evil\u202ecom.example\u200b now"}
    async with connect(sandbox_server.base_url, mode, answering(ElicitResult(action="decline"))) as (client, asked):
        result = await call(client, "send_message", hidden)
    assert result.is_error and writes(api) == []
    message = asked[0].message
    assert "[U+202E]" in message and "[U+200B]" in message
    assert "\u202e" not in message and "\u200b" not in message


async def test_the_token_question_shows_them_visibly_too(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    hidden = {**WHATSAPP, "content": "Pay at evil\u202ecom.example\u200b now"}
    async with connect(sandbox_server.base_url, NEXOR_CONFIRM_VIA="token") as (client, _):
        pending = structured(await call(client, "send_message", hidden))
    assert "[U+202E]" in pending["question"] and "\u202e" not in pending["question"]
    assert writes(api) == []
