"""`nexor-mcp check`: load the configuration exactly as the server would, say where each setting came
from, call Nexor once with a harmless read, and say in plain words whether the key works.

It is a command for a person (a GUI client hides the server's stderr, so a bad config there shows
only as "connection closed"): it writes to stdout, never runs as the stdio server, and exits 0 when
the key works, 1 otherwise. Every line it prints goes through the key mask first, so the key can
never appear, not even when Nexor quotes it back, and is then escaped (`quoting.one_line`), so an
error text from Nexor or a value from the config file cannot drive the terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from nexor_mcp import __version__
from nexor_mcp.config import (
    ENV_VARS,
    KEY_PREFIX,
    SECRET_ENV,
    ConfigError,
    Origin,
    Secret,
    Settings,
    config_file,
    load_settings_and_origins,
)
from nexor_mcp.masking import MASK, redact
from nexor_mcp.quoting import one_line

OK, FAILED = 0, 1


class _Out:
    """Prints lines with every secret masked (the key, once known) and control characters escaped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.secrets: tuple[str, ...] = ()

    def __call__(self, line: str = "") -> None:
        print(one_line(redact(line, self.secrets)), file=self.stream, flush=True)


def run_check(
    flags: Mapping[str, Any],
    config_path: str | None = None,
    *,
    sandbox: bool = False,
    log_format: str | None = None,
    environ: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> int:
    """The whole command; returns the exit status (0: the key works). `log_format`: the
    --log-format flag, if given, reported as the server would use it."""
    out = _Out(sys.stdout if stream is None else stream)
    out(f"nexor-mcp check {__version__}")
    try:
        settings, origins = load_settings_and_origins(flags, environ, config_path)
        _check_tools(settings)
    except ConfigError as exc:
        out(f"Configuration error: {exc}")
        out("The server would not start with this configuration (a GUI client shows only "
            "'connection closed'). Fix the setting named above and run `nexor-mcp check` again.")
        return FAILED
    if settings.api_key is not None:
        out.secrets = (settings.api_key.reveal(),)
    path, via = config_file(config_path, environ)
    _report(out, settings, origins, path, via)
    if log_format is not None:
        out(f"  {'log format':<22}{log_format}  (from flag --log-format)")
    journal_ok = _check_journal(out, settings)
    if sandbox:
        return _verdict(out, _check_sandbox(out, settings), journal_ok)
    if settings.api_key is None:
        out()
        out("FAILED: no API key is set, so nothing was sent to Nexor. Set NEXOR_API_KEY in the "
            "client's \"env\" (or api_key in the config file) to the key from the Nexor dashboard "
            f"(profile → Integrations; it starts with {KEY_PREFIX}).")
        return FAILED
    return _verdict(out, _call_nexor(out, settings), journal_ok)


def _verdict(out: _Out, status: int, journal_ok: bool) -> int:
    if journal_ok:
        return status
    out("FAILED: the audit journal or the database cannot be written (see above), so the server would refuse "
        "every write.")
    return FAILED


def _check_journal(out: _Out, settings: Settings) -> bool:
    """A configured audit journal must be writable: if not, the server refuses every write."""
    if settings.database is not None:
        return _check_database(out, settings)
    if not settings.audit_log:
        return True
    from nexor_mcp.audit import Journal

    journal = Journal(settings.audit_log)
    problem = journal.problem()
    if problem is None:
        out(f"  {'audit journal':<22}writable")
        if journal.mode_notice:
            out(f"  warning: {journal.mode_notice}")
        return True
    out(f"  {'audit journal':<22}CANNOT BE WRITTEN ({problem}): the server would refuse every write "
        "until audit_log / NEXOR_AUDIT_LOG names a writable file")
    return False


def _check_database(out: _Out, settings: Settings) -> bool:
    """NEXOR_DATABASE_URL must answer (and hold a schema this version can use): if not, the server
    refuses every write and confirmation. Creates or upgrades the schema, as the server's start does."""
    from nexor_mcp.store import StoreError, open_store

    assert settings.database is not None
    store = open_store(settings.database)
    try:
        store.migrate()
        version = store.schema_version()
    except StoreError as exc:
        out(f"  {'database':<22}DOES NOT ANSWER ({exc.reason}): the server would refuse every write and "
            "confirmation until it does (reads work without it)")
        return False
    finally:
        store.close()
    out(f"  {'database':<22}{settings.database.kind} answers, schema version {version}; it holds used "
        "confirmations and the audit journal")
    if settings.audit_log:
        out(f"  warning: audit_log is ignored: with {ENV_VARS['database_url']} the journal is in the database")
    return True


def _check_tools(settings: Settings) -> None:
    from nexor_mcp.tools import UnknownToolName, select_tools

    try:
        select_tools(settings.tools, read_only=settings.read_only)
    except UnknownToolName as exc:
        raise ConfigError(str(exc)) from None


def _report(
    out: _Out, settings: Settings, origins: Mapping[str, Origin], path: str | None, via: str
) -> None:
    """Each setting, and where its value came from (`origins`, from the loading itself)."""
    out()
    out("Settings (flags > environment > config file > defaults):")
    key = settings.api_key
    shown: dict[str, str] = {
        "api_key": "not set" if key is None else f"{MASK} (set, {len(key.reveal())} characters)",
        "base_url": settings.base_url,
        "timeout_seconds": f"{settings.timeout_seconds:g}",
        "max_retries": str(settings.max_retries),
        "retry_budget_seconds": f"{settings.retry_budget_seconds:g}",
        "log_level": settings.log_level,
        "tools": ",".join(settings.tools),
        "read_only": "yes" if settings.read_only else "no",
        "confirm": ",".join(settings.confirm) or "never",
        "database_url": "not set (process memory; the file journal if audit_log is set)"
        if settings.database is None else f"{settings.database.display} ({settings.database.kind})",
    }
    for name in ENV_VARS:  # settings added later are shown too, as the settings object holds them
        if name not in shown:
            shown[name] = _plain(getattr(settings, name, None))
    out(f"  {'config file':<22}{path or 'none'}{f'  (from {via})' if path else ''}")
    for name, value in shown.items():
        source = "" if name == "api_key" and key is None else f"  (from {origins[name]})"
        out(f"  {name:<22}{value}{source}")
    from nexor_mcp.tools import select_tools

    enabled = [spec.name for spec in select_tools(settings.tools, read_only=settings.read_only)]
    out(f"  {'tools enabled':<22}{len(enabled)}: {', '.join(enabled)}")
    sealed = f"set ({SECRET_ENV})" if settings.secret else "random per process (NEXOR_MCP_SECRET not set)"
    out(f"  {'confirmation key':<22}{sealed}")
    for warning in settings.warnings:
        out(f"  warning: {warning}")


def _plain(value: Any) -> str:
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple | list):
        return ",".join(str(item) for item in value) or "none"
    return str(value)


