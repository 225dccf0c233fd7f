"""The approval page's HTML, in every state: pure functions from an `Approval` to a `str`.

This is the one screen where a person decides whether nexor-mcp contacts someone or moves a lead,
so it says in plain words what happens, and everything it shows from the request (the question,
the exact body, even the tool's name) is data, never markup or the page's own wording: each value
goes through `_text` (invisible and control characters spelled out, then HTML-escaped) and stands
inside a framed, labelled block. The page needs nothing from outside (inline CSS, no script, no
font or image), so the handler's Content-Security-Policy can forbid everything external.
"""

from __future__ import annotations

import html
import json
import math
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from nexor_mcp.approvals.style import CSS
from nexor_mcp.quoting import BLOCK_BAR, visible
from nexor_mcp.store.base import Approval
from nexor_mcp.tools import TOOLS_BY_NAME
from nexor_mcp.tools.spec import Group

PRODUCT = "nexor-mcp"
NEXT_STEP = "If you approve, nexor-mcp sends it once, now. If you decline, nothing is sent."
RETURN = "You can return to your assistant now."
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
Tone = Literal["pending", "approved", "declined", "expired", "refused", "missing"]


def _text(value: object) -> str:
    """Any value as page text: invisible characters spelled out (even where the question already
    did: defence in depth), then escaped, quotes included."""
    return html.escape(visible(str(value)), quote=True)


def _own(text: str) -> str:
    """The page's own wording, escaped, the product's name kept on one line."""
    return html.escape(text, quote=True).replace(PRODUCT, f'<span class="nw">{PRODUCT}</span>')


def _lines(value: str) -> list[str]:
    """Each line of a multi-line value, made visible; `\\r\\n` and `\\r` count as line breaks."""
    return visible(value.replace("\r\n", "\n").replace("\r", "\n"), keep_newlines=True).split("\n")


# --- what the tool does --------------------------------------------------------------------------


@dataclass(frozen=True)
class Consequence:
    """What approving causes, in plain words, and whether it can be taken back."""

    headline: str
    detail: str
    undo: str


_BY_GROUP = {
    Group.OUTREACH: Consequence(
        "Contacts a real person now.",
        "The lead receives it the moment you approve.",
        "No. A message cannot be unsent, and a call cannot be taken back.",
    ),
    Group.AUTOMATION: Consequence(
        "Moves the lead in the pipeline now.",
        "Nexor's automation may then contact the lead on its own.",
        "Partly. It can be changed back later, but the follow-ups it triggers cannot be taken back.",
    ),
    Group.WRITE: Consequence(
        "Changes the lead's data in Nexor now.",
        "Nobody outside is contacted.",
        "Only by hand: it can be changed back in Nexor later.",
    ),
}
_BY_TOOL = {
    "resume_automation": Consequence(
        "Hands the lead back to Nexor's automation now.",
        "The automation may then contact the lead and move it in the pipeline on its own.",
        _BY_GROUP[Group.AUTOMATION].undo,
    ),
}
_UNKNOWN = Consequence("Makes a change in Nexor now.", "", "Not known: assume it cannot be undone.")
_UNDOABLE = "Yes. It can be changed back later (nexor-mcp audit undo restores it when the audit journal is on)."


def consequence(tool: str) -> Consequence:
    """What `tool` causes, from its group (and whether its changes can be restored)."""
    spec = TOOLS_BY_NAME.get(tool)
    if spec is None:
        return _UNKNOWN
    found = _BY_TOOL.get(tool) or _BY_GROUP.get(spec.group, _UNKNOWN)
    if spec.undoable and spec.group is Group.WRITE:
        return Consequence(found.headline, found.detail, _UNDOABLE)
    return found


def tool_title(tool: str) -> str:
    """The tool's title ("Send message"), or its name when it is not one of ours."""
    spec = TOOLS_BY_NAME.get(tool)
    return spec.title if spec is not None else tool


# --- times ---------------------------------------------------------------------------------------


