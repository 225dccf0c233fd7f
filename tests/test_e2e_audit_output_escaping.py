"""Issue 14: what `audit list | show | undo` and `check` print is escaped, whatever Nexor or the
journal holds: terminal escapes (ESC, the C1 CSI U+009B), a carriage return that would overwrite
the line, a bidi override that would reorder it. Each command runs as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nexor_mcp.audit import Journal, account_fingerprint
from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from tests.conftest import ANA, TEST_KEY
from tests.test_e2e_audit_cli import run_audit

RAW = ("\x1b", "\r", "\u202e", "\u009b")
NASTY_TAGS = ["\x1b[31mRED", "line\rover", "evil\u202etxt.exe", "csi\u009b2J"]
SHOWN_TAGS = ["[U+001B][31mRED", "line\\rover", "evil[U+202E]txt.exe", "csi[U+009B]2J"]
NASTY_DETAIL = "Nexor said: \x1b]0;owned\x07 \u202eevil \u009b2J\rDone"
SHOWN_DETAIL = "Nexor said: [U+001B]]0;owned[U+0007] [U+202E]evil [U+009B]2J\\rDone"


def assert_escaped(*texts: str) -> None:
    for text in texts:
        for char in RAW:
            assert char not in text, (char, text)


def nasty_journal(path: Path) -> tuple[str, str]:
    """A tag change with hostile tag names and a failed update with a hostile error detail."""
    journal = Journal(path)
    account = account_fingerprint(TEST_KEY)
    tags = journal.begin(tool="set_lead_tags", lead_id=ANA, method="PUT", path="leads/tags",
                         body={"lead_id": ANA, "tags": NASTY_TAGS}, before={"tags": ["VIP"]}, account=account)
    journal.finish(tags, status=200, outcome="ok", detail=None, after={"tags": NASTY_TAGS})
    update = journal.begin(tool="update_lead", lead_id=ANA, method="PATCH", path=f"leads/{ANA}",
                           body={"title": "CTO\u202e"}, before={"fields": {"title": "x"}, "metadata": {},
                                                                "metadata_absent": []}, account=account)
    journal.finish(update, status=400, outcome="failed", detail=NASTY_DETAIL)
    with path.open("a", encoding="utf-8") as file:  # an outcome for an entry not in the journal: a warning
        file.write(json.dumps({"v": 1, "id": "\x1b[2Jghost\u202e", "event": "outcome", "time": "t",
                               "outcome": "ok"}) + "\n")
    return tags, update


def test_audit_list_and_show_escape_tag_names_and_error_details(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    journal = tmp_path / "audit.jsonl"
    tags, update = nasty_journal(journal)
    listed = run_audit(journal, sandbox_server.base_url, "list")
    assert listed.returncode == 0, listed.stderr
    assert_escaped(listed.stdout, listed.stderr)
    row = next(line for line in listed.stdout.splitlines() if line.startswith(tags))
    assert "tags = [" + ", ".join(SHOWN_TAGS)[:30] in row  # the column is capped at 48 characters, escapes first
    assert "[U+001B][2Jghost[U+202E]" in listed.stderr  # the warning about the stray line, escaped too
    shown = run_audit(journal, sandbox_server.base_url, "show", tags)
    assert shown.returncode == 0, shown.stderr
    assert_escaped(shown.stdout, shown.stderr)
    assert f"changes    tags: [VIP] → [{', '.join(SHOWN_TAGS)}]" in shown.stdout.splitlines()
    failed = run_audit(journal, sandbox_server.base_url, "show", update)
    assert_escaped(failed.stdout, failed.stderr)
    assert f"detail     {SHOWN_DETAIL}" in failed.stdout.splitlines()
    assert 'body       {"title":"CTO[U+202E]"}' in failed.stdout.splitlines()


def test_audit_list_json_escapes_controls_and_keeps_the_values(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    journal = tmp_path / "audit.jsonl"
    nasty_journal(journal)
    listed = run_audit(journal, sandbox_server.base_url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert_escaped(listed.stdout, listed.stderr)
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert entries[0]["body"]["tags"] == NASTY_TAGS  # the same values, for a program
    assert entries[1]["detail"] == NASTY_DETAIL
    assert "\\u202e" in listed.stdout and "\\u009b" in listed.stdout


def test_audit_undo_escapes_what_it_reports(sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path) -> None:
    journal = tmp_path / "audit.jsonl"
    tags, _ = nasty_journal(journal)
    dry = run_audit(journal, sandbox_server.base_url, "undo", tags, "--dry-run", "--force")
    assert_escaped(dry.stdout, dry.stderr)
    assert f"  - tags are [VIP], not [{', '.join(SHOWN_TAGS)}] as the entry wrote" in dry.stdout.splitlines()
    api.inject(Fault(409, {"error": "Conflict", "message": NASTY_DETAIL}))
    undone = run_audit(journal, sandbox_server.base_url, "undo", tags, "--force")
    assert undone.returncode == 1
    assert_escaped(undone.stdout, undone.stderr)
    assert "[U+001B]]0;owned[U+0007] [U+202E]evil [U+009B]2J\\rDone" in undone.stdout


def test_check_escapes_what_nexor_answered(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    api.inject(Fault(409, {"error": "Conflict\x1b[2J", "message": NASTY_DETAIL}))
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp", "check"], capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", ""), "NEXOR_API_KEY": TEST_KEY, "NEXOR_BASE_URL": sandbox_server.base_url},
    )
    assert completed.returncode == 1
    assert_escaped(completed.stdout, completed.stderr)
    assert "Nexor said: Conflict[U+001B][2J: " + SHOWN_DETAIL in completed.stdout
