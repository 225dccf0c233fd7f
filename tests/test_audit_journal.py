"""The audit journal on its own: the line format, appends from many threads and processes, failing
closed, the key never written, tolerant reading, and the `audit_log` setting."""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from nexor_mcp.audit import NO_OUTCOME, Journal, JournalError, account_fingerprint, open_journal, read_journal
from nexor_mcp.config import ConfigError, Secret, Settings, load_settings

KEY = "nxr_live_journal_7f3e2a9c41"
LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
ID_SHAPE = re.compile(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}")
TIME_SHAPE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def begin(journal: Journal, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "tool": "update_lead", "lead_id": LEAD, "method": "PATCH", "path": f"leads/{LEAD}",
        "body": {"title": "CTO"}, "before": {"fields": {"title": "Manager"}, "metadata": {}, "metadata_absent": []},
        "account": account_fingerprint(Secret(KEY)), "secrets": (KEY,),
    }
    arguments.update(overrides)
    return journal.begin(**arguments)


def test_an_intent_and_an_outcome_are_one_line_each_in_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    journal = Journal(path)
    entry = begin(journal)
    journal.finish(entry, status=200, outcome="ok", detail=None, after={"fields": {"title": "CTO"}, "metadata": {}})
    intent, outcome = lines_of(path)
    assert ID_SHAPE.fullmatch(entry)
    assert TIME_SHAPE.fullmatch(intent.pop("time")) and TIME_SHAPE.fullmatch(outcome.pop("time"))
    assert intent == {
        "v": 1, "id": entry, "event": "intent", "tool": "update_lead", "lead_id": LEAD, "method": "PATCH",
        "path": f"leads/{LEAD}", "body": {"title": "CTO"},
        "before": {"fields": {"title": "Manager"}, "metadata": {}, "metadata_absent": []},
        "account": hashlib.sha256(KEY.encode()).hexdigest()[:12],
    }
    assert outcome == {
        "v": 1, "id": entry, "event": "outcome", "status": 200, "outcome": "ok", "detail": None,
        "after": {"fields": {"title": "CTO"}, "metadata": {}},
    }
    assert list(json.loads(path.read_text().splitlines()[0])) == [  # the documented key order
        "v", "id", "event", "time", "tool", "lead_id", "method", "path", "body", "before", "account",
    ]
    assert path.stat().st_mode & 0o777 == 0o600  # it holds lead data


def test_an_undo_entry_names_the_entry_it_undoes(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "audit.jsonl")
    entry = begin(journal, tool="undo", undoes="20261127T153153.123456Z-9f3c1a")
    assert lines_of(tmp_path / "audit.jsonl")[0]["undoes"] == "20261127T153153.123456Z-9f3c1a"
    assert entry != "20261127T153153.123456Z-9f3c1a"


def test_ids_are_unique_and_sort_by_time(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "audit.jsonl", fsync=False)
    ids = [begin(journal) for _ in range(200)]
    assert len(set(ids)) == 200
    stamps = [entry.split("-")[0] for entry in ids]
    assert stamps == sorted(stamps)


def test_the_account_is_a_fingerprint_never_the_key() -> None:
    assert account_fingerprint(Secret(KEY)) == hashlib.sha256(KEY.encode()).hexdigest()[:12]
    assert account_fingerprint(KEY) == account_fingerprint(Secret(KEY))
    assert account_fingerprint("nxr_live_other") != account_fingerprint(KEY)
    assert account_fingerprint(None) is None


