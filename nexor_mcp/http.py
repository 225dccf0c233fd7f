"""Hosted mode: the same MCP server over stateless Streamable HTTP, for many Nexor accounts.

Stateless with JSON answers: no session lives in a process, so any replica behind any load
balancer can answer any request, and scaling out is adding replicas. Who may call, with which key
and tools, is decided once per request in front of /mcp (`nexor_mcp.hosted.auth`, applied by
`nexor_mcp.hosted.gate`); each call's scope is built from that decision. A request's key serves
that request's calls only; it is never stored or logged, and only the connection pool is shared
between requests, never a credential.

Nothing a client sends can make a process hold more than a fixed amount: every method but POST gets
405 at once (no never-ending GET stream), a narrowed tool list is a new short list of the same
shared `Tool` objects (no cache per subset), a request must arrive whole within a read timeout, and
beyond a number of connections uvicorn answers 503.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from mcp.server import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ListToolsResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from nexor_mcp import metrics
from nexor_mcp.approvals.routes import approval_routes
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Settings
from nexor_mcp.hosted.auth import TOOLS_HEADER, Authenticator, RefusedRequest
from nexor_mcp.hosted.gate import MAX_BODY_BYTES, MCP_PATH, RequestGate, admission_of
from nexor_mcp.hosted.serving import uvicorn_options
from nexor_mcp.hosted.settings import (
    LOOPBACK_HOSTS,
    HostedSettings,
    check_start,
    hosted_environment,
    hosted_settings,
)
from nexor_mcp.listening import BACKLOG, listening_socket
from nexor_mcp.safety import WriteSafety
from nexor_mcp.server import CallScope, build_server, fixed_scope, not_enabled_text

__all__ = [
    "MCP_PATH",
    "TOOLS_HEADER",
    "HostedScopes",
    "HostedSettings",
    "RefusedRequest",
    "app_from_environment",
    "check_start",
    "create_app",
    "hosted_environment",
    "hosted_settings",
    "security_settings",
    "serve",
    "uvicorn_options",
]

logger = logging.getLogger(__name__)


class HostedScopes:
    """Builds each request's `CallScope` from its `Admission` (stored by `RequestGate`): the key and
    the tools header are read once per request, there. `authenticator` is the gate's (`create_app`
    passes it); without one, hosted defaults (no access tokens) apply."""

    def __init__(self, settings: Settings, client: NexorClient, authenticator: Authenticator | None = None) -> None:
        self._settings = settings
        self._client = client
        self._authenticator = authenticator or Authenticator(settings, HostedSettings())
        self._fixed = fixed_scope(settings, client)
        # Each Tool is built once, here. A narrowed listing is a new short list of these same
        # objects, made per request and dropped with it: no cache keyed by the header, so however
        # many distinct subsets clients name, nothing grows.
        self._tool_of = {tool.name: tool for tool in self._fixed.listed.tools}

    def __call__(self, ctx: ServerRequestContext[Any]) -> CallScope:
        request: Request | None = ctx.request
        if request is None:
            return self._fixed
        # A request that did not come through the gate (an app mounted without it) is admitted
        # here, by the same rules: a scope is never built for a request nobody admitted.
        admission = admission_of(request) or self._authenticator.admit(request.headers)
        listed = (
            ListToolsResult(tools=[self._tool_of[spec.name] for spec in admission.tools])
            if admission.narrowed else self._fixed.listed
        )
        if admission.key is None:
            client, secrets = self._client, self._fixed.secrets
        else:
            client, secrets = self._client.with_key(admission.key), (admission.key.reveal(),)

        def refusal(name: str) -> str:
            if admission.narrowed and name in self._tool_of:
                return (
                    f"{name} is not enabled for this request (its X-Nexor-Tools header leaves it out), "
                    "so nothing was done."
                )
            return not_enabled_text(name, self._settings)

        return CallScope(client, secrets, {spec.name: spec for spec in admission.tools}, listed, refusal)


def security_settings(hosted: HostedSettings) -> TransportSecuritySettings:
    """DNS-rebinding protection: on for loopback binds (Host and Origin must be local), and on an
    operator-given allow-list elsewhere; off only for a public bind with no list (a warning says so)."""
    hosts = list(hosted.allowed_hosts)
    origins = list(hosted.allowed_origins)
    if not hosts and hosted.host in LOOPBACK_HOSTS:
        names = [f"[{host}]" if ":" in host else host for host in LOOPBACK_HOSTS]  # Host and Origin spelling
        hosts = [f"{name}:*" for name in names] + [name for name in names if not name.startswith("[")]
        origins = origins or [f"http://{name}:*" for name in names]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=bool(hosts), allowed_hosts=hosts, allowed_origins=origins
    )


def page_hosts(hosted: HostedSettings) -> list[str] | None:
    """The Host values the approval pages accept: the same list as /mcp (None: no check, as there)."""
    security = security_settings(hosted)
    return list(security.allowed_hosts) if security.enable_dns_rebinding_protection else None


def create_app(settings: Settings, hosted: HostedSettings, client: NexorClient | None = None) -> Starlette:
    """The ASGI app: MCP at /mcp (stateless, JSON answers), /healthz, /metrics."""
    client = client or NexorClient(settings)
    recorder = metrics.enable_prometheus()
    authenticator = Authenticator(settings, hosted)

    async def page_base(ctx: ServerRequestContext[Any]) -> str | None:
        """The approval page is served by this app: at NEXOR_MCP_PUBLIC_URL, else at the origin
        the call came to."""
        if hosted.public_url:
            return hosted.public_url
        request = ctx.request
        host = request.headers.get("host") if isinstance(request, Request) else None
        return f"{request.url.scheme}://{host}" if isinstance(request, Request) and host else None

    safety = WriteSafety.from_settings(settings, page_base)
    server = build_server(settings, client, HostedScopes(settings, client, authenticator), safety=safety)
    manager = StreamableHTTPSessionManager(
        app=server,
        json_response=True,
        stateless=True,
        security_settings=security_settings(hosted),
        # The SDK checks the size again whatever it is given; the gate has read the body whole and
        # answered any over this first, so the SDK's check never refuses (nexor_mcp/hosted/gate.py).
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
            Route(MCP_PATH, RequestGate(mcp_endpoint, authenticator)),  # every method: the gate answers 405
            *approval_routes(safety.approvals, safety.sealer.page_key, allowed_hosts=page_hosts(hosted),
                             trusted_origins=(hosted.public_url,) if hosted.public_url else ()),
        ],
        lifespan=lifespan,
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
    """Run uvicorn until SIGTERM/SIGINT; in-flight requests get their call deadline to finish."""
    import uvicorn

    common = uvicorn_options(settings, hosted)
    if workers > 1:
        _log_serving(settings, hosted.host, hosted.port)
        uvicorn.run("nexor_mcp.http:app_from_environment", factory=True, host=hosted.host, port=hosted.port,
                    workers=workers, backlog=BACKLOG, **common)
        return
    sock = listening_socket(hosted.host, hosted.port)
    _log_serving(settings, hosted.host, sock.getsockname()[1])
    config = uvicorn.Config(create_app(settings, hosted), backlog=BACKLOG, **common)
    uvicorn.Server(config).run(sockets=[sock])
