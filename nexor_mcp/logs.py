"""Logging to stderr only, with the API key masked in every record.

Stdout carries the MCP protocol; a stray log line there would corrupt it. The masking filter sits
on the handler, so it covers records from every library (httpx2, the SDK, uvicorn), at every level.
"""

from __future__ import annotations

import logging
import sys

from nexor_mcp.masking import MASK, redact

__all__ = ["MASK", "RedactingFilter", "configure_logging", "redact"]


class RedactingFilter(logging.Filter):
    """Rewrites a record's final message with every secret replaced by a mask."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._secrets = tuple(secret for secret in secrets if secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.msg = redact(message, self._secrets)
            record.args = None
            if record.exc_text:
                record.exc_text = redact(record.exc_text, self._secrets)
        return True


def configure_logging(level: str, secrets: tuple[str, ...] = ()) -> None:
    """Send all logs to stderr at `level`, masking `secrets`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx2 logs every request at INFO; keep that for --log-level DEBUG only.
    if level != "DEBUG":
        for noisy in ("httpx2", "httpcore2", "httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
