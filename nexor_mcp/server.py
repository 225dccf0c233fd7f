"""The thin MCP layer: lists the enabled tools, runs a call through its declaration, shapes results.

Transport-independent: `build_server` gives one SDK `Server` that stdio (and any other transport)
runs. Built on the SDK's low-level `Server`, which hands us the raw `arguments` dict: that is what
lets an omitted field, an explicit `null` and the text `"null"` stay three different things.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server import Server, ServerRequestContext
from mcp.types import (
    CallToolRequestParams,
    CallToolResult,
    InputRequiredResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)

from nexor_mcp import __version__, metrics
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Settings
from nexor_mcp.confirm import Pending
from nexor_mcp.errors import NexorError
from nexor_mcp.json_types import Json
from nexor_mcp.masking import clean_json, clean_text, may_need_masking, redact
from nexor_mcp.retry import CallDeadline, InputEnd, current_deadline
from nexor_mcp.safety import Reply, WriteSafety, pending_text
from nexor_mcp.tools import TOOLS_BY_NAME, ToolSpec, select_tools
from nexor_mcp.tools.arguments import InvalidArguments, shown_name

if TYPE_CHECKING:
    from nexor_mcp.approvals.local import LocalApprovalServer

logger = logging.getLogger(__name__)


def compact_json(value: Any) -> str:
    """The text content: compact JSON, since it is what most models read and tokens cost money.

    `allow_nan=False`: a NaN would be written as bare `NaN`, which is not JSON.
    """
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def success_result(structured: dict[str, Any], secrets: tuple[str, ...]) -> CallToolResult:
    """The result of a call that worked: every string cleaned and masked, then the text derived
    from exactly that, and proven encodable here, inside the call, rather than in the transport
    where a failure would end the session."""
    bare = list(structured) == ["lead"]  # the text is then the bare lead, as nothing else is there
    text = compact_json(structured["lead"] if bare else structured)
    if may_need_masking(text, secrets):  # else nothing to clean: skip the walk (large metadata)
        structured = clean_json(structured, secrets)
        text = compact_json(structured["lead"] if bare else structured)
    if structured.get("accepted") is True and isinstance(structured.get("message"), str):
        text = structured["message"]  # an accepted write whose answer was unreadable: say it in words
    text.encode("utf-8")
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def reply_result(reply: Reply, secrets: tuple[str, ...]) -> CallToolResult:
    """A dry run, a conflict, a refusal or a question: its own text, everything masked."""
    structured = clean_json(reply.structured, secrets)
    text = redact(clean_text(reply.text), secrets)
    text.encode("utf-8")
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=structured, is_error=reply.is_error
    )


UNANSWERABLE = (
    "Not sent: the client closed its input (or the server is shutting down) while the user was being asked "
    "to confirm, so no answer can arrive anymore. Nothing was sent; call again once the user can answer."
)


def error_result(text: str, secrets: tuple[str, ...] = ()) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=redact(clean_text(text), secrets))], is_error=True)


def internal_error_text(spec: ToolSpec[Any]) -> str:
    outcome = (
        "Nothing was changed (this tool only reads); try again."
        if spec.read_only
        else "It may or may not have taken effect; check with a read tool before repeating it."
    )
    return f"{spec.name} failed because of an internal error in nexor-mcp (details are in the server log). {outcome}"


def not_enabled_text(name: str, settings: Settings) -> str:
    spec = TOOLS_BY_NAME[name]
    if settings.read_only:
        how = "the server runs read-only (NEXOR_READ_ONLY / --read-only); only the user can change that"
    else:
        how = (
            f"it is in the {spec.group.value} group, which is not enabled; the user can add "
            f"{spec.group.value!r} (or {name!r}) to NEXOR_TOOLS / --tools / tools in the config file"
        )
    return f"{name} is not enabled on this server, so nothing was done: {how}."


@dataclass(frozen=True)
class CallScope:
    """Who a call is for: the client (one Nexor account), the secrets to mask, the tools it may use.

    Over stdio there is one scope for the process; in hosted mode each HTTP request brings its own
    (its key, and maybe a narrower tool selection)."""

    client: NexorClient
    secrets: tuple[str, ...]
    enabled: Mapping[str, ToolSpec[Any]]
    listed: ListToolsResult
    refusal: Callable[[str], str]
    """Why a known tool that is not in `enabled` cannot be called here, for the model."""


ScopeOf = Callable[[ServerRequestContext[Any]], CallScope]


def fixed_scope(settings: Settings, client: NexorClient) -> CallScope:
    """The scope of a one-account server (stdio): the configured key and tool selection."""
    enabled = {spec.name: spec for spec in select_tools(settings.tools, read_only=settings.read_only)}
    return CallScope(
        client=client,
        secrets=(settings.api_key.reveal(),) if settings.api_key else (),
        enabled=enabled,
        listed=ListToolsResult(tools=[spec.tool() for spec in enabled.values()]),
        refusal=lambda name: not_enabled_text(name, settings),
    )


def build_server(
    settings: Settings,
    client: NexorClient,
    scope_of: ScopeOf | None = None,
    safety: WriteSafety | None = None,
    input_end: InputEnd | None = None,
) -> Server[Any]:
    """An MCP server over `client` with the tools `settings` enables; `scope_of`, when given,
    decides per request (hosted mode); `safety` runs every write (nexor_mcp/safety.py);
    `input_end`, when given, tells when the client can no longer answer (stdio EOF or SIGTERM).

    Each call has one `CallDeadline` for all its Nexor requests (nexor_mcp/retry.py)."""
    fixed = fixed_scope(settings, client)
    resolve: ScopeOf = scope_of or (lambda ctx: fixed)
    write_safety = safety or WriteSafety.from_settings(settings)

    async def list_tools(ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None) -> ListToolsResult:
        return resolve(ctx).listed

    async def call_tool(
        ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult | InputRequiredResult:
        with metrics.current.call(params.name if params.name in TOOLS_BY_NAME else "(unknown)") as outcome:
            deadline = CallDeadline.for_settings(settings, input_end)
            try:
                with deadline.running():
                    result, outcome["outcome"] = await run_call(ctx, resolve(ctx), params)
                    return result
            except anyio.get_cancelled_exc_class():
                outcome["outcome"] = "cancelled"
                raise
            # Only reached when the call was stopped: input ended while it waited for a person.
            logger.info("%s not sent: input ended while it waited for the user's confirmation", params.name)
            outcome["outcome"] = "not_confirmed"
            return error_result(UNANSWERABLE)

    async def run_call(
        ctx: ServerRequestContext[Any], scope: CallScope, params: CallToolRequestParams
    ) -> tuple[CallToolResult | InputRequiredResult, str]:
        """One tool call: its result, and its outcome for the metrics."""
        secrets, enabled = scope.secrets, scope.enabled
        spec = enabled.get(params.name)
        if spec is None:
            if params.name in TOOLS_BY_NAME:
                logger.info("%s refused: not enabled", params.name)
                return error_result(scope.refusal(params.name), secrets), "refused"
            unknown = f"Unknown tool {shown_name(params.name)!r}. This server has: {', '.join(enabled)}."
            return error_result(unknown, secrets), "unknown_tool"

        async def report_retry(attempt: int, delay: float, reason: str) -> None:
            # Sent only when the caller asked for progress (a no-op otherwise).
            await ctx.session.report_progress(
                attempt, None, f"attempt {attempt} failed ({reason}); retrying in {delay:.1f} s"
            )

        started = time.perf_counter()
        client = scope.client
        try:
            arguments = spec.parse(params.arguments)
            if spec.handler is not None:  # a read tool
                outcome: Json | Reply | Pending = await spec.handler(client, arguments, report_retry)
            else:
                outcome = await write_safety.run(spec, client, arguments, ctx, params, report_retry, secrets)
            if isinstance(outcome, Pending):
                if isinstance(outcome.result, InputRequiredResult):
                    logger.info("%s waits for the user's confirmation", params.name)
                    return outcome.result, "confirming"
                outcome = Reply(outcome.result, pending_text(params.name, outcome.result))
            if isinstance(outcome, Reply):
                logger.info("%s answered without writing (%s)", params.name, _kind(outcome.structured))
                return reply_result(outcome, secrets), _kind(outcome.structured)
            write_safety.memory.remember(client.account, outcome.get("lead"))
            structured = outcome
            result = success_result(structured, secrets)
        except anyio.get_cancelled_exc_class():
            deadline = current_deadline()
            if deadline is None or not deadline.unanswerable:
                logger.info("%s cancelled by the client", params.name)
            raise
        except InvalidArguments as exc:
            logger.info("%s rejected: %s", params.name, exc.argument_names())
            return error_result(str(exc), secrets), "rejected"
        except NexorError as exc:
            logger.info("%s failed: %s", params.name, type(exc).__name__)
            return error_result(f"{params.name} failed: {exc}", secrets), "failed"
        except Exception:
            # Whatever went wrong (a bug, or a result that could not be built), it is this call's
            # alone: the session and every other call go on.
            logger.exception("%s crashed", params.name)
            return error_result(internal_error_text(spec), secrets), "crashed"
        logger.info("%s ok in %.1f ms", params.name, (time.perf_counter() - started) * 1000)
        return result, "accepted" if structured.get("accepted") is True else "ok"

    def _kind(structured: Json) -> str:
        for kind in ("dry_run", "conflict", "confirmation_required"):
            if structured.get(kind) is True:
                return kind
        return "not_confirmed"

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
    """Serve MCP over stdin/stdout until the client closes stdin or sends SIGTERM.

    Calls in flight at that moment still finish and are answered. A call's Nexor requests are over
    within its `CallDeadline` (retry budget plus one request timeout, however many requests it
    makes), so the shutdown waits that long, plus a grace for the answer. A call waiting for a
    person's confirmation does not hold it: nobody can answer anymore, so it is answered "not sent"
    at once; one whose person has already said yes has a fresh deadline from that yes, and its
    write is finished.
    """
    from nexor_mcp.stdio import serve_streams

    local: list[LocalApprovalServer] = []

    async def page_base(ctx: ServerRequestContext[Any]) -> str | None:
        """The approval pages' origin: a loopback server of this process, started on first need
        (imported then too: most sessions never ask a person)."""
        if not local:
            from nexor_mcp.approvals.local import LocalApprovalServer

            local.append(LocalApprovalServer(safety.approvals, safety.sealer.page_key))
        return await local[0].start()

    safety = WriteSafety.from_settings(settings, page_base, opens_pages=True)
    input_end = InputEnd()
    server = build_server(settings, client, safety=safety, input_end=input_end)
    drain_seconds = CallDeadline.drain_seconds(settings)
    try:
        async with serve_streams(drain_seconds, on_input_end=input_end.end) as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        for page_server in local:
            await page_server.close()
        await client.aclose()
