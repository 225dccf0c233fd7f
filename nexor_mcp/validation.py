"""Checks tool arguments before any request leaves the process, and builds the PATCH body.

The server receives the raw `arguments` dict (the low-level SDK server does no validation), so an
omitted field and an explicit `null` stay distinguishable: the body holds exactly the keys the
caller wrote. Every problem found is reported at once, named by argument, in words a model can act
on.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nexor_mcp.fields import FIELDS_BY_NAME, LEAD_FIELDS, LeadField

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# local@domain: no spaces, controls or a second @ in the local part; domain labels of letters and
# digits (any script) with inner hyphens; a top-level label of 2+ letters (or an xn-- label).
_EMAIL = re.compile(
    r"[^@\s\x00-\x1f\x7f]{1,64}@(?:[^\W_](?:[^\W_]|-){0,61}(?<!-)\.)+(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})",
    re.IGNORECASE,
)
_UUID_EXAMPLE = '"3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"'
_PREVIEW_CHARS = 40

MAX_TEXT_BYTES = 64 * 1024
"""Most UTF-8 bytes in one text field, metadata key or metadata value that is sent to Nexor."""
MAX_BODY_BYTES = 256 * 1024
"""Most UTF-8 bytes in one request body: a value this big is a mistake, and Nexor would store it."""
MAX_LISTED_PROBLEMS = 20
MAX_MESSAGE_CHARS = 4000

# Lead attributes that exist in Nexor but that a PATCH of the lead cannot set: pointing a model at
# `metadata` for these would silently store the wrong thing.
_NOT_WRITABLE = {
    "created_at": "it is set by Nexor",
    "updated_at": "it is set by Nexor",
    "tags": "tags are managed by Nexor's tag endpoints, not by this tool",
    "workflow_id": "workflow enrollment is not changed by this tool",
    "status": "the workflow status is not changed by this tool",
    "campaign": "use campaign_id (a UUID, or null to remove the campaign)",
    "variables": "variables are extracted by Nexor's AI, not written by this tool",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad argument and what is expected instead."""

    argument: str
    message: str

    def __str__(self) -> str:
        return f"- {shown_name(self.argument)}: {_escaped(self.message)}"


def shown_name(name: str) -> str:
    """A caller-supplied name as it may appear in a message or a log: control characters escaped
    (a newline in a name must not forge a line), clipped to a few dozen characters."""
    return _escaped(name if len(name) <= _PREVIEW_CHARS else name[:_PREVIEW_CHARS] + "…")


def _escaped(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else f"\\u{ord(char):04x}" for char in text)


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


@dataclass(frozen=True, slots=True)
class LeadUpdate:
    """A validated update: the lead to patch and the exact body to send."""

    lead_id: str
    body: dict[str, Any]


def preview(value: Any) -> str:
    """A short, safe rendering of a caller's value for an error message (never a huge echo)."""
    kind = _json_type(value)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _PREVIEW_CHARS:
        text = text[:_PREVIEW_CHARS] + "…"
    return text if kind == "null" else f"{kind} {text}"


def _json_type(value: Any) -> str:
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


def check_lead_id(arguments: Mapping[str, Any], problems: list[Problem]) -> str:
    """Validate `lead_id`; returns it in canonical lowercase form (it goes into the URL path)."""
    if "lead_id" not in arguments:
        problems.append(Problem("lead_id", f"required: the lead's UUID, e.g. {_UUID_EXAMPLE}"))
        return ""
    value = arguments["lead_id"]
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        problems.append(Problem("lead_id", f"expected a UUID like {_UUID_EXAMPLE}, got {preview(value)}"))
        return ""
    return value.lower()


def parse_get_arguments(arguments: Mapping[str, Any] | None) -> str:
    """Validate `get_lead` arguments and return the lead id."""
    arguments = arguments or {}
    problems: list[Problem] = []
    lead_id = check_lead_id(arguments, problems)
    for name in arguments:
        if name != "lead_id":
            problems.append(Problem(name, "not an argument of get_lead, which takes only lead_id"))
    if problems:
        raise InvalidArguments("get_lead", problems)
    return lead_id


