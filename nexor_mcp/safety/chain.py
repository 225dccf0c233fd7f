"""The write path: every call of a write tool goes

    parse → resolve → build the Request → StaleGuard → DryRun → Confirmation → Journaling → send
    → the tool's `after` → (server) mask

The steps are in `WriteSafety.steps`, in that order; each is a small object with one job that can
only stop the write or hand it on (nexor_mcp/safety/write.py). The preview is not a step of its
own: it is worked out once, the first time a step needs it (a dry run shows it, a person is asked
with it, the journal keeps its before-values), so a call that only guards reads nothing but the
lead. The guard comes before the dry run, so a stale dry run is a conflict, not a preview.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server import ServerRequestContext
from mcp.types import CallToolRequestParams

from nexor_mcp.approve_url import ApprovalDesk, PageBase
from nexor_mcp.client import NexorClient, OnRetry
from nexor_mcp.config import Settings
from nexor_mcp.confirm import Pending, Sealer
from nexor_mcp.json_types import Json
from nexor_mcp.request import Request, Sent
from nexor_mcp.safety.confirmation import Confirmation
from nexor_mcp.safety.dry_run import DryRun
from nexor_mcp.safety.guard import LeadMemory, StaleGuard
from nexor_mcp.safety.journaling import Journaling
from nexor_mcp.safety.write import Call, Outcome, Reply, Step, Write
from nexor_mcp.tools.spec import Arguments, CurrentLead, ToolSpec

if TYPE_CHECKING:
    from nexor_mcp.audit import JournalWriter


@dataclass
class WriteSafety:
    """The safety steps and what outlives one call: settings, the token sealer (with the store of
    used tokens), the lead memory, the journal (NEXOR_DATABASE_URL's, else NEXOR_AUDIT_LOG's file)."""

    settings: Settings
    sealer: Sealer
    memory: LeadMemory
    journal: JournalWriter | None = None
    desk: ApprovalDesk | None = None
    """Serves approval pages (nexor_mcp/approve_url.py); None: the transport has no page to serve."""
    approvals: Any = None
    """Where approvals are kept: the store, or process memory (what the pages' routes read)."""

    @classmethod
    def from_settings(
        cls, settings: Settings, pages: PageBase | None = None, *, opens_pages: bool = False
    ) -> WriteSafety:
        """`pages`: the origin the approval page is served from for a call (hosted: the request's
        own; stdio: a loopback server started on demand); `opens_pages`: a stdio server, which may
        open the person's browser."""
        if settings.database is not None:  # state shared by every process that has the URL
            from nexor_mcp.store import open_shared_state

            store, database_journal = open_shared_state(settings.database)
            safety = cls(settings, Sealer(settings.secret, store), LeadMemory(), database_journal, approvals=store)
        else:
            file_journal = None
            if settings.audit_log:
                from nexor_mcp.audit import open_journal  # only when a journal is configured

                file_journal = open_journal(settings)
            from nexor_mcp.approvals import MemoryApprovals

            safety = cls(settings, Sealer(settings.secret), LeadMemory(), file_journal, approvals=MemoryApprovals())
        if pages is not None:
            safety.desk = ApprovalDesk(safety.approvals, safety.sealer.page_key, pages,
                                       timeout_seconds=settings.approval_timeout_seconds, opens_pages=opens_pages)
        return safety

    @property
    def steps(self) -> tuple[Step, ...]:
        """The order every write passes through, in one place."""
        return (
            StaleGuard(self.memory),
            DryRun(self.settings, self.sealer),
            Confirmation(self.settings, self.sealer, self.desk, self.journal),
            Journaling(self.journal),
        )

    async def run(
        self,
        spec: ToolSpec[Any],
        client: NexorClient,
        arguments: Arguments,
        ctx: ServerRequestContext[Any],
        params: CallToolRequestParams,
        on_retry: OnRetry | None,
        secrets: tuple[str, ...] = (),
    ) -> Json | Reply | Pending:
        """One call of a write tool, from its validated arguments to its result (or a stop)."""
        assert spec.request is not None
        lead = CurrentLead(client, getattr(arguments, "lead_id", None), on_retry)
        if spec.resolve is not None:  # e.g. workflow_id from the lead's active run
            arguments = await spec.resolve(arguments, lead)
        write = Write(spec, arguments, spec.request(arguments), client, lead, Call(ctx, params, on_retry, secrets))
        steps = self.steps
        outcome = await through(steps, write)
        if not isinstance(outcome, Sent):
            return outcome
        if spec.after is None:
            return outcome.result

        async def send_more(request: Request) -> Json:
            more = dataclasses.replace(write, request=request, follow_up=True)
            sent = await through([step for step in steps if step.every_request], more)
            assert isinstance(sent, Sent), "a follow-up request passes no step that stops"
            return sent.result

        return await spec.after(arguments, outcome.result, send_more)


async def through(steps: Sequence[Step], write: Write) -> Outcome:
    """`write` through `steps` in order, then sent (with the client's retry policy)."""
    if not steps:
        return await write.client.exchange(write.request, write.call.on_retry)
    first, rest = steps[0], steps[1:]
    return await first(write, lambda handed_on: through(rest, handed_on))
