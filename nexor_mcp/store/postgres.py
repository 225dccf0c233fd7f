"""The store in PostgreSQL (psycopg 3 and its connection pool), for replicas on several machines.

Imported only when a `postgresql://` URL is used, so a server without a database starts without
loading psycopg. Each call borrows a pooled connection, checked with an empty query first, so after
the database restarted the first call finds the dead connection, drops it and gets a new one. A
database that is down fails fast: a new connection waits at most `CONNECT_TIMEOUT_SECONDS`, and when
the pool has nothing to give within `POOL_WAIT_SECONDS`, one direct connection is tried, which
either serves the call (the pool is merely busy) or says why it cannot ("Connection refused")
instead of a bare pool timeout. Until the database has answered, and again once it was found down,
each call tries such a direct connection at once (failing in milliseconds while it is down); the
first that succeeds opens a fresh pool, so service resumes on the first call after the database is
back, and creating a store never waits for the database. Every statement runs in autocommit, one
statement per call except the migration, whose transaction holds an advisory lock so that two
processes starting at once take turns.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from nexor_mcp.store.base import (
    APPROVAL_COLUMNS,
    Approval,
    ApprovalState,
    Event,
    JournalRow,
    Store,
    approval_of,
)
from nexor_mcp.store.schema import POSTGRES_STEPS, SCHEMA_VERSION, VERSION_TABLE, newer_schema
from nexor_mcp.store.urls import DatabaseUrl

CONNECT_TIMEOUT_SECONDS = 5
POOL_WAIT_SECONDS = 2.0
"""How long a call waits for a pooled connection before it tries one of its own."""
POOL_MAX_SIZE = 10
CONNECTION_DEFAULTS: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT_SECONDS,
    "application_name": "nexor-mcp",
    # A database host that vanished (no reset, no answer) is noticed in seconds, not the
    # operating system's quarter of an hour, so a call cannot hang on a dead connection.
    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
}
"""libpq parameters set unless the URL sets them itself."""
MIGRATION_LOCK = 0x6E65786F72  # "nexor": the advisory lock key the migration holds

Connection = psycopg.Connection[tuple[Any, ...]]


class PostgresStore(Store):
    def __init__(self, url: DatabaseUrl, *, max_size: int = POOL_MAX_SIZE) -> None:
        if url.kind != "postgresql" or url.conninfo is None:
            raise ValueError(f"not a PostgreSQL URL: {url.display}")
        super().__init__(url)
        self._conninfo = url.conninfo
        self._kwargs: dict[str, Any] = {"autocommit": True}
        self._kwargs |= {name: value for name, value in CONNECTION_DEFAULTS.items() if name not in url.params}
        self._max_size = max_size
        self._pool: ConnectionPool[Connection] | None = None
        """Opened once the database has answered; replaced when it answers again after being down."""
        self._pool_lock = threading.Lock()
        self._closed = False
        self._down = True
        """Not known to answer (nothing tried yet, or the last attempt failed): each call tries a
        connection of its own at once, instead of waiting for the pool's next attempt."""

    # --- connections -----------------------------------------------------------------------------

    def _new_pool(self) -> ConnectionPool[Connection]:
        return ConnectionPool(
            self._conninfo, kwargs=self._kwargs, min_size=1, max_size=self._max_size, open=False,
            timeout=POOL_WAIT_SECONDS, reconnect_timeout=30.0, name="nexor-store",
        )

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A live connection for this thread alone; any database failure is a `StoreError`."""
        try:
            connection, pool = self._checked_connection()
        except psycopg.Error as exc:
            raise self._error(_reason(exc)) from None
        try:
            yield connection
        except psycopg.Error as exc:
            raise self._error(_reason(exc)) from None
        finally:
            if pool is not None:
                pool.putconn(connection)  # a broken one is discarded by the pool
            else:
                connection.close()

    def _checked_connection(self) -> tuple[Connection, ConnectionPool[Connection] | None]:
        """A pooled connection that answered an empty query, or (pool None) one of our own."""
        with self._pool_lock:
            if self._closed:
                raise self._error("the store is closed")
            pool = self._pool
        if pool is not None and not self._down:
            try:
                connection = pool.getconn()
            except (PoolTimeout, PoolClosed):  # closed: just replaced by a fresh one (_renew_pool)
                pass
            else:
                try:
                    connection.execute("")
                except psycopg.Error:
                    pool.putconn(connection)  # dead (the database restarted, or is down): dropped
                else:
                    return connection, pool
        # Nothing from the pool in time, or a dead connection: the database is down (find out why,
        # at once), restarted, or every connection is busy. One of our own says which, or serves.
        try:
            connection = psycopg.Connection.connect(self._conninfo, **self._kwargs)
        except psycopg.OperationalError:
            self._down = True  # until a connection succeeds, calls fail at once, not after POOL_WAIT
            raise
        if self._down:
            self._down = False
            self._renew_pool(pool)
        return connection, None

    def _renew_pool(self, stale: ConnectionPool[Connection] | None) -> None:
        """The database answers (for the first time, or again): a fresh pool, which connects now,
        where an old one would wait out its growing delay between attempts. The old one is closed
        in the background."""
        with self._pool_lock:
            if self._closed or self._pool is not stale:
                return
            self._pool = self._new_pool()
            self._pool.open(wait=False)
        if stale is not None:
            threading.Thread(target=stale.close, name="nexor-store-close", daemon=True).start()

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def ping(self) -> None:
        with self._connection() as connection:
            connection.execute("SELECT 1").fetchone()

    # --- the schema ------------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._connection() as connection:
            return _version(connection)

    def _migrate(self) -> None:
        with self._connection() as connection:
            if _version(connection) == SCHEMA_VERSION:
                return
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                connection.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer NOT NULL)")
                found = _version(connection)
                if found > SCHEMA_VERSION:
                    raise self._error(newer_schema(found))
                for step in range(found + 1, SCHEMA_VERSION + 1):
                    for statement in POSTGRES_STEPS[step]:
                        connection.execute(statement)
                if found == 0:
                    connection.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (%s)", (SCHEMA_VERSION,))
                else:
                    connection.execute(f"UPDATE {VERSION_TABLE} SET version = %s", (SCHEMA_VERSION,))

    # --- used confirmations ----------------------------------------------------------------------

    def _claim_once(self, account: str, token_id: str, expires_at: float, now: float) -> bool:
        # One statement, so one round trip and atomic: the purge and the claim.
        with self._connection() as connection:
            cursor = connection.execute(
                "WITH purged AS (DELETE FROM nexor_used_confirmations WHERE expires_at < %s) "
                "INSERT INTO nexor_used_confirmations (account, token_id, expires_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (account, token_id) DO NOTHING",
                (now, account, token_id, expires_at),
            )
            return cursor.rowcount == 1

    # --- the audit journal -----------------------------------------------------------------------

    def _append_record(self, entry_id: str, event: Event, record: str, account: str | None, now: float) -> int:
        with self._connection() as connection:
            if account is None and event == "outcome":
                cursor = connection.execute(
                    "INSERT INTO nexor_audit_records (account, entry_id, event, record, recorded_at) "
                    "VALUES ((SELECT account FROM nexor_audit_records WHERE entry_id = %s AND event = 'intent' "
                    "ORDER BY seq LIMIT 1), %s, %s, %s, %s) RETURNING seq",
                    (entry_id, entry_id, event, record, now),
                )
            else:
                cursor = connection.execute(
                    "INSERT INTO nexor_audit_records (account, entry_id, event, record, recorded_at) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING seq",
                    (account, entry_id, event, record, now),
                )
            row = cursor.fetchone()
        if row is None:  # pragma: no cover - RETURNING always gives the row
            raise self._error("the record was stored without a sequence number")
        return int(row[0])

    def _journal_rows(self, account: str | None) -> list[JournalRow]:
        with self._connection() as connection:
            if account is None:
                rows = connection.execute(
                    "SELECT seq, account, entry_id, event, record FROM nexor_audit_records ORDER BY seq").fetchall()
            else:
                rows = connection.execute(
                    "SELECT seq, account, entry_id, event, record FROM nexor_audit_records WHERE account = %s "
                    "ORDER BY seq", (account,)).fetchall()
        return [JournalRow(*row) for row in rows]

    # --- pending approvals -----------------------------------------------------------------------

    def _create_approval(self, approval: Approval, purge_before: float) -> None:
        with self._connection() as connection:
            connection.execute(
                "WITH purged AS (DELETE FROM nexor_approvals WHERE expires_at < %s) "
                f"INSERT INTO nexor_approvals ({APPROVAL_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (purge_before, approval.id, approval.account, approval.tool, approval.method, approval.path,
                 approval.body, approval.question, approval.created_at, approval.expires_at, approval.state,
                 approval.decided_by, approval.decided_at),
            )

    def _get_approval(self, approval_id: str) -> Approval | None:
        with self._connection() as connection:
            row = connection.execute(f"SELECT {APPROVAL_COLUMNS} FROM nexor_approvals WHERE id = %s",
                                     (approval_id,)).fetchone()
        return approval_of(row) if row else None

    def _decide_approval(self, approval_id: str, state: ApprovalState, decided_by: str, now: float) -> bool:
        with self._connection() as connection:
            cursor = connection.execute(
                "UPDATE nexor_approvals SET state = %s, decided_by = %s, decided_at = %s "
                "WHERE id = %s AND state = 'pending' AND expires_at >= %s",
                (state, decided_by, now, approval_id, now),
            )
            if cursor.rowcount == 1:
                return True
            connection.execute(
                "UPDATE nexor_approvals SET state = 'expired' WHERE id = %s AND state = 'pending' "
                "AND expires_at < %s",
                (approval_id, now),
            )
            return False

    def _use_approval(self, approval_id: str, now: float) -> bool:
        with self._connection() as connection:
            cursor = connection.execute(
                "UPDATE nexor_approvals SET state = 'used' WHERE id = %s AND state = 'approved' AND expires_at >= %s",
                (approval_id, now),
            )
            return cursor.rowcount == 1


def _version(connection: Connection) -> int:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,)).fetchone()
    if not row or not row[0]:
        return 0
    found = connection.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def _reason(error: psycopg.Error) -> str:
    """The driver's message, first line only ("connection failed: ... Connection refused")."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
