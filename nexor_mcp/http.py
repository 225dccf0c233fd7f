"""Hosted mode: the same MCP server over stateless Streamable HTTP, for many Nexor accounts.

Stateless with JSON answers: no session lives in a process, so any replica behind any load
balancer can answer any request, and scaling out is adding replicas. Two ways to run it:

- **Multi-tenant** (no key configured): each request brings its own Nexor key (`X-API-Key`, or
  `Authorization: Bearer nxr_live_…`). It serves that request's calls only; it is never stored or
  logged, and only the connection pool is shared between requests, never a credential.
- **Single-tenant** (`NEXOR_API_KEY` configured): clients present an access token from
  `NEXOR_MCP_ACCESS_TOKENS` instead (`Authorization: Bearer …`), compared in constant time.

The operator's tool selection is an upper bound; a request's `X-Nexor-Tools` header can only
narrow it.

Nothing a client sends can make a process hold more than a fixed amount: every method but POST gets
405 at once (no never-ending GET stream), a narrowed tool list is a new short list of the same
shared `Tool` objects (no cache per subset), a request must arrive whole within a read timeout, and
beyond a number of connections uvicorn answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hmac
import logging
import math
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import h11
from mcp.server import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ListToolsResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config as UvicornConfig
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from nexor_mcp import metrics
from nexor_mcp.client import NexorClient
from nexor_mcp.config import KEY_PREFIX, Secret, Settings
from nexor_mcp.retry import CallDeadline
from nexor_mcp.server import CallScope, build_server, fixed_scope, not_enabled_text
from nexor_mcp.tools import ToolSpec, UnknownToolName, select_tools

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MAX_BODY_BYTES = 1024 * 1024
TOOLS_HEADER = "x-nexor-tools"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ALLOWED_METHODS = "POST"
DEFAULT_READ_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_CONNECTIONS = 1000


@dataclass(frozen=True)
class HostedSettings:
    """What only hosted mode needs, on top of `Settings`."""

    host: str = "127.0.0.1"
    port: int = 8000
    access_tokens: tuple[Secret, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
    """A request must arrive whole (request line, headers, body) this soon after its first byte."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Connections one process serves at once; a request beyond them gets 503."""