def utc(moment: float, *, seconds: bool = False) -> str:
    """`14:05 UTC on 18 Jun 2026`."""
    when = datetime.fromtimestamp(moment, UTC)
    return when.strftime(f"%H:%M{':%S' if seconds else ''} UTC on {when.day} %b %Y")


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def remaining(seconds: float) -> str:
    """`in 5 minutes` (rounded up, so it never promises more time than is left)."""
    if seconds <= 0:
        return "now"
    if seconds < 60:
        return "in less than a minute"
    minutes = math.ceil(seconds / 60)
    if minutes <= 90:
        return f"in {minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    return f"in about {hours} hour{'s' if hours != 1 else ''}"


# --- the request, as data --------------------------------------------------------------------------


def _json_escape_hidden(text: str) -> str:
    """JSON text with every invisible or control character as a `\\uXXXX` escape: still the same
    JSON, and nothing in it can hide or reorder."""
    out: list[str] = []
    for char in text:
        if char != "\n" and unicodedata.category(char) in _HIDDEN_CATEGORIES:
            code = ord(char)
            if code > 0xFFFF:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def _dumps(value: Any, level: int, width: int) -> str:
    """Indented JSON where a list or object that fits on its line stays on one line."""
    flat = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)
    if not isinstance(value, dict | list) or not value or 2 * level + len(flat) <= width:
        return flat
    inner = "  " * (level + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(key, ensure_ascii=False)}: {_dumps(item, level + 1, width)}"
                 for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    items = [f"{inner}{_dumps(item, level + 1, width)}" for item in value]
    return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"


def pretty_body(body: Any, width: int = 72) -> str:
    """The body as indented JSON (what fits on a line kept on it): readable, non-ASCII letters
    kept, and exact, invisible characters escaped (`\\u202e`), so it is still the same JSON."""
    try:
        text = _dumps(body, 0, width)
    except (TypeError, ValueError):
        text = repr(body)
    return _json_escape_hidden(text)


def _question_html(question: str) -> str:
    """The question, line by line: a text block (`│ ` lines, the message as sent) in a framed
    monospace box without its bars; other lines as lines; a blank line as space."""
    parts: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if block:
            parts.append(f'<blockquote class="sent">{chr(10).join(block)}</blockquote>')
            block.clear()

    for line in _lines(question):
        if line.startswith(BLOCK_BAR) or line == BLOCK_BAR.rstrip():
            block.append(html.escape(line[len(BLOCK_BAR):], quote=True))
            continue
        flush()
        if not line.strip():
            parts.append('<div class="gap"></div>')
        elif line.startswith("- "):
            parts.append(f'<p class="item">{html.escape(line, quote=True)}</p>')
        else:
            parts.append(f'<p class="line">{html.escape(line, quote=True)}</p>')
    flush()
    return "".join(parts)


# --- the frame -------------------------------------------------------------------------------------

def _frame(*, title: str, state: str, tone: Tone, body: str, refresh_after: float | None = None) -> str:
    """The whole document: header with the product and the page's state, then `body` (already HTML)."""
    refresh = f'<meta http-equiv="refresh" content="{max(1, math.ceil(refresh_after))}">' if refresh_after else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark"><meta name="robots" content="noindex, nofollow">'
        f"{refresh}<title>{_text(title)} · {PRODUCT}</title><style>{CSS}</style></head>"
        f'<body class="t-{tone}"><header><div class="wrap"><span class="brand">'
        f'<span class="mark" aria-hidden="true">n</span>{PRODUCT}</span>'
        f'<span class="state">{_text(state)}</span></div></header>'
        f'<main class="wrap">{body}</main></body></html>\n'
    )


def _question_section(approval: Approval, heading: str) -> str:
    return (
        f'<h2 id="what">{_text(heading)}</h2>'
        f'<div class="quoted" role="group" aria-labelledby="what">{_question_html(approval.question)}</div>'
        '<p class="note">Names, numbers and texts from Nexor and from your assistant are shown in quotes or in '
        "boxes, exactly as they will be sent; invisible characters are spelled out, like [U+202E].</p>"
    )


def _json_lines(text: str) -> str:
    """Each line of indented JSON as its own block, so that a line too long for a phone wraps
    under itself (a hanging indent) instead of at the left edge; the text is unchanged."""
    parts = []
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(" "))
        parts.append(f'<span class="jl" style="--i:{depth + 2}ch">{html.escape(line, quote=True)}</span>')
    return "".join(parts)


