"""The argument types tools are declared with: each is a pydantic type carrying its own check, the
message it gives, and the JSON Schema agents see.

The checks are strict (no coercion of `5` to `"5"`), and what they accept is sent exactly as given:
no trimming, no reformatting; only UUIDs are lowercased, because Nexor returns them lowercase.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import MISSING, BeforeValidator, Field, PlainValidator, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

from nexor_mcp.client import MAX_REQUEST_BYTES
from nexor_mcp.rules import UPDATED_AT_COVERS
from nexor_mcp.tools.arguments import CUSTOM, NESTED, excerpt, json_type

MAX_TEXT_BYTES = 64 * 1024
"""Most UTF-8 bytes in one text value, metadata key or metadata value that is sent to Nexor."""
MAX_BODY_BYTES = MAX_REQUEST_BYTES
"""Most UTF-8 bytes in one request body (the client refuses any larger body, whatever the tool)."""

UUID_EXAMPLE = '"3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"'
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# local@domain: no spaces, controls or a second @ in the local part; domain labels of letters and
# digits (any script) with inner hyphens; a top-level label of 2+ letters (or an xn-- label).
_EMAIL = re.compile(
    r"[^@\s\x00-\x1f\x7f]{1,64}@(?:[^\W_](?:[^\W_]|-){0,61}(?<!-)\.)+(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})",
    re.IGNORECASE,
)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What a value may not hold: lone surrogates and control characters (tab and line breaks allowed in
# multi-line text); one search each, since they run on every string a caller sends.
_REFUSED = re.compile("[\ud800-\udfff\x00-\x1f\x7f-\x9f\u2028\u2029]")
_REFUSED_MULTILINE = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})
_BLANK_LOOKALIKES = frozenset("\u115f\u1160\u3164\uffa0\u2800")  # Hangul fillers, braille blank
BAD_TEXT = "contains characters that are not valid Unicode text (a lone surrogate such as \\ud800)"


def problem(message: str) -> PydanticCustomError:
    """An error whose message is shown to the model as is."""
    return PydanticCustomError(CUSTOM, "{message}", {"message": message})


def problem_at(argument: str, message: str) -> PydanticCustomError:
    """An error found by a whole-call check, attributed to the argument it is about."""
    return PydanticCustomError(CUSTOM, "{message}", {"message": message, "argument": argument})


def is_blank(text: str) -> bool:
    """True when `text` would show as nothing: spaces, controls, invisible marks and fillers only."""
    first = text[:1]
    if first.isalnum() and first not in _BLANK_LOOKALIKES:
        return False  # the usual case, decided by the first character
    return all(
        char.isspace() or char in _BLANK_LOOKALIKES or unicodedata.category(char) in _INVISIBLE_CATEGORIES
        for char in text
    )


def text_problem(text: str, *, multiline: bool) -> str | None:
    """Why `text` cannot be sent as a value, or None: not Unicode, control characters, too long."""
    found = (_REFUSED_MULTILINE if multiline else _REFUSED).search(text)
    if found:
        if _LONE_SURROGATE.match(found.group()):
            return BAD_TEXT
        allowed = " (tab and line breaks are allowed)" if multiline else ""
        return f"contains the control character {json.dumps(found.group())}{allowed}; remove it"
    if len(text) * 4 > MAX_TEXT_BYTES:  # only then can the UTF-8 form be over the limit
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_TEXT_BYTES:
            return f"is {size:,} bytes long, over the {MAX_TEXT_BYTES // 1024} KiB limit for one value"
    return None


# --- strings ---------------------------------------------------------------------------------------


def _text(value: Any, info: ValidationInfo, *, nullable: bool, kind: str = "text") -> str | None:
    name = info.field_name or "value"
    if value is None:
        if nullable:
            return None
        raise problem("cannot be null; omit it to leave it unchanged")
    if not isinstance(value, str):
        raise problem(f"expected {'a string or null' if nullable else 'a string'}, got {excerpt(value)}")
    if _LONE_SURROGATE.search(value):
        raise problem(BAD_TEXT)
    if is_blank(value):
        if nullable:
            raise problem(f'is empty; to clear it pass null or clear: ["{name}"], or omit it to leave it unchanged')
        raise problem("cannot be empty; omit it to leave it unchanged")
    if value == "null":
        # What a client that cannot send JSON null sends instead (the Inspector CLI does).
        fix = f'pass null or clear: ["{name}"]' if nullable else "it cannot be cleared; omit it"
        raise problem(f'the text "null" is not stored as a value; to clear {name} {fix}')
    if kind == "email" and not _EMAIL.fullmatch(value):
        raise problem(f'expected an email address like "ana@example.com", got {excerpt(value)}')
    if kind == "uuid":
        if not _UUID.fullmatch(value):
            raise problem(f"expected a UUID like {UUID_EXAMPLE}{' or null' if nullable else ''}, got {excerpt(value)}")
        return value.lower()
    found = text_problem(value, multiline=False)
    if found:
        raise problem(found)
    return value


def _required_text(value: Any, info: ValidationInfo) -> str:
    checked = _text(value, info, nullable=False)
    assert checked is not None
    return checked


def _nullable_text(value: Any, info: ValidationInfo) -> str | None:
    return _text(value, info, nullable=True)


def _nullable_email(value: Any, info: ValidationInfo) -> str | None:
    return _text(value, info, nullable=True, kind="email")


def _required_email(value: Any, info: ValidationInfo) -> str:
    checked = _text(value, info, nullable=False, kind="email")
    assert checked is not None
    return checked


def _nullable_uuid(value: Any, info: ValidationInfo) -> str | None:
    return _text(value, info, nullable=True, kind="uuid")


def _uuid(value: Any, info: ValidationInfo | None = None) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise problem(f"expected a UUID like {UUID_EXAMPLE}, got {excerpt(value)}")
    return value.lower()


_STRING = {"type": "string"}  # non-empty is checked with a clear message; not worth 15 bytes per field in tools/list
_NULL = {"type": "null"}

Text = Annotated[str, PlainValidator(_required_text), WithJsonSchema(_STRING)]
"""A non-empty single-line string; null is refused."""
NullableText = Annotated[str | None, PlainValidator(_nullable_text), WithJsonSchema({"anyOf": [_STRING, _NULL]})]
"""A non-empty single-line string, or null to clear the field."""
Email = Annotated[str, PlainValidator(_required_email), WithJsonSchema({"type": "string", "format": "email"})]
NullableEmail = Annotated[
    str | None,
    PlainValidator(_nullable_email),
    WithJsonSchema({"anyOf": [{"type": "string", "format": "email"}, _NULL]}),
]
Uuid = Annotated[str, PlainValidator(_uuid), WithJsonSchema({"type": "string", "format": "uuid"})]
"""A UUID in any case; sent lowercased."""
NullableUuid = Annotated[
    str | None,
    PlainValidator(_nullable_uuid),
    WithJsonSchema({"anyOf": [{"type": "string", "format": "uuid"}, _NULL]}),
]


def _free_text(value: Any, info: ValidationInfo) -> str:
    """Message-like text: line breaks and tabs allowed (a note, a reason, a message body)."""
    if not isinstance(value, str):
        raise problem(f"expected a string, got {excerpt(value)}")
    if is_blank(value):
        raise problem("cannot be empty; omit it if there is nothing to say")
    found = text_problem(value, multiline=True)
    if found:
        raise problem(found)
    return value


FreeText = Annotated[str, PlainValidator(_free_text), WithJsonSchema(_STRING)]
"""Non-empty text that may span lines: a reason, a description, a message."""


def _timestamp(value: Any, info: ValidationInfo) -> str:
    """An ISO 8601 date-time, sent exactly as written (Nexor reads one without an offset in `timezone`)."""
    if not isinstance(value, str):
        raise problem(f'expected an ISO 8601 date-time like "2026-12-01T15:00:00-03:00", got {excerpt(value)}')
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise problem(
            f'expected an ISO 8601 date-time like "2026-12-01T15:00:00-03:00", got {excerpt(value)}'
        ) from None
    if "T" not in value and " " not in value:
        raise problem(f'expected a date and a time like "2026-12-01T15:00:00Z", got {excerpt(value)}')
    return value


Timestamp = Annotated[str, PlainValidator(_timestamp), WithJsonSchema({"type": "string", "format": "date-time"})]


def known_zone(name: str) -> bool:
    """Whether `name` is a time zone in this machine's IANA database."""
    try:
        ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        return False
    return True


