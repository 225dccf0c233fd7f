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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nexor_mcp.fields import FIELDS_BY_NAME, LEAD_FIELDS, LeadField

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_UUID_EXAMPLE = '"3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"'
_PREVIEW_CHARS = 40

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
        name = self.argument if len(self.argument) <= _PREVIEW_CHARS else self.argument[:_PREVIEW_CHARS] + "…"
        return f"- {name}: {self.message}"


class InvalidArguments(Exception):
    """The arguments were rejected; no request was sent."""

    def __init__(self, tool: str, problems: list[Problem]) -> None:
        self.tool = tool
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"Invalid arguments for {self.tool}; nothing was sent to Nexor. Fix these and call again:"]
        lines.extend(str(problem) for problem in self.problems)
        return "\n".join(lines)


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
        if name == "lead_id":
            continue
        field = FIELDS_BY_NAME.get(name)
        if field is None:
            problems.append(Problem(name, _unknown_argument_hint(name, value)))
            continue
        checked = _check_field(field, value, problems)
        if checked is not _REJECTED:
            body[name] = checked
    if not problems and not body:
        names = ", ".join(field.name for field in LEAD_FIELDS)
        problems.append(Problem(
            "(arguments)",
            f"nothing to update: pass lead_id and at least one field to change ({names})",
        ))
    if problems:
        raise InvalidArguments("update_lead", problems)
    return LeadUpdate(lead_id=lead_id, body=body)


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
    if not value.strip():
        if field.nullable:
            problems.append(Problem(name, "is empty; pass null to clear it, or omit it to leave it unchanged"))
        else:
            problems.append(Problem(name, "cannot be empty; omit it to leave it unchanged"))
        return _REJECTED
    if field.kind == "email" and not _EMAIL.fullmatch(value):
        problems.append(Problem(name, f'expected an email address like "ana@example.com", got {preview(value)}'))
        return _REJECTED
    if field.kind == "uuid" and not _UUID.fullmatch(value):
        problems.append(Problem(name, f"expected a UUID like {_UUID_EXAMPLE} or null, got {preview(value)}"))
        return _REJECTED
    return value


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
        if not isinstance(key, str) or not key.strip():
            problems.append(Problem("metadata", "keys must be non-empty strings"))
            ok = False
        elif not _is_unicode_text(key) or (isinstance(item, str) and not _is_unicode_text(item)):
            problems.append(Problem(f"metadata.{key!a}"[:_PREVIEW_CHARS], _BAD_TEXT))
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
