"""What a write would do, worked out before it is sent: for dry runs, confirmations and the journal.

A write tool declares a `Previewer`: given the lead as it is now (read with one GET) and the exact
request the real call would send, it says what the lead looks like before and after under Nexor's
documented semantics, one line per change, and in plain words what will happen, for a person.

Everything from Nexor (a lead's name, a tag, a workflow, a template) is shown through
`nexor_mcp.quoting`: one line, quoted, capped, invisible characters spelled out, so that it can
never pass for this module's own wording; a text that is sent is shown whole (`block`, or `whole`).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nexor_mcp import endpoints
from nexor_mcp.audit.record import UndoRecord
from nexor_mcp.client import NexorClient
from nexor_mcp.errors import NexorError
from nexor_mcp.json_types import Json
from nexor_mcp.quoting import QUOTED_MAX, one_line, quote
from nexor_mcp.request import Request
from nexor_mcp.rules import ABSENT, current_field, patched, same, tag_slug
from nexor_mcp.tools.fields import _UUID

MAX_SHOWN = QUOTED_MAX
"""Characters of one value shown in a change line; the rest is elided."""


@dataclass(frozen=True)
class Preview:
    """The effect of one write, as far as it can be known before sending it."""

    summary: str
    """What will happen, in plain words for the person asked to confirm it."""
    before: Json | None = None
    after: Json | None = None
    changes: list[str] = field(default_factory=list)
    no_op: bool = False
    """True when every value is already what the write sets: sending it would change nothing."""
    undo: Json | None = None
    """The before-values the audit journal keeps so that `nexor-mcp audit undo` can restore them;
    None when the write cannot be undone."""


@dataclass(frozen=True)
class PreviewInputs:
    """What a previewer may use: the lead now (None when the tool has no lead), the request, and
    the client for any further read it needs (GET only)."""

    lead: Json | None
    request: Request
    client: NexorClient


Previewer = Callable[[Any, PreviewInputs], Awaitable[Preview]]
"""(the tool's validated arguments, what it may use) -> the preview."""


def shown(value: Any) -> str:
    """A value as it appears in a change line: quoted JSON, one line, capped at `MAX_SHOWN`."""
    if value is ABSENT:
        return "(absent)"
    return quote(value, MAX_SHOWN)


def whole(value: Any) -> str:
    """A value that is sent (a reason, a template parameter): quoted and one line like any other,
    but never cut, since the person approves all of it."""
    return quote(value, sys.maxsize)


def change_line(name: str, old: Any, new: Any) -> str:
    line = f"{one_line(name, MAX_SHOWN)}: {shown(old)} → {shown(new)}"
    return line + " (cleared)" if new is None and old is not None else line


def lead_name(lead: Json | None, fallback: str) -> str:
    """Who the write is about, for a sentence: the lead's name quoted (it is Nexor's data, and may
    hold anything), or `fallback` (the tool's own words, or the validated lead id)."""
    if not lead:
        return fallback
    name = " ".join(str(lead[key]) for key in ("first_name", "last_name") if isinstance(lead.get(key), str))
    return quote(name) if name else fallback


def active_run(lead: Json | None) -> Json | None:
    """The lead's active workflow run, in whichever casing Nexor used."""
    if not lead:
        return None
    run = lead.get("active_workflow_run", lead.get("activeWorkflowRun"))
    return run if isinstance(run, dict) else None


def run_workflow_id(lead: Json | None) -> str | None:
    """The workflow of the active run Nexor's answer names (either casing), lowercased; None when
    it names none: no run (the legacy shape may have none), a run marked inactive, or no valid id.
    Never a guess from anything else in the answer."""
    run = active_run(lead)
    if run is None or run.get("is_active", run.get("isActive")) is False:
        return None
    workflow = run.get("workflow")
    nested = workflow.get("id") if isinstance(workflow, dict) else None
    for candidate in (run.get("workflow_id"), run.get("workflowId"), nested):
        if isinstance(candidate, str) and _UUID.fullmatch(candidate):
            return candidate.lower()
    return None


def tag_names(lead: Json | None) -> list[str] | None:
    """The names of the lead's tags, or None when the lead came without a tag list."""
    tags = lead.get("tags") if lead else None
    return names_of(tags) if isinstance(tags, list) else None


def names_of(tags: list[Any]) -> list[str]:
    return [str(tag.get("name")) if isinstance(tag, dict) else str(tag) for tag in tags]


def quoted_list(names: list[str]) -> str:
    return ", ".join(quote(name) for name in names) or "none"


async def lead_tags(inputs: PreviewInputs, lead_id: str) -> list[Any] | str:
    """The lead's tags as Nexor lists them: from its answer, else (the legacy shape has no `tags`)
    from GET /leads/{id}/tags; or, when neither says, why (best effort: never raises)."""
    tags = inputs.lead.get("tags") if inputs.lead else None
    if isinstance(tags, list):
        return tags
    try:
        listed: list[Any] = (await inputs.client.call(endpoints.get_lead_tags(lead_id)))["tags"]
    except NexorError as error:
        return f"Nexor's lead has no tag list, and its tags could not be read: {quote(str(error))}"
    return listed


def lead_update(lead: Json, body: Json) -> Preview:
    """PATCH /leads/{id} (`rules.patched`: fields replaced, metadata shallow-merged): the change lines,
    and the before-values undo restores (a field the lead does not show is restored to null)."""
    changes: list[str] = []
    fields: Json = {}
    metadata_before: Json = {}
    metadata_absent: list[str] = []
    for name, value in body.items():
        if name == "metadata":
            current: Json = lead["metadata"] if isinstance(lead.get("metadata"), dict) else {}
            for key, new in value.items():
                old = current.get(key, ABSENT)
                if old is ABSENT:
                    metadata_absent.append(key)
                else:
                    metadata_before[key] = old
                if not same(old, new):
                    changes.append(change_line(f"metadata.{key}", old, new))
            continue
        old = current_field(lead, name, missing=None)
        fields[name] = old
        if not same(old, value):
            changes.append(change_line(name, old, value))
    undo = UndoRecord.of_update(fields, metadata_before, metadata_absent).as_json()
    return Preview(
        summary=f"Update {', '.join(body)} of {lead_name(lead, 'the lead')}",
        before=lead,
        after=patched(lead, body),
        changes=changes,
        no_op=not changes,
        undo=undo,
    )


def tag_set(lead: Json, names: list[str], before: list[str] | None = None, unknown: str = "") -> Preview:
    """PUT /leads/tags: the lead's tags become exactly `names`, matched by Nexor's slug rule.
    `before`: the lead's tag names when its answer has none (read from its tag list); `unknown`:
    why they are not known, when neither has them."""
    before = tag_names(lead) if before is None else before
    who = lead_name(lead, "the lead")
    summary = f"Set the tags of {who} to {quoted_list(names)}"
    if before is None:
        why = unknown or "Nexor's lead has no tag list"
        return Preview(summary=f"{summary}. Its tags now are unknown ({why}): any others are removed.",
                       after={"tags": names}, changes=[f"tags: unknown before; after: {quoted_list(names)}"])
    wanted = {tag_slug(name) for name in names}
    had = {tag_slug(name) for name in before}
    added = [name for name in names if tag_slug(name) not in had]
    removed = [name for name in before if tag_slug(name) not in wanted]
    kept = [name for name in before if tag_slug(name) in wanted]
    changes = [f"tags: + {quote(name)}" for name in added] + [f"tags: - {quote(name)}" for name in removed]
    return Preview(
        summary=f"{summary}: adds {quoted_list(added)}, removes {quoted_list(removed)}, keeps {quoted_list(kept)}",
        before={"tags": before},
        after={"tags": names, "added": added, "removed": removed, "kept": kept},
        changes=changes + ([f"tags kept: {quoted_list(kept)}"] if changes and kept else []),
        no_op=not changes,
        undo=UndoRecord.of_tags(before).as_json(),
    )


async def listed_workflows(client: NexorClient) -> list[Json]:
    """The account's workflows as Nexor lists them; [] when it cannot tell (best effort: a failed
    lookup never stops the preview)."""
    try:
        listed = (await client.call(endpoints.list_workflows()))["workflows"]
    except NexorError:
        return []
    return [workflow for workflow in listed if isinstance(workflow, dict)] if isinstance(listed, list) else []


def workflow_in(listed: list[Json], workflow_id: str | None) -> Json | None:
    for workflow in listed:
        if isinstance(workflow.get("id"), str) and workflow["id"].lower() == workflow_id:
            return workflow
    return None


def workflow_label(workflow_id: str, workflow: Json | None) -> str:
    """`"SDR inbound" (<id>)` when the name is known, else the id alone."""
    name = workflow.get("name") if workflow else None
    return f"{quote(name)} ({workflow_id})" if isinstance(name, str) else workflow_id


async def workflow_name(client: NexorClient, workflow_id: str) -> str:
    """The workflow for a person to read: its quoted name and id, or its id when Nexor cannot tell."""
    return workflow_label(workflow_id, workflow_in(await listed_workflows(client), workflow_id))


def takeover(lead: Json | None, *, paused: bool) -> tuple[Json | None, Json, list[str]]:
    """Before, after and changes of human takeover on the lead's active run."""
    run = active_run(lead)
    old = run.get("human_takeover") if run else None
    after = {"human_takeover": paused}
    if not isinstance(old, bool):
        return None, after, [f"human_takeover: → {shown(paused)}"]
    return {"human_takeover": old}, after, [change_line("human_takeover", old, paused)] if old != paused else []
