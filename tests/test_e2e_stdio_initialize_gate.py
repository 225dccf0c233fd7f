"""Issue 15, the stdio transport split by job: the "initialize first" answer is decided from what
the transport saw and the SDK's error code, never from the SDK's wording."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import IO, Any

import pytest
from mcp_types import INVALID_PARAMS, METHOD_NOT_FOUND, ErrorData, JSONRPCError, JSONRPCRequest, JSONRPCResponse

from nexor_mcp.sandbox import SandboxApi, SandboxServer
from nexor_mcp.stdio.checks import NOT_INITIALIZED, InitializeGate
from tests.conftest import ANA, child_log
from tests.test_e2e_stdio import INITIALIZE, Wire, call, line

NOT_INITIALIZED_ERROR = {"code": -32600, "message": NOT_INITIALIZED}
MODERN_META = {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}


@pytest.fixture
def stderr() -> Iterator[IO[str]]:
    with child_log() as file:
        yield file


def request(request_id: int, method: str, params: dict[str, Any] | None = None) -> JSONRPCRequest:
    return JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, params=params)


def error(request_id: int, code: int, message: str) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))


def test_the_gate_rewords_an_early_invalid_params_whatever_the_sdk_wrote() -> None:
    """A future SDK may word its refusal differently; the answer must not change with it."""
    gate = InitializeGate()
    gate.request_read(request(2, "tools/call", {"name": "get_lead"}))
    gate.request_read(request(3, "tools/list"))
    reworded = gate.answer_for(error(2, INVALID_PARAMS, "Session not initialized (new wording)"), 2)
    assert reworded is not None and json.loads(reworded) == {"jsonrpc": "2.0", "id": 2, "error": NOT_INITIALIZED_ERROR}
    assert gate.answer_for(error(3, INVALID_PARAMS, ""), 3) is not None


def test_the_gate_leaves_every_other_answer_as_the_sdk_wrote_it() -> None:
    gate = InitializeGate()
    gate.request_read(request(4, "no/such/method"))
    gate.request_read(request(5, "ping", {"_meta": 5}))
    gate.request_read(request(6, "tools/list", MODERN_META))
    assert gate.answer_for(error(4, METHOD_NOT_FOUND, "Method not found"), 4) is None
    assert gate.answer_for(error(5, INVALID_PARAMS, "Invalid request parameters"), 5) is None  # ping needs no handshake
    assert gate.answer_for(error(6, INVALID_PARAMS, "Invalid request parameters"), 6) is None  # 2026 envelope
    gate.request_read(request(1, "initialize", {}))
    gate.request_read(request(7, "tools/call", {"name": 5}))  # read right behind initialize
    assert gate.answer_for(JSONRPCResponse(jsonrpc="2.0", id=1, result={}), 1) is None
    assert gate.answer_for(error(7, INVALID_PARAMS, "Invalid request parameters"), 7) is None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")
def test_before_initialize_a_call_is_told_to_initialize_but_a_malformed_ping_gets_the_sdks_error(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str]
) -> None:
    """Ping is allowed before the handshake, so its -32602 is about its params, not about order;
    a call with bad params before initialize is still told to initialize first. Nothing is sent."""
    wire = Wire(sandbox_server.base_url, stderr)
    try:
        wire.send(line({"jsonrpc": "2.0", "id": 2, "method": "ping", "params": {"_meta": 5}}))
        bad_ping = wire.read_message()
        wire.send(line({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": 5}}))
        bad_call = wire.read_message()
        wire.send(line(call(4, "update_lead", {"lead_id": ANA, "title": "too early"})))
        early_call = wire.read_message()
        wire.send(line(INITIALIZE))
        initialized = wire.read_message()
    finally:
        wire.kill()
    assert bad_ping["id"] == 2 and bad_ping["error"]["code"] == -32602
    assert bad_call == {"jsonrpc": "2.0", "id": 3, "error": NOT_INITIALIZED_ERROR}
    assert early_call == {"jsonrpc": "2.0", "id": 4, "error": NOT_INITIALIZED_ERROR}
    assert initialized["id"] == 1 and "result" in initialized
    assert api.requests == []
