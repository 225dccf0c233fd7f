"""What only hosted mode needs, on top of `Settings`: flags over environment over defaults."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from nexor_mcp.config import Secret, Settings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_READ_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_CONNECTIONS = 1000
MAX_READ_TIMEOUT_SECONDS = 3600.0
MAX_CONNECTIONS_LIMIT = 1_000_000


@dataclass(frozen=True)
class HostedSettings:
    """What only hosted mode needs, on top of `Settings`."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    access_tokens: tuple[Secret, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
    """A request must arrive whole (request line, headers, body) this soon after its first byte."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Connections one process serves at once; a request beyond them gets 503."""


def check_start(settings: Settings, hosted: HostedSettings) -> None:
    """Refuse configurations that would expose an account: a configured key, served beyond this
    machine, with no access token to guard it."""
    if settings.api_key is not None and not hosted.access_tokens and hosted.host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"NEXOR_API_KEY is set and the server would listen on {hosted.host}, but no access token is "
            "configured: anyone who can reach it would act on your account. Set NEXOR_MCP_ACCESS_TOKENS, "
            "or listen on 127.0.0.1"
        )


def tokens_from(value: str | None) -> tuple[Secret, ...]:
    return tuple(Secret(token.strip()) for token in (value or "").split(",") if token.strip())


def names_from(value: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (value or "").split(",") if name.strip())


HOSTED_ENV = {
    "host": "NEXOR_MCP_HOST",
    "port": "NEXOR_MCP_PORT",
    "access_tokens": "NEXOR_MCP_ACCESS_TOKENS",
    "allowed_hosts": "NEXOR_MCP_ALLOWED_HOSTS",
    "allowed_origins": "NEXOR_MCP_ALLOWED_ORIGINS",
    "read_timeout_seconds": "NEXOR_MCP_READ_TIMEOUT_SECONDS",
    "max_connections": "NEXOR_MCP_MAX_CONNECTIONS",
}
HOSTED_FLAGS = {
    "port": "--port",
    "read_timeout_seconds": "--read-timeout-seconds",
    "max_connections": "--max-connections",
}


def hosted_settings(environ: Any = None, **flags: Any) -> HostedSettings:
    """Hosted-mode settings: flags over environment over defaults. Raises ValueError naming the
    flag or variable of a value out of range."""
    environ = os.environ if environ is None else environ

    def pick(name: str) -> Any:
        value = flags.get(name)
        return value if value is not None else environ.get(HOSTED_ENV[name]) or None

    def number(name: str, kind: type[int] | type[float], low: float, high: float, expected: str) -> Any:
        text = pick(name)
        if text is None:
            return None
        try:
            value = kind(str(text).strip())
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not low <= value <= high:
            source = HOSTED_FLAGS[name] if flags.get(name) is not None else HOSTED_ENV[name]
            raise ValueError(f"{source} must be {expected}, got {str(text)!r}")
        return value

    port = number("port", int, 0, 65535, "a whole number from 0 to 65535")
    read_timeout = number("read_timeout_seconds", float, 0.1, MAX_READ_TIMEOUT_SECONDS,
                          f"a number of seconds from 0.1 to {MAX_READ_TIMEOUT_SECONDS:g}")
    max_connections = number("max_connections", int, 1, MAX_CONNECTIONS_LIMIT,
                             f"a whole number from 1 to {MAX_CONNECTIONS_LIMIT}")
    return HostedSettings(
        host=pick("host") or DEFAULT_HOST,
        port=port if port is not None else DEFAULT_PORT,
        access_tokens=tokens_from(pick("access_tokens")),
        allowed_hosts=names_from(pick("allowed_hosts")),
        allowed_origins=names_from(pick("allowed_origins")),
        read_timeout_seconds=read_timeout if read_timeout is not None else DEFAULT_READ_TIMEOUT_SECONDS,
        max_connections=max_connections if max_connections is not None else DEFAULT_MAX_CONNECTIONS,
    )


def hosted_environment(hosted: HostedSettings) -> dict[str, str]:
    """The variables that give a `--workers` process exactly these settings (the tokens and lists
    are read from the environment already, or were never set)."""
    return {
        HOSTED_ENV["host"]: hosted.host,
        HOSTED_ENV["port"]: str(hosted.port),
        HOSTED_ENV["read_timeout_seconds"]: repr(hosted.read_timeout_seconds),
        HOSTED_ENV["max_connections"]: str(hosted.max_connections),
    }
