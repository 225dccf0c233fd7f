"""Logging to stderr only: the API key masked, every record one bounded line, and never blocking.

Stdout carries the MCP protocol; a stray log line there would corrupt it. A host may pipe stderr
and never read it, so a record is only put on a bounded queue (dropped and counted when full) and a
daemon thread writes it: a full pipe then stalls that thread, never the event loop, and exit waits
for it only briefly. The masking filter sits on the one root handler, so it covers records from
every library (httpx2, the SDK, uvicorn), at every level, and runs before any clipping.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import logging.handlers
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable

from nexor_mcp.masking import MASK, redact

__all__ = [
    "MASK",
    "MAX_MESSAGE_CHARS",
    "QUEUE_SIZE",
    "LogPipeline",
    "RedactingFilter",
    "SafeFormatter",
    "configure_logging",
    "redact",
    "stop_logging",
]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_MESSAGE_CHARS = 2_000
MAX_TRACEBACK_CHARS = 16_000
QUEUE_SIZE = 1_000
TRACEBACK_PREFIX = "  | "
# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: each could end a log line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape, so it stays on one line."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\u{ord(m.group()):04x}"), text)


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…(+{len(text) - limit} chars)"


def quote_block(block: str) -> str:
    """A traceback as continuation lines: each escaped, clipped and prefixed with `  | `.

    Every physical line that is not a record's first line starts with that prefix, so text inside
    an exception message can never pass for a record of its own."""
    if len(block) > MAX_TRACEBACK_CHARS:
        half = MAX_TRACEBACK_CHARS // 2
        cut = len(block) - 2 * half
        block = f"{block[:half]}\n…({cut} chars of traceback cut)…\n{block[-half:]}"
    return "\n".join(TRACEBACK_PREFIX + clip(escape_controls(line)) for line in block.splitlines())


class RedactingFilter(logging.Filter):
    """Rewrites a record's final message with every secret replaced by a mask."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._secrets = tuple(secret for secret in secrets if secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = _message_of(record)
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.msg = redact(message, self._secrets)
            record.args = None
            if record.exc_text:
                record.exc_text = redact(record.exc_text, self._secrets)
            if record.stack_info:
                record.stack_info = redact(record.stack_info, self._secrets)
        return True


def _message_of(record: logging.LogRecord) -> str:
    """The merged message; a record whose arguments do not fit its format still says something."""
    try:
        return record.getMessage()
    except Exception as exc:
        return f"(unformattable log record {record.msg!r}: {type(exc).__name__})"


