"""Settings: one pydantic model, filled from defaults < config file < environment < command-line flags.

`Settings` holds the fields, their defaults and their validators; where the values come from, and in
which order, is `config_sources` (written once, and shared with hosted mode's `HostedSettings` and
with `nexor-mcp check`, which shows where each value came from). A bad value fails at start with one
clear line (`ConfigError`) naming the setting; the API key is a `Secret` (a pydantic `SecretStr`) so
that no repr, log line or error can show it.
"""

from __future__ import annotations

import ipaddress
import math
import os
import stat
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationInfo, field_validator

# The `X as X` names are re-exported: other modules take them from here.
from nexor_mcp.config_sources import CONFIG_FILE_ENV as CONFIG_FILE_ENV
from nexor_mcp.config_sources import MAX_CONFIG_BYTES as MAX_CONFIG_BYTES
from nexor_mcp.config_sources import NOT_REGULAR as NOT_REGULAR
from nexor_mcp.config_sources import SYMLINK_REFUSED as SYMLINK_REFUSED
from nexor_mcp.config_sources import ConfigError as ConfigError
from nexor_mcp.config_sources import LayeredSettings
from nexor_mcp.config_sources import NotARegularFile as NotARegularFile
from nexor_mcp.config_sources import Origin as Origin
from nexor_mcp.config_sources import config_file as config_file
from nexor_mcp.config_sources import environment as environment
from nexor_mcp.config_sources import open_regular_file as open_regular_file
from nexor_mcp.config_sources import option as option

if TYPE_CHECKING:
    from nexor_mcp.store.urls import DatabaseUrl

