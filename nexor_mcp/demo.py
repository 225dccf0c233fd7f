"""`nexor-mcp demo`: a real agent-style session against the embedded sandbox, printed readably.

It spawns `python -m nexor_mcp --sandbox` exactly as an MCP host would and drives it with the MCP
SDK client over stdio, so what it shows is what an agent gets.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult

from nexor_mcp.sandbox import DEMO_LEAD_IDS

LEAD = DEMO_LEAD_IDS[0]


class _StdoutClosed(Exception):
    """Whoever reads our stdout stopped, as in `nexor-mcp demo | head -3`: not a failure."""


def _say(text: str = "") -> None:
    try:
        print(text, flush=True)
    except (BrokenPipeError, ValueError):  # ValueError: stdout was closed in-process
        raise _StdoutClosed from None


def _show_call(tool: str, arguments: dict[str, Any]) -> None:
    _say(f"  → {tool} {json.dumps(arguments, ensure_ascii=False)}")


def _show_result(result: CallToolResult, *, indent: bool = True) -> None:
    text = "".join(block.text for block in result.content if block.type == "text")
    if result.is_error:
        _say("  ← isError: true. The agent reads this text content block:")
        _say(textwrap.indent(text, "      "))
        return
    _say(f"  ← the agent reads this text content block ({len(text)} characters of compact JSON):")
    _say(textwrap.indent(text, "      "))
    if indent:
        _say("    The same JSON, indented here for you to read:")
        _say(textwrap.indent(json.dumps(json.loads(text), indent=2, ensure_ascii=False), "      "))


async def _session() -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "nexor_mcp", "--sandbox", "--log-level", "WARNING"],
        env={key: os.environ[key] for key in ("PYTHONPATH",) if key in os.environ},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        _say(f"Connected to {init.server_info.name} {init.server_info.version} over stdio "
             f"(protocol {init.protocol_version}), backed by the embedded Nexor sandbox.")
        _say()
        _say("1. The agent lists the tools (the default groups: read and write):")
        for tool in (await session.list_tools()).tools:
            hints = tool.annotations
            kind = "read-only" if hints and hints.read_only_hint else "writes"
            _say(f"   • {tool.name} ({kind})")
        _say()
        _say("2. It reads the lead:")
        _show_call("get_lead", {"lead_id": LEAD})
        result = await session.call_tool("get_lead", {"lead_id": LEAD})
        lead = (result.structured_content or {}).get("lead", {})
        run = lead.get("active_workflow_run") or {}
        _say(f"  ← {lead.get('first_name')} {lead.get('last_name')}, {lead.get('title')} at {lead.get('company')}; "
             f"in workflow {json.dumps((run.get('workflow') or {}).get('name'))}, "
             f"status {json.dumps((run.get('current_status') or {}).get('key'))}")
        _say()
        _say("3. It reads the latest of the conversation:")
        history = {"lead_id": LEAD, "limit": 3}
        _show_call("get_lead_history", history)
        _show_result(await session.call_tool("get_lead_history", history), indent=False)
        _say()
        _say("4. The lead asks for a person: the agent hands it to a human (the AI stops answering):")
        takeover = {"lead_id": LEAD, "workflow_id": run.get("workflow_id")}
        _show_call("stop_automation", takeover)
        _show_result(await session.call_tool("stop_automation", takeover))
        _say()
        _say("5. It tags the lead with an existing tag, found by name:")
        tags = ((await session.call_tool("list_tags", {"search": "hot"})).structured_content or {}).get("tags", [])
        tagging = {"lead_id": LEAD, "tag_ids": [tag["id"] for tag in tags[:1]]}
        _show_call("add_lead_tags", tagging)
        _show_result(await session.call_tool("add_lead_tags", tagging), indent=False)
        _say()
        _say("6. It records the meeting the lead booked on the phone:")
        meeting = {"lead_id": LEAD, "title": "Demo with Acme", "starts_at": "2026-12-01T15:00:00-03:00",
                   "duration_minutes": 30}
        _show_call("record_meeting", meeting)
        _show_result(await session.call_tool("record_meeting", meeting), indent=False)
        _say()
        _say("7. Before writing, it previews the change (dry_run: true; nothing is sent):")
        update = {"lead_id": LEAD, "title": "VP Sales", "metadata": {"budget": 5000}}
        _show_call("update_lead", {**update, "dry_run": True})
        dry = await session.call_tool("update_lead", {**update, "dry_run": True})
        _say("  ← the agent reads this text content block (the lead before and after are in structuredContent):")
        _say(textwrap.indent("".join(block.text for block in dry.content if block.type == "text"), "      "))
        _say()
        _say("8. It writes back what it learned: a new title and a custom field (metadata is merged):")
        _show_call("update_lead", update)
        _show_result(await session.call_tool("update_lead", update), indent=False)
        _say()
        _say("9. A careless call is refused before anything is sent to Nexor:")
        bad = {"lead_id": LEAD, "email": "ana-at-example.com", "budget": 7000, "first_name": None}
        _show_call("update_lead", bad)
        _show_result(await session.call_tool("update_lead", bad))
        _say()
        _say("10. Messaging a person is off unless you enable it; the call is refused, nothing is sent:")
        message = {"lead_id": LEAD, "workflow_id": run.get("workflow_id"), "channel": "whatsapp", "content": "Hola"}
        _show_call("send_message", message)
        _show_result(await session.call_tool("send_message", message))
        _say()
        _say("Next: add the server to your MCP client (see README, 'Use it from your MCP client').")


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside task-group wrappers, with what they interrupted (their context)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    found = [exc]
    if exc.__context__ is not None and exc.__context__ is not exc:
        found.extend(_leaves(exc.__context__))
    return found


def _silence_stdout() -> None:
    """Point stdout at the null device, so the flush at exit does not fail on the closed pipe."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


def run_demo() -> int:
    try:
        anyio.run(_session)
    except Exception as exc:  # a demo should end with one readable line, not a traceback
        leaves = _leaves(exc)
        if any(isinstance(leaf, _StdoutClosed) for leaf in leaves):
            _silence_stdout()
            return 0
        print(f"nexor-mcp demo failed: {str(leaves[0]) or type(leaves[0]).__name__}", file=sys.stderr)
        return 1
    return 0
