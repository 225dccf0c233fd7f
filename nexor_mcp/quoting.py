"""Text from outside (Nexor, or a model's arguments) shown to a person: visibly data, never wording.

A lead's name, a tag or an error detail can hold line breaks, terminal escapes, bidi overrides or
zero-width characters. Wherever such text reaches a person (a question to confirm, a preview, the
terminal), it goes through one of these, so it can neither break a line, reorder what is around
it, hide a character, nor pass for the tool's own words:

- `quote(value)`: one line, in double quotes, escaped, capped: for a value inside a sentence.
- `block(text)`: a multi-line text a person must read whole (a message about to be sent), each
  line marked with a bar so that no line of it can pass for a line of the question.
- `one_line(text)`: terminal output (audit list/show): escaped and capped, without quotes.

Invisible and control characters (Unicode Cc, Cf, Zl, Zp, Co, Cs and unassigned) are shown as
`[U+202E]`; `\\n`, `\\r` and `\\t` as those escapes.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

QUOTED_MAX = 80
"""Characters of one quoted value; the rest is elided with "…"."""
BLOCK_BAR = "│ "
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every invisible or control character spelled out (`[U+202E]`, `\\n`)."""
    if text.isprintable() and text.isascii():
        return text  # the common case, and no character here can hide or reorder anything
    out: list[str] = []
    for char in text:
        if char == "\n" and keep_newlines:
            out.append(char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif unicodedata.category(char) in _HIDDEN_CATEGORIES:
            out.append(f"[U+{ord(char):04X}]")
        else:
            out.append(char)
    return "".join(out)


def _capped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def quote(value: Any, limit: int = QUOTED_MAX) -> str:
    """A value for a sentence a person reads: a string in double quotes (inner quotes and
    backslashes escaped), anything else as compact JSON; one line, invisible characters shown,
    at most `limit` characters inside the quotes."""
    if isinstance(value, str):
        inner = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{_capped(visible(inner), limit)}"'
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
    return _capped(visible(text), limit)


def one_line(text: str, limit: int | None = None) -> str:
    """Terminal output: `text` on one line with control and invisible characters escaped."""
    shown = visible(text)
    return shown if limit is None else _capped(shown, limit)


def block(text: str) -> str:
    """A multi-line text shown whole (a person approves all of it, so nothing is cut): every line
    starts with a bar, so no line of the text can pose as a line of the question, and invisible
    characters are shown."""
    return "\n".join(BLOCK_BAR + line for line in visible(text, keep_newlines=True).split("\n"))
