"""One exception per way a Nexor call can fail; `str(error)` is the text the model reads.

Every message says what happened and what to do next, and none contains the API key: messages
are built from the status, the API's own error fields (truncated) and the base URL only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from nexor_mcp.masking import clean_text, redact

_MAX_API_TEXT = 300
_MAX_FIELD_ERRORS = 20
_MAX_BODY_PREVIEW = 120
KEY_HELP = (
    "Set NEXOR_API_KEY (or api_key in the config file) to the key from the Nexor dashboard "
    "(profile → Integrations; it starts with nxr_live_) and restart the server."
)


@dataclass(frozen=True, slots=True)
class Effect:
    """What one call does, so that its failures can say the right next step.

    `writes`: whether it may change something in Nexor. `unknown`: what to say when it may or may
    not have taken effect (a timeout, a dropped connection, a 5xx after sending). `not_found` and
    `not_found_next`: what a 404 means here, and what to check. `refused`: what to say when Nexor
    refused without naming a value (a 409, `success: false`). Each is worded for this call only:
    a call that is not about a lead never mentions one.
    """

    writes: bool
    unknown: str
    not_found: str
    not_found_next: str
    refused: str = "Nothing was changed; try again later."


def reading(what: str, check: str) -> Effect:
    """A read: nothing can have changed, so an unknown outcome just means "try again"."""
    return Effect(False, "Try again shortly.", what, f"{check}; nothing was changed.")


def writing(what: str, check: str, *, action: str, idempotent: bool, verify: str) -> Effect:
    """A write. An idempotent one may simply be repeated; any other must be checked first,
    because repeating it could do it twice (a second lead, a second message)."""
    if idempotent:
        unknown = f"The {action} may or may not have been applied; retrying the same {action} is safe, or {verify}."
    else:
        unknown = (
            f"The {action} may or may not have happened. Do not repeat it blindly: first {verify}, "
            "and repeat it only if it did not happen."
        )
    refused = f"Nothing was changed; {verify}, then decide whether to call again."
    return Effect(True, unknown, what, f"{check}; nothing was changed.", refused)


class NexorError(Exception):
    """Base class: a call to Nexor did not give the answer it asked for."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = 1
        self.note = ""
        self.earlier_attempt_uncertain = False
        """Set by `NexorClient.send`: an earlier attempt of the same request may have taken effect."""

    def may_have_taken_effect(self) -> bool:
        """Whether the request that failed this way may still have changed something in Nexor
        (the audit journal's "unknown" outcome) rather than certainly not ("failed")."""
        return True

    def hide(self, secret: str) -> None:
        """Mask `secret` wherever Nexor's quoted text may have carried it."""
        self.message = redact(self.message, (secret,))
        self.args = (self.message,)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __str__(self) -> str:
        text = self.message
        if self.note:
            text += " " + self.note
        if self.attempts > 1:
            text += f" ({self.attempts} attempts were made.)"
        return text


class MissingApiKey(NexorError):
    def __init__(self) -> None:
        super().__init__(f"No Nexor API key is configured, so nothing was sent. {KEY_HELP}")

    def may_have_taken_effect(self) -> bool:
        return False


class RequestTooLarge(NexorError):
    """A write body over the size limit: refused before any byte is sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The request would be {size:,} bytes of JSON, over the {limit // 1024} KiB limit, so nothing "
            "was sent. Send less at once (fewer components, attendees or metadata keys per call)."
        )

    def may_have_taken_effect(self) -> bool:
        return False


FIX_JOURNAL_FILE = "NEXOR_AUDIT_LOG (or audit_log in the config file) so that it names a writable file"
FIX_DATABASE = "the database NEXOR_DATABASE_URL names, so that it answers and can be written"


class JournalUnwritable(NexorError):
    """The audit journal (NEXOR_AUDIT_LOG's file, or NEXOR_DATABASE_URL's database) could not
    record a write's intent, so the write was refused before anything was sent: every write must be
    on record first (fail closed). `fix`: what the user must fix, for the model to pass on."""

    def __init__(self, reason: str, fix: str = FIX_JOURNAL_FILE) -> None:
        super().__init__(
            f"Nothing was sent to Nexor: the write was refused because the audit journal cannot be "
            f"written ({reason}), and every write must be recorded there before it is sent. This is not "
            f"something to retry: ask the user to fix {fix}, then try again."
        )
        self.reason = reason

    def may_have_taken_effect(self) -> bool:
        return False


class ApiStatusError(NexorError):
    """Nexor answered with a non-2xx status."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    def may_have_taken_effect(self) -> bool:
        return not 400 <= self.status <= 499  # a 4xx is a refusal; a 5xx or odd status may be anything


class BadRequest(ApiStatusError):
    """400 / 422: Nexor rejected a value."""


class AuthenticationFailed(ApiStatusError):
    """401: the key is missing or invalid."""


class PermissionDenied(ApiStatusError):
    """403."""


class LeadNotFound(ApiStatusError):
    """404."""


class Conflict(ApiStatusError):
    """409."""


class RateLimited(ApiStatusError):
    """429."""

    retryable = True


class ServerError(ApiStatusError):
    """5xx."""

    retryable = True


class UnexpectedStatus(ApiStatusError):
    """Any other non-2xx status."""


class ApiTimeout(NexorError):
    retryable = True


