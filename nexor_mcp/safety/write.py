"""The value that passes through the safety steps, and what a step is.

A `Write` is one call of a write tool with its request already built: the steps look at it, may
annotate it (the preview, worked out once, when a step first needs it) and either stop it with a
`Reply` or `Pending`, or hand it on. Only the end of the chain sends.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mcp.server import ServerRequestContext
from mcp.types import CallToolRequestParams
from pydantic import MISSING

from nexor_mcp.client import NexorClient, OnRetry
from nexor_mcp.confirm import Pending
from nexor_mcp.json_types import Json
from nexor_mcp.request import Request, Sent
from nexor_mcp.tools.preview import Preview, PreviewInputs
from nexor_mcp.tools.spec import Arguments, CurrentLead, ToolSpec


@dataclass(frozen=True)
class Reply:
    """A result that is not the tool's own answer: a dry run, a conflict, a refusal, a question."""

    structured: Json
    text: str
    is_error: bool = False


@dataclass(frozen=True)
class Call:
    """Where a call came from: the MCP request (for a question to the person), progress, masking."""

    ctx: ServerRequestContext[Any]
    params: CallToolRequestParams
    on_retry: OnRetry | None
    secrets: tuple[str, ...] = ()


@dataclass
class Write:
    """One call of a write tool on its way to Nexor. `follow_up`: a further request of a call that
    has already passed every step that decides once per call (create_lead's PATCH)."""

    spec: ToolSpec[Any]
    arguments: Arguments
    request: Request
    client: NexorClient
    lead: CurrentLead
    call: Call
    follow_up: bool = False
    _preview: Preview | None = field(default=None, repr=False)

    @property
    def dry_run(self) -> bool:
        return getattr(self.arguments, "dry_run", False) is True

    @property
    def since(self) -> Any:
        """`if_unchanged_since` as given, or MISSING."""
        return getattr(self.arguments, "if_unchanged_since", MISSING)

    async def preview(self) -> Preview:
        """What the write would do, worked out the first time a step needs it (a dry run, a
        question to a person, the journal's before-values) from the lead as it is now."""
        if self._preview is None:
            lead = await self.lead.get()
            if self.spec.preview is not None:
                self._preview = await self.spec.preview(self.arguments, PreviewInputs(lead, self.request, self.client))
            else:  # a tool without its own preview is still shown with the request it would send
                body = json.dumps(self.request.body, ensure_ascii=False)
                self._preview = Preview(summary=f"{self.spec.title}: {self.request.method} /{self.request.path} {body}")
        return self._preview


Outcome = Sent | Reply | Pending
GoOn = Callable[[Write], Awaitable[Outcome]]


class Step:
    """One safety step: `__call__` either returns a stop (a `Reply` or `Pending`) without calling
    `go_on`, or calls `go_on(write)` exactly once and returns what it gave. A step never sends and
    never builds the request again.

    `every_request`: the step also runs for a call's follow-up requests (the journal does; the
    checks that decide once per call do not)."""

    every_request: ClassVar[bool] = False

    async def __call__(self, write: Write, go_on: GoOn) -> Outcome:
        raise NotImplementedError


def request_view(request: Request) -> Json:
    """A request as a dry run, a question and the token way show it."""
    return {"method": request.method, "path": "/" + request.path, "body": request.body}
