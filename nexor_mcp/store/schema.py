"""The database schema, one numbered step per version, for both backends side by side so they
cannot drift apart.

`migrate()` runs the steps after the version the database records (the one row of
`nexor_schema_version`), all in one transaction under a lock, so two processes starting at once
cannot both create the tables, and a failure leaves the previous version whole. A database at a
newer version than this code knows is refused, not written to. Every table is prefixed `nexor_`, so
the server can share a database with other applications.

    nexor_used_confirmations  (account, token_id) primary key, expires_at   tokens used once
    nexor_audit_records       seq, account, entry_id, event, record, recorded_at   the audit journal
    nexor_approvals           id, account, tool, method, path, body, question, created_at,
                              expires_at, state, decided_by, decided_at   writes waiting for a person
"""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 1
"""The version this code writes and reads; each step below brings the schema to its number."""

VERSION_TABLE: Final = "nexor_schema_version"
_STATES = "('pending', 'approved', 'declined', 'expired', 'used')"

SQLITE_STEPS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        """CREATE TABLE nexor_used_confirmations (
            account TEXT NOT NULL,
            token_id TEXT NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (account, token_id)
        )""",
        "CREATE INDEX nexor_used_confirmations_expiry ON nexor_used_confirmations (expires_at)",
        # The journal is append-only and written before every write: each record touches as few
        # pages as can be (the rowid as seq, no AUTOINCREMENT bookkeeping, no secondary index: the
        # commit that must reach the disk before a request leaves is then one page). Reading it
        # (`nexor-mcp audit`) scans, which is fast enough for a journal on one machine.
        """CREATE TABLE nexor_audit_records (
            seq INTEGER PRIMARY KEY,
            account TEXT,
            entry_id TEXT NOT NULL,
            event TEXT NOT NULL CHECK (event IN ('intent', 'outcome', 'decision')),
            record TEXT NOT NULL,
            recorded_at REAL NOT NULL
        )""",
        f"""CREATE TABLE nexor_approvals (
            id TEXT PRIMARY KEY,
            account TEXT NOT NULL,
            tool TEXT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            body TEXT NOT NULL,
            question TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN {_STATES}),
            decided_by TEXT,
            decided_at REAL
        )""",
        "CREATE INDEX nexor_approvals_expiry ON nexor_approvals (expires_at)",
    ),
}

POSTGRES_STEPS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        """CREATE TABLE nexor_used_confirmations (
            account text NOT NULL,
            token_id text NOT NULL,
            expires_at double precision NOT NULL,
            PRIMARY KEY (account, token_id)
        )""",
        "CREATE INDEX nexor_used_confirmations_expiry ON nexor_used_confirmations (expires_at)",
        """CREATE TABLE nexor_audit_records (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account text,
            entry_id text NOT NULL,
            event text NOT NULL CHECK (event IN ('intent', 'outcome', 'decision')),
            record text NOT NULL,
            recorded_at double precision NOT NULL
        )""",
        "CREATE INDEX nexor_audit_records_account ON nexor_audit_records (account, seq)",
        "CREATE INDEX nexor_audit_records_entry ON nexor_audit_records (entry_id)",
        f"""CREATE TABLE nexor_approvals (
            id text PRIMARY KEY,
            account text NOT NULL,
            tool text NOT NULL,
            method text NOT NULL,
            path text NOT NULL,
            body text NOT NULL,
            question text NOT NULL,
            created_at double precision NOT NULL,
            expires_at double precision NOT NULL,
            state text NOT NULL DEFAULT 'pending' CHECK (state IN {_STATES}),
            decided_by text,
            decided_at double precision
        )""",
        "CREATE INDEX nexor_approvals_expiry ON nexor_approvals (expires_at)",
    ),
}

def newer_schema(found: int) -> str:
    """Why a database another (newer) nexor-mcp migrated is not used."""
    return (f"the database schema is at version {found}, newer than this nexor-mcp knows ({SCHEMA_VERSION}): "
            "upgrade nexor-mcp")
