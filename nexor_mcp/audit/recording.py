"""Recording one write in the journal around its sending: the intent line before the request
leaves (if it cannot be written, `JournalUnwritable` and nothing is sent), the outcome line after,
whatever the outcome (sent, refused, unknown, cancelled). The write path's journal step and
`audit undo` both send through here; reads are never journaled."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from nexor_mcp.audit.journal import JournalError, JournalWriter
from nexor_mcp.audit.record import Written
from nexor_mcp.errors import FIX_JOURNAL_FILE, JournalUnwritable, NexorError
from nexor_mcp.json_types import Json
from nexor_mcp.request import Request, Sent

if TYPE_CHECKING:
    from nexor_mcp.client import NexorClient

logger = logging.getLogger(__name__)


async def journaled(
    journal: JournalWriter,
    client: NexorClient,
    request: Request,
    send: Callable[[], Awaitable[Sent]],
    *,
    tool: str,
    before: Json | None,
    undoes: str | None = None,
) -> Sent:
    """`send()` with an intent line before it and an outcome line after it. `tool` is what the
    entry says made the write (a tool name, or "undo"); `before` the values `audit undo` restores."""
    client.require_key()  # nothing would be sent: nothing to journal
    secrets = client.secrets
    begin = functools.partial(
        journal.begin, tool=tool, lead_id=request.lead_id, method=request.method, path=request.path,
        body=request.body, before=before, account=client.fingerprint, secrets=secrets, undoes=undoes,
    )
    try:
        # In a worker thread: the intent line is fsynced, which must not stall the event loop.
        entry = await anyio.to_thread.run_sync(begin)
    except JournalError as exc:
        logger.error("write refused, nothing sent: the audit journal %s cannot be written (%s)", exc.path, exc.reason)
        raise JournalUnwritable(exc.reason, getattr(journal, "fix", FIX_JOURNAL_FILE)) from None

    async def finish(status: int | None, outcome: str, detail: str | None, after: Written | None = None) -> None:
        record = functools.partial(
            journal.finish, entry, status=status, outcome=outcome, detail=detail, after=after, secrets=secrets
        )
        try:
            if getattr(journal, "slow_outcome", False):
                # A database row: in a worker thread, shielded, so that a cancelled call's
                # outcome ("unknown") is still recorded.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(record)
            else:  # the file's outcome line, not fsynced: cheaper in place than a thread hop
                record()
        except JournalError as exc:
            logger.error(
                "the audit journal %s could not record the outcome of entry %s (%s: %s): %s",
                exc.path, entry, outcome, f"HTTP {status}" if status else "no answer", exc.reason,
            )

    try:
        sent = await send()
    except NexorError as error:
        uncertain = error.may_have_taken_effect() or error.earlier_attempt_uncertain
        await finish(getattr(error, "status", None), "unknown" if uncertain else "failed",
                     f"{type(error).__name__}: {error}")
        raise
    except BaseException as exc:
        why = (
            "the call was cancelled" if isinstance(exc, anyio.get_cancelled_exc_class())
            else f"nexor-mcp failed ({type(exc).__name__})"
        )
        await finish(None, "unknown", f"{why} while the request may have been in flight")
        raise
    if sent.unreadable is not None:
        await finish(sent.status, "accepted", f"Nexor's answer {sent.unreadable.what}")
    else:
        after = Written.of_answer(request.method, request.path, request.body, sent.result)
        await finish(sent.status, "ok", None, after)
    return sent
