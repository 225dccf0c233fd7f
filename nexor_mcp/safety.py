"""Write safety around every write tool: dry runs, the stale-write guard, confirmation, the journal.

The order is fixed and each step can only stop a write, never start one:
1. arguments are validated (before this module: bad input sends nothing);
2. the lead is read once (GET), when a preview, the guard, a confirmation or the journal needs it,
   and what the caller left to it is filled in from it (`ToolSpec.resolve`: a run's workflow_id);
3. the exact request is worked out by running the tool against a client that does not send writes;
4. `if_unchanged_since` refuses if the lead changed since the agent read it;
5. `dry_run` returns the preview; nothing is sent (for a confirmed tool, with what the real call's
   confirmation needs: the token in the token way, so the next call can be the real one);
6. tools in a confirmed group ask a person (nexor_mcp/confirm.py);
7. the write is sent, journaled before and after when a journal is configured.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server import ServerRequestContext
from mcp.types import CallToolRequestParams
from pydantic import MISSING

from nexor_mcp.client import NexorClient, OnRetry, Request, WouldSend
from nexor_mcp.config import Settings
from nexor_mcp.confirm import Go, Pending, Sealer, Stop, ask, question_text, token_offer, way
from nexor_mcp.json_types import Json
from nexor_mcp.masking import clean_text, redact
from nexor_mcp.quoting import quote, visible
from nexor_mcp.rules import ABSENT, instant, same, same_instant
from nexor_mcp.tools.preview import Preview, PreviewInputs, change_line
from nexor_mcp.tools.spec import CONTROL_ARGUMENTS, Arguments, ToolSpec

if TYPE_CHECKING:
    from nexor_mcp.audit import Journal

MAX_REMEMBERED_LEADS = 256


@dataclass(frozen=True)
class Reply:
    """A result that is not the tool's own answer: a dry run, a conflict, a refusal, a question."""

    structured: Json
    text: str
    is_error: bool = False


class LeadMemory:
    """The last leads this process served, by account, id and `updated_at`, so a stale-write
    conflict can say field by field what changed since the version the agent read. Bounded; a
    lead read by another replica is simply not known (the conflict then shows current values)."""

    def __init__(self, size: int = MAX_REMEMBERED_LEADS) -> None:
        self._size = size
        self._leads: OrderedDict[tuple[str, str, str], Json] = OrderedDict()

    def remember(self, account: str, lead: Any) -> None:
        if isinstance(lead, dict) and isinstance(lead.get("id"), str) and isinstance(lead.get("updated_at"), str):
            key = (account, lead["id"], instant(lead["updated_at"]))
            # Kept as is, not copied (this runs on every call that returns a lead): results are never
            # changed once built, and the previews copy a lead before working on it.
            self._leads[key] = lead
            self._leads.move_to_end(key)
            while len(self._leads) > self._size:
                self._leads.popitem(last=False)

    def recall(self, account: str, lead_id: str, updated_at: str) -> Json | None:
        return self._leads.get((account, lead_id, instant(updated_at)))


