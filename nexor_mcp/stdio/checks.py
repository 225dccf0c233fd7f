"""The JSON-RPC checks on each inbound line, and the answer to a request sent before `initialize`.

The SDK answers nothing to a line it cannot parse. Here a line that is not JSON gets -32700,
anything else that is not a valid request gets -32600 (id null when the id cannot be trusted), a
line over the size limit gets -32600; a malformed notification or response is only logged. A
request sent before `initialize` is answered "the session is not initialized" instead of the SDK's
bare -32602.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

from nexor_mcp.stdio.framing import error_line

NOT_INITIALIZED = "the session is not initialized: send initialize first"
ALLOWED_BEFORE_INITIALIZE = frozenset({"initialize", "ping"})
"""What the protocol lets a client send before the handshake (the SDK's gate exempts the same)."""


@dataclass(frozen=True)
class Refusal:
    """A bad request, answered at once by the transport so the host does not wait for its own
    timeout."""

    request_id: str | int | None
    code: int
    problem: str

    def answer(self) -> bytes:
        text = self.problem if self.code == PARSE_ERROR else f"Invalid Request: {self.problem}"
        return error_line(self.request_id, self.code, text)


@dataclass(frozen=True)
class Ignored:
    """A malformed notification or response: nobody waits for an answer to these, and answering
    a response could start a loop, so it is only logged."""

    kind: Literal["notification", "response"]
    problem: str


Verdict = JSONRPCMessage | Refusal | Ignored


def oversize_refusal(limit: int) -> Refusal:
    return Refusal(None, INVALID_REQUEST, f"the message is larger than the {limit}-byte limit; it was skipped")


def check_line(line: bytes) -> Verdict:
    """The message a line holds, or why it is refused or ignored."""
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError):
        return Refusal(None, PARSE_ERROR, "Parse error: the line is not valid JSON")
    if not isinstance(raw, dict):
        what = "batches (JSON arrays) are not supported" if isinstance(raw, list) else "not a JSON object"
        return Refusal(None, INVALID_REQUEST, what)
    kind = _kind_of(raw)
    if kind == "request":
        request_id = raw.get("id")
        if not _valid_id(request_id):
            return Refusal(None, INVALID_REQUEST, "id must be a string or an integer")
        if "method" not in raw:
            return Refusal(request_id, INVALID_REQUEST, "no method, result or error")
    problem = _envelope_problem(raw) if kind != "response" else None
    if problem is None:
        try:
            return jsonrpc_message_adapter.validate_python(raw, by_name=False)
        except ValidationError:
            problem = "not a valid JSON-RPC 2.0 message"
    if kind == "request":
        return Refusal(raw["id"], INVALID_REQUEST, problem)
    return Ignored(kind, problem)


def _kind_of(raw: dict[str, Any]) -> Literal["request", "notification", "response"]:
    if "method" not in raw and ("result" in raw or "error" in raw):
        return "response"
    return "notification" if "method" in raw and "id" not in raw else "request"


def _valid_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _envelope_problem(message: dict[str, Any]) -> str | None:
    if message.get("jsonrpc") != "2.0":
        return '"jsonrpc" must be "2.0"'
    if not isinstance(message.get("method"), str):
        return '"method" must be a string'
    if "params" in message and not isinstance(message["params"], dict):
        return '"params" must be an object'
    return None


class InitializeGate:
    """Words the SDK's refusal of a request sent before the handshake.

    The SDK refuses such a request with INVALID_PARAMS, the code it also uses for bad params. So
    the decision is made from what this transport saw, not from the SDK's wording: a request read
    before the handshake finished, of a method the handshake gates (not `initialize` or `ping`, and
    without a 2026 per-request protocol envelope, which needs no handshake), answered
    INVALID_PARAMS while no `initialize` has been answered yet, was refused for coming too early
    (if its params are bad as well, initializing is still the first thing to fix). A request read
    right behind `initialize` is served after it, so its own -32602 stays as the SDK wrote it.
    """

    def __init__(self) -> None:
        self._initialize_ids: set[str | int] = set()
        self._early: set[str | int] = set()
        self._initialized = False

    def request_read(self, request: JSONRPCRequest) -> None:
        if request.method == "initialize":
            self._initialize_ids.add(request.id)
        elif (
            not self._initialized
            and request.method not in ALLOWED_BEFORE_INITIALIZE
            and not _has_modern_envelope(request.params)
        ):
            self._early.add(request.id)

    def answer_for(self, message: JSONRPCResponse | JSONRPCError, answered: str | int) -> bytes | None:
        """The answer to send instead of `message` (which answers request `answered`), if any."""
        refused_early = (
            isinstance(message, JSONRPCError)
            and message.error.code == INVALID_PARAMS
            and answered in self._early
            and not self._initialized
        )
        if isinstance(message, JSONRPCResponse) and answered in self._initialize_ids:
            self._initialized = True
        self._early.discard(answered)
        self._initialize_ids.discard(answered)
        return error_line(answered, INVALID_REQUEST, NOT_INITIALIZED) if refused_early else None


def _has_modern_envelope(params: object) -> bool:
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta
