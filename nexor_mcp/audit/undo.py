"""The undo planner: from a journal entry and the lead as it is now, the write that puts back what
the entry changed, and the check that the lead still holds what the entry wrote.

`audit undo` reverses `update_lead` and `set_lead_tags` entries (and earlier undos): a PATCH of the
lead's fields and metadata keys back to their before-values, a PUT of its tag names back to the
set it had. Values are compared as JSON (1, 1.0 and true differ), tags by Nexor's slug rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nexor_mcp.audit.journal import JournalWriter
from nexor_mcp.audit.record import Entry, UndoRecord
from nexor_mcp.audit.render import compact, names, shown
from nexor_mcp.json_types import Json
from nexor_mcp.rules import ABSENT, current_field, same, tag_slug

if TYPE_CHECKING:
    from nexor_mcp.client import NexorClient

NOT_UNDOABLE = {
    "send_message": "a message went to a real person, and a message cannot be unsent",
    "set_lead_status": (
        "a status change may already have triggered the workflow's automations, and no before-value is "
        "recorded for it; set the status back with set_lead_status if needed"
    ),
    "assign_workflow": (
        "enrolling a lead starts the workflow's cadence (its first messages may have gone out), and Nexor "
        "has no endpoint to take a lead out of a workflow"
    ),
    "add_lead_tags": (
        "tags added by id keep the ones the lead had, and the journal cannot tell which of them it had "
        "already, so removing them could remove tags it had before; fix the set with set_lead_tags"
    ),
    "create_lead": "Nexor's public API cannot delete a lead; delete it in the Nexor dashboard if needed",
    "record_meeting": "Nexor's public API cannot delete a meeting; remove it in the Nexor dashboard if needed",
    "stop_automation": (
        "a takeover is reversed by resume_automation, not by undo (and cadence steps missed meanwhile stay missed)"
    ),
    "resume_automation": (
        "resuming is reversed by stop_automation, not by undo (and messages sent meanwhile stay sent)"
    ),
}
ABSENT_NOTE = (
    "{key} did not exist before; Nexor documents no way to delete a metadata key, so it is set to null"
)
Kind = Literal["fields", "tags"]
Result = Literal["undone", "nothing", "refused", "failed"]


def kind(entry: Entry) -> Kind | None:
    """"fields" for a PATCH of a lead, "tags" for a PUT of its tags (the writes undo can reverse)."""
    if entry.method == "PATCH" and entry.path.startswith("leads/") and isinstance(entry.body, dict):
        return "fields"
    if entry.method == "PUT" and entry.path == "leads/tags" and isinstance(entry.body, dict):
        return "tags"
    return None


def not_undoable(entry: Entry) -> str | None:
    """Why `audit undo` cannot reverse this entry (None: it can try)."""
    if entry.outcome == "failed":
        return f"nothing to undo: the write failed ({entry.shown_outcome}), so Nexor changed nothing"
    if kind(entry) is None or entry.tool in NOT_UNDOABLE:
        reason = NOT_UNDOABLE.get(entry.tool, "nexor-mcp has no way to reverse this kind of write")
        return f"cannot be undone: {reason}"
    if not entry.before:
        return "cannot be undone: no before-values were recorded with it"
    return None


def undone_by(entries: list[Entry], entry: Entry) -> Entry | None:
    """The later undo that put this entry's before-values back, if one succeeded."""
    return next(
        (other for other in reversed(entries)
         if other.undoes == entry.id and other.line > entry.line and other.outcome in ("ok", "accepted")),
        None,
    )


@dataclass
class Plan:
    """The write that undoes an entry: `method path body`, the entry's own."""

    kind: Kind
    method: str
    path: str
    body: Json
    before: UndoRecord
    """The lead's current values of what the undo writes: the undo's own undo record."""
    differences: list[str]
    """How the lead differs from what the entry wrote (empty: it still holds it)."""
    lines: list[str]
    no_op: bool
    """The lead already holds the before-values: nothing needs sending."""


