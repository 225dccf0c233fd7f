"""The audit journal kept in the database: the file journal's records, in rows.

`DatabaseJournal` has the file `Journal`'s `begin` and `finish`, with the same arguments, the same
records (the same `Intent`/`Outcome` objects, masked and cleaned by the same `record_text`) and the
same failure: `JournalError` when a record cannot be stored, so the caller refuses the write. It
reads back through the file journal's own `parse_lines`, so both read identically, and
`export_jsonl` writes the very lines the file journal would have: `read_journal` of an export equals
`read()` of what was exported. Reading by account returns that account's rows only, so a tenant
never sees another's writes.
"""

from __future__ import annotations

import threading
from typing import Any, BinaryIO

from nexor_mcp.audit.journal import (
    MAX_LINE_BYTES,
    JournalError,
    new_decision,
    new_intent,
    new_outcome,
    parse_lines,
    record_text,
)
from nexor_mcp.audit.record import (
    Contents,
    UndoRecord,
    Written,
)
from nexor_mcp.errors import FIX_DATABASE
from nexor_mcp.json_types import Json
from nexor_mcp.store.base import Event, JournalRow, Store, StoreError

MAX_OPEN_ENTRIES = 10_000


class DatabaseJournal:
    """The journal in `store`'s `nexor_audit_records` table. `path` is the store's display URL
    (what log lines and `JournalError` name it by)."""

    fix = FIX_DATABASE
    """What the user must fix when it cannot be written (`JournalUnwritable` says it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path = store.display
        self.slow_outcome = store.url.kind == "postgresql"
        """Its outcome row is written from a worker thread (measured: SQLite's too is faster so
        than in place, and PostgreSQL's is a network round trip)."""
        self._accounts: dict[str, str | None] = {}
        """The account of each entry begun here and not yet finished: its outcome row is filed under
        it without looking the intent up."""
        self._lock = threading.Lock()
        self.mode_notice: str | None = None
        """Always None: a database has no file mode (kept so code written for `Journal` reads it)."""

    def __repr__(self) -> str:
        return f"DatabaseJournal({self.path!r})"

    def problem(self) -> str | None:
        """Why the journal cannot be written right now (None: it can). Creates the schema if absent."""
        try:
            self.store.ping()
            self.store.migrate()
        except StoreError as exc:
            return exc.reason
        return None

    def begin(
        self,
        *,
        tool: str,
        lead_id: str | None,
        method: str,
        path: str,
        body: Any,
        before: UndoRecord | Json | None,
        account: str | None,
        secrets: tuple[str, ...] = (),
        undoes: str | None = None,
    ) -> str:
        """Record the intent to send a write; returns the entry id. Raises `JournalError` if it
        could not be stored: the caller must then not send the write."""
        intent = new_intent(tool, lead_id, method, path, body, before, account, undoes)
        self._append(intent.id, "intent", record_text(intent.as_json(), secrets), account)
        with self._lock:
            self._accounts[intent.id] = account
            while len(self._accounts) > MAX_OPEN_ENTRIES:  # entries whose outcome never came
                self._accounts.pop(next(iter(self._accounts)))
        return intent.id

    def finish(
        self,
        entry_id: str,
        *,
        status: int | None,
        outcome: str,
        detail: str | None,
        after: Written | Json | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        """Record how the write ended (see `Outcome`). Raises `JournalError`."""
        line = new_outcome(entry_id, status, outcome, detail, after)
        with self._lock:
            account = self._accounts.pop(entry_id, None)  # else the store takes it from the intent row
        self._append(entry_id, "outcome", record_text(line.as_json(), secrets), account)

    def _append(self, entry_id: str, event: Event, text: str, account: str | None) -> None:
        try:
            self.store.append_record(entry_id=entry_id, event=event, record=text, account=account)
        except StoreError as exc:
            raise JournalError(self.path, exc.reason) from None

    def decide(
        self, *, tool: str, lead_id: str | None, account: str | None, decision: str, how: str, question: str,
        secrets: tuple[str, ...] = (),
    ) -> str:
        """Record a person's approval or decline of a confirmed call (see `Decision`); returns its id."""
        line = new_decision(tool, lead_id, account, decision, how, question)
        self._append(line.id, "decision", record_text(line.as_json(), secrets), account)
        return line.id

    def read(self, account: str | None = None) -> Contents:
        """The entries in the order their intents were stored, joined and checked exactly as a
        journal file's lines are; only `account`'s when given. Raises `StoreError`."""
        return parse_lines(_line(row) for row in self.store.journal_rows(account))

    def export_jsonl(self, account: str | None, out: BinaryIO) -> int:
        """Write the records (only `account`'s when given) to `out` as journal-file lines; returns
        how many. Raises `StoreError`."""
        rows = self.store.journal_rows(account)
        for row in rows:
            out.write(row.record.encode("utf-8") + b"\n")
        return len(rows)


def _line(row: JournalRow) -> bytes | None:
    """The row as a file line; None (as `read_journal` gives) for one too long to read."""
    line = row.record.encode("utf-8") + b"\n"
    return line if len(line) <= MAX_LINE_BYTES else None
