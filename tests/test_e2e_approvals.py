"""Approvals a model cannot forge (issue 17), end to end: a real MCP client, the server as a
subprocess (stdio) or two `nexor-mcp http` replicas on PostgreSQL, the sandbox Nexor API, and a
real headless Chromium in which the "person" clicks Approve or Decline on the approval page.

Over stdio with a client that cannot elicit, the server opens the page itself: `$BROWSER` is a
small script that writes the URL to a file, and the test hands it to the browser. An SDK client
that declares only URL-mode elicitation gets the page's URL in `elicitation/create`. In every case
the URL (which carries the approval's id) appears in nothing the model can read."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client, types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ElicitRequestURLParams, ElicitResult, InputRequiredResult, InputResponses
from selenium.webdriver.remote.webdriver import WebDriver

from nexor_mcp.audit import read_journal
from nexor_mcp.sandbox import SandboxApi, SandboxServer
from tests.conftest import TEST_KEY, child_log, server_env, spawn_server
from tests.test_approval_browser import APPROVE, DECLINE, browser, button, page_text, show, wait_for_heading
from tests.test_e2e_http import http_server
from tests.test_e2e_safety_http import HEADERS, MESSAGE, texts

pytestmark = pytest.mark.anyio
__all__ = ["browser"]  # the module's headless Chromium (a fixture)

SECRET = "a" * 48
OUTREACH = {"NEXOR_TOOLS": "read,write,outreach"}


def posts(api: SandboxApi) -> list[tuple[str, Any]]:
    return [(r.path.removeprefix("/api/public"), r.json) for r in api.requests if r.method != "GET"]


@pytest.fixture
def browser_script(tmp_path: Path) -> Iterator[Path]:
    """A `$BROWSER` program that only writes down the URL it is given (the file it writes)."""
    urls = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{urls}"\n', encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    yield urls


def written(urls: Path) -> str:
    return urls.read_text(encoding="utf-8").strip() if urls.exists() else ""


async def opened_url(urls: Path) -> str:
    """The URL the server asked the browser to open (it polls: the script is another process)."""
    with anyio.fail_after(20):
        while not (found := await anyio.to_thread.run_sync(written, urls)):  # noqa: ASYNC110
            await anyio.sleep(0.05)
    return found.splitlines()[-1]


def click(driver: WebDriver, url: str, which: str, after: str) -> str:
    """The person opens the page, reads it, and clicks; returns what the page said before."""
    show(driver, url)
    shown = page_text(driver)
    button(driver, which).click()
    wait_for_heading(driver, after)
    return shown


def stdio_env(base_url: str, urls: Path, **extra: str) -> dict[str, str]:
    return server_env(base_url, **OUTREACH, BROWSER=str(urls.parent / "browser.sh"),
                      NEXOR_LOG_LEVEL="INFO", **extra)


def everything_the_model_reads(result: CallToolResult) -> str:
    return texts(result) + json.dumps(result.structured_content)


async def test_over_stdio_the_server_opens_the_page_and_only_the_persons_approve_sends_once(
    sandbox_server: SandboxServer, api: SandboxApi, browser_script: Path, browser: WebDriver, tmp_path: Path
) -> None:
    journal = tmp_path / "audit.jsonl"
    env = stdio_env(sandbox_server.base_url, browser_script, NEXOR_AUDIT_LOG=str(journal))
    async with spawn_server(env) as server:
        outcome: dict[str, CallToolResult] = {}

        async def call() -> None:
            outcome["result"] = await server.call("send_message", MESSAGE)

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            url = await opened_url(browser_script)
            assert posts(api) == []  # nothing before the person decides
            shown = await anyio.to_thread.run_sync(click, browser, url, APPROVE, "Approved")
        log = server.stderr_text()
    result = outcome["result"]
    assert not result.is_error, texts(result)
    assert posts(api) == [("/messages", MESSAGE)]
    assert "¿Hablamos?" in shown and "Send message" in shown and "POST /messages" in shown
    approval_id = url.rsplit("/", 1)[1]
    assert len(approval_id) >= 22 and url.startswith("http://127.0.0.1:")
    assert approval_id not in everything_the_model_reads(result) and approval_id not in log
    contents = await anyio.to_thread.run_sync(read_journal, journal)
    (decision,) = contents.decisions
    assert (decision.tool, decision.decision, decision.how) == ("send_message", "approved", "page")
    assert "¿Hablamos?" in decision.question
    assert [entry.tool for entry in contents.entries] == ["send_message"]
    command = [sys.executable, "-m", "nexor_mcp", "audit", "list", "--decisions"]
    listed = await anyio.run_process(command, check=True, env={"NEXOR_AUDIT_LOG": str(journal)})
    (row,) = listed.stdout.decode().splitlines()
    assert " send_message " in row and "approved (page)" in row and "asked: Send an email" in row


async def test_a_decline_on_the_page_sends_nothing_and_is_journaled(
    sandbox_server: SandboxServer, api: SandboxApi, browser_script: Path, browser: WebDriver, tmp_path: Path
) -> None:
    journal = tmp_path / "audit.jsonl"
    async with spawn_server(stdio_env(sandbox_server.base_url, browser_script, NEXOR_AUDIT_LOG=str(journal))) as server:
        outcome: dict[str, CallToolResult] = {}

        async def call() -> None:
            outcome["result"] = await server.call("send_message", MESSAGE)

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            url = await opened_url(browser_script)
            await anyio.to_thread.run_sync(click, browser, url, DECLINE, "Declined")
    result = outcome["result"]
    assert result.is_error and "declined it on the approval page" in texts(result)
    assert posts(api) == []
    contents = await anyio.to_thread.run_sync(read_journal, journal)
    assert [(d.decision, d.how) for d in contents.decisions] == [("declined", "page")] and contents.entries == []


async def test_nobody_deciding_in_time_sends_nothing(
    sandbox_server: SandboxServer, api: SandboxApi, browser_script: Path
) -> None:
    async with spawn_server(stdio_env(sandbox_server.base_url, browser_script, NEXOR_APPROVAL_TIMEOUT="1.5")) as server:
        with anyio.fail_after(20):
            result = await server.call("send_message", MESSAGE)
    assert result.is_error and "nobody decided on the approval page within 1.5 s" in texts(result)
    assert written(browser_script) and posts(api) == []


async def test_in_the_default_configuration_no_token_is_offered_or_taken(
    sandbox_server: SandboxServer, api: SandboxApi, browser_script: Path
) -> None:
    """The model can neither obtain a token (a dry run offers none) nor use one it made up."""
    async with spawn_server(stdio_env(sandbox_server.base_url, browser_script)) as server:
        dry = await server.call("send_message", {**MESSAGE, "dry_run": True})
        forged = await server.call("send_message", {**MESSAGE, "confirmation": "c1.e30.AAAA"})
    assert not dry.is_error and "confirmation" not in (dry.structured_content or {})
    assert (dry.structured_content or {})["confirmation_by"] == "asking the user"
    assert forged.is_error and "does not take confirmation tokens" in texts(forged)
    assert posts(api) == [] and not written(browser_script)


def url_only(session: ClientSession, version: str) -> types.ClientCapabilities:
    """A client that declares URL-mode elicitation and nothing else (the SDK declares both)."""
    return types.ClientCapabilities(elicitation=types.ElicitationCapability(url=types.UrlElicitationCapability()))


async def test_a_client_with_url_elicitation_gets_the_page_and_the_completion(
    sandbox_server: SandboxServer, api: SandboxApi, browser: WebDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ClientSession, "_build_capabilities", url_only)
    asked: list[ElicitRequestURLParams] = []
    completed: list[str] = []

    async def elicit(context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestURLParams)
        asked.append(params)
        await anyio.to_thread.run_sync(click, browser, params.url, APPROVE, "Approved")
        return ElicitResult(action="accept")

    async def notes(message: Any) -> None:
        if isinstance(message, types.ElicitCompleteNotification):
            completed.append(message.params.elicitation_id)

    params = StdioServerParameters(command=sys.executable, args=["-m", "nexor_mcp"],
                                   env=server_env(sandbox_server.base_url, **OUTREACH))
    with child_log() as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, elicitation_callback=elicit, message_handler=notes) as session,
        ):
            await session.initialize()
            with anyio.fail_after(30):
                result = await session.call_tool("send_message", MESSAGE)
    assert not result.is_error, texts(result)
    assert posts(api) == [("/messages", MESSAGE)]
    (request,) = asked
    assert request.url.split("/approve/")[1] not in everything_the_model_reads(result)
    assert completed == [request.elicitation_id]


async def test_hosted_2026_url_round_trip_is_approved_on_any_replica_and_used_once(
    sandbox_server: SandboxServer, api: SandboxApi, browser: WebDriver, postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ClientSession, "_build_capabilities", url_only)
    env = {**OUTREACH, "NEXOR_MCP_SECRET": SECRET, "NEXOR_DATABASE_URL": postgres_url}

    async def never(context: Any, params: Any) -> ElicitResult:
        raise AssertionError("a 2026-07-28 server asks in input_required, not by a request")

    with (
        http_server(sandbox_server.base_url, env=env) as (first, _),
        http_server(sandbox_server.base_url, env=env) as (second, _),
    ):
        async with (
            httpx2.AsyncClient(headers=HEADERS, timeout=30) as http_a,
            httpx2.AsyncClient(headers=HEADERS, timeout=30) as http_b,
            Client(streamable_http_client(f"{first}/mcp", http_client=http_a), mode="2026-07-28",
                   elicitation_callback=never) as a,
            Client(streamable_http_client(f"{second}/mcp", http_client=http_b), mode="2026-07-28",
                   elicitation_callback=never) as b,
        ):
            with anyio.fail_after(40):
                asked = await a.session.call_tool("send_message", MESSAGE, allow_input_required=True)
                assert isinstance(asked, InputRequiredResult) and posts(api) == []
                request = (asked.input_requests or {})["approve"].params
                assert isinstance(request, ElicitRequestURLParams) and request.url.startswith(first)
                assert request.url.split("/approve/")[1] not in (asked.request_state or "")
                on_second = request.url.replace(first, second)  # the load balancer sent the person to B
                await anyio.to_thread.run_sync(click, browser, on_second, APPROVE, "Approved")
                yes: InputResponses = {"approve": ElicitResult(action="accept")}
                sent = await b.session.call_tool("send_message", MESSAGE, allow_input_required=True,
                                                 request_state=asked.request_state, input_responses=yes)
                again = await a.session.call_tool("send_message", MESSAGE, allow_input_required=True,
                                                  request_state=asked.request_state, input_responses=yes)
    assert isinstance(sent, CallToolResult) and not sent.is_error, sent
    assert isinstance(again, CallToolResult) and again.is_error and "already used once" in texts(again)
    assert posts(api) == [("/messages", MESSAGE)]


async def test_hosted_with_a_client_that_cannot_be_asked_refuses_and_says_how_to_approve(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    with http_server(sandbox_server.base_url, env={**OUTREACH, "NEXOR_MCP_SECRET": SECRET}) as (url, _):
        async with (
            httpx2.AsyncClient(headers={"X-API-Key": TEST_KEY}, timeout=30) as http,
            Client(streamable_http_client(f"{url}/mcp", http_client=http), mode="legacy") as client,
        ):
            result = await client.call_tool("send_message", MESSAGE)
            forged = await client.call_tool("send_message", {**MESSAGE, "confirmation": "c1.e30.AAAA"})
    assert result.is_error and "nobody can approve it here" in texts(result)
    assert "NEXOR_CONFIRM_VIA=token" in texts(result) and "agent-relayed" in texts(result)
    assert forged.is_error and "does not take confirmation tokens" in texts(forged)
    assert posts(api) == []


async def test_behind_a_tls_proxy_the_page_link_uses_the_public_url(
    sandbox_server: SandboxServer, api: SandboxApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NEXOR_MCP_PUBLIC_URL: the link a person gets is the proxy's https origin, not the bind's."""
    monkeypatch.setattr(ClientSession, "_build_capabilities", url_only)
    env = {**OUTREACH, "NEXOR_MCP_SECRET": SECRET, "NEXOR_MCP_PUBLIC_URL": "https://mcp.example.com/"}

    async def never(context: Any, params: Any) -> ElicitResult:
        raise AssertionError("a 2026-07-28 server asks in input_required")

    with http_server(sandbox_server.base_url, env=env) as (url, _):
        async with (
            httpx2.AsyncClient(headers=HEADERS, timeout=30) as http,
            Client(streamable_http_client(f"{url}/mcp", http_client=http), mode="2026-07-28",
                   elicitation_callback=never) as client,
        ):
            asked = await client.session.call_tool("send_message", MESSAGE, allow_input_required=True)
    assert isinstance(asked, InputRequiredResult)
    request = (asked.input_requests or {})["approve"].params
    assert isinstance(request, ElicitRequestURLParams) and request.url.startswith("https://mcp.example.com/approve/")
    assert posts(api) == []