class RefusedRequest(Exception):
    """A request refused before any tool runs: an HTTP status and a JSON-RPC error message."""

    def __init__(self, status: int, message: str, *, challenge: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge
        """The `WWW-Authenticate` value of a 401."""


# Bearer only where a bearer token is what is missing (single-tenant access tokens). A Bearer
# challenge tells MCP clients to try OAuth (discovery, dynamic client registration), which this
# server does not offer; a key per request is an API key, so its 401 names that scheme instead.
ACCESS_TOKEN_CHALLENGE = 'Bearer realm="nexor-mcp"'
API_KEY_CHALLENGE = 'ApiKey realm="nexor-mcp", header="X-API-Key"'
KEY_HELP = (
    f"Nexor API keys start with {KEY_PREFIX} and are one word of printable ASCII: copy yours from the "
    "Nexor dashboard (profile → Integrations) into the X-API-Key header"
)


def bearer_token(headers: Any) -> str | None:
    """The token of an `Authorization: Bearer …` header; None if there is none."""
    scheme, _, token = str(headers.get("authorization", "")).partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def request_key(headers: Any) -> str | None:
    """The Nexor key a request carries, from `X-API-Key` or `Authorization: Bearer`; None if absent."""
    return str(headers.get("x-api-key", "")).strip() or bearer_token(headers)


def narrowed(names_header: str | None, base: tuple[ToolSpec[Any], ...]) -> tuple[ToolSpec[Any], ...]:
    """The operator's tools, narrowed by a request's `X-Nexor-Tools` (never widened)."""
    if names_header is None:
        return base
    try:
        asked = {spec.name for spec in select_tools(names_header.split(","))}
    except UnknownToolName as exc:
        raise RefusedRequest(400, f"X-Nexor-Tools: {exc}") from None
    return tuple(spec for spec in base if spec.name in asked)


class HostedScopes:
    """Builds each request's `CallScope` from its headers (checked by `authenticate` before)."""

    def __init__(self, settings: Settings, client: NexorClient) -> None:
        self._settings = settings
        self._client = client
        self._single_tenant = settings.api_key is not None
        self._base = select_tools(settings.tools, read_only=settings.read_only)
        self._fixed = fixed_scope(settings, client)
        # Each Tool is built once, here. A narrowed listing is a new short list of these same
        # objects, made per request and dropped with it: no cache keyed by the header, so however
        # many distinct subsets clients name, nothing grows.
        self._tool_of = {tool.name: tool for tool in self._fixed.listed.tools}

    def __call__(self, ctx: ServerRequestContext[Any]) -> CallScope:
        request: Request | None = ctx.request
        if request is None:
            return self._fixed
        header = request.headers.get(TOOLS_HEADER)
        tools = narrowed(header, self._base)
        listed = (
            self._fixed.listed if header is None
            else ListToolsResult(tools=[self._tool_of[spec.name] for spec in tools])
        )
        if self._single_tenant:
            client, secrets = self._client, self._fixed.secrets
        else:
            key = request_key(request.headers)
            if key is None:  # authenticate() refuses these first; never call Nexor without a key
                raise RefusedRequest(401, "no Nexor API key", challenge=API_KEY_CHALLENGE)
            client, secrets = self._client.with_key(Secret(key)), (key,)

        def refusal(name: str) -> str:
            if header is not None and name in self._tool_of:
                return (
                    f"{name} is not enabled for this request (its X-Nexor-Tools header leaves it out), "
                    "so nothing was done."
                )
            return not_enabled_text(name, self._settings)

        return CallScope(client, secrets, {spec.name: spec for spec in tools}, listed, refusal)


def authenticate(headers: Any, settings: Settings, hosted: HostedSettings) -> None:
    """Raises `RefusedRequest` unless the request may use this server."""
    if settings.api_key is not None:
        if not hosted.access_tokens:
            return  # loopback only: refused at start otherwise
        presented = bearer_token(headers)
        if presented is None or not any(
            hmac.compare_digest(presented.encode(), token.reveal().encode()) for token in hosted.access_tokens
        ):
            raise RefusedRequest(
                401, "this server needs an access token: send Authorization: Bearer <token>",
                challenge=ACCESS_TOKEN_CHALLENGE,
            )
        return
    key = request_key(headers)
    if key is None:
        raise RefusedRequest(
            401,
            f"no Nexor API key: send your key in the X-API-Key header (or Authorization: Bearer {KEY_PREFIX}…)",
            challenge=API_KEY_CHALLENGE,
        )
    if not looks_like_a_nexor_key(key):
        raise RefusedRequest(
            401, f"the API key in the request does not look like a Nexor API key. {KEY_HELP}",
            challenge=API_KEY_CHALLENGE,
        )


def looks_like_a_nexor_key(key: str) -> bool:
    """The documented shape (nexor-api.md §3): the `nxr_live_` prefix, then one printable ASCII
    word. Anything else cannot work, so it is refused here with what a key looks like, instead of
    reaching Nexor (or being taken for an OAuth token)."""
    return (
        key.startswith(KEY_PREFIX) and len(key) > len(KEY_PREFIX)
        and key.isascii() and key.isprintable() and " " not in key
    )


class _Guard:
    """ASGI middleware in front of /mcp: the method, authentication, the narrowing header and the
    whole body, each refusal answered with a JSON-RPC error body before the SDK sees the request."""

    def __init__(self, app: ASGIApp, settings: Settings, hosted: HostedSettings) -> None:
        self._app = app
        self._settings = settings
        self._hosted = hosted
        self._base = select_tools(settings.tools, read_only=settings.read_only)

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
            authenticate(headers, self._settings, self._hosted)
            narrowed(headers.get(TOOLS_HEADER), self._base)
            body = await _whole_body(headers, receive)
        except RefusedRequest as refused:
            logger.info("request refused: HTTP %d", refused.status)
            await _refuse(refused, scope, receive, send)
            return
        if body is None:
            logger.debug("a client went away before its request arrived whole; nothing was done")
            return
        await self._app(scope, _replaying(body, receive), send)


async def _whole_body(headers: Any, receive: Receive) -> bytes | None:
    """The request's body, read to its end before the SDK sees the request, so that a client that
    stops halfway (until the read timeout closes it) or goes away never reaches the SDK, which
    would log each one as an error. None if the client went away; 413 beyond `MAX_BODY_BYTES`."""
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


def security_settings(hosted: HostedSettings) -> TransportSecuritySettings:
    """DNS-rebinding protection: on for loopback binds (Host and Origin must be local), and on an
    operator-given allow-list elsewhere; off only for a public bind with no list (a warning says so)."""
    hosts = list(hosted.allowed_hosts)
    origins = list(hosted.allowed_origins)
    if not hosts and hosted.host in LOOPBACK_HOSTS:
        hosts = [f"{name}:*" for name in ("127.0.0.1", "localhost", "[::1]")] + ["127.0.0.1", "localhost"]
        origins = origins or [f"http://{name}:*" for name in ("127.0.0.1", "localhost", "[::1]")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=bool(hosts), allowed_hosts=hosts, allowed_origins=origins
    )


def create_app(settings: Settings, hosted: HostedSettings, client: NexorClient | None = None) -> Starlette:
    """The ASGI app: MCP at /mcp (stateless, JSON answers), /healthz."""
    client = client or NexorClient(settings)
    recorder = metrics.enable_prometheus()
    server = build_server(settings, client, HostedScopes(settings, client))
    manager = StreamableHTTPSessionManager(
        app=server,
        json_response=True,
        stateless=True,
        security_settings=security_settings(hosted),
        max_request_body_size=MAX_BODY_BYTES,
    )

    async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await manager.handle_request(scope, receive, send)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = recorder.exposition()
        return Response(body, media_type=content_type)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The ~86,000 objects the SDK, pydantic and starlette leave at import never die: freeze
        # them out of the collector, and collect young objects less often. Measured by
        # `python -m bench --http`: p99 at 16 concurrent calls from ~90 ms to ~37 ms, and
        # 0.1-0.2 ms less CPU per call.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        async with manager.run():
            try:
                yield
            finally:
                await client.aclose()

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route(MCP_PATH, _Guard(mcp_endpoint, settings, hosted)),  # every method: the guard answers 405
        ],
        lifespan=lifespan,
    )