def plan(entry: Entry, lead: Json) -> Plan | str:
    """What undoing `entry` sends, given the lead as it is now; a str: why it cannot."""
    record = entry.undo_record or UndoRecord()
    if kind(entry) == "tags":
        old = record.tags
        if not isinstance(old, list) or not all(isinstance(name, str) for name in old):
            return "its before-values hold no tag list"
        written = written_tags(entry)
        current = tag_names(lead)
        changed = []
        if tag_set(current) != tag_set(written):
            changed.append(f"tags are {names(current)}, not {names(written)} as the entry wrote")
        return Plan(
            "tags", entry.method, entry.path, {"lead_id": lead.get("id", entry.lead_id), "tags": old},
            UndoRecord.of_tags(current), changed, [f"tags: {names(current)} → {names(old)}"],
            tag_set(current) == tag_set(old),
        )
    fields, metadata = written_values(entry)
    old_fields = record.fields or {}
    old_metadata = record.metadata or {}
    absent = record.metadata_absent or []
    body: Json = {}
    now_fields: Json = {}
    now_metadata: Json = {}
    now_absent: list[str] = []
    differences: list[str] = []
    lines: list[str] = []
    no_op = True
    for name, value in fields.items():
        if name not in old_fields:
            return f"its before-value of {name} is not on record"
        current = current_field(lead, name)
        if not same(current, value):
            differences.append(f"{name} is {shown(current)}, not {shown(value)} as the entry wrote")
        body[name] = old_fields[name]
        now_fields[name] = None if current is ABSENT else current
        no_op = no_op and same(current, old_fields[name])
        lines.append(f"{name}: {shown(current)} → {shown(old_fields[name])}")
    stored: Json = lead["metadata"] if isinstance(lead.get("metadata"), dict) else {}
    for key, value in metadata.items():
        current = stored.get(key, ABSENT)
        if not same(current, value):
            differences.append(f"metadata.{key} is {shown(current)}, not {shown(value)} as the entry wrote")
        if key in old_metadata:
            target = old_metadata[key]
            note = ""
        elif key in absent:
            target = None
            note = " (" + ABSENT_NOTE.format(key=f"metadata.{key}") + ")"
        else:
            return f"its before-value of metadata.{key} is not on record"
        body.setdefault("metadata", {})[key] = target
        if current is ABSENT:
            now_absent.append(key)
        else:
            now_metadata[key] = current
        no_op = no_op and same(current, target)
        lines.append(f"metadata.{key}: {shown(current)} → {shown(target)}{note}")
    before = UndoRecord.of_update(now_fields, now_metadata, now_absent)
    return Plan("fields", entry.method, entry.path, body, before, differences, lines, no_op)


async def undo_one(
    client: NexorClient, journal: JournalWriter, entries: list[Entry], entry: Entry, account: str | None, *,
    force: bool, dry_run: bool,
) -> tuple[Result, list[str]]:
    """Undo one entry with `client` (its write journaled as tool `undo`): what came of it, and what to say."""
    from nexor_mcp import endpoints
    from nexor_mcp.audit.recording import journaled
    from nexor_mcp.errors import NexorError

    if entry.outcome == "failed":
        return "nothing", [not_undoable(entry) or ""]
    why = not_undoable(entry)
    if why:
        return "refused", [why]
    if entry.account != account:
        return "refused", [
            f"it was written with another Nexor account's key (account {entry.account or 'unknown'}; the "
            f"configured key is account {account}); undo uses the configured key, so it cannot undo it"
        ]
    lead_id = entry.lead_id or (entry.body.get("lead_id") if isinstance(entry.body, dict) else None)
    if not isinstance(lead_id, str):
        return "refused", ["the entry has no lead id"]
    try:
        lead = (await client.call(endpoints.get_lead(lead_id)))["lead"]
    except NexorError as exc:
        return "failed", [f"could not read the lead, so nothing was sent: {exc}"]
    restore = plan(entry, lead)
    if isinstance(restore, str):
        return "refused", [restore]
    lines: list[str] = []
    already = undone_by(entries, entry)
    differences = ([f"it was already undone by entry {already.id}"] if already else []) + restore.differences
    if differences:
        if not force:
            return "refused", [
                "the lead changed after this entry, so nothing was sent (--force undoes it anyway):",
                *(f"- {difference}" for difference in differences),
            ]
        lines += ["the lead changed after this entry; undoing anyway (--force):",
                  *(f"- {difference}" for difference in differences)]
    if restore.no_op:
        return "nothing", [*lines, "the lead already holds the before-values; nothing was sent"]
    lines += restore.lines
    if dry_run:
        return "undone", [*lines, f"would send: {restore.method} {restore.path} {compact(restore.body)}"]
    request = (
        endpoints.update_lead(lead_id, restore.body) if restore.kind == "fields"
        else endpoints.set_lead_tags(lead_id, restore.body["tags"])
    )
    try:
        sent = await journaled(journal, client, request, lambda: client.exchange(request), tool="undo",
                               before=restore.before.as_json(), undoes=entry.id)
        result = sent.result
    except NexorError as exc:
        return "failed", [*lines, f"the undo failed: {exc}"]
    if result.get("accepted") is True:
        lines.append("Nexor accepted the undo, but its answer could not be read: check the lead")
    return "undone", lines


def written_values(entry: Entry) -> tuple[Json, Json]:
    """The fields and metadata values the entry wrote, as Nexor answered them where it did."""
    body = entry.body if isinstance(entry.body, dict) else {}
    fields = {name: value for name, value in body.items() if name != "metadata"}
    metadata = dict(body.get("metadata") or {})
    answered = entry.written
    for name, value in (answered.fields or {}).items():
        if name in fields:
            fields[name] = value
    for key, value in (answered.metadata or {}).items():
        if key in metadata:
            metadata[key] = value
    return fields, metadata


def written_tags(entry: Entry) -> list[Any]:
    """The tag names the entry set, as Nexor answered them where it did."""
    if entry.written.tags is not None:
        return list(entry.written.tags)
    body = entry.body if isinstance(entry.body, dict) else {}
    return list(body.get("tags") or [])


def tag_names(lead: Json) -> list[Any]:
    return [tag.get("name") if isinstance(tag, dict) else tag for tag in lead.get("tags") or []]


def tag_set(tags: list[Any]) -> set[str]:
    """Tags as Nexor matches them, by slug: "VIP", "vip" and "Hot lead" / "hot-lead" are one tag each."""
    return {tag_slug(str(name)) for name in tags}
