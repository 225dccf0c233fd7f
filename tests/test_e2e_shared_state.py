"""End to end, NEXOR_DATABASE_URL (issue 16): a used confirmation stays used across processes.

Real `nexor-mcp` processes (hosted replicas, `--workers 2`, stdio servers) share one real PostgreSQL
database or one SQLite file, against the sandbox. A token (the token way) or a 2026-07-28
`requestState` is good for one send in the whole deployment: on another replica, another worker,
another stdio process or after a restart it is refused, and the sandbox received exactly one
message. Two tenants on one database keep their tokens and their journals apart. The token way is
chosen explicitly (NEXOR_CONFIRM_VIA=token) wherever a token is used; the round trip runs with `auto`.

The journal in the database, a database that goes away and nothing leaking the database's
password are in test_e2e_shared_state_journal.py; the helpers here serve both files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import anyio
import httpx2
import pytest
from mcp.types import CallToolResult, ElicitResult, InputRequiredResult, InputResponses

from nexor_mcp.account import account_fingerprint
from nexor_mcp.sandbox import SandboxApi, SandboxServer
from tests.conftest import ANA, JOHN, TEST_KEY, child_log, read_log, server_env, spawn_server
from tests.postgres import PASSWORD
from tests.test_e2e_http import JSON_HEADERS, free_port, mcp_client
from tests.test_e2e_safety_http import HEADERS, MESSAGE, eliciting_client, texts
from tests.test_e2e_write_safety_http import sent

pytestmark = pytest.mark.anyio

SECRET = "e" * 48
TOOLS = "read,write,automation,outreach"
OTHER_KEY = "nxr_live_second_tenant_3b9d"
ALREADY_USED = "Not sent: the confirmation was refused because it was already used once. Nothing was sent."
Json = dict[str, Any]


# --- helpers (test_e2e_shared_state_journal.py uses them too) --------------------------------------


def hosted_env(database_url: str, *, secret: str | None = SECRET, confirm_via: str = "token") -> dict[str, str]:
    """Multi-tenant hosted mode (no NEXOR_API_KEY: each request brings its key) on `database_url`,
    confirming by token (the way whose second step may land anywhere) unless `confirm_via` says otherwise."""
    env = {"NEXOR_TOOLS": TOOLS, "NEXOR_DATABASE_URL": database_url, "NEXOR_CONFIRM_VIA": confirm_via}
    return {**env, "NEXOR_MCP_SECRET": secret} if secret else env


@dataclass
class Replica:
    """One `nexor-mcp http` process; `stop()` then `launch()` restarts it (on a new port, same
    settings, the same log)."""

    base_url: str
    env: dict[str, str]
    args: tuple[str, ...]
    log: IO[str]
    url: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def launch(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nexor_mcp", "--base-url", self.base_url, "--log-level", "debug", "http",
             "--port", str(port), *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
            env={"PATH": os.environ.get("PATH", ""), **self.env},
        )

    def wait_ready(self, seconds: float = 20) -> None:
        assert self.process is not None
        deadline = time.monotonic() + seconds
        while True:
            try:
                if httpx2.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            assert self.process.poll() is None, f"the server exited at start:\n{self.log_text()}"
            assert time.monotonic() < deadline, f"the server did not start:\n{self.log_text()}"
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops a replica (killed only if it does not end)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.launch()
        self.wait_ready()

    def log_text(self) -> str:
        return read_log(self.log)


@contextmanager
def replicas(base_url: str, count: int, env: dict[str, str], *args: str) -> Iterator[list[Replica]]:
    """`count` `nexor-mcp http` processes with the same settings, started at once (stopped after)."""
    with ExitStack() as stack:
        started = [Replica(base_url, env, args, stack.enter_context(child_log())) for _ in range(count)]
        try:
            for replica in started:
                replica.launch()
            for replica in started:
                replica.wait_ready()
            yield started
        finally:
            for replica in started:
                replica.stop()


async def audit(
    database_url: str, base_url: str, *args: str, key: str | None = TEST_KEY
) -> subprocess.CompletedProcess[str]:
    """`nexor-mcp audit ARGS --database-url URL` as a subprocess, the key (if any) in NEXOR_API_KEY."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("NEXOR_")}
    env["NEXOR_BASE_URL"] = base_url
    if key is not None:
        env["NEXOR_API_KEY"] = key
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "nexor_mcp", "audit", *args, "--database-url", database_url], env=env, check=False,
            stdin=subprocess.DEVNULL,
        )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


