"""Pydantic's verdict on a call's arguments, rendered as messages a model can act on.

Every problem is named by argument and says what is expected, all problems come at once, and no
pydantic boilerplate (error URLs, `input_value=`) or huge echo of the caller's value ever reaches
the model. An unknown argument gets a hint: "did you mean", "not an argument of this tool", or
"custom fields go inside metadata".
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import ErrorDetails

EXCERPT_CHARS = 40
MAX_LISTED_PROBLEMS = 20
MAX_MESSAGE_CHARS = 4000
CUSTOM = "nexor"
"""The pydantic error type of our own checks: its `message` context is the text to show."""
NESTED = "nexor_nested"
"""A nested metadata value: the message names the key, which only the error's location knows."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad argument and what is expected instead."""

    argument: str
    message: str

    def __str__(self) -> str:
        return f"- {shown_name(self.argument)}: {escaped(self.message)}"


class InvalidArguments(Exception):
    """The arguments were rejected; no request was sent."""

    def __init__(self, tool: str, problems: list[Problem]) -> None:
        self.tool = tool
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        """The message for the model: the first problems, a count of the rest, a bounded size."""
        lines = [f"Invalid arguments for {self.tool}; nothing was sent to Nexor. Fix these and call again:"]
        size = len(lines[0])
        for problem in self.problems[:MAX_LISTED_PROBLEMS]:
            line = str(problem)
            if size + len(line) > MAX_MESSAGE_CHARS:
                break
            lines.append(line)
            size += len(line) + 1
        unlisted = len(self.problems) - (len(lines) - 1)
        if unlisted:
            lines.append(f"- … and {unlisted} more problem{'' if unlisted == 1 else 's'} not listed here.")
        return "\n".join(lines)

    def argument_names(self) -> str:
        """The bad arguments' names for the log: escaped, clipped, and at most the listed ones."""
        names = [shown_name(problem.argument) for problem in self.problems[:MAX_LISTED_PROBLEMS]]
        more = len(self.problems) - len(names)
        return ", ".join(names) + (f" (+{more} more)" if more else "")


def shown_name(name: str) -> str:
    """A caller-supplied name as it may appear in a message or a log: control characters escaped
    (a newline in a name must not forge a line), clipped to a few dozen characters."""
    return escaped(name if len(name) <= EXCERPT_CHARS else name[:EXCERPT_CHARS] + "…")


def escaped(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else f"\\u{ord(char):04x}" for char in text)


def excerpt(value: Any) -> str:
    """A short, safe rendering of a caller's value for an error message (never a huge echo)."""
    kind = json_type(value)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > EXCERPT_CHARS:
        text = text[:EXCERPT_CHARS] + "…"
    return text if kind == "null" else f"{kind} {text}"


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class UnknownArgumentHints:
    """How one tool explains an argument it does not take.

    `aliases`: names a model plausibly uses for a real argument. `not_here`: attributes that exist
    in Nexor but that this tool cannot set, with why (never steered into metadata). `custom_fields`:
    whether anything else should be pointed at `metadata`.
    """

    aliases: Mapping[str, str] = field(default_factory=dict)
    not_here: Mapping[str, str] = field(default_factory=dict)
    custom_fields: bool = False


def unknown_argument(tool: str, name: str, value: Any, known: Sequence[str], hints: UnknownArgumentHints) -> str:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower().replace("-", "_").replace(" ", "_")
    if snake in known:
        return f"unknown argument; did you mean {snake}?"
    if snake in hints.aliases:
        return f"unknown argument; did you mean {hints.aliases[snake]}?"
    if snake in hints.not_here:
        return f"not an argument of {tool}: {hints.not_here[snake]}"
    close = difflib.get_close_matches(snake, known, n=1, cutoff=0.8)
    if close:
        return f"unknown argument; did you mean {close[0]}?"
    if not hints.custom_fields:
        return f"not an argument of {tool}, which takes only {', '.join(known)}"
    shown = name if name.isprintable() else "your_key"
    example = json.dumps({"metadata": {shown: value}}, ensure_ascii=False)
    if len(example) > 80:
        example = json.dumps({"metadata": {shown if len(shown) <= 40 else "your_key": "..."}}, ensure_ascii=False)
    return f"not a lead field; custom fields go inside metadata, e.g. {example}"


def render(
    tool: str,
    errors: list[ErrorDetails],
    arguments: Mapping[str, Any],
    descriptions: Mapping[str, str],
    hints: UnknownArgumentHints,
) -> list[Problem]:
    """One `Problem` per pydantic error, worded for the model. Past the listed ones, only counted."""
    known = list(descriptions)
    problems: list[Problem] = []
    for error in errors:
        if len(problems) >= MAX_LISTED_PROBLEMS:
            problems.append(Problem(_argument(error["loc"]), "another problem"))  # counted, not shown
            continue
        location = error["loc"]
        kind = error["type"]
        if kind == "extra_forbidden":
            name = str(location[0])
            problems.append(Problem(name, unknown_argument(tool, name, arguments.get(name), known, hints)))
        elif kind == "missing":
            problems.append(Problem(_argument(location), f"required: {descriptions.get(str(location[0]), '')}"))
        else:
            argument = (error.get("ctx") or {}).get("argument") or _argument(location)
            problems.append(Problem(str(argument), _message(error)))
    return problems


def _argument(location: tuple[int | str, ...]) -> str:
    """`("metadata", "budget")` → `metadata.budget`; `("tag_ids", 2)` → `tag_ids[2]`; `()` → the call."""
    if not location:
        return "(arguments)"
    if location[-1] == "[key]":
        location = location[:-2]  # a bad key of an object: named by the object, the message quotes the key
    name = str(location[0])
    for part in location[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    context = error.get("ctx") or {}
    value = error.get("input")
    if kind == CUSTOM:
        return str(context["message"])
    if kind == NESTED:
        key = str(error["loc"][-1])
        short = key if len(key) <= 20 else "key"
        return (
            f"nested {context['kind']}s are not supported; use a string, number, boolean or null "
            f'(flatten it into separate keys, e.g. "{short}_city")'
        )
    expected = _EXPECTED.get(kind)
    if expected:
        return f"expected {expected}, got {excerpt(value)}"
    if kind == "literal_error":
        return f"expected one of {context.get('expected')}, got {excerpt(value)}"
    if kind in ("greater_than_equal", "greater_than"):
        bound = context.get("ge", context.get("gt"))
        return f"must be {'at least' if kind == 'greater_than_equal' else 'more than'} {bound}, got {excerpt(value)}"
    if kind in ("less_than_equal", "less_than"):
        bound = context.get("le", context.get("lt"))
        return f"must be {'at most' if kind == 'less_than_equal' else 'less than'} {bound}, got {excerpt(value)}"
    if kind == "too_short":
        return f"needs at least {context.get('min_length')} item(s)"
    if kind == "too_long":
        return f"takes at most {context.get('max_length')} items, got {context.get('actual_length')}"
    return str(error["msg"])


_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "bool_type": "true or false",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}
