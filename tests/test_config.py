"""Settings hardening: plain-http and world-readable-key warnings, URLs with a query, a BOM, config
paths that are not small regular files (refused without blocking), and the example's placeholder key."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from nexor_mcp.config import ENV_VARS, MAX_CONFIG_BYTES, ConfigError, Secret, Settings, load_settings

KEY = "nxr_live_0123456789abcdef"
TIMEOUT = 30  # seconds; bounds a hang (a blocking open), asserts nothing about speed


def write(tmp_path: Path, text: str, mode: int = 0o600, name: str = "nexor.json") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return str(path)


def load_in_thread(path: str) -> Settings | ConfigError:
    """load_settings(config_path=path), failing the test instead of hanging if opening blocks."""
    outcome: list[Settings | ConfigError] = []

    def run() -> None:
        try:
            outcome.append(load_settings(environ={}, config_path=path))
        except ConfigError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    assert not worker.is_alive(), f"reading {path} blocked"
    return outcome[0]


@pytest.mark.parametrize("host", ["api.example.test", "10.0.0.5", "[2001:db8::1]"])
def test_plain_http_to_another_machine_warns(host: str) -> None:
    settings = load_settings(flags={"base_url": f"http://{host}/api/public"}, environ={"NEXOR_API_KEY": KEY})
    assert len(settings.warnings) == 1
    warning = settings.warnings[0]
    assert "plain http://" in warning and "unencrypted" in warning and "https://" in warning
    assert host.strip("[]") in warning
    assert KEY not in warning


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8765/api/public", "http://localhost/api", "http://[::1]:9/api",
            "http://127.5.6.7/api", "https://api.example.test/api", "HTTPS://api.example.test/api"],
)
def test_loopback_or_https_does_not_warn(url: str) -> None:
    assert load_settings(flags={"base_url": url}, environ={"NEXOR_API_KEY": KEY}).warnings == ()


@pytest.mark.parametrize(
    "url", ["https://api.example.test/api?token=s3cret", "https://api.example.test/api#s3cret",
            "https://api.example.test/api?", "https://api.example.test/api/?x=1"],
)
def test_base_url_with_a_query_or_fragment_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(flags={"base_url": url}, environ={})
    assert "base_url must not have a query (?...) or fragment (#...)" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, f'\ufeff{{"api_key": "{KEY}", "max_retries": 4}}')
    settings = load_settings(environ={}, config_path=path)
    assert settings.api_key == Secret(KEY)
    assert settings.max_retries == 4


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_a_key_in_a_file_others_can_access_warns(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, f'{{"api_key": "{KEY}"}}', mode)
    settings = load_settings(environ={}, config_path=path)
    assert settings.api_key == Secret(KEY)
    assert settings.warnings == (
        f"config file {path} holds the API key but other users can access it (mode {mode:o}); "
        f"make it private with: chmod 600 {path}",
    )


def test_a_private_key_file_or_a_file_without_a_key_does_not_warn(tmp_path: Path) -> None:
    private = write(tmp_path, f'{{"api_key": "{KEY}"}}', 0o600, "private.json")
    keyless = write(tmp_path, '{"api_key": null, "max_retries": 1}', 0o644, "keyless.json")
    assert load_settings(environ={}, config_path=private).warnings == ()
    assert load_settings(environ={}, config_path=keyless).warnings == ()


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    outcome = load_in_thread(str(fifo))
    assert isinstance(outcome, ConfigError)
    assert str(outcome) == f"config file {fifo} is not a regular file"


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused_without_reading_it(path: str) -> None:
    outcome = load_in_thread(path)
    assert isinstance(outcome, ConfigError)
    assert str(outcome) == f"config file {path} is not a regular file"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    outcome = load_in_thread(str(tmp_path))
    assert isinstance(outcome, ConfigError)
    assert str(tmp_path) in str(outcome)
    assert "is not a regular file" in str(outcome)


def test_a_file_over_1_mb_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '{"max_retries": 1}' + " " * MAX_CONFIG_BYTES)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, config_path=path)
    assert f"config file {path} is larger than 1 MB ({MAX_CONFIG_BYTES + 18} bytes)" in str(info.value)


def test_a_file_just_under_the_limit_is_read(tmp_path: Path) -> None:
    body = '{"max_retries": 1}'
    path = write(tmp_path, body + " " * (MAX_CONFIG_BYTES - len(body)))
    assert load_settings(environ={}, config_path=path).max_retries == 1


@pytest.mark.parametrize("placeholder", ["nxr_live_replace_with_your_key", "nxr_live_..."])
@pytest.mark.parametrize("source", ["file", "env"])
def test_the_placeholder_key_is_refused(tmp_path: Path, placeholder: str, source: str) -> None:
    kwargs: dict[str, Any] = (
        {"environ": {}, "config_path": write(tmp_path, f'{{"api_key": "{placeholder}"}}')}
        if source == "file" else {"environ": {"NEXOR_API_KEY": f" {placeholder} "}}
    )
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)
    message = str(info.value)
    assert message.startswith(f"api_key is still the placeholder {placeholder!r}")
    assert "put your real key" in message
    assert "\n" not in message


# --- which tools an agent sees ----------------------------------------------------------------------


def test_tools_default_to_read_and_write_and_read_only_is_off() -> None:
    settings = load_settings(environ={})
    assert (settings.tools, settings.read_only) == (("read", "write"), False)


@pytest.mark.parametrize(
    ("environ", "tools", "read_only"),
    [
        ({"NEXOR_TOOLS": " read , automation,read,, "}, ("read", "automation"), False),
        ({"NEXOR_TOOLS": "update_lead", "NEXOR_READ_ONLY": "yes"}, ("update_lead",), True),
        ({"NEXOR_READ_ONLY": "0"}, ("read", "write"), False),
        ({"NEXOR_READ_ONLY": "TRUE"}, ("read", "write"), True),
    ],
)
def test_tools_and_read_only_from_the_environment(
    environ: dict[str, str], tools: tuple[str, ...], read_only: bool
) -> None:
    settings = load_settings(environ=environ)
    assert (settings.tools, settings.read_only) == (tools, read_only)


def test_tools_from_the_config_file_as_an_array_and_flags_win(tmp_path: Path) -> None:
    path = write(tmp_path, '{"tools": ["read", "outreach"], "read_only": true}')
    settings = load_settings(environ={}, config_path=path)
    assert (settings.tools, settings.read_only) == (("read", "outreach"), True)
    flagged = load_settings({"tools": "write", "read_only": False}, environ={}, config_path=path)
    assert (flagged.tools, flagged.read_only) == (("write",), False)


@pytest.mark.parametrize(
    ("raw", "fact"),
    [
        ({"NEXOR_READ_ONLY": "maybe"}, "read_only must be true or false"),
        ({"NEXOR_TOOLS": ", ,"}, "tools is empty"),
    ],
)
def test_bad_tool_settings_are_one_line_errors(raw: dict[str, str], fact: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=raw)
    assert fact in str(info.value)
    assert "\n" not in str(info.value)


def test_tools_in_a_config_file_must_be_names(tmp_path: Path) -> None:
    path = write(tmp_path, '{"tools": ["read", 5]}')
    outcome = load_in_thread(path)
    assert isinstance(outcome, ConfigError)
    assert 'tools must be a comma list like "read,write" or an array of names' in str(outcome)


def test_the_example_config_file_names_every_key_and_loads(tmp_path: Path) -> None:
    """README says config.example.json lists every key: keep it so as settings are added."""
    example = json.loads((Path(__file__).parent.parent / "config.example.json").read_text(encoding="utf-8"))
    assert set(example) == set(ENV_VARS)
    example["api_key"] = "nxr_live_real_key_for_the_test"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(example), encoding="utf-8")
    path.chmod(0o600)
    settings = load_settings(environ={}, config_path=str(path))
    assert settings.tools == ("read", "write") and settings.confirm == ("automation", "outreach")
    assert settings.audit_log is None and settings.read_only is False
