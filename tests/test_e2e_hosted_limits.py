"""Hosted mode under a client that wants to exhaust it or that forgot its key (issue 14): real
`nexor-mcp http` processes on loopback, driven by raw sockets, raw HTTP and the SDK client, against
the sandbox; plus one in-process check of the structures behind `X-Nexor-Tools`.

- `X-Nexor-Tools`: any number of distinct subsets leaves nothing behind; each listing is right.
- GET (and every method but POST) on /mcp: 405 at once, never a stream that stays open.
- A connection that says nothing, or half a request, is closed after the read timeout; beyond
  `--max-connections`, a request gets 503. Both reach `--workers` processes.
- A missing or obviously wrong key: 401 without a Bearer (OAuth) challenge, with a message the
  client shows and that says what a Nexor key looks like; Bearer stays for access tokens."""

from __future__ import annotations

import gc
import itertools
import json
import os
import random
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import IO, Any, cast

import httpx2
import pytest
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from starlette.requests import Request

from nexor_mcp.client import NexorClient
from nexor_mcp.config import load_settings
from nexor_mcp.http import TOOLS_HEADER, HostedScopes, hosted_settings, uvicorn_options
from nexor_mcp.sandbox import SANDBOX_API_KEY, SandboxApi, SandboxServer
from tests.conftest import ANA, TEST_KEY, read_log
from tests.test_e2e_http import ACCESS_TOKEN, CALL_GET_ANA, http_server, mcp_client, rpc, served_process

pytestmark = pytest.mark.anyio

ALL_GROUPS = "read,write,automation,outreach"
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
CLOSED_WITHIN = 20.0
"""How long a test waits for the server to close a connection before it fails (not a speed check:
the read timeouts under test are far below it)."""


# --- X-Nexor-Tools: distinct subsets grow nothing ------------------------------------------------------


