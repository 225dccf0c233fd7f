"""End to end: configuration sources and their precedence, running without a key, `--sandbox`,
and start-up failures. Each test starts its own server process with its own environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nexor_mcp.sandbox import DEMO_LEAD_IDS, SandboxApi, SandboxServer
from tests.conftest import ANA, TEST_KEY, server_env, spawn_server, text_of

pytestmark = pytest.mark.anyio

DEAD_URL = "http://127.0.0.1:9/api/public"  # nothing listens on the discard port


def write_config(tmp_path: Path, **values: object) -> str:
    path = tmp_path / "nexor.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    return str(path)


async def test_without_a_key_tools_are_listed_and_calls_explain_how_to_set_it(
    sandbox_server: SandboxServer, api: SandboxApi
) -> None:
    async with spawn_server({"NEXOR_BASE_URL": sandbox_server.base_url}) as process:
        tools = await process.session.list_tools()
        assert {"get_lead", "update_lead"} <= {tool.name for tool in tools.tools}
        for tool, args in (("update_lead", {"lead_id": ANA, "title": "x"}), ("get_lead", {"lead_id": ANA})):
            result = await process.call(tool, args)
            assert result.is_error
            assert "No Nexor API key is configured, so nothing was sent" in text_of(result)
            assert "NEXOR_API_KEY" in text_of(result)
        assert "no Nexor API key is set" in process.stderr_text()
    assert api.requests == []


async def test_config_file_is_used(sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path) -> None:
    config = write_config(tmp_path, api_key=TEST_KEY, base_url=sandbox_server.base_url)
    async with spawn_server({}, ("--config", config)) as process:
        assert not (await process.call("get_lead", {"lead_id": ANA})).is_error
    assert len(api.requests) == 1


async def test_config_file_from_env_var(sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path) -> None:
    config = write_config(tmp_path, api_key=TEST_KEY, base_url=sandbox_server.base_url)
    async with spawn_server({"NEXOR_MCP_CONFIG": config}) as process:
        assert not (await process.call("get_lead", {"lead_id": ANA})).is_error
    assert len(api.requests) == 1


async def test_environment_beats_config_file(sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path) -> None:
    config = write_config(tmp_path, api_key="nxr_live_wrong", base_url=DEAD_URL)
    env = server_env(sandbox_server.base_url)
    async with spawn_server(env, ("--config", config)) as process:
        result = await process.call("get_lead", {"lead_id": ANA})
        assert not result.is_error, text_of(result)
    assert api.requests[0].headers["x-api-key"] == TEST_KEY


async def test_flags_beat_environment(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    env = server_env(DEAD_URL)
    async with spawn_server(env, ("--base-url", sandbox_server.base_url)) as process:
        result = await process.call("get_lead", {"lead_id": ANA})
        assert not result.is_error, text_of(result)
    assert len(api.requests) == 1


async def test_timeout_setting_is_applied(sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path) -> None:
    from nexor_mcp.sandbox import Fault

    config = write_config(tmp_path, timeout_seconds=0.5, max_retries=0)
    api.inject(Fault(200, {"success": True}, delay=2.0))
    async with spawn_server(server_env(sandbox_server.base_url), ("--config", config)) as process:
        result = await process.call("get_lead", {"lead_id": ANA})
    assert result.is_error
    assert "did not answer within 0.5 s" in text_of(result)


async def test_key_without_the_live_prefix_warns_but_works(sandbox_server: SandboxServer) -> None:
    odd_key = "sk_test_0123456789abcdef"
    sandbox_server.api.reset()
    sandbox_server.api.api_key = odd_key
    try:
        env = {"NEXOR_BASE_URL": sandbox_server.base_url, "NEXOR_API_KEY": odd_key}
        async with spawn_server(env, ("--log-level", "debug")) as process:
            result = await process.call("get_lead", {"lead_id": ANA})
            assert not result.is_error, text_of(result)
            stderr = process.stderr_text()
    finally:
        sandbox_server.api.api_key = TEST_KEY
    assert "does not start with 'nxr_live_'" in stderr
    assert odd_key not in stderr


async def test_sandbox_flag_needs_no_key_and_serves_demo_leads() -> None:
    async with spawn_server({}, ("--sandbox",)) as process:
        got = await process.call("get_lead", {"lead_id": DEMO_LEAD_IDS[0]})
        assert not got.is_error, text_of(got)
        assert (got.structured_content or {})["lead"]["first_name"] == "Ana"
        updated = await process.call("update_lead", {"lead_id": DEMO_LEAD_IDS[0], "metadata": {"plan": "pro"}})
        assert not updated.is_error, text_of(updated)
        assert (updated.structured_content or {})["lead"]["metadata"] == {
            "edad": 34, "utm_source": "google", "plan": "pro"
        }


@pytest.mark.parametrize(
    ("args", "env", "fact"),
    [
        (["--config", "/nonexistent/nexor.json"], {}, "cannot read config file /nonexistent/nexor.json"),
        ([], {"NEXOR_TIMEOUT_SECONDS": "soon"}, "timeout_seconds must be a positive number"),
        ([], {"NEXOR_BASE_URL": "api.getnexor.ai"}, "base_url must be an http(s) URL"),
        ([], {"NEXOR_MAX_RETRIES": "-1"}, "max_retries must be a whole number"),
    ],
)
def test_bad_configuration_fails_at_start_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], fact: str
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert fact in lines[0]


def test_bad_config_file_contents(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json", encoding="utf-8")
    unknown_key = tmp_path / "unknown.json"
    unknown_key.write_text('{"apikey": "x"}', encoding="utf-8")
    for path, fact in ((bad_json, "is not valid JSON"), (unknown_key, "unknown key(s) apikey")):
        completed = subprocess.run(
            [sys.executable, "-m", "nexor_mcp", "--config", str(path)],
            capture_output=True, text=True, timeout=30, check=False, input="",
        )
        assert completed.returncode == 2
        assert completed.stdout == ""
        assert fact in completed.stderr


def start_and_fail(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the server expecting a start-up failure; the timeout bounds a hang (a blocking open)."""
    return subprocess.run(
        [sys.executable, "-m", "nexor_mcp", *args], env={"PATH": "/usr/bin:/bin", **(env or {})},
        input="", capture_output=True, text=True, timeout=30, check=False,
    )


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory", "over 1 MB", "placeholder key", "query"])
def test_unusable_config_fails_at_start_with_one_line_and_never_hangs(tmp_path: Path, kind: str) -> None:
    args: list[str] = []
    env: dict[str, str] = {}
    if kind == "fifo":
        fifo = tmp_path / "config.fifo"
        os.mkfifo(fifo)
        args, fact = ["--config", str(fifo)], f"config file {fifo} is not a regular file"
    elif kind == "/dev/zero":
        args, fact = ["--config", "/dev/zero"], "config file /dev/zero is not a regular file"
    elif kind == "directory":
        args, fact = ["--config", str(tmp_path)], f"config file {tmp_path} is not a regular file"
    elif kind == "over 1 MB":
        big = tmp_path / "big.json"
        big.write_text("{}" + " " * 2_000_000, encoding="utf-8")
        args, fact = ["--config", str(big)], f"config file {big} is larger than 1 MB"
    elif kind == "placeholder key":
        example = json.loads((Path(__file__).parent.parent / "config.example.json").read_text(encoding="utf-8"))
        args = ["--config", write_config(tmp_path, **example)]
        fact = "api_key is still the placeholder 'nxr_live_replace_with_your_key' from the example; put your real key"
    else:
        env, fact = {"NEXOR_BASE_URL": "https://api.example.test/api?token=abc"}, "must not have a query"
    completed = start_and_fail(args, env)
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("nexor-mcp: configuration error: ")
    assert fact in lines[0]
    assert "token=abc" not in completed.stderr


async def test_start_warns_about_plain_http_and_a_key_file_others_can_read(tmp_path: Path) -> None:
    config = write_config(tmp_path, api_key=TEST_KEY)
    os.chmod(config, 0o644)
    env = {"NEXOR_BASE_URL": "http://nexor.example.test/api/public", "NEXOR_MCP_CONFIG": config}
    async with spawn_server(env) as process:
        await process.session.list_tools()
        stderr = process.stderr_text()
    assert "WARNING nexor_mcp: base_url uses plain http:// to nexor.example.test" in stderr
    assert f"WARNING nexor_mcp: config file {config} holds the API key but other users can access it" in stderr
    assert "chmod 600" in stderr
    assert TEST_KEY not in stderr


async def test_a_config_file_with_a_bom_works(sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"api_key": TEST_KEY, "base_url": sandbox_server.base_url}).encode())
    path.chmod(0o600)
    async with spawn_server({}, ("--config", str(path))) as process:
        result = await process.call("get_lead", {"lead_id": ANA})
        assert not result.is_error, text_of(result)
    assert len(api.requests) == 1