@functools.cache
def _zone_database() -> bool:
    # Windows has none unless the tzdata package is installed: then no name can be checked here.
    return known_zone("America/Santiago")


def _time_zone(value: Any, info: ValidationInfo) -> str:
    """An IANA time zone name, sent as written: Nexor reads a time without an offset in it, so a
    wrong name would put the meeting at the wrong instant (or be refused)."""
    name = _required_text(value, info)
    if _zone_database() and not known_zone(name):
        raise problem(f'expected an IANA time zone name like "America/Santiago", got {excerpt(value)}')
    return name


TimeZone = Annotated[str, PlainValidator(_time_zone), WithJsonSchema(_STRING)]


# --- metadata --------------------------------------------------------------------------------------


def _metadata_object(value: Any) -> Any:
    """Some clients send objects as JSON text: accept that, but only for an object."""
    if value is None:
        raise problem("cannot be null; pass an object")
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    if not isinstance(value, dict):
        raise problem(f'expected an object of custom fields like {{"budget": 5000}}, got {excerpt(value)}')
    return value


def _metadata_key(key: Any) -> str:
    if not isinstance(key, str) or is_blank(key):
        raise problem("keys must be non-empty strings")
    found = text_problem(key, multiline=False)
    if found:
        raise problem(f"key {excerpt(key)} {found}")
    return key


def _metadata_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        raise PydanticCustomError(NESTED, "nested {kind}s are not supported", {"kind": json_type(value)})
    if isinstance(value, float) and not math.isfinite(value):
        raise problem("numbers must be finite")
    if isinstance(value, str):
        found = text_problem(value, multiline=True)
        if found:
            raise problem(found)
    elif not (value is None or isinstance(value, int | float | bool)):
        raise problem(f"unsupported value {excerpt(value)}")
    return value


_SCALAR = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, _NULL]

Metadata = Annotated[
    dict[Annotated[str, PlainValidator(_metadata_key)], Annotated[Any, PlainValidator(_metadata_value)]],
    BeforeValidator(_metadata_object),
    WithJsonSchema({"type": "object", "additionalProperties": {"anyOf": _SCALAR}}),
]
"""Custom fields: a flat object of strings, numbers, booleans and nulls (or JSON text holding one)."""


# --- write safety ----------------------------------------------------------------------------------
# Arguments that steer the server, never sent to Nexor (spec.CONTROL_ARGUMENTS lists them).


def dry_run() -> Any:
    return Field(False, description="true: send nothing; show what would change.")


def if_unchanged_since() -> Any:
    return Field(
        MISSING,
        description=(
            "The lead's updated_at as you read it; if it changed since, nothing is written (best effort). "
            + UPDATED_AT_COVERS
        ),
    )


def confirmation() -> Any:
    return Field(MISSING, description="Only when a result asked for it, after the user approved; same arguments.")
