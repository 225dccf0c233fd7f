"""The Nexor REST client: one pooled HTTP connection set, typed errors, lenient response parsing.

All HTTP policy (headers, timeouts, body cap, status mapping) lives here, so the MCP layer only
turns a result or a `NexorError` into a tool result.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from nexor_mcp import __version__, metrics, outbound, sender
from nexor_mcp.account import account_fingerprint, account_id
from nexor_mcp.audit import Journal, JournalError
from nexor_mcp.config import Secret, Settings
from nexor_mcp.errors import (
    ApiConnectionError,
    ApiStatusError,
    ApiTimeout,
    Effect,
    InvalidResponse,
    JournalUnwritable,
    MissingApiKey,
    NexorError,
    RequestTooLarge,
    UnreadableAnswer,
    api_error_text,
    describe_body,
    lead_effect,
    reading,
    status_error,
    writing,
)
from nexor_mcp.json_types import Json
from nexor_mcp.masking import clean_text
from nexor_mcp.retry import CallDeadline, RetryPolicy, current_deadline
from nexor_mcp.rules import is_idempotent

if TYPE_CHECKING:
    import httpx2

logger = logging.getLogger(__name__)

USER_AGENT = f"nexor-mcp/{__version__}"
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_REQUEST_BYTES = 256 * 1024
"""Most UTF-8 bytes of JSON one request body may hold: a body this big is a mistake, and Nexor would
store it. Tools check their own bodies first with a message naming the argument; this is the net
under every write (a template's components, a list of attendees)."""
MAX_RESPONSE_DEPTH = 64
"""Deeper JSON than any lead needs; refusing it keeps every later step (and the SDK) off deep recursion."""
CONNECT_TIMEOUT_SECONDS = 10.0
CHECK_NETWORK = "Check NEXOR_BASE_URL and the network, then try again."

OnRetry = Callable[[int, float, str], Awaitable[None]]
"""Told before each retry wait: the attempt that failed (1-based), the delay in seconds, the reason."""


@dataclass(frozen=True, slots=True)
class Request:
    """One call to Nexor, with what the retry policy and the error wording need to know about it.

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
    any_json_under: str | None = None
    """For an endpoint whose answer is undocumented: a 2xx whose JSON is not an object (a bare list,
    a string) is read as `{any_json_under: that JSON}` instead of being refused."""


class WouldSend(Exception):
    """Raised by a previewing client in place of sending a write."""

    def __init__(self, request: Request) -> None:
        super().__init__(request.method, request.path)
        self.request = request


SENDER: Literal["pool", "httpx"] = "pool"
"""Which `sender.Sender` carries every Nexor request (bench/RESULTS.md, "The sender, measured again"). Not
a setting: the benchmark switches it to measure both in one run."""


class _SharedSender:
    """The one sender of the process, made on first use (start-up stays fast). It holds no
    credential: the key goes on each request, so clients for different accounts share it.

    `transport`: an httpx2 transport (`httpx2.MockTransport` in tests) that answers instead of the
    network, through `sender.HttpxSender`."""

    def __init__(self, settings: Settings, transport: httpx2.AsyncBaseTransport | None) -> None:
        self._settings = settings
        self._transport = transport
        self._sender: sender.Sender | None = None

    def get(self) -> sender.Sender:
        if self._sender is None:
            base_url = self._settings.base_url
            headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
            connect_timeout = min(self._settings.timeout_seconds, CONNECT_TIMEOUT_SECONDS)
            # Up to 200 requests in flight, and up to 100 idle connections kept for reuse.
            if SENDER == "pool" and self._transport is None:
                # An https:// or socks5:// proxy from the environment: httpx2 speaks those.
                with contextlib.suppress(outbound.UnsupportedProxy):
                    self._sender = outbound.Pool(base_url, headers=headers, connect_timeout=connect_timeout)
            if self._sender is None:
                self._sender = sender.HttpxSender(base_url, headers=headers, connect_timeout=connect_timeout,
                                                  transport=self._transport)
        return self._sender

    async def aclose(self) -> None:
        if self._sender is not None:
            await self._sender.aclose()
            self._sender = None


class NexorClient:
    """Async client for the lead endpoints of one Nexor account (one API key)."""

    def __init__(self, settings: Settings, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._api_key = settings.api_key
        self._outbound = _SharedSender(settings, transport)
        self._policy = RetryPolicy(settings.max_retries)
        self._previewing = False
        self._audit: _Audit | None = None

    def previewing(self) -> NexorClient:
        """A copy that reads as usual but, instead of sending a write, raises `WouldSend` with it:
        what a dry run shows is then exactly the request the real call sends."""
        other = copy.copy(self)
        other._previewing = True
        return other

    def journaled(
        self, journal: Journal, *, tool: str, lead_id: str | None, before: Json | None, undoes: str | None = None
    ) -> NexorClient:
        """A copy whose every write is recorded in `journal`: an intent line before it is sent (if
        that line cannot be written, `JournalUnwritable` and nothing is sent), an outcome line after.
        One copy per tool call: `tool`, `lead_id` and `before` describe that call. Reads are not
        journaled."""
        other = copy.copy(self)
        other._audit = _Audit(journal, tool, lead_id, before, undoes)
        return other

    def about_lead(self, lead_id: str) -> NexorClient:
        """A copy whose journal entries name `lead_id`: for the writes a call makes on a lead it has
        just created (the call itself named none)."""
        if self._audit is None:
            return self
        other = copy.copy(self)
        other._audit = dataclasses.replace(self._audit, lead_id=lead_id)
        return other

    def with_key(self, api_key: Secret) -> NexorClient:
        """A client for another account that shares this one's connection pool (hosted mode: one
        per request, for that request only)."""
        other = copy.copy(self)
        other._api_key = api_key
        return other

    def __repr__(self) -> str:
        return f"NexorClient(base_url={self._settings.base_url!r})"

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    @property
    def account(self) -> str:
        """A one-way digest of the key (SHA-256, hex) that tells accounts apart without revealing
        the key: what confirmations are bound to and the audit journal records."""
        return account_id(self._api_key)

    async def aclose(self) -> None:
        await self._outbound.aclose()

    async def get_lead(self, lead_id: str, on_retry: OnRetry | None = None) -> Json:
        """GET /leads/{id}; returns `{"lead": {...}, ...}` whichever shape Nexor used."""
        request = Request("GET", f"leads/{lead_id}", lead_effect(lead_id, writes=False), idempotent=True)
        status, body = await self.send(request, on_retry)
        result = _lead_result(status, body)
        if "variables" in result and result["variables"] in (None, []):
            result["variables"] = {}  # "none" in the documented shape, whichever way Nexor said it
        return result

    async def update_lead(self, lead_id: str, changes: Json, on_retry: OnRetry | None = None) -> Json:
        """PATCH /leads/{id} with exactly `changes`; returns `{"lead": {...}}`.

        A 2xx whose body cannot be read (204, empty, not JSON, too large, no lead) still means Nexor
        accepted the change: that is returned as `{"lead": None, "accepted": True, "message": ...}`,
        never as a failure that would invite the agent to send the write again.
        """
        request = Request(
            "PATCH", f"leads/{lead_id}", lead_effect(lead_id, writes=True),
            idempotent=is_idempotent("PATCH /leads/{id}", changes), body=changes,
        )
        return await self._write(
            request, on_retry, _lead_result, "update", "call get_lead to see the current state", lead=True
        )

    # --- reads -----------------------------------------------------------------------------------

    async def get_lead_history(
        self, lead_id: str, channels: list[str] | None, limit: int, offset: int, on_retry: OnRetry | None = None
    ) -> Json:
        """GET /leads/{id}/history; `next_offset` is None once fewer than `limit` items came back."""
        query = {"limit": str(limit), "offset": str(offset)}
        if channels:
            query["channel"] = ",".join(channels)
        request = Request(
            "GET", f"leads/{lead_id}/history", lead_effect(lead_id, writes=False), idempotent=True, query=query
        )
        status, body = await self.send(request, on_retry)
        history = _list_in(status, body, "history")
        lead = body.get("lead")
        return {
            "lead": lead if isinstance(lead, dict) else None,
            "history": history,
            "next_offset": offset + len(history) if len(history) >= limit else None,
        }

    async def get_lead_meetings(
        self, lead_id: str, statuses: list[str] | None, on_retry: OnRetry | None = None
    ) -> Json:
        """GET /leads/{id}/meetings, most recent first."""
        query = {"status": ",".join(statuses)} if statuses else None
        request = Request(
            "GET", f"leads/{lead_id}/meetings", lead_effect(lead_id, writes=False), idempotent=True, query=query
        )
        status, body = await self.send(request, on_retry)
        return {"meetings": _list_in(status, body, "meetings")}

    async def get_automation_status(
        self, lead_id: str, workflow_id: str | None, on_retry: OnRetry | None = None
    ) -> Json:
        """GET /leads/{id}/is_paused: whether a human has taken over (the AI is stopped)."""
        query = {"workflow_id": workflow_id} if workflow_id else None
        request = Request(
            "GET", f"leads/{lead_id}/is_paused", lead_effect(lead_id, writes=False), idempotent=True, query=query
        )
        status, body = await self.send(request, on_retry)
        paused = body.get("paused")
        if not isinstance(paused, bool):
            raise UnreadableAnswer(status, "has no paused true/false in it")
        return {"paused": paused}

    async def list_tags(self, search: str | None, on_retry: OnRetry | None = None) -> Json:
        """GET /tags (Nexor answers `{"data": [...]}`)."""
        query = {"search": search} if search else None
        request = Request(
            "GET", "tags", reading("Nexor found no tags endpoint", CHECK_BASE_URL), idempotent=True, query=query
        )
        status, body = await self.send(request, on_retry)
        return {"tags": _list_in(status, body, "data", "tags")}

    async def get_lead_tags(self, lead_id: str, on_retry: OnRetry | None = None) -> Json:
        """GET /leads/{id}/tags (`{"data": [{id, name, slug}]}`): for a lead whose answer has no `tags`."""
        request = Request("GET", f"leads/{lead_id}/tags", lead_effect(lead_id, writes=False), idempotent=True)
        status, body = await self.send(request, on_retry)
        return {"tags": _list_in(status, body, "data", "tags")}

    async def list_templates(
        self, template_status: str | None, category: str | None, on_retry: OnRetry | None = None
    ) -> Json:
        """GET /templates: the WhatsApp templates synced from Meta."""
        query = {key: value for key, value in (("status", template_status), ("category", category)) if value}
        effect = reading("Nexor found no templates endpoint", CHECK_BASE_URL)
        request = Request("GET", "templates", effect, idempotent=True, query=query or None)
        status, body = await self.send(request, on_retry)
        return {"templates": _list_in(status, body, "templates", "data")}

    async def list_workflows(self, on_retry: OnRetry | None = None) -> Json:
        """GET /workflows: documented only by reference, so whatever JSON comes back (an object, a
        bare list, anything) is passed through under `workflows`."""
        effect = reading("Nexor found no workflows endpoint", CHECK_BASE_URL)
        request = Request("GET", "workflows", effect, idempotent=True, any_json_under="workflows")
        _, body = await self.send(request, on_retry)
        for key in ("workflows", "data"):
            if key in body:
                return {"workflows": body[key]}
        return {"workflows": {key: value for key, value in body.items() if key != "success"}}

    # --- writes ----------------------------------------------------------------------------------

    async def create_lead(self, lead: Json, on_retry: OnRetry | None = None) -> Json:
        """POST /leads with one lead. Never retried: Nexor does not deduplicate leads."""
        idempotent = is_idempotent("POST /leads", lead)
        effect = writing(
            "Nexor found no leads endpoint", CHECK_BASE_URL, action="lead creation", idempotent=idempotent,
            verify="ask the user to look for the lead in Nexor (a duplicate would be a second lead)",
        )
        return await self._write(
            Request("POST", "leads", effect, idempotent=idempotent, body=lead), on_retry, _lead_result,
            "lead creation", "its id could not be read, so ask the user to find the new lead in Nexor", lead=True,
        )

    async def add_lead_tags(self, lead_id: str, tag_ids: list[str], on_retry: OnRetry | None = None) -> Json:
        """POST /leads/{id}/tags with `tagIds`: tags already on the lead are skipped, so it is idempotent."""
        idempotent = is_idempotent("POST /leads/{id}/tags", {"tagIds": tag_ids})
        effect = _lead_write(
            lead_id, "tagging", idempotent=idempotent, verify="list the lead's tags with get_lead",
            also="a tag id is not in this account", check="Check the lead_id and the tag ids (list_tags lists them)",
        )
        return await self._write(
            Request("POST", f"leads/{lead_id}/tags", effect, idempotent=idempotent, body={"tagIds": tag_ids}), on_retry,
            lambda status, body: {"tags": _list_in(status, body, "data", "tags")},
            "tagging", "call get_lead to see the lead's tags",
        )

    async def set_lead_tags(self, lead_id: str, tags: list[str], on_retry: OnRetry | None = None) -> Json:
        """PUT /leads/tags: the lead's whole tag set becomes `tags` (names; missing ones are created)."""
        tag_set: Json = {"lead_id": lead_id, "tags": tags}
        idempotent = is_idempotent("PUT /leads/tags", tag_set)
        effect = _lead_write(lead_id, "tag change", idempotent=idempotent, verify="read the lead's tags with get_lead")
        return await self._write(
            Request("PUT", "leads/tags", effect, idempotent=idempotent, body=tag_set), on_retry,
            lambda status, body: {
                "tags": _list_in(status, body, "tags"),
                "added": _optional_list(body, "added"),
                "removed": _optional_list(body, "removed"),
            },
            "tag change", "call get_lead to see the lead's tags",
        )

    async def stop_automation(self, lead_id: str, workflow_id: str, on_retry: OnRetry | None = None) -> Json:
        """POST /leads/{id}/automation/stop: human takeover. Idempotent on Nexor's side."""
        return await self._automation(lead_id, "stop", {"workflow_id": workflow_id}, "takeover", on_retry)

    async def resume_automation(
        self, lead_id: str, workflow_id: str, resume_cadence: bool, on_retry: OnRetry | None = None
    ) -> Json:
        """POST /leads/{id}/automation/resume. Idempotent on Nexor's side."""
        body = {"workflow_id": workflow_id, "resume_cadence": resume_cadence}
        return await self._automation(lead_id, "resume", body, "resume", on_retry)

    async def _automation(self, lead_id: str, verb: str, body: Json, action: str, on_retry: OnRetry | None) -> Json:
        idempotent = is_idempotent(f"POST /leads/{{id}}/automation/{verb}", body)
        effect = writing(
            "Nexor found no active workflow run for this lead and workflow", AUTOMATION_CHECK,
            action=action, idempotent=idempotent, verify="check with get_automation_status",
        )
        request = Request("POST", f"leads/{lead_id}/automation/{verb}", effect, idempotent=idempotent, body=body)
        return await self._write(request, on_retry, _passed_through, action, "call get_automation_status to see it")

    async def record_meeting(self, meeting: Json, on_retry: OnRetry | None = None) -> Json:
        """POST /meetings: a meeting booked outside Nexor. Retried only when Nexor can deduplicate it
        (an external calendar provider and event id were given)."""
        idempotent = is_idempotent("POST /meetings", meeting)
        effect = writing(
            f"No lead with id {meeting.get('lead_id')} exists in this Nexor account",
            "Check the lead_id (create the lead first if it is new)",
            action="meeting", idempotent=idempotent, verify="list the lead's meetings with get_lead_meetings",
        )
        request = Request("POST", "meetings", effect, idempotent=idempotent, body=meeting)
        return await self._write(request, on_retry, _passed_through, "meeting", "call get_lead_meetings to see it")

    async def assign_workflow(
        self, lead_id: str, workflow_id: str, reason: str | None, on_retry: OnRetry | None = None
    ) -> Json:
        """POST /leads/{id}/assign-workflow (camelCase body). Not idempotent: a second call reassigns."""
        body: Json = {"workflowId": workflow_id}
        if reason is not None:
            body["reason"] = reason
        idempotent = is_idempotent("POST /leads/{id}/assign-workflow", body)
        effect = _lead_write(
            lead_id, "workflow assignment", idempotent=idempotent, verify="read the lead with get_lead",
            also="the workflow is not in this account",
            check="Check the lead_id and the workflow_id (list_workflows lists them)",
        )
        request = Request("POST", f"leads/{lead_id}/assign-workflow", effect, idempotent=idempotent, body=body)
        return await self._write(request, on_retry, _passed_through, "workflow assignment", LEAD_RUN_STEP)

    async def set_lead_status(self, lead_id: str, body: Json, on_retry: OnRetry | None = None) -> Json:
        """POST /leads/{id}/status. Setting the status it already has changes nothing: idempotent."""
        idempotent = is_idempotent("POST /leads/{id}/status", body)
        effect = _lead_write(
            lead_id, "status change", idempotent=idempotent, verify="read the lead with get_lead",
            also="the lead has no active workflow run",
            check="Check the lead_id; its status lives in an active workflow run (get_lead shows it, "
            "assign_workflow enrolls one)",
        )
        request = Request("POST", f"leads/{lead_id}/status", effect, idempotent=idempotent, body=body)
        return await self._write(request, on_retry, _passed_through, "status change", LEAD_RUN_STEP)

    async def send_message(self, message: Json, on_retry: OnRetry | None = None) -> Json:
        """POST /messages: contacts a real person. Never retried: a retry could send it twice."""
        idempotent = is_idempotent("POST /messages", message)
        effect = writing(
            f"No lead with id {message.get('lead_id')} (or no such workflow) exists in this Nexor account",
            "Check lead_id and workflow_id",
            action="message", idempotent=idempotent, verify="read the conversation with get_lead_history",
        )
        request = Request("POST", "messages", effect, idempotent=idempotent, body=message)
        return await self._write(request, on_retry, _passed_through, "message", "call get_lead_history to see it")

    async def _write(
        self,
        request: Request,
        on_retry: OnRetry | None,
        parse: Callable[[int, Json], Json],
        change: str,
        next_step: str,
        *,
        lead: bool = False,
    ) -> Json:
        """Send a write; a 2xx whose answer cannot be read is the accepted outcome, never a failure."""
        if self._previewing:
            raise WouldSend(request)
        if self._audit is not None:
            return await self._journaled_write(self._audit, request, on_retry, parse, change, next_step, lead=lead)
        try:
            status, body = await self.send(request, on_retry)
            return parse(status, body)
        except UnreadableAnswer as unreadable:
            return accepted_unreadable(unreadable, change, next_step, lead=lead)

    async def _journaled_write(
        self,
        audit: _Audit,
        request: Request,
        on_retry: OnRetry | None,
        parse: Callable[[int, Json], Json],
        change: str,
        next_step: str,
        *,
        lead: bool,
    ) -> Json:
        """`_write` with an intent line before the request and an outcome line after it."""
        if self._api_key is None:
            raise MissingApiKey()  # nothing would be sent: nothing to journal
        secrets = self._secrets()
        begin = functools.partial(
            audit.journal.begin, tool=audit.tool, lead_id=audit.lead_id, method=request.method, path=request.path,
            body=request.body, before=audit.before, account=account_fingerprint(self._api_key), secrets=secrets,
            undoes=audit.undoes,
        )
        try:
            # In a worker thread: the intent line is fsynced, which must not stall the event loop.
            entry = await anyio.to_thread.run_sync(begin)
        except JournalError as exc:
            logger.error("write refused, nothing sent: the audit journal %s cannot be written (%s)",
                         exc.path, exc.reason)
            raise JournalUnwritable(exc.reason) from None

        def finish(status: int | None, outcome: str, detail: str | None, after: Json | None = None) -> None:
            try:
                audit.journal.finish(entry, status=status, outcome=outcome, detail=detail, after=after, secrets=secrets)
            except JournalError as exc:
                logger.error(
                    "the audit journal %s could not record the outcome of entry %s (%s: %s): %s",
                    exc.path, entry, outcome, f"HTTP {status}" if status else "no answer", exc.reason,
                )

        try:
            status, body = await self.send(request, on_retry)
            result = parse(status, body)
        except UnreadableAnswer as unreadable:
            finish(unreadable.status, "accepted", f"Nexor's answer {unreadable.what}")
            return accepted_unreadable(unreadable, change, next_step, lead=lead)
        except NexorError as error:
            uncertain = error.may_have_taken_effect() or error.earlier_attempt_uncertain
            outcome = "unknown" if uncertain else "failed"
            finish(getattr(error, "status", None), outcome, f"{type(error).__name__}: {error}")
            raise
        except BaseException as exc:
            why = (
                "the call was cancelled" if isinstance(exc, anyio.get_cancelled_exc_class())
                else f"nexor-mcp failed ({type(exc).__name__})"
            )
            finish(None, "unknown", f"{why} while the request may have been in flight")
            raise
        finish(status, "ok", None, written_after(request, result))
        return result

    # --- the exchange ----------------------------------------------------------------------------

    async def send(self, request: Request, on_retry: OnRetry | None = None) -> tuple[int, Json]:
        """Send with the retry policy; raises the last attempt's `NexorError`, counting attempts.

        Within the deadline of the tool call it is part of (`CallDeadline`; outside a tool call, one
        of its own): a request or retry that would start past the call's budget is not sent
        (`DeadlinePassed`), and one that has started is never cut short by it.
        """
        if self._api_key is None:
            raise MissingApiKey()
        content = None
        headers = {"X-API-Key": self._api_key.reveal()}
        if request.body is not None:
            content = json.dumps(request.body, ensure_ascii=False, separators=(",", ":")).encode()
            if len(content) > MAX_REQUEST_BYTES:
                raise RequestTooLarge(len(content), MAX_REQUEST_BYTES)
            headers["Content-Type"] = "application/json"
        deadline = current_deadline() or CallDeadline.for_settings(self._settings)
        deadline.check_start(request.effect)
        method, path = request.method, request.path
        attempt = 1
        uncertain = False  # whether an attempt so far may have taken effect (for the audit journal)
        while True:
            try:
                return await self._attempt(request, content, headers)
            except NexorError as error:
                # Nexor's own error text is quoted in messages; never let it carry the key back.
                error.hide(self._api_key.reveal())
                error.attempts = attempt
                error.earlier_attempt_uncertain = uncertain
                uncertain = uncertain or error.may_have_taken_effect()
                if not self._policy.should_retry(request.idempotent, error, attempt):
                    raise
                delay = self._policy.delay(attempt, getattr(error, "retry_after", None))
                if not deadline.allows_wait(delay):
                    error.note = (
                        f"It was not retried again: waiting {delay:.1f} s would pass the "
                        f"{deadline.budget_seconds:g} s retry budget of this call."
                    )
                    raise
                reason = _retry_reason(error)
                logger.info("%s /%s attempt %d failed (%s); retrying in %.2f s", method, path, attempt, reason, delay)
                metrics.current.retry()
                if on_retry is not None:
                    await on_retry(attempt, delay, reason)
                await anyio.sleep(delay)
                attempt += 1

    async def _attempt(self, request: Request, content: bytes | None, headers: dict[str, str]) -> tuple[int, Json]:
        """One HTTP exchange, mapped to (status, JSON object) or a `NexorError`."""
        method, path, effect = request.method, request.path, request.effect
        started = time.perf_counter()
        try:
            # A total deadline on top of the sender's connect timeout: a server that trickles bytes
            # cannot hold a call forever.
            with anyio.fail_after(self._settings.timeout_seconds):
                status, response_headers, raw, complete = await self._send_capped(request, content, headers)
        except TimeoutError:
            metrics.current.nexor_answer("timeout")
            raise ApiTimeout(
                f"Nexor at {self.base_url} did not answer within {self._settings.timeout_seconds:g} s. {effect.unknown}"
            ) from None
        except sender.SendFailed as exc:
            metrics.current.nexor_answer("connection_error")
            outcome = effect.unknown if exc.sent and effect.writes else CHECK_NETWORK
            raise ApiConnectionError(
                f"Could not reach Nexor at {self.base_url} ({exc.reason}). {outcome}", sent=exc.sent
            ) from None
        logger.debug("%s /%s -> %s in %.1f ms", method, path, status, (time.perf_counter() - started) * 1000)
        metrics.current.nexor_answer(str(status))
        decoded = decode_json(raw) if complete else _NOT_JSON
        secrets = self._secrets()
        if not 200 <= status <= 299:
            raise status_error(
                status,
                decoded,
                effect=effect,
                retry_after=parse_retry_after(response_headers.get("retry-after")),
                secrets=secrets,
            )
        if not complete:
            megabytes = MAX_RESPONSE_BYTES // (1024 * 1024)
            raise UnreadableAnswer(status, f"is larger than {megabytes} MB and was not read")
        content_type = clean_text(response_headers.get("content-type", ""))
        if content_type and "json" not in content_type.lower():
            raise UnreadableAnswer(status, f"has Content-Type {content_type[:60]!r}, not JSON")
        if not raw:
            raise UnreadableAnswer(status, "is empty (not JSON)")
        if decoded is _TOO_DEEP:
            raise UnreadableAnswer(status, f"is JSON nested deeper than {MAX_RESPONSE_DEPTH} levels")
        if decoded is _NOT_JSON:
            raise UnreadableAnswer(status, f"is not JSON ({describe_body(raw, secrets)})")
        if not isinstance(decoded, dict):
            if request.any_json_under is None:
                raise UnreadableAnswer(status, f"is a JSON {type(decoded).__name__}, not an object")
            decoded = {request.any_json_under: decoded}
        if decoded.get("success") is False:
            said = api_error_text(decoded, secrets)
            raise InvalidResponse(
                f"Nexor answered HTTP {status} but reported success: false"
                + (f" ({said})" if said else "")
                + f". {effect.refused}"
            )
        return status, decoded

    def _secrets(self) -> tuple[str, ...]:
        return (self._api_key.reveal(),) if self._api_key else ()

    async def _send_capped(
        self, request: Request, content: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes, bool]:
        """Send one request; read at most MAX_RESPONSE_BYTES of the answer (False: it was cut)."""
        answer = await self._outbound.get().send(
            request.method, request.path, query=request.query, headers=headers, body=content,
            max_body=MAX_RESPONSE_BYTES,
        )
        return answer.status, answer.headers, answer.body, answer.complete


