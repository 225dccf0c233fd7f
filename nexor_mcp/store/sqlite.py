"""The store in one SQLite file (standard library `sqlite3`), for one machine's processes.

WAL, so readers never wait for the writer; `synchronous=FULL`, so a committed claim or journal
record survives a power cut; a busy timeout, so processes that write at once take turns instead of
failing; and `BEGIN IMMEDIATE` for every write, so the write lock is taken before anything is read
and two processes can never both decide from the same stale view. WAL needs a local file system
(not NFS). The file holds lead data (the journal), so it is created readable by its owner only.

Connections are kept in a small free list: a thread takes one, uses it alone, and puts it back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator

from nexor_mcp.store.base import (
    APPROVAL_COLUMNS,
    Approval,
    ApprovalState,
    Event,
    JournalRow,
    Store,
    StoreError,
    approval_of,
)
from nexor_mcp.store.schema import SCHEMA_VERSION, SQLITE_STEPS, VERSION_TABLE, newer_schema
from nexor_mcp.store.urls import DatabaseUrl

BUSY_TIMEOUT_SECONDS = 10.0
"""How long a write waits for another process's write to finish before it fails."""
FILE_MODE = 0o600
MAX_IDLE = 8
"""Connections kept open between calls (more threads than this open and close their own)."""

logger = logging.getLogger(__name__)