def request_context(headers: dict[str, str]) -> ServerRequestContext[Any]:
    scope = {"type": "http", "method": "POST", "path": "/mcp", "query_string": b"",
             "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()]}
    return cast("ServerRequestContext[Any]", SimpleNamespace(request=Request(scope)))


def footprint(scopes: HostedScopes) -> dict[str, int]:
    """The size of every container HostedScopes holds: a cache keyed by the header would grow here."""
    return {name: len(value) for name, value in vars(scopes).items() if hasattr(value, "__len__")}


def test_thousands_of_distinct_tool_subsets_share_one_tool_each_and_grow_nothing() -> None:
    settings = load_settings({"tools": ALL_GROUPS}, environ={})
    scopes = HostedScopes(settings, NexorClient(settings))
    full = scopes(request_context({"X-API-Key": TEST_KEY})).listed.tools
    names = [tool.name for tool in full]
    assert len(names) == 17
    shared = {id(tool) for tool in full}
    masks = random.Random(14).sample(range(1, 2 ** len(names)), 6_000)

    def list_subset(mask: int) -> None:
        subset = [name for bit, name in enumerate(names) if mask >> bit & 1]
        random.Random(mask).shuffle(subset)  # the header's order never matters: declaration order comes back
        listed = scopes(request_context({"X-API-Key": TEST_KEY, TOOLS_HEADER: ",".join(subset)})).listed.tools
        assert [tool.name for tool in listed] == [name for name in names if name in subset]
        assert all(id(tool) in shared for tool in listed)  # the same Tool objects, never new ones

    before = footprint(scopes)
    for mask in masks[:1_000]:
        list_subset(mask)
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for mask in masks[1_000:]:
            list_subset(mask)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert footprint(scopes) == before
    # 5,000 more distinct subsets leave less than 256 KiB behind (a listing kept per subset: ~100 MB).
    assert retained < 256 * 1024, retained


@pytest.fixture(scope="module")
def every_group(sandbox_server: SandboxServer) -> Iterator[tuple[str, IO[str]]]:
    with http_server(sandbox_server.base_url, env={"NEXOR_TOOLS": ALL_GROUPS}) as served:
        yield served


def test_each_narrowed_listing_over_http_is_exactly_its_tools_from_the_full_one(
    every_group: tuple[str, IO[str]], api: SandboxApi
) -> None:
    url, _ = every_group
    full = rpc(url, LIST_TOOLS, {"X-API-Key": TEST_KEY}).json()["result"]["tools"]
    by_name = {tool["name"]: tool for tool in full}
    chooser = random.Random(1414)
    for _ in range(40):
        subset = chooser.sample(sorted(by_name), chooser.randint(1, len(by_name)))
        listed = rpc(url, LIST_TOOLS, {"X-API-Key": TEST_KEY, "X-Nexor-Tools": ",".join(subset)}).json()
        assert listed["result"]["tools"] == [tool for tool in full if tool["name"] in subset]
    groups = rpc(url, LIST_TOOLS, {"X-API-Key": TEST_KEY, "X-Nexor-Tools": "read,send_message"}).json()
    assert [tool["name"] for tool in groups["result"]["tools"]][-1] == "send_message"
    assert rpc(url, LIST_TOOLS, {"X-API-Key": TEST_KEY}).json()["result"]["tools"] == full
    assert api.requests == []


# --- GET and every other method but POST: 405 at once ---------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH", "OPTIONS"])
def test_every_method_but_post_gets_405_at_once_with_or_without_a_key(
    every_group: tuple[str, IO[str]], api: SandboxApi, method: str
) -> None:
    url, _ = every_group
    for headers in (
        {},  # no key: still 405, not 401 (the method is refused before the key is looked at)
        {"X-API-Key": TEST_KEY},
        {"X-API-Key": TEST_KEY, "MCP-Protocol-Version": "2025-11-25"},
        {"X-API-Key": TEST_KEY, "MCP-Protocol-Version": "2026-07-28"},
        {"X-API-Key": "hello", "Mcp-Session-Id": "abc", "Last-Event-ID": "1"},
    ):
        # Before the fix, GET opened an SSE stream that never ended: reading it whole timed out.
        response = httpx2.request(
            method, f"{url}/mcp", headers={"Accept": "text/event-stream, application/json", **headers}, timeout=15
        )
        assert response.status_code == 405, (method, headers)
        assert response.headers["allow"] == "POST"
        error = response.json()["error"]
        assert error["code"] == -32600
        assert f"Method Not Allowed: {method} /mcp" in error["message"] and "POST" in error["message"]
    assert api.requests == []


async def test_the_sdk_client_still_works_with_get_refused(every_group: tuple[str, IO[str]], api: SandboxApi) -> None:
    url, _ = every_group
    for mode in ("legacy", "2026-07-28"):
        async with mcp_client(url, {"X-API-Key": TEST_KEY}, mode) as client:
            result = await client.call_tool("get_lead", {"lead_id": ANA})
            assert not result.is_error
    assert [r.path for r in api.requests] == [f"/api/public/leads/{ANA}"] * 2


# --- slow and silent connections: the read timeout and the connection limit -------------------------------


@contextmanager
def connection(url: str) -> Iterator[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=CLOSED_WITHIN)
    try:
        yield sock
    finally:
        sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes the connection without answering; False if it answers."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        pytest.fail(f"the server kept a stalled connection open for {CLOSED_WITHIN} s")


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: its status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection instead of answering: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields[b"content-length"])
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ")[1]), body


def post(body: bytes, key: str = TEST_KEY) -> bytes:
    return (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def stalled_requests() -> dict[str, bytes]:
    """What a slowloris client sends before it stops: nothing, half a line, headers, half a body."""
    whole = post(json.dumps(CALL_GET_ANA).encode())
    head_end = whole.index(b"\r\n\r\n") + 4
    return {
        "nothing": b"",
        "half a request line": b"POST /mc",
        "headers without their end": whole[: head_end - 2],
        "half a body": whole[: head_end + 20],
    }


def test_a_silent_or_half_sent_connection_is_closed_after_the_read_timeout(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    with http_server(sandbox_server.base_url, "--read-timeout-seconds", "0.5") as (url, stderr):
        for what, sent in stalled_requests().items():
            with connection(url) as sock:
                sock.sendall(sent)
                assert closed_by_server(sock), what
        assert api.requests == []  # the call whose body was cut off never ran
        with connection(url) as sock:  # kept alive: idle between requests is not a stalled request...
            sock.sendall(post(json.dumps(CALL_GET_ANA).encode()))
            assert read_response(sock)[0] == 200
            sock.sendall(post(json.dumps(LIST_TOOLS).encode())[:30])  # ...but half of the next one is
            assert closed_by_server(sock)
        # The timer stops once a request is in: a call slower than the read timeout is answered.
        api.latency = 1.5
        assert rpc(url, CALL_GET_ANA, {"X-API-Key": TEST_KEY}).json()["result"]["isError"] is False
        assert eventually_logged(stderr, "closed a connection whose request did not arrive whole within 0.5 s")
        log = read_log(stderr)
    assert [r.path for r in api.requests] == [f"/api/public/leads/{ANA}"] * 2
    assert "Traceback" not in log and "ERROR" not in log  # a cut-off body is not a server error


def test_an_idle_kept_alive_connection_outlives_the_read_timeout(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    with http_server(sandbox_server.base_url, "--read-timeout-seconds", "0.3") as (url, _), connection(url) as sock:
        sock.sendall(post(json.dumps(LIST_TOOLS).encode()))
        assert read_response(sock)[0] == 200
        time.sleep(1.0)  # idle after a response: uvicorn's keep-alive (60 s) applies, not the read timeout
        sock.sendall(post(json.dumps(LIST_TOOLS).encode()))
        assert read_response(sock)[0] == 200


def eventually_logged(stderr: IO[str], text: str) -> bool:
    """The server writes its log from a thread: wait for a line rather than race it."""
    deadline = time.monotonic() + CLOSED_WITHIN
    while text not in read_log(stderr):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def served_at(url: str) -> int:
    """The status of one tool call on a new connection; the server may still be counting a
    connection an earlier step closed, so a 503 is tried again a few times."""
    for _ in range(50):
        with connection(url) as sock:
            sock.sendall(post(json.dumps(CALL_GET_ANA).encode()))
            status, _ = read_response(sock)
        if status != 503:
            return status
        time.sleep(0.1)
    return status


def test_beyond_max_connections_a_request_gets_503(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    with (
        http_server(sandbox_server.base_url, "--max-connections", "3", "--read-timeout-seconds", "60") as (url, stderr),
        connection(url),
        connection(url),
    ):
        assert served_at(url) == 200  # two silent connections and this one: 3 of 3, served
        with connection(url), connection(url) as fourth:  # a third silent one: this is the fourth
            fourth.sendall(post(json.dumps(CALL_GET_ANA).encode()))
            assert read_response(fourth)[0] == 503
            assert closed_by_server(fourth)
        assert served_at(url) == 200  # room again once one is gone
        assert eventually_logged(stderr, "Exceeded concurrency limit")
    assert [r.path for r in api.requests] == [f"/api/public/leads/{ANA}"] * 2  # the refused call never ran


@pytest.mark.parametrize("given", ["flag", "environment"])
def test_the_read_timeout_reaches_every_worker(sandbox_server: SandboxServer, api: SandboxApi, given: str) -> None:
    args: tuple[str, ...] = ("--read-timeout-seconds", "0.5") if given == "flag" else ()
    env = {"NEXOR_MCP_READ_TIMEOUT_SECONDS": "0.5"} if given == "environment" else {}
    with http_server(sandbox_server.base_url, "--workers", "2", *args, env=env) as (url, _):
        for _ in range(6):  # several connections: whichever worker takes one, it has the setting
            with connection(url) as sock:
                sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                assert closed_by_server(sock)
        assert rpc(url, CALL_GET_ANA, {"X-API-Key": TEST_KEY}).json()["result"]["isError"] is False


SECONDS = "a number of seconds from 0.1 to 3600"
CONNECTIONS = "a whole number from 1 to 1000000"


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("--read-timeout-seconds", "0"), {}, f"--read-timeout-seconds must be {SECONDS}, got '0'"),
        (("--read-timeout-seconds", "soon"), {}, f"--read-timeout-seconds must be {SECONDS}, got 'soon'"),
        ((), {"NEXOR_MCP_READ_TIMEOUT_SECONDS": "nan"}, f"NEXOR_MCP_READ_TIMEOUT_SECONDS must be {SECONDS}, got 'nan'"),
        (("--max-connections", "0"), {}, f"--max-connections must be {CONNECTIONS}, got '0'"),
        ((), {"NEXOR_MCP_MAX_CONNECTIONS": "many"}, f"NEXOR_MCP_MAX_CONNECTIONS must be {CONNECTIONS}, got 'many'"),
        ((), {"NEXOR_MCP_PORT": "http"}, "NEXOR_MCP_PORT must be a whole number from 0 to 65535, got 'http'"),
    ],
)
def test_a_bad_limit_refuses_to_start_naming_where_it_came_from(
    args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp", "http", *args],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", ""), **env},
    )
    assert completed.returncode == 2
    assert f"nexor-mcp http: {expected}" in completed.stderr
    assert "Traceback" not in completed.stderr


# --- a missing or wrong key: our message, not an OAuth dance -------------------------------------------------


