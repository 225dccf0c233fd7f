"""What a write would do, worked out before it is sent: for dry runs, confirmations and the journal.

A write tool declares a `Previewer`: given the lead as it is now (read with one GET) and the exact
request the real call would send, it says what the lead looks like before and after under Nexor's
documented semantics, one line per change, and in plain words what will happen, for a person.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nexor_mcp.client import Json, NexorClient, Request
from nexor_mcp.errors import NexorError


class _Absent:
    """A metadata key the lead does not have (distinct from any value, `null` included)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()
MAX_SHOWN = 80
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
class Facts:
    """What a previewer may use: the lead now (None when the tool has no lead), the request, and
    the client for any further read it needs (GET only)."""

    lead: Json | None
    request: Request
    client: NexorClient


Previewer = Callable[[Any, Facts], Awaitable[Preview]]
"""(the tool's validated arguments, the facts) -> the preview."""


def shown(value: Any) -> str:
    """A value as it appears in a change line: JSON, elided past `MAX_SHOWN` characters."""
    if value is ABSENT:
        return "(absent)"
    text: str = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values (so 1, 1.0 and true are not confused)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def change_line(name: str, old: Any, new: Any) -> str:
    line = f"{name}: {shown(old)} → {shown(new)}"
    return line + " (cleared)" if new is None and old is not None else line


def lead_name(lead: Json | None, fallback: str) -> str:
    if not lead:
        return fallback
    name = " ".join(str(lead[key]) for key in ("first_name", "last_name") if isinstance(lead.get(key), str))
    return name or fallback


def active_run(lead: Json | None) -> Json | None:
    """The lead's active workflow run, in whichever casing Nexor used."""
    if not lead:
        return None
    run = lead.get("active_workflow_run", lead.get("activeWorkflowRun"))
    return run if isinstance(run, dict) else None


def tag_names(lead: Json | None) -> list[str] | None:
    """The names of the lead's tags, or None when the lead came without a tag list."""
    tags = lead.get("tags") if lead else None
    if not isinstance(tags, list):
        return None
    return [str(tag.get("name")) if isinstance(tag, dict) else str(tag) for tag in tags]


def tag_key(name: str) -> str:
    """Nexor matches tag names by slug, so "VIP" and "vip" are one tag."""
    return re.sub(r"[^0-9a-z]+", "-", name.strip().lower()).strip("-") or name.strip().lower()


def lead_update(lead: Json, body: Json) -> Preview:
    """PATCH /leads/{id}: each field sent replaces the value, metadata is shallow-merged."""
    after = copy.deepcopy(lead)
    changes: list[str] = []
    fields: Json = {}
    metadata_before: Json = {}
    metadata_absent: list[str] = []
    for name, value in body.items():
        if name == "metadata":
            current: Json = lead["metadata"] if isinstance(lead.get("metadata"), dict) else {}
            after["metadata"] = {**current, **value}
            for key, new in value.items():
                old = current.get(key, ABSENT)
                if old is ABSENT:
                    metadata_absent.append(key)
                else:
                    metadata_before[key] = old
                if old is ABSENT or not same(old, new):
                    changes.append(change_line(f"metadata.{key}", old, new))
            continue
        old = _current_field(lead, name)
        fields[name] = old
        after[name] = value
        if name == "campaign_id" and "campaign" in lead:
            campaign = lead.get("campaign")
            keep = isinstance(campaign, dict) and campaign.get("id") == value
            after["campaign"] = campaign if keep else (None if value is None else {"id": value})
        if not same(old, value):
            changes.append(change_line(name, old, value))
    undo = {"fields": fields, "metadata": metadata_before, "metadata_absent": metadata_absent}
    return Preview(
        summary=f"Update {', '.join(body)} of {lead_name(lead, 'the lead')}",
        before=lead,
        after=after,
        changes=changes,
        no_op=not changes,
        undo=undo,
    )


def _current_field(lead: Json, name: str) -> Any:
    if name in lead:
        return lead[name]
    if name == "campaign_id":
        campaign = lead.get("campaign")
        return campaign.get("id") if isinstance(campaign, dict) else None
    return None


def tag_set(lead: Json, names: list[str]) -> Preview:
    """PUT /leads/tags: the lead's tags become exactly `names`."""
    before = tag_names(lead)
    who = lead_name(lead, "the lead")
    summary = f"Set the tags of {who} to {', '.join(names) or '(none)'}"
    if before is None:
        return Preview(summary=summary, after={"tags": names},
                       changes=["tags: unknown before (Nexor's lead has no tag list)"])
    wanted = {tag_key(name) for name in names}
    had = {tag_key(name) for name in before}
    added = [name for name in names if tag_key(name) not in had]
    removed = [name for name in before if tag_key(name) not in wanted]
    changes = [f"tags: + {name}" for name in added] + [f"tags: - {name}" for name in removed]
    return Preview(
        summary=summary,
        before={"tags": before},
        after={"tags": names, "added": added, "removed": removed},
        changes=changes,
        no_op=not changes,
        undo={"tags": before},
    )


async def workflow_name(client: NexorClient, workflow_id: str) -> str:
    """The workflow's name for a person to read, or its id when Nexor cannot tell (best effort:
    a failed lookup never stops the preview)."""
    try:
        listed = (await client.list_workflows())["workflows"]
    except NexorError:
        return workflow_id
    for workflow in listed if isinstance(listed, list) else ():
        if isinstance(workflow, dict) and workflow.get("id") == workflow_id and isinstance(workflow.get("name"), str):
            return f"{workflow['name']!r} ({workflow_id})"
    return workflow_id


def takeover(lead: Json | None, *, paused: bool) -> tuple[Json | None, Json, list[str]]:
    """Before, after and changes of human takeover on the lead's active run."""
    run = active_run(lead)
    old = run.get("human_takeover") if run else None
    after = {"human_takeover": paused}
    if not isinstance(old, bool):
        return None, after, [f"human_takeover: → {shown(paused)}"]
    return {"human_takeover": old}, after, [change_line("human_takeover", old, paused)] if old != paused else []
