"""Issue 15, hosted mode and its duplicates: each request is admitted once in front of /mcp and its
calls are built from that admission (served over real HTTP, against the sandbox); the one listening
socket (TCP_NODELAY on what it accepts); the one account id; the one `Json`."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from nexor_mcp.account import account_fingerprint, account_id
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Secret, Settings, load_settings
from nexor_mcp.hosted.auth import Admission, Authenticator
from nexor_mcp.http import TOOLS_HEADER, HostedSettings, create_app, uvicorn_options
from nexor_mcp.listening import listening_socket
from nexor_mcp.sandbox import SandboxApi, SandboxServer
from tests.conftest import ANA, TEST_KEY
from tests.test_e2e_http import CALL_GET_ANA, rpc

PACKAGE = Path(__file__).resolve().parent.parent / "nexor_mcp"


@contextmanager
def served_in_process(settings: Settings, hosted: HostedSettings) -> Iterator[str]:
    """`create_app` under uvicorn with hosted mode's own options, on a loopback port, in a thread."""
    threshold = gc.get_threshold()
    sock = listening_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, hosted), **uvicorn_options(settings, hosted)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        gc.unfreeze()  # the app's lifespan tunes the collector for a server process, not for pytest
        gc.set_threshold(*threshold)


@pytest.fixture
def admissions(monkeypatch: pytest.MonkeyPatch) -> list[Admission | None]:
    """Every `Authenticator.admit` call, in order: its admission, or None when it refused."""
    seen: list[Admission | None] = []
    admit = Authenticator.admit

    def counted(self: Authenticator, headers: Any) -> Admission:
        seen.append(None)
        seen[-1] = admission = admit(self, headers)
        return admission

    monkeypatch.setattr(Authenticator, "admit", counted)
    return seen


def test_each_request_is_admitted_once_and_its_calls_use_that_admission(
    sandbox_server: SandboxServer, api: SandboxApi, admissions: list[Admission | None]
) -> None:
    settings = load_settings({"base_url": sandbox_server.base_url, "tools": "read,write"}, environ={})
    with served_in_process(settings, HostedSettings()) as url:
        narrowed = {"X-API-Key": TEST_KEY, TOOLS_HEADER: "get_lead"}
        listed = rpc(url, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, narrowed).json()["result"]
        assert [tool["name"] for tool in listed["tools"]] == ["get_lead"]
        assert len(admissions) == 1

        called = rpc(url, CALL_GET_ANA, narrowed).json()["result"]
        assert called["isError"] is False and called["structuredContent"]["lead"]["id"] == ANA
        assert len(admissions) == 2
        assert [(r.method, r.path, r.headers["x-api-key"]) for r in api.requests] == [
            ("GET", f"/api/public/leads/{ANA}", TEST_KEY)
        ]
        admitted = admissions[-1]
        assert admitted is not None and admitted.key == Secret(TEST_KEY) and admitted.narrowed
        assert [spec.name for spec in admitted.tools] == ["get_lead"]

        left_out = {"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                    "params": {"name": "update_lead", "arguments": {"lead_id": ANA, "title": "Boss"}}}
        refused = rpc(url, left_out, narrowed).json()["result"]
        assert refused["isError"] is True
        assert refused["content"][0]["text"] == (
            "update_lead is not enabled for this request (its X-Nexor-Tools header leaves it out), "
            "so nothing was done."
        )
        assert len(admissions) == 3 and len(api.requests) == 1

        unauthenticated = rpc(url, CALL_GET_ANA, {TOOLS_HEADER: "get_lead"})
        assert unauthenticated.status_code == 401
        assert admissions[3:] == [None] and len(api.requests) == 1


def test_single_tenant_admission_carries_no_key_and_calls_use_the_configured_one(
    sandbox_server: SandboxServer, api: SandboxApi, admissions: list[Admission | None]
) -> None:
    token = "access-token-issue15-0123456789"
    settings = load_settings({"base_url": sandbox_server.base_url, "api_key": TEST_KEY}, environ={})
    with served_in_process(settings, HostedSettings(access_tokens=(Secret(token),))) as url:
        called = rpc(url, CALL_GET_ANA, {"Authorization": f"Bearer {token}"}).json()["result"]
        assert called["isError"] is False
        assert [r.headers["x-api-key"] for r in api.requests] == [TEST_KEY]
        assert len(admissions) == 1 and admissions[0] is not None and admissions[0].key is None
        assert rpc(url, CALL_GET_ANA, {"Authorization": "Bearer wrong"}).status_code == 401
        assert admissions[1:] == [None] and len(api.requests) == 1


# --- the one listening socket ---------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "family"), [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)])
def test_the_listening_socket_is_tcp_reusable_and_its_connections_get_no_delay(host: str, family: int) -> None:
    sock = listening_socket(host, 0)
    assert (sock.family, sock.proto) == (family, socket.IPPROTO_TCP)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    port = sock.getsockname()[1]
    assert port > 0

    async def accepted_no_delay() -> int:
        flags: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            flags.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(host, port)
            flag = await asyncio.wait_for(flags, 20)
            writer.close()
            return flag

    assert asyncio.run(accepted_no_delay()) != 0


def test_a_port_in_use_raises_and_leaves_no_socket_open() -> None:
    taken = listening_socket("127.0.0.1", 0)
    with taken, pytest.raises(OSError):
        # SO_REUSEADDR does not let two sockets listen on one port
        listening_socket("127.0.0.1", taken.getsockname()[1])


# --- the one account id ---------------------------------------------------------------------------------


def test_one_account_id_and_the_journal_fingerprint_is_its_first_12_digits() -> None:
    digest = hashlib.sha256(TEST_KEY.encode()).hexdigest()
    client = NexorClient(load_settings({"api_key": TEST_KEY}, environ={}))
    assert client.account == account_id(Secret(TEST_KEY)) == account_id(TEST_KEY) == digest
    # what every journal line written so far holds, so old lines still match their account
    assert account_fingerprint(Secret(TEST_KEY)) == client.account[:12] == digest[:12]
    assert NexorClient(load_settings({}, environ={})).account == account_id(None) == ""
    assert account_fingerprint(None) is None and account_fingerprint("") is None


# --- the one Json ---------------------------------------------------------------------------------------


def test_json_is_defined_once_in_the_package() -> None:
    definitions = sorted(
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
        if re.search(r"^Json\s*(:[^=]*)?=", path.read_text(encoding="utf-8"), re.M)
    )
    assert definitions == ["json_types.py"]
