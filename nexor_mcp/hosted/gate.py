"""The ASGI middleware in front of /mcp: the method, the request's admission and its whole body,
each refusal answered with a JSON-RPC error body before the SDK sees the request."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nexor_mcp.hosted.auth import Admission, Authenticator, RefusedRequest

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MAX_BODY_BYTES = 1024 * 1024
ALLOWED_METHODS = "POST"
ADMISSION = "nexor_mcp.admission"
"""The key of a request's `Admission` in its ASGI scope's `state`."""


def admission_of(request: Request) -> Admission | None:
    """The admission `RequestGate` stored for this request; None if it did not pass the gate."""
    state = request.scope.get("state")
    admission = state.get(ADMISSION) if isinstance(state, dict) else None
    return admission if isinstance(admission, Admission) else None


class RequestGate:
    """Lets a request through to the SDK only whole, by POST, and admitted; stores its `Admission`
    in the scope's state, so that nothing after it reads the key or the tools header again."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self._app = app
        self._authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if scope["method"] != "POST":
            # Stateless: no GET stream (the SDK's would stay open forever, pinged every 15 s) and no
            # session to DELETE. Answered before anything else, key or not: there is nothing to guard.
            await _method_not_allowed(scope, receive, send)
            return
        headers = Request(scope).headers
        try:
            admission = self._authenticator.admit(headers)
            body = await _whole_body(headers, receive)
        except RefusedRequest as refused:
            logger.info("request refused: HTTP %d", refused.status)
            await _refuse(refused, scope, receive, send)
            return
        if body is None:
            logger.debug("a client went away before its request arrived whole; nothing was done")
            return
        scope.setdefault("state", {})[ADMISSION] = admission
        await self._app(scope, _replaying(body, receive), send)


async def _whole_body(headers: Any, receive: Receive) -> bytes | None:
    """The request's body, read to its end before the SDK sees the request, so that a client that
    stops halfway (until the read timeout closes it) or goes away never reaches the SDK, which
    would log each one as an error. None if the client went away; 413 beyond `MAX_BODY_BYTES`.

    This is the one size check that answers: the SDK's own limit (the same number) only ever sees
    a body already read whole and within it."""
    too_large = RefusedRequest(413, f"the request body is over {MAX_BODY_BYTES} bytes, the most this server takes")
    declared = str(headers.get("content-length", ""))
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            raise too_large
        if not message.get("more_body", False):
            return bytes(body)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over the body already read, then waits for the disconnect as before."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _refuse(refused: RefusedRequest, scope: Scope, receive: Receive, send: Send) -> None:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32001 if refused.status == 401 else -32600,
                                                    "message": refused.message}}
    headers = {"WWW-Authenticate": refused.challenge} if refused.challenge else None
    await JSONResponse(body, status_code=refused.status, headers=headers)(scope, receive, send)


async def _method_not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    message = (
        f"Method Not Allowed: {scope['method']} {MCP_PATH}. This server is stateless: send each JSON-RPC "
        f"message as a POST to {MCP_PATH}; there is no GET stream and no session to DELETE"
    )
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}
    await JSONResponse(body, status_code=405, headers={"Allow": ALLOWED_METHODS})(scope, receive, send)
