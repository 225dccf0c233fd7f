"""A person's yes on a page of ours, which the model never sees: the approval page
(nexor_mcp/approvals/) reached by URL-mode elicitation, or opened by a stdio server itself.

Each call that needs one gets an approval: a row (in the database when NEXOR_DATABASE_URL is set,
so any replica serves the page and any replica takes the call that comes back; else in process
memory) holding the account, the tool, the exact request and the question, with an unguessable id
(256 bits). The id is in the page's URL, and the URL goes only to the client's browser prompt
(URL-mode elicitation) or to the person's browser (`webbrowser`): never into a tool result, an
error, a progress message or an INFO log line. Only a decision taken on the page (a POST carrying
the page's anti-forgery token, from the page's own origin) approves; the call then uses the
approval once, and only if it is for this account, this tool and this exact request.

Delivery, chosen per call (nexor_mcp/confirm.py asks first by form when the client can):
- URL-mode elicitation, 2025-11-25: `elicitation/create` with `mode: "url"`; the call waits for the
  decision on the page, then `notifications/elicitation/complete`;
- URL-mode elicitation, 2026-07-28: an `input_required` round trip whose `requestState` seals the
  approval's id (encrypted: the id itself never travels in it);
- over stdio with neither: the server opens the page in the person's default browser and waits,
  telling the client it is waiting (progress), up to NEXOR_APPROVAL_TIMEOUT seconds.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import secrets
import time
import webbrowser
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolRequestParams, ElicitRequest, ElicitRequestURLParams, InputRequiredResult

from nexor_mcp.account import FINGERPRINT_LENGTH
from nexor_mcp.json_types import Json
from nexor_mcp.retry import waiting_for_person

if TYPE_CHECKING:
    from nexor_mcp.confirm import Sealer

logger = logging.getLogger(__name__)

PAGE_PURPOSE = "p1"
"""What the `requestState` of a 2026-07-28 URL round trip is for (sealed into it)."""
APPROVAL_KEY = "approve"
POLL_SECONDS = 0.25
PROGRESS_SECONDS = 5.0
PageBase = Callable[[ServerRequestContext[Any]], Awaitable[str | None]]
"""The origin a call's approval page is served from (None: there is none)."""
NO_ADDRESS = "Not sent: there is no address to serve the approval page from. Nothing was sent."
PageWay = Literal["url_round_trip", "url_live", "opened_page", "none"]


@dataclass(frozen=True)
class Asked:
    """The call, as the approval binds it."""

    tool: str
    account: str
    method: str
    path: str
    body: Json | None
    question: str


@dataclass(frozen=True)
class Outcome:
    """How the page's part ended: approved (send, once), or a refusal's words for the model."""

    approved: bool
    text: str = ""
    how: str = ""
    declined: bool = False
    """The person said no on the page (as opposed to any other refusal)."""


