"""Where pending approvals live: the shared `Store` (a database), or `MemoryApprovals` for a stdio
server that has none. Both answer the same four calls with the same states and expiry rules, so
the page, its routes and the waiter never need to know which one they talk to."""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
import time
from typing import Any, Protocol

from nexor_mcp.store.base import APPROVAL_RETENTION_SECONDS, Approval, ApprovalState


class ApprovalStore(Protocol):
    """The approval methods of `nexor_mcp.store.Store` (see there for each one's contract);
    `MemoryApprovals` has them too. Synchronous: call them from a worker thread in async code."""

    def create_approval(
        self, *, account: str, tool: str, method: str, path: str, body: Any, question: str, expires_at: float,
        now: float | None = None,
    ) -> str: ...

    def get_approval(self, approval_id: str, *, now: float | None = None) -> Approval | None: ...

    def decide_approval(self, approval_id: str, approved: bool, decided_by: str, now: float | None = None) -> bool: ...

    def use_approval(self, approval_id: str, *, now: float | None = None) -> bool: ...


class MemoryApprovals:
    """Approvals kept in this process only (a stdio server without NEXOR_DATABASE_URL): exactly
    the `Store`'s semantics (random 256-bit ids; the body kept as JSON, so what is read back is a
    copy, never the caller's object; a pending approval past its expiry reads as expired and is
    recorded so when someone tries to decide it; decided once, used once; approvals long expired
    deleted when another is created). Thread-safe: one lock around every read and change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, Approval] = {}
        """As stored: the body as JSON text, the state without the expiry applied."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def create_approval(
        self, *, account: str, tool: str, method: str, path: str, body: Any, question: str, expires_at: float,
        now: float | None = None,
    ) -> str:
        """Record a write waiting for a person; returns its id (unguessable: it may stand in a link)."""
        moment = time.time() if now is None else now
        approval_id = secrets.token_urlsafe(32)
        text = json.dumps(body, separators=(",", ":"))  # as the Store does: raises TypeError for non-JSON
        row = Approval(id=approval_id, account=account, tool=tool, method=method, path=path, body=text,
                       question=question, created_at=moment, expires_at=expires_at, state="pending",
                       decided_by=None, decided_at=None)
        purge_before = moment - APPROVAL_RETENTION_SECONDS
        with self._lock:
            for old in [key for key, kept in self._rows.items() if kept.expires_at < purge_before]:
                del self._rows[old]
            self._rows[approval_id] = row
        return approval_id

    def get_approval(self, approval_id: str, *, now: float | None = None) -> Approval | None:
        """The approval (None: no such id); a pending one past its expiry reads as expired."""
        with self._lock:
            found = self._rows.get(approval_id)
        if found is None:
            return None
        moment = time.time() if now is None else now
        state: ApprovalState = "expired" if found.state == "pending" and found.expires_at < moment else found.state
        return dataclasses.replace(found, body=json.loads(found.body), state=state)

    def decide_approval(self, approval_id: str, approved: bool, decided_by: str, now: float | None = None) -> bool:
        """Approve or decline a pending, unexpired approval, once: True if this call decided it
        (False: unknown id, already decided, or expired, which is then recorded)."""
        moment = time.time() if now is None else now
        with self._lock:
            found = self._rows.get(approval_id)
            if found is None or found.state != "pending":
                return False
            if found.expires_at < moment:
                self._rows[approval_id] = dataclasses.replace(found, state="expired")
                return False
            self._rows[approval_id] = dataclasses.replace(
                found, state="approved" if approved else "declined", decided_by=decided_by, decided_at=moment)
            return True

    def use_approval(self, approval_id: str, *, now: float | None = None) -> bool:
        """Mark an approved, unexpired approval used, once: True for the one call that may now send."""
        moment = time.time() if now is None else now
        with self._lock:
            found = self._rows.get(approval_id)
            if found is None or found.state != "approved" or found.expires_at < moment:
                return False
            self._rows[approval_id] = dataclasses.replace(found, state="used")
            return True


__all__ = ["ApprovalStore", "MemoryApprovals"]
