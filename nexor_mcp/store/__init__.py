"""State that outlives one process (NEXOR_DATABASE_URL): used confirmation tokens, the audit
journal and pending approvals, shared by every process of a deployment.

- `urls`: `parse_database_url`, the one reader of the URL, and its masked `display`;
- `base`: the `Store` API (synchronous, thread-safe), `StoreError`, `Approval`, `JournalRow`;
- `schema`: the versioned schema of both backends;
- `sqlite`, `postgres`: the two backends (psycopg is imported only for a PostgreSQL URL);
- `journal`: `DatabaseJournal`, the audit journal in the database, read like the file.
"""

from __future__ import annotations

import logging

from nexor_mcp.audit.journal import JournalWriter
from nexor_mcp.store.base import Approval, ApprovalState, JournalRow, Store, StoreError
from nexor_mcp.store.journal import DatabaseJournal
from nexor_mcp.store.schema import SCHEMA_VERSION
from nexor_mcp.store.urls import DatabaseUrl, parse_database_url

logger = logging.getLogger(__name__)


def open_store(url: str | DatabaseUrl) -> Store:
    """The store `url` names, not yet connected (so this never waits for the database; the first
    call does, and creates the schema if needed). Raises ValueError for a URL that cannot be used."""
    parsed = url if isinstance(url, DatabaseUrl) else parse_database_url(url)
    if parsed.kind == "sqlite":
        from nexor_mcp.store.sqlite import SqliteStore

        return SqliteStore(parsed)
    from nexor_mcp.store.postgres import PostgresStore

    return PostgresStore(parsed)


def open_shared_state(url: DatabaseUrl) -> tuple[Store, DatabaseJournal]:
    """The server's store and the journal in it. The schema is made ready here when the database
    answers; when it does not, that is logged, the server starts all the same (reads need no
    database), and every write and confirmation is refused until it answers (the first call that
    reaches it creates the schema)."""
    store = open_store(url)
    try:
        store.migrate()
    except StoreError as exc:
        logger.error("the database %s cannot be used (%s): every write and every confirmation will be refused "
                     "until it can be; reads keep working", store.display, exc.reason)
    return store, DatabaseJournal(store)


__all__ = [
    "SCHEMA_VERSION", "Approval", "ApprovalState", "DatabaseJournal", "DatabaseUrl", "JournalRow", "JournalWriter",
    "Store", "StoreError", "open_shared_state", "open_store", "parse_database_url",
]