def _request_html(approval: Approval) -> str:
    """The method, the path and the JSON body, exactly as nexor-mcp would send them."""
    return (f'<pre class="request"><span class="jl"><b>{_text(approval.method)}</b> {_text(approval.path)}</span>'
            f"{_json_lines(pretty_body(approval.body))}</pre>")


def _request_section(approval: Approval) -> str:
    account = f" Nexor account {_text(approval.account[:12])}." if approval.account else ""
    return (f'<h2 id="request">Exact request</h2>{_request_html(approval)}'
            f'<p class="note">What nexor-mcp sends to the Nexor API, and nothing else.{account}</p>')


# --- the pages ---------------------------------------------------------------------------------------


def pending_page(approval: Approval, *, token: str, action: str, now: float | None = None) -> str:
    """The page that asks: what the tool does and causes, the whole question, whether it can be
    undone, when it expires, the exact request, then Approve and Decline in a POST form that
    carries the page's anti-forgery `token` to `action` (this page's own path). It reloads itself
    when the approval expires, so the buttons do not linger past it."""
    moment = time.time() if now is None else now
    what = consequence(approval.tool)
    title = tool_title(approval.tool)
    left = approval.expires_at - moment
    detail = f"<span>{_text(what.detail)}</span>" if what.detail else ""
    body = (
        '<article class="card" aria-labelledby="title">'
        '<p class="eyebrow">Your assistant asks to</p>'
        f'<h1 id="title">{_text(title)}</h1>'
        f'<div class="callout" role="note"><strong>{_text(what.headline)}</strong>{detail}</div>'
        f"{_question_section(approval, 'What it will do')}"
        '<dl class="facts">'
        f"<div><dt>Can it be undone?</dt><dd>{_text(what.undo)}</dd></div>"
        f"<div><dt>Expires</dt><dd>{_text(remaining(left).capitalize())}, at "
        f'<time datetime="{_iso(approval.expires_at)}">{_text(utc(approval.expires_at))}</time>. '
        "After that, nothing is sent.</dd></div>"
        "</dl>"
        f"{_request_section(approval)}"
        f'<form class="decide" method="post" action="{_text(action)}">'
        f'<input type="hidden" name="token" value="{_text(token)}">'
        f'<p class="next">{_own(NEXT_STEP)}</p>'
        '<div class="buttons">'
        '<button type="submit" name="decision" value="approve" class="approve">Approve</button>'
        '<button type="submit" name="decision" value="decline" class="decline">Decline</button>'
        "</div></form></article>"
        f"<footer>Requested at {_text(utc(approval.created_at, seconds=True))}. "
        "Only this page can approve it, and only once.</footer>"
    )
    return _frame(title=f"Approve: {title}", state="Approval requested", tone="pending", body=body,
                  refresh_after=left + 2 if left > 0 else None)


def _result(*, tone: Tone, icon: str, heading: str, lines: list[str], notice: str | None = None,
            approval: Approval | None = None, extra: str = "") -> str:
    """A decided (or refused, or missing) page: an icon, a plain heading, what it means, and the
    request it was about, folded away."""
    paragraphs = "".join(f'<p class="lead">{_own(visible(line))}</p>' for line in lines)
    said = f'<p class="notice" role="status">{_text(notice)}</p>' if notice else ""
    recap = ""
    if approval is not None:
        first = next((line for line in _lines(approval.question) if line.strip()), "")
        recap = (
            f'<p class="summary">{html.escape(first, quote=True)}</p>'
            f"<details><summary>What was asked: {_text(tool_title(approval.tool))}, in full</summary>"
            f'<div class="quoted">{_question_html(approval.question)}</div>{_request_html(approval)}</details>'
        )
    return (
        f'<article class="card" aria-labelledby="title"><div class="result">'
        f'<span class="icon" aria-hidden="true">{icon}</span><div>'
        f'<h1 id="title">{_own(visible(heading))}</h1>{paragraphs}{said}{extra}</div></div>{recap}</article>'
    )


def _by(approval: Approval) -> str:
    when = utc(approval.decided_at, seconds=True) if approval.decided_at is not None else "an unknown time"
    who = f", by {visible(approval.decided_by)}" if approval.decided_by else ""
    return f"at {when}{who}"