def test_the_key_never_appears_even_when_an_agent_pastes_it_into_a_field(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    journal = Journal(path)
    entry = begin(
        journal,
        body={"title": f"key is {KEY}", "metadata": {"note": KEY[:14], KEY: "as a key"}},
        before={"fields": {"title": KEY}, "metadata": {"note": None}, "metadata_absent": []},
    )
    journal.finish(entry, status=400, outcome="failed", detail=f"Nexor said: bad key {KEY}", secrets=(KEY,))
    text = path.read_text(encoding="utf-8")
    assert KEY not in text
    assert KEY[:10] not in text  # not even a prefix past the public nxr_live_
    intent, outcome = lines_of(path)
    assert intent["body"] == {"title": "key is nxr_****", "metadata": {"note": "nxr_****", "nxr_****": "as a key"}}
    assert intent["before"]["fields"] == {"title": "nxr_****"}
    assert outcome["detail"] == "Nexor said: bad key nxr_****"


def test_a_lone_surrogate_in_a_body_is_written_as_u_fffd_not_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    begin(Journal(path), body={"title": "half an emoji \ud83d"})
    assert lines_of(path)[0]["body"] == {"title": "half an emoji \ufffd"}


def test_concurrent_appends_from_threads_never_mix_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    journal = Journal(path, fsync=False)
    big = "x" * 20_000  # bigger than a pipe buffer: still one line

    def work(worker: int) -> None:
        for n in range(50):
            entry = begin(journal, body={"worker": worker, "n": n, "pad": big})
            journal.finish(entry, status=200, outcome="ok", detail=None)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    contents = read_journal(path)
    assert contents.problems == []
    assert len(contents.entries) == 400
    assert all(entry.outcome == "ok" for entry in contents.entries)
    assert {(entry.body["worker"], entry.body["n"]) for entry in contents.entries} == {
        (worker, n) for worker in range(8) for n in range(50)
    }


def _append_from_process(path: str, worker: int) -> None:
    journal = Journal(path, fsync=False)
    for n in range(50):
        entry = begin(journal, body={"worker": worker, "n": n, "pad": "y" * 5_000})
        journal.finish(entry, status=200, outcome="ok", detail=None)


def test_concurrent_appends_from_processes_never_mix_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.jsonl")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_append_from_process, args=(path, worker)) for worker in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    contents = read_journal(path)
    assert contents.problems == []
    assert sorted((entry.body["worker"], entry.body["n"]) for entry in contents.entries) == [
        (worker, n) for worker in range(4) for n in range(50)
    ]
    assert all(entry.outcome == "ok" for entry in contents.entries)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: tmp / "no-such-dir" / "audit.jsonl", "No such file or directory"),
        (lambda tmp: tmp, "Is a directory"),
        (lambda tmp: Path("/dev/null"), "it is not a regular file"),
    ],
    ids=["missing directory", "a directory", "not a regular file"],
)
def test_an_unwritable_journal_raises_and_writes_nothing(tmp_path: Path, make: Any, reason: str) -> None:
    journal = Journal(make(tmp_path))
    with pytest.raises(JournalError) as info:
        begin(journal)
    assert info.value.reason == reason
    assert journal.problem() == reason


def test_a_read_only_journal_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What opening a read-only file gives a non-root user (CI runs as root, which may write it anyway).
    def denied(*args: Any, **kwargs: Any) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    path = tmp_path / "audit.jsonl"
    path.write_text("")
    monkeypatch.setattr("nexor_mcp.audit.journal.os.open", denied)
    with pytest.raises(JournalError) as info:
        begin(Journal(path))
    assert info.value.reason == "Permission denied"


def test_a_full_disk_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("nexor_mcp.audit.journal.os.write", full)
    with pytest.raises(JournalError) as info:
        begin(Journal(tmp_path / "audit.jsonl"))
    assert info.value.reason == "No space left on device"


def test_a_failing_fsync_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr("nexor_mcp.audit.journal.os.fsync", broken)
    with pytest.raises(JournalError) as info:
        begin(Journal(tmp_path / "audit.jsonl"))
    assert info.value.reason == "Input/output error"


def test_a_short_write_cuts_the_fragment_off_and_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    real_write = os.write

    def short(fd: int, data: bytes) -> int:
        return real_write(fd, data[:10] if len(data) > 1 else data)

    monkeypatch.setattr("nexor_mcp.audit.journal.os.write", short)
    with pytest.raises(JournalError) as info:
        begin(Journal(path))
    assert "could be written (disk full?)" in info.value.reason
    monkeypatch.undo()
    entry = begin(Journal(path))
    contents = read_journal(path)
    assert [item.id for item in contents.entries] == [entry]  # the next line starts on a line of its own
    assert contents.problems == []  # the fragment was cut back off (issue 14)