@dataclass
class WriteSafety:
    """What the safety steps need that outlives one call: settings, the token sealer, the journal,
    the lead memory."""

    settings: Settings
    sealer: Sealer
    memory: LeadMemory
    journal: Journal | None = None
    """Set when NEXOR_AUDIT_LOG is: every write is recorded before and after it is sent."""

    @classmethod
    def from_settings(cls, settings: Settings) -> WriteSafety:
        journal = None
        if settings.audit_log:
            from nexor_mcp.audit import open_journal  # only when a journal is configured

            journal = open_journal(settings)
        return cls(settings, Sealer(settings.secret), LeadMemory(), journal)

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
        """One call of a write tool through the safety steps (see the module doc). `secrets` are
        masked in the question a person is asked, which leaves here without passing the result masking."""
        dry_run = getattr(arguments, "dry_run", False) is True
        since = getattr(arguments, "if_unchanged_since", MISSING)
        needs_confirmation = spec.group.value in self.settings.confirm
        confirmed = needs_confirmation and not dry_run
        lead_id = getattr(arguments, "lead_id", None)
        undo_kept = self.journal is not None and spec.undoable
        if not (dry_run or since is not MISSING or confirmed or undo_kept):
            return await spec.handler(self._journaled(client, spec, lead_id, None), arguments, on_retry)

        lead = None
        if isinstance(lead_id, str):
            lead = (await client.get_lead(lead_id, on_retry)).get("lead")
            lead = lead if isinstance(lead, dict) else None
        if spec.resolve is not None:  # e.g. workflow_id from the lead's active run: previewed, bound and sent
            arguments = spec.resolve(arguments, lead)
        request = await would_send(spec, client, arguments)
        if spec.preview is not None:
            preview = await spec.preview(arguments, PreviewInputs(lead, request, client))
        else:  # a confirmed tool without its own preview still asks, with the request it would send
            body = json.dumps(request.body, ensure_ascii=False)
            preview = Preview(summary=f"{spec.title}: {request.method} /{request.path} {body}")

        if since is not MISSING and lead_id is not None:
            conflict = self._conflict(client.account, str(lead_id), since, lead, request)
            if conflict is not None:
                return conflict
        elicit = self.settings.confirm_via == "auto"
        question = ""
        if needs_confirmation:
            question = redact(clean_text(question_text(preview.summary, preview.changes)), secrets)
        if dry_run:
            confirmation: Json | None = None
            if needs_confirmation:  # what the real call's confirmation needs, so it can come next
                if way(ctx, elicit=elicit) == "token":
                    bound = confirmation_binding(arguments)
                    confirmation = token_offer(self.sealer, spec.name, bound, client.account, question)
                else:
                    confirmation = {}
            return dry_run_reply(spec.name, request, preview, confirmation)
        if confirmed:
            token = getattr(arguments, "confirmation", MISSING)
            decision = await ask(
                ctx, params, tool=spec.name, arguments=confirmation_binding(arguments), account=client.account,
                question=question, token=None if token is MISSING else token, sealer=self.sealer, elicit=elicit,
            )
            if isinstance(decision, Stop):
                return Reply({"sent": False, "message": decision.text}, decision.text, is_error=True)
            if isinstance(decision, Pending):
                if isinstance(decision.result, dict):  # the token way: the preview goes with the question
                    decision.result["would_send"] = _request_view(request)
                    decision.result["changes"] = preview.changes
                return decision
            assert isinstance(decision, Go)
        return await spec.handler(self._journaled(client, spec, lead_id, preview.undo), arguments, on_retry)

    def _journaled(self, client: NexorClient, spec: ToolSpec[Any], lead_id: Any, before: Json | None) -> NexorClient:
        """The client to send with: one that journals every write when the journal is on."""
        if self.journal is None:
            return client
        lead = lead_id if isinstance(lead_id, str) else None
        return client.journaled(self.journal, tool=spec.name, lead_id=lead, before=before)

    def _conflict(
        self, account: str, lead_id: str, since: str, lead: Json | None, request: Request
    ) -> Reply | None:
        """The stale-write guard's refusal, or None when the lead is unchanged since `since`."""
        current = lead.get("updated_at") if lead else None
        if not isinstance(current, str):
            text = (
                "Not written: Nexor's answer for this lead has no updated_at, so if_unchanged_since cannot "
                "be checked. Nothing was sent; call again without if_unchanged_since to write anyway."
            )
            return Reply({"written": False, "conflict": True, "message": text}, text, is_error=True)
        if same_instant(current, since):
            return None
        assert lead is not None
        seen = self.memory.recall(account, lead_id, since)
        changed = lead_changes(seen, lead) if seen is not None else None
        body = request.body or {}
        touched = {name: lead.get(name) for name in body if name not in ("metadata", "lead_id")}
        if isinstance(body.get("metadata"), dict):
            metadata: Json = lead["metadata"] if isinstance(lead.get("metadata"), dict) else {}
            touched["metadata"] = {key: metadata.get(key) for key in body["metadata"]}
        what = "; ".join(map(visible, changed)) if changed else "(the version you read is not known here)"
        now = "; ".join(_current_lines(lead, touched)) or "(none)"
        text = (
            f"Not written: the lead changed since {since} (its updated_at is now {current}). Changed since: "
            f"{what}. Current values of the fields this call sets: {now}. Nothing was sent. Decide again "
            f"from the current values, then call again with if_unchanged_since {json.dumps(current)}."
        )
        structured = {
            "written": False, "conflict": True, "your_updated_at": since, "current_updated_at": current,
            "changed_since": changed, "current": touched, "message": text,
        }
        return Reply(structured, text, is_error=True)


