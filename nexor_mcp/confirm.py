"""A person's yes before a tool that contacts people or moves the pipeline runs.

The ways to ask, chosen per call from what the client can do (`way`):

- **A form, protocol 2026-07-28** (any transport, stateless HTTP included): the call answers
  `input_required` with a form; the client asks the person and calls again with the answer and the
  `requestState` we sealed (bound to the tool, its arguments, the account, and an expiry).
- **A form, earlier protocols**, when the session can send requests (stdio): a live
  `elicitation/create`, waited for at most `ELICIT_TIMEOUT_SECONDS`.
- **Otherwise the approval page** (nexor_mcp/approve_url.py): by URL-mode elicitation, or opened in
  the person's browser by a stdio server; where neither can be, the call is refused.
- **The two-step token, only when the operator chose it** (NEXOR_CONFIRM_VIA=token, agent-relayed):
  the first call sends nothing and returns the preview and a `confirmation` token sealed the same
  way; the model shows the preview, asks, and repeats the call with the token. Each works once.

Anything but an explicit yes (decline, cancel, timeout, an error, a token for other arguments,
expired, reused or forged, or any token at all in the default mode) means nothing is sent. Once the
client is asked, whatever goes wrong with asking (an error answer, a timeout, an answer that cannot
be read, a broken connection) is a no.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import secrets as random_bytes
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import anyio
import anyio.to_thread
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CallToolRequestParams,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
)
from mcp_types.version import is_version_at_least
from pydantic import ValidationError

from nexor_mcp.account import FINGERPRINT_LENGTH
from nexor_mcp.approve_url import ApprovalDesk, Asked
from nexor_mcp.config import SECRET_ENV, Secret
from nexor_mcp.json_types import Json
from nexor_mcp.quoting import quote, visible
from nexor_mcp.retry import waiting_for_person

logger = logging.getLogger(__name__)

TOKEN_SECONDS = 300
"""How long a confirmation token or a pending question stays valid."""
ELICIT_TIMEOUT_SECONDS = 300.0
"""How long a live elicitation waits for the person before it counts as no."""
MRTR_VERSION = "2026-07-28"
CONFIRMATION_PURPOSE = "c1"
"""What a two-step confirmation token is for; sealed into it, so the literal stays (tokens in flight stay valid)."""
ROUND_TRIP_PURPOSE = "q1"
"""What the `requestState` of a 2026-07-28 round trip is for; sealed the same way, literal kept."""
ALREADY_USED = "it was already used once"
QUESTION_KEY = "confirm"
FORM: dict[str, Any] = {
    "type": "object",
    "properties": {
        QUESTION_KEY: {
            "type": "boolean", "title": "Yes, do this", "description": "Check to approve; anything else stops it."
        }
    },
    "required": [QUESTION_KEY],
}


class ClaimStore(Protocol):
    """Where used token ids are recorded so that each works once across processes (nexor_mcp/store)."""

    def claim_once(self, account: str, token_id: str, expires_at: float) -> bool: ...


class Sealer:
    """Issues and checks tokens bound to a tool, its arguments and the account, with an expiry.

    HMAC-SHA256 under a key from NEXOR_MCP_SECRET (shared by replicas) or random per process. A
    token names no secret and no argument: it is a random id, the expiry and the MAC. Used ids are
    remembered until they expire, so each token works once: in this process, or, with `store`
    (NEXOR_DATABASE_URL), across every process, worker, replica and restart that shares it.
    """

    def __init__(self, secret: Secret | None, store: ClaimStore | None = None) -> None:
        self.shared = secret is not None
        """False with a random per-process key: a token from another process (or from before a
        restart) can then never match, which the refusal says."""
        seed = secret.reveal().encode() if secret else random_bytes.token_bytes(32)
        self._key = hmac.new(seed, b"nexor-mcp confirmation v1", hashlib.sha256).digest()
        self._used: dict[str, float] = {}
        self.store = store

    def issue(self, purpose: str, tool: str, arguments: Json, account: str, *, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + TOKEN_SECONDS)
        claims = _b64(json.dumps({"e": expires, "n": random_bytes.token_urlsafe(12)}, separators=(",", ":")).encode())
        return f"{purpose}.{claims}.{self._mac(purpose, claims, tool, arguments, account)}"

    def check(
        self, token: str, purpose: str, tool: str, arguments: Json, account: str, *, now: float | None = None
    ) -> str | None:
        """None when the token is good (it is then used up in this process), else why it is refused."""
        verified = self.verify(token, purpose, tool, arguments, account, now=now)
        if isinstance(verified, str):
            return verified
        nonce, expires = verified
        return None if self._claim_here(nonce, expires, now) else ALREADY_USED

    async def redeem(self, token: str, purpose: str, tool: str, arguments: Json, account: str) -> str | None:
        """`check`, with single use recorded in the store when there is one (in a worker thread).
        A store that cannot record it refuses the token: single use that cannot be proven is no use."""
        verified = self.verify(token, purpose, tool, arguments, account)
        if isinstance(verified, str):
            return verified
        nonce, expires = verified
        if self.store is None:
            return None if self._claim_here(nonce, expires, None) else ALREADY_USED
        claim = functools.partial(self.store.claim_once, account[:FINGERPRINT_LENGTH], nonce, float(expires))
        try:
            first = await anyio.to_thread.run_sync(claim)
        except Exception as exc:  # StoreError, or anything the driver raised: fail closed
            logger.error("a confirmation was refused: its single use could not be recorded (%s)", exc)
            return ("its single use could not be recorded (the database in NEXOR_DATABASE_URL did not answer or "
                    "refused the write), so it cannot be trusted; the user must get the database fixed")
        return None if first else ALREADY_USED

    def _claim_here(self, nonce: str, expires: int, now: float | None) -> bool:
        moment = now if now is not None else time.time()
        self._used = {used: expiry for used, expiry in self._used.items() if expiry > moment}
        if nonce in self._used:
            return False
        self._used[nonce] = expires
        return True

    def verify(
        self, token: str, purpose: str, tool: str, arguments: Json, account: str, *, now: float | None = None
    ) -> tuple[str, int] | str:
        """The token's id and expiry when it is well formed, sealed for exactly this call and not
        expired (not yet used up: see `check` and `redeem`); else why it is refused, in words."""
        moment = now if now is not None else time.time()
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != purpose or not token.isascii():
            return "it is not a confirmation token from this server"
        claims_text, mac = parts[1], parts[2]
        expected = self._mac(purpose, claims_text, tool, arguments, account)
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            unshared = (
                f"; if the server was restarted or runs as several processes, tokens only carry over "
                f"when {SECRET_ENV} is set"
            )
            return (
                "it was not issued for these exact arguments (or not by this server, or for another "
                "account); every argument must be repeated unchanged" + ("" if self.shared else unshared)
            )
        claims = json.loads(base64.urlsafe_b64decode(claims_text + "=" * (-len(claims_text) % 4)))
        if moment >= claims["e"]:
            return f"it expired ({TOKEN_SECONDS // 60} minutes after it was issued)"
        return str(claims["n"]), int(claims["e"])

    @property
    def page_key(self) -> bytes:
        """The approval pages' key (their anti-forgery tokens, the sealed approval ids): derived from
        this one, so replicas sharing NEXOR_MCP_SECRET share it too."""
        return hmac.new(self._key, b"nexor-mcp approval pages v1", hashlib.sha256).digest()

    def _mac(self, purpose: str, claims: str, tool: str, arguments: Json, account: str) -> str:
        canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        message = "\0".join((purpose, claims, tool, canonical, account)).encode("utf-8", "surrogatepass")
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass(frozen=True)
class Go:
    """The person said yes: send it."""

    how: str


@dataclass(frozen=True)
class Stop:
    """Nothing is sent; `text` says why, for the model. `declined`: how the person said no, when
    they did (the journal records it); None for every other refusal."""

    text: str
    declined: str | None = None


@dataclass(frozen=True)
class Pending:
    """Nothing is sent yet: answer with this and wait for the call to come back."""

    result: InputRequiredResult | Json


Decision = Go | Stop | Pending


def question_text(summary: str, changes: list[str]) -> str:
    """The question a person is asked. Every invisible or control character in it is spelled out
    (`[U+202E]`), whatever part it comes from: defence in depth behind the previews' own quoting."""
    lines = [summary]
    if changes:
        lines += ["", "Changes:", *(f"- {line}" for line in changes)]
    return visible("\n".join(lines), keep_newlines=True)


