"""The HTTP baseline: the smallest honest `MCPServer` that PATCHes a Nexor lead, served over the
SDK's Streamable HTTP transport, stateless with JSON answers, multi-tenant like nexor-mcp's
hosted mode (each request's `X-API-Key` is the key it PATCHes with).

    python bench/baseline_http.py --base-url URL --port N

One tool, one shared httpx2 client with its default pool, no validation beyond what the SDK does.
uvicorn listens on a socket made with IPPROTO_TCP, as nexor-mcp's does, so both answer with
TCP_NODELAY (with proto 0 asyncio skips it, and keep-alive requests wait ~40 ms for a delayed ACK).
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import httpx2
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build(base_url: str) -> Starlette:
    http = httpx2.AsyncClient(base_url=base_url + "/")

    # WARNING: the SDK and httpx2 would otherwise log a line per call at INFO (a handicap for the baseline)
    mcp: MCPServer[Any] = MCPServer("baseline", log_level="WARNING")

    @mcp.tool()
    async def update_lead(
        lead_id: str, ctx: Context, first_name: str | None = None, last_name: str | None = None,
        email: str | None = None, phone: str | None = None, company: str | None = None, title: str | None = None,
        source: str | None = None, campaign_id: str | None = None, metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Update fields of a Nexor lead."""
        fields = dict(first_name=first_name, last_name=last_name, email=email, phone=phone, company=company,
                      title=title, source=source, campaign_id=campaign_id, metadata=metadata)
        body = {name: value for name, value in fields.items() if value is not None}
        request: Request | None = ctx.request_context.request
        key = request.headers.get("x-api-key", "") if request is not None else ""
        response = await http.patch(f"leads/{lead_id}", json=body, headers={"X-API-Key": key})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    app = mcp.streamable_http_app(json_response=True, stateless_http=True)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app.router.routes.insert(0, Route("/healthz", healthz, methods=["GET"]))
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    config = uvicorn.Config(build(args.base_url), lifespan="on", log_config=None, access_log=False,
                            timeout_keep_alive=60, backlog=2048)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
