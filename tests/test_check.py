"""`nexor-mcp check`, end to end: a real `python -m nexor_mcp check` process against the sandbox API.

Each case checks the exit status, the plain-words verdict, and that the key never appears in what
the command prints (stdout or stderr), not even a clipped prefix of it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nexor_mcp.masking import MASK
from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from tests.conftest import TEST_KEY

WRONG_KEY = "nxr_live_wrong_key_9b8a7c6d"


def run_check(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`nexor-mcp check` with only `env` (and PATH) set, as a user's shell would run it."""
    return subprocess.run(
        [sys.executable, "-m", "nexor_mcp", "check", *args],
        env={"PATH": os.environ.get("PATH", ""), **env}, cwd=cwd, capture_output=True, text=True, timeout=60,
        check=False, stdin=subprocess.DEVNULL,
    )


def assert_never_shows(result: subprocess.CompletedProcess[str], key: str) -> None:
    for stream in (result.stdout, result.stderr):
        assert key not in stream
        assert key[:12] not in stream, "a clipped prefix of the key leaked"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_a_good_key_passes_and_is_shown_masked(api: SandboxApi, sandbox_server: SandboxServer) -> None:
    result = run_check({"NEXOR_API_KEY": TEST_KEY, "NEXOR_BASE_URL": sandbox_server.base_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: the API key works." in result.stdout
    assert f"api_key               {MASK} (set, {len(TEST_KEY)} characters)  (from environment NEXOR_API_KEY)" \
        in result.stdout
    assert f"base_url              {sandbox_server.base_url}  (from environment NEXOR_BASE_URL)" in result.stdout
    assert [(request.method, request.path) for request in api.requests] == [("GET", "/api/public/tags")], \
        "exactly one harmless read"
    assert api.requests[0].headers["x-api-key"] == TEST_KEY
    assert_never_shows(result, TEST_KEY)


def test_a_wrong_key_fails_in_plain_words(api: SandboxApi, sandbox_server: SandboxServer) -> None:
    result = run_check({"NEXOR_API_KEY": WRONG_KEY, "NEXOR_BASE_URL": sandbox_server.base_url})
    assert result.returncode == 1
    assert "FAILED: Nexor refused the API key (HTTP 401). The key is wrong, revoked, or cut short" in result.stdout
    assert "OK:" not in result.stdout
    assert len(api.requests) == 1, "a 401 is not retried"
    assert_never_shows(result, WRONG_KEY)


def test_an_unreachable_base_url_fails_and_says_the_key_was_not_checked() -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/api/public"
    result = run_check({"NEXOR_API_KEY": TEST_KEY, "NEXOR_BASE_URL": base_url, "NEXOR_MAX_RETRIES": "5"})
    assert result.returncode == 1
    assert f"FAILED: Could not reach Nexor at {base_url}" in result.stdout
    assert "The key was not checked" in result.stdout
    assert "(from environment NEXOR_MAX_RETRIES)" in result.stdout, "shown as configured, though check tries once"
    assert_never_shows(result, TEST_KEY)


def test_no_key_fails_without_calling_nexor(api: SandboxApi, sandbox_server: SandboxServer) -> None:
    result = run_check({"NEXOR_BASE_URL": sandbox_server.base_url})
    assert result.returncode == 1
    assert "api_key               not set" in result.stdout
    assert "FAILED: no API key is set, so nothing was sent to Nexor. Set NEXOR_API_KEY" in result.stdout
    assert api.requests == []


def test_a_base_url_that_is_not_the_api_fails(api: SandboxApi, sandbox_server: SandboxServer) -> None:
    base_url = sandbox_server.base_url.removesuffix("/api/public") + "/somewhere/else"
    result = run_check({"NEXOR_API_KEY": TEST_KEY, "NEXOR_BASE_URL": base_url})
    assert result.returncode == 1
    assert "answered 404 for /tags, so it does not look like the Nexor API" in result.stdout
    assert_never_shows(result, TEST_KEY)


def test_each_setting_names_its_source(api: SandboxApi, sandbox_server: SandboxServer, tmp_path: Path) -> None:
    config = tmp_path / "nexor-mcp.json"
    config.write_text(f'{{"api_key": "{TEST_KEY}", "base_url": "{sandbox_server.base_url}", "tools": ["read"]}}',
                      encoding="utf-8")
    config.chmod(0o600)
    result = run_check({"NEXOR_TOOLS": "read,write", "NEXOR_MCP_CONFIG": str(config)},
                       "--timeout-seconds", "7", "--read-only")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"  config file           {config}  (from NEXOR_MCP_CONFIG)" in lines
    assert f"  api_key               {MASK} (set, {len(TEST_KEY)} characters)  (from config file {config})" in lines
    assert f"  base_url              {sandbox_server.base_url}  (from config file {config})" in lines
    assert "  tools                 read,write  (from environment NEXOR_TOOLS)" in lines
    assert "  timeout_seconds       7  (from flag --timeout-seconds)" in lines
    assert "  read_only             yes  (from flag --read-only)" in lines
    assert "  max_retries           2  (from default)" in lines
    assert any(line.startswith("  tools enabled         7: get_lead,") for line in lines), "read-only: 7 tools"
    assert_never_shows(result, TEST_KEY)


def test_flags_before_the_command_count_too(api: SandboxApi, sandbox_server: SandboxServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nexor_mcp", "--base-url", sandbox_server.base_url, "--tools", "read", "check"],
        env={"PATH": os.environ.get("PATH", ""), "NEXOR_API_KEY": TEST_KEY}, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"base_url              {sandbox_server.base_url}  (from flag --base-url)" in result.stdout
    assert "tools                 read  (from flag --tools)" in result.stdout


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"NEXOR_TIMEOUT_SECONDS": "0"}, "timeout_seconds must be a positive number of seconds"),
        ({"NEXOR_TOOLS": "read,nope"}, "unknown tool or group 'nope'"),
        ({"NEXOR_API_KEY": "nxr_live_replace_with_your_key"}, "api_key is still the placeholder"),
        ({"NEXOR_MCP_CONFIG": "/nonexistent/nexor.json"}, "cannot read config file /nonexistent/nexor.json"),
    ],
)
def test_a_configuration_the_server_would_refuse_fails_with_its_reason(env: dict[str, str], words: str) -> None:
    result = run_check(env)
    assert result.returncode == 1
    assert f"Configuration error: {words}" in result.stdout, result.stdout
    assert "The server would not start with this configuration" in result.stdout


