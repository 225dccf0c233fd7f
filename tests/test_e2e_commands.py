"""End to end: the `demo` and `sandbox` commands a person runs from the README."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from nexor_mcp.sandbox import DEMO_LEAD_IDS, SANDBOX_API_KEY


def test_demo_shows_a_read_an_update_with_merge_and_a_rejection() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp", "demo"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "update_lead (writes): lead_id, first_name" in out
    assert "Ana Rojas, Head of Sales at Acme SpA" in out
    assert '"title": "VP Sales"' in out
    assert '"phone": null' in out
    # the merge kept the old keys and added the new one
    assert '"edad": 34,\n            "utm_source": "google",\n            "budget": 5000' in out
    assert "isError: true" in out
    assert "custom fields go inside metadata" in out


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
        banner = "".join(process.stdout.readline() for _ in range(6))
        assert SANDBOX_API_KEY in banner
        assert all(lead_id in banner for lead_id in DEMO_LEAD_IDS)
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


@pytest.mark.parametrize(("stdin_kind", "transport"), [("pipe", "_fast_stdio"), ("file", "stdio_server")])
def test_the_transport_is_chosen_by_what_stdin_is(tmp_path: Path, stdin_kind: str, transport: str) -> None:
    """The fast transport needs a pipe; stdin redirected from a regular file gets the SDK's own."""
    probe = "from nexor_mcp.stdio import serve_streams; print(serve_streams().gen.__name__)"
    source = tmp_path / "stdin.txt"
    source.write_text("", encoding="utf-8")
    with source.open("rb") as file:
        completed = subprocess.run(
            [sys.executable, "-c", probe], stdin=file if stdin_kind == "file" else subprocess.PIPE,
            capture_output=True, text=True, timeout=60, check=True,
        )
    assert completed.stdout.strip() == transport