def test_a_public_url_with_a_path_is_refused_naming_its_variable() -> None:
    from nexor_mcp.hosted.settings import hosted_settings

    with pytest.raises(ValueError, match=r"NEXOR_MCP_PUBLIC_URL must be an origin like https://mcp\.example\.com"):
        hosted_settings({"NEXOR_MCP_PUBLIC_URL": "https://mcp.example.com/mcp"})
    assert hosted_settings({"NEXOR_MCP_PUBLIC_URL": " https://mcp.example.com/ "}).public_url == "https://mcp.example.com"


async def test_a_round_trip_that_comes_back_before_the_decision_is_asked_again_and_sends_nothing(
    sandbox_server: SandboxServer, api: SandboxApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ClientSession, "_build_capabilities", url_only)

    async def never(context: Any, params: Any) -> ElicitResult:
        raise AssertionError("a 2026-07-28 server asks in input_required")

    with http_server(sandbox_server.base_url, env={**OUTREACH, "NEXOR_MCP_SECRET": SECRET}) as (url, _):
        async with (
            httpx2.AsyncClient(headers=HEADERS, timeout=30) as http,
            Client(streamable_http_client(f"{url}/mcp", http_client=http), mode="2026-07-28",
                   elicitation_callback=never) as client,
        ):
            yes: InputResponses = {"approve": ElicitResult(action="accept")}
            first = await client.session.call_tool("send_message", MESSAGE, allow_input_required=True)
            assert isinstance(first, InputRequiredResult)
            early = await client.session.call_tool("send_message", MESSAGE, allow_input_required=True,
                                                   request_state=first.request_state, input_responses=yes)
            replay = await client.session.call_tool("send_message", MESSAGE, allow_input_required=True,
                                                    request_state=first.request_state, input_responses=yes)
    assert isinstance(early, InputRequiredResult) and early.request_state != first.request_state
    first_url = (first.input_requests or {})["approve"].params
    early_url = (early.input_requests or {})["approve"].params
    assert isinstance(first_url, ElicitRequestURLParams) and isinstance(early_url, ElicitRequestURLParams)
    assert early_url.url == first_url.url  # the same approval, still waiting for the person
    assert isinstance(replay, CallToolResult) and replay.is_error and "already used once" in texts(replay)
    assert posts(api) == []