async def listed(database_url: str, base_url: str, key: str | None = TEST_KEY) -> list[Json]:
    """`audit list --json`: one object per entry, oldest first."""
    completed = await audit(database_url, base_url, "list", "--json", key=key)
    assert completed.returncode == 0 and completed.stderr == "", completed
    return [json.loads(line) for line in completed.stdout.splitlines()]


def shown(result: CallToolResult) -> str:
    """All a tool result shows: its text blocks and its structured content."""
    return texts(result) + json.dumps(result.structured_content, ensure_ascii=False)


def assert_password_absent(*outputs: str) -> None:
    for output in outputs:
        assert PASSWORD not in output, output


def token_of(result: CallToolResult) -> str:
    """The confirmation token of a dry run or of a first call that sent nothing."""
    offer = result.structured_content or {}
    assert not result.is_error and "confirmation" in offer, shown(result)
    token: str = offer["confirmation"]
    return token


# --- one token, one send, across replicas, restarts and workers ------------------------------------


async def test_a_used_token_is_refused_by_another_replica_and_after_a_restart(
    sandbox_server: SandboxServer, api: SandboxApi, postgres_url: str
) -> None:
    with replicas(sandbox_server.base_url, 2, hosted_env(postgres_url)) as (a, b):
        with anyio.fail_after(30):
            async with mcp_client(a.url, HEADERS) as on_a:
                token = token_of(await on_a.call_tool("send_message", {**MESSAGE, "dry_run": True}))
                used = await on_a.call_tool("send_message", {**MESSAGE, "confirmation": token})
            async with mcp_client(b.url, HEADERS) as on_b:
                on_b_after = await on_b.call_tool("send_message", {**MESSAGE, "confirmation": token})
            a.restart()  # a new process: nothing of the old one's memory, the same secret and database
            async with mcp_client(a.url, HEADERS) as on_new_a:
                after_restart = await on_new_a.call_tool("send_message", {**MESSAGE, "confirmation": token})
        logs = a.log_text() + b.log_text()
    assert not used.is_error, shown(used)
    for refused in (on_b_after, after_restart):
        assert refused.is_error and texts(refused).startswith(ALREADY_USED), shown(refused)
    assert sent(api) == [("POST", "/messages", MESSAGE)]
    assert_password_absent(logs, *(shown(result) for result in (used, on_b_after, after_restart)))


async def test_a_2026_round_trip_answered_on_one_replica_is_refused_when_replayed_on_another(
    sandbox_server: SandboxServer, api: SandboxApi, postgres_url: str
) -> None:
    yes: InputResponses = {"confirm": ElicitResult(action="accept", content={"confirm": True})}
    with replicas(sandbox_server.base_url, 2, hosted_env(postgres_url, confirm_via="auto")) as (a, b):
        with anyio.fail_after(30):
            async with eliciting_client(a.url, "2026-07-28") as on_a, eliciting_client(b.url, "2026-07-28") as on_b:
                asked = await on_a.session.call_tool("send_message", MESSAGE, allow_input_required=True)
                assert isinstance(asked, InputRequiredResult) and asked.request_state is not None, asked
                answered = await on_b.session.call_tool(
                    "send_message", MESSAGE, allow_input_required=True, request_state=asked.request_state,
                    input_responses=yes)
                replays = [
                    await client.session.call_tool("send_message", MESSAGE, allow_input_required=True,
                                                   request_state=asked.request_state, input_responses=yes)
                    for client in (on_a, on_b)
                ]
        logs = a.log_text() + b.log_text()
    assert isinstance(answered, CallToolResult) and not answered.is_error, answered
    refused = [replayed for replayed in replays if isinstance(replayed, CallToolResult)]
    assert len(refused) == 2, replays
    for replayed in refused:
        assert replayed.is_error and texts(replayed) == (
            "Not sent: the confirmation could not be checked because it was already used once. Nothing was sent."
        ), shown(replayed)
    assert sent(api) == [("POST", "/messages", MESSAGE)]
    assert_password_absent(logs, shown(answered), *(shown(replayed) for replayed in refused))


