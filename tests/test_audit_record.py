"""Issue 15: the journal's line format has one owner (`nexor_mcp.audit.record`), and the JSONL on
disk did not change. GOLDEN_LINES were written by the issue-14 journal (`nexor_mcp/audit.py` before
the package), with its clock and ids pinned: the package must write them byte for byte and read
them back as that code did."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import nexor_mcp.audit.journal as journal_module
from nexor_mcp.audit import Journal, account_fingerprint, parse_lines, read_journal
from nexor_mcp.audit.record import Intent, Outcome, UndoRecord, Written, read_line
from nexor_mcp.audit.undo import plan
from nexor_mcp.tools.preview import lead_update, tag_set

KEY = "nxr_live_golden_7f3e2a9c41"
LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
WHEN = datetime(2026, 11, 27, 15, 31, 53, 123456, tzinfo=UTC)
IDS = ["20261127T153153.123456Z-9f3c1a", "20261127T153153.123456Z-0000a1", "20261127T153153.123456Z-0000b2",
       "20261127T153153.123456Z-0000c3"]


GOLDEN_LINES = [
    (
        '{"v":1,"id":"20261127T153153.123456Z-9f3c1a","event":"intent","time":"2026-11-27T15:31:53.123456'
        'Z","tool":"update_lead","lead_id":"3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b","method":"PATCH","path"'
        ':"leads/3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b","body":{"title":"CTO \u202e Caf\xe9","score":1.5,"big":100'
        '000000000000000000,"tiny":1e-300,"metadata":{"budget":5000,"vip":true,"note":null}},"before":{"f'
        'ields":{"title":"Manager","score":null},"metadata":{"vip":false},"metadata_absent":["budget","no'
        'te"]},"account":"3c4818eec5c4"}'
    ),
    (
        '{"v":1,"id":"20261127T153153.123456Z-9f3c1a","event":"outcome","time":"2026-11-27T15:31:53.12345'
        '6Z","status":200,"outcome":"ok","detail":null,"after":{"fields":{"title":"CTO","score":1.5},"met'
        'adata":{"budget":5000}}}'
    ),
    (
        '{"v":1,"id":"20261127T153153.123456Z-0000a1","event":"intent","time":"2026-11-27T15:31:53.123456'
        'Z","tool":"set_lead_tags","lead_id":"3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b","method":"PUT","path"'
        ':"leads/tags","body":{"lead_id":"3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b","tags":["VIP","Hot lead"]'
        '},"before":{"tags":["Cold"]},"account":"3c4818eec5c4"}'
    ),
    (
        '{"v":1,"id":"20261127T153153.123456Z-0000a1","event":"outcome","time":"2026-11-27T15:31:53.12345'
        '6Z","status":null,"outcome":"unknown","detail":"ReadTimeout: key nxr_**** leaked?","after":null}'
    ),
    (
        '{"v":1,"id":"20261127T153153.123456Z-0000b2","event":"intent","time":"2026-11-27T15:31:53.123456'
        'Z","tool":"undo","lead_id":"3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b","method":"PATCH","path":"leads'
        '/3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b","body":{"title":"Manager"},"before":{"fields":{"title":"C'
        'TO"},"metadata":{},"metadata_absent":[]},"account":null,"undoes":"20261127T153153.123456Z-9f3c1a'
        '"}'
    ),
    (
        '{"v":1,"id":"20261127T153153.123456Z-0000b2","event":"outcome","time":"2026-11-27T15:31:53.12345'
        '6Z","status":409,"outcome":"failed","detail":"ConflictError: x","after":null}'
    ),
    (
        '{"v":1,"id":"20261127T153153.123456Z-0000c3","event":"intent","time":"2026-11-27T15:31:53.123456'
        'Z","tool":"send_message","lead_id":null,"method":"POST","path":"messages","body":{"content":"hi\ufffd'
        '"},"before":null,"account":null}'
    ),
    (
        '{"v":1,"id":"20261127T153153.123456Z-0000c3","event":"outcome","time":"2026-11-27T15:31:53.12345'
        '6Z","status":202,"outcome":"accepted","detail":"Nexor\'s answer was not JSON","after":null}'
    ),
]
GOLDEN = "".join(line + "\n" for line in GOLDEN_LINES).encode("utf-8")


def write_the_golden_writes(journal: Journal) -> None:
    """The writes GOLDEN_LINES record: an update with before- and after-values (a bidi character,
    floats, a big integer), a tag set whose detail held the key, a failed undo, an accepted message
    whose text held a lone surrogate."""
    account = account_fingerprint(KEY)
    first = journal.begin(
        tool="update_lead", lead_id=LEAD, method="PATCH", path=f"leads/{LEAD}",
        body={"title": "CTO \u202e Café", "score": 1.5, "big": 10**20, "tiny": 1e-300,
              "metadata": {"budget": 5000, "vip": True, "note": None}},
        before={"fields": {"title": "Manager", "score": None}, "metadata": {"vip": False},
                "metadata_absent": ["budget", "note"]},
        account=account, secrets=(KEY,),
    )
    journal.finish(first, status=200, outcome="ok", detail=None,
                   after={"fields": {"title": "CTO", "score": 1.5}, "metadata": {"budget": 5000}}, secrets=(KEY,))
    tags = journal.begin(tool="set_lead_tags", lead_id=LEAD, method="PUT", path="leads/tags",
                         body={"lead_id": LEAD, "tags": ["VIP", "Hot lead"]}, before=UndoRecord.of_tags(["Cold"]),
                         account=account, secrets=(KEY,))
    journal.finish(tags, status=None, outcome="unknown", detail=f"ReadTimeout: key {KEY} leaked?", secrets=(KEY,))
    undo = journal.begin(tool="undo", lead_id=LEAD, method="PATCH", path=f"leads/{LEAD}", body={"title": "Manager"},
                         before=UndoRecord.of_update({"title": "CTO"}, {}, []), account=None, undoes=first)
    journal.finish(undo, status=409, outcome="failed", detail="ConflictError: x", after=None)
    message = journal.begin(tool="send_message", lead_id=None, method="POST", path="messages",
                            body={"content": "hi\ud83d"}, before=None, account=None)
    journal.finish(message, status=202, outcome="accepted", detail="Nexor's answer was not JSON")


def test_the_package_writes_the_issue_14_lines_byte_for_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(IDS)
    monkeypatch.setattr(journal_module, "now", lambda: WHEN)
    monkeypatch.setattr(journal_module, "new_entry_id", lambda when=None: next(ids))
    path = tmp_path / "audit.jsonl"
    write_the_golden_writes(Journal(path))
    assert path.read_bytes() == GOLDEN


def test_every_issue_14_line_goes_through_its_model_and_back_unchanged() -> None:
    for line in GOLDEN_LINES:
        model = read_line(json.loads(line))
        assert isinstance(model, Intent | Outcome), model
        assert json.dumps(model.as_json(), ensure_ascii=False, separators=(",", ":")) == line


def test_an_issue_14_journal_reads_back_as_that_code_read_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(GOLDEN)
    contents = read_journal(path)
    assert contents.problems == []
    first, tags, undo, message = contents.entries
    assert first.as_json() == {
        "id": IDS[0], "time": "2026-11-27T15:31:53.123456Z", "tool": "update_lead", "lead_id": LEAD,
        "method": "PATCH", "path": f"leads/{LEAD}",
        "body": {"title": "CTO \u202e Café", "score": 1.5, "big": 10**20, "tiny": 1e-300,
                 "metadata": {"budget": 5000, "vip": True, "note": None}},
        "before": {"fields": {"title": "Manager", "score": None}, "metadata": {"vip": False},
                   "metadata_absent": ["budget", "note"]},
        "account": account_fingerprint(KEY), "undoes": None, "outcome": "ok", "outcome_recorded": True,
        "status": 200, "detail": None,
        "after": {"fields": {"title": "CTO", "score": 1.5}, "metadata": {"budget": 5000}},
        "finished": "2026-11-27T15:31:53.123456Z",
    }
    assert (first.line, tags.line, undo.line, message.line) == (1, 3, 5, 7)
    assert (tags.before, tags.outcome, tags.status, tags.detail) == (
        {"tags": ["Cold"]}, "unknown", None, "ReadTimeout: key nxr_**** leaked?")
    assert (undo.undoes, undo.outcome, undo.status, undo.after) == (IDS[0], "failed", 409, None)
    assert (message.body, message.before, message.shown_outcome) == (
        {"content": "hi\ufffd"}, None, "accepted (HTTP 202)")
    assert first.undo_record == UndoRecord(fields={"title": "Manager", "score": None}, metadata={"vip": False},
                                           metadata_absent=["budget", "note"])
    assert first.written == Written(fields={"title": "CTO", "score": 1.5}, metadata={"budget": 5000})


ODD_LINES = [
    b"[1,2]\n",
    b'{"id":"a","event":"intent"}\n',
    b'{"v":1,"event":"intent"}\n',
    b'{"v":1,"id":"","event":"intent"}\n',
    b'{"v":1,"id":"n1","event":"intent","time":"t","method":"GET","path":"p"}\n',
    b'{"v":1,"id":"n2","event":"intent","time":"t","tool":"x","method":5,"path":"p"}\n',
    b'{"v":1,"id":"n3","event":"outcome","outcome":"great"}\n',
    b'{"v":1,"id":"n4","event":null}\n',
    b'{"v":1,"id":"20261127T153153.123456Z-9f3c1a","event":"intent","time":"t","tool":"x","method":"GET","path":"p"}\n',
    b'{"v":1,"id":"odd","event":"intent","time":"t","tool":"x","method":"GET","path":"p","before":[1],"lead_id":7}\n',
    b'{"v":1,"id":"odd","event":"outcome","time":7,"status":"200","outcome":"ok","detail":5,"after":[1]}\n',
    b'{"v":1,"id":"old","event":"intent","time":"t","tool":"update_lead","method":"PATCH","path":"leads/L",'
    b'"body":{"title":"Boss"},"before":{"fields":{"title":null}}}\n',
    b'{"v":1,"id":"old","event":"outcome","time":"t2","status":200,"outcome":"ok"}\n',
]


def test_a_line_that_cannot_be_used_is_skipped_for_the_same_reason_as_before() -> None:
    contents = parse_lines([*GOLDEN_LINES_AS_READ, *ODD_LINES])
    assert contents.problems == [
        "line 9: not a JSON object; skipped",
        'line 10: not a journal line (no "v": 1); skipped',
        "line 11: no entry id; skipped",
        "line 12: no entry id; skipped",
        "line 13: an intent without tool; skipped",
        "line 14: an intent without method; skipped",
        "line 15: an outcome that is not one of ok, accepted, failed, unknown; skipped",
        "line 16: an unknown event 'None'; skipped",
        f"line 17: a second intent for entry {IDS[0]}; skipped",
    ]


def test_an_optional_value_of_the_wrong_type_reads_as_absent_and_a_partial_record_as_written() -> None:
    entries = {entry.id: entry for entry in parse_lines([*GOLDEN_LINES_AS_READ, *ODD_LINES]).entries}
    odd = entries["odd"]
    assert (odd.lead_id, odd.before, odd.status, odd.detail, odd.after, odd.finished, odd.outcome) == (
        None, None, None, None, None, None, "ok")
    old = entries["old"]  # an undo record with fields only, as a hand-written or older line may hold
    assert old.before == {"fields": {"title": None}} and old.finished == "t2" and old.detail is None
    assert old.undo_record == UndoRecord(fields={"title": None}) and old.undo_record.metadata is None
    restore = plan(old, {"id": "L", "title": "Boss"})
    assert not isinstance(restore, str)
    assert (restore.method, restore.path, restore.body, restore.differences, restore.no_op) == (
        "PATCH", "leads/L", {"title": None}, [], False)
    assert restore.before.as_json() == {"fields": {"title": "Boss"}, "metadata": {}, "metadata_absent": []}


GOLDEN_LINES_AS_READ = [line.encode("utf-8") + b"\n" for line in GOLDEN_LINES]


def test_the_preview_the_planner_and_the_reader_share_one_undo_record() -> None:
    lead: dict[str, Any] = {"id": LEAD, "title": "Manager", "metadata": {"vip": False}, "tags": [{"name": "Cold"}]}
    update = lead_update(lead, {"title": "CTO", "metadata": {"vip": True, "budget": 5}})
    assert update.undo == UndoRecord.of_update({"title": "Manager"}, {"vip": False}, ["budget"]).as_json()
    assert list(update.undo or {}) == ["fields", "metadata", "metadata_absent"]  # the documented key order
    assert tag_set(lead, ["VIP"]).undo == UndoRecord.of_tags(["Cold"]).as_json() == {"tags": ["Cold"]}
