"""Confirmation: a tool in a confirmed group (NEXOR_CONFIRM) is sent only once a person said yes,
asked through the client (elicitation) or shown the question and a token the next call carries
(nexor_mcp/confirm.py holds both ways). Any failure to ask stops the write: it fails closed."""

from __future__ import annotations

import functools
import json
import logging

import anyio
import anyio.to_thread
from pydantic import MISSING

from nexor_mcp.approve_url import ApprovalDesk
from nexor_mcp.audit.journal import JournalError, JournalWriter
from nexor_mcp.config import Settings
from nexor_mcp.confirm import Go, Pending, Sealer, Stop, ask, question_text
from nexor_mcp.errors import FIX_JOURNAL_FILE, JournalUnwritable
from nexor_mcp.json_types import Json
from nexor_mcp.masking import clean_text, redact
from nexor_mcp.safety.write import GoOn, Outcome, Reply, Step, Write, request_view
from nexor_mcp.tools.spec import CONTROL_ARGUMENTS, Arguments

logger = logging.getLogger(__name__)


def needs_confirmation(settings: Settings, write: Write) -> bool:
    return write.spec.group.value in settings.confirm


async def question(write: Write) -> str:
    """What the person is asked: the preview's summary and changes, every secret masked (it
    leaves here without passing the result masking)."""
    preview = await write.preview()
    return redact(clean_text(question_text(preview.summary, preview.changes)), write.call.secrets)


class Confirmation(Step):
    """Asks a person before a write of a confirmed group; sends only on a yes."""

    def __init__(
        self, settings: Settings, sealer: Sealer, desk: ApprovalDesk | None = None, journal: JournalWriter | None = None
    ) -> None:
        self.settings = settings
        self.sealer = sealer
        self.desk = desk
        self.journal = journal

    async def __call__(self, write: Write, go_on: GoOn) -> Outcome:
        if not needs_confirmation(self.settings, write):
            return await go_on(write)
        token = getattr(write.arguments, "confirmation", MISSING)
        asked = await question(write)
        decision = await ask(
            write.call.ctx, write.call.params, tool=write.spec.name, arguments=confirmation_binding(write.arguments),
            account=write.client.account, question=asked, token=None if token is MISSING else token,
            sealer=self.sealer, elicit=self.settings.confirm_via == "auto", desk=self.desk,
            request=(write.request.method, "/" + write.request.path, write.request.body),  # as the page shows it
        )
        if isinstance(decision, Stop):
            if decision.declined:
                await self._record(write, "declined", decision.declined, asked)
            return Reply({"sent": False, "message": decision.text}, decision.text, is_error=True)
        if isinstance(decision, Pending):
            if isinstance(decision.result, dict):  # the token way: the preview goes with the question
                decision.result["would_send"] = request_view(write.request)
                decision.result["changes"] = (await write.preview()).changes
            return decision
        assert isinstance(decision, Go)
        await self._record(write, "approved", decision.how, asked)
        return await go_on(write)

    async def _record(self, write: Write, decision: str, how: str, asked: str) -> None:
        """The person's decision in the journal, with the question they saw. An approval that cannot
        be recorded stops the write (fail closed, as its intent would); a decline's is logged."""
        if self.journal is None:
            return
        record = functools.partial(
            self.journal.decide, tool=write.spec.name, lead_id=write.request.lead_id, account=write.client.fingerprint,
            decision=decision, how=how, question=asked, secrets=write.call.secrets,
        )
        try:
            await anyio.to_thread.run_sync(record)
        except JournalError as exc:
            logger.error("the audit journal %s could not record a decision (%s): %s", exc.path, decision, exc.reason)
            if decision == "approved":
                raise JournalUnwritable(exc.reason, getattr(self.journal, "fix", FIX_JOURNAL_FILE)) from None


def confirmation_binding(arguments: Arguments) -> Json:
    """The arguments a confirmation is bound to: all the caller gave but the control arguments."""
    return arguments.model_dump(mode="json", exclude_unset=True, exclude=set(CONTROL_ARGUMENTS))


def confirm_by_token(tool: str, offer: Json, how: str) -> str:
    """What the model does with a token: show the question, and only on a yes call again with it."""
    return (
        f"Show the user this and ask whether to go ahead:\n\n{offer['question']}"
        f"\n\nOnly if the user approves, call {tool} again{how} with exactly the same arguments plus "
        f"\"confirmation\": \"{offer['confirmation']}\" (valid {offer['expires_in_seconds'] // 60} minutes, "
        "once). If not, do not call it again."
    )


def pending_text(tool: str, structured: Json) -> str:
    """The token way's answer, in words: nothing was done, the question, the token, the request."""
    request = structured.get("would_send")
    sends = f"\nIt would send: {json.dumps(request, ensure_ascii=False, separators=(',', ':'))}" if request else ""
    return f"NOT DONE: {tool} needs the user's confirmation and nothing was sent. " + confirm_by_token(
        tool, structured, ""
    ) + sends