Way = Literal["round_trip", "live", "page", "token"]


def way(ctx: ServerRequestContext[Any], *, elicit: bool = True) -> Way:
    """How this call asks for a yes (see the module doc): a form when the client can show one,
    else the approval page (nexor_mcp/approve_url.py); the token way only when the operator chose
    it (`elicit=False`: NEXOR_CONFIRM_VIA=token, agent-relayed)."""
    if not elicit:
        return "token"
    if _can_elicit(ctx):
        if _modern(ctx):
            return "round_trip"
        if ctx.session.can_send_request:
            return "live"
    return "page"


def token_offer(sealer: Sealer, tool: str, arguments: Json, account: str, question: str) -> Json:
    """What the token way hands the model: the token, how long it lasts and the question to show."""
    return {
        "confirmation": sealer.issue(CONFIRMATION_PURPOSE, tool, arguments, account),
        "expires_in_seconds": TOKEN_SECONDS,
        "question": question,
    }


async def ask(
    ctx: ServerRequestContext[Any],
    params: CallToolRequestParams,
    *,
    tool: str,
    arguments: Json,
    account: str,
    question: str,
    token: str | None,
    sealer: Sealer,
    elicit: bool = True,
    desk: ApprovalDesk | None = None,
    request: tuple[str, str, Json | None] = ("", "", None),
) -> Decision:
    """Get a person's yes for this call by the best way the client offers (see the module doc);
    `elicit=False` always takes the token way (NEXOR_CONFIRM_VIA=token). `desk` serves the approval
    page, for `request` (method, path, body) exactly."""
    if token is not None:
        if elicit:  # the operator did not choose the token way: no token can approve anything here
            return Stop("Not sent: this server does not take confirmation tokens (the model could pass one back "
                        "by itself); the user approves each call when asked. Nothing was sent. Call again "
                        "without confirmation.")
        refused = await sealer.redeem(token, CONFIRMATION_PURPOSE, tool, arguments, account)
        if refused:
            return Stop(f"Not sent: the confirmation was refused because {refused}. Nothing was sent. "
                        "Call again without confirmation to get a fresh preview, show it to the user and ask.")
        return Go("token")
    how = way(ctx, elicit=elicit)
    if how == "round_trip":
        return await _round_trip(params, tool, arguments, account, question, sealer)
    if how == "live":
        return await _live(ctx, question)
    if how == "token":
        return Pending({"sent": False, "confirmation_required": True,
                        **token_offer(sealer, tool, arguments, account, question)})
    return await _on_page(ctx, params, desk, Asked(tool, account, *request, question), sealer)


