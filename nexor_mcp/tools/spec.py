"""The declaration of a tool, and everything derived from it.

A tool is declared once, as a `ToolSpec`: its pydantic input model (field descriptions for the
model, strict types, `extra="forbid"`), its output schema, its group and hints, and what it does:
a read tool's `handler`, or a write tool's `request`, a pure function from its arguments to the
`Request` it sends (nexor_mcp/safety/ passes that value through the safety steps). From that
come the published `Tool` (portable JSON Schemas, annotations), the argument check (all problems
at once, in words a model can act on) and the README's tool table.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from mcp.types import Tool, ToolAnnotations
from pydantic import BaseModel, ConfigDict, ValidationError

from nexor_mcp import endpoints
from nexor_mcp.client import NexorClient, OnRetry
from nexor_mcp.json_types import Json
from nexor_mcp.request import Request
from nexor_mcp.rules import WRITES, always_idempotent
from nexor_mcp.tools.arguments import InvalidArguments, UnknownArgumentHints, render
from nexor_mcp.tools.preview import Previewer


class Group(StrEnum):
    """What a tool can cause; the unit in which tools are enabled."""

    READ = "read"  # reads only
    WRITE = "write"  # changes data in Nexor; nobody outside is contacted
    AUTOMATION = "automation"  # may make Nexor contact the lead or move it in the pipeline
    OUTREACH = "outreach"  # contacts a real person now


CONFIRMED = " Unless the operator turned it off, the user confirms it first (asked, or shown a preview and token)."
"""Said by every tool of a group that needs confirmation by default (config.CONFIRMABLE_GROUPS)."""
CONTROL_ARGUMENTS = frozenset({"dry_run", "if_unchanged_since", "confirmation"})
"""Arguments that steer nexor-mcp's write safety and are never sent to Nexor."""


class Arguments(BaseModel):
    """Base of every input model: strict types, no unknown arguments."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def payload(self, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """The arguments the caller gave, minus the control arguments and `exclude`: a request body."""
        return self.model_dump(exclude_unset=True, exclude={*CONTROL_ARGUMENTS, *exclude})


class CurrentLead:
    """The lead a call is about, as Nexor has it now: read with one GET the first time something
    asks (the tool's `resolve`, the stale-write guard, a preview), never before and never twice.
    None when the call names no lead or Nexor's answer holds none."""

    def __init__(self, client: NexorClient, lead_id: object, on_retry: OnRetry | None) -> None:
        self.client = client
        self.lead_id = lead_id if isinstance(lead_id, str) else None
        self._on_retry = on_retry
        self._read = False
        self._lead: Json | None = None

    async def get(self) -> Json | None:
        if not self._read and self.lead_id is not None:
            lead = (await self.client.call(endpoints.get_lead(self.lead_id), self._on_retry)).get("lead")
            self._lead = lead if isinstance(lead, dict) else None
        self._read = True
        return self._lead


A = TypeVar("A", bound=Arguments)
Handler = Callable[[NexorClient, A, OnRetry | None], Awaitable[Json]]
"""A read tool: (client, its arguments, told of retries) -> its result."""
SendMore = Callable[[Request], Awaitable[Json]]
"""Sends one more request of the same call, through the journal and the sender (not asked again:
the call was approved as a whole)."""
After = Callable[[A, Json, SendMore], Awaitable[Json]]
"""What a write tool makes of Nexor's answer: words for the model, the instants it sent, or a
second request (create_lead's PATCH)."""


@dataclass(frozen=True)
class ToolSpec(Generic[A]):
    """One tool, declared once."""

    name: str
    title: str
    description: str
    group: Group
    arguments: type[A]
    output_schema: dict[str, Any]
    handler: Handler[A] | None = None
    """A read tool's whole work."""
    request: Callable[[A], Request] | None = None
    """A write tool's request, built from its validated (and resolved) arguments; sends nothing."""
    after: After[A] | None = None
    destructive: bool = False
    writes: str | None = None
    """The Nexor endpoint a write tool sends, as `rules.WRITES` names it ("POST /meetings"). Its
    idempotentHint is derived from there (`rules.always_idempotent`), where the client also decides
    each request's idempotence from its body: idempotence is declared once, per endpoint."""
    hints: UnknownArgumentHints = field(default_factory=UnknownArgumentHints)
    preview: Previewer | None = None
    """What the write would do (write tools that take dry_run): see tools/preview.py."""
    undoable: bool = False
    """Its preview keeps the before-values `nexor-mcp audit undo` restores (read only when journaling)."""
    resolve: Callable[[A, CurrentLead], Awaitable[A]] | None = None
    """Fills in what the caller may leave to the lead's answer (a workflow_id from its active run)
    before the request is built, so the preview, the confirmation and the real call share one
    value; reads the lead only when it needs it. Raises `InvalidArguments` when it cannot."""

    def __post_init__(self) -> None:  # declaration bugs, caught at import
        if not self.read_only and self.writes not in WRITES:
            raise ValueError(f"{self.name}: writes={self.writes!r} is not one of rules.WRITES")
        declared = (self.handler is not None, self.request is not None)
        if declared != ((True, False) if self.read_only else (False, True)):
            raise ValueError(f"{self.name}: a read tool declares a handler, a write tool a request")

    @property
    def read_only(self) -> bool:
        return self.group is Group.READ

    @property
    def idempotent(self) -> bool:
        """Whether every call with the same arguments may be repeated safely (the idempotentHint)."""
        return self.writes is not None and always_idempotent(self.writes)

    def tool(self) -> Tool:
        """The `Tool` agents see in tools/list."""
        return Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=portable_schema(self.arguments.model_json_schema()),
            output_schema=self.output_schema,
            annotations=self.annotations(),
        )

    def annotations(self) -> ToolAnnotations:
        """Only the hints that say something, so tools/list stays under its size budget: the spec's
        defaults cover the rest (openWorldHint is true by default; destructive and idempotent hints
        mean nothing for a read-only tool), and Tool.title (2025-06-18 on) is not repeated here."""
        if self.read_only:
            return ToolAnnotations(read_only_hint=True)
        return ToolAnnotations(
            read_only_hint=False, destructive_hint=self.destructive, idempotent_hint=self.idempotent
        )

    def parse(self, arguments: dict[str, Any] | None) -> A:
        """The validated arguments; raises `InvalidArguments` naming every problem at once."""
        given = arguments or {}
        try:
            return self.arguments.model_validate(given)
        except ValidationError as error:
            descriptions = {
                name: info.description or "" for name, info in self.arguments.model_fields.items()
            }
            problems = render(self.name, error.errors(include_url=False), given, descriptions, self.hints)
            raise InvalidArguments(self.name, problems) from None


def portable_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's JSON Schema, made portable across hosts and short: `$ref`s inlined and `$defs`
    dropped (some hosts do not resolve them), no `title` noise and no `default: false`,
    `additionalProperties: false` kept."""
    definitions = schema.get("$defs", {})

    def visit(node: Any, *, in_properties: bool = False) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = definitions[node["$ref"].rsplit("/", 1)[-1]]
                merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
                return visit(merged)
            result: dict[str, Any] = {}
            for key, value in node.items():
                if key == "$defs" or (key == "title" and not in_properties):
                    continue
                if key == "default" and value is False and not in_properties:
                    continue  # an optional flag is off unless sent; its description says what true does
                result[key] = visit(value, in_properties=key == "properties")
            return result
        if isinstance(node, list):
            return [visit(item) for item in node]
        return node

    portable: dict[str, Any] = visit(schema)
    return portable
