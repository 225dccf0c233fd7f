"""Pending approvals (a person approves a write in a browser), on a real SQLite file and a real
PostgreSQL: the exact request kept, decided once, used once, never after their expiry, and two
deciders or two users racing from different processes' stores getting one success between them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from nexor_mcp.store import Approval, Store, open_store
from nexor_mcp.store.base import APPROVAL_RETENTION_SECONDS
from tests.test_store import in_threads, raw

NOW = 1_800_000_000.0
BODY = {"lead_id": "3f2b8c1e", "text": "Hola María ✓\nline two", "nested": {"n": [1, 2.5, None, True]},
        "half": "\ud83d"}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with open_store(database_url) as opened:
        yield opened


def create(store: Store, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "account": "acct-a", "tool": "send_message", "method": "POST", "path": "messages", "body": BODY,
        "question": "Send this WhatsApp message to María?", "expires_at": NOW + 300, "now": NOW,
    }
    arguments.update(overrides)
    return store.create_approval(**arguments)


def test_an_approval_keeps_the_exact_request_and_starts_pending(store: Store) -> None:
    approval_id = create(store)
    assert store.get_approval(approval_id, now=NOW + 1) == Approval(
        id=approval_id, account="acct-a", tool="send_message", method="POST", path="messages", body=BODY,
        question="Send this WhatsApp message to María?", created_at=NOW, expires_at=NOW + 300, state="pending",
        decided_by=None, decided_at=None,
    )


def test_ids_are_random_and_unguessable(store: Store) -> None:
    ids = {create(store) for _ in range(50)}
    assert len(ids) == 50
    assert all(len(approval_id) >= 43 for approval_id in ids)  # 256 bits, URL-safe


def test_an_unknown_id_is_none_and_changes_nothing(store: Store) -> None:
    assert store.get_approval("nope") is None
    assert store.decide_approval("nope", True, "ana@example.com", NOW) is False
    assert store.use_approval("nope", now=NOW) is False


def test_approved_once_then_used_once(store: Store) -> None:
    approval_id = create(store)
    assert store.use_approval(approval_id, now=NOW + 5) is False  # not approved yet
    assert store.decide_approval(approval_id, True, "ana@example.com", NOW + 10) is True
    assert store.decide_approval(approval_id, False, "mallory@example.com", NOW + 11) is False
    approved = store.get_approval(approval_id, now=NOW + 12)
    assert approved is not None
    assert (approved.state, approved.decided_by, approved.decided_at) == ("approved", "ana@example.com", NOW + 10)
    assert store.use_approval(approval_id, now=NOW + 20) is True
    assert store.use_approval(approval_id, now=NOW + 21) is False
    used = store.get_approval(approval_id, now=NOW + 22)
    assert used is not None and used.state == "used" and used.decided_by == "ana@example.com"


def test_a_declined_approval_can_never_be_used(store: Store) -> None:
    approval_id = create(store)
    assert store.decide_approval(approval_id, False, "ana@example.com", NOW + 10) is True
    assert store.decide_approval(approval_id, True, "ana@example.com", NOW + 11) is False
    assert store.use_approval(approval_id, now=NOW + 12) is False
    declined = store.get_approval(approval_id, now=NOW + 13)
    assert declined is not None and (declined.state, declined.decided_by) == ("declined", "ana@example.com")


def test_an_expired_approval_can_be_neither_decided_nor_used(store: Store, database_url: str) -> None:
    approval_id = create(store)
    before = store.get_approval(approval_id, now=NOW + 300)
    assert before is not None and before.state == "pending"  # valid up to its expiry
    after = store.get_approval(approval_id, now=NOW + 301)
    assert after is not None and after.state == "expired"  # reads as expired...
    assert raw(database_url, "SELECT state FROM nexor_approvals") == [("pending",)]  # ...before it is recorded
    assert store.decide_approval(approval_id, True, "ana@example.com", NOW + 301) is False
    assert raw(database_url, "SELECT state, decided_by FROM nexor_approvals") == [("expired", None)]
    assert store.use_approval(approval_id, now=NOW + 302) is False


def test_an_approval_approved_in_time_cannot_be_used_after_its_expiry(store: Store) -> None:
    approval_id = create(store)
    assert store.decide_approval(approval_id, True, "ana@example.com", NOW + 299) is True
    assert store.use_approval(approval_id, now=NOW + 301) is False
    late = store.get_approval(approval_id, now=NOW + 302)
    assert late is not None and late.state == "approved"


def test_racing_deciders_on_separate_stores_decide_once(database_url: str) -> None:
    stores = [open_store(database_url) for _ in range(8)]
    try:
        approval_id = create(stores[0])
        results = in_threads(8, lambda index: stores[index].decide_approval(
            approval_id, index % 2 == 0, f"person-{index}", NOW + 10))
        assert sorted(results) == [False] * 7 + [True]
        winner = results.index(True)
        decided = stores[1].get_approval(approval_id, now=NOW + 11)
        assert decided is not None
        assert (decided.state, decided.decided_by) == ("approved" if winner % 2 == 0 else "declined",
                                                       f"person-{winner}")
        if decided.state == "approved":
            used = in_threads(8, lambda index: stores[index].use_approval(approval_id, now=NOW + 12))
            assert sorted(used) == [False] * 7 + [True]
    finally:
        for store in stores:
            store.close()


def test_approvals_long_expired_are_deleted_when_another_is_created(store: Store, database_url: str) -> None:
    old = create(store, expires_at=NOW - APPROVAL_RETENTION_SECONDS - 1, now=NOW - APPROVAL_RETENTION_SECONDS - 300)
    recent = create(store, expires_at=NOW - 10, now=NOW - 310)
    fresh = create(store)
    assert store.get_approval(old) is None
    assert {row[0] for row in raw(database_url, "SELECT id FROM nexor_approvals")} == {recent, fresh}


def test_approval_is_a_frozen_value(store: Store) -> None:
    approval = store.get_approval(create(store), now=NOW)
    assert approval is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        approval.state = "approved"  # type: ignore[misc]
