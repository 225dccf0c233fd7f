"""The command line's grammar: the settings flags, the commands and their own flags, and which global
flags each command uses (any other one given is refused, exit 2, never ignored).

Help texts take their defaults and variable names from the settings models' constants, so they
cannot drift from what the server does.
"""

from __future__ import annotations

import argparse
from typing import Any

from nexor_mcp import __version__
from nexor_mcp.config import (
    CONFIG_FILE_ENV,
    CONFIRM_VIA,
    CONFIRMABLE_GROUPS,
    DEFAULT_APPROVAL_TIMEOUT_SECONDS,
    DEFAULT_CONFIRM_VIA,
    DEFAULT_LOG_LEVEL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BUDGET_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_TOOLS,
    ENV_VARS,
    LOG_LEVELS,
    SECRET_ENV,
    option,
)
from nexor_mcp.hosted.settings import (
    DEFAULT_HOST,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PORT,
    DEFAULT_READ_TIMEOUT_SECONDS,
    HOSTED_ENV,
    LOOPBACK_HOSTS,
)

SETTINGS_FLAGS = tuple(key for key in ENV_VARS if key != "api_key")
"""The settings that can have a flag: all but the key (a flag would show it in process lists)."""
SANDBOX_HOST = LOOPBACK_HOSTS[0]
SANDBOX_PORT = 8765

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
  {ENV_VARS["database_url"]:<28}same as --database-url (its password is never shown)
  {ENV_VARS["approval_timeout_seconds"]:<28}same as --approval-timeout
  {CONFIG_FILE_ENV:<28}same as --config

commands (a flag a command does not use is refused with exit status 2, never ignored):
  nexor-mcp http                hosted mode: MCP over stateless Streamable HTTP at /mcp
  nexor-mcp check               check the settings and the API key (one harmless read from Nexor)
  nexor-mcp audit [list]|show|undo|export  read the audit journal; undo lead updates and tag changes
  nexor-mcp sandbox             serve the sandbox API alone (try it with curl)
  nexor-mcp demo                show an agent using the server against the sandbox