async def test_twelve_submissions_of_one_token_to_two_workers_send_one_message(
    sandbox_server: SandboxServer, api: SandboxApi, postgres_url: str
) -> None:
    """No NEXOR_MCP_SECRET: `--workers 2` shares a key of its own; the database shares the claims.
    Six submissions go to each worker at once, each on a connection of its own that is known to be
    held by that worker (see `connections_by_worker`): without the database each worker would send."""
    with replicas(sandbox_server.base_url, 1, hosted_env(postgres_url, secret=None), "--workers", "2") as (server,):
        with anyio.fail_after(40):
            async with connections_by_worker(server.url, 6) as (first, second):
                token = token_of_rpc(await call_over(first[0], server.url, "send_message", MESSAGE))
                results: list[Json] = []

                async def submit(http: httpx2.AsyncClient) -> None:
                    confirmed = {**MESSAGE, "confirmation": token}
                    results.append(await call_over(http, server.url, "send_message", confirmed))

                async with anyio.create_task_group() as group:
                    for http in first + second:
                        group.start_soon(submit, http)
                counts = [{await send_message_counts(http, server.url) for http in worker}
                          for worker in (first, second)]
        log = server.log_text()
    assert len(results) == 12
    done = [result for result in results if not result["isError"]]
    refused = [result["content"][0]["text"][:len(ALREADY_USED)] for result in results if result["isError"]]
    assert len(done) == 1, done
    assert refused == [ALREADY_USED] * 11
    assert sent(api) == [("POST", "/messages", MESSAGE)]
    # Each worker answered its six: every connection of a worker reports the same numbers, its own.
    assert [len(worker) for worker in counts] == [1, 1], counts
    one, other = (dict(next(iter(worker))) for worker in counts)
    assert one.pop("confirmation_required") == 1  # the first call, on the marked worker's connection
    assert sum(one.values()) == 6 and sum(other.values()) == 6, (one, other)
    assert one.get("ok", 0) + other.get("ok", 0) == 1, (one, other)
    assert "NEXOR_DATABASE_URL" not in log  # the --workers warning is for a server without a database
    assert_password_absent(log, json.dumps(results))


MARKER = 'nexor_mcp_tool_calls_total{outcome="ok",tool="get_lead"} 1.0'
_CALLS = re.compile(r'^nexor_mcp_tool_calls_total\{outcome="(\w+)",tool="send_message"\} (\d+)\.0$', re.MULTILINE)


@asynccontextmanager
async def connections_by_worker(
    url: str, each: int
) -> AsyncIterator[tuple[list[httpx2.AsyncClient], list[httpx2.AsyncClient]]]:
    """`each` open connections to each of a `--workers 2` server's workers. A connection stays with
    the worker that accepted it, so: one get_lead on the first connection marks its worker, and every
    further connection's /metrics (asked on it) says whether it reached that worker or the other."""
    async with AsyncExitStack() as stack:

        async def connect() -> httpx2.AsyncClient:
            limits = httpx2.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=60)
            return await stack.enter_async_context(httpx2.AsyncClient(limits=limits, timeout=30))

        marked = await connect()
        assert not (await call_over(marked, url, "get_lead", {"lead_id": ANA}))["isError"]
        workers: tuple[list[httpx2.AsyncClient], list[httpx2.AsyncClient]] = ([marked], [])
        for _ in range(100):
            if min(map(len, workers)) >= each:
                break
            http = await connect()
            metrics = (await http.get(f"{url}/metrics")).text
            workers[0 if MARKER in metrics else 1].append(http)
        assert min(map(len, workers)) >= each, f"100 connections reached {[len(w) for w in workers]} per worker"
        yield workers[0][:each], workers[1][:each]


