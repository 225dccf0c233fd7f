"""Issue 14: the journal file itself. A journal others can read is made private (and said so), a
symbolic link is never followed, a short write is cut back off so that the next line stays readable,
and a FIFO or a device is refused at once, for reading as for appending. Tag names are compared
with the project's one slug rule."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from nexor_mcp.audit import Journal, JournalError, account_fingerprint, open_journal, read_journal
from nexor_mcp.audit.undo import tag_set
from nexor_mcp.config import NotARegularFile, Settings
from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from tests.conftest import JOHN, TEST_KEY, server_env, spawn_server, text_of
from tests.test_e2e_audit_cli import run_audit, write, writes_received

SYMLINK = "it is a symbolic link, and symbolic links are not followed here"
NOT_REGULAR = "it is not a regular file"


def begin(journal: Journal, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "tool": "update_lead", "lead_id": JOHN, "method": "PATCH", "path": f"leads/{JOHN}",
        "body": {"title": "CTO"}, "before": {"fields": {"title": None}, "metadata": {}, "metadata_absent": []},
        "account": account_fingerprint(TEST_KEY),
    }
    arguments.update(overrides)
    return journal.begin(**arguments)


def in_thread(function: Any, *args: Any) -> Any:
    """`function(*args)`'s result or exception, failing the test (not hanging it) if it blocks."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(function(*args))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert outcome, f"{function.__name__} blocked"
    return outcome[0]


# --- the mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_journal_others_can_read_is_made_private_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(mode)
    journal = Journal(path)
    with caplog.at_level(logging.WARNING, logger="nexor_mcp.audit"):
        begin(journal)
        begin(journal)
    assert path.stat().st_mode & 0o777 == 0o600
    notice = (f"the audit journal {path} could be read by other users (mode {mode:o}); it holds lead data, so its "
              "mode was changed to 600")
    assert [record.getMessage() for record in caplog.records] == [notice]  # once, not per line
    assert journal.mode_notice == notice
    assert len(read_journal(path).entries) == 2


def test_a_private_journal_is_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "audit.jsonl"
    journal = Journal(path)
    begin(journal)
    assert path.stat().st_mode & 0o777 == 0o600
    assert journal.mode_notice is None
    assert caplog.records == []


def test_a_mode_that_cannot_be_changed_is_warned_about_and_writes_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(0o644)

    def denied(fd: int, mode: int) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr("nexor_mcp.audit.journal.os.fchmod", denied)
    begin(Journal(path))
    assert [record.getMessage() for record in caplog.records] == [
        f"the audit journal {path} can be read by other users (mode 644), and its mode could not be changed "
        f"(Operation not permitted); it holds lead data: chmod 600 {path}"
    ]
    assert len(read_journal(path).entries) == 1


def test_the_server_makes_a_readable_journal_private_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(0o644)
    assert open_journal(Settings(audit_log=str(path))) is not None
    assert path.stat().st_mode & 0o777 == 0o600
    assert "could be read by other users (mode 644)" in caplog.records[0].getMessage()


def test_check_says_the_journal_was_readable_and_is_now_private(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(0o644)
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp", "check"], capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", ""), "NEXOR_API_KEY": TEST_KEY, "NEXOR_BASE_URL": sandbox_server.base_url,
             "NEXOR_AUDIT_LOG": str(path)},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    at = lines.index("  audit journal         writable")
    assert lines[at + 1] == (f"  warning: the audit journal {path} could be read by other users (mode 644); it holds "
                             "lead data, so its mode was changed to 600")
    assert path.stat().st_mode & 0o777 == 0o600


# --- symbolic links -------------------------------------------------------------------------------


def test_a_symbolic_link_is_never_followed_for_appending(tmp_path: Path) -> None:
    target = tmp_path / "bashrc"
    target.write_text("echo hi\n")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    with pytest.raises(JournalError) as info:
        begin(Journal(link))
    assert info.value.reason == SYMLINK
    assert target.read_text() == "echo hi\n"
    assert Journal(link).problem() == SYMLINK


