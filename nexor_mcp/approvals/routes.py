"""The approval page over HTTP, as Starlette routes: hosted mode mounts them in its app, a stdio
server serves them on loopback (`local.py`).

`GET {prefix}/{id}` only shows; only a `POST` from the page itself decides. The page's form carries
an anti-forgery token, an HMAC-SHA256 of the approval id under the server's key (deterministic, so
every replica that shares the key accepts it), and the POST must come from the page's own origin
as the browser reports it (`Origin`, `Sec-Fetch-Site`). So a model that fetches the link (a GET),
another site's form, or a request made without the page's token decides nothing.

A POST that carries no `Origin` at all is refused unless the browser says `Sec-Fetch-Site:
same-origin`: every current browser sends `Origin` with a form POST, and a request without
either header did not come from the page in a browser.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from typing import Final

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from nexor_mcp.approvals import page
from nexor_mcp.approvals.registry import ApprovalStore
from nexor_mcp.store.base import Approval, StoreError

logger = logging.getLogger(__name__)

DECIDED_BY: Final = "browser page"
"""What `decide_approval` records as the decider for a decision made on the page."""
MAX_FORM_BYTES: Final = 4096
"""The form is an id-sized token and one word; a larger body is refused unread (413)."""
_TOKEN_PURPOSE = b"nexor-mcp approval page v1\x00"
_SHOWN_PURPOSE = b"nexor-mcp approval decided here v1\x00"
_SHOWN_COOKIE = "nexor_mcp_decided"
_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")
"""What an approval id can look like (`secrets.token_urlsafe(32)` makes 43 such characters)."""
_SAME_ORIGIN_SITES = frozenset({"same-origin", "none"})

OnDecided = Callable[[str, bool], None]
"""Told (approval id, approved) right after the page decided an approval, in the event loop that
served the POST: must not block (set an event, wake a waiter)."""

SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    # Not `no-referrer`: under that policy a browser sends `Origin: null` with the page's own form
    # POST (Fetch, "serializing a request origin"), which the origin check must refuse. With
    # `same-origin` the page's link is still never sent to another site (and it links to none).
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Robots-Tag": "noindex, nofollow",
}


def approval_token(key: bytes, approval_id: str) -> str:
    """The page's anti-forgery token for `approval_id`: HMAC-SHA256 under `key`, hex."""
    return hmac.new(key, _TOKEN_PURPOSE + approval_id.encode(), hashlib.sha256).hexdigest()


def _shown_mark(key: bytes, approval_id: str) -> str:
    """The cookie value that tells the GET after a decision to say "Approved: ... now" rather than
    "already decided" (it only picks the wording; the state always comes from the store)."""
    return hmac.new(key, _SHOWN_PURPOSE + approval_id.encode(), hashlib.sha256).hexdigest()[:32]


def html_response(content: str, status_code: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """An HTML page with the page's security headers."""
    return HTMLResponse(content, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})})


