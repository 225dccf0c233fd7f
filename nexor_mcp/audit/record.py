"""The journal's line format, owned here and only here: every line written and read goes through
these models.

One JSON object per line. A write adds two lines that share an `id`:

    {"v":1,"id":"20261127T153153.123456Z-9f3c1a","event":"intent","time":"2026-11-27T15:31:53.123456Z",
     "tool":"update_lead","lead_id":"3f2b…","method":"PATCH","path":"leads/3f2b…","body":{"title":"CTO"},
     "before":{"fields":{"title":"Manager"},"metadata":{},"metadata_absent":[]},"account":"5c1f0e9a27b4"}
    {"v":1,"id":"20261127T153153.123456Z-9f3c1a","event":"outcome","time":"2026-11-27T15:31:53.201337Z",
     "status":200,"outcome":"ok","detail":null,"after":{"fields":{"title":"CTO"},"metadata":{}}}

`before` is the `UndoRecord` (what `audit undo` restores), `after` the `Written` values (what Nexor
answered for exactly what the write changed). Reading is tolerant: an optional value of the wrong
type reads as absent, so an old or hand-edited line still gives what it can.
"""

from __future__ import annotations

import secrets as random_source
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from nexor_mcp.json_types import Json

VERSION: Final = 1
OutcomeName = Literal["ok", "accepted", "failed", "unknown"]
OUTCOMES: tuple[OutcomeName, ...] = ("ok", "accepted", "failed", "unknown")
NO_OUTCOME = "unknown (no outcome recorded: the process may have died mid-request)"


def _or_none(kind: type | tuple[type, ...]) -> BeforeValidator:
    """An optional value that reads as None when it has another type (tolerant reading)."""
    return BeforeValidator(lambda value: value if isinstance(value, kind) and not isinstance(value, bool) else None)


_Text = Annotated[str | None, _or_none(str)]
_Object = Annotated[Json | None, _or_none(dict)]
_List = Annotated[list[Any] | None, _or_none(list)]
_Status = Annotated[int | None, _or_none(int)]


class _Values(BaseModel):
    """Values of one lead, as a line records them: only the keys given are written back."""

    model_config = ConfigDict(frozen=True, extra="allow", strict=True)

    fields: _Object = None
    """Lead fields by name (PATCH /leads/{id})."""
    metadata: _Object = None
    """Metadata values by key (merged by Nexor, so only the keys written)."""
    tags: _List = None
    """Tag names (PUT /leads/tags)."""

    @classmethod
    def read(cls, value: Any) -> Self | None:
        """The model of a recorded object; None when there is none (or it is not an object)."""
        if isinstance(value, cls):
            return value
        return cls.model_validate(value) if isinstance(value, dict) else None

    def as_json(self) -> Json:
        """The keys given, in the declared order, then any others as they came."""
        given = self.model_fields_set
        record = {name: getattr(self, name) for name in type(self).model_fields if name in given}
        return record | (self.__pydantic_extra__ or {})


class UndoRecord(_Values):
    """The before-values `audit undo` puts back, kept with the intent: `{fields, metadata,
    metadata_absent}` for an update (the metadata keys the lead did not have yet are listed, as
    Nexor has no way to delete one), `{tags}` for a tag set."""

    metadata_absent: _List = None

    @classmethod
    def of_update(cls, fields: Json, metadata: Json, metadata_absent: list[str]) -> UndoRecord:
        return cls(fields=fields, metadata=metadata, metadata_absent=metadata_absent)

    @classmethod
    def of_tags(cls, names: list[Any]) -> UndoRecord:
        return cls(tags=names)


class Written(_Values):
    """What Nexor's answer says the written values now are: `{fields, metadata}` of a PATCH of a
    lead, `{tags}` of a PUT of its tags (Nexor may store a value differently than sent)."""

    @classmethod
    def of_answer(cls, method: str, path: str, body: Json | None, result: Json) -> Written | None:
        """From a write's result, for exactly what it wrote (the fields and metadata keys of a PATCH
        of a lead, the tag names of a PUT of its tags); None for any other write, or when the answer
        does not say. `audit undo` compares the lead with this."""
        sent = body or {}
        lead = result.get("lead")
        if method == "PATCH" and path.startswith("leads/") and isinstance(lead, dict):
            stored, written = lead.get("metadata"), sent.get("metadata")
            metadata = (
                {key: stored[key] for key in written if key in stored}
                if isinstance(stored, dict) and isinstance(written, dict) else {}
            )
            return cls(fields={name: lead[name] for name in sent if name != "metadata" and name in lead},
                       metadata=metadata)
        if method == "PUT" and path == "leads/tags" and isinstance(result.get("tags"), list):
            names = [tag.get("name") for tag in result["tags"] if isinstance(tag, dict)]
            if all(isinstance(name, str) for name in names):
                return cls(tags=names)
        return None


def _dump(model: BaseModel, omit_when_none: tuple[str, ...] = ()) -> Json:
    """A line's object, keys in the declared order (not copied: it is serialised at once)."""
    record: Json = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, _Values):
            value = value.as_json()
        elif value is None and name in omit_when_none:
            continue
        record[name] = value
    return record


class Intent(BaseModel):
    """The first line of a write, written (and fsynced) before the request leaves."""

    model_config = ConfigDict(frozen=True, strict=True)

    v: Literal[1] = VERSION
    id: str
    event: Literal["intent"] = "intent"
    time: str
    tool: str
    lead_id: _Text = None
    method: str
    path: str
    body: Any = None
    before: Annotated[UndoRecord | None, BeforeValidator(UndoRecord.read)] = None
    account: _Text = None
    undoes: _Text = None
    """The entry this write undoes (`audit undo`'s own writes); not written when None."""

    def as_json(self) -> Json:
        return _dump(self, omit_when_none=("undoes",))