DEFAULT_BASE_URL = "https://api.getnexor.ai/api/public"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_RETRIES = 2
MAX_RETRIES_LIMIT = 10
DEFAULT_RETRY_BUDGET_SECONDS = 20.0
DEFAULT_APPROVAL_TIMEOUT_SECONDS = 300.0
"""How long an approval page waits for the person's decision (and how long an approval lives)."""
DEFAULT_LOG_LEVEL = "INFO"
KEY_PREFIX = "nxr_live_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# config-file key -> environment variable
ENV_VARS = {
    "api_key": "NEXOR_API_KEY",
    "base_url": "NEXOR_BASE_URL",
    "timeout_seconds": "NEXOR_TIMEOUT_SECONDS",
    "max_retries": "NEXOR_MAX_RETRIES",
    "retry_budget_seconds": "NEXOR_RETRY_BUDGET_SECONDS",
    "log_level": "NEXOR_LOG_LEVEL",
    "tools": "NEXOR_TOOLS",
    "read_only": "NEXOR_READ_ONLY",
    "confirm": "NEXOR_CONFIRM",
    "confirm_via": "NEXOR_CONFIRM_VIA",
    "audit_log": "NEXOR_AUDIT_LOG",
    "database_url": "NEXOR_DATABASE_URL",
    "approval_timeout_seconds": "NEXOR_APPROVAL_TIMEOUT",
}
DEFAULT_TOOLS = ("read", "write")
CONFIRMABLE_GROUPS = ("automation", "outreach")
"""The groups whose tools can need a person's confirmation: they contact people or move the pipeline."""
CONFIRM_VIA = ("auto", "token")
DEFAULT_CONFIRM_VIA = "auto"
SECRET_ENV = "NEXOR_MCP_SECRET"
"""A key shared by every replica of a hosted deployment, so a confirmation one replica issued is
accepted by any other; without it each process makes its own."""
MIN_SECRET_BYTES = 32
# Keys people paste from config.example.json or the README without replacing them.
PLACEHOLDER_KEYS = ("nxr_live_replace_with_your_key", "nxr_live_...")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""The names of this machine: a hosted server bound to one needs no access token, and a base URL on
one (or on any loopback address, or a `.localhost` name) may use plain http."""
MAX_LINE_BYTES_ENV = "NEXOR_MCP_MAX_LINE_BYTES"
"""The stdio line limit; tests set it to show the oversize answer without sending 64 MiB."""
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024


class Secret(SecretStr):
    """A string that never shows itself: repr/str print a mask, `reveal()` gives the value."""

    def reveal(self) -> str:
        return self.get_secret_value()

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


class Settings(LayeredSettings):
    """Every setting of the server (frozen). `load_settings` fills it from the sources in precedence
    order; built directly (tests, the sandbox), it is exactly its arguments, validated."""

    env_names: ClassVar[Mapping[str, str]] = {**ENV_VARS, "secret": SECRET_ENV}  # the secret: never in a file
    file_keys: ClassVar[tuple[str, ...]] = tuple(ENV_VARS)

    api_key: Secret | None = None
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS
    log_level: str = DEFAULT_LOG_LEVEL
    tools: tuple[str, ...] = DEFAULT_TOOLS
    """Groups and tool names to enable; checked against the tool catalogue when the server starts."""
    read_only: bool = False
    confirm: tuple[str, ...] = CONFIRMABLE_GROUPS
    """The groups whose tools need a person's confirmation before they run (NEXOR_CONFIRM; "never": none)."""
    confirm_via: str = DEFAULT_CONFIRM_VIA
    """"auto": the person approves in a question the client shows them, or on an approval page in
    their browser (nexor_mcp/approve_url.py); "token": always the two-step token, which the model
    relays (agent-relayed: the model can confirm by itself), an explicit opt-in."""
    secret: Secret | None = None
    """NEXOR_MCP_SECRET: seals confirmation tokens; `None` means a random key per process."""
    audit_log: str | None = None
    """The audit journal's path (absolute, `~` expanded); None: no journal."""
    approval_timeout_seconds: float = DEFAULT_APPROVAL_TIMEOUT_SECONDS
    """NEXOR_APPROVAL_TIMEOUT: seconds an approval page waits for the person's decision."""
    database_url: Secret | None = None
    """NEXOR_DATABASE_URL: where used confirmations and the audit journal live (`sqlite:///ABS/PATH` or
    `postgresql://...`), shared by processes, workers and replicas; None: process memory and the
    file journal. A Secret: it may hold the database's password."""
    warnings: tuple[str, ...] = ()
    """Said at start; not part of the settings' value (two settings differing only here are equal)."""

    def _compared(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in type(self).model_fields if name != "warnings")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    # Each validator takes a value from any source (flag, variable, file, or an argument given in
    # code), in field order, so the first bad setting is the one named.

    @field_validator("api_key", mode="plain")
    @classmethod
    def _api_key(cls, value: Any) -> Secret | None:
        if value is None:
            return None
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            raise ConfigError("api_key must be a string")
        key = value.strip()
        if key and not (key.isascii() and key.isprintable()):
            raise ConfigError("api_key must be printable ASCII (check it was copied whole from the dashboard)")
        if key in PLACEHOLDER_KEYS:
            raise ConfigError(
                f"api_key is still the placeholder {key!r} from the example; put your real key from the "
                "Nexor dashboard (profile → Integrations) in its place"
            )
        return Secret(key) if key else None

    @field_validator("base_url", mode="plain")
    @classmethod
    def _base_url(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"base_url must be a string URL, e.g. {DEFAULT_BASE_URL}")
        url = value.strip().rstrip("/")
        problem = f"base_url must be an http(s) URL like {DEFAULT_BASE_URL}, got {url!r}"
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - parsing the port validates it
        except ValueError:
            raise ConfigError(problem) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(problem)
        if parts.username or parts.password:
            raise ConfigError(f"base_url must not contain credentials; set the key with {ENV_VARS['api_key']}")
        if "?" in url or "#" in url:  # not echoed: a query may hold a token
            raise ConfigError(f"base_url must not have a query (?...) or fragment (#...), e.g. {DEFAULT_BASE_URL}")
        return url

    @field_validator("timeout_seconds", "retry_budget_seconds", "approval_timeout_seconds", mode="plain")
    @classmethod
    def _seconds(cls, value: Any, info: ValidationInfo) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
            raise ConfigError(f"{info.field_name} must be a positive number of seconds, got {value!r}")
        return number

    @field_validator("max_retries", mode="plain")
    @classmethod
    def _retries(cls, value: Any) -> int:
        try:
            number = int(str(value))
        except ValueError:
            number = -1
        if isinstance(value, bool) or number < 0 or number > MAX_RETRIES_LIMIT:
            raise ConfigError(f"max_retries must be a whole number from 0 to {MAX_RETRIES_LIMIT}, got {value!r}")
        return number

    @field_validator("log_level", mode="plain")
    @classmethod
    def _log_level(cls, value: Any) -> str:
        level = str(value).strip().upper()
        if level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return level

    @field_validator("tools", mode="plain")
    @classmethod
    def _tools(cls, value: Any) -> tuple[str, ...]:
        """A comma list (flag, environment) or an array of strings (config file)."""
        names = _names(value)
        if names is None:
            raise ConfigError(f'tools must be a comma list like "read,write" or an array of names, got {value!r}')
        names = [name for name in names if name]
        if not names:
            raise ConfigError('tools is empty; name at least one group or tool, e.g. "read"')
        return tuple(dict.fromkeys(names))

    @field_validator("read_only", mode="plain")
    @classmethod
    def _read_only(cls, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"read_only must be true or false (1/0, yes/no), got {value!r}")

    @field_validator("confirm", mode="plain")
    @classmethod
    def _confirm(cls, value: Any) -> tuple[str, ...]:
        """"never", or a comma list / array of the confirmable groups."""
        expected = f'confirm must be "never" or a comma list of {", ".join(CONFIRMABLE_GROUPS)}, got {value!r}'
        names = _names(value)
        if names is None:
            raise ConfigError(expected)
        names = [name.lower() for name in names if name]
        if names == ["never"]:
            return ()
        if not names or any(name not in CONFIRMABLE_GROUPS for name in names):
            raise ConfigError(expected)
        return tuple(group for group in CONFIRMABLE_GROUPS if group in names)

    @field_validator("confirm_via", mode="plain")
    @classmethod
    def _confirm_via(cls, value: Any) -> str:
        text = str(value).strip().lower()
        if text not in CONFIRM_VIA:
            raise ConfigError(f"confirm_via must be one of {', '.join(CONFIRM_VIA)}, got {value!r}")
        return text

    @field_validator("secret", mode="plain")
    @classmethod
    def _secret(cls, value: Any) -> Secret | None:
        if value is None:
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if len(text.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{SECRET_ENV} must be at least {MIN_SECRET_BYTES} bytes (e.g. the output of: openssl rand -hex 32)"
            )
        return Secret(text)

    @field_validator("audit_log", mode="plain")
    @classmethod
    def _audit_log(cls, value: Any) -> str | None:
        """An absolute path (after `~`): a relative one would land wherever the host started the server."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or "\0" in value:
            raise ConfigError(f"audit_log must be a file path, got {value!r}")
        path = os.path.expanduser(value.strip())
        if not os.path.isabs(path):
            raise ConfigError(f"audit_log must be an absolute path (or start with ~/), got {value.strip()!r}")
        return path


    @field_validator("database_url", mode="plain")
    @classmethod
    def _database_url(cls, value: Any) -> Secret | None:
        """Parsed here, so a bad URL fails at start with one line (its password masked)."""
        from nexor_mcp.store.urls import SQLITE_EXAMPLE, parse_database_url  # only when one is given

        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ConfigError(f"database_url must be a URL string (e.g. {SQLITE_EXAMPLE})")
        try:
            parse_database_url(value)
        except ValueError as exc:
            raise ConfigError(f"database_url ({ENV_VARS['database_url']}): {exc}") from None
        return Secret(value.strip())

    @property
    def database(self) -> DatabaseUrl | None:
        """The parsed NEXOR_DATABASE_URL (its `display` is safe to show); None when unset."""
        from nexor_mcp.store.urls import parse_database_url

        return parse_database_url(self.database_url.reveal()) if self.database_url else None


def _names(value: Any) -> list[str] | None:
    """The stripped items of a comma list or an array of strings; None if it is neither."""
    if isinstance(value, str):
        return [name.strip() for name in value.split(",")]
    if isinstance(value, list | tuple) and all(isinstance(name, str) for name in value):
        return [name.strip() for name in value]
    return None


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> Settings:
    """The settings from flags > environment (default: this process's) > config file > defaults."""
    return load_settings_and_origins(flags, environ, config_path)[0]


def load_settings_and_origins(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> tuple[Settings, Mapping[str, Origin]]:
    """`load_settings`, and where each setting's value came from (for `nexor-mcp check`)."""
    loaded = Settings.load(flags, environ, config_path)
    settings, warnings = loaded.settings, []
    file = loaded.file()
    if file and file.values.get("api_key") and sys.platform != "win32" and file.mode & 0o077:
        warnings.append(
            f"config file {file.path} holds the API key but other users can access it "
            f"(mode {stat.S_IMODE(file.mode):o}); make it private with: chmod 600 {file.path}"
        )
    if settings.api_key is not None and not settings.api_key.reveal().startswith(KEY_PREFIX):
        warnings.append(
            f"the API key does not start with {KEY_PREFIX!r}; Nexor keys normally do "
            "(check it was copied whole from the dashboard)"
        )
    parts = urlsplit(settings.base_url)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        warnings.append(
            f"base_url uses plain http:// to {parts.hostname}, which is not this machine: the API key and the "
            "lead data would travel unencrypted; use https://"
        )
    return settings.model_copy(update={"warnings": tuple(warnings)}), loaded.origins


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine: a `LOOPBACK_HOSTS` name, a `.localhost` name or a loopback address."""
    if host in LOOPBACK_HOSTS or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_environment(flags: Mapping[str, Any], config_path: str | None) -> dict[str, str]:
    """The variables that give a child process (a `--workers` worker) the settings these flags and
    this config file give here: each flag as its variable (booleans as true/false)."""
    variables = {
        ENV_VARS[key]: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in flags.items() if value is not None
    }
    if config_path:
        variables[CONFIG_FILE_ENV] = config_path
    return variables


def max_line_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The stdio transport's line limit: NEXOR_MCP_MAX_LINE_BYTES if a positive whole number, else 64 MiB."""
    raw = environment(environ).get(MAX_LINE_BYTES_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_LINE_BYTES