class ApprovalPages:
    """The handlers behind `approval_routes` (see there)."""

    def __init__(
        self,
        approvals: ApprovalStore,
        key: bytes,
        *,
        prefix: str = "/approve",
        on_decided: OnDecided | None = None,
        allowed_hosts: Collection[str] | None = None,
        trusted_origins: Collection[str] = (),
    ) -> None:
        if len(key) < 16:
            raise ValueError("the approval page's key must be at least 16 bytes")
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"prefix must start with / and not end with it: {prefix!r}")
        self.approvals = approvals
        self.key = key
        self.prefix = prefix
        self.on_decided = on_decided
        self.allowed_hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        self.trusted_origins = frozenset(origin.lower().rstrip("/") for origin in trusted_origins)

    def routes(self) -> list[Route]:
        return [Route(f"{self.prefix}/{{approval_id}}", self.endpoint, methods=["GET", "POST"],
                      name="nexor_mcp_approval")]

    async def endpoint(self, request: Request) -> Response:
        if self.allowed_hosts is not None and not _listed(request.headers.get("host", "").lower(), self.allowed_hosts):
            return html_response(page.problem_page(
                "Wrong address", "This server answers only at the address it gave (its Host is not one of them)."),
                421)
        approval_id = request.path_params["approval_id"]
        if request.method == "POST":
            return await self.decide(request, approval_id)
        return await self.show(request, approval_id)

    async def _get(self, approval_id: str) -> Approval | None:
        if not _ID.fullmatch(approval_id):
            return None
        return await anyio.to_thread.run_sync(self.approvals.get_approval, approval_id)

    async def show(self, request: Request, approval_id: str) -> Response:
        """GET (and HEAD): the page for the approval's state now. Never changes anything."""
        try:
            approval = await self._get(approval_id)
        except StoreError as error:
            return _unavailable(error)
        if approval is None:
            return html_response(page.not_found_page(), 404)
        shown_here = hmac.compare_digest(request.cookies.get(_SHOWN_COOKIE, ""), _shown_mark(self.key, approval_id))
        response = html_response(page.page_for(
            approval, token=approval_token(self.key, approval_id), action=request.url.path,
            just_decided=shown_here and approval.state in ("approved", "declined", "used"),
        ))
        if shown_here:  # said once; a reload says "already decided"
            response.delete_cookie(_SHOWN_COOKIE, path=request.url.path, httponly=True, samesite="strict")
        return response

    async def decide(self, request: Request, approval_id: str) -> Response:
        """POST: decide once, if the form came from the page itself; then 303 to the GET."""
        back = request.url.path
        refused = self._refusal(request)
        if refused is not None:
            return html_response(page.refused_page(refused, back=back), 403)
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            return html_response(page.problem_page("Not the approval form", "Nothing was decided."), 400)
        if declared is not None and int(declared) > MAX_FORM_BYTES:
            return html_response(page.problem_page("Request too large", "Nothing was decided."), 413)
        received = bytearray()
        async for chunk in request.stream():
            received += chunk
            if len(received) > MAX_FORM_BYTES:
                return html_response(page.problem_page("Request too large", "Nothing was decided."), 413)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return html_response(page.problem_page("Not the approval form", "Nothing was decided."), 415)
        try:
            fields = urllib.parse.parse_qs(received.decode("utf-8"), keep_blank_values=True, max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            fields = {}
        tokens, decisions = fields.get("token", []), fields.get("decision", [])
        if len(tokens) != 1 or not hmac.compare_digest(tokens[0].encode(), approval_token(self.key, approval_id)
                                                       .encode()):
            reason = ("It carried no approval token." if not tokens else
                      "Its approval token is not this page's.")
            return html_response(page.refused_page(reason, back=back), 403)
        if len(decisions) != 1 or decisions[0] not in ("approve", "decline"):
            return html_response(page.problem_page("Not a decision", "Nothing was decided: the form said neither "
                                                   "Approve nor Decline."), 400)
        approved = decisions[0] == "approve"
        try:
            if await self._get(approval_id) is None:
                return html_response(page.not_found_page(), 404)
            decided = await anyio.to_thread.run_sync(
                lambda: self.approvals.decide_approval(approval_id, approved, DECIDED_BY, time.time()))
            if not decided:  # already decided, or expired (recorded so by decide_approval)
                now = await self._get(approval_id)
                if now is None:
                    return html_response(page.not_found_page(), 404)
                notice = ("Nothing more was done: this request had already been decided."
                          if now.state != "expired" else "Your decision was not recorded: the request had expired.")
                return html_response(page.page_for(now, token="", action=back, notice=notice), 409)
        except StoreError as error:
            return _unavailable(error)
        self._tell(approval_id, approved)
        response = RedirectResponse(back, status_code=303, headers=dict(SECURITY_HEADERS))
        response.set_cookie(_SHOWN_COOKIE, _shown_mark(self.key, approval_id), max_age=120, path=back,
                            secure=request.url.scheme == "https", httponly=True, samesite="strict")
        return response

    def _refusal(self, request: Request) -> str | None:
        """Why this POST did not come from the page in a browser (None: it did)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site.lower() not in _SAME_ORIGIN_SITES:
            return f"It was sent from another site (Sec-Fetch-Site: {site})."
        origin = request.headers.get("origin")
        if origin is None:
            if site is not None and site.lower() == "same-origin":
                return None
            return "It did not say which page it came from (no Origin header)."
        own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
        claimed = origin.lower().rstrip("/")
        if claimed != own and not _listed(claimed, self.trusted_origins):
            return f"It came from another origin ({origin}), not from this page."
        return None

    def _tell(self, approval_id: str, approved: bool) -> None:
        if self.on_decided is None:
            return
        try:
            self.on_decided(approval_id, approved)
        except Exception:  # the decision is recorded; a waiter that polls still learns of it
            logger.exception("the approval page's on_decided callback failed")


def _listed(value: str, allowed: frozenset[str]) -> bool:
    """`value` is in `allowed`, where `name:*` stands for `name` with any port (as in the MCP SDK's
    DNS-rebinding settings, so hosted mode can pass the same list as for /mcp)."""
    if value in allowed:
        return True
    name, _, port = value.rpartition(":")
    return bool(name) and port.isdigit() and f"{name}:*" in allowed


def _unavailable(error: StoreError) -> Response:
    logger.warning("approval page: the store did not answer: %s", error)
    return html_response(page.problem_page("Try again in a moment",
                                           "The approvals could not be read just now, so nothing was decided."), 503)


def approval_routes(
    approvals: ApprovalStore,
    key: bytes,
    *,
    prefix: str = "/approve",
    on_decided: OnDecided | None = None,
    allowed_hosts: Collection[str] | None = None,
    trusted_origins: Collection[str] = (),
) -> list[Route]:
    """`GET` and `POST {prefix}/{approval_id}`: the approval page, and the decision made on it.

    - `key` (16+ bytes) seals the page's anti-forgery token; replicas that share it accept each
      other's pages.
    - `on_decided(approval_id, approved)` is called once, after a decision is recorded, in the event
      loop that served it (must not block). It only hears of decisions made by this process: with
      several replicas, poll `get_approval` as well.
    - `allowed_hosts`: when given, a request whose `Host` is not one of them is refused (421), the
      DNS-rebinding guard for an app that has none of its own; `127.0.0.1:*` allows any port.
    - `trusted_origins`: origins (`https://crm.example.com`, or `http://localhost:*`) accepted
      besides the request's own `scheme://Host`, for a server behind a proxy that terminates TLS.
    """
    return ApprovalPages(approvals, key, prefix=prefix, on_decided=on_decided, allowed_hosts=allowed_hosts,
                         trusted_origins=trusted_origins).routes()


__all__ = [
    "DECIDED_BY",
    "MAX_FORM_BYTES",
    "SECURITY_HEADERS",
    "ApprovalPages",
    "OnDecided",
    "approval_routes",
    "approval_token",
    "html_response",
]
