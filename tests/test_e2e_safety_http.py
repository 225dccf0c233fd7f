"""Write safety in hosted mode: two `nexor-mcp http` replicas over real HTTP against the sandbox.

Stateless HTTP has no back-channel: in the opt-in token mode (NEXOR_CONFIRM_VIA=token, agent-relayed)
a confirmation is a token; on 2026-07-28 it is an `input_required` round trip. Either way the seal
is the shared NEXOR_MCP_SECRET, so the second step may land on any replica; without a shared secret
it is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult, InputRequiredResult

from nexor_mcp.sandbox import SandboxApi, SandboxServer
from nexor_mcp.sandbox.seed import SDR_INBOUND
from tests.conftest import ANA, TEST_KEY
from tests.test_e2e_http import http_server, mcp_client

pytestmark = pytest.mark.anyio

MESSAGE = {"lead_id": ANA, "workflow_id": SDR_INBOUND, "channel": "email", "subject": "Hola", "content": "¿Hablamos?"}
HEADERS = {"X-API-Key": TEST_KEY}


def texts(result: CallToolResult) -> str:
    return " ".join(block.text for block in result.content if block.type == "text")


def writes(api: SandboxApi) -> list[tuple[str, str]]:
    return [(r.method, r.path.removeprefix("/api/public")) for r in api.requests if r.method != "GET"]


async def yes(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"confirm": True})


@asynccontextmanager
async def eliciting_client(url: str, mode: str) -> AsyncIterator[Client]:
    """A client that declares form elicitation (and answers yes if the SDK asks it)."""
    async with (
        httpx2.AsyncClient(headers=HEADERS, timeout=30) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode,
               elicitation_callback=yes) as client,
    ):
        yield client


def env(secret: str | None, *, token: bool = False) -> dict[str, str]:
    """The replicas' settings; `token=True` opts in to the token way (NEXOR_CONFIRM_VIA=token)."""
    settings = {"NEXOR_TOOLS": "read,write,automation,outreach", **({"NEXOR_CONFIRM_VIA": "token"} if token else {})}
    return {**settings, "NEXOR_MCP_SECRET": secret} if secret else settings


async def test_stateless_legacy_http_confirms_by_token_on_any_replica(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    """In token mode (NEXOR_CONFIRM_VIA=token) a client that can elicit gets a token too, on
    stateless HTTP on 2025-11-25; the token confirms once, on any replica."""
    secret = "k" * 48
    with (
        http_server(sandbox_server.base_url, env=env(secret, token=True)) as (first, _),
        http_server(sandbox_server.base_url, env=env(secret, token=True)) as (second, _),
    ):
        async with eliciting_client(first, "legacy") as a, eliciting_client(second, "legacy") as b:
            with anyio.fail_after(20):
                pending = await a.call_tool("send_message", MESSAGE)
                assert not pending.is_error and writes(api) == []
                token = (pending.structured_content or {})["confirmation"]
                sent = await b.call_tool("send_message", {**MESSAGE, "confirmation": token})
                assert not sent.is_error, texts(sent)
                again = await b.call_tool("send_message", {**MESSAGE, "confirmation": token})
    assert again.is_error and "already used" in texts(again)
    assert writes(api) == [("POST", "/messages")]


async def test_without_a_shared_secret_another_replica_refuses_the_token(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    with (
        http_server(sandbox_server.base_url, env=env(None, token=True)) as (first, _),
        http_server(sandbox_server.base_url, env=env(None, token=True)) as (second, _),
    ):
        async with mcp_client(first, HEADERS) as a, mcp_client(second, HEADERS) as b:
            with anyio.fail_after(20):
                token = ((await a.call_tool("send_message", MESSAGE)).structured_content or {})["confirmation"]
                refused = await b.call_tool("send_message", {**MESSAGE, "confirmation": token})
    assert refused.is_error and "not by this server" in texts(refused)
    assert writes(api) == []


async def test_a_token_is_bound_to_the_account(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    other_key = "nxr_live_other_account_0000"
    api.add_account(other_key)
    with http_server(sandbox_server.base_url, env=env("k" * 48, token=True)) as (url, _):
        async with mcp_client(url, HEADERS) as mine, mcp_client(url, {"X-API-Key": other_key}) as theirs:
            with anyio.fail_after(20):
                token = ((await mine.call_tool("send_message", MESSAGE)).structured_content or {})["confirmation"]
                refused = await theirs.call_tool("send_message", {**MESSAGE, "confirmation": token})
    assert refused.is_error and "another account" in texts(refused)
    assert writes(api) == []


@pytest.mark.parametrize(("answer", "sends"), [("accept", True), ("decline", False)])
async def test_the_2026_round_trip_may_come_back_to_another_replica(
    sandbox_server: SandboxServer, api: SandboxApi, answer: str, sends: bool
) -> None:
    secret = "m" * 48
    content: dict[str, Any] | None = {"confirm": True} if answer == "accept" else None
    with (
        http_server(sandbox_server.base_url, env=env(secret)) as (first, _),
        http_server(sandbox_server.base_url, env=env(secret)) as (second, _),
    ):
        async with eliciting_client(first, "2026-07-28") as a, eliciting_client(second, "2026-07-28") as b:
            with anyio.fail_after(20):
                asked = await a.session.call_tool("send_message", MESSAGE, allow_input_required=True)
                assert isinstance(asked, InputRequiredResult) and writes(api) == []
                assert asked.input_requests is not None and asked.request_state is not None
                question = asked.input_requests["confirm"]
                assert "email" in question.params.message and "¿Hablamos?" in question.params.message  # type: ignore[union-attr]
                tampered = await b.session.call_tool(
                    "send_message", MESSAGE, allow_input_required=True, request_state=asked.request_state[:-3] + "xyz",
                    input_responses={"confirm": ElicitResult(action="accept", content={"confirm": True})},
                )
                assert isinstance(tampered, CallToolResult) and tampered.is_error and writes(api) == []
                result = await b.session.call_tool(
                    "send_message", MESSAGE, allow_input_required=True, request_state=asked.request_state,
                    input_responses={"confirm": ElicitResult(action=answer, content=content)},  # type: ignore[arg-type]
                )
    assert isinstance(result, CallToolResult)
    assert result.is_error is not sends, texts(result)
    assert writes(api) == ([("POST", "/messages")] if sends else [])


async def test_the_sdk_client_drives_the_2026_round_trip_by_itself(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    with http_server(sandbox_server.base_url, env=env(None)) as (url, _):
        async with eliciting_client(url, "2026-07-28") as client:
            with anyio.fail_after(20):
                result = await client.call_tool("send_message", MESSAGE)
    assert not result.is_error, texts(result)
    assert writes(api) == [("POST", "/messages")]


async def test_workers_of_one_server_share_the_confirmation_key(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    """No NEXOR_MCP_SECRET: `--workers 2` makes one for both. Each step goes on a new connection, so
    the kernel spreads them over the workers; with two keys about half the tokens would be refused
    (all eight passing by luck: 1 in 256). In token mode (NEXOR_CONFIRM_VIA=token)."""
    with http_server(sandbox_server.base_url, "--workers", "2", env=env(None, token=True)) as (url, _):
        for n in range(8):
            message = {**MESSAGE, "content": f"message {n}"}
            async with mcp_client(url, HEADERS) as first:
                token = ((await first.call_tool("send_message", message)).structured_content or {})["confirmation"]
            async with mcp_client(url, HEADERS) as second:
                sent = await second.call_tool("send_message", {**message, "confirmation": token})
            assert not sent.is_error, texts(sent)
    assert len(writes(api)) == 8
