"""The Nexor REST client: sends any `Request` (nexor_mcp/request.py) with the retry policy,
timeouts, body caps and response decoding in one place, and raises one typed `NexorError` per
failure class. It knows no endpoint and no tool: what to send comes from nexor_mcp/endpoints.py,
and what a failure means for the model comes with the request (its `Effect`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

import anyio

from nexor_mcp import __version__, metrics, outbound, sender
from nexor_mcp.account import account_fingerprint, account_id
from nexor_mcp.config import Secret, Settings
from nexor_mcp.errors import (
    ApiConnectionError,
    ApiStatusError,
    ApiTimeout,
    InvalidResponse,
    MissingApiKey,
    NexorError,
    RequestTooLarge,
    UnreadableAnswer,
    api_error_text,
    describe_body,
    status_error,
)
from nexor_mcp.json_types import Json
from nexor_mcp.masking import clean_text
from nexor_mcp.request import Request, Sent, accepted_unreadable
from nexor_mcp.retry import CallDeadline, RetryPolicy, current_deadline

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
    """Async client for one Nexor account (one API key): sends any `Request`, knows none by name."""

    def __init__(self, settings: Settings, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._api_key = settings.api_key
        self._outbound = _SharedSender(settings, transport)
        self._policy = RetryPolicy(settings.max_retries)

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

    @property
    def fingerprint(self) -> str | None:
        """The account id's short form the audit journal records (None without a key)."""
        return account_fingerprint(self._api_key)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never be shown or stored as is: the key."""
        return (self._api_key.reveal(),) if self._api_key else ()

    def require_key(self) -> None:
        """Raise `MissingApiKey` before anything is done for a request that could not be sent."""
        if self._api_key is None:
            raise MissingApiKey()

    async def aclose(self) -> None:
        await self._outbound.aclose()

    async def call(self, request: Request, on_retry: OnRetry | None = None) -> Json:
        """Send `request` and read its answer with its own parser (`exchange`, the result only)."""
        return (await self.exchange(request, on_retry)).result

    async def exchange(self, request: Request, on_retry: OnRetry | None = None) -> Sent:
        """Send `request` and read its answer. A write whose 2xx answer cannot be read (204,
        empty, not JSON, too large, not the shape expected) was still applied: that is the accepted
        outcome, never a failure that would invite the agent to send it again. A read's raises."""
        try:
            status, body = await self.send(request, on_retry)
            return Sent(status, request.parse(status, body))
        except UnreadableAnswer as unreadable:
            if not request.writes:
                raise
            accepted = accepted_unreadable(unreadable, request.change, request.next_step, lead=request.answers_lead)
            return Sent(unreadable.status, accepted, unreadable)

    # --- the exchange ----------------------------------------------------------------------------

    async def send(self, request: Request, on_retry: OnRetry | None = None) -> tuple[int, Json]:
        """Send with the retry policy; raises the last attempt's `NexorError`, counting attempts.

        Within the deadline of the tool call it is part of (`CallDeadline`; outside a tool call, one
        of its own): a request or retry that would start past the call's budget is not sent
        (`DeadlinePassed`), and one that has started is never cut short by it.
        """
        self.require_key()
        assert self._api_key is not None
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
        secrets = self.secrets
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

    async def _send_capped(
        self, request: Request, content: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes, bool]:
        """Send one request; read at most MAX_RESPONSE_BYTES of the answer (False: it was cut)."""
        answer = await self._outbound.get().send(
            request.method, request.path, query=request.query, headers=headers, body=content,
            max_body=MAX_RESPONSE_BYTES,
        )
        return answer.status, answer.headers, answer.body, answer.complete


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