class Outcome(BaseModel):
    """The second line of a write: how it ended, written after the answer."""

    model_config = ConfigDict(frozen=True, strict=True)

    v: Literal[1] = VERSION
    id: str
    event: Literal["outcome"] = "outcome"
    time: _Text = None
    status: _Status = None
    outcome: OutcomeName
    """`ok`, `accepted` (a 2xx whose answer could not be read), `failed` (it certainly changed
    nothing) or `unknown` (it may have)."""
    detail: _Text = None
    after: Annotated[Written | None, BeforeValidator(Written.read)] = None

    def as_json(self) -> Json:
        return _dump(self)


DECISIONS = ("approved", "declined")
HOW_DECIDED = ("form", "url", "page", "token")
"""How a person decided: a form the client showed (elicitation), the approval page reached by
URL-mode elicitation, the page the server opened in their browser, or a token the model relayed."""


class Decision(BaseModel):
    """A person's decision on a confirmed call, with the question they were shown: an approval
    (whose write follows as an entry) or a decline (after which nothing was sent)."""

    model_config = ConfigDict(frozen=True, strict=True)

    v: Literal[1] = VERSION
    id: str
    event: Literal["decision"] = "decision"
    time: str
    tool: str
    lead_id: _Text = None
    account: _Text = None
    decision: Literal["approved", "declined"]
    how: Literal["form", "url", "page", "token"]
    question: str

    def as_json(self) -> Json:
        return _dump(self)


def read_line(record: Any) -> Intent | Outcome | Decision | str:
    """The model of one parsed line, or why it is not a line this version can use."""
    if not isinstance(record, dict):
        return "not a JSON object"
    version = record.get("v")
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        return f"written by a newer nexor-mcp (journal format v{version}; this one reads v{VERSION})"
    if version != VERSION:
        return "not a journal line (no \"v\": 1)"
    if not isinstance(record.get("id"), str) or not record["id"]:
        return "no entry id"
    event = record.get("event")
    model: type[Intent | Outcome | Decision]
    if event == "intent":
        model = Intent
    elif event == "outcome":
        model = Outcome
    elif event == "decision":
        model = Decision
    else:
        return f"an unknown event {str(event)[:40]!r}"
    try:
        return model.model_validate(record)
    except ValidationError as error:
        if model is Outcome:
            return f"an outcome that is not one of {', '.join(OUTCOMES)}"
        if model is Decision:
            return f"a decision without a valid {error.errors()[0]['loc'][0]}"
        return f"an intent without {error.errors()[0]['loc'][0]}"


# --- ids and times ----------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def iso_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_entry_id(when: datetime | None = None) -> str:
    """Time first (so ids sort by time, to the microsecond), then 24 random bits."""
    when = when or now()
    return when.strftime("%Y%m%dT%H%M%S.%fZ") + "-" + random_source.token_hex(3)


# --- entries: an intent joined with its outcome ----------------------------------------------------


@dataclass
class Entry:
    """One write: its intent line, joined with its outcome line if there is one."""

    id: str
    time: str
    tool: str
    lead_id: str | None
    method: str
    path: str
    body: Any
    before: Json | None
    account: str | None
    undoes: str | None
    line: int
    """Where its intent line is in the file (1-based): the order the writes were made in."""
    outcome: str | None = None
    status: int | None = None
    detail: str | None = None
    after: Json | None = None
    finished: str | None = None

    @classmethod
    def of(cls, intent: Intent, line: int) -> Entry:
        return cls(
            id=intent.id, time=intent.time, tool=intent.tool, lead_id=intent.lead_id, method=intent.method,
            path=intent.path, body=intent.body, before=intent.before.as_json() if intent.before else None,
            account=intent.account, undoes=intent.undoes, line=line,
        )

    def finish(self, outcome: Outcome) -> None:
        self.outcome = outcome.outcome
        self.status = outcome.status
        self.detail = outcome.detail
        self.after = outcome.after.as_json() if outcome.after else None
        self.finished = outcome.time

    @cached_property
    def undo_record(self) -> UndoRecord | None:
        """The before-values, as `audit undo` reads them (None: none were recorded)."""
        return UndoRecord.read(self.before) if self.before else None

    @cached_property
    def written(self) -> Written:
        """What Nexor said the written values became (empty: it did not say)."""
        return Written.read(self.after) or Written()

    @property
    def shown_outcome(self) -> str:
        if self.outcome is None:
            return NO_OUTCOME
        return self.outcome + (f" (HTTP {self.status})" if self.status is not None else "")

    def as_json(self) -> Json:
        return {
            "id": self.id, "time": self.time, "tool": self.tool, "lead_id": self.lead_id, "method": self.method,
            "path": self.path, "body": self.body, "before": self.before, "account": self.account,
            "undoes": self.undoes, "outcome": self.outcome if self.outcome is not None else "unknown",
            "outcome_recorded": self.outcome is not None, "status": self.status, "detail": self.detail,
            "after": self.after, "finished": self.finished,
        }


@dataclass
class Contents:
    entries: list[Entry] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    """People's approvals and declines of confirmed calls, in order."""
    problems: list[str] = field(default_factory=list)
    """Lines that were skipped, and why."""