def test_a_dangling_symbolic_link_is_not_followed_to_create_its_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.jsonl"
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    assert Journal(link).problem() == SYMLINK
    assert not target.exists()


def test_a_symbolic_link_is_not_read_either(sandbox_server: SandboxServer, tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    begin(Journal(real))
    link = tmp_path / "audit.jsonl"
    link.symlink_to(real)
    with pytest.raises(NotARegularFile):
        read_journal(link)
    completed = run_audit(link, sandbox_server.base_url, "list")
    assert completed.returncode == 2
    assert completed.stderr == f"nexor-mcp audit: cannot read the journal {link}: {SYMLINK}\n"


# --- a short write ------------------------------------------------------------------------------


def test_a_short_write_is_cut_back_so_the_next_line_is_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    journal = Journal(path)
    first = begin(journal)
    before = path.read_bytes()
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        return real_write(fd, data[:25])  # what a nearly full disk takes of the line

    monkeypatch.setattr("nexor_mcp.audit.journal.os.write", disk_full)
    with pytest.raises(JournalError) as info:
        begin(journal, body={"title": "refused"})
    assert "could be written (disk full?)" in info.value.reason
    assert path.read_bytes() == before  # the fragment is gone
    monkeypatch.undo()
    sent = begin(journal, body={"title": "sent"})
    journal.finish(sent, status=200, outcome="ok", detail=None)
    contents = read_journal(path)
    assert contents.problems == []
    assert [(entry.id, entry.body, entry.outcome) for entry in contents.entries] == [
        (first, {"title": "CTO"}, None), (sent, {"title": "sent"}, "ok"),
    ]


def test_a_fragment_that_cannot_be_cut_is_at_least_ended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    journal = Journal(path)
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        return real_write(fd, data[:25] if len(data) > 1 else data)

    def cannot(fd: int, size: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr("nexor_mcp.audit.journal.os.write", disk_full)
    monkeypatch.setattr("nexor_mcp.audit.journal.os.ftruncate", cannot)
    with pytest.raises(JournalError):
        begin(journal)
    monkeypatch.undo()
    sent = begin(journal)
    contents = read_journal(path)
    assert [entry.id for entry in contents.entries] == [sent]
    assert contents.problems == ["line 1: not JSON; skipped"]


def test_without_file_locks_writes_go_on_and_a_fragment_is_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a file system with no locks (some NFS mounts), where this line starts is not known for
    sure, so the fragment is ended rather than cut (cutting could remove another process's line)."""
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    path = tmp_path / "audit.jsonl"
    journal = Journal(path)
    first = begin(journal)  # not refused for want of a lock
    real_write = os.write
    monkeypatch.setattr("nexor_mcp.audit.journal.os.write",
                        lambda fd, data: real_write(fd, data[:25] if len(data) > 1 else data))
    with pytest.raises(JournalError):
        begin(journal)
    monkeypatch.setattr("nexor_mcp.audit.journal.os.write", real_write)
    sent = begin(journal)
    contents = read_journal(path)
    assert [entry.id for entry in contents.entries] == [first, sent]
    assert contents.problems == ["line 2: not JSON; skipped"]


# --- FIFOs, devices, huge lines -------------------------------------------------------------------


def test_a_fifo_is_refused_for_appending_with_or_without_a_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo)
    assert in_thread(Journal(fifo).problem) == NOT_REGULAR  # nobody reads it
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        outcome = in_thread(begin, Journal(fifo))
        assert isinstance(outcome, JournalError) and outcome.reason == NOT_REGULAR
        assert os.read(reader, 100) == b""  # nothing was written into it (and its writer is gone)
    finally:
        os.close(reader)


def test_a_fifo_is_refused_for_reading_without_hanging(sandbox_server: SandboxServer, tmp_path: Path) -> None:
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo)
    assert isinstance(in_thread(read_journal, fifo), NotARegularFile)
    completed = run_audit(fifo, sandbox_server.base_url, "list")  # the subprocess would hang before the fix
    assert completed.returncode == 2
    assert completed.stderr == f"nexor-mcp audit: cannot read the journal {fifo}: {NOT_REGULAR}\n"


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused_for_reading_and_appending(sandbox_server: SandboxServer, device: str) -> None:
    outcome = in_thread(read_journal, device)
    assert isinstance(outcome, NotARegularFile)
    assert Journal(device).problem() == NOT_REGULAR
    completed = run_audit(Path(device), sandbox_server.base_url, "list")
    assert completed.returncode == 2
    assert completed.stderr == f"nexor-mcp audit: cannot read the journal {device}: {NOT_REGULAR}\n"


def test_a_line_too_long_to_hold_is_skipped_not_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nexor_mcp.audit.journal.MAX_LINE_BYTES", 1000)
    path = tmp_path / "audit.jsonl"
    journal = Journal(path)
    first = begin(journal)
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps({"v": 1, "pad": "x" * 5000}) + "\n")
    last = begin(journal)
    contents = read_journal(path)
    assert [entry.id for entry in contents.entries] == [first, last]
    assert contents.problems == ["line 2: longer than 1,000 bytes; skipped"]