class ApiConnectionError(NexorError):
    retryable = True

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent
        """False when the connection itself failed, so the request certainly never left."""

    def may_have_taken_effect(self) -> bool:
        return self.sent


class InvalidResponse(NexorError):
    """A 2xx whose body is not the answer asked for (`success: false`, or unreadable)."""

    def may_have_taken_effect(self) -> bool:
        return False  # Nexor answered success: false


class UnreadableAnswer(InvalidResponse):
    """A 2xx whose body could not be read as the answer asked for; `what` says why ("is empty", ...).

    For a read that is an error. For a write it is not: Nexor accepted the change, so the client
    turns it into an `accepted` outcome instead (see `NexorClient.exchange`).
    """

    def __init__(self, status: int, what: str) -> None:
        super().__init__(
            f"Nexor answered HTTP {status} but its answer {what}, so it could not be read. "
            "This is a problem on Nexor's side; try again later."
        )
        self.status = status
        self.what = what

    def may_have_taken_effect(self) -> bool:
        return True  # a 2xx: it did


def api_error_text(body: Any, secrets: tuple[str, ...] = ()) -> str:
    """Render Nexor's error body (`{error, message}` and any per-field details) compactly.

    The key is masked before the text is clipped: clipping first could cut a key in two and leave
    its first part showing.
    """
    if not isinstance(body, dict):
        return ""
    parts = [str(body[key]) for key in ("error", "message") if isinstance(body.get(key), str | int)]
    text = ": ".join(dict.fromkeys(parts))
    details = [f"{name}: {msg}" for name, msg in _field_errors(body)[:_MAX_FIELD_ERRORS]]
    if details:
        text = (text + ". " if text else "") + "; ".join(details)
    return _clip(redact(text[: _MAX_API_TEXT * 4], secrets))


def _field_errors(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Per-field messages in the shapes APIs commonly use (Nexor does not document one)."""
    found: list[tuple[str, str]] = []
    for key in ("errors", "details", "fields"):
        value = body.get(key)
        if isinstance(value, dict):
            for name, msg in value.items():
                text = "; ".join(map(str, msg)) if isinstance(msg, list) else str(msg)
                found.append((str(name), text))
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    name = item.get("field") or item.get("path") or item.get("loc") or "?"
                    if isinstance(name, list):
                        name = ".".join(map(str, name))
                    found.append((str(name), str(item.get("message") or item.get("msg") or item)))
                elif isinstance(item, str):
                    found.append(("-", item))
    return found


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_API_TEXT else text[:_MAX_API_TEXT] + "…"


def status_error(
    status: int,
    body: Any,
    *,
    effect: Effect,
    retry_after: float | None,
    secrets: tuple[str, ...] = (),
) -> ApiStatusError:
    """Build the exception for a non-2xx response, worded for the model."""
    said = api_error_text(body, secrets)
    said_part = f" Nexor said: {said}." if said else ""
    if status in (400, 422):
        return BadRequest(
            status,
            f"Nexor rejected the request (HTTP {status}).{said_part} Nothing was changed. "
            "Fix the value(s) it names and call again.",
        )
    if status == 401:
        return AuthenticationFailed(
            status, f"Nexor did not accept the API key (HTTP 401).{said_part} {KEY_HELP}"
        )
    if status == 403:
        return PermissionDenied(
            status,
            f"Nexor refused access (HTTP 403).{said_part} The API key is not allowed to do this; "
            "retrying will not help. Ask the user to check the key's account in the Nexor dashboard.",
        )
    if status == 404:
        return LeadNotFound(status, f"{effect.not_found} (HTTP 404).{said_part} {effect.not_found_next}")
    if status == 409:
        return Conflict(status, f"Nexor reported a conflict (HTTP 409).{said_part} {effect.refused}")
    if status == 429:
        if retry_after is None:
            when = "Wait a few seconds before retrying."
        elif math.ceil(retry_after) <= 0:
            when = "Nexor allows retrying at once (Retry-After: 0)."
        else:
            when = f"Retry after {_seconds(retry_after)}."
        return RateLimited(status, f"Nexor's rate limit was reached (HTTP 429). {when}", retry_after)
    if 500 <= status <= 599:
        outcome = f" {effect.unknown}"
        if retry_after is not None:
            outcome += f" Nexor asked to retry after {_seconds(retry_after)}."
        return ServerError(
            status, f"Nexor had a server error (HTTP {status}).{said_part}{outcome}", retry_after
        )
    return UnexpectedStatus(
        status,
        f"Nexor answered with unexpected HTTP {status}.{said_part} "
        + (effect.unknown if effect.writes else "Try again later."),
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "a few seconds"
    whole = max(0, math.ceil(value))
    return f"{whole} second" + ("" if whole == 1 else "s")


def describe_body(raw: bytes, secrets: tuple[str, ...] = ()) -> str:
    """A short, safe description of an unexpected response body (masked first, then clipped)."""
    longest = max((len(secret) for secret in secrets), default=0)
    text = redact(raw[: _MAX_BODY_PREVIEW + longest].decode("utf-8", errors="replace"), secrets)
    cut = len(text) > _MAX_BODY_PREVIEW or len(raw) > _MAX_BODY_PREVIEW + longest
    clipped = text[:_MAX_BODY_PREVIEW] + ("…" if cut else "")
    return json.dumps(clean_text(clipped), ensure_ascii=False)
