"""The wire format both ways: inbound bytes cut into lines, outbound messages written as lines.

`\\r`, `\\n` and `\\r\\n` all end a message (as in the SDK, whose text layer uses universal
newlines); blank lines are skipped; a line over the size limit is reported once and skipped
without ever sitting whole in memory.
"""

from __future__ import annotations

import json
import logging
import re

from mcp.shared.message import SessionMessage
from mcp_types import INTERNAL_ERROR

from nexor_mcp.config import DEFAULT_MAX_LINE_BYTES as DEFAULT_MAX_LINE_BYTES
from nexor_mcp.config import MAX_LINE_BYTES_ENV as MAX_LINE_BYTES_ENV
from nexor_mcp.config import max_line_bytes as max_line_bytes  # the limit is a setting: read there

logger = logging.getLogger(__package__)

_SEPARATOR = re.compile(rb"[\r\n]")
OVERSIZE = None
"""A framer event: a line went over the limit (and was skipped)."""

Line = bytes | None
"""What the framer yields: a complete line, or `OVERSIZE`."""


class Framer:
    """Splits a byte stream into lines at `\\r`, `\\n` or `\\r\\n`; a line over `limit` bytes is
    reported once as `OVERSIZE` and the rest of it skipped, so it never sits whole in memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[Line]:
        events: list[Line] = []
        pieces = _SEPARATOR.split(data)
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            complete = index < last
            if self._skipping:
                self._skipping = not complete
                continue
            if len(self._buffer) + len(piece) > self.limit:
                self._buffer.clear()
                events.append(OVERSIZE)
                self._skipping = not complete
                continue
            if not complete:
                self._buffer += piece
                continue
            line = bytes(self._buffer + piece) if self._buffer else piece
            self._buffer.clear()
            if line.strip():
                events.append(line)
        return events

    def finish(self) -> list[Line]:
        """At EOF a last line without a separator still counts, as in the SDK."""
        line, self._buffer = bytes(self._buffer), bytearray()
        return [line] if line.strip() and not self._skipping else []


def error_line(request_id: str | int | None, code: int, message: str) -> bytes:
    """A JSON-RPC error answer, framed, for what the transport answers itself."""
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()


def encode(item: SessionMessage, answered: str | int | None) -> bytes:
    """One outgoing message as a line of valid UTF-8, whatever its text holds; one message that
    cannot be serialised never ends the session (`answered`, the request it answers, if any, gets
    an internal error instead)."""
    message = item.message
    try:
        text = message.model_dump_json(by_alias=True, exclude_unset=True)
    except Exception:
        try:
            # pydantic refuses a str that is not valid UTF-8 (a lone surrogate); json does not.
            dumped = message.model_dump(mode="json", by_alias=True, exclude_unset=True)
            text = json.dumps(dumped, ensure_ascii=False, separators=(",", ":"))
        except Exception:
            logger.exception("could not serialise an outgoing message")
            if answered is None:
                return b""
            return error_line(answered, INTERNAL_ERROR, "the answer could not be serialised")
    # A lone surrogate goes out as "?": the wire carries valid UTF-8 whatever the text held.
    return (text + "\n").encode("utf-8", errors="replace")
