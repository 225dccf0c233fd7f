"""The journal file (NEXOR_AUDIT_LOG): every write to Nexor on record before it is sent, and after.

The intent line is written (and fsynced) before the request leaves; if it cannot be written the
write is refused and nothing is sent (`JournalError`, which the client turns into
`JournalUnwritable`). The outcome line follows the answer; if only that line fails, the write has
happened, so its result is returned and the failure logged. Every string is masked with the
request's secrets before it is written, and the account is a fingerprint, never the key. The
line format is `record`'s.

Appends are safe across threads (a lock) and processes (O_APPEND, one `write()` per line, under
an advisory file lock), so several processes (hosted workers, the `audit undo` command) may share
one file; a write the disk could take only part of is cut back off, so the next line starts clean.
The file must be a regular file, is never reached through a symbolic link, and is kept private
(mode 0600, restored with a warning if it was wider). Reading is tolerant: a line cut short, a
line from a newer version, an outcome without its intent are skipped and reported, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from nexor_mcp.audit.record import (
    OUTCOMES,
    Contents,
    Decision,
    Entry,
    Intent,
    Outcome,
    UndoRecord,
    Written,
    iso_time,
    new_entry_id,
    now,
    read_line,
)
from nexor_mcp.config import open_regular_file
from nexor_mcp.json_types import Json
from nexor_mcp.masking import clean_json, may_need_masking

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the thread lock and O_APPEND remain
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from nexor_mcp.config import Settings

FILE_MODE = 0o600
"""The journal holds lead data (names, emails, message texts): readable by its owner only."""
MAX_LINE_BYTES = 16 * 1024 * 1024
"""A longer line is skipped when reading, so a huge file without line breaks cannot fill memory."""
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT

logger = logging.getLogger(__name__)


class JournalError(Exception):
    """A line could not be appended; `reason` says why, for people ("Permission denied")."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class JournalWriter(Protocol):
    """What the write path needs of a journal; the file `Journal` and `DatabaseJournal` both are one."""

    @property
    def path(self) -> str: ...

    def problem(self) -> str | None: ...

    def begin(
        self, *, tool: str, lead_id: str | None, method: str, path: str, body: Any,
        before: UndoRecord | Json | None, account: str | None, secrets: tuple[str, ...] = (),
        undoes: str | None = None,
    ) -> str: ...

    def finish(
        self, entry_id: str, *, status: int | None, outcome: str, detail: str | None,
        after: Written | Json | None = None, secrets: tuple[str, ...] = (),
    ) -> None: ...

    def decide(
        self, *, tool: str, lead_id: str | None, account: str | None, decision: str, how: str, question: str,
        secrets: tuple[str, ...] = (),
    ) -> str: ...