async def would_send(spec: ToolSpec[Any], client: NexorClient, arguments: Arguments) -> Request:
    """The exact request the real call sends, from the tool's own handler (nothing is sent)."""
    try:
        await spec.handler(client.previewing(), arguments, None)
    except WouldSend as captured:
        return captured.request
    raise RuntimeError(f"{spec.name} sent no write")  # a declaration bug: every write tool writes


def confirmation_binding(arguments: Arguments) -> Json:
    """The arguments a confirmation is bound to: all the caller gave but the control arguments."""
    return arguments.model_dump(mode="json", exclude_unset=True, exclude=set(CONTROL_ARGUMENTS))


def _current_lines(lead: Json, touched: Json) -> list[str]:
    """`name: value` for each field the write sets, as the lead holds it now (metadata by key, tags
    by name), each value quoted and capped: the conflict's text must hold what to decide from."""
    lines: list[str] = []
    metadata: Json = lead["metadata"] if isinstance(lead.get("metadata"), dict) else {}
    for name, value in touched.items():
        if name == "metadata":
            for key in value:
                lines.append(f"metadata.{visible(key)}: {quote(metadata[key]) if key in metadata else '(absent)'}")
        elif name not in lead:
            lines.append(f"{name}: (not in Nexor's answer)")
        elif isinstance(value, list) and all(isinstance(item, dict) and "name" in item for item in value):
            lines.append(f"{name}: {quote([item['name'] for item in value])}")
        else:
            lines.append(f"{name}: {quote(value)}")
    return lines


def dry_run_reply(tool: str, request: Request, preview: Preview, confirmation: Json | None = None) -> Reply:
    """The preview. `confirmation`, for a tool that needs one: {} when the real call will ask the
    user, or the token way's offer (token, expiry, question) so that the next call can be the real one."""
    structured: Json = {
        "dry_run": True,
        "would_send": _request_view(request),
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
                         + _confirm_by_token(tool, confirmation, " without dry_run,"))
        else:
            lines.append("The real call needs the user's confirmation: called without dry_run, it asks the "
                         "user and sends only on a yes.")
    return Reply(structured, "\n".join(lines))


def _request_view(request: Request) -> Json:
    return {"method": request.method, "path": "/" + request.path, "body": request.body}


def _confirm_by_token(tool: str, offer: Json, how: str) -> str:
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
    return f"NOT DONE: {tool} needs the user's confirmation and nothing was sent. " + _confirm_by_token(
        tool, structured, ""
    ) + sends


def lead_changes(old: Json, new: Json) -> list[str]:
    """Change lines between two versions of a lead: top-level fields and metadata keys. Only fields
    both versions have are compared: Nexor's GET and PATCH answers differ in shape (tags, campaign),
    and a field one of them lacks is unknown there, not changed."""
    lines: list[str] = []
    for name in sorted(set(old) & set(new)):
        if name in ("updated_at", "metadata"):
            continue
        if not same(old.get(name), new.get(name)):
            lines.append(change_line(name, old.get(name), new.get(name)))
    old_metadata: Json = old["metadata"] if isinstance(old.get("metadata"), dict) else {}
    new_metadata: Json = new["metadata"] if isinstance(new.get("metadata"), dict) else {}
    for key in sorted(set(old_metadata) | set(new_metadata)):
        before, after = old_metadata.get(key, ABSENT), new_metadata.get(key, ABSENT)
        if before is ABSENT or after is ABSENT or not same(before, after):
            lines.append(change_line(f"metadata.{key}", before, after))
    return lines

