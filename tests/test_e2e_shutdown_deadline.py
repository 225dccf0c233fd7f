"""Issue 14, stdio shutdown: each tool call has one deadline for all its Nexor requests, and EOF or
SIGTERM waits for it, so a write already on its way is finished and answered; a call waiting for
a person's confirmation does not hold the shutdown (nobody can answer anymore).

`python -m nexor_mcp` over real pipes, against the sandbox on loopback with its answers delayed.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.context import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

from bench.rpc import PROTOCOL_VERSION
from nexor_mcp.sandbox import SandboxApi, SandboxServer
from nexor_mcp.sandbox.seed import SDR_INBOUND
from nexor_mcp.server import UNANSWERABLE
from tests.conftest import ANA, child_log, read_log, server_env, text_of
from tests.test_e2e_stdio import INITIALIZED, Wire, call, line, messages, wait_for_requests

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and signals")

WHATSAPP: dict[str, Any] = {
    "lead_id": ANA, "workflow_id": SDR_INBOUND, "channel": "whatsapp", "content": "Hola Ana, ¿hablamos mañana?"
}
TIMEOUT = "3"
"""One request's bound: every delayed answer below comes well within it."""
BUDGET = "5"
"""The call's budget: its last request starts well within it (call deadline: 5 + 3 = 8 s)."""
OUTREACH = {"NEXOR_TOOLS": "read,write,outreach", "NEXOR_TIMEOUT_SECONDS": TIMEOUT,
            "NEXOR_RETRY_BUDGET_SECONDS": BUDGET}


@pytest.fixture
def stderr() -> Iterator[IO[str]]:
    with child_log() as file:
        yield file


def requests_of(api: SandboxApi) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path.removeprefix("/api/public"), r.json) for r in api.requests]


def end_input(wire: Wire, api: SandboxApi, ending: str) -> None:
    """Close stdin, or send SIGTERM once the call's first request has reached Nexor."""
    if ending == "eof":
        wire.close_stdin()
    else:
        wait_for_requests(api, 1)
        wire.process.send_signal(signal.SIGTERM)


def last_answers(wire: Wire) -> list[dict[str, Any]]:
    """Every message still on stdout up to EOF, and the process exited 0."""
    answers = messages(wire.rest_of_stdout())
    assert wire.wait() == 0
    return answers


def journal_outcomes(path: Path) -> list[str]:
    lines = [json.loads(raw) for raw in path.read_text().splitlines()]
    return [entry["outcome"] for entry in lines if entry["event"] == "outcome"]


# --- a write on its way is finished ---------------------------------------------------------------


@pytest.mark.parametrize("ending", ["eof", "sigterm"])
def test_a_confirmed_send_message_whose_three_requests_outlast_one_request_is_sent_and_answered(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str], ending: str
) -> None:
    """Token mode: the confirmed call reads the lead, reads the workflow names, then posts; with
    each answer 1.8 s late the three take 5.4 s, more than one request's 3 s timeout (and than the
    3 s SIGTERM used to wait) but within the call's 8 s deadline."""
    wire = Wire(sandbox_server.base_url, stderr, NEXOR_CONFIRM_VIA="token", **OUTREACH)
    try:
        wire.initialize()
        wire.send(line(call(2, "send_message", WHATSAPP)))
        pending = wire.read_message()["result"]["structuredContent"]
        assert pending["confirmation_required"] is True
        api.requests.clear()
        api.latency = 1.8
        wire.send(line(call(3, "send_message", {**WHATSAPP, "confirmation": pending["confirmation"]})))
        end_input(wire, api, ending)
        answers = last_answers(wire)
    finally:
        wire.kill()
    assert [answer["id"] for answer in answers] == [3]
    assert answers[0]["result"]["isError"] is False, answers[0]
    sent = requests_of(api)
    assert len(sent) >= 3 and all(method == "GET" for method, _, _ in sent[:-1])
    assert sent[-1] == ("POST", "/messages", WHATSAPP)
    assert "gave up waiting" not in read_log(stderr)


@pytest.mark.parametrize("ending", ["eof", "sigterm"])
def test_a_journaled_update_whose_read_and_patch_outlast_one_request_is_made_and_answered(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str], ending: str, tmp_path: Path
) -> None:
    """With the audit journal on, update_lead reads the lead (its before-values) then patches: with
    each answer 2.2 s late, 4.4 s in all, past one request's timeout, within the call deadline."""
    journal = tmp_path / "audit.jsonl"
    wire = Wire(sandbox_server.base_url, stderr, NEXOR_AUDIT_LOG=str(journal), **OUTREACH)
    try:
        wire.initialize()
        api.latency = 2.2
        wire.send(line(call(2, "update_lead", {"lead_id": ANA, "title": "Shutdown"})))
        end_input(wire, api, ending)
        answers = last_answers(wire)
    finally:
        wire.kill()
    assert [answer["id"] for answer in answers] == [2]
    assert answers[0]["result"]["isError"] is False, answers[0]
    assert answers[0]["result"]["structuredContent"]["lead"]["title"] == "Shutdown"
    assert requests_of(api) == [("GET", f"/leads/{ANA}", None), ("PATCH", f"/leads/{ANA}", {"title": "Shutdown"})]
    assert api.leads[ANA]["title"] == "Shutdown"
    assert journal_outcomes(journal) == ["ok"]