CANNOT_ASK = (
    "Not sent: {tool} needs the user's approval, and this client can neither show them a question "
    "(elicitation) nor open an approval page for them, so nobody can approve it here. Nothing was sent. "
    "To approve such calls, use a client that supports elicitation (form or URL mode), or run nexor-mcp "
    "locally (over stdio it opens the approval page in the user's browser). The operator can also set "
    "NEXOR_CONFIRM_VIA=token, which is agent-relayed: the model can then confirm by itself."
)


async def _on_page(
    ctx: ServerRequestContext[Any], params: CallToolRequestParams, desk: ApprovalDesk | None, asked: Asked,
    sealer: Sealer,
) -> Decision:
    """The approval page: by URL-mode elicitation, or opened in the person's browser."""
    page = desk.way(ctx, modern=_modern(ctx)) if desk is not None else "none"
    if desk is None or page == "none":
        return Stop(CANNOT_ASK.format(tool=asked.tool))
    if page == "url_round_trip":
        outcome = await desk.round_trip(ctx, params, asked, sealer)
    else:
        outcome = await desk.live(ctx, asked, page)
    if isinstance(outcome, InputRequiredResult):
        return Pending(outcome)
    if outcome.approved:
        return Go(outcome.how)
    return Stop(outcome.text, declined=outcome.how if outcome.declined else None)


