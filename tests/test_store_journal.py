"""The audit journal in the database, on a real SQLite file and a real PostgreSQL: the same records
as the file journal (masked the same way), read back the same way, exported as the very lines the
file would hold, one account's rows only for that account, and a journal that cannot be written
refusing with `JournalError` (so the write is not sent), its password never shown."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nexor_mcp.audit.journal as file_journal
import nexor_mcp.store.journal as database_journal
from nexor_mcp.audit import Journal, JournalError, UndoRecord, account_fingerprint, read_journal
from nexor_mcp.store import DatabaseJournal, JournalRow, JournalWriter, Store, open_store
from tests.postgres import PASSWORD, PostgresCluster
from tests.test_store import in_threads

KEY = "nxr_live_journal_7f3e2a9c41"
OTHER_KEY = "nxr_live_other_tenant_0b1c2d"
ACCOUNT = account_fingerprint(KEY)
OTHER = account_fingerprint(OTHER_KEY)
LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with open_store(database_url) as opened:
        yield opened


def begin(journal: JournalWriter, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "tool": "update_lead", "lead_id": LEAD, "method": "PATCH", "path": f"leads/{LEAD}",
        "body": {"title": "CTO"}, "before": {"fields": {"title": "Manager"}, "metadata": {}, "metadata_absent": []},
        "account": ACCOUNT, "secrets": (KEY,),
    }
    arguments.update(overrides)
    return journal.begin(**arguments)


def writes(journal: JournalWriter) -> list[str]:
    """The same sequence of writes, whichever journal: masking, surrogates, undo, a missing outcome."""
    first = begin(journal)
    journal.finish(first, status=200, outcome="ok", detail=None, after={"fields": {"title": "CTO"}, "metadata": {}},
                   secrets=(KEY,))
    second = begin(journal, tool="set_lead_tags", method="PUT", path="leads/tags",
                   body={"lead_id": LEAD, "tags": ["vip", f"pasted {KEY}", "half \ud83d"]},
                   before=UndoRecord.of_tags(["old"]))
    journal.finish(second, status=None, outcome="unknown", detail=f"timeout; key {KEY[:14]}", secrets=(KEY,))
    third = begin(journal, tool="undo", undoes=first, before=None, body={"title": "Manager"})
    journal.finish(third, status=400, outcome="failed", detail="Nexor refused it")
    fourth = begin(journal, tool="send_message", lead_id=None, path="messages", body={"text": "héllo ✓"},
                   before=None)  # no outcome: the process died
    return [first, second, third, fourth]


def without_ids_and_times(records: list[dict[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    names = {entry: f"entry-{index}" for index, entry in enumerate(ids)}
    cleaned = []
    for record in records:
        record = dict(record)
        assert TIME.fullmatch(record.pop("time"))
        record["id"] = names[record["id"]]
        if "undoes" in record:
            record["undoes"] = names[record["undoes"]]
        cleaned.append(record)
    return cleaned


def test_begin_and_finish_store_one_row_each_with_the_line_as_its_record(store: Store) -> None:
    journal = DatabaseJournal(store)
    entry = begin(journal)
    journal.finish(entry, status=200, outcome="ok", detail=None, after={"fields": {"title": "CTO"}})
    rows = store.journal_rows()
    assert [(row.account, row.entry_id, row.event) for row in rows] == [
        (ACCOUNT, entry, "intent"), (ACCOUNT, entry, "outcome")]
    assert rows[1].seq > rows[0].seq
    intent, outcome = (json.loads(row.record) for row in rows)
    assert TIME.fullmatch(intent.pop("time")) and TIME.fullmatch(outcome.pop("time"))
    assert intent == {
        "v": 1, "id": entry, "event": "intent", "tool": "update_lead", "lead_id": LEAD, "method": "PATCH",
        "path": f"leads/{LEAD}", "body": {"title": "CTO"},
        "before": {"fields": {"title": "Manager"}, "metadata": {}, "metadata_absent": []}, "account": ACCOUNT,
    }
    assert outcome == {"v": 1, "id": entry, "event": "outcome", "status": 200, "outcome": "ok", "detail": None,
                       "after": {"fields": {"title": "CTO"}}}
    assert journal.path == store.display
    assert journal.problem() is None


def test_the_records_are_the_file_journals_lines_masked_the_same_way(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    file_ids = writes(Journal(path))
    database_ids = writes(DatabaseJournal(store))
    file_records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows = store.journal_rows()
    assert len(rows) == len(file_records) == 7
    assert without_ids_and_times([json.loads(row.record) for row in rows], database_ids) == without_ids_and_times(
        file_records, file_ids)
    stored = "".join(row.record for row in rows)
    assert KEY not in stored and KEY[:10] not in stored
    assert json.loads(rows[2].record)["body"]["tags"] == ["vip", "pasted nxr_****", "half \ufffd"]
    assert json.loads(rows[3].record)["detail"] == "timeout; key nxr_****"


def test_an_export_is_the_lines_the_file_journal_would_hold_and_reads_back_as_read(
    store: Store, tmp_path: Path
) -> None:
    journal = DatabaseJournal(store)
    ids = writes(journal)
    exported = io.BytesIO()
    assert journal.export_jsonl(None, exported) == 7
    (tmp_path / "export.jsonl").write_bytes(exported.getvalue())
    assert exported.getvalue() == b"".join(row.record.encode() + b"\n" for row in store.journal_rows())
    contents = journal.read()
    assert read_journal(tmp_path / "export.jsonl") == contents
    assert [(entry.id, entry.tool, entry.outcome, entry.line) for entry in contents.entries] == [
        (ids[0], "update_lead", "ok", 1), (ids[1], "set_lead_tags", "unknown", 3), (ids[2], "undo", "failed", 5),
        (ids[3], "send_message", None, 7)]
    assert contents.entries[2].undoes == ids[0]
    assert contents.entries[1].undo_record == UndoRecord.of_tags(["old"])
    assert contents.problems == []


def test_reading_reports_what_it_skips_exactly_as_reading_a_file_does(store: Store, tmp_path: Path) -> None:
    journal = DatabaseJournal(store)
    first = begin(journal)
    journal.finish(first, status=200, outcome="ok", detail=None)
    journal.finish(first, status=200, outcome="ok", detail=None)
    journal.finish("nope", status=200, outcome="ok", detail=None)
    store.append_record(entry_id="x", event="intent", record='{"v":2,"id":"x","event":"intent"}', account=ACCOUNT)
    store.append_record(entry_id="y", event="intent", record="not json", account=ACCOUNT)
    contents = journal.read()
    assert contents.problems == [
        f"line 3: a second outcome for entry {first}; skipped",
        "line 4: an outcome for entry nope, whose intent is not in the journal; skipped",
        "line 5: written by a newer nexor-mcp (journal format v2; this one reads v1); skipped",
        "line 6: not JSON; skipped",
    ]
    exported = tmp_path / "export.jsonl"
    with exported.open("wb") as out:
        journal.export_jsonl(None, out)
    assert read_journal(exported) == contents


def test_a_record_too_long_to_read_is_skipped_as_in_a_file(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_journal, "MAX_LINE_BYTES", 400)
    monkeypatch.setattr(database_journal, "MAX_LINE_BYTES", 400)
    journal = DatabaseJournal(store)
    kept = begin(journal)
    begin(journal, body={"text": "x" * 500})
    contents = journal.read()
    assert [entry.id for entry in contents.entries] == [kept]
    assert contents.problems == ["line 2: longer than 400 bytes; skipped"]
    exported = tmp_path / "export.jsonl"
    with exported.open("wb") as out:
        journal.export_jsonl(None, out)
    assert read_journal(exported) == contents


def test_an_account_reads_and_exports_its_own_rows_only(store: Store, tmp_path: Path) -> None:
    journal = DatabaseJournal(store)
    mine = begin(journal)
    theirs = begin(journal, account=OTHER, secrets=(OTHER_KEY,), body={"title": "theirs"})
    journal.finish(theirs, status=200, outcome="ok", detail=None)
    journal.finish(mine, status=200, outcome="ok", detail=None)
    also_mine = begin(journal, body={"title": "again"})
    nobody = begin(journal, account=None)
    assert [(row.account, row.entry_id, row.event) for row in store.journal_rows(OTHER)] == [
        (OTHER, theirs, "intent"), (OTHER, theirs, "outcome")]
    assert [(row.account, row.entry_id, row.event) for row in store.journal_rows(ACCOUNT)] == [
        (ACCOUNT, mine, "intent"), (ACCOUNT, mine, "outcome"), (ACCOUNT, also_mine, "intent")]
    assert [(entry.id, entry.outcome, entry.line) for entry in journal.read(ACCOUNT).entries] == [
        (mine, "ok", 1), (also_mine, None, 3)]
    assert [(entry.id, entry.outcome) for entry in journal.read(OTHER).entries] == [(theirs, "ok")]
    assert [entry.id for entry in journal.read().entries] == [mine, theirs, also_mine, nobody]
    assert journal.read("0123456789ab").entries == []
    for account, ids in ((ACCOUNT, [mine, also_mine]), (OTHER, [theirs])):
        exported = tmp_path / f"{account}.jsonl"
        with exported.open("wb") as out:
            journal.export_jsonl(account, out)
        assert {json.loads(line)["id"] for line in exported.read_text().splitlines()} == set(ids)
        assert read_journal(exported) == journal.read(account)


def test_threads_appending_at_once_lose_nothing(store: Store) -> None:
    journal = DatabaseJournal(store)

    def work(worker: int) -> list[str]:
        ids = []
        for index in range(15):
            entry = begin(journal, body={"worker": worker, "index": index})
            journal.finish(entry, status=200, outcome="ok", detail=None)
            ids.append(entry)
        return ids

    results = in_threads(6, work)
    contents = journal.read()
    assert contents.problems == []
    assert sorted(entry.id for entry in contents.entries) == sorted(entry for ids in results for entry in ids)
    assert all(entry.outcome == "ok" for entry in contents.entries)
    assert len(store.journal_rows()) == 180


def test_an_outcome_must_be_one_of_the_four(store: Store) -> None:
    with pytest.raises(ValueError, match="outcome must be one of"):
        DatabaseJournal(store).finish("x", status=200, outcome="great", detail=None)
    assert store.journal_rows() == []


def test_a_sqlite_journal_that_cannot_be_written_refuses_with_journal_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gone/state.db"
    journal = DatabaseJournal(open_store(url))
    reason = f"the directory {tmp_path}/gone does not exist"
    assert journal.problem() == reason
    with pytest.raises(JournalError) as raised:
        begin(journal)
    assert (raised.value.path, raised.value.reason, str(raised.value)) == (url, reason, f"{url}: {reason}")
    with pytest.raises(JournalError):
        journal.finish("x", status=200, outcome="ok", detail=None)


def test_a_postgres_journal_that_is_down_refuses_with_journal_error_without_the_password(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    with open_store(postgres_url) as store:
        journal = DatabaseJournal(store)
        entry = begin(journal)
        with postgres_cluster.stopped():
            problem = journal.problem()
            assert problem is not None and "Connection refused" in problem
            with pytest.raises(JournalError) as raised:
                begin(journal)
            assert raised.value.path == store.display
            assert "Connection refused" in raised.value.reason
            assert PASSWORD not in str(raised.value) and PASSWORD not in journal.path
            with pytest.raises(JournalError):
                journal.finish(entry, status=200, outcome="ok", detail=None)
        journal.finish(entry, status=200, outcome="ok", detail=None)
        assert journal.problem() is None
        assert [(entry.id, entry.outcome) for entry in journal.read().entries] == [(entry, "ok")]


def test_both_journals_are_journal_writers(store: Store, tmp_path: Path) -> None:
    writers: list[JournalWriter] = [Journal(tmp_path / "audit.jsonl"), DatabaseJournal(store)]
    for writer in writers:
        writer.finish(begin(writer), status=200, outcome="ok", detail=None)
    assert len(read_journal(tmp_path / "audit.jsonl").entries) == len(DatabaseJournal(store).read().entries) == 1
    assert isinstance(store.journal_rows()[0], JournalRow)
