"""Settings: defaults < config file < environment < command-line flags.

A bad value fails at start with one clear line (`ConfigError`); the API key is held in a `Secret`
so that no repr, log line or error can show it.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import math
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.getnexor.ai/api/public"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_RETRY_BUDGET_SECONDS = 20.0
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
}
DEFAULT_TOOLS = ("read", "write")
CONFIRMABLE_GROUPS = ("automation", "outreach")
"""The groups whose tools can need a person's confirmation: they contact people or move the pipeline."""
SECRET_ENV = "NEXOR_MCP_SECRET"
"""A key shared by every replica of a hosted deployment, so a confirmation one replica issued is
accepted by any other; without it each process makes its own."""
MIN_SECRET_BYTES = 32
CONFIG_FILE_ENV = "NEXOR_MCP_CONFIG"
MAX_CONFIG_BYTES = 1024 * 1024
# Keys people paste from config.example.json or the README without replacing them.
PLACEHOLDER_KEYS = ("nxr_live_replace_with_your_key", "nxr_live_...")


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line for stderr."""


class Secret:
    """A string that never shows itself: repr/str print a mask, `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Settings:
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
    confirm_via: str = "auto"
    """"auto": ask through the client when it can elicit, else a token; "token": always the token
    (for hosts that declare elicitation but answer it without showing anyone)."""
    secret: Secret | None = None
    """NEXOR_MCP_SECRET: seals confirmation tokens; `None` means a random key per process."""
    audit_log: str | None = None
    """The audit journal's path (absolute, `~` expanded); None: no journal."""
    warnings: tuple[str, ...] = field(default=(), compare=False)


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> Settings:
    """Merge the sources in precedence order and validate every value."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    warnings: list[str] = []
    path = config_path or environ.get(CONFIG_FILE_ENV)
    if path:
        raw.update(_read_config_file(path, warnings))
    for key, var in ENV_VARS.items():
        if environ.get(var, "").strip():
            raw[key] = environ[var].strip()
    if environ.get(SECRET_ENV, "").strip():
        raw["secret"] = environ[SECRET_ENV].strip()  # the environment only: never in a config file
    for key, value in (flags or {}).items():
        if value is not None:
            raw[key] = value
    return _build(raw, warnings)


def _read_config_file(path: str, warnings: list[str]) -> dict[str, Any]:
    mode, data_bytes = _read_small_regular_file(path)
    try:
        text = data_bytes.decode("utf-8-sig")  # a BOM, as some Windows editors write, is fine
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object with keys {', '.join(ENV_VARS)}")
    unknown = sorted(set(data) - set(ENV_VARS))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; expected {', '.join(ENV_VARS)}"
        )
    if data.get("api_key") and sys.platform != "win32" and mode & 0o077:
        warnings.append(
            f"config file {path} holds the API key but other users can access it "
            f"(mode {stat.S_IMODE(mode):o}); make it private with: chmod 600 {path}"
        )
    return {key: value for key, value in data.items() if value is not None}


class NotARegularFile(OSError):
    """The path names a FIFO, a device, a directory, a socket or (when links are not followed) a
    symbolic link: something that could hang a read or an open, read without end, or redirect a write."""


NOT_REGULAR = "it is not a regular file"
SYMLINK_REFUSED = "it is a symbolic link, and symbolic links are not followed here"


def open_regular_file(
    path: str | os.PathLike[str], flags: int = os.O_RDONLY, mode: int = 0o600, *, follow_symlinks: bool = True
) -> tuple[int, os.stat_result]:
    """A descriptor of `path` and its status, opened non-blocking and checked to be a regular file
    before anything is read or written, so that a FIFO, a device such as /dev/zero or /dev/stdout,
    or a directory fails at once instead of hanging, reading without end, or corrupting the stdio
    protocol. `follow_symlinks=False` refuses a symbolic link as the last component (O_NOFOLLOW).
    Raises `OSError`: `NotARegularFile` (its `strerror` says which) for anything but a regular file."""
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(Path(path).expanduser(), flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks and os.path.islink(Path(path).expanduser()):
            raise NotARegularFile(errno.ELOOP, SYMLINK_REFUSED) from None
        if exc.errno == errno.ENXIO:  # a FIFO no one reads, a socket, a device that is not there
            raise NotARegularFile(errno.ENXIO, NOT_REGULAR) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(errno.EINVAL, NOT_REGULAR)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def _read_small_regular_file(path: str) -> tuple[int, bytes]:
    """The file's mode and bytes, refused at once if it is not a regular file or is huge."""
    try:
        fd, info = open_regular_file(path)
    except NotARegularFile:
        raise ConfigError(f"config file {path} is not a regular file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is larger than 1 MB ({info.st_size} bytes); is it the right file?")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_CONFIG_BYTES:  # it grew after the check
                raise ConfigError(f"config file {path} is larger than 1 MB; is it the right file?")
        return info.st_mode, b"".join(chunks)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _build(raw: Mapping[str, Any], warnings: list[str] | None = None) -> Settings:
    warnings = [] if warnings is None else warnings
    api_key: Secret | None = None
    if "api_key" in raw:
        key = raw["api_key"]
        if not isinstance(key, str):
            raise ConfigError("api_key must be a string")
        key = key.strip()
        if key and not (key.isascii() and key.isprintable()):
            raise ConfigError("api_key must be printable ASCII (check it was copied whole from the dashboard)")
        if key in PLACEHOLDER_KEYS:
            raise ConfigError(
                f"api_key is still the placeholder {key!r} from the example; put your real key from the "
                "Nexor dashboard (profile → Integrations) in its place"
            )
        if key:
            api_key = Secret(key)
            if not key.startswith(KEY_PREFIX):
                warnings.append(
                    f"the API key does not start with {KEY_PREFIX!r}; Nexor keys normally do "
                    "(check it was copied whole from the dashboard)"
                )
    base_url = _base_url(raw.get("base_url", DEFAULT_BASE_URL))
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme == "http" and not _is_loopback(host):
        warnings.append(
            f"base_url uses plain http:// to {host}, which is not this machine: the API key and the "
            "lead data would travel unencrypted; use https://"
        )
    return Settings(
        api_key=api_key,
        base_url=base_url,
        timeout_seconds=_positive_number(raw, "timeout_seconds", DEFAULT_TIMEOUT_SECONDS),
        max_retries=_retries(raw.get("max_retries", DEFAULT_MAX_RETRIES)),
        retry_budget_seconds=_positive_number(raw, "retry_budget_seconds", DEFAULT_RETRY_BUDGET_SECONDS),
        log_level=_log_level(raw.get("log_level", DEFAULT_LOG_LEVEL)),
        tools=_tool_names(raw.get("tools", DEFAULT_TOOLS)),
        read_only=_flag(raw.get("read_only", False), "read_only"),
        confirm=_confirm_groups(raw.get("confirm", CONFIRMABLE_GROUPS)),
        confirm_via=_choice(raw.get("confirm_via", "auto"), "confirm_via", ("auto", "token")),
        secret=_secret(raw.get("secret")),
        audit_log=_audit_log(raw.get("audit_log")),
        warnings=tuple(warnings),
    )


def _tool_names(value: Any) -> tuple[str, ...]:
    """A comma list (flag, environment) or an array of strings (config file)."""
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",")]
    elif isinstance(value, list | tuple) and all(isinstance(name, str) for name in value):
        names = [name.strip() for name in value]
    else:
        raise ConfigError(f'tools must be a comma list like "read,write" or an array of names, got {value!r}')
    names = [name for name in names if name]
    if not names:
        raise ConfigError('tools is empty; name at least one group or tool, e.g. "read"')
    return tuple(dict.fromkeys(names))


def _confirm_groups(value: Any) -> tuple[str, ...]:
    """"never", or a comma list / array of the confirmable groups."""
    expected = f'confirm must be "never" or a comma list of {", ".join(CONFIRMABLE_GROUPS)}'
    if isinstance(value, str):
        names = [name.strip().lower() for name in value.split(",")]
    elif isinstance(value, list | tuple) and all(isinstance(name, str) for name in value):
        names = [name.strip().lower() for name in value]
    else:
        raise ConfigError(f"{expected}, got {value!r}")
    names = [name for name in names if name]
    if names == ["never"]:
        return ()
    wrong = [name for name in names if name not in CONFIRMABLE_GROUPS]
    if wrong or not names:
        raise ConfigError(f"{expected}, got {value!r}")
    return tuple(group for group in CONFIRMABLE_GROUPS if group in names)


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return text


def _secret(value: Any) -> Secret | None:
    if value is None:
        return None
    if len(str(value).encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{SECRET_ENV} must be at least {MIN_SECRET_BYTES} bytes (e.g. the output of: openssl rand -hex 32)"
        )
    return Secret(str(value))


def _audit_log(value: Any) -> str | None:
    """An absolute path (after `~`): a relative one would land wherever the host started the server."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or "\0" in value:
        raise ConfigError(f"audit_log must be a file path, got {value!r}")
    path = os.path.expanduser(value.strip())
    if not os.path.isabs(path):
        raise ConfigError(f"audit_log must be an absolute path (or start with ~/), got {value.strip()!r}")
    return path


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key} must be true or false (1/0, yes/no), got {value!r}")


def _base_url(value: Any) -> str:
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
        raise ConfigError("base_url must not contain credentials; set the key with NEXOR_API_KEY")
    if "?" in url or "#" in url:  # not echoed: a query may hold a token
        raise ConfigError(f"base_url must not have a query (?...) or fragment (#...), e.g. {DEFAULT_BASE_URL}")
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _positive_number(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{key} must be a positive number of seconds, got {value!r}")
    return number


def _retries(value: Any) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if isinstance(value, bool) or number < 0 or number > 10:
        raise ConfigError(f"max_retries must be a whole number from 0 to 10, got {value!r}")
    return number


def _log_level(value: Any) -> str:
    level = str(value).strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level
