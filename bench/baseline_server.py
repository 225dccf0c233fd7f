"""The baseline: the smallest honest MCPServer that PATCHes a Nexor lead with httpx2.

One tool, one shared client, no validation beyond what the SDK does. Run by the benchmark with
the same environment (NEXOR_BASE_URL, NEXOR_API_KEY) as nexor-mcp.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp.server.mcpserver import Context, MCPServer


@asynccontextmanager
async def lifespan(server: MCPServer) -> AsyncIterator[httpx2.AsyncClient]:
    base_url = os.environ["NEXOR_BASE_URL"] + "/"
    async with httpx2.AsyncClient(base_url=base_url, headers={"X-API-Key": os.environ["NEXOR_API_KEY"]}) as http:
        yield http


mcp = MCPServer("baseline", lifespan=lifespan)


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
    http: httpx2.AsyncClient = ctx.request_context.lifespan_context  # type: ignore[assignment]
    response = await http.patch(f"leads/{lead_id}", json=body)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


if __name__ == "__main__":
    mcp.run()