def mcp_errors(error: BaseException) -> list[MCPError]:
    if isinstance(error, MCPError):
        return [error]
    if isinstance(error, BaseExceptionGroup):
        return list(itertools.chain.from_iterable(mcp_errors(inner) for inner in error.exceptions))
    return []


async def initialize_error(url: str, headers: dict[str, str]) -> str:
    """What the SDK client reports when `initialize` is refused."""
    with pytest.raises(BaseException) as caught:
        async with mcp_client(url, headers):
            pass
    errors = mcp_errors(caught.value)
    assert len(errors) == 1, caught.value
    return errors[0].error.message


async def test_no_key_gets_401_without_a_bearer_challenge_and_the_client_shows_our_message(
    every_group: tuple[str, IO[str]], api: SandboxApi
) -> None:
    url, _ = every_group
    for headers in ({}, {"Authorization": "Basic abc"}):
        response = rpc(url, INITIALIZE, headers)
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert not challenge.lower().startswith("bearer") and "X-API-Key" in challenge  # nothing says "try OAuth"
        assert "send your key in the X-API-Key header" in response.json()["error"]["message"]
        assert "send your key in the X-API-Key header" in await initialize_error(url, headers)
    assert api.requests == []


NOT_NEXOR_KEYS = ["hello", "nxr_live_", "nxr_test_5f0e9c1a", "NXR_LIVE_5f0e9c1a", "sk_live_5f0e9c1a",
                  "nxr live spaced", "nxr_live_ab\tcd", "xnxr_live_5f0e9c1a"]


@pytest.mark.parametrize("key", NOT_NEXOR_KEYS)
async def test_a_key_that_is_not_a_nexor_key_gets_401_at_initialize_saying_what_one_looks_like(
    every_group: tuple[str, IO[str]], api: SandboxApi, key: str
) -> None:
    url, _ = every_group
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        response = rpc(url, INITIALIZE, headers)
        assert response.status_code == 401, headers
        assert not response.headers["www-authenticate"].lower().startswith("bearer")
        message = response.json()["error"]["message"]
        assert response.json()["error"]["code"] == -32001
        assert "does not look like a Nexor API key" in message and "start with nxr_live_" in message
        assert "X-API-Key" in message
        assert key not in response.text.replace("nxr_live_", "")  # never echoed
    shown = await initialize_error(url, {"X-API-Key": key})
    assert "does not look like a Nexor API key" in shown and "nxr_live_" in shown
    assert api.requests == []


async def test_nexor_shaped_keys_still_pass(every_group: tuple[str, IO[str]], api: SandboxApi) -> None:
    url, _ = every_group
    api.add_account(SANDBOX_API_KEY)
    for key in (TEST_KEY, SANDBOX_API_KEY, "nxr_live_not_a_real_key_123"):
        assert rpc(url, INITIALIZE, {"X-API-Key": key}).status_code == 200
        result = rpc(url, CALL_GET_ANA, {"Authorization": f"Bearer {key}"}).json()["result"]
        assert result["isError"] is (key == "nxr_live_not_a_real_key_123")  # well formed but wrong: Nexor's 401
    assert [r.headers["x-api-key"] for r in api.requests] == [TEST_KEY, SANDBOX_API_KEY, "nxr_live_not_a_real_key_123"]


def test_single_tenant_keeps_the_bearer_challenge(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    env = {"NEXOR_API_KEY": TEST_KEY, "NEXOR_MCP_ACCESS_TOKENS": ACCESS_TOKEN}
    with served_process(sandbox_server.base_url, env=env) as (url, _, _):
        for headers in ({}, {"Authorization": "Bearer hello"}):
            response = rpc(url, INITIALIZE, headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == 'Bearer realm="nexor-mcp"'
            assert "this server needs an access token" in response.json()["error"]["message"]
        assert rpc(url, INITIALIZE, {"Authorization": f"Bearer {ACCESS_TOKEN}"}).status_code == 200
    assert api.requests == []


@pytest.mark.parametrize(("budget", "timeout"), [(20.0, 30.0), (2.0, 3.0)])
def test_sigterm_gives_calls_in_flight_their_whole_deadline(budget: float, timeout: float) -> None:
    """Hosted mode drains as stdio does: a call's requests all start within the retry budget and
    each has one timeout, so uvicorn's graceful shutdown waits that long (before: a fixed 10 s,
    which abandoned a write started late in a slow call)."""
    settings = load_settings({"retry_budget_seconds": budget, "timeout_seconds": timeout}, environ={})
    options = uvicorn_options(settings, hosted_settings(environ={}))
    assert options["timeout_graceful_shutdown"] == budget + timeout + 1