async def call_over(http: httpx2.AsyncClient, url: str, tool: str, arguments: Json) -> Json:
    """One stateless tools/call on `http`'s connection; the JSON-RPC result."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    answer = await http.post(f"{url}/mcp", json=body, headers={**JSON_HEADERS, **HEADERS,
                                                               "MCP-Protocol-Version": "2025-11-25"})
    assert answer.status_code == 200, answer.text
    result: Json = answer.json()["result"]
    return result


def token_of_rpc(result: Json) -> str:
    token: str = result["structuredContent"]["confirmation"]
    return token


async def send_message_counts(http: httpx2.AsyncClient, url: str) -> tuple[tuple[str, int], ...]:
    """send_message calls by outcome, as the worker holding `http`'s connection counted them."""
    metrics = (await http.get(f"{url}/metrics")).text
    return tuple(sorted((outcome, int(count)) for outcome, count in _CALLS.findall(metrics)))


# --- two tenants on one database ---------------------------------------------------------------------


async def test_two_tenants_on_one_database_keep_their_tokens_and_their_journals_apart(
    sandbox_server: SandboxServer, api: SandboxApi, postgres_url: str
) -> None:
    other_account = api.add_account(OTHER_KEY)  # tenant B: its own copy of the seeded leads, with its own key
    theirs = {"X-API-Key": OTHER_KEY}
    with replicas(sandbox_server.base_url, 2, hosted_env(postgres_url)) as (first, second):
        with anyio.fail_after(30):
            async with mcp_client(first.url, HEADERS) as tenant_a, mcp_client(second.url, theirs) as tenant_b:
                token = token_of(await tenant_a.call_tool("send_message", MESSAGE))
                stolen = await tenant_b.call_tool("send_message", {**MESSAGE, "confirmation": token})
                assert sent(api) == []
                a_update = await tenant_a.call_tool("update_lead", {"lead_id": ANA, "title": "CTO"})
                b_update = await tenant_b.call_tool("update_lead", {"lead_id": ANA, "title": "CFO"})
                b_tags = await tenant_b.call_tool("set_lead_tags", {"lead_id": JOHN, "tags": ["VIP"]})
                a_message = await tenant_a.call_tool("send_message", {**MESSAGE, "confirmation": token})
        logs = first.log_text() + second.log_text()
    assert stolen.is_error, shown(stolen)
    assert texts(stolen).startswith(
        "Not sent: the confirmation was refused because it was not issued for these exact arguments (or not by "
        "this server, or for another account)"), shown(stolen)
    for result in (a_update, b_update, b_tags, a_message):
        assert not result.is_error, shown(result)
    assert [(r.method, r.path.removeprefix("/api/public"), r.headers["x-api-key"]) for r in api.requests
            if r.method != "GET"] == [
        ("PATCH", f"/leads/{ANA}", TEST_KEY), ("PATCH", f"/leads/{ANA}", OTHER_KEY),
        ("PUT", "/leads/tags", OTHER_KEY), ("POST", "/messages", TEST_KEY),
    ]
    assert (api.leads[ANA]["title"], other_account.leads[ANA]["title"]) == ("CTO", "CFO")
    base = sandbox_server.base_url
    async with anyio.create_task_group() as group:
        journals: dict[str, list[Json]] = {}

        async def read(name: str, key: str | None) -> None:
            journals[name] = await listed(postgres_url, base, key)

        group.start_soon(read, "a", TEST_KEY)
        group.start_soon(read, "b", OTHER_KEY)
        group.start_soon(read, "operator", None)
    mine, yours = account_fingerprint(TEST_KEY), account_fingerprint(OTHER_KEY)
    assert [(entry["tool"], entry["account"], entry["body"]) for entry in journals["a"]] == [
        ("update_lead", mine, {"title": "CTO"}), ("send_message", mine, MESSAGE),
    ]
    assert [(entry["tool"], entry["account"], entry["body"]) for entry in journals["b"]] == [
        ("update_lead", yours, {"title": "CFO"}), ("set_lead_tags", yours, {"lead_id": JOHN, "tags": ["VIP"]}),
    ]
    assert all(entry["outcome"] == "ok" for entry in journals["a"] + journals["b"])
    # Without a key (the operator) every account's entries, in the order they were written.
    assert [entry["id"] for entry in journals["operator"]] == [
        journals["a"][0]["id"], journals["b"][0]["id"], journals["b"][1]["id"], journals["a"][1]["id"]]
    # Tenant B can neither show, undo nor export tenant A's entries: for B's key they are not there.
    api.requests.clear()
    a_entry = journals["a"][0]["id"]
    commands: dict[str, subprocess.CompletedProcess[str]] = {}

    async def run(name: str, *args: str) -> None:
        commands[name] = await audit(postgres_url, base, *args, key=OTHER_KEY)

    async with anyio.create_task_group() as group:
        group.start_soon(run, "show", "show", a_entry)
        group.start_soon(run, "undo", "undo", a_entry)
        group.start_soon(run, "export", "export")
    assert (commands["show"].returncode, commands["show"].stderr) == (
        1, f"nexor-mcp audit show: no entry '{a_entry}' in the journal\n")
    assert commands["undo"].returncode == 1 and commands["undo"].stdout.splitlines() == [
        f"{a_entry}: refused: no entry '{a_entry}' in the journal",
        "Done: 0 undone, 0 with nothing to undo, 1 refused, 0 failed."], commands["undo"]
    assert list(api.requests) == []
    exported = [json.loads(line) for line in commands["export"].stdout.splitlines()]
    assert [(record["id"], record["event"]) for record in exported] == [
        (entry["id"], event) for entry in journals["b"] for event in ("intent", "outcome")]
    assert_password_absent(logs, shown(stolen), *(command.stdout + command.stderr for command in commands.values()))


