"""What every sandbox resource module shares: the request a handler gets, the answers it gives, and
the strict parsing of bodies and query strings (unknown fields and parameters are a 400)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from nexor_mcp.json_types import Json

Reply = tuple[int, Any]

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Call:
    """One routed request: its method, the path's `{id}` (if any), the raw query string and body."""

    method: str
    lead_id: str
    query: str
    body: bytes


class Invalid(Exception):
    """A request Nexor would refuse; `reply` is the status and body to answer with."""

    def __init__(self, status: int, body: Json) -> None:
        super().__init__(body.get("message") or body.get("error"))
        self.reply: Reply = (status, body)


def validation(message: str) -> Invalid:
    return Invalid(400, {"error": "Validation error", "message": message})


def lead_not_found() -> Json:
    return {"error": "Not found", "message": "Lead not found or does not belong to your account"}


def now() -> str:
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and UUID.fullmatch(value) is not None


def json_object(body: bytes, allowed: Iterable[str]) -> Json:
    """The body as a JSON object with no field outside `allowed`; raises `Invalid` (400) otherwise."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        raise validation("Request body must be valid JSON") from None
    if not isinstance(data, dict):
        raise validation("Request body must be a JSON object")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise validation(f"Unknown field(s): {', '.join(unknown)}")
    return data


def query_params(query: str, allowed: Iterable[str]) -> dict[str, str]:
    """The query string's parameters; an unknown or repeated one is a 400."""
    pairs = parse_qsl(query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise validation(f"Unknown query parameter(s): {', '.join(unknown)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise validation(f"Query parameter(s) given more than once: {', '.join(repeated)}")
    return dict(pairs)


def comma_list(params: dict[str, str], name: str, choices: Iterable[str]) -> list[str] | None:
    """A comma-separated parameter whose items must all be in `choices`; None when absent."""
    if name not in params:
        return None
    options = list(choices)
    items = params[name].split(",")
    bad = [item for item in items if item not in options]
    if bad:
        raise validation(f"{name} must be a comma-separated list of {', '.join(options)}; got {params[name]!r}")
    return items


def text(data: Json, name: str, *, required: bool = False) -> str | None:
    """A non-empty string field (None when absent and not required)."""
    if name not in data or data[name] is None:
        if required:
            raise validation(f"{name} is required")
        return None
    value = data[name]
    if not isinstance(value, str) or not value.strip():
        raise validation(f"{name} must be a non-empty string")
    return value


def uuid_field(data: Json, name: str, *, required: bool = False) -> str | None:
    value = text(data, name, required=required)
    if value is not None and not is_uuid(value):
        raise validation(f"{name} must be a UUID")
    return value


def parse_time(value: str, name: str) -> datetime:
    """An ISO 8601 timestamp; a naive one is returned naive (the caller picks its timezone)."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise validation(f"{name} must be an ISO 8601 timestamp; got {value!r}") from None
