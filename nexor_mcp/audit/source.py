"""Which journal the `audit` commands read and journal their undos in: the database's when
NEXOR_DATABASE_URL is set (the one the server writes then), else NEXOR_AUDIT_LOG's file.

In the database, with a key configured, only that key's account's entries are read: a tenant's
journal never shows another's writes (without a key, every account's, for the operator)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from nexor_mcp.account import account_fingerprint
from nexor_mcp.audit.journal import Journal, JournalWriter, read_journal
from nexor_mcp.audit.record import Contents
from nexor_mcp.config import ENV_VARS, Settings, open_regular_file

if TYPE_CHECKING:
    from nexor_mcp.store import DatabaseJournal

NO_JOURNAL = (
    f"no audit journal is configured: set {ENV_VARS['database_url']} (or database_url, --database-url), or "
    f"{ENV_VARS['audit_log']} (audit_log, --audit-log PATH): the journal the server writes"
)


class CannotRead(Exception):
    """The journal exists but cannot be read; the message says why, for people."""


@dataclass
class JournalSource:
    label: str
    """The file's path, or the database's URL with its password masked."""
    writer: JournalWriter
    database: DatabaseJournal | None = None
    account: str | None = None
    """In the database: the account whose entries are read (None: all)."""

    def read(self) -> Contents | None:
        """The entries; None when nothing was ever journaled (the file does not exist yet)."""
        if self.database is not None:
            from nexor_mcp.store import StoreError

            try:
                return self.database.read(self.account)
            except StoreError as exc:
                raise CannotRead(f"cannot read the journal in {self.label}: {exc.reason}") from None
        try:
            return read_journal(self.label)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CannotRead(f"cannot read the journal {self.label}: {exc.strerror or exc}") from None

    def export(self, out: BinaryIO) -> int:
        """Every entry's records as JSON lines (what the file journal holds); returns the count of lines."""
        if self.database is not None:
            from nexor_mcp.store import StoreError

            try:
                return self.database.export_jsonl(self.account, out)
            except StoreError as exc:
                raise CannotRead(f"cannot read the journal in {self.label}: {exc.reason}") from None
        try:
            fd, _ = open_regular_file(self.label, follow_symlinks=False)
            with os.fdopen(fd, "rb") as file:
                lines = 0
                for line in file:
                    out.write(line)
                    lines += 1
                return lines
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise CannotRead(f"cannot read the journal {self.label}: {exc.strerror or exc}") from None


    def close(self) -> None:
        if self.database is not None:
            self.database.store.close()


def journal_source(settings: Settings) -> JournalSource | None:
    """The journal `settings` name (None: none is configured)."""
    if settings.database is not None:
        from nexor_mcp.store import DatabaseJournal, open_store

        database = DatabaseJournal(open_store(settings.database))
        return JournalSource(settings.database.display, database, database, account_fingerprint(settings.api_key))
    if settings.audit_log:
        return JournalSource(settings.audit_log, Journal(settings.audit_log))
    return None