class Journal:
    """An append-only JSON-lines file. The file is opened for each line, so a rotated or deleted
    file is simply created again, and a journal that stopped being writable is noticed at once."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = str(Path(path).expanduser())
        self.fsync = fsync
        """fsync the intent line before the request leaves (the outcome line never is)."""
        self._lock = threading.Lock()
        self.mode_notice: str | None = None
        """What was found wrong with the file's mode the last time it was opened, and done about it."""

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"

    def problem(self) -> str | None:
        """Why the journal cannot be written right now (None: it can). Creates the file if absent."""
        try:
            fd = self._open()
        except JournalError as exc:
            return exc.reason
        os.close(fd)
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
        """Record the intent to send a write; returns the entry id. Raises `JournalError` if the
        line could not be written: the caller must then not send the write."""
        intent = new_intent(tool, lead_id, method, path, body, before, account, undoes)
        self._append(intent.as_json(), secrets, sync=self.fsync)
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
        """Record how the write ended (see `Outcome`). `after`: what Nexor answered for exactly
        what the write changed (None if it did not say). Raises `JournalError`."""
        self._append(new_outcome(entry_id, status, outcome, detail, after).as_json(), secrets, sync=False)

    def decide(
        self, *, tool: str, lead_id: str | None, account: str | None, decision: str, how: str, question: str,
        secrets: tuple[str, ...] = (),
    ) -> str:
        """Record a person's approval or decline of a confirmed call, with the question shown
        (see `Decision`); returns its id. Raises `JournalError`."""
        line = new_decision(tool, lead_id, account, decision, how, question)
        self._append(line.as_json(), secrets, sync=line.decision == "approved")  # an approval gates a send
        return line.id

    def _append(self, record: Json, secrets: tuple[str, ...], *, sync: bool) -> None:
        line = (record_text(record, secrets) + "\n").encode("utf-8")
        fd = self._open()
        try:
            with self._lock, _locked(fd) as alone:
                start = os.fstat(fd).st_size  # where this line starts, if every writer holds the file lock
                written = os.write(fd, line)
                if written != len(line):
                    # Only a full disk or a quota makes a regular file take part of a write: cut the
                    # fragment off, so the next line (perhaps of a write really sent) is not glued to it.
                    _cut_back(fd, start if alone else None)
                    raise JournalError(self.path, f"only {written} of {len(line)} bytes could be written (disk full?)")
            if sync:
                os.fsync(fd)
        except OSError as exc:
            raise JournalError(self.path, _reason(exc)) from None
        finally:
            os.close(fd)

    def _open(self) -> int:
        # A regular file only (/dev/stdout would corrupt the stdio protocol, /dev/null would keep
        # nothing, a FIFO would hang), never through a symbolic link planted at the path.
        try:
            fd, info = open_regular_file(self.path, _APPEND_FLAGS, FILE_MODE, follow_symlinks=False)
        except OSError as exc:
            raise JournalError(self.path, _reason(exc)) from None
        if stat.S_IMODE(info.st_mode) & 0o077 and hasattr(os, "fchmod"):
            self._make_private(fd, stat.S_IMODE(info.st_mode))
        return fd

    def _make_private(self, fd: int, mode: int) -> None:
        """A journal others can read (created by hand, or by an older version) is made 0600."""
        try:
            os.fchmod(fd, FILE_MODE)
        except OSError as exc:
            notice = (f"the audit journal {self.path} can be read by other users (mode {mode:o}), and its mode "
                      f"could not be changed ({_reason(exc)}); it holds lead data: chmod 600 {self.path}")
        else:
            notice = (f"the audit journal {self.path} could be read by other users (mode {mode:o}); it holds "
                      "lead data, so its mode was changed to 600")
        if notice != self.mode_notice:
            logger.warning("%s", notice)
        self.mode_notice = notice


def new_intent(
    tool: str, lead_id: str | None, method: str, path: str, body: Any, before: UndoRecord | Json | None,
    account: str | None, undoes: str | None,
) -> Intent:
    """An intent record, with a new entry id: the same for the file and the database journal."""
    when = now()
    return Intent(
        id=new_entry_id(when), time=iso_time(when), tool=tool, lead_id=lead_id, method=method, path=path,
        body=body, before=UndoRecord.read(before), account=account, undoes=undoes,
    )


