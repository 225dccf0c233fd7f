"""Command line: `nexor-mcp` (the stdio server), `http`, `check`, `sandbox`, `demo`.

Heavy imports (the MCP SDK, uvicorn) happen inside the command that needs them, so a bad flag or
config fails fast, and nothing is ever printed to stdout before the protocol owns it.

A global flag a command does not use is refused (exit 2, naming the flag and the command), never
ignored: `--sandbox audit undo` silently sending to the real API is the failure this prevents.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import secrets as secrets_module
import sys
from collections.abc import Sequence
from typing import Any

from nexor_mcp import __version__
from nexor_mcp.config import (
    CONFIG_FILE_ENV,
    ENV_VARS,
    LOG_LEVELS,
    SECRET_ENV,
    ConfigError,
    Secret,
    Settings,
    load_settings,
)
from nexor_mcp.quoting import one_line

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
  {ENV_VARS["confirm"]:<28}same as --confirm
  {ENV_VARS["confirm_via"]:<28}same as --confirm-via
  {SECRET_ENV:<28}hosted mode with replicas: a shared key (32+ bytes) sealing confirmations
  {ENV_VARS["audit_log"]:<28}same as --audit-log
  {CONFIG_FILE_ENV:<28}same as --config

commands (a flag a command does not use is refused with exit status 2, never ignored):
  nexor-mcp http                hosted mode: MCP over stateless Streamable HTTP at /mcp
  nexor-mcp check               check the settings and the API key (one harmless read from Nexor)
  nexor-mcp audit [list]|show|undo  read the audit journal; undo lead updates and tag changes
  nexor-mcp sandbox             serve the sandbox API alone (try it with curl)
  nexor-mcp demo                show an agent using the server against the sandbox
"""


def _settings_flags(*, inherited: bool = False) -> argparse.ArgumentParser:
    """The settings flags, as a parent parser: the top level takes them (`nexor-mcp --tools read`), and
    so does every command that loads the settings (`nexor-mcp check --tools read`). For a command,
    `inherited` leaves a flag it was not given unset, so it never overwrites the same flag given before
    the command name."""
    flags = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS if inherited else None)
    flags.add_argument("--config", metavar="PATH", help=f"JSON config file (env {CONFIG_FILE_ENV})")
    flags.add_argument(
        "--base-url", help=f"Nexor API base URL (env {ENV_VARS['base_url']}; default: the public API)"
    )
    flags.add_argument(
        "--timeout-seconds", type=float,
        help=f"per-request timeout (env {ENV_VARS['timeout_seconds']}; default 30)",
    )
    flags.add_argument(
        "--max-retries", type=int,
        help=f"retries after a connection error or HTTP 429/500/502/503/504 (env {ENV_VARS['max_retries']}; "
        "default 2)",
    )
    flags.add_argument(
        "--retry-budget-seconds", type=float,
        help="a call is not retried when the wait would end more than this many seconds after it began "
        f"(env {ENV_VARS['retry_budget_seconds']}; default 20)",
    )
    flags.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS,
        help=f"stderr log level (env {ENV_VARS['log_level']}; default INFO)",
    )
    flags.add_argument(
        "--tools", metavar="LIST",
        help=f"comma list of tool groups (read, write, automation, outreach) and tool names to enable "
        f"(env {ENV_VARS['tools']}; default read,write)",
    )
    flags.add_argument(
        "--read-only", action="store_true", default=argparse.SUPPRESS if inherited else None,
        help=f"enable only the read tools, whatever else is asked for (env {ENV_VARS['read_only']})",
    )
    flags.add_argument(
        "--audit-log", metavar="PATH",
        help=f"append every write to this audit journal (JSON lines), before it is sent and after "
        f"(env {ENV_VARS['audit_log']}; default: off)",
    )
    flags.add_argument(
        "--confirm", metavar="GROUPS",
        help="tool groups that need a person's confirmation before they run: automation, outreach, or never "
        f"(env {ENV_VARS['confirm']}; default automation,outreach)",
    )
    flags.add_argument(
        "--confirm-via", choices=("auto", "token"),
        help="auto: ask through the client when it can elicit, else a token; token: always the token, for hosts "
        f"that answer elicitations without showing anyone (env {ENV_VARS['confirm_via']}; default auto)",
    )
    flags.add_argument(
        "--sandbox", action="store_true", default=argparse.SUPPRESS if inherited else False,
        help="talk to an embedded sandbox of the Nexor API with demo leads (no key needed)",
    )
    flags.add_argument(
        "--log-format", choices=("text", "json"),
        help="stderr log lines as text (default) or one JSON object per line",
    )
    return flags


