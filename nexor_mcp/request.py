"""A call to Nexor as a value: built by a pure function (nexor_mcp/endpoints.py), shown by a dry
run, asked about, journaled and sent by the client, all as the same object. Nothing is sent by
building one."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from nexor_mcp.errors import Effect, UnreadableAnswer
from nexor_mcp.json_types import Json

Parse = Callable[[int, Json], Json]
"""(HTTP status, Nexor's JSON object) -> the result; raises `UnreadableAnswer` for a body it cannot read."""


def passed_through(status: int, body: Json) -> Json:
    """An answer whose shape Nexor documents loosely: every field kept but the `success` flag."""
    return {key: value for key, value in body.items() if key != "success"}


@dataclass(frozen=True, slots=True)
class Request:
    """One call to Nexor, with what the retry policy, the error wording and the journal need.

    `idempotent`: sending it twice has the effect of sending it once (Nexor's side), so a failure
    that may pass is retried; anything else is sent at most once. A write's comes from
    `rules.is_idempotent` (which sees the body), the one declaration a tool's idempotentHint also reads.
    """

    method: str
    path: str
    effect: Effect
    _: dataclasses.KW_ONLY
    idempotent: bool
    body: Json | None = None
    query: Mapping[str, str] | None = None
    parse: Parse = field(default=passed_through, compare=False, repr=False)
    any_json_under: str | None = None
    """For an endpoint whose answer is undocumented: a 2xx whose JSON is not an object (a bare list,
    a string) is read as `{any_json_under: that JSON}` instead of being refused."""
    lead_id: str | None = None
    """The lead the call is about (what the journal files it under); None when it is about none."""
    change: str = "change"
    """A write's name in "Nexor accepted the {change}" when its answer cannot be read."""
    next_step: str = "check the result with a read tool"
    """What to do instead of sending a write again when its answer cannot be read."""
    answers_lead: bool = False
    """Its answer is a lead: an unreadable one is then `{"lead": None, "accepted": true, ...}`."""

    @property
    def writes(self) -> bool:
        return self.effect.writes


@dataclass(frozen=True, slots=True)
class Sent:
    """A request's end: Nexor's status and the result read from its answer. `unreadable` is set
    when a write's 2xx answer could not be read: the write was applied, and `result` says so in
    words (`accepted_unreadable`), so it is never mistaken for a failure and sent again."""

    status: int
    result: Json
    unreadable: UnreadableAnswer | None = None


def accepted_unreadable(unreadable: UnreadableAnswer, change: str, next_step: str, *, lead: bool = True) -> Json:
    """The outcome of a write that Nexor accepted (2xx) but whose answer could not be read."""
    message = (
        f"Nexor accepted the {change} (HTTP {unreadable.status}), so it was applied; but its answer "
        f"{unreadable.what}, so the result cannot be shown. Do not send the same {change} again: {next_step}."
    )
    outcome: Json = {"accepted": True, "message": message}
    return {"lead": None, **outcome} if lead else outcome
