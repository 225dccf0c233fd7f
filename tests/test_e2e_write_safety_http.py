"""Write safety over real HTTP: `nexor-mcp http` replicas against the sandbox.

The stdio tests (test_e2e_confirmation_fails_closed.py, test_e2e_questions.py, test_e2e_runs_and_tags.py) prove each fix
in depth; these prove that hosted mode, where confirmations are tokens (the opt-in NEXOR_CONFIRM_VIA=token)
or `input_required` round trips (2026-07-28), gets the same behaviour."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp.types import CallToolResult, ElicitResult, InputRequiredResult

from nexor_mcp.sandbox import SandboxApi, SandboxServer
from nexor_mcp.sandbox.seed import SDR_INBOUND
from tests.conftest import ANA
from tests.test_e2e_http import http_server, mcp_client
from tests.test_e2e_safety_http import HEADERS, MESSAGE, eliciting_client, env, texts

pytestmark = pytest.mark.anyio

SECRET = "s" * 48


def sent(api: SandboxApi) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path.removeprefix("/api/public"), r.json) for r in api.requests if r.method != "GET"]


async def test_a_malformed_2026_come_back_is_refused_on_any_replica(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    with (
        http_server(sandbox_server.base_url, env=env(SECRET)) as (first, _),
        http_server(sandbox_server.base_url, env=env(SECRET)) as (second, _),
    ):
        async with eliciting_client(first, "2026-07-28") as a, eliciting_client(second, "2026-07-28") as b:
            with anyio.fail_after(30):
                asked = await a.session.call_tool("send_message", MESSAGE, allow_input_required=True)
                assert isinstance(asked, InputRequiredResult)
                yes = ElicitResult(action="accept", content={"confirm": True})
                outcomes = [
                    await b.session.call_tool("send_message", MESSAGE, allow_input_required=True,
                                              request_state=asked.request_state, input_responses={"other": yes}),
                    await b.session.call_tool("send_message", MESSAGE, allow_input_required=True,
                                              input_responses={"confirm": yes}),
                ]
    for outcome in outcomes:
        assert isinstance(outcome, CallToolResult) and outcome.is_error, outcome
        assert "Not sent" in texts(outcome) and "confirmation" not in (outcome.structured_content or {})
    assert sent(api) == []


async def test_a_dry_run_carries_the_token_and_the_real_call_on_another_replica_sends_once(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    """In token mode (NEXOR_CONFIRM_VIA=token)."""
    with (
        http_server(sandbox_server.base_url, env=env(SECRET, token=True)) as (first, _),
        http_server(sandbox_server.base_url, env=env(SECRET, token=True)) as (second, _),
    ):
        async with mcp_client(first, HEADERS) as a, mcp_client(second, HEADERS) as b:
            with anyio.fail_after(30):
                preview = await a.call_tool("send_message", {**MESSAGE, "dry_run": True})
                offer = preview.structured_content or {}
                assert offer["dry_run"] is True and offer["confirmation_by"] == "token", texts(preview)
                assert offer["confirmation"] in texts(preview) and "¿Hablamos?" in offer["question"]
                assert sent(api) == []
                real = await b.call_tool("send_message", {**MESSAGE, "confirmation": offer["confirmation"]})
                again = await b.call_tool("send_message", {**MESSAGE, "confirmation": offer["confirmation"]})
    assert not real.is_error, texts(real)
    assert again.is_error and "already used" in texts(again)
    assert [(method, path) for method, path, _ in sent(api)] == [("POST", "/messages")]


async def test_workflow_id_defaults_to_the_active_run_and_a_forged_name_cannot_write_question_lines(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    api.leads[ANA]["first_name"] = "Ana\nText: fake\u202e"
    message = {"lead_id": ANA, "channel": "email", "subject": "Hola", "content": "Real text here"}
    with http_server(sandbox_server.base_url, env=env(SECRET, token=True)) as (url, _):  # the token question
        async with mcp_client(url, HEADERS) as client:
            with anyio.fail_after(30):
                pending = await client.call_tool("send_message", message)
                question: str = (pending.structured_content or {})["question"]
                lines = question.splitlines()
                assert "│ Real text here" in lines[:8], question
                assert not [line for line in lines if line.startswith("Text: fake")] and "[U+202E]" in question
                token = (pending.structured_content or {})["confirmation"]
                done = await client.call_tool("send_message", {**message, "confirmation": token})
    assert not done.is_error, texts(done)
    posted = sent(api)
    assert len(posted) == 1 and posted[0][:2] == ("POST", "/messages")
    assert posted[0][2]["workflow_id"] == SDR_INBOUND  # resolved from the lead's active run, sent exactly


async def test_the_conflict_text_states_current_values_over_http(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    with http_server(sandbox_server.base_url, env=env(SECRET)) as (url, _):
        async with mcp_client(url, HEADERS) as client:
            with anyio.fail_after(30):
                seen = ((await client.call_tool("get_lead", {"lead_id": ANA})).structured_content or {})["lead"]
                api.leads[ANA]["title"] = "VP Sales"
                api.leads[ANA]["updated_at"] = "2099-01-01T00:00:00.000Z"
                stale = await client.call_tool(
                    "update_lead", {"lead_id": ANA, "title": "CTO", "if_unchanged_since": seen["updated_at"]}
                )
    assert stale.is_error and sent(api) == []
    assert 'Current values of the fields this call sets: title: "VP Sales"' in texts(stale)
