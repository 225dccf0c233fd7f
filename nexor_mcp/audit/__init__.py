"""The audit journal (NEXOR_AUDIT_LOG): every write to Nexor on record before it is sent, and after.

- `record`: the line format (pydantic models: `Intent`, `Outcome`, the `UndoRecord` of
  before-values and the `Written` after-values), the one owner of what a line holds;
- `journal`: the file: appending a line safely (locks, fsync, a short write cut back), reading it back;
- `undo`: the undo planner: from an entry and the lead now, the write that puts it back, value-checked;
- `cli` and `render`: `nexor-mcp audit list | show | undo`, for people.

Importing the package loads `record` and `journal` only (what the server needs to write).
"""

from nexor_mcp.account import account_fingerprint
from nexor_mcp.audit.journal import (
    FILE_MODE,
    MAX_LINE_BYTES,
    Journal,
    JournalError,
    JournalWriter,
    open_journal,
    parse_lines,
    read_journal,
)
from nexor_mcp.audit.record import (
    NO_OUTCOME,
    OUTCOMES,
    VERSION,
    Contents,
    Entry,
    Intent,
    Outcome,
    UndoRecord,
    Written,
    iso_time,
    new_entry_id,
)

__all__ = [
    "FILE_MODE", "MAX_LINE_BYTES", "NO_OUTCOME", "OUTCOMES", "VERSION", "Contents", "Entry", "Intent", "Journal",
    "JournalError", "JournalWriter", "Outcome", "UndoRecord", "Written", "account_fingerprint", "iso_time",
    "new_entry_id", "open_journal", "parse_lines", "read_journal",
]
