"""Command line: `nexor-mcp` (the stdio server), `http`, `check`, `sandbox`, `demo`.

Heavy imports (the MCP SDK, uvicorn) happen inside the command that needs them, so a bad flag or
config fails fast, and nothing is ever printed to stdout before the protocol owns it.

A global flag a command does not use is refused (exit 2, naming the flag and the command), never
ignored: `--sandbox audit undo` silently sending to the real API is the failure this prevents. The
flags, the commands and which flags each uses are `cli_flags`; here each command is run.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets as secrets_module
import sys
from collections.abc import Sequence
from typing import Any

from nexor_mcp.cli_flags import parser, refused_flags, settings_given
from nexor_mcp.config import (
    ENV_VARS,
    LOOPBACK_HOSTS,
    SECRET_ENV,
    ConfigError,
    Secret,
    Settings,
    load_settings,
    settings_environment,
)
from nexor_mcp.quoting import one_line

logger = logging.getLogger("nexor_mcp")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    problems = refused_flags(args)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    if args.command == "sandbox":
        return _run_sandbox(args.host, args.port)
    if args.command == "demo":
        from nexor_mcp.demo import run_demo

        return run_demo()
    flags = settings_given(args)
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


def _serve_http(settings: Settings, args: argparse.Namespace, flags: dict[str, Any]) -> int:
    from nexor_mcp.http import check_start, hosted_environment, hosted_settings, serve
    from nexor_mcp.logs import configure_logging, stop_logging

    if args.workers < 1:
        print("nexor-mcp http: --workers must be 1 or more", file=sys.stderr)
        return 2
    try:
        hosted = hosted_settings(
            host=args.host, port=args.port, allowed_hosts=args.allowed_hosts, allowed_origins=args.allowed_origins,
            public_url=args.public_url,
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
        os.environ.update(settings_environment(flags, args.config))
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
    if args.workers > 1 and settings.database is None:
        logger.warning(
            "--workers %d without %s: each worker keeps its own used confirmations (a token can be used once per "
            "worker) and the journal is per process; set %s to share them", args.workers,
            ENV_VARS["database_url"], ENV_VARS["database_url"],
        )
    if not hosted.allowed_hosts and hosted.host not in LOOPBACK_HOSTS:
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
        settings = settings.model_copy(
            update={"base_url": base_url, "api_key": Secret(SANDBOX_API_KEY), "warnings": ()}
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
