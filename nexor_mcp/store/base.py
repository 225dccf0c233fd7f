"""What every store offers, whichever database is under it.

The API is synchronous and thread-safe: the server calls it from worker threads
(`anyio.to_thread.run_sync`), the CLI directly. Each call is one short transaction, atomic across
processes, so replicas and the CLI can share one database. Any failure to reach or use the
database is a `StoreError` naming the store by its display URL (never its password), so the caller
can refuse the write it was about to allow: write safety fails closed.

The schema is created on first use when `migrate()` was not called (so a database that was down
when the server started is set up as soon as it answers); `migrate()` may be called at start to
find a problem early.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from nexor_mcp.store.urls import DatabaseUrl

ApprovalState = Literal["pending", "approved", "declined", "expired", "used"]
Event = Literal["intent", "outcome", "decision"]
APPROVAL_RETENTION_SECONDS = 7 * 24 * 3600.0
"""How long after its expiry an approval is kept (for looking back), then deleted."""


class StoreError(Exception):
    """The database could not be reached or used. `display`: the store's URL, password masked;
    `reason`: why, for people ("connection refused", "database is locked")."""

    def __init__(self, display: str, reason: str) -> None:
        super().__init__(f"{display}: {reason}")
        self.display = display
        self.reason = reason


@dataclass(frozen=True)
class Approval:
    """A write waiting for (or given) a person's decision: the exact request it would send."""

    id: str
    account: str
    tool: str
    method: str
    path: str
    body: Any
    question: str
    created_at: float
    expires_at: float
    state: ApprovalState
    """As stored, except that a pending approval past its expiry reads as `expired`."""
    decided_by: str | None
    decided_at: float | None


@dataclass(frozen=True)
class JournalRow:
    """One stored journal record: an intent or an outcome, `record` the JSON line's text."""

    seq: int
    account: str | None
    entry_id: str
    event: Event
    record: str


