"""Command line: `nexor-mcp` (the stdio server), `nexor-mcp sandbox`, `nexor-mcp demo`.

Heavy imports (the MCP SDK, uvicorn) happen inside the command that needs them, so a bad flag or
config fails fast, and nothing is ever printed to stdout before the protocol owns it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from nexor_mcp import __version__
from nexor_mcp.config import CONFIG_FILE_ENV, ENV_VARS, LOG_LEVELS, ConfigError, Secret, Settings, load_settings

logger = logging.getLogger("nexor_mcp")

EPILOG = f"""\
environment variables (flags > environment > config file > defaults; empty counts as unset):
  {ENV_VARS["api_key"]:<28}the Nexor API key (no flag on purpose: a flag shows in process lists)
  {ENV_VARS["base_url"]:<28}same as --base-url
  {ENV_VARS["timeout_seconds"]:<28}same as --timeout-seconds
  {ENV_VARS["max_retries"]:<28}same as --max-retries
  {ENV_VARS["retry_budget_seconds"]:<28}same as --retry-budget-seconds
  {ENV_VARS["log_level"]:<28}same as --log-level
  {ENV_VARS["tools"]:<28}same as --tools
  {ENV_VARS["read_only"]:<28}same as --read-only (1/true/yes)
  {CONFIG_FILE_ENV:<28}same as --config