# Which global flags each command uses; any other one given is refused, never ignored.
_ALL_FLAGS = frozenset({"config", "sandbox", "log_format", *ENV_VARS}) - {"api_key"}
_LOGGING = frozenset({"log_level", "log_format"})
_READS_JOURNAL = frozenset({"config", "audit_log"}) | _LOGGING
_CONNECTION = frozenset({"base_url", "timeout_seconds", "max_retries", "retry_budget_seconds"})
COMMAND_FLAGS: dict[str, frozenset[str]] = {
    "": _ALL_FLAGS,  # the stdio server
    "http": _ALL_FLAGS - {"sandbox"},
    "check": _ALL_FLAGS,
    "audit list": _READS_JOURNAL,
    "audit show": _READS_JOURNAL,
    "audit undo": _READS_JOURNAL | _CONNECTION,
    "sandbox": frozenset({"sandbox"}),  # it is the sandbox: nothing can reach the real API
    "demo": frozenset({"sandbox"}),  # it always runs against the sandbox
}
_WHY_NOT = {
    "audit list": "it only reads the journal, and sends nothing to Nexor",
    "audit show": "it only reads the journal, and sends nothing to Nexor",
    "audit undo": "it uses only the journal (--config, --audit-log), the connection settings (--base-url, "
    "--timeout-seconds, --max-retries, --retry-budget-seconds) and the logging flags",
    "sandbox": "it serves the sandbox API alone, with fixed settings (its own flags are --host and --port)",
    "demo": "it runs its own server against the sandbox, with fixed settings",
}
_WHY_NOT_PAIR = {
    ("http", "sandbox"): "hosted mode has no embedded sandbox, so it would serve the real Nexor API; to try it "
    "on demo data, run `nexor-mcp sandbox` and pass the address it prints as --base-url",
    ("audit undo", "sandbox"): "undo sends its writes to the configured Nexor API, not to a sandbox (an embedded "
    "sandbox ends with the server that ran it), so nothing was sent; to undo against a sandbox, run "
    "`nexor-mcp sandbox` and pass the address it prints as --base-url",
    ("audit undo", "read_only"): "undo writes to Nexor; to see what it would send without sending anything, "
    "use --dry-run",
}


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def refused_flags(args: argparse.Namespace) -> list[str]:
    """A line for stderr for each global flag given that this command does not use (empty: none)."""
    command = args.command or ""
    if command == "audit":
        command = f"audit {args.audit_command}"
    given = [dest for dest in sorted(_ALL_FLAGS) if getattr(args, dest, None) not in (None, False)]
    prefix = f"nexor-mcp {command}".rstrip()
    problems = [
        f"{prefix}: {_option(dest)} does not apply to `{prefix}`: "
        f"{_WHY_NOT_PAIR.get((command, dest)) or _WHY_NOT[command]}; drop {_option(dest)}"
        for dest in given if dest not in COMMAND_FLAGS[command]
    ]
    if "sandbox" in given and "base_url" in given and not problems:
        problems.append(f"{prefix}: --sandbox and --base-url contradict each other: --sandbox talks to an "
                        "embedded sandbox at an address of its own; drop one of them")
    return problems


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nexor-mcp",
        description="MCP server (stdio) for reading and updating Nexor leads.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_settings_flags()],
    )
    parser.add_argument("--version", action="version", version=f"nexor-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{http,check,audit,sandbox,demo}")
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
    http.add_argument(
        "--read-timeout-seconds", metavar="SECONDS",
        help="a request must arrive whole (request line, headers and body) within this many seconds of its "
        "first byte, or its connection is closed (env NEXOR_MCP_READ_TIMEOUT_SECONDS; default 10)",
    )
    http.add_argument(
        "--max-connections", metavar="N",
        help="connections each process serves at once; a request beyond them gets HTTP 503 "
        "(env NEXOR_MCP_MAX_CONNECTIONS; default 1000)",
    )
    sandbox = commands.add_parser("sandbox", help="serve the sandbox Nexor API alone, for trying things out")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", default="8765", help="port, 0 to 65535 (default 8765; 0 picks a free one)")
    commands.add_parser("demo", help="run an agent session against the sandbox and print what it sees")
    commands.add_parser(
        "check", parents=[_settings_flags(inherited=True)],
        help="check the configuration and the API key: each setting and its source, then one read from Nexor",
        description="Loads the settings exactly as the server would, shows each one and where it came from "
        "(the key masked), calls Nexor once with a read that changes nothing (GET /tags), and says whether "
        "the key works. Exit status 0 if it does, 1 otherwise. Settings flags may go before or after `check`.",
    )
    from nexor_mcp.audit.cli import add_audit_parser

    add_audit_parser(commands, [_settings_flags(inherited=True)])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    problems = refused_flags(args)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    if args.command == "sandbox":
        return _run_sandbox(args.host, args.port)
    if args.command == "demo":
        from nexor_mcp.demo import run_demo

        return run_demo()
    flags = _flags(args)
    if args.command == "check":
        from nexor_mcp.check import run_check

        return run_check(flags, args.config, sandbox=args.sandbox, log_format=args.log_format)
    try:
        settings = load_settings(flags, config_path=args.config)
        _check_tools(settings)
    except ConfigError as exc:
        print(f"nexor-mcp: configuration error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    if args.command == "http":
        return _serve_http(settings, args, flags)
    if args.command == "audit":
        from nexor_mcp.audit.cli import run_audit

        return run_audit(settings, args)
    return _serve(settings, sandbox=args.sandbox, json_lines=args.log_format == "json")


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (None: not given)."""
    return {
        "base_url": args.base_url,
        "timeout_seconds": args.timeout_seconds,
        "max_retries": args.max_retries,
        "retry_budget_seconds": args.retry_budget_seconds,
        "log_level": args.log_level,
        "tools": args.tools,
        "read_only": args.read_only,
        "confirm": args.confirm,
        "confirm_via": args.confirm_via,
        "audit_log": args.audit_log,
    }


def _serve_http(settings: Settings, args: argparse.Namespace, flags: dict[str, Any]) -> int:
    from nexor_mcp.http import check_start, hosted_environment, hosted_settings, serve
    from nexor_mcp.logs import configure_logging, stop_logging

    if args.workers < 1:
        print("nexor-mcp http: --workers must be 1 or more", file=sys.stderr)
        return 2
    try:
        hosted = hosted_settings(
            host=args.host, port=args.port, allowed_hosts=args.allowed_hosts, allowed_origins=args.allowed_origins,
            read_timeout_seconds=args.read_timeout_seconds, max_connections=args.max_connections,
        )
    except ValueError as exc:
        print(f"nexor-mcp http: {exc}", file=sys.stderr)
        return 2
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
        os.environ.update(hosted_environment(hosted))
        # One confirmation key for all the workers, so a token one issued is accepted by another.
        os.environ.setdefault(SECRET_ENV, secrets_module.token_hex(32))
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
