"""Nexor's own rules, written once, for everything that must agree with Nexor (previews, the stale
guard, undo, the sandbox): the tag slug, JSON equality and the "absent" sentinel, what a PATCH of a
lead does, which writes are safe to send twice, and what `updated_at` covers and how two of them compare.

Nexor documents that tags are "found or created by slug" but not how a slug is made; `tag_slug` is
the one rule the whole project uses for it, so a preview, an undo and the sandbox never disagree.
"""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nexor_mcp.json_types import Json

_NOT_SLUG = re.compile(r"[^0-9a-z]+")


def tag_slug(name: str) -> str:
    """The slug a tag name is matched by: case-folded ("Straße" and "STRASSE" are one tag),
    accents dropped ("Café" is "cafe"), every run of other characters one "-". A name with no
    letter or digit left keeps its case-folded self, so it still matches only itself."""
    folded = unicodedata.normalize("NFKD", name.strip().casefold())
    plain = "".join(char for char in folded if not unicodedata.combining(char))
    return _NOT_SLUG.sub("-", plain).strip("-") or name.strip().casefold()


class _Absent:
    """A value the lead does not have: a metadata key it lacks, a field its answer does not show.
    Distinct from every JSON value, `null` included."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()
"""The one "absent" sentinel (previews, the stale guard, the undo planner)."""


def same(a: Any, b: Any) -> bool:
    """Equal as Nexor stores JSON: 1, 1.0 and true are three different values, key order does not
    count; `ABSENT` equals only itself (a missing key is not a null one)."""
    if a is ABSENT or b is ABSENT:
        return a is b
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def current_field(lead: Json, name: str, *, missing: Any = ABSENT) -> Any:
    """A field of the lead as GET /leads/{id} shows it. `campaign_id` is read from the nested
    `campaign` when the answer has no `campaign_id` (GET shows the campaign, not its id; no campaign
    is None). Any other field the answer does not show is `missing`: `ABSENT` where "not shown"
    must not pass for null (the undo planner's "does the lead still hold what was written"), None
    where it is the value a PATCH would put back (a preview's before-value)."""
    if name == "campaign_id" and "campaign_id" not in lead:
        campaign = lead.get("campaign")
        return campaign.get("id") if isinstance(campaign, dict) else None
    return lead.get(name, missing)


def patched(lead: Json, body: Json) -> Json:
    """The lead after PATCH /leads/{id} with `body`, under Nexor's documented semantics: each field
    sent replaces its value (null clears it), `metadata` is shallow-merged (the keys sent replace
    theirs, the others stay; a key cannot be deleted), and a nested `campaign` follows `campaign_id`.
    `lead` is not changed."""
    after = copy.deepcopy(lead)
    for name, value in body.items():
        if name == "metadata":
            current: Json = lead["metadata"] if isinstance(lead.get("metadata"), dict) else {}
            after["metadata"] = {**current, **value}
            continue
        after[name] = value
        if name == "campaign_id" and "campaign" in lead:
            campaign = lead.get("campaign")
            keep = isinstance(campaign, dict) and campaign.get("id") == value
            after["campaign"] = campaign if keep else (None if value is None else {"id": value})
    return after


UPDATED_AT_COVERS = "A status change or takeover does not move it."
"""What a lead's `updated_at` does not cover, in the words of the stale guard's argument
(`if_unchanged_since`): its workflow run (a status change, a human takeover) lives apart from the
lead's own fields, so the guard cannot see such a change."""


def instant(timestamp: str) -> str:
    """An `updated_at` as the instant it names, so that "…Z" and "…+00:00" (or another offset) of one
    moment are one key; a text that is not an ISO time, or has no offset, is kept as it is."""
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00") if timestamp.endswith("Z") else timestamp)
    except ValueError:
        return timestamp
    return moment.astimezone(UTC).isoformat() if moment.tzinfo else timestamp


def same_instant(a: str, b: str) -> bool:
    """Two `updated_at`s name the same moment (the stale guard compares instants, not spellings)."""
    return instant(a) == instant(b)


def _meeting_deduplicated(meeting: Json | None) -> bool:
    """POST /meetings with both `external_calendar_provider` and `external_event_id` updates the
    meeting they name instead of adding a second one (nexor-api.md, "Idempotency"); without them it
    adds one each time."""
    meeting = meeting or {}
    return bool(meeting.get("external_calendar_provider") and meeting.get("external_event_id"))


WRITES: dict[str, bool | Callable[[Json | None], bool]] = {
    "PATCH /leads/{id}": True,  # the same body sets the same values again
    "POST /leads": False,  # Nexor does not deduplicate leads: a second call is a second lead
    "POST /leads/{id}/tags": True,  # tags already on the lead are skipped
    "PUT /leads/tags": True,  # the tag set becomes the one sent, however often
    "POST /leads/{id}/automation/stop": True,  # answers already_stopped
    "POST /leads/{id}/automation/resume": True,  # answers already_running
    "POST /meetings": _meeting_deduplicated,  # only when Nexor can match it to the one it made
    "POST /leads/{id}/assign-workflow": False,  # a second call reassigns (and restarts the cadence)
    "POST /leads/{id}/status": True,  # setting the status it already has changes nothing
    "POST /messages": False,  # a second call is a second message to a real person
}
"""Nexor's write endpoints and whether sending one twice has the effect of sending it once (True,
False, or decided by the body). The one declaration of idempotence: the client reads it for each
request it sends (`is_idempotent`: the retry policy retries nothing else, and the wording of an unknown
outcome follows it), and a tool's `idempotentHint` is derived from it (`always_idempotent`)."""


def is_idempotent(endpoint: str, body: Json | None) -> bool:
    """Whether this request to `endpoint` (a key of `WRITES`) may be sent again after a failure
    that may have passed."""
    rule = WRITES[endpoint]
    return rule if isinstance(rule, bool) else rule(body)


def always_idempotent(endpoint: str) -> bool:
    """Whether every request to `endpoint` is idempotent: what a tool's `idempotentHint` promises
    (the hint holds for any arguments, so a write idempotent only for some bodies says false)."""
    return WRITES[endpoint] is True