# --- tag slugs ----------------------------------------------------------------------------------


def test_undo_compares_tags_by_the_one_slug_rule() -> None:
    assert tag_set(["Café", "Straße", "Hot lead"]) == tag_set(["cafe", "STRASSE", "hot-lead"])
    assert tag_set(["VIP"]) != tag_set(["VIP2"])


def test_undo_of_tags_nexor_renamed_by_slug_goes_through(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    """Written as "Café" (the answer unreadable, so no `after`), held by Nexor as "cafe": one tag."""
    journal = tmp_path / "audit.jsonl"
    entry = write(sandbox_server.base_url, journal, "set_lead_tags", JOHN, ["Café"],
                  fail=(api, Fault(204, raw_body=b"")))
    write(sandbox_server.base_url, tmp_path / "elsewhere.jsonl", "set_lead_tags", JOHN, ["cafe"])  # what Nexor holds
    api.requests.clear()
    completed = run_audit(journal, sandbox_server.base_url, "undo", entry)
    assert completed.returncode == 0, completed.stdout
    assert writes_received(api) == [
        ("GET", f"leads/{JOHN}", None), ("PUT", "leads/tags", {"lead_id": JOHN, "tags": []}),
    ]
    assert api.leads[JOHN]["tags"] == []


# --- the server, over stdio -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_stdio_server_makes_a_readable_journal_private_and_says_so(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    journal = tmp_path / "audit.jsonl"
    journal.write_text("")
    journal.chmod(0o644)
    env = server_env(sandbox_server.base_url, NEXOR_AUDIT_LOG=str(journal))
    async with spawn_server(env) as mcp:
        result = await mcp.call("update_lead", {"lead_id": JOHN, "title": "CTO"})
        assert not result.is_error, text_of(result)
        stderr = mcp.stderr_text()
    assert journal.stat().st_mode & 0o777 == 0o600
    assert (f"the audit journal {journal} could be read by other users (mode 644); it holds lead data, so its mode "
            "was changed to 600") in stderr
    assert [entry.outcome for entry in read_journal(journal).entries] == ["ok"]


@pytest.mark.anyio
async def test_the_stdio_server_refuses_writes_to_a_journal_that_is_a_symbolic_link(
    sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path
) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    journal = tmp_path / "audit.jsonl"
    journal.symlink_to(target)
    async with spawn_server(server_env(sandbox_server.base_url, NEXOR_AUDIT_LOG=str(journal))) as mcp:
        result = await mcp.call("update_lead", {"lead_id": JOHN, "title": "CTO"})
    assert result.is_error
    assert f"the audit journal cannot be written ({SYMLINK})" in text_of(result)
    assert [request.method for request in api.requests if request.method != "GET"] == []
    assert api.leads[JOHN]["title"] != "CTO"
    assert target.read_text() == "mine\n"
