"""The journal step: with NEXOR_AUDIT_LOG set, every request a write tool sends is recorded before
it leaves and after it ends (nexor_mcp/audit/recording.py), with the before-values `audit undo`
restores for a tool that keeps them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nexor_mcp.audit.recording import journaled
from nexor_mcp.request import Sent
from nexor_mcp.safety.write import GoOn, Outcome, Step, Write

if TYPE_CHECKING:
    from nexor_mcp.audit import JournalWriter


class Journaling(Step):
    every_request = True

    def __init__(self, journal: JournalWriter | None) -> None:
        self.journal = journal

    async def __call__(self, write: Write, go_on: GoOn) -> Outcome:
        if self.journal is None:
            return await go_on(write)
        undoable = write.spec.undoable and not write.follow_up
        before = (await write.preview()).undo if undoable else None

        async def send() -> Sent:
            sent = await go_on(write)
            assert isinstance(sent, Sent), "no step after the journal stops a write"
            return sent

        return await journaled(self.journal, write.client, write.request, send, tool=write.spec.name, before=before)