def check_start(settings: Settings, hosted: HostedSettings) -> None:
    """Refuse configurations that would expose an account: a configured key, served beyond this
    machine, with no access token to guard it."""
    if settings.api_key is not None and not hosted.access_tokens and hosted.host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"NEXOR_API_KEY is set and the server would listen on {hosted.host}, but no access token is "
            "configured: anyone who can reach it would act on your account. Set NEXOR_MCP_ACCESS_TOKENS, "
            "or listen on 127.0.0.1"
        )


def tokens_from(value: str | None) -> tuple[Secret, ...]:
    return tuple(Secret(token.strip()) for token in (value or "").split(",") if token.strip())


def names_from(value: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (value or "").split(",") if name.strip())


HOSTED_ENV = {
    "host": "NEXOR_MCP_HOST",
    "port": "NEXOR_MCP_PORT",
    "access_tokens": "NEXOR_MCP_ACCESS_TOKENS",
    "allowed_hosts": "NEXOR_MCP_ALLOWED_HOSTS",
    "allowed_origins": "NEXOR_MCP_ALLOWED_ORIGINS",
    "read_timeout_seconds": "NEXOR_MCP_READ_TIMEOUT_SECONDS",
    "max_connections": "NEXOR_MCP_MAX_CONNECTIONS",
}
HOSTED_FLAGS = {
    "port": "--port",
    "read_timeout_seconds": "--read-timeout-seconds",
    "max_connections": "--max-connections",
}
MAX_READ_TIMEOUT_SECONDS = 3600.0
MAX_CONNECTIONS_LIMIT = 1_000_000


def hosted_settings(environ: Any = None, **flags: Any) -> HostedSettings:
    """Hosted-mode settings: flags over environment over defaults. Raises ValueError naming the
    flag or variable of a value out of range."""
    environ = os.environ if environ is None else environ

    def pick(name: str) -> Any:
        value = flags.get(name)
        return value if value is not None else environ.get(HOSTED_ENV[name]) or None

    def number(name: str, kind: type[int] | type[float], low: float, high: float, expected: str) -> Any:
        text = pick(name)
        if text is None:
            return None
        try:
            value = kind(str(text).strip())
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not low <= value <= high:
            source = HOSTED_FLAGS[name] if flags.get(name) is not None else HOSTED_ENV[name]
            raise ValueError(f"{source} must be {expected}, got {str(text)!r}")
        return value

    port = number("port", int, 0, 65535, "a whole number from 0 to 65535")
    read_timeout = number("read_timeout_seconds", float, 0.1, MAX_READ_TIMEOUT_SECONDS,
                          f"a number of seconds from 0.1 to {MAX_READ_TIMEOUT_SECONDS:g}")
    max_connections = number("max_connections", int, 1, MAX_CONNECTIONS_LIMIT,
                             f"a whole number from 1 to {MAX_CONNECTIONS_LIMIT}")
    return HostedSettings(
        host=pick("host") or "127.0.0.1",
        port=port if port is not None else 8000,
        access_tokens=tokens_from(pick("access_tokens")),
        allowed_hosts=names_from(pick("allowed_hosts")),
        allowed_origins=names_from(pick("allowed_origins")),
        read_timeout_seconds=read_timeout if read_timeout is not None else DEFAULT_READ_TIMEOUT_SECONDS,
        max_connections=max_connections if max_connections is not None else DEFAULT_MAX_CONNECTIONS,
    )