def new_outcome(entry_id: str, status: int | None, outcome: str, detail: str | None,
                after: Written | Json | None) -> Outcome:
    """An outcome record; a name outside `OUTCOMES` is a bug (ValueError)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    return Outcome(id=entry_id, time=iso_time(now()), status=status, outcome=outcome, detail=detail,
                   after=Written.read(after))


def new_decision(
    tool: str, lead_id: str | None, account: str | None, decision: str, how: str, question: str
) -> Decision:
    """A decision record, validated (a bad `decision` or `how` is a bug: ValidationError)."""
    when = now()
    return Decision.model_validate({
        "id": new_entry_id(when), "time": iso_time(when), "tool": tool, "lead_id": lead_id, "account": account,
        "decision": decision, "how": how, "question": question,
    })


def record_text(record: Json, secrets: tuple[str, ...]) -> str:
    """A record as the journal stores it (a line, without its line break; a database row's text).

    Masked and cleaned as a whole (clean_json also replaces lone surrogates, which UTF-8 cannot
    encode), so no field can carry the key whatever an agent put in it; the walk over every value
    runs only when a scan of the text finds something it could change.
    """
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    if may_need_masking(text, secrets):
        text = json.dumps(clean_json(record, secrets), ensure_ascii=False, separators=(",", ":"))
    return text


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[bool]:
    """An exclusive advisory lock on the file, held by every nexor-mcp process while it appends;
    yields False where the file system has no locks (then O_APPEND alone keeps lines whole)."""
    locked = False
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        except OSError:
            pass
    try:
        yield locked
    finally:
        if locked:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _cut_back(fd: int, size: int | None) -> None:
    """Remove a fragment from `size` on (None: where it starts is unknown, as another process may
    have appended meanwhile); if it cannot be cut, end it, so that the next line starts anew."""
    if size is not None:
        try:
            os.ftruncate(fd, size)
            return
        except OSError:
            pass
    with contextlib.suppress(OSError):
        os.write(fd, b"\n")


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def open_journal(settings: Settings) -> Journal | None:
    """The journal `settings` asks for (None: no NEXOR_AUDIT_LOG). Never raises: a journal that
    cannot be written is logged here, at start, and then refuses every write until it can be."""
    if not settings.audit_log:
        return None
    journal = Journal(settings.audit_log)
    problem = journal.problem()
    if problem:
        logger.error(
            "the audit journal %s cannot be written (%s): every write will be refused until it can be",
            journal.path, problem,
        )
    return journal


# --- reading ---------------------------------------------------------------------------------------


def read_journal(path: str | os.PathLike[str]) -> Contents:
    """Every entry in the file, in the order the intents were written. Raises `OSError` if the
    file cannot be read (`FileNotFoundError`: nothing has been journaled there yet;
    `NotARegularFile`: a FIFO, a device, a directory or a symbolic link, refused without reading)."""
    fd, _ = open_regular_file(path, follow_symlinks=False)
    with os.fdopen(fd, "rb") as file:
        return parse_lines(_bounded_lines(file))


def _bounded_lines(file: BinaryIO) -> Iterator[bytes | None]:
    """The file's lines; None for a line longer than MAX_LINE_BYTES, which is never held whole."""
    while raw := file.readline(MAX_LINE_BYTES + 1):
        if len(raw) <= MAX_LINE_BYTES:
            yield raw
            continue
        while raw and not raw.endswith(b"\n"):
            raw = file.readline(1 << 20)
        yield None


def parse_lines(lines: Iterable[bytes | None]) -> Contents:
    """`None` in `lines`: a line too long to read (see `_bounded_lines`)."""
    contents = Contents()
    by_id: dict[str, Entry] = {}
    for number, raw in enumerate(lines, start=1):
        if raw is None:
            contents.problems.append(f"line {number}: longer than {MAX_LINE_BYTES:,} bytes; skipped")
            continue
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            why = "cut off (the process may have died while writing it)" if not raw.endswith(b"\n") else "not JSON"
            contents.problems.append(f"line {number}: {why}; skipped")
            continue
        problem = _join(read_line(record), number, by_id, contents)
        if problem:
            contents.problems.append(f"line {number}: {problem}; skipped")
    return contents


def _join(
    line: Intent | Outcome | Decision | str, number: int, by_id: dict[str, Entry], contents: Contents
) -> str | None:
    """Add an intent as an entry, an outcome to its entry, a decision to the decisions; returns why
    it cannot be (None: done)."""
    if isinstance(line, str):
        return line
    if isinstance(line, Decision):
        contents.decisions.append(line)
        return None
    if isinstance(line, Intent):
        if line.id in by_id:
            return f"a second intent for entry {line.id}"
        entry = by_id[line.id] = Entry.of(line, number)
        contents.entries.append(entry)
        return None
    found = by_id.get(line.id)
    if found is None:
        return f"an outcome for entry {line.id}, whose intent is not in the journal"
    if found.outcome is not None:
        return f"a second outcome for entry {line.id}"
    found.finish(line)
    return None
