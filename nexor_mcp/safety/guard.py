"""The stale-write guard: with `if_unchanged_since`, a write is refused when the lead changed since
the version the agent read, and the refusal says what changed and what the fields it sets hold now."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from pydantic import MISSING

from nexor_mcp.json_types import Json
from nexor_mcp.quoting import quote, visible
from nexor_mcp.request import Request
from nexor_mcp.rules import ABSENT, instant, same, same_instant
from nexor_mcp.safety.write import GoOn, Outcome, Reply, Step, Write
from nexor_mcp.tools.preview import change_line

MAX_REMEMBERED_LEADS = 256


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


class StaleGuard(Step):
    """Refuses a write whose lead changed since `if_unchanged_since` (reads the lead, nothing else)."""

    def __init__(self, memory: LeadMemory) -> None:
        self.memory = memory

    async def __call__(self, write: Write, go_on: GoOn) -> Outcome:
        since, lead_id = write.since, write.lead.lead_id
        if since is MISSING or lead_id is None:
            return await go_on(write)
        conflict = self.conflict(write.client.account, lead_id, since, await write.lead.get(), write.request)
        return conflict if conflict is not None else await go_on(write)

    def conflict(
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

