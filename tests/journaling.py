"""The journal step alone around a client, for tests of the journal: what a write tool's call does
after its checks (nexor_mcp/audit/recording.py), without a tool or an MCP session around it."""

from __future__ import annotations

from nexor_mcp.audit import Journal
from nexor_mcp.audit.recording import journaled
from nexor_mcp.client import NexorClient
from nexor_mcp.json_types import Json
from nexor_mcp.request import Request


class Journaled:
    """`send(endpoints.update_lead(...))` journals a write as tool `tool` with `before`, and sends
    a read straight (reads are never journaled)."""

    def __init__(self, client: NexorClient, journal: Journal, *, tool: str, before: Json | None) -> None:
        self.client, self.journal, self.tool, self.before = client, journal, tool, before

    async def send(self, request: Request) -> Json:
        if not request.writes:
            return await self.client.call(request)
        sent = await journaled(self.journal, self.client, request, lambda: self.client.exchange(request),
                               tool=self.tool, before=self.before)
        return sent.result


