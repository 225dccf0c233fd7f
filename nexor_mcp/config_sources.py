"""Where settings come from, and which one wins: flags > environment > config file > the defaults.

That order is written once, in `sources`. `LayeredSettings.load` takes from each field the first
source that gives it a value, validates the lot as one pydantic model, and keeps the `Origin` of each
value, so `nexor-mcp check` can say where each setting came from and an error can name the flag or
variable it was given in. Every source is a pydantic-settings `PydanticBaseSettingsSource`;
`environment()` is the one place settings fall back to `os.environ`. The config file is read at most
once, and only if it is a small regular file (`open_regular_file`), so a FIFO or a device cannot hang it.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_FILE_ENV = "NEXOR_MCP_CONFIG"
MAX_CONFIG_BYTES = 1024 * 1024


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line for stderr."""


class Invalid(ConfigError):
    """A bad value, said as "<setting> must be <expected>, got <value>". `LayeredSettings.load` says
    the setting as the flag or variable that gave the value; a model built directly, as its field."""

    def __init__(self, field_name: str, expected: str, value: Any) -> None:
        self.field_name, self.expected, self.value = field_name, expected, value
        super().__init__(self.said_as(field_name))

    def said_as(self, name: str) -> str:
        return f"{name} must be {self.expected}, got {str(self.value)!r}"


def environment(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """`environ`, or else this process's environment: the one place settings read `os.environ`."""
    return os.environ if environ is None else environ


class Origin(NamedTuple):
    """Where a value came from: `kind` ("flag", "environment", "config file" or "default") and the
    flag, variable or path that gave it; `str()` is how `nexor-mcp check` says it."""

    kind: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.name}".rstrip()


DEFAULT = Origin("default")


def option(field_name: str) -> str:
    """The command-line flag of a setting: `timeout_seconds` is `--timeout-seconds`."""
    return "--" + field_name.replace("_", "-")


class LayeredSettings(BaseSettings):
    """A settings model filled by `load` from `sources`. Built directly (`Settings(base_url=...)`),
    it holds exactly the arguments given, as a plain pydantic model would: nothing is read."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", validate_default=False)

    env_names: ClassVar[Mapping[str, str]] = {}
    """Field -> environment variable."""
    flag_names: ClassVar[Mapping[str, str]] = {}
    """Field -> its flag where that is not `option(field)`."""
    file_keys: ClassVar[tuple[str, ...]] = ()
    """The keys a config file may hold; none: the model is never read from a file."""

    def __init__(self, **values: Any) -> None:
        # Exactly the arguments, validated: pydantic-settings' own sources (which would snapshot
        # os.environ on every construction) are not built. `load` layers this project's.
        BaseModel.__init__(self, **values)

    @classmethod
    def load(
        cls: type[M],
        flags: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        config_path: str | None = None,
    ) -> Loaded[M]:
        """The model from its `sources`, each field from the first source that gives it (a value of
        None counts as not given), else the field's default. Raises `ConfigError`; an `Invalid`
        value is named by the flag or variable it came from."""
        layers = sources(cls, flags, environ, config_path)
        values: dict[str, Any] = {}
        origins: dict[str, Origin] = {}
        for name, field in cls.model_fields.items():
            origins[name] = DEFAULT
            for layer in layers:
                value, _, _ = layer.get_field_value(field, name)
                if value is not None:
                    values[name], origins[name] = value, layer.origin(name)
                    break
        try:
            settings = cls(**values)
        except Invalid as exc:
            origin = origins.get(exc.field_name, DEFAULT)
            named = origin.name if origin.kind in (FlagSource.kind, EnvironmentSource.kind) else exc.field_name
            raise ConfigError(exc.said_as(named)) from None
        return Loaded(settings, origins, layers)


M = TypeVar("M", bound=LayeredSettings)


@dataclass(frozen=True)
class Loaded(Generic[M]):
    """What `LayeredSettings.load` made, from what."""

    settings: M
    origins: Mapping[str, Origin]
    """Field -> where its value came from (`DEFAULT` if from no source)."""
    layers: tuple[Layer, ...]

    def file(self) -> ConfigFileSource | None:
        return next((layer for layer in self.layers if isinstance(layer, ConfigFileSource)), None)


def sources(
    settings_cls: type[LayeredSettings],
    flags: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None,
    config_path: str | None = None,
) -> tuple[Layer, ...]:
    """The precedence, highest first: the flags given, the environment, then the config file (from
    `--config`, else NEXOR_MCP_CONFIG) if the model reads one."""
    environ = environment(environ)
    layers: list[Layer] = [FlagSource(settings_cls, flags or {}), EnvironmentSource(settings_cls, environ)]
    path, _ = config_file(config_path, environ)
    if path and settings_cls.file_keys:
        layers.append(ConfigFileSource(settings_cls, path))
    return tuple(layers)


def config_file(config_path: str | None, environ: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """The config file to read (None: none) and what named it: `--config`, else NEXOR_MCP_CONFIG."""
    if config_path:
        return config_path, "--config"
    return environment(environ).get(CONFIG_FILE_ENV) or None, CONFIG_FILE_ENV


class Layer(PydanticBaseSettingsSource):
    """One source, read when it is made: raw values by field name (None: not given)."""

    kind: ClassVar[str]

    def __init__(self, settings_cls: type[LayeredSettings], values: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self.values = {key: value for key, value in values.items() if value is not None}

    def origin(self, field_name: str) -> Origin:
        return Origin(self.kind, field_name)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


class FlagSource(Layer):
    """The command-line flags given (a value of None: the flag was not given)."""

    kind = "flag"

    def __init__(self, settings_cls: type[LayeredSettings], flags: Mapping[str, Any]) -> None:
        known = {*settings_cls.env_names, *settings_cls.flag_names}
        super().__init__(settings_cls, {key: value for key, value in flags.items() if key in known})
        self.flag_names = settings_cls.flag_names

    def origin(self, field_name: str) -> Origin:
        return Origin(self.kind, self.flag_names.get(field_name) or option(field_name))


class EnvironmentSource(Layer):
    """The model's environment variables, stripped; an empty or blank one counts as unset."""

    kind = "environment"

    def __init__(self, settings_cls: type[LayeredSettings], environ: Mapping[str, str]) -> None:
        values = {key: environ.get(var, "").strip() or None for key, var in settings_cls.env_names.items()}
        super().__init__(settings_cls, values)
        self.env_names = settings_cls.env_names

    def origin(self, field_name: str) -> Origin:
        return Origin(self.kind, self.env_names[field_name])


class ConfigFileSource(Layer):
    """A JSON object of the model's `file_keys` (null: not given). `mode` is the file's, for the
    warning that others can read a key in it."""

    kind = "config file"

    def __init__(self, settings_cls: type[LayeredSettings], path: str) -> None:
        self.path = path
        self.mode, data = _read_config_file(path, settings_cls.file_keys)
        super().__init__(settings_cls, data)

    def origin(self, field_name: str) -> Origin:
        return Origin(self.kind, self.path)


def _read_config_file(path: str, keys: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
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
        raise ConfigError(f"config file {path} must hold a JSON object with keys {', '.join(keys)}")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ConfigError(f"config file {path}: unknown key(s) {', '.join(unknown)}; expected {', '.join(keys)}")
    return mode, data


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
