"""End to end: the `demo` and `sandbox` commands a person runs from the README."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx2
import pytest

from nexor_mcp.config import CONFIG_FILE_ENV, ENV_VARS
from nexor_mcp.sandbox import DEMO_LEAD_IDS, SANDBOX_API_KEY


def test_demo_works_one_lead_through_several_tools() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp", "demo"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "• update_lead (writes)" in out and "• get_lead_history (read-only)" in out
    assert "send_message (" not in out.split("2. It reads the lead:")[0]  # outreach is off by default
    assert "Ana Rojas, Head of Sales at Acme SpA" in out

    def block_after(step: str) -> str:
        """The text content block the agent read in `step`, exactly as sent."""
        shown = out.split(step, 1)[1].split("the agent reads this text content block (", 1)[1]
        label, text = shown.split("\n", 2)[:2]
        assert label == f"{len(text.strip())} characters of compact JSON):"
        return text.strip()

    assert json.loads(block_after("3. It reads the latest"))["history"]
    assert json.loads(block_after("4. The lead asks for a person"))["cadence_paused"] is True
    assert json.loads(block_after("5. It tags the lead"))["tags"]
    preview = out.split("7. Before writing, it previews", 1)[1].split("8. It writes back", 1)[0]
    assert 'Dry run of update_lead: nothing was sent. Changes: title: "Head of Sales" → "VP Sales"' in preview
    assert '"method":"PATCH"' in preview
    lead = json.loads(block_after("8. It writes back"))
    assert lead["title"] == "VP Sales"
    assert lead["metadata"] == {"edad": 34, "utm_source": "google", "budget": 5000}  # merged, not replaced
    assert "isError: true. The agent reads this text content block:" in out
    assert "custom fields go inside metadata" in out
    assert "send_message is not enabled on this server, so nothing was done" in out


def test_demo_into_a_closed_pipe_exits_quietly() -> None:
    """`nexor-mcp demo | head -0`: the reader is gone before the first line is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "nexor_mcp", "demo"], stdout=write_end, stderr=subprocess.PIPE,
            text=True, timeout=60, check=False,
        )
    finally:
        os.close(write_end)
    assert completed.returncode == 0
    assert completed.stderr == ""


def test_help_names_every_environment_variable() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for var in (*ENV_VARS.values(), CONFIG_FILE_ENV):
        assert var in completed.stdout, var
    assert "NEXOR_API_KEY               the Nexor API key" in completed.stdout


@pytest.mark.parametrize(
    ("args", "fact"),
    [
        (["--port", "-1"], "--port must be a whole number from 0 to 65535, got '-1'"),
        (["--port", "65536"], "--port must be a whole number from 0 to 65535, got '65536'"),
        (["--port", "http"], "--port must be a whole number from 0 to 65535, got 'http'"),
        (["--host", "999.1.1.1", "--port", "0"], "cannot listen on '999.1.1.1' port 0: "),
        (["--host", "::1", "--port", "0"], "cannot listen on '::1' port 0: "),
        (["--host", "bad\x01host", "--port", "0"], "cannot listen on 'bad\\x01host' port 0: "),
    ],
)
def test_sandbox_with_a_bad_port_or_host_fails_with_one_line(args: list[str], fact: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp", "sandbox", *args], capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.startswith("nexor-mcp sandbox: "), completed.stderr
    assert len(completed.stderr.splitlines()) == 1, completed.stderr
    assert fact in completed.stderr


def test_sandbox_command_serves_the_api_and_prints_how_to_use_it() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nexor_mcp", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Nexor sandbox API listening on http://127.0.0.1:")
        base_url = first.split(" on ", 1)[1].strip()
        banner = "".join(process.stdout.readline() for _ in range(7))
        assert f"API key: {SANDBOX_API_KEY} (send it in the X-API-Key header)" in banner
        assert all(lead_id in banner for lead_id in DEMO_LEAD_IDS)
        assert f"curl -H 'X-API-Key: {SANDBOX_API_KEY}' {base_url}/leads/{DEMO_LEAD_IDS[0]}" in banner
        with httpx2.Client(base_url=base_url + "/", headers={"X-API-Key": SANDBOX_API_KEY}) as http:
            got = http.get(f"leads/{DEMO_LEAD_IDS[1]}")
            assert got.status_code == 200
            assert got.json()["lead"]["first_name"] == "John"
            patched = http.patch(f"leads/{DEMO_LEAD_IDS[1]}", content=json.dumps({"metadata": {"a": 1}}))
            assert patched.json()["lead"]["metadata"] == {"a": 1}
            assert http.get(f"leads/{DEMO_LEAD_IDS[1]}", headers={"X-API-Key": "nxr_live_wrong"}).json() == {
                "error": "Invalid API key", "message": "The provided API key is not valid"
            }
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()