commands:
  nexor-mcp http                hosted mode: MCP over stateless Streamable HTTP at /mcp
  nexor-mcp sandbox             serve the sandbox API alone (try it with curl)
  nexor-mcp demo                show an agent using the server against the sandbox
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nexor-mcp",
        description="MCP server (stdio) for reading and updating Nexor leads.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nexor-mcp {__version__}")
    parser.add_argument("--config", metavar="PATH", help=f"JSON config file (env {CONFIG_FILE_ENV})")
    parser.add_argument(
        "--base-url", help=f"Nexor API base URL (env {ENV_VARS['base_url']}; default: the public API)"
    )
    parser.add_argument(
        "--timeout-seconds", type=float,
        help=f"per-request timeout (env {ENV_VARS['timeout_seconds']}; default 30)",
    )
    parser.add_argument(
        "--max-retries", type=int,
        help=f"retries after a connection error or HTTP 429/500/502/503/504 (env {ENV_VARS['max_retries']}; "
        "default 2)",
    )
    parser.add_argument(
        "--retry-budget-seconds", type=float,
        help="a call is not retried when the wait would end more than this many seconds after it began "
        f"(env {ENV_VARS['retry_budget_seconds']}; default 20)",
    )
    parser.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS,
        help=f"stderr log level (env {ENV_VARS['log_level']}; default INFO)",
    )
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text",
        help="stderr log lines as text (default) or one JSON object per line",
    )
    parser.add_argument(
        "--tools", metavar="LIST",
        help=f"comma list of tool groups (read, write, automation, outreach) and tool names to enable "
        f"(env {ENV_VARS['tools']}; default read,write)",
    )
    parser.add_argument(
        "--read-only", action="store_true", default=None,
        help=f"enable only the read tools, whatever else is asked for (env {ENV_VARS['read_only']})",
    )
    parser.add_argument(
        "--sandbox", action="store_true",
        help="talk to an embedded sandbox of the Nexor API with demo leads (no key needed)",
    )
    commands = parser.add_subparsers(dest="command", metavar="{http,sandbox,demo}")
    http = commands.add_parser(
        "http", help="hosted mode: serve MCP over stateless Streamable HTTP at /mcp",
        description="Each request brings its own Nexor key (X-API-Key or Authorization: Bearer), unless "
        "NEXOR_API_KEY is set: then clients present an access token from NEXOR_MCP_ACCESS_TOKENS.",
    )
    http.add_argument("--host", help="address to bind (env NEXOR_MCP_HOST; default 127.0.0.1)")
    http.add_argument("--port", help="port, 0 to 65535 (env NEXOR_MCP_PORT; default 8000)")
    http.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    http.add_argument(
        "--allow-host", dest="allowed_hosts", metavar="LIST",
        help="Host header values to accept, comma list, e.g. mcp.example.com (env NEXOR_MCP_ALLOWED_HOSTS; "
        "default: the loopback names when bound to loopback, else no check)",
    )
    http.add_argument(
        "--allow-origin", dest="allowed_origins", metavar="LIST",
        help="Origin header values to accept, comma list (env NEXOR_MCP_ALLOWED_ORIGINS)",
    )
    sandbox = commands.add_parser("sandbox", help="serve the sandbox Nexor API alone, for trying things out")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", default="8765", help="port, 0 to 65535 (default 8765; 0 picks a free one)")
    commands.add_parser("demo", help="run an agent session against the sandbox and print what it sees")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sandbox":
        return _run_sandbox(args.host, args.port)
    if args.command == "demo":
        from nexor_mcp.demo import run_demo

        return run_demo()
    flags = {
        "base_url": args.base_url,
        "timeout_seconds": args.timeout_seconds,
        "max_retries": args.max_retries,
        "retry_budget_seconds": args.retry_budget_seconds,
        "log_level": args.log_level,
        "tools": args.tools,
        "read_only": args.read_only,
    }
    try:
        settings = load_settings(flags, config_path=args.config)
        _check_tools(settings)
    except ConfigError as exc:
        print(f"nexor-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "http":
        return _serve_http(settings, args, flags)
    return _serve(settings, sandbox=args.sandbox, json_lines=args.log_format == "json")


def _serve_http(settings: Settings, args: argparse.Namespace, flags: dict[str, Any]) -> int:
    from nexor_mcp.http import check_start, hosted_settings, serve
    from nexor_mcp.logs import configure_logging, stop_logging

    port = _port(args.port) if args.port is not None else None
    if args.port is not None and port is None:
        print(f"nexor-mcp http: --port must be a whole number from 0 to 65535, got {args.port!r}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("nexor-mcp http: --workers must be 1 or more", file=sys.stderr)
        return 2
    hosted = hosted_settings(host=args.host, port=port, allowed_hosts=args.allowed_hosts,
                             allowed_origins=args.allowed_origins)
    try:
        check_start(settings, hosted)
    except ValueError as exc:
        print(f"nexor-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1:
        # Each worker builds its app from the environment: hand it exactly what this command parsed.
        for key, value in flags.items():
            if value is not None:
                os.environ[ENV_VARS[key]] = str(value).lower() if isinstance(value, bool) else str(value)
        if args.config:
            os.environ[CONFIG_FILE_ENV] = args.config
        os.environ["NEXOR_MCP_HOST"], os.environ["NEXOR_MCP_PORT"] = hosted.host, str(hosted.port)
    secrets = (settings.api_key.reveal(),) if settings.api_key else ()
    configure_logging(
        settings.log_level,
        secrets + tuple(token.reveal() for token in hosted.access_tokens),
        json_lines=args.log_format == "json",
    )
    for warning in settings.warnings:
        logger.warning(warning)
    if not hosted.allowed_hosts and hosted.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("no --allow-host list: Host and Origin headers are not checked (DNS rebinding protection off)")
    try:
        serve(settings, hosted, args.workers)
    except OSError as exc:
        print(f"nexor-mcp http: cannot listen on {hosted.host!r} port {hosted.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        stop_logging()
    return 0


def _check_tools(settings: Settings) -> None:
    """Unknown tool or group names fail at start, with the valid ones listed."""
    from nexor_mcp.tools import UnknownToolName, select_tools

    try:
        select_tools(settings.tools, read_only=settings.read_only)
    except UnknownToolName as exc:
        raise ConfigError(str(exc)) from None


def _serve(settings: Settings, *, sandbox: bool, json_lines: bool = False) -> int:
    from nexor_mcp.logs import configure_logging, stop_logging

    server = None
    if sandbox:
        from nexor_mcp.sandbox import SANDBOX_API_KEY, SandboxServer

        server = SandboxServer()
        base_url = server.start()
        settings = dataclasses.replace(
            settings, base_url=base_url, api_key=Secret(SANDBOX_API_KEY), warnings=()
        )
    secrets = (settings.api_key.reveal(),) if settings.api_key else ()
    configure_logging(settings.log_level, secrets, json_lines=json_lines)
    for warning in settings.warnings:
        logger.warning(warning)
    if sandbox:
        logger.info("using the embedded Nexor sandbox at %s", settings.base_url)
    elif settings.api_key is None:
        logger.warning(
            "no Nexor API key is set: the tools are listed, but every call returns an error until "
            "NEXOR_API_KEY (or api_key in the config file) is set"
        )
    import anyio

    from nexor_mcp.client import NexorClient
    from nexor_mcp.server import serve_stdio

    try:
        anyio.run(serve_stdio, settings, NexorClient(settings))
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
        stop_logging()
    return 0


def _port(text: str) -> int | None:
    try:
        port = int(text.strip())
    except ValueError:
        return None
    return port if 0 <= port <= 65535 else None


def _run_sandbox(host: str, port_text: str) -> int:
    port = _port(port_text)
    if port is None:
        print(f"nexor-mcp sandbox: --port must be a whole number from 0 to 65535, got {port_text!r}", file=sys.stderr)
        return 2
    from nexor_mcp.sandbox import DEMO_LEAD_IDS, SANDBOX_API_KEY, SandboxServer

    server = SandboxServer(host=host, port=port)
    try:
        base_url = server.start()
    except (OSError, OverflowError, ValueError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        print(f"nexor-mcp sandbox: cannot listen on {host!r} port {port}: {reason}", file=sys.stderr)
        return 2
    print(f"Nexor sandbox API listening on {base_url}")
    print(f"API key: {SANDBOX_API_KEY} (send it in the X-API-Key header)")
    print("Demo lead ids:")
    for lead_id in DEMO_LEAD_IDS:
        print(f"  {lead_id}")
    print(f"Try it: curl -H 'X-API-Key: {SANDBOX_API_KEY}' {base_url}/leads/{DEMO_LEAD_IDS[0]}")
    print(f"Point the server at it: NEXOR_BASE_URL={base_url} NEXOR_API_KEY={SANDBOX_API_KEY} nexor-mcp")
    print("Press Ctrl+C to stop.", flush=True)
    try:
        import threading

        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