def _can_elicit(ctx: ServerRequestContext[Any]) -> bool:
    """Form elicitation declared (a bare `elicitation: {}` means form; url-only does not)."""
    capabilities = ctx.session.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _modern(ctx: ServerRequestContext[Any]) -> bool:
    return bool(ctx.protocol_version) and is_version_at_least(ctx.protocol_version, MRTR_VERSION)


async def _round_trip(
    params: CallToolRequestParams, tool: str, arguments: Json, account: str, question: str, sealer: Sealer
) -> Decision:
    """Protocol 2026-07-28: ask in an `input_required` result; decide when the call comes back."""
    bound = {**arguments, "(question)": question}  # a reworded question is asked again
    if params.request_state is None and not params.input_responses:  # the first call: ask
        request = ElicitRequest(params=ElicitRequestFormParams(message=question, requested_schema=FORM))
        return Pending(InputRequiredResult(
            input_requests={QUESTION_KEY: request}, request_state=sealer.issue(ROUND_TRIP_PURPOSE, tool, bound, account)
        ))
    # The call came back: from here on only a well-formed, sealed yes goes; anything else is a no.
    if params.request_state is None:
        return Stop("Not sent: the answer to the confirmation came back without its requestState, so it "
                    "cannot be checked. Nothing was sent.")
    refused = await sealer.redeem(params.request_state, ROUND_TRIP_PURPOSE, tool, bound, account)
    if refused:
        return Stop(f"Not sent: the confirmation could not be checked because {refused}. Nothing was sent.")
    answer = (params.input_responses or {}).get(QUESTION_KEY)
    return _decide(answer if isinstance(answer, ElicitResult) else None)


FAILED_ASKING = (
    "Nothing was sent. If this client cannot show the user questions, the user can set "
    "NEXOR_CONFIRM_VIA=token to confirm with a token instead (agent-relayed: the model can then confirm by itself)."
)


async def _live(ctx: ServerRequestContext[Any], question: str) -> Decision:
    """Earlier protocols: a live elicitation/create. The client declared it can be asked, so a
    failure of asking is a no (never the token way: that would let the model confirm for the user)."""
    try:
        # waiting_for_person: the call's Nexor deadline restarts after the answer, and the call
        # is stopped at once if input ends first (nobody can answer then; see nexor_mcp/retry.py).
        with anyio.fail_after(ELICIT_TIMEOUT_SECONDS), waiting_for_person():
            answer = await ctx.session.elicit_form(question, FORM, related_request_id=ctx.request_id)
    except TimeoutError:
        return Stop(f"Not sent: nobody answered within {ELICIT_TIMEOUT_SECONDS:g} s. Nothing was sent.")
    except MCPError as exc:  # the client answered with a JSON-RPC error (or could not be reached)
        logger.info("elicitation answered with error %s: refused", exc.code)
        return Stop(f"Not sent: asking the user to confirm failed (the client answered with error {exc.code}: "
                    f"{quote(exc.message)}), which counts as no. {FAILED_ASKING}")
    except ValidationError:
        logger.info("elicitation answer could not be read: refused")
        return _decide(None)
    except Exception as exc:  # a broken connection or anything else: still a no (cancellation passes)
        logger.warning("elicitation failed (%s): refused", type(exc).__name__)
        return Stop(f"Not sent: asking the user to confirm failed ({type(exc).__name__}), which counts as no. "
                    f"{FAILED_ASKING}")
    return _decide(answer)


def _decide(answer: ElicitResult | None) -> Decision:
    if answer is None:
        return Stop("Not sent: the client's answer to the confirmation could not be read, which counts as no. "
                    "Nothing was sent.")
    if answer.action == "accept" and (answer.content or {}).get(QUESTION_KEY) is True:
        return Go("form")
    if answer.action == "accept":
        return Stop("Not sent: the user did not check the box to approve it. Nothing was sent.")
    verb = "declined" if answer.action == "decline" else "cancelled"
    return Stop(f"Not sent: the user {verb} it when asked to confirm. Nothing was sent; do not retry "
                "unless the user asks again.", declined="form" if answer.action == "decline" else None)
