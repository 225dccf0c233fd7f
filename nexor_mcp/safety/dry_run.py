"""Dry runs: with `dry_run`, the write's preview is the answer and nothing is sent. For a tool
that needs confirmation it carries what the real call's confirmation needs (in the token way, the
token), so that the next call can be the real one."""

from __future__ import annotations

import json

from nexor_mcp.config import Settings
from nexor_mcp.confirm import Sealer, token_offer, way
from nexor_mcp.json_types import Json
from nexor_mcp.request import Request
from nexor_mcp.safety.confirmation import confirm_by_token, confirmation_binding, needs_confirmation, question
from nexor_mcp.safety.write import GoOn, Outcome, Reply, Step, Write, request_view
from nexor_mcp.tools.preview import Preview


class DryRun(Step):
    """Stops a dry run with its preview."""

    def __init__(self, settings: Settings, sealer: Sealer) -> None:
        self.settings = settings
        self.sealer = sealer

    async def __call__(self, write: Write, go_on: GoOn) -> Outcome:
        if not write.dry_run:
            return await go_on(write)
        preview = await write.preview()
        confirmation: Json | None = None
        if needs_confirmation(self.settings, write):  # what the real call's confirmation needs
            if way(write.call.ctx, elicit=self.settings.confirm_via == "auto") == "token":
                bound = confirmation_binding(write.arguments)
                confirmation = token_offer(self.sealer, write.spec.name, bound, write.client.account,
                                           await question(write))
            else:
                confirmation = {}
        return dry_run_reply(write.spec.name, write.request, preview, confirmation)


def dry_run_reply(tool: str, request: Request, preview: Preview, confirmation: Json | None = None) -> Reply:
    """The preview. `confirmation`, for a tool that needs one: {} when the real call will ask the
    user, or the token way's offer (token, expiry, question) so that the next call can be the real one."""
    structured: Json = {
        "dry_run": True,
        "would_send": request_view(request),
        "summary": preview.summary,
        "before": preview.before,
        "after": preview.after,
        "changes": preview.changes,
        "no_op": preview.no_op,
    }
    offers_token = bool(confirmation)
    if preview.no_op:
        headline = f"Dry run of {tool}: nothing was sent, and sending it would change nothing."
    elif offers_token:  # the question below holds the summary and the changes
        headline = f"Dry run of {tool}: nothing was sent."
    elif preview.changes:  # the summary's facts go on their own line
        headline = f"Dry run of {tool}: nothing was sent. Changes: {'; '.join(preview.changes)}.\n{preview.summary}"
    else:
        headline = f"Dry run of {tool}: nothing was sent. {preview.summary}"
    # The text stays short (the lead before and after are in structuredContent): what it does, the
    # changes, the request, and what the real call's confirmation needs.
    lines = [headline, "Would send: " + json.dumps(structured["would_send"], ensure_ascii=False, separators=(",", ":"))]
    if confirmation is not None:
        structured["needs_confirmation"] = True
        structured["confirmation_by"] = "token" if offers_token else "asking the user"
        if offers_token:
            structured.update(confirmation)
            lines.append("The real call needs the user's confirmation. "
                         + confirm_by_token(tool, confirmation, " without dry_run,"))
        else:
            lines.append("The real call needs the user's confirmation: called without dry_run, it asks the "
                         "user and sends only on a yes.")
    return Reply(structured, "\n".join(lines))