@dataclass(frozen=True, slots=True)
class _Audit:
    """What a journaled client records with each write (see `NexorClient.journaled`)."""

    journal: Journal
    tool: str
    lead_id: str | None
    before: Json | None
    undoes: str | None


def written_after(request: Request, result: Json) -> Json | None:
    """What Nexor's answer says the written values now are, for exactly what the write wrote: the
    fields and metadata keys of a PATCH of a lead, the tag names of a PUT of its tags; else None.
    `audit undo` compares the lead with this (Nexor may store a value differently than sent)."""
    body = request.body or {}
    if request.method == "PATCH" and request.path.startswith("leads/") and isinstance(result.get("lead"), dict):
        lead: Json = result["lead"]
        fields = {name: lead[name] for name in body if name != "metadata" and name in lead}
        stored = lead.get("metadata")
        written = body.get("metadata")
        metadata = (
            {key: stored[key] for key in written if key in stored}
            if isinstance(stored, dict) and isinstance(written, dict) else {}
        )
        return {"fields": fields, "metadata": metadata}
    if request.method == "PUT" and request.path == "leads/tags" and isinstance(result.get("tags"), list):
        names = [tag.get("name") for tag in result["tags"] if isinstance(tag, dict)]
        if all(isinstance(name, str) for name in names):
            return {"tags": names}
    return None