def hosted_environment(hosted: HostedSettings) -> dict[str, str]:
    """The variables that give a `--workers` process exactly these settings (the tokens and lists
    are read from the environment already, or were never set)."""
    return {
        HOSTED_ENV["host"]: hosted.host,
        HOSTED_ENV["port"]: str(hosted.port),
        HOSTED_ENV["read_timeout_seconds"]: repr(hosted.read_timeout_seconds),
        HOSTED_ENV["max_connections"]: str(hosted.max_connections),
    }


def app_from_environment() -> Starlette:
    """The app factory each `--workers` process calls: settings come from the environment the
    command line exported, so every worker serves exactly the same configuration."""
    from nexor_mcp.config import load_settings

    return create_app(load_settings(), hosted_settings())


def _log_serving(settings: Settings, host: str, port: int) -> None:
    mode = "single-tenant (access tokens)" if settings.api_key else "multi-tenant (a Nexor key per request)"
    logger.info("serving MCP at http://%s:%d%s, %s", host, port, MCP_PATH, mode)


class ReadTimeoutH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the timeout it lacks: uvicorn only times out the idle time
    after a response, so a client that connects and says nothing, or sends half a request line,
    headers or body and then stops, would hold its connection forever (slowloris). Here a request
    must arrive whole within `read_timeout` seconds of its first byte (of the connection, for the
    first request), or the connection is closed. Once the request is in, the timer stops: how long
    the tool call takes is not the client's doing."""

    def __init__(
        self,
        config: UvicornConfig,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        read_timeout: float = DEFAULT_READ_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._read_timeout = read_timeout
        self._read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_request()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_read_timer()
        super().connection_lost(exc)

    def _watch_request(self) -> None:
        """Run the timer while a request is partly received, from its first byte to its last."""
        receiving = self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing()
        if not receiving:
            self._stop_read_timer()
        elif self._read_timer is None:
            self._read_timer = self.loop.call_later(self._read_timeout, self._read_timed_out)

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        logger.debug("closed a connection whose request did not arrive whole within %g s", self._read_timeout)
        self.transport.close()


def uvicorn_options(settings: Settings, hosted: HostedSettings) -> dict[str, Any]:
    """uvicorn's settings for hosted mode, the same for one process and for `--workers`. On
    SIGTERM, calls in flight get their whole deadline (every request of a call starts within the
    retry budget and has one timeout), so a write already on its way is finished and answered."""
    # uvicorn calls the protocol "class" with (config, server_state, app_state): a partial carries
    # the timeout, and pickles (the class by name) into --workers processes.
    protocol = functools.partial(ReadTimeoutH11Protocol, read_timeout=hosted.read_timeout_seconds)
    return {
        "http": cast("type[asyncio.Protocol]", protocol),
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": CallDeadline.drain_seconds(settings),
        "timeout_keep_alive": 60,
        # uvicorn answers 503 once its count of open connections (the new request's own included)
        # or of requests in flight reaches the limit: + 1 makes `max_connections` the number served.
        "limit_concurrency": hosted.max_connections + 1,
    }


def serve(settings: Settings, hosted: HostedSettings, workers: int = 1) -> None:
    """Run uvicorn until SIGTERM/SIGINT; in-flight requests get their call deadline to finish."""
    import uvicorn

    common = uvicorn_options(settings, hosted)
    if workers > 1:
        _log_serving(settings, hosted.host, hosted.port)
        uvicorn.run("nexor_mcp.http:app_from_environment", factory=True, host=hosted.host, port=hosted.port,
                    workers=workers, **common)
        return
    # A socket made with IPPROTO_TCP: with proto 0 asyncio skips TCP_NODELAY on accepted
    # connections, and every keep-alive request then waits ~40 ms for a delayed ACK.
    family = socket.AF_INET6 if ":" in hosted.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((hosted.host, hosted.port))
    sock.listen(2048)
    _log_serving(settings, hosted.host, sock.getsockname()[1])
    config = uvicorn.Config(create_app(settings, hosted), backlog=2048, **common)
    uvicorn.Server(config).run(sockets=[sock])