def test_a_key_in_a_readable_config_file_is_warned_about_and_never_shown(
    api: SandboxApi, sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    config = tmp_path / "shared.json"
    config.write_text(f'{{"api_key": "{TEST_KEY}", "base_url": "{sandbox_server.base_url}"}}', encoding="utf-8")
    config.chmod(0o644)
    result = run_check({}, "--config", str(config))
    assert result.returncode == 0, result.stdout
    assert f"  config file           {config}  (from --config)" in result.stdout
    assert "warning: config file" in result.stdout and "chmod 600" in result.stdout
    assert_never_shows(result, TEST_KEY)


def test_the_sandbox_option_checks_against_the_embedded_sandbox() -> None:
    result = run_check({}, "--sandbox")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: the sandbox answered" in result.stdout


def test_a_forbidden_read_fails_and_a_key_nexor_quotes_back_stays_masked(
    api: SandboxApi, sandbox_server: SandboxServer
) -> None:
    api.inject(Fault(403, {"error": "Forbidden", "message": f"key {TEST_KEY} may not read tags"}))
    result = run_check({"NEXOR_API_KEY": TEST_KEY, "NEXOR_BASE_URL": sandbox_server.base_url})
    assert result.returncode == 1
    assert "FAILED: Nexor knows the key but refused this read (HTTP 403)" in result.stdout
    assert_never_shows(result, TEST_KEY)


def test_a_server_error_is_not_retried_and_leaves_the_verdict_open(
    api: SandboxApi, sandbox_server: SandboxServer
) -> None:
    api.inject(Fault(503, {"error": "down"}), times=3)
    result = run_check({"NEXOR_API_KEY": TEST_KEY, "NEXOR_BASE_URL": sandbox_server.base_url})
    assert result.returncode == 1
    assert "FAILED: the call did not succeed, so whether the key works is unknown" in result.stdout
    assert len(api.requests) == 1, "check makes one request, whatever max_retries says"


def test_write_safety_settings_are_reported_and_an_unwritable_journal_fails(
    api: SandboxApi, sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    base = {"NEXOR_API_KEY": TEST_KEY, "NEXOR_BASE_URL": sandbox_server.base_url}
    writable = run_check({**base, "NEXOR_CONFIRM": "never", "NEXOR_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
                          "NEXOR_MCP_SECRET": "s" * 40})
    assert writable.returncode == 0, writable.stdout
    assert "confirm               never  (from environment NEXOR_CONFIRM)" in writable.stdout
    assert "audit journal         writable" in writable.stdout
    assert "confirmation key      set (NEXOR_MCP_SECRET)" in writable.stdout and "s" * 40 not in writable.stdout
    broken = run_check({**base, "NEXOR_AUDIT_LOG": str(tmp_path / "missing" / "audit.jsonl")})
    assert broken.returncode == 1, broken.stdout
    assert "CANNOT BE WRITTEN (No such file or directory)" in broken.stdout
    assert broken.stdout.rstrip().endswith("so the server would refuse every write.")
    assert "confirm               automation,outreach  (from default)" in broken.stdout
    assert_never_shows(broken, TEST_KEY)