class SafeFormatter(logging.Formatter):
    """One line per record, whatever the message holds: controls escaped, length clipped.

    Masking (the filter) has already run, so a key that straddles the clip is a mask, not a prefix.
    A traceback follows on `  | ` continuation lines (see `quote_block`)."""

    def __init__(self, fmt: str = FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        record.message = clip(escape_controls(_message_of(record)))
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(self.formatMessage(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + quote_block(record.exc_text)
        if record.stack_info:
            line += "\n" + quote_block(self.formatStack(record.stack_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`--log-format json`), for log pipelines that parse: the same
    masking (the filter ran first) and clipping; JSON escaping keeps every record on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": clip(_message_of(record)),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = clip(record.exc_text, MAX_TRACEBACK_CHARS)
        return json.dumps(entry, ensure_ascii=False)


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Formats on the caller's thread, then enqueues without ever waiting; a full queue drops."""

    def __init__(self, records: queue.Queue[logging.LogRecord | None]) -> None:
        super().__init__(records)
        self.dropped = 0  # only ever increased, under the handler lock

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def handleError(self, record: logging.LogRecord) -> None:
        # The default prints a traceback to stderr from this thread: exactly the blocking write
        # this handler exists to avoid. A short note goes through the queue instead.
        problem = sys.exc_info()[0]
        message = f"a log record from {record.name} could not be formatted ({getattr(problem, '__name__', '?')})"
        note = logging.LogRecord("nexor_mcp.logs", logging.ERROR, __file__, 0, message, None, None)
        note.msg = note.message = SafeFormatter().format(note)
        self.enqueue(note)


def _fd_writer(stream: object) -> Callable[[bytes], None]:
    """A writer straight to the stream's file descriptor: no Python-level buffer lock is held
    while the write blocks, so interpreter shutdown cannot trip over a stuck writer."""
    try:
        fd = os.dup(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        def write_stream(data: bytes) -> None:
            stream.write(data.decode("utf-8", "replace"))  # type: ignore[attr-defined]
            stream.flush()  # type: ignore[attr-defined]

        return write_stream

    def write_fd(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    return write_fd


class LogPipeline:
    """The bounded queue, the root handler feeding it and the daemon thread writing it out."""

    def __init__(self, write: Callable[[bytes], None], encoding: str = "utf-8", size: int = QUEUE_SIZE) -> None:
        self._write = write
        self._encoding = encoding
        self.records: queue.Queue[logging.LogRecord | None] = queue.Queue(maxsize=size)
        self.handler = _DroppingQueueHandler(self.records)
        self.handler.setFormatter(SafeFormatter())
        self.reported = 0
        self._thread = threading.Thread(target=self._run, name="nexor-log-writer", daemon=True)

    @property
    def dropped(self) -> int:
        return self.handler.dropped

    def start(self) -> None:
        self._thread.start()

    def _emit(self, line: str) -> None:
        # stderr closed or missing: nothing left to tell, and no one to tell it to
        with contextlib.suppress(Exception):
            self._write((line + "\n").encode(self._encoding, "backslashreplace"))

    def _report_drops(self) -> None:
        dropped = self.dropped
        if dropped > self.reported:
            count = dropped - self.reported
            self.reported = dropped
            noun = "record was" if count == 1 else "records were"
            message = f"{count} log {noun} dropped because stderr was not being read"
            note = logging.LogRecord("nexor_mcp.logs", logging.WARNING, __file__, 0, message, None, None)
            self._emit(self.handler.format(note))

    def _run(self) -> None:
        while True:
            record = self.records.get()
            if record is None:
                self._report_drops()
                return
            self._emit(record.getMessage())
            if self.records.empty():
                self._report_drops()

    def stop(self, timeout: float = 1.0) -> None:
        """Let the writer finish what is queued, but never wait more than about 2 × `timeout`."""
        if not self._thread.is_alive():
            return
        try:
            self.records.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


_active: LogPipeline | None = None


def configure_logging(
    level: str, secrets: tuple[str, ...] = (), stream: object | None = None, *, json_lines: bool = False
) -> LogPipeline:
    """Send all logs to stderr (or `stream`) at `level`, masking `secrets`, without ever blocking;
    `json_lines`: one JSON object per record instead of a text line."""
    global _active
    stop_logging()
    target = sys.stderr if stream is None else stream
    pipeline = LogPipeline(_fd_writer(target), getattr(target, "encoding", None) or "utf-8")
    if json_lines:
        formatter = JsonFormatter()
        formatter.converter = time.gmtime
        pipeline.handler.setFormatter(formatter)
    pipeline.handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(pipeline.handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn writes to stderr directly otherwise
    # httpx2 logs every request at INFO, and the SDK's HTTP transport a line per stateless request:
    # keep those for --log-level DEBUG only.
    noisy_level = logging.NOTSET if level == "DEBUG" else logging.WARNING
    for noisy in ("httpx2", "httpcore2", "httpx", "httpcore", "mcp.server.streamable_http",
                  "mcp.server.streamable_http_manager"):
        logging.getLogger(noisy).setLevel(noisy_level)
    pipeline.start()
    _active = pipeline
    return pipeline


def stop_logging(timeout: float = 1.0) -> None:
    """Flush the active pipeline, waiting at most about 2 × `timeout` for a stuck stderr.

    Its handler stays on the root logger: a record logged later (during shutdown) is queued or
    dropped, where with no handler at all `logging.lastResort` would write to stderr and block."""
    global _active
    if _active is not None:
        pipeline, _active = _active, None
        pipeline.stop(timeout)


atexit.register(stop_logging)
