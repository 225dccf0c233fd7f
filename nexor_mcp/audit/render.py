"""How the audit commands show journal values to a person: the lines they print, and the values in them.

Every line printed is escaped (`quoting.one_line`): tag names, error details and everything else
in the journal came from Nexor or a model, and must not drive the terminal (ESC, CR, C1, bidi).
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from nexor_mcp.quoting import one_line, visible
from nexor_mcp.rules import ABSENT


def say(text: str, stream: TextIO) -> None:
    """Print one line with its control and invisible characters escaped (ESC, CR, C1, bidi...)."""
    print(one_line(text), file=stream)


def json_line(value: Any) -> str:
    """Compact JSON with every control or invisible character as a \\u escape: the same value for a
    program, and nothing that a terminal would act on."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if visible(text) == text:
        return text
    return "".join(json.dumps(char)[1:-1] if visible(char) != char else char for char in text)


def compact(value: Any) -> str:
    """A value as compact JSON (escaped when the line it is in is printed)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def shown(value: Any) -> str:
    """A value in a change line; a metadata key the lead does not have is "(absent)"."""
    return "(absent)" if value is ABSENT else compact(value)


def names(tags: Any) -> str:
    """Tag names as a list for a person; "(not recorded)" when the journal has none."""
    return "[" + ", ".join(map(str, tags)) + "]" if isinstance(tags, list) else "(not recorded)"


def short_time(text: str) -> str:
    return text[:19].replace("T", " ")