_NOT_JSON: Any = object()
_TOO_DEEP: Any = object()
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def decode_json(raw: bytes) -> Any:
    """Nexor's body as JSON that can always be sent on: every string is valid Unicode (a lone
    surrogate becomes U+FFFD), NaN and ±Infinity (and numbers too large for a float) become null,
    so the text and `structuredContent` agree, and nothing is nested past `MAX_RESPONSE_DEPTH`.

    Returns `_NOT_JSON` or `_TOO_DEEP` instead of raising.
    """
    if not raw:
        return _NOT_JSON
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_int)
    except RecursionError:
        return _TOO_DEEP
    except ValueError:
        return _NOT_JSON
    if raw.count(b"[") + raw.count(b"{") <= MAX_RESPONSE_DEPTH and not _SURROGATE_ESCAPE.search(raw):
        return value  # too few brackets to nest too deep, and no escape that can make a lone surrogate
    try:
        return _clean(value, MAX_RESPONSE_DEPTH)
    except _NestedTooDeep:
        return _TOO_DEEP


class _NestedTooDeep(Exception):
    pass


def _no_constant(name: str) -> None:
    return None


def _finite_float(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None


def _int(text: str) -> int | str:
    # Python refuses to parse integers of more than 4,300 digits; keep such a value as its digits.
    return int(text) if len(text) <= 4000 else text


def _clean(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict | list):
        if depth <= 0:
            raise _NestedTooDeep
        if isinstance(value, dict):
            return {clean_text(key): _clean(item, depth - 1) for key, item in value.items()}
        return [_clean(item, depth - 1) for item in value]
    return value


def _lead_result(status: int, body: Json) -> Json:
    """Accept both documented shapes: `{success, lead, ...}` and a flat lead object."""
    if "lead" in body:
        lead = body["lead"]
        if not isinstance(lead, dict):
            kind = "null" if lead is None else type(lead).__name__
            raise UnreadableAnswer(status, f"has no lead object in it (lead is {kind})")
        extras = {key: value for key, value in body.items() if key not in ("success", "lead")}
        return {"lead": lead, **extras}
    if "id" in body:
        return {"lead": {key: value for key, value in body.items() if key != "success"}}
    raise UnreadableAnswer(status, "has no lead in it")


def accepted_unreadable(unreadable: UnreadableAnswer, change: str, next_step: str, *, lead: bool = True) -> Json:
    """The outcome of a write that Nexor accepted (2xx) but whose answer could not be read."""
    message = (
        f"Nexor accepted the {change} (HTTP {unreadable.status}), so it was applied; but its answer "
        f"{unreadable.what}, so the result cannot be shown. Do not send the same {change} again: {next_step}."
    )
    outcome: Json = {"accepted": True, "message": message}
    return {"lead": None, **outcome} if lead else outcome


LEAD_RUN_STEP = "call get_lead to see the lead's workflow run and status"
CHECK_BASE_URL = "Check NEXOR_BASE_URL: it must point at Nexor's public API"
AUTOMATION_CHECK = (
    "Check lead_id and workflow_id (get_lead shows the lead's active workflow run); a lead in a "
    "terminal status (expired, converted) has no active run"
)


def _lead_write(
    lead_id: str, action: str, *, idempotent: bool, verify: str, also: str = "",
    check: str = "Check the lead_id (it must be the lead's UUID from Nexor)",
) -> Effect:
    """A write on one lead; `also` says what else a 404 may mean here (a tag, a workflow, a run)."""
    what = f"No lead with id {lead_id} exists in this Nexor account" + (f", or {also}" if also else "")
    return writing(what, check, action=action, idempotent=idempotent, verify=verify)


def _list_in(status: int, body: Json, *keys: str) -> list[Any]:
    """The list under the first of `keys` present; a null there is an empty list."""
    for key in keys:
        if key in body:
            value = body[key]
            if value is None:
                return []
            if isinstance(value, list):
                return value
            raise UnreadableAnswer(status, f"has {key} as a JSON {type(value).__name__}, not a list")
    raise UnreadableAnswer(status, f"has no {keys[0]} list in it")


def _optional_list(body: Json, key: str) -> list[Any]:
    value = body.get(key)
    return value if isinstance(value, list) else []


def _passed_through(status: int, body: Json) -> Json:
    """An answer whose shape Nexor documents loosely: every field kept but the `success` flag."""
    return {key: value for key, value in body.items() if key != "success"}


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds or seconds == float("inf"):
        return None
    return max(0.0, seconds)


def _retry_reason(error: NexorError) -> str:
    if isinstance(error, ApiStatusError):
        return f"HTTP {error.status}"
    return "connection failed"