def decided_page(approval: Approval, *, just_now: bool = False, notice: str | None = None,
                 now: float | None = None) -> str:
    """An approved, used or declined approval: `just_now` right after this browser decided it
    ("Approved: nexor-mcp is sending it now"); otherwise it says it was already decided, how and
    when. Never any buttons."""
    moment = time.time() if now is None else now
    title = tool_title(approval.tool)
    if approval.state == "declined":
        if just_now:
            heading = "Declined: nothing was sent"
            lines = ["Your decision is recorded. Nothing was sent, and your assistant is told you said no.", RETURN]
        else:
            heading = "Already decided: declined"
            lines = [f"This request was declined {_by(approval)}. Nothing was sent, and it cannot be decided "
                     "again.", RETURN]
        return _frame(title=f"Declined: {title}", state="Declined", tone="declined",
                      body=_result(tone="declined", icon="&#x2715;", heading=heading, lines=lines, notice=notice,
                                   approval=approval))
    if just_now:
        heading = "Approved: nexor-mcp is sending it now"
        lines = ["Your approval is recorded. nexor-mcp sends it once, now, and tells your assistant the result.",
                 RETURN]
    else:
        heading = "Already decided: approved"
        if approval.state == "used":
            follow = "nexor-mcp has taken it to send, once. It cannot be approved again."
        elif approval.expires_at < moment:
            follow = (f"It was not sent before it expired at {utc(approval.expires_at)}, so it will not be sent. "
                      "Ask your assistant again if you still want it.")
        else:
            follow = (f"nexor-mcp sends it at most once, and only until {utc(approval.expires_at)}. "
                      "It cannot be decided again.")
        lines = [f"This request was approved {_by(approval)}.", follow, RETURN]
    return _frame(title=f"Approved: {title}", state="Approved", tone="approved",
                  body=_result(tone="approved", icon="&#x2713;", heading=heading, lines=lines, notice=notice,
                               approval=approval))


def expired_page(approval: Approval, *, notice: str | None = None) -> str:
    """A request nobody decided in time: nothing was sent, and nothing can be decided any more."""
    title = tool_title(approval.tool)
    lines = [f"It was not approved before {utc(approval.expires_at)}, so nothing was sent, and it can no longer "
             "be approved.", "If you still want it, ask your assistant again.", RETURN]
    return _frame(title=f"Expired: {title}", state="Expired", tone="expired",
                  body=_result(tone="expired", icon="&#x231B;", heading="This request expired", lines=lines,
                               notice=notice, approval=approval))


def not_found_page() -> str:
    """An id nobody created (or removed long after its expiry): nothing can be approved here."""
    lines = ["This link does not lead to an approval: it is mistyped, or the request was removed some days after "
             "it expired.", "Nothing can be approved from this link. Ask your assistant again if you need to."]
    return _frame(title="No such approval", state="Not found", tone="missing",
                  body=_result(tone="missing", icon="?", heading="No such approval", lines=lines))


def refused_page(reason: str, *, back: str | None = None) -> str:
    """A decision that did not come from this page (no or wrong token, another site): nothing was decided."""
    link = f'<p class="lead"><a href="{_text(back)}">Back to the approval</a></p>' if back else ""
    body = _result(tone="refused", icon="!", heading="Refused: nothing was decided",
                   lines=[reason, "Only the buttons on the approval page itself can decide it."], extra=link)
    return _frame(title="Refused", state="Refused", tone="refused", body=body)


def problem_page(heading: str, text: str) -> str:
    """Any other request the page cannot act on (too large, not a form, the store unreachable)."""
    return _frame(title=heading, state="Not decided", tone="refused",
                  body=_result(tone="refused", icon="!", heading=heading, lines=[text]))


def page_for(approval: Approval, *, token: str, action: str, just_decided: bool = False, notice: str | None = None,
             now: float | None = None) -> str:
    """The page for `approval` in whatever state it is now."""
    if approval.state == "pending":
        return pending_page(approval, token=token, action=action, now=now)
    if approval.state == "expired":
        return expired_page(approval, notice=notice)
    return decided_page(approval, just_now=just_decided, notice=notice, now=now)


__all__ = [
    "NEXT_STEP",
    "RETURN",
    "Consequence",
    "consequence",
    "decided_page",
    "expired_page",
    "not_found_page",
    "page_for",
    "pending_page",
    "pretty_body",
    "problem_page",
    "refused_page",
    "remaining",
    "tool_title",
    "utc",
]