"""


def settings_flags(*, inherited: bool = False) -> argparse.ArgumentParser:
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
        help=f"per-request timeout (env {ENV_VARS['timeout_seconds']}; default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    flags.add_argument(
        "--max-retries", type=int,
        help=f"retries after a connection error or HTTP 429/500/502/503/504 (env {ENV_VARS['max_retries']}; "
        f"default {DEFAULT_MAX_RETRIES})",
    )
    flags.add_argument(
        "--retry-budget-seconds", type=float,
        help="a call is not retried when the wait would end more than this many seconds after it began "
        f"(env {ENV_VARS['retry_budget_seconds']}; default {DEFAULT_RETRY_BUDGET_SECONDS:g})",
    )
    flags.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS,
        help=f"stderr log level (env {ENV_VARS['log_level']}; default {DEFAULT_LOG_LEVEL})",
    )
    flags.add_argument(
        "--tools", metavar="LIST",
        help=f"comma list of tool groups (read, write, automation, outreach) and tool names to enable "
        f"(env {ENV_VARS['tools']}; default {','.join(DEFAULT_TOOLS)})",
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
        "--database-url", metavar="URL",
        help="keep used confirmations and the audit journal in this database, shared by processes, workers "
        f"and replicas: sqlite:///ABS/PATH or postgresql://... (env {ENV_VARS['database_url']}; default: off)",
    )
    flags.add_argument(
        "--approval-timeout", dest="approval_timeout_seconds", type=float, metavar="SECONDS",
        help="how long an approval page waits for the person's decision (env "
        f"{ENV_VARS['approval_timeout_seconds']}; default {DEFAULT_APPROVAL_TIMEOUT_SECONDS:g})",
    )
    flags.add_argument(
        "--confirm", metavar="GROUPS",
        help=f"tool groups that need a person's confirmation before they run: {', '.join(CONFIRMABLE_GROUPS)}, "
        f"or never (env {ENV_VARS['confirm']}; default {','.join(CONFIRMABLE_GROUPS)})",
    )
    flags.add_argument(
        "--confirm-via", choices=CONFIRM_VIA,
        help="auto: the user approves in a question the client shows, or on an approval page in their browser; "
        "token: the model relays a token (agent-relayed: the model can confirm by itself) "
        f"(env {ENV_VARS['confirm_via']}; "
        f"default {DEFAULT_CONFIRM_VIA})",
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
_ALL_FLAGS = frozenset({"config", "sandbox", "log_format", *SETTINGS_FLAGS})
_LOGGING = frozenset({"log_level", "log_format"})
_READS_JOURNAL = frozenset({"config", "audit_log", "database_url"}) | _LOGGING
_CONNECTION = frozenset({"base_url", "timeout_seconds", "max_retries", "retry_budget_seconds"})
COMMAND_FLAGS: dict[str, frozenset[str]] = {
    "": _ALL_FLAGS,  # the stdio server
    "http": _ALL_FLAGS - {"sandbox"},
    "check": _ALL_FLAGS,
    "audit list": _READS_JOURNAL,
    "audit show": _READS_JOURNAL,
    "audit export": _READS_JOURNAL,
    "audit undo": _READS_JOURNAL | _CONNECTION,
    "sandbox": frozenset({"sandbox"}),  # it is the sandbox: nothing can reach the real API
    "demo": frozenset({"sandbox"}),  # it always runs against the sandbox
}
_WHY_NOT = {
    "audit list": "it only reads the journal, and sends nothing to Nexor",
    "audit show": "it only reads the journal, and sends nothing to Nexor",
    "audit export": "it only reads the journal, and sends nothing to Nexor",
    "audit undo": "it uses only the journal (--config, --audit-log, --database-url), the connection settings "
    "(--base-url, --timeout-seconds, --max-retries, --retry-budget-seconds) and the logging flags",
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


def refused_flags(args: argparse.Namespace) -> list[str]:
    """A line for stderr for each global flag given that this command does not use (empty: none)."""
    command = args.command or ""
    if command == "audit":
        command = f"audit {args.audit_command}"
    given = [dest for dest in sorted(_ALL_FLAGS) if getattr(args, dest, None) not in (None, False)]
    prefix = f"nexor-mcp {command}".rstrip()
    problems = [
        f"{prefix}: {option(dest)} does not apply to `{prefix}`: "
        f"{_WHY_NOT_PAIR.get((command, dest)) or _WHY_NOT[command]}; drop {option(dest)}"
        for dest in given if dest not in COMMAND_FLAGS[command]
    ]
    if "sandbox" in given and "base_url" in given and not problems:
        problems.append(f"{prefix}: --sandbox and --base-url contradict each other: --sandbox talks to an "
                        "embedded sandbox at an address of its own; drop one of them")
    return problems


def settings_given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (None: not given, or a setting with no flag)."""
    return {key: getattr(args, key, None) for key in SETTINGS_FLAGS}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="nexor-mcp",
        description="MCP server (stdio) for reading and updating Nexor leads.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[settings_flags()],
    )
    top.add_argument("--version", action="version", version=f"nexor-mcp {__version__}")
    commands = top.add_subparsers(dest="command", metavar="{http,check,audit,sandbox,demo}")
    http = commands.add_parser(
        "http", help="hosted mode: serve MCP over stateless Streamable HTTP at /mcp",
        description=f"Each request brings its own Nexor key (X-API-Key or Authorization: Bearer), unless "
        f"{ENV_VARS['api_key']} is set: then clients present an access token from {HOSTED_ENV['access_tokens']}.",
    )
    http.add_argument("--host", help=f"address to bind (env {HOSTED_ENV['host']}; default {DEFAULT_HOST})")
    http.add_argument("--port", help=f"port, 0 to 65535 (env {HOSTED_ENV['port']}; default {DEFAULT_PORT})")
    http.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    http.add_argument(
        "--allow-host", dest="allowed_hosts", metavar="LIST",
        help=f"Host header values to accept, comma list, e.g. mcp.example.com (env {HOSTED_ENV['allowed_hosts']}; "
        "default: the loopback names when bound to loopback, else no check)",
    )
    http.add_argument(
        "--allow-origin", dest="allowed_origins", metavar="LIST",
        help=f"Origin header values to accept, comma list (env {HOSTED_ENV['allowed_origins']})",
    )
    http.add_argument(
        "--public-url", dest="public_url", metavar="ORIGIN",
        help="the origin people reach this server by, e.g. https://mcp.example.com behind a TLS proxy: the "
        f"approval pages' links use it (env {HOSTED_ENV['public_url']}; default: the request's own)",
    )
    http.add_argument(
        "--read-timeout-seconds", metavar="SECONDS",
        help="a request must arrive whole (request line, headers and body) within this many seconds of its "
        f"first byte, or its connection is closed (env {HOSTED_ENV['read_timeout_seconds']}; "
        f"default {DEFAULT_READ_TIMEOUT_SECONDS:g})",
    )
    http.add_argument(
        "--max-connections", metavar="N",
        help="connections each process serves at once; a request beyond them gets HTTP 503 "
        f"(env {HOSTED_ENV['max_connections']}; default {DEFAULT_MAX_CONNECTIONS})",
    )
    sandbox = commands.add_parser("sandbox", help="serve the sandbox Nexor API alone, for trying things out")
    sandbox.add_argument("--host", default=SANDBOX_HOST, help=f"address to bind (default {SANDBOX_HOST})")
    sandbox.add_argument(
        "--port", default=str(SANDBOX_PORT), help=f"port, 0 to 65535 (default {SANDBOX_PORT}; 0 picks a free one)"
    )
    commands.add_parser("demo", help="run an agent session against the sandbox and print what it sees")
    commands.add_parser(
        "check", parents=[settings_flags(inherited=True)],
        help="check the configuration and the API key: each setting and its source, then one read from Nexor",
        description="Loads the settings exactly as the server would, shows each one and where it came from "
        "(the key masked), calls Nexor once with a read that changes nothing (GET /tags), and says whether "
        "the key works. Exit status 0 if it does, 1 otherwise. Settings flags may go before or after `check`.",
    )
    from nexor_mcp.audit.cli import add_audit_parser

    add_audit_parser(commands, [settings_flags(inherited=True)])
    return top
