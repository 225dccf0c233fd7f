"""The lead's conversation: GET /leads/{id}/history, GET /leads/{id}/meetings, POST /meetings,
GET /templates and POST /messages (with each channel's needs and WhatsApp's 24-hour window)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nexor_mcp.json_types import Json
from nexor_mcp.sandbox.common import (
    EMAIL,
    Call,
    Invalid,
    Reply,
    comma_list,
    iso,
    json_object,
    now,
    parse_time,
    query_params,
    text,
    uuid_field,
    validation,
)
from nexor_mcp.sandbox.leads import find_lead
from nexor_mcp.sandbox.seed import HOST, MEETING_TYPES, State, activity, copy_of, meeting

CHANNELS = ("call", "whatsapp", "email")
MEETING_STATUSES = ("scheduled", "confirmed", "completed", "cancelled", "no_show")
WHATSAPP_WINDOW = timedelta(hours=24)


# --- history ---------------------------------------------------------------------------------------


def _integer(params: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        bounds = f"between {low} and {high}" if high is not None else f"{low} or more"
        raise validation(f"{name} must be an integer {bounds}; got {raw!r}")
    return int(raw)


def get_history(state: State, call: Call) -> Reply:
    lead = find_lead(state, call.lead_id)
    params = query_params(call.query, ("channel", "limit", "offset"))
    channels = comma_list(params, "channel", CHANNELS)
    limit = _integer(params, "limit", 50, 1, 200)
    offset = _integer(params, "offset", 0, 0, None)
    items = sorted(state.history.get(lead["id"], []), key=lambda item: str(item["timestamp"]))
    if channels is not None:
        items = [item for item in items if item["channel"] in channels]
    summary = {key: lead[key] for key in ("id", "first_name", "last_name", "phone", "email", "source", "created_at")}
    return 200, {"success": True, "lead": summary, "history": copy_of(items[offset : offset + limit])}


# --- meetings --------------------------------------------------------------------------------------

MEETING_FIELDS = (
    "lead_email", "lead_id", "title", "starts_at", "ends_at", "duration_minutes", "timezone", "meeting_url",
    "location_type", "location_details", "description", "host_email", "meeting_type_id", "attendee_name",
    "attendee_email", "attendee_phone", "additional_attendees", "external_calendar_provider", "external_event_id",
    "status",
)
# Kept with a meeting but not part of GET /leads/{id}/meetings's documented shape.
PRIVATE = ("lead_id", "description", "attendee_phone", "additional_attendees", "external_calendar_provider",
           "external_event_id")


def meeting_view(record: Json) -> Json:
    return {key: copy_of(value) for key, value in record.items() if key not in PRIVATE}


def get_meetings(state: State, call: Call) -> Reply:
    lead = find_lead(state, call.lead_id)
    statuses = comma_list(query_params(call.query, ("status",)), "status", MEETING_STATUSES)
    found = [m for m in state.meetings.get(lead["id"], []) if statuses is None or m["status"] in statuses]
    found.sort(key=lambda m: str(m["starts_at"]), reverse=True)
    return 200, {"success": True, "meetings": [meeting_view(m) for m in found]}


def record_meeting(state: State, call: Call) -> Reply:
    """Creates the meeting, or updates the one with the same external provider and event id.
    The response is undocumented; the sandbox answers `{success, meeting}` (201 created, 200 updated)."""
    body = json_object(call.body, MEETING_FIELDS)
    lead = _meeting_lead(state, body)
    fields = _meeting_fields(body, lead)
    provider, event = text(body, "external_calendar_provider"), text(body, "external_event_id")
    key = (provider, event) if provider and event else None
    existing_id = state.external_meetings.get(key) if key else None
    if existing_id is not None:
        for records in state.meetings.values():
            for record in records:
                if record["id"] == existing_id:
                    record.update(fields)
                    state.record(record["lead_id"], activity("meeting_updated", f"Meeting updated: {record['title']}",
                                                             f"Starts {record['starts_at']}", now(), "api"))
                    return 200, {"success": True, "meeting": meeting_view(record)}
    record = meeting(lead, **fields)
    state.meetings.setdefault(lead["id"], []).append(record)
    if key:
        state.external_meetings[key] = record["id"]
    state.record(lead["id"], activity("meeting_booked", f"Meeting booked: {record['title']}",
                                      f"Starts {record['starts_at']}", now(), "api"))
    return 201, {"success": True, "meeting": meeting_view(record)}


def _meeting_lead(state: State, body: Json) -> Json:
    lead_id = uuid_field(body, "lead_id")
    if lead_id is not None:
        return find_lead(state, lead_id)
    email = text(body, "lead_email")
    if email is None:
        raise validation("lead_email is required unless lead_id is given")
    matches = [lead for lead in state.leads.values() if (lead["email"] or "").casefold() == email.casefold()]
    if not matches:
        raise Invalid(404, {"error": "Not found", "message": "No lead with this email; create the lead first"})
    return max(matches, key=lambda lead: str(lead["updated_at"]))


def _meeting_fields(body: Json, lead: Json) -> Json:
    title = text(body, "title", required=True)
    zone_name = text(body, "timezone") or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise validation(f"timezone must be an IANA time zone name; got {zone_name!r}") from None
    starts = _moment(body, "starts_at", zone, required=True)
    assert starts is not None
    ends = _moment(body, "ends_at", zone)
    duration = body.get("duration_minutes")
    if (ends is None) == (duration is None):
        raise validation("give exactly one of ends_at and duration_minutes")
    if duration is not None:
        if not isinstance(duration, int) or isinstance(duration, bool) or duration < 1:
            raise validation("duration_minutes must be a positive integer")
        ends = starts + timedelta(minutes=duration)
    assert ends is not None
    if ends <= starts:
        raise validation("ends_at must be after starts_at")
    status = _choice(body, "status", ("scheduled", "confirmed"), "scheduled")
    host = text(body, "host_email")
    if host is not None and host.casefold() != HOST["email"]:
        raise validation(f"host_email {host} is not an active user in your account")
    type_id = uuid_field(body, "meeting_type_id")
    if type_id is not None and type_id not in MEETING_TYPES:
        raise validation("meeting_type_id not found")
    attendees = body.get("additional_attendees", [])
    if not isinstance(attendees, list) or not all(
        isinstance(a, dict) and set(a) <= {"name", "email"} and isinstance(a.get("email"), str) for a in attendees
    ):
        raise validation("additional_attendees must be an array of {name, email}")
    for name in ("attendee_email", "lead_email"):
        value = text(body, name)
        if value is not None and not EMAIL.fullmatch(value):
            raise validation(f"{name} must be an email address")
    fields: dict[str, Any] = {
        "lead_id": lead["id"], "title": title, "starts_at": iso(starts), "ends_at": iso(ends),
        "duration_minutes": round((ends - starts).total_seconds() / 60), "timezone": zone_name, "status": status,
        "meeting_url": text(body, "meeting_url"),
        "location_type": _choice(body, "location_type", ("video", "phone", "in_person"), "video"),
        "location_details": text(body, "location_details"), "description": text(body, "description"),
        "meeting_type": MEETING_TYPES[type_id] if type_id else None, "confirmed_by_lead": status == "confirmed",
        "additional_attendees": attendees, "attendee_phone": text(body, "attendee_phone") or lead["phone"],
        "external_calendar_provider": text(body, "external_calendar_provider"),
        "external_event_id": text(body, "external_event_id"),
    }
    attendee_name = text(body, "attendee_name")
    if attendee_name:
        fields["attendee_name"] = attendee_name
    fields["attendee_email"] = text(body, "attendee_email") or text(body, "lead_email") or lead["email"]
    return fields


def _moment(body: Json, name: str, zone: ZoneInfo, *, required: bool = False) -> datetime | None:
    value = text(body, name, required=required)
    if value is None:
        return None
    moment = parse_time(value, name)
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def _choice(body: Json, name: str, choices: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if value not in choices:
        raise validation(f"{name} must be one of {', '.join(choices)}")
    return str(value)


# --- templates and messages ------------------------------------------------------------------------


def list_templates(state: State, call: Call) -> Reply:
    params = query_params(call.query, ("status", "category"))
    for name, choices in (("status", ("APPROVED", "PENDING", "REJECTED")),
                          ("category", ("MARKETING", "UTILITY", "AUTHENTICATION"))):
        if name in params and params[name] not in choices:
            raise validation(f"{name} must be one of {', '.join(choices)}")
    found = [t for t in state.templates if all(t[name] == value for name, value in params.items())]
    return 200, {"success": True, "templates": copy_of(found)}


MESSAGE_FIELDS = ("lead_id", "workflow_id", "channel", "content", "html", "subject", "template_id", "components",
                  "begin_message")


def send_message(state: State, call: Call) -> Reply:
    body = json_object(call.body, MESSAGE_FIELDS)
    lead = find_lead(state, uuid_field(body, "lead_id", required=True) or "")
    workflow_id = uuid_field(body, "workflow_id", required=True)
    if workflow_id not in state.workflows:
        raise Invalid(404, {"error": "Not found", "message": "Workflow not found or does not belong to your account"})
    channel = body.get("channel")
    if channel not in CHANNELS:
        raise validation("channel must be one of whatsapp, email, call")
    content, html, subject = text(body, "content"), text(body, "html"), text(body, "subject")
    template_id = uuid_field(body, "template_id")
    text(body, "begin_message")
    components = body.get("components")
    if components is not None and not isinstance(components, list):
        raise validation("components must be an array")
    if channel != "whatsapp" and (template_id or components is not None):
        raise validation("template_id and components are for the whatsapp channel only")
    if components is not None and template_id is None:
        raise validation("components need a template_id")
    stamp = now()
    answer: Json = {"success": True, "channel": channel, "type": None, "message_id": None,
                    "provider_message_id": None, "activity_id": None, "call_id": None, "call_status": None}
    if channel == "whatsapp":
        kind, content = _whatsapp(state, lead, content, template_id)
        message_id = str(uuid.uuid4())
        wamid = "wamid.HBgL" + uuid.uuid4().hex[:24].upper()
        answer.update(type=kind, message_id=message_id, provider_message_id=wamid)
        state.record(lead["id"], _outbound(message_id, "whatsapp", content, stamp, message_type=kind,
                                           provider_message_id=wamid))
    elif channel == "email":
        if content is None and html is None:
            raise validation("email needs content (or html)")
        if not lead["email"]:
            raise validation("The lead has no email address; email cannot be sent")
        message_id, activity_id = str(uuid.uuid4()), str(uuid.uuid4())
        answer.update(message_id=message_id, activity_id=activity_id)
        state.record(lead["id"], _outbound(message_id, "email", content or html or "", stamp,
                                           subject=subject or "Message from your advisor"))
    else:
        if not lead["phone"]:
            raise validation("The lead has no phone number; a call cannot be started")
        call_id = str(uuid.uuid4())
        answer.update(call_id=call_id, call_status="registered")
        state.record(lead["id"], {"type": "call", "id": call_id, "channel": "call", "direction": "outbound",
                                  "duration_seconds": None, "call_status": "registered", "call_successful": None,
                                  "summary": None, "recording_url": None, "timestamp": stamp})
    return 200, answer


def _whatsapp(state: State, lead: Json, content: str | None, template_id: str | None) -> tuple[str, str]:
    """("text" | "template", the text sent); a template wins when both are given."""
    if content is None and template_id is None:
        raise validation("whatsapp needs content or template_id")
    if not lead["phone"]:
        raise validation("The lead has no phone number; WhatsApp cannot be sent")
    if template_id is not None:
        template = next((t for t in state.templates if t["id"] == template_id), None)
        if template is None:
            raise validation(f"Template {template_id} not found")
        if template["status"] != "APPROVED":
            raise validation(
                f"Template {template['name']} is {template['status']}; only APPROVED templates can be sent"
            )
        body = next((c.get("text", "") for c in template["components"] if c.get("type") == "BODY"), "")
        return "template", str(body)
    last_inbound = max(
        (str(item["timestamp"]) for item in state.history.get(lead["id"], [])
         if item["type"] == "message" and item["channel"] == "whatsapp" and item["direction"] == "inbound"),
        default=None,
    )
    if last_inbound is None or datetime.now(UTC) - datetime.fromisoformat(last_inbound) > WHATSAPP_WINDOW:
        raise validation(
            "Free-form WhatsApp text can only be sent within the 24-hour window after the lead's last WhatsApp "
            "message, and this lead has not written in the last 24 hours; send an approved template (template_id)"
        )
    assert content is not None
    return "text", content


def _outbound(message_id: str, channel: str, content: str, stamp: str, **extra: Any) -> Json:
    item: Json = {
        "type": "message", "id": message_id, "channel": channel, "direction": "outbound", "content": content,
        "message_type": "text", "status": "sent", "provider_message_id": None, "media_url": None, "attachments": [],
        "sent_at": stamp, "delivered_at": None, "read_at": None, "reaction": None, "buttons": [], "timestamp": stamp,
    }
    item.update(extra)
    return item