def parse_update_arguments(arguments: Mapping[str, Any] | None) -> LeadUpdate:
    """Validate `update_lead` arguments and build the PATCH body from exactly the fields given."""
    arguments = arguments or {}
    problems: list[Problem] = []
    lead_id = check_lead_id(arguments, problems)
    body: dict[str, Any] = {}
    for name, value in arguments.items():
        if name in ("lead_id", "clear"):
            continue
        field = FIELDS_BY_NAME.get(name)
        if field is None:
            # Hints cost a fuzzy match each: past the listed problems, only count.
            hint = _unknown_argument_hint(name, value) if len(problems) < MAX_LISTED_PROBLEMS else "unknown argument"
            problems.append(Problem(name, hint))
            continue
        checked = _check_field(field, value, problems)
        if checked is not _REJECTED:
            body[name] = checked
    if "clear" in arguments:
        for name in _check_clear(arguments["clear"], arguments, problems):
            body[name] = None
    if not problems and not body:
        names = ", ".join(field.name for field in LEAD_FIELDS)
        problems.append(Problem(
            "(arguments)",
            f"nothing to update: pass lead_id and at least one field to change ({names}), or clear",
        ))
    if not problems:
        size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_BODY_BYTES:
            problems.append(Problem(
                "(arguments)",
                f"the update is {size:,} bytes of JSON, over the {MAX_BODY_BYTES // 1024} KiB limit; "
                "send less at once (split metadata over several calls)",
            ))
    if problems:
        raise InvalidArguments("update_lead", problems)
    return LeadUpdate(lead_id=lead_id, body=body)


NULLABLE_NAMES = tuple(field.name for field in LEAD_FIELDS if field.nullable)


def _check_clear(value: Any, arguments: Mapping[str, Any], problems: list[Problem]) -> list[str]:
    """`clear`: names of nullable fields to set to null, for clients that cannot send a JSON null."""
    expected = f"expected an array of field names to clear, from {', '.join(NULLABLE_NAMES)}"
    if not isinstance(value, list):
        problems.append(Problem("clear", f'{expected}, e.g. ["phone", "title"]; got {preview(value)}'))
        return []
    names: list[str] = []
    for item in value:
        if not isinstance(item, str):
            problems.append(Problem("clear", f"{expected}; got {preview(item)} in it"))
        elif item in NULLABLE_NAMES:
            if item in arguments:
                problems.append(Problem(
                    "clear", f"{item} is both set and cleared; pass it in one place only"
                ))
            elif item not in names:
                names.append(item)
        elif item in FIELDS_BY_NAME:
            problems.append(Problem("clear", f"{item} cannot be cleared (only {', '.join(NULLABLE_NAMES)} can)"))
        else:
            problems.append(Problem("clear", f"{shown_name(item)!r} is not a field; {expected}"))
    return names


_REJECTED = object()


def _check_field(field: LeadField, value: Any, problems: list[Problem]) -> Any:
    """Return the value to send for `field`, or `_REJECTED` after recording why not."""
    name = field.name
    if value is None:
        if field.nullable:
            return None
        hint = "omit it to leave it unchanged" if field.kind != "metadata" else "pass an object"
        problems.append(Problem(name, f"cannot be null; {hint}"))
        return _REJECTED
    if field.kind == "metadata":
        return _check_metadata(value, problems)
    expected = "a string or null" if field.nullable else "a string"
    if not isinstance(value, str):
        problems.append(Problem(name, f"expected {expected}, got {preview(value)}"))
        return _REJECTED
    if not _is_unicode_text(value):
        problems.append(Problem(name, _BAD_TEXT))
        return _REJECTED
    if is_blank(value):
        if field.nullable:
            problems.append(Problem(
                name, f'is empty; to clear it pass null or clear: ["{name}"], or omit it to leave it unchanged'
            ))
        else:
            problems.append(Problem(name, "cannot be empty; omit it to leave it unchanged"))
        return _REJECTED
    if value == "null":
        # What a client that cannot send JSON null sends instead (the Inspector CLI does).
        fix = f'pass null or clear: ["{name}"]' if field.nullable else "it cannot be cleared; omit it"
        problems.append(Problem(name, f'the text "null" is not stored as a value; to clear {name} {fix}'))
        return _REJECTED
    if field.kind == "email" and not _EMAIL.fullmatch(value):
        problems.append(Problem(name, f'expected an email address like "ana@example.com", got {preview(value)}'))
        return _REJECTED
    if field.kind == "uuid":
        if not _UUID.fullmatch(value):
            problems.append(Problem(name, f"expected a UUID like {_UUID_EXAMPLE} or null, got {preview(value)}"))
            return _REJECTED
        return value.lower()
    problem = _text_problem(value, multiline=False)
    if problem:
        problems.append(Problem(name, problem))
        return _REJECTED
    return value


# Characters that render as nothing: a value made only of these is as empty as "".
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})
_BLANK_LOOKALIKES = frozenset("\u115f\u1160\u3164\uffa0\u2800")  # Hangul fillers, braille blank