def _check_sandbox(out: _Out, settings: Settings) -> int:
    from nexor_mcp.sandbox import SANDBOX_API_KEY, SandboxServer

    out()
    out("--sandbox: checking against the embedded sandbox instead of Nexor (no key needed).")
    server = SandboxServer()
    try:
        base_url = server.start()
        sandbox_settings = settings.model_copy(update={"base_url": base_url, "api_key": Secret(SANDBOX_API_KEY)})
        return _call_nexor(out, sandbox_settings, what="the sandbox")
    finally:
        server.stop()


def _call_nexor(out: _Out, settings: Settings, what: str = "Nexor") -> int:
    """One GET /tags (reads only; changes nothing), with no retry: one request, one answer."""
    import anyio

    from nexor_mcp.errors import (
        ApiConnectionError,
        ApiTimeout,
        AuthenticationFailed,
        LeadNotFound,
        NexorError,
        PermissionDenied,
    )

    out()
    out(f"Calling {what}: GET {settings.base_url}/tags (a read that changes nothing) ...")
    once = settings.model_copy(update={"max_retries": 0})
    started = time.monotonic()
    try:
        answer = anyio.run(_list_tags, once)
    except AuthenticationFailed:
        out(f"FAILED: Nexor refused the API key (HTTP 401). The key is wrong, revoked, or cut short when it "
            f"was pasted. Copy it again from the Nexor dashboard (profile → Integrations; it starts with "
            f"{KEY_PREFIX}) into NEXOR_API_KEY, then run `nexor-mcp check` again.")
        return FAILED
    except PermissionDenied:
        out("FAILED: Nexor knows the key but refused this read (HTTP 403): the key lacks a permission the "
            "tools need. Check the key's access in the Nexor dashboard, or use another key.")
        return FAILED
    except LeadNotFound:
        out(f"FAILED: {settings.base_url} answered 404 for /tags, so it does not look like the Nexor API. "
            "Check base_url (the default is right for most accounts).")
        return FAILED
    except (ApiConnectionError, ApiTimeout) as exc:
        out(f"FAILED: {exc} The key was not checked: no answer came back.")
        return FAILED
    except NexorError as exc:
        out(f"FAILED: the call did not succeed, so whether the key works is unknown: {exc}")
        return FAILED
    took = (time.monotonic() - started) * 1000
    tags = answer.get("tags")
    count = f"; the account has {len(tags)} tag{'' if len(tags) == 1 else 's'}" if isinstance(tags, list) else ""
    if what == "Nexor":
        out(f"OK: the API key works. Nexor answered in {took:.0f} ms{count}.")
    else:
        out(f"OK: {what} answered in {took:.0f} ms{count}. (Your own key, if any, was not used.)")
    return OK


async def _list_tags(settings: Settings) -> dict[str, Any]:
    from nexor_mcp import endpoints
    from nexor_mcp.client import NexorClient

    client = NexorClient(settings)
    try:
        return await client.call(endpoints.list_tags(None))
    finally:
        await client.aclose()