# --- SQLite: two stdio servers on one file -------------------------------------------------------------


async def test_two_stdio_servers_on_one_sqlite_file_share_single_use_and_the_journal(
    sandbox_server: SandboxServer, api: SandboxApi, sqlite_url: str
) -> None:
    env = server_env(sandbox_server.base_url, NEXOR_DATABASE_URL=sqlite_url, NEXOR_MCP_SECRET=SECRET,
                     NEXOR_TOOLS=TOOLS, NEXOR_CONFIRM_VIA="token")
    with anyio.fail_after(30):
        async with spawn_server(env) as first, spawn_server(env) as second:
            token = token_of(await first.call("send_message", MESSAGE))
            used = await first.call("send_message", {**MESSAGE, "confirmation": token})
            again = await second.call("send_message", {**MESSAGE, "confirmation": token})
            update = await first.call("update_lead", {"lead_id": ANA, "title": "CTO"})
            tags = await second.call("set_lead_tags", {"lead_id": JOHN, "tags": ["Hot lead"]})
            logs = first.stderr_text() + second.stderr_text()
    assert not used.is_error, shown(used)
    assert again.is_error and texts(again).startswith(ALREADY_USED), shown(again)
    assert not update.is_error and not tags.is_error, (shown(update), shown(tags))
    assert [(method, path) for method, path, _ in sent(api)] == [
        ("POST", "/messages"), ("PATCH", f"/leads/{ANA}"), ("PUT", "/leads/tags")]
    entries = await listed(sqlite_url, sandbox_server.base_url)
    assert [(entry["tool"], entry["lead_id"], entry["outcome"]) for entry in entries] == [
        ("send_message", ANA, "ok"), ("update_lead", ANA, "ok"), ("set_lead_tags", JOHN, "ok")]
    table = await audit(sqlite_url, sandbox_server.base_url, "list")
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == [entry["id"] for entry in entries]
    assert "ERROR" not in logs and "cannot" not in logs, logs
