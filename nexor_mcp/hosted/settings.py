"""What only hosted mode needs, on top of `Settings`: flags over environment over defaults.

`HostedSettings` is a sibling of `Settings`, loaded by the same sources in the same order
(`config_sources`; hosted settings are not read from a config file). A bad value is refused naming
the flag or the variable it came from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationInfo, field_validator

from nexor_mcp.config import LOOPBACK_HOSTS, ConfigError, Secret, Settings
from nexor_mcp.config_sources import Invalid, LayeredSettings

__all__ = [
    "DEFAULT_HOST", "DEFAULT_MAX_CONNECTIONS", "DEFAULT_PORT", "DEFAULT_READ_TIMEOUT_SECONDS", "HOSTED_ENV",
    "HOSTED_FLAGS", "LOOPBACK_HOSTS", "MAX_CONNECTIONS_LIMIT", "MAX_READ_TIMEOUT_SECONDS", "MIN_READ_TIMEOUT_SECONDS",
    "HostedSettings",
    "check_start", "hosted_environment", "hosted_settings", "names_from", "tokens_from",
]

DEFAULT_HOST = LOOPBACK_HOSTS[0]
DEFAULT_PORT = 8000
DEFAULT_READ_TIMEOUT_SECONDS = 10.0
MIN_READ_TIMEOUT_SECONDS = 0.1
DEFAULT_MAX_CONNECTIONS = 1000
MAX_READ_TIMEOUT_SECONDS = 3600.0
MAX_CONNECTIONS_LIMIT = 1_000_000

HOSTED_ENV = {
    "host": "NEXOR_MCP_HOST",
    "port": "NEXOR_MCP_PORT",
    "access_tokens": "NEXOR_MCP_ACCESS_TOKENS",
    "allowed_hosts": "NEXOR_MCP_ALLOWED_HOSTS",
    "allowed_origins": "NEXOR_MCP_ALLOWED_ORIGINS",
    "read_timeout_seconds": "NEXOR_MCP_READ_TIMEOUT_SECONDS",
    "max_connections": "NEXOR_MCP_MAX_CONNECTIONS",
    "public_url": "NEXOR_MCP_PUBLIC_URL",
}
HOSTED_FLAGS = {
    "host": "--host",
    "port": "--port",
    "allowed_hosts": "--allow-host",
    "allowed_origins": "--allow-origin",
    "read_timeout_seconds": "--read-timeout-seconds",
    "max_connections": "--max-connections",
    "public_url": "--public-url",
}


def tokens_from(value: str | None) -> tuple[Secret, ...]:
    return tuple(Secret(token.strip()) for token in (value or "").split(",") if token.strip())


def names_from(value: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (value or "").split(",") if name.strip())


class HostedSettings(LayeredSettings):
    """What only hosted mode needs, on top of `Settings`."""

    env_names: ClassVar[Mapping[str, str]] = HOSTED_ENV
    flag_names: ClassVar[Mapping[str, str]] = HOSTED_FLAGS

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    access_tokens: tuple[Secret, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
    """A request must arrive whole (request line, headers, body) this soon after its first byte."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Connections one process serves at once; a request beyond them gets 503."""
    public_url: str | None = None
    """The origin people reach this server by (`https://mcp.example.com`), for the approval pages'
    links and their same-origin check behind a proxy that terminates TLS; None: the request's own."""

    @field_validator("public_url", mode="plain")
    @classmethod
    def _public_url(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None or not str(value).strip():
            return None
        text = str(value).strip().rstrip("/")
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.username:
            raise Invalid(info.field_name or "", "an origin like https://mcp.example.com (no path)", value)
        return text

    @field_validator("host", mode="plain")
    @classmethod
    def _host(cls, value: Any) -> str:
        return str(value) or DEFAULT_HOST

    @field_validator("port", mode="plain")
    @classmethod
    def _port(cls, value: Any, info: ValidationInfo) -> int:
        return int(_number(value, info, int, 0, 65535, "a whole number from 0 to 65535"))

    @field_validator("access_tokens", mode="plain")
    @classmethod
    def _tokens(cls, value: Any) -> tuple[Secret, ...]:
        if isinstance(value, str):
            return tokens_from(value)
        return tuple(token if isinstance(token, Secret) else Secret(_text(token)) for token in value)

    @field_validator("allowed_hosts", "allowed_origins", mode="plain")
    @classmethod
    def _names(cls, value: Any) -> tuple[str, ...]:
        return names_from(value) if isinstance(value, str) else tuple(str(name) for name in value)

    @field_validator("read_timeout_seconds", mode="plain")
    @classmethod
    def _read_timeout(cls, value: Any, info: ValidationInfo) -> float:
        return _number(value, info, float, MIN_READ_TIMEOUT_SECONDS, MAX_READ_TIMEOUT_SECONDS,
                       f"a number of seconds from {MIN_READ_TIMEOUT_SECONDS:g} to {MAX_READ_TIMEOUT_SECONDS:g}")

    @field_validator("max_connections", mode="plain")
    @classmethod
    def _max_connections(cls, value: Any, info: ValidationInfo) -> int:
        expected = f"a whole number from 1 to {MAX_CONNECTIONS_LIMIT}"
        return int(_number(value, info, int, 1, MAX_CONNECTIONS_LIMIT, expected))


def _text(value: Any) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _number(value: Any, info: ValidationInfo, kind: type[int] | type[float], low: float, high: float,
            expected: str) -> float:
    """`value` as `kind` within [low, high]; `Invalid` is said with the flag or variable that gave it."""
    try:
        number: float | None = kind(str(value).strip())
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or not low <= number <= high:
        raise Invalid(info.field_name or "", expected, value)
    return number


def hosted_settings(environ: Mapping[str, str] | None = None, **flags: Any) -> HostedSettings:
    """Hosted-mode settings: flags over environment (default: this process's) over defaults. Raises
    ValueError naming the flag or variable of a value out of range."""
    try:
        return HostedSettings.load(flags, environ).settings
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def check_start(settings: Settings, hosted: HostedSettings) -> None:
    """Refuse configurations that would expose an account: a configured key, served beyond this
    machine, with no access token to guard it."""
    if settings.api_key is not None and not hosted.access_tokens and hosted.host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"{Settings.env_names['api_key']} is set and the server would listen on {hosted.host}, but no access "
            f"token is configured: anyone who can reach it would act on your account. Set "
            f"{HOSTED_ENV['access_tokens']}, or listen on {DEFAULT_HOST}"
        )


def hosted_environment(hosted: HostedSettings) -> dict[str, str]:
    """The variables that give a `--workers` process exactly these settings (the access tokens have
    no flag: they come from the environment the workers inherit, or were never set)."""
    variables = {
        HOSTED_ENV["host"]: hosted.host,
        HOSTED_ENV["port"]: str(hosted.port),
        HOSTED_ENV["read_timeout_seconds"]: repr(hosted.read_timeout_seconds),
        HOSTED_ENV["max_connections"]: str(hosted.max_connections),
    }
    if hosted.public_url:
        variables[HOSTED_ENV["public_url"]] = hosted.public_url
    for key in ("allowed_hosts", "allowed_origins"):  # --allow-host / --allow-origin reach the workers too
        if getattr(hosted, key):
            variables[HOSTED_ENV[key]] = ",".join(getattr(hosted, key))
    return variables