class SqliteStore(Store):
    def __init__(self, url: DatabaseUrl) -> None:
        if url.kind != "sqlite" or url.path is None:
            raise ValueError(f"not a SQLite URL: {url.display}")
        super().__init__(url)
        self.path = url.path
        self._idle: dict[bool, list[sqlite3.Connection]] = {True: [], False: []}
        """Idle connections by durability: synchronous=FULL (True) or NORMAL (False), set once."""
        self._lock = threading.Lock()
        self._closed = False

    # --- connections -----------------------------------------------------------------------------

    def _open(self, durable: bool) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise self._error(f"the directory {directory} does not exist")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            self._keep_private()
        except OSError as exc:
            raise self._error(exc.strerror or type(exc).__name__) from None
        else:
            os.close(fd)
        try:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(str(exc)) from None
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        except sqlite3.Error as exc:
            connection.close()
            raise self._error(str(exc)) from None
        return connection

    def _keep_private(self) -> None:
        try:
            mode = stat.S_IMODE(os.stat(self.path).st_mode)
            if mode & 0o077:
                os.chmod(self.path, FILE_MODE)
                logger.warning("the database %s could be read by other users (mode %o); it holds lead data, so "
                               "its mode was changed to 600", self.display, mode)
        except OSError:
            pass  # opening it will say what is wrong, if anything

    @contextlib.contextmanager
    def _connection(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A connection for this thread alone; a failure is a `StoreError`, and the connection
        that saw it is closed rather than reused. `durable=False`: one whose commits do not wait
        for the disk (synchronous=NORMAL: in WAL mode the database stays consistent, and a commit
        is kept unless the machine itself fails before the next sync)."""
        with self._lock:
            if self._closed:
                raise self._error("the store is closed")
            idle = self._idle[durable]
            connection = idle.pop() if idle else None
        if connection is None:
            connection = self._open(durable)
        try:
            yield connection
        except sqlite3.Error as exc:
            connection.close()
            raise self._error(str(exc)) from None
        except BaseException:
            connection.close()
            raise
        with self._lock:
            if self._closed or len(self._idle[durable]) >= MAX_IDLE:
                connection.close()
            else:
                self._idle[durable].append(connection)

    @contextlib.contextmanager
    def _write(self, *, durable: bool = True, single: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction, its lock taken first (BEGIN IMMEDIATE); `single`: one statement,
        which is its own transaction (no BEGIN/COMMIT round trips); `durable`: see `_connection`."""
        with self._connection(durable) as connection:
            if single:
                yield connection
                return
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = [*self._idle[True], *self._idle[False]], {True: [], False: []}
        for connection in idle:
            connection.close()

    def ping(self) -> None:
        with self._connection() as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()

    # --- the schema ------------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._connection() as connection:
            return _version(connection)

    def _migrate(self) -> None:
        with self._connection() as connection:
            if _version(connection) == SCHEMA_VERSION:
                return  # the usual case: no write lock taken
        with self._write() as connection:
            connection.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)")
            found = _version(connection)
            if found > SCHEMA_VERSION:
                raise self._error(newer_schema(found))
            for step in range(found + 1, SCHEMA_VERSION + 1):
                for statement in SQLITE_STEPS[step]:
                    connection.execute(statement)
            if found == 0:
                connection.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", (SCHEMA_VERSION,))
            else:
                connection.execute(f"UPDATE {VERSION_TABLE} SET version = ?", (SCHEMA_VERSION,))

    # --- used confirmations ----------------------------------------------------------------------

    def _claim_once(self, account: str, token_id: str, expires_at: float, now: float) -> bool:
        with self._write() as connection:
            connection.execute("DELETE FROM nexor_used_confirmations WHERE expires_at < ?", (now,))
            cursor = connection.execute(
                "INSERT INTO nexor_used_confirmations (account, token_id, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (account, token_id) DO NOTHING",
                (account, token_id, expires_at),
            )
            return cursor.rowcount == 1

    # --- the audit journal -----------------------------------------------------------------------

    def _append_record(self, entry_id: str, event: Event, record: str, account: str | None, now: float) -> int:
        # The intent is on disk (synchronous=FULL) before the request leaves; the outcome is as the
        # file journal's outcome line is: written, not waited for (it follows a write already sent).
        with self._write(durable=event != "outcome", single=True) as connection:
            if account is None and event == "outcome":
                cursor = connection.execute(
                    "INSERT INTO nexor_audit_records (account, entry_id, event, record, recorded_at) "
                    "VALUES ((SELECT account FROM nexor_audit_records WHERE entry_id = ? AND event = 'intent' "
                    "ORDER BY seq LIMIT 1), ?, ?, ?, ?)",
                    (entry_id, entry_id, event, record, now),
                )
            else:
                cursor = connection.execute(
                    "INSERT INTO nexor_audit_records (account, entry_id, event, record, recorded_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (account, entry_id, event, record, now),
                )
            seq = cursor.lastrowid
        if seq is None:  # pragma: no cover - an INSERT into a rowid table always sets it
            raise self._error("the record was stored without a sequence number")
        return seq

    def _journal_rows(self, account: str | None) -> list[JournalRow]:
        query = "SELECT seq, account, entry_id, event, record FROM nexor_audit_records"
        with self._connection() as connection:
            if account is None:
                rows = connection.execute(query + " ORDER BY seq").fetchall()
            else:
                rows = connection.execute(query + " WHERE account = ? ORDER BY seq", (account,)).fetchall()
        return [JournalRow(*row) for row in rows]

    # --- pending approvals -----------------------------------------------------------------------

    def _create_approval(self, approval: Approval, purge_before: float) -> None:
        with self._write() as connection:
            connection.execute("DELETE FROM nexor_approvals WHERE expires_at < ?", (purge_before,))
            connection.execute(
                f"INSERT INTO nexor_approvals ({APPROVAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (approval.id, approval.account, approval.tool, approval.method, approval.path, approval.body,
                 approval.question, approval.created_at, approval.expires_at, approval.state, approval.decided_by,
                 approval.decided_at),
            )

    def _get_approval(self, approval_id: str) -> Approval | None:
        with self._connection() as connection:
            row = connection.execute(f"SELECT {APPROVAL_COLUMNS} FROM nexor_approvals WHERE id = ?",
                                     (approval_id,)).fetchone()
        return approval_of(row) if row else None

    def _decide_approval(self, approval_id: str, state: ApprovalState, decided_by: str, now: float) -> bool:
        with self._write() as connection:
            cursor = connection.execute(
                "UPDATE nexor_approvals SET state = ?, decided_by = ?, decided_at = ? "
                "WHERE id = ? AND state = 'pending' AND expires_at >= ?",
                (state, decided_by, now, approval_id, now),
            )
            if cursor.rowcount == 1:
                return True
            connection.execute(
                "UPDATE nexor_approvals SET state = 'expired' WHERE id = ? AND state = 'pending' AND expires_at < ?",
                (approval_id, now),
            )
            return False

    def _use_approval(self, approval_id: str, now: float) -> bool:
        with self._write() as connection:
            cursor = connection.execute(
                "UPDATE nexor_approvals SET state = 'used' WHERE id = ? AND state = 'approved' AND expires_at >= ?",
                (approval_id, now),
            )
            return cursor.rowcount == 1


def _version(connection: sqlite3.Connection) -> int:
    if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (VERSION_TABLE,)).fetchone() is None:
        return 0
    row = connection.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


__all__ = ["SqliteStore", "StoreError"]