def test_reading_joins_outcomes_to_intents_and_reports_what_it_skips(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    journal = Journal(path)
    first = begin(journal)
    second = begin(journal, body={"title": "VP"})
    journal.finish(second, status=503, outcome="unknown", detail="ServerError: ...")
    journal.finish(first, status=200, outcome="ok", detail=None)
    third = begin(journal, body={"title": "CEO"})  # no outcome: the process died
    with path.open("a", encoding="utf-8") as file:
        file.write('{"v":2,"id":"x","event":"intent"}\n')
        file.write('{"v":1,"id":"nope","event":"outcome","time":"t","status":200,"outcome":"ok"}\n')
        file.write("\n")
        file.write('{"v":1,"id":"' + first + '","event":"outcome","time":"t","status":200,"outcome":"ok"}\n')
        file.write('{"v":1,"id":"y","event":"weird"}\n')
        file.write('{"v":1,"id":"' + third[:10])  # cut off mid-line
    contents = read_journal(path)
    assert [(entry.id, entry.outcome, entry.status) for entry in contents.entries] == [
        (first, "ok", 200), (second, "unknown", 503), (third, None, None),
    ]
    assert contents.entries[2].shown_outcome == NO_OUTCOME
    assert NO_OUTCOME == "unknown (no outcome recorded: the process may have died mid-request)"
    assert contents.entries[1].shown_outcome == "unknown (HTTP 503)"
    assert contents.problems == [
        "line 6: written by a newer nexor-mcp (journal format v2; this one reads v1); skipped",
        "line 7: an outcome for entry nope, whose intent is not in the journal; skipped",
        f"line 9: a second outcome for entry {first}; skipped",
        "line 10: an unknown event 'weird'; skipped",
        "line 11: cut off (the process may have died while writing it); skipped",
    ]


def test_an_outcome_must_be_one_of_the_four(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outcome must be one of"):
        Journal(tmp_path / "a.jsonl").finish("x", status=200, outcome="great", detail=None)


# --- the setting ----------------------------------------------------------------------------------


def test_audit_log_comes_from_flag_environment_or_config_file_in_that_order(tmp_path: Path) -> None:
    config = tmp_path / "nexor.json"
    config.write_text(json.dumps({"audit_log": "/var/log/from-file.jsonl"}))
    config.chmod(0o600)
    assert load_settings(environ={}).audit_log is None
    assert load_settings(environ={}, config_path=str(config)).audit_log == "/var/log/from-file.jsonl"
    environ = {"NEXOR_AUDIT_LOG": "/var/log/from-env.jsonl"}
    assert load_settings(environ=environ, config_path=str(config)).audit_log == "/var/log/from-env.jsonl"
    flags = {"audit_log": "/var/log/from-flag.jsonl"}
    assert load_settings(flags, environ=environ, config_path=str(config)).audit_log == "/var/log/from-flag.jsonl"
    assert load_settings(environ={"NEXOR_AUDIT_LOG": "  "}).audit_log is None
    assert load_settings(environ={"NEXOR_AUDIT_LOG": "~/audit.jsonl"}).audit_log == str(Path.home() / "audit.jsonl")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("audit.jsonl", "audit_log must be an absolute path (or start with ~/), got 'audit.jsonl'"),
        ("./logs/a.jsonl", "audit_log must be an absolute path (or start with ~/), got './logs/a.jsonl'"),
    ],
)
def test_a_relative_audit_log_is_refused(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"NEXOR_AUDIT_LOG": value})
    assert str(info.value) == message


def test_a_non_string_audit_log_in_the_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "nexor.json"
    config.write_text('{"audit_log": 5}')
    with pytest.raises(ConfigError, match="audit_log must be a file path, got 5"):
        load_settings(environ={}, config_path=str(config))


def test_open_journal_is_none_without_the_setting_and_logs_an_unwritable_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert open_journal(Settings()) is None
    good = open_journal(Settings(audit_log=str(tmp_path / "a.jsonl")))
    assert good is not None and good.path == str(tmp_path / "a.jsonl")
    assert (tmp_path / "a.jsonl").exists()
    bad_path = str(tmp_path / "missing" / "a.jsonl")
    bad = open_journal(Settings(audit_log=bad_path))
    assert bad is not None
    assert [record.getMessage() for record in caplog.records] == [
        f"the audit journal {bad_path} cannot be written (No such file or directory): every write will be "
        "refused until it can be"
    ]
