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
"""

from __future__ import annotations

import contextlib
import gc
import hmac
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from mcp.server import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ListToolsResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from nexor_mcp import metrics
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Secret, Settings
from nexor_mcp.server import CallScope, build_server, fixed_scope, not_enabled_text
from nexor_mcp.tools import ToolSpec, UnknownToolName, select_tools

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MAX_BODY_BYTES = 1024 * 1024
TOOLS_HEADER = "x-nexor-tools"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class HostedSettings:
    """What only hosted mode needs, on top of `Settings`."""

    host: str = "127.0.0.1"
    port: int = 8000
    access_tokens: tuple[Secret, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    shutdown_seconds: float = 10.0


class RefusedRequest(Exception):
    """A request refused before any tool runs: an HTTP status and a JSON-RPC error message."""

    def __init__(self, status: int, message: str, *, challenge: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge


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
        self._listed: dict[tuple[str, ...], ListToolsResult] = {}

    def __call__(self, ctx: ServerRequestContext[Any]) -> CallScope:
        request: Request | None = ctx.request
        if request is None:
            return self._fixed
        tools = narrowed(request.headers.get(TOOLS_HEADER), self._base)
        names = tuple(spec.name for spec in tools)
        listed = self._listed.get(names)
        if listed is None:
            listed = self._listed[names] = ListToolsResult(tools=[spec.tool() for spec in tools])
        if self._single_tenant:
            client, secrets = self._client, self._fixed.secrets
        else:
            key = request_key(request.headers)
            if key is None:  # authenticate() refuses these first; never call Nexor without a key
                raise RefusedRequest(401, "no Nexor API key", challenge=True)
            client, secrets = self._client.with_key(Secret(key)), (key,)
        header = request.headers.get(TOOLS_HEADER)

        def refusal(name: str) -> str:
            if header is not None and name in {spec.name for spec in self._base}:
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
                401, "this server needs an access token: send Authorization: Bearer <token>", challenge=True
            )
        return
    key = request_key(headers)
    if key is None:
        raise RefusedRequest(
            401,
            "no Nexor API key: send your key in the X-API-Key header (or Authorization: Bearer nxr_live_…)",
            challenge=True,
        )
    if not (key.isascii() and key.isprintable()) or " " in key:
        raise RefusedRequest(401, "the Nexor API key in the request is malformed", challenge=True)


class _Guard:
    """ASGI middleware in front of /mcp: authentication and the narrowing header, answered with a
    JSON-RPC error body before the SDK sees the request."""

    def __init__(self, app: ASGIApp, settings: Settings, hosted: HostedSettings) -> None:
        self._app = app
        self._settings = settings
        self._hosted = hosted
        self._base = select_tools(settings.tools, read_only=settings.read_only)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Request(scope).headers
            try:
                authenticate(headers, self._settings, self._hosted)
                narrowed(headers.get(TOOLS_HEADER), self._base)
            except RefusedRequest as refused:
                logger.info("request refused: HTTP %d", refused.status)
                await _refuse(refused, scope, receive, send)
                return
        await self._app(scope, receive, send)


async def _refuse(refused: RefusedRequest, scope: Scope, receive: Receive, send: Send) -> None:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32001 if refused.status == 401 else -32600,
                                                    "message": refused.message}}
    headers = {"WWW-Authenticate": 'Bearer realm="nexor-mcp"'} if refused.challenge else None
    await JSONResponse(body, status_code=refused.status, headers=headers)(scope, receive, send)


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
            Route(MCP_PATH, _Guard(mcp_endpoint, settings, hosted), methods=["GET", "POST", "DELETE"]),
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
}


def hosted_settings(environ: Any = None, **flags: Any) -> HostedSettings:
    """Hosted-mode settings: flags over environment over defaults."""
    environ = os.environ if environ is None else environ

    def pick(name: str) -> Any:
        value = flags.get(name)
        return value if value is not None else environ.get(HOSTED_ENV[name]) or None

    port_text = pick("port")
    return HostedSettings(
        host=pick("host") or "127.0.0.1",
        port=int(port_text) if port_text is not None else 8000,
        access_tokens=tokens_from(pick("access_tokens")),
        allowed_hosts=names_from(pick("allowed_hosts")),
        allowed_origins=names_from(pick("allowed_origins")),
    )


def app_from_environment() -> Starlette:
    """The app factory each `--workers` process calls: settings come from the environment the
    command line exported, so every worker serves exactly the same configuration."""
    from nexor_mcp.config import load_settings

    return create_app(load_settings(), hosted_settings())


def _log_serving(settings: Settings, host: str, port: int) -> None:
    mode = "single-tenant (access tokens)" if settings.api_key else "multi-tenant (a Nexor key per request)"
    logger.info("serving MCP at http://%s:%d%s, %s", host, port, MCP_PATH, mode)


def serve(settings: Settings, hosted: HostedSettings, workers: int = 1) -> None:
    """Run uvicorn until SIGTERM/SIGINT; in-flight requests get `shutdown_seconds` to finish."""
    import uvicorn

    common: dict[str, Any] = {
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": hosted.shutdown_seconds,
        "timeout_keep_alive": 60,
    }
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