class Store(ABC):
    """State shared by every process of a deployment: used confirmations, the audit journal and
    pending approvals. Use `open_store(url)` to get one."""

    def __init__(self, url: DatabaseUrl) -> None:
        self.url = url
        self._migrated = False
        self._migrate_lock = threading.Lock()

    @property
    def display(self) -> str:
        """The URL with its password masked: what to name this store by in logs and errors."""
        return self.url.display

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _error(self, reason: str) -> StoreError:
        """A `StoreError` naming this store, `reason` with the password masked out."""
        return StoreError(self.display, self.url.redact(reason))

    # --- lifecycle -------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the schema to `SCHEMA_VERSION`; idempotent, safe to run from several
        processes at once. Raises `StoreError` (also when the database is of a newer version)."""
        with self._migrate_lock:
            self._migrate()
            self._migrated = True

    @abstractmethod
    def schema_version(self) -> int:
        """The version the database records (0: no schema yet). Raises `StoreError`."""

    @abstractmethod
    def ping(self) -> None:
        """Raises `StoreError` when the database does not answer."""

    @abstractmethod
    def close(self) -> None:
        """Release the connections; the store cannot be used afterwards."""

    # --- used confirmations ----------------------------------------------------------------------

    def claim_once(self, account: str, token_id: str, expires_at: float, *, now: float | None = None) -> bool:
        """True the first time (account, token_id) is claimed, False if it was claimed already, by
        any process. Expired claims are deleted on the way. Raises `StoreError` if the claim could
        not be recorded: the caller must then refuse the token."""
        self._ready()
        return self._claim_once(account, token_id, expires_at, time.time() if now is None else now)

    # --- the audit journal -----------------------------------------------------------------------

    def append_record(self, *, entry_id: str, event: Event, record: str, account: str | None) -> int:
        """Store one journal record (`record`: the line's JSON text, already masked); returns its
        sequence number. An outcome given no account takes its intent's, so that reading by
        account finds both. Raises `StoreError`."""
        self._ready()
        return self._append_record(entry_id, event, record, account, time.time())

    def journal_rows(self, account: str | None = None) -> list[JournalRow]:
        """The journal records in the order they were stored; only `account`'s when given (None:
        every account's). Raises `StoreError`."""
        self._ready()
        return self._journal_rows(account)

    # --- pending approvals -----------------------------------------------------------------------

    def create_approval(
        self, *, account: str, tool: str, method: str, path: str, body: Any, question: str, expires_at: float,
        now: float | None = None,
    ) -> str:
        """Record a write waiting for a person; returns its id (random, 256 bits: unguessable, so
        it may stand in a link). Approvals long expired are deleted on the way. Raises `StoreError`."""
        self._ready()
        moment = time.time() if now is None else now
        approval_id = secrets.token_urlsafe(32)
        # ASCII JSON: any string (a lone surrogate too) is stored and read back exactly.
        self._create_approval(
            Approval(id=approval_id, account=account, tool=tool, method=method, path=path,
                     body=json.dumps(body, separators=(",", ":")), question=question, created_at=moment,
                     expires_at=expires_at, state="pending", decided_by=None, decided_at=None),
            moment - APPROVAL_RETENTION_SECONDS,
        )
        return approval_id

    def get_approval(self, approval_id: str, *, now: float | None = None) -> Approval | None:
        """The approval (None: no such id). Raises `StoreError`."""
        self._ready()
        found = self._get_approval(approval_id)
        if found is None:
            return None
        moment = time.time() if now is None else now
        state = "expired" if found.state == "pending" and found.expires_at < moment else found.state
        return Approval(
            id=found.id, account=found.account, tool=found.tool, method=found.method, path=found.path,
            body=json.loads(found.body), question=found.question, created_at=found.created_at,
            expires_at=found.expires_at, state=state, decided_by=found.decided_by, decided_at=found.decided_at,
        )

    def decide_approval(self, approval_id: str, approved: bool, decided_by: str, now: float | None = None) -> bool:
        """Approve or decline a pending, unexpired approval, once: True if this call decided it
        (False: unknown id, already decided, or expired, which is then recorded). Raises `StoreError`."""
        self._ready()
        return self._decide_approval(approval_id, "approved" if approved else "declined", decided_by,
                                     time.time() if now is None else now)

    def use_approval(self, approval_id: str, *, now: float | None = None) -> bool:
        """Mark an approved, unexpired approval used, once: True for the one call that may now
        send the write. Raises `StoreError`."""
        self._ready()
        return self._use_approval(approval_id, time.time() if now is None else now)

    # --- what each backend implements -----------------------------------------------------------

    def _ready(self) -> None:
        if not self._migrated:
            self.migrate()

    @abstractmethod
    def _migrate(self) -> None: ...

    @abstractmethod
    def _claim_once(self, account: str, token_id: str, expires_at: float, now: float) -> bool: ...

    @abstractmethod
    def _append_record(self, entry_id: str, event: Event, record: str, account: str | None, now: float) -> int: ...

    @abstractmethod
    def _journal_rows(self, account: str | None) -> list[JournalRow]: ...

    @abstractmethod
    def _create_approval(self, approval: Approval, purge_before: float) -> None:
        """Insert `approval` (its body as JSON text); delete those that expired before `purge_before`."""

    @abstractmethod
    def _get_approval(self, approval_id: str) -> Approval | None:
        """The stored row, body as JSON text, state as stored."""

    @abstractmethod
    def _decide_approval(self, approval_id: str, state: ApprovalState, decided_by: str, now: float) -> bool: ...

    @abstractmethod
    def _use_approval(self, approval_id: str, now: float) -> bool: ...


def approval_of(row: tuple[Any, ...]) -> Approval:
    """An `Approval` from a row selected in `APPROVAL_COLUMNS` order."""
    return Approval(*row)


APPROVAL_COLUMNS = ("id, account, tool, method, path, body, question, created_at, expires_at, state, decided_by, "
                    "decided_at")