def is_blank(text: str) -> bool:
    """True when `text` would show as nothing: spaces, controls, invisible marks and fillers only."""
    return all(
        char.isspace() or char in _BLANK_LOOKALIKES or unicodedata.category(char) in _INVISIBLE_CATEGORIES
        for char in text
    )


def _text_problem(text: str, *, multiline: bool) -> str | None:
    """Why `text` cannot be sent as a value, or None: not Unicode, control characters, too long."""
    if not _is_unicode_text(text):
        return _BAD_TEXT
    for char in text:
        if unicodedata.category(char) == "Cc" or char in "\u2028\u2029":
            if multiline and char in "\t\n\r":
                continue
            allowed = "" if not multiline else " (tab and line breaks are allowed)"
            return f"contains the control character {json.dumps(char)}{allowed}; remove it"
    size = len(text.encode())
    if size > MAX_TEXT_BYTES:
        return f"is {size:,} bytes long, over the {MAX_TEXT_BYTES // 1024} KiB limit for one value"
    return None


def _check_metadata(value: Any, problems: list[Problem]) -> Any:
    if isinstance(value, str):
        # Some clients send objects as JSON text; accept that, but only for an object.
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            value = parsed
    if not isinstance(value, dict):
        problems.append(Problem(
            "metadata",
            f'expected an object of custom fields like {{"budget": 5000}}, got {preview(value)}',
        ))
        return _REJECTED
    ok = True
    for key, item in value.items():
        if not isinstance(key, str) or is_blank(key):
            problems.append(Problem("metadata", "keys must be non-empty strings"))
            ok = False
        elif not _is_unicode_text(key) or (isinstance(item, str) and not _is_unicode_text(item)):
            problems.append(Problem(f"metadata.{key!a}"[:_PREVIEW_CHARS], _BAD_TEXT))
            ok = False
        elif key_problem := _text_problem(key, multiline=False):
            problems.append(Problem(f"metadata key {key}", key_problem))
            ok = False
        elif isinstance(item, str) and (item_problem := _text_problem(item, multiline=True)):
            problems.append(Problem(f"metadata.{key}", item_problem))
            ok = False
        elif isinstance(item, dict | list):
            short = key if len(key) <= 20 else "key"
            problems.append(Problem(
                f"metadata.{key}",
                f"nested {_json_type(item)}s are not supported; use a string, number, boolean or null "
                f'(flatten it into separate keys, e.g. "{short}_city")',
            ))
            ok = False
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(Problem(f"metadata.{key}", "numbers must be finite"))
            ok = False
        elif not (item is None or isinstance(item, str | int | float | bool)):
            problems.append(Problem(f"metadata.{key}", f"unsupported value {preview(item)}"))
            ok = False
    return value if ok else _REJECTED


def _is_unicode_text(text: str) -> bool:
    """False for strings that cannot be sent as UTF-8 (lone surrogates from a `\\ud800` escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_BAD_TEXT = "contains characters that are not valid Unicode text (a lone surrogate such as \\ud800)"

# Names a model plausibly uses for a real field.
_ALIASES = {
    "email_address": "email", "mail": "email", "phone_number": "phone", "mobile": "phone",
    "telephone": "phone", "job_title": "title", "position": "title", "role": "title",
    "company_name": "company", "organization": "company", "organisation": "company",
    "surname": "last_name", "lastname": "last_name", "family_name": "last_name",
    "firstname": "first_name", "given_name": "first_name",
    "custom_fields": "metadata", "meta": "metadata", "id": "lead_id",
}


def _unknown_argument_hint(name: str, value: Any) -> str:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower().replace("-", "_").replace(" ", "_")
    if snake in FIELDS_BY_NAME or snake == "lead_id":
        return f"unknown argument; did you mean {snake}?"
    if snake in _ALIASES:
        return f"unknown argument; did you mean {_ALIASES[snake]}?"
    if snake in _NOT_WRITABLE:
        return f"not an argument of update_lead: {_NOT_WRITABLE[snake]}"
    close = difflib.get_close_matches(snake, [*FIELDS_BY_NAME, "lead_id"], n=1, cutoff=0.8)
    if close:
        return f"unknown argument; did you mean {close[0]}?"
    example = json.dumps({"metadata": {name: value}}, ensure_ascii=False)
    if len(example) > 80:
        example = json.dumps({"metadata": {name if len(name) <= 40 else "your_key": "..."}}, ensure_ascii=False)
    return f"not a lead field; custom fields go inside metadata, e.g. {example}"