def test_a_write_that_could_no_longer_start_within_the_budget_is_not_sent_and_says_so(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str], tmp_path: Path
) -> None:
    """The read took longer than the 1 s budget, so the PATCH does not start: the call says so
    before the process exits, instead of the write leaving and being abandoned by the shutdown."""
    journal = tmp_path / "audit.jsonl"
    wire = Wire(
        sandbox_server.base_url, stderr, NEXOR_AUDIT_LOG=str(journal), NEXOR_TIMEOUT_SECONDS="3",
        NEXOR_RETRY_BUDGET_SECONDS="1",
    )
    try:
        wire.initialize()
        api.latency = 2.5
        wire.send(line(call(2, "update_lead", {"lead_id": ANA, "title": "Too late"})))
        wire.close_stdin()
        answers = last_answers(wire)
    finally:
        wire.kill()
    assert [answer["id"] for answer in answers] == [2]
    result = answers[0]["result"]
    text = result["content"][0]["text"]
    assert result["isError"] is True
    assert text.startswith("update_lead failed: Not sent: Nexor answered this call's earlier requests slowly")
    assert "1 s retry budget (retry_budget_seconds)" in text and "answered within 4 s" in text
    assert "This write was not sent, so it changed nothing" in text
    assert requests_of(api) == [("GET", f"/leads/{ANA}", None)]
    assert api.leads[ANA]["title"] != "Too late"
    assert journal_outcomes(journal) == ["failed"]


# --- a person's confirmation ----------------------------------------------------------------------


ELICITING_INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {"elicitation": {}},
               "clientInfo": {"name": "t", "version": "0"}},
}


@pytest.mark.parametrize("ending", ["eof", "sigterm"])
def test_a_call_waiting_for_the_users_confirmation_is_answered_not_sent_when_input_ends(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str], ending: str
) -> None:
    """No answer can be read after EOF (or SIGTERM), so the question is not waited for (it used
    to hold the exit for the whole drain and end as "Connection closed"); nothing is sent."""
    wire = Wire(sandbox_server.base_url, stderr, **OUTREACH)
    try:
        wire.send(line(ELICITING_INITIALIZE) + line(INITIALIZED))
        assert wire.read_message()["id"] == 1
        wire.send(line(call(2, "send_message", WHATSAPP)))
        question = wire.read_message()
        assert question["method"] == "elicitation/create"
        assert WHATSAPP["content"] in question["params"]["message"]
        if ending == "eof":
            wire.close_stdin()
        else:
            wire.process.send_signal(signal.SIGTERM)
        answers = [message for message in last_answers(wire) if "id" in message and "method" not in message]
    finally:
        wire.kill()
    assert [answer["id"] for answer in answers] == [2]
    result = answers[0]["result"]
    assert result["isError"] is True
    assert result["content"][0]["text"] == UNANSWERABLE
    reads = requests_of(api)
    assert reads and all(method == "GET" for method, _, _ in reads)  # the preview's reads, no write
    log = read_log(stderr)
    assert "send_message not sent: input ended while it waited for the user's confirmation" in log
    assert "cancelled by the client" not in log


@asynccontextmanager
async def slow_yes(base_url: str, seconds: float, **env: str) -> AsyncIterator[Client]:
    """A client that asks its user and gets a yes after `seconds`."""

    async def elicit(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        await anyio.sleep(seconds)
        return ElicitResult(action="accept", content={"confirm": True})

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "nexor_mcp"], env=server_env(base_url, **env)
    )
    with child_log() as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy", elicitation_callback=elicit) as client:
            yield client


@pytest.mark.anyio
async def test_the_time_a_person_takes_to_confirm_is_not_taken_from_the_calls_budget(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    """The budget is 1 s and the person answers after 2 s: the clock restarts at the yes, so the
    POST still starts within the budget and is sent."""
    env = {**OUTREACH, "NEXOR_RETRY_BUDGET_SECONDS": "1"}
    async with slow_yes(sandbox_server.base_url, 2.0, **env) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("send_message", WHATSAPP)
    assert not result.is_error, text_of(result)
    assert requests_of(api)[-1] == ("POST", "/messages", WHATSAPP)


def test_a_yes_sent_just_before_eof_still_counts_and_the_write_is_finished(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str]
) -> None:
    """The person's answer and the EOF arrive together: the answer is taken in first, so the
    message is sent (and answered) rather than refused as unanswerable."""
    wire = Wire(sandbox_server.base_url, stderr, **OUTREACH)
    try:
        wire.send(line(ELICITING_INITIALIZE) + line(INITIALIZED))
        assert wire.read_message()["id"] == 1
        wire.send(line(call(2, "send_message", WHATSAPP)))
        question = wire.read_message()
        assert question["method"] == "elicitation/create"
        api.latency = 1.0
        yes = {"jsonrpc": "2.0", "id": question["id"], "result": {"action": "accept", "content": {"confirm": True}}}
        wire.send(line(yes))
        wire.close_stdin()
        answers = last_answers(wire)
    finally:
        wire.kill()
    assert [answer["id"] for answer in answers] == [2]
    assert answers[0]["result"]["isError"] is False, answers[0]
    assert requests_of(api)[-1] == ("POST", "/messages", WHATSAPP)
