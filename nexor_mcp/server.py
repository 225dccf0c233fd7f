"""The thin MCP layer: lists the tools, validates arguments, calls `NexorClient`, shapes results.

Built on the SDK's low-level `Server`, which hands us the raw `arguments` dict: that is what lets
an omitted field, an explicit `null` and the text `"null"` stay three different things.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from mcp.server import Server, ServerRequestContext
from mcp.types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)

from nexor_mcp import __version__
from nexor_mcp.client import NexorClient, OnRetry
from nexor_mcp.config import Settings
from nexor_mcp.errors import NexorError
from nexor_mcp.masking import redact
from nexor_mcp.tools import TOOLS
from nexor_mcp.validation import InvalidArguments, parse_get_arguments, parse_update_arguments

logger = logging.getLogger(__name__)

ToolHandler = Callable[[Mapping[str, Any] | None, OnRetry | None], Awaitable[dict[str, Any]]]


def compact_json(value: Any) -> str:
    """The text content: compact JSON, since it is what most models read and tokens cost money."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def error_result(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


class LeadTools:
    """The tool implementations, independent of the MCP plumbing."""

    def __init__(self, client: NexorClient) -> None:
        self.client = client

    async def get_lead(self, arguments: Mapping[str, Any] | None, on_retry: OnRetry | None) -> dict[str, Any]:
        lead_id = parse_get_arguments(arguments)
        return await self.client.get_lead(lead_id, on_retry)

    async def update_lead(self, arguments: Mapping[str, Any] | None, on_retry: OnRetry | None) -> dict[str, Any]:
        update = parse_update_arguments(arguments)
        return await self.client.update_lead(update.lead_id, update.body, on_retry)


def build_server(settings: Settings, client: NexorClient) -> Server[Any]:
    """An MCP server exposing `get_lead` and `update_lead` over `client`."""
    tools = LeadTools(client)
    handlers: dict[str, ToolHandler] = {"get_lead": tools.get_lead, "update_lead": tools.update_lead}
    secrets = (settings.api_key.reveal(),) if settings.api_key else ()
    listed = ListToolsResult(tools=list(TOOLS))

    async def list_tools(ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None) -> ListToolsResult:
        return listed

    async def call_tool(ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> CallToolResult:
        handler = handlers.get(params.name)
        if handler is None:
            return error_result(f"Unknown tool {params.name!r}. This server has: {', '.join(handlers)}.")

        async def report_retry(attempt: int, delay: float, reason: str) -> None:
            # Sent only when the caller asked for progress (a no-op otherwise).
            await ctx.session.report_progress(
                attempt, None, f"attempt {attempt} failed ({reason}); retrying in {delay:.1f} s"
            )

        started = time.perf_counter()
        try:
            structured = await handler(params.arguments, report_retry)
        except anyio.get_cancelled_exc_class():
            logger.info("%s cancelled by the client", params.name)
            raise
        except InvalidArguments as exc:
            logger.info("%s rejected: %s", params.name, ", ".join(p.argument for p in exc.problems))
            return error_result(redact(str(exc), secrets))
        except NexorError as exc:
            logger.info("%s failed: %s", params.name, type(exc).__name__)
            return error_result(redact(f"{params.name} failed: {exc}", secrets))
        except Exception:
            logger.exception("%s crashed", params.name)
            return error_result(
                f"{params.name} failed because of an internal error in nexor-mcp (details are in the "
                "server log). The lead may or may not have been changed; read it with get_lead."
            )
        logger.info("%s ok in %.1f ms", params.name, (time.perf_counter() - started) * 1000)
        # The model reads the text: the bare lead when that is all there is, else the whole object.
        shown = structured["lead"] if len(structured) == 1 else structured
        return CallToolResult(
            content=[TextContent(type="text", text=compact_json(shown))],
            structured_content=structured,
        )

    server: Server[Any] = Server(
        "nexor-mcp",
        version=__version__,
        title="Nexor leads",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    # The SDK installs an OpenTelemetry span middleware by default; with no exporter it only costs
    # time on every message, so it goes.
    server.middleware.clear()
    return server


async def serve_stdio(settings: Settings, client: NexorClient) -> None:
    """Serve MCP over stdin/stdout until the client closes stdin."""
    from nexor_mcp.stdio import serve_streams

    server = build_server(settings, client)
    try:
        async with serve_streams() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await client.aclose()