class ApprovalDesk:
    """Issues approvals and waits for their decisions. `registry`: the approvals (a `Store`, or
    `approvals.MemoryApprovals`); `key`: seals ids and signs the pages' anti-forgery tokens (the
    confirmation key, shared by replicas); `page_base`: the origin the page is served from for this
    call (None when there is none); `opens_pages`: a stdio server, which may open the person's browser."""

    def __init__(
        self,
        registry: Any,
        key: bytes,
        page_base: PageBase,
        *,
        timeout_seconds: float,
        opens_pages: bool,
        open_page: Callable[[str], bool] = webbrowser.open,
    ) -> None:
        self.registry = registry
        self.key = key
        self.page_base = page_base
        self.timeout_seconds = timeout_seconds
        self.opens_pages = opens_pages
        self.open_page = open_page

    def way(self, ctx: ServerRequestContext[Any], *, modern: bool) -> PageWay:
        if _url_declared(ctx):
            if modern:
                return "url_round_trip"
            if ctx.session.can_send_request:
                return "url_live"
        if self.opens_pages and ctx.session.can_send_request:
            return "opened_page"
        return "none"

    async def _create(self, asked: Asked) -> str:
        create = functools.partial(
            self.registry.create_approval, account=asked.account[:FINGERPRINT_LENGTH], tool=asked.tool,
            method=asked.method, path=asked.path, body=asked.body, question=asked.question,
            expires_at=time.time() + self.timeout_seconds,
        )
        approval_id: str = await anyio.to_thread.run_sync(create)
        return approval_id

    async def _url(self, ctx: ServerRequestContext[Any], approval_id: str) -> str | None:
        base = await self.page_base(ctx)
        return None if base is None else f"{base.rstrip('/')}/approve/{approval_id}"

    async def live(self, ctx: ServerRequestContext[Any], asked: Asked, way: PageWay) -> Outcome:
        """URL-mode elicitation (2025-11-25) or the server-opened page: ask, then wait for the decision."""
        try:
            approval_id = await self._create(asked)
        except Exception as exc:  # StoreError: the approval cannot be kept, so it cannot be given
            logger.error("an approval could not be recorded (%s): the call is refused", exc)
            return Outcome(False, "Not sent: the approval could not be recorded (the database did not answer), "
                                  "so it cannot be asked for. Nothing was sent.")
        url = await self._url(ctx, approval_id)
        if url is None:
            return Outcome(False, NO_ADDRESS)
        how = "url" if way == "url_live" else "page"
        with anyio.move_on_after(self.timeout_seconds) as waited, waiting_for_person():
            if way == "url_live":
                elicitation_id = secrets.token_urlsafe(16)  # not the approval's id: that stays in the URL
                try:
                    answer = await ctx.session.elicit_url(
                        "Approve or decline this in your browser; nothing is sent unless you approve it there.",
                        url, elicitation_id, related_request_id=ctx.request_id,
                    )
                except MCPError as exc:
                    return Outcome(False, f"Not sent: the client could not open the approval page (error {exc.code}), "
                                          "which counts as no. Nothing was sent.")
                except Exception as exc:  # a broken connection or anything else: still a no (cancellation passes)
                    logger.warning("URL elicitation failed (%s): refused", type(exc).__name__)
                    return Outcome(False, f"Not sent: asking the client to open the approval page failed "
                                          f"({type(exc).__name__}), which counts as no. Nothing was sent.")
                if answer.action != "accept":
                    return Outcome(False, "Not sent: the user did not open the approval page. Nothing was sent.")
            else:
                opened = await anyio.to_thread.run_sync(self.open_page, url)
                if not opened:
                    logger.warning("no browser could be opened for an approval (set $BROWSER): the call is refused")
                    return Outcome(False, "Not sent: the approval page could not be opened in a browser on this "
                                          "machine (the user can set $BROWSER, or use a client that can ask "
                                          "them). Nothing was sent.")
            outcome = await self._decision(ctx, approval_id, asked, how)
            if way == "url_live":
                await ctx.session.send_elicit_complete(elicitation_id, related_request_id=ctx.request_id)
            return outcome
        if waited.cancelled_caught:
            return Outcome(False, f"Not sent: nobody decided on the approval page within {self.timeout_seconds:g} s. "
                                  "Nothing was sent.")
        return Outcome(False, "Not sent. Nothing was sent.")  # pragma: no cover - every path above returns

    async def _decision(self, ctx: ServerRequestContext[Any], approval_id: str, asked: Asked, how: str) -> Outcome:
        """Wait until the approval is decided on its page (or expires), telling the client we wait."""
        last_progress = time.monotonic()
        step = 0
        while True:
            found = await anyio.to_thread.run_sync(self.registry.get_approval, approval_id)
            if found is None or found.state != "pending":
                return await self._settle(found, asked, how)
            if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                step += 1
                last_progress = time.monotonic()
                await ctx.session.report_progress(step, None, "waiting for the user's decision on the approval page")
            await anyio.sleep(POLL_SECONDS)

    async def _settle(self, found: Any, asked: Asked, how: str) -> Outcome:
        """The decided approval, as an outcome: approved ones are used here, once."""
        if found is None:
            return Outcome(False, "Not sent: the approval is unknown here (it may have expired). Nothing was sent.")
        if found.state == "declined":
            return Outcome(False, "Not sent: the user declined it on the approval page. Nothing was sent; do not "
                                  "retry unless the user asks again.", how=how, declined=True)
        if found.state in ("expired", "pending"):
            return Outcome(False, "Not sent: the approval expired before it was decided. Nothing was sent.")
        if found.state == "used":
            return Outcome(False, "Not sent: this approval was already used once. Nothing was sent.")
        if (found.account, found.tool, found.method, found.path, found.body) != (
            asked.account[:FINGERPRINT_LENGTH], asked.tool, asked.method, asked.path, asked.body
        ):
            return Outcome(False, "Not sent: the approval was given for another call. Nothing was sent.")
        used = await anyio.to_thread.run_sync(self.registry.use_approval, found.id)
        if not used:
            return Outcome(False, "Not sent: this approval was already used (or expired). Nothing was sent.")
        return Outcome(True, how=how)

    async def round_trip(
        self, ctx: ServerRequestContext[Any], params: CallToolRequestParams, asked: Asked, sealer: Sealer
    ) -> Outcome | InputRequiredResult:
        """2026-07-28: ask in an `input_required` result; decide when the call comes back. The
        requestState is sealed for this call and its approval (single use, like a token)."""
        bound = _bound(asked)
        if params.request_state is None and not params.input_responses:
            try:
                approval_id = await self._create(asked)
            except Exception as exc:
                logger.error("an approval could not be recorded (%s): the call is refused", exc)
                return Outcome(False, "Not sent: the approval could not be recorded (the database did not answer). "
                                      "Nothing was sent.")
            return await self._ask_in_round_trip(ctx, asked, sealer, approval_id, bound)
        if params.request_state is None:
            return Outcome(False, "Not sent: the call came back without its requestState, so the approval cannot "
                                  "be checked. Nothing was sent.")
        carried = _hidden_in(params.request_state)
        if carried is None:
            return Outcome(False, "Not sent: the requestState is not one of this server's. Nothing was sent.")
        sealed = params.request_state.rsplit(".", 1)[0]
        refused = await sealer.redeem(sealed, PAGE_PURPOSE, asked.tool, {**bound, "(approval)": carried}, asked.account)
        if refused:
            return Outcome(False, f"Not sent: the approval could not be checked because {refused}. Nothing was sent.")
        approval_id = self._reveal(carried)
        found = await anyio.to_thread.run_sync(self.registry.get_approval, approval_id)
        if found is not None and found.state == "pending":  # came back before the person decided: ask again
            return await self._ask_in_round_trip(ctx, asked, sealer, approval_id, bound)
        return await self._settle(found, asked, "url")

    async def _ask_in_round_trip(
        self, ctx: ServerRequestContext[Any], asked: Asked, sealer: Sealer, approval_id: str, bound: Json
    ) -> Outcome | InputRequiredResult:
        """The `input_required` answer that sends the person to the page (its state sealed, single use)."""
        url = await self._url(ctx, approval_id)
        if url is None:
            return Outcome(False, NO_ADDRESS)
        request = ElicitRequest(params=ElicitRequestURLParams(
            message="Approve or decline this in your browser; nothing is sent unless you approve it there.",
            url=url, elicitation_id=secrets.token_urlsafe(16),
        ))
        hidden = self._hide(approval_id)
        state = sealer.issue(PAGE_PURPOSE, asked.tool, {**bound, "(approval)": hidden}, asked.account)
        return InputRequiredResult(input_requests={APPROVAL_KEY: request}, request_state=f"{state}.{hidden}")

    # The approval's id travels in the requestState only encrypted (a one-time pad from HMAC-SHA256
    # under the key and a random nonce), so nothing a client or model can read holds the page's link.

    def _hide(self, approval_id: str) -> str:
        nonce = secrets.token_bytes(16)
        data = approval_id.encode()
        pad = _pad(self.key, nonce, len(data))
        return _b64(nonce + bytes(a ^ b for a, b in zip(data, pad, strict=True)))

    def _reveal(self, hidden: str) -> str:
        raw = base64.urlsafe_b64decode(hidden + "=" * (-len(hidden) % 4))
        nonce, data = raw[:16], raw[16:]
        pad = _pad(self.key, nonce, len(data))
        return bytes(a ^ b for a, b in zip(data, pad, strict=True)).decode()


def _pad(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = b""
    counter = 0
    while len(blocks) < length:
        blocks += hmac.new(key, b"approval-id" + nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return blocks[:length]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _bound(asked: Asked) -> Json:
    return {"(method)": asked.method, "(path)": asked.path, "(body)": asked.body, "(question)": asked.question}


def _hidden_in(state: str) -> str | None:
    """The sealed requestState's hidden approval id (the seal itself is checked by `unseal`)."""
    parts = state.split(".")
    return parts[3] if len(parts) == 4 and parts[0] == PAGE_PURPOSE else None


def _url_declared(ctx: ServerRequestContext[Any]) -> bool:
    capabilities = ctx.session.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and elicitation.url is not None
