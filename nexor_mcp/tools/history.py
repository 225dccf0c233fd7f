"""The conversation and the meetings: read the lead's timeline, list and record meetings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import MISSING, Field, model_validator

from nexor_mcp import endpoints
from nexor_mcp.client import NexorClient, OnRetry
from nexor_mcp.json_types import Json
from nexor_mcp.request import Request
from nexor_mcp.tools.arguments import UnknownArgumentHints
from nexor_mcp.tools.fields import Email, FreeText, Text, Timestamp, TimeZone, Uuid, problem
from nexor_mcp.tools.leads import LEAD_ID, PASSED_THROUGH
from nexor_mcp.tools.spec import Arguments, Group, SendMore, ToolSpec

Channel = Literal["call", "whatsapp", "email"]
MeetingStatus = Literal["scheduled", "confirmed", "completed", "cancelled", "no_show"]


class HistoryArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    channels: Annotated[list[Channel], Field(min_length=1)] | MISSING = Field(MISSING, description="Default: all.")
    limit: int = Field(50, ge=1, le=200, description="Page size.")
    offset: int = Field(0, ge=0, description="The previous page's next_offset.")


async def get_lead_history(client: NexorClient, arguments: HistoryArguments, on_retry: OnRetry | None) -> Json:
    channels: list[str] | None = None if arguments.channels is MISSING else list(arguments.channels)
    request = endpoints.get_lead_history(arguments.lead_id, channels, arguments.limit, arguments.offset)
    return await client.call(request, on_retry)


GET_LEAD_HISTORY = ToolSpec(
    name="get_lead_history",
    title="Get lead history",
    description=(
        "Read a lead's timeline: WhatsApp and email messages, calls with summaries, activity. "
        "next_offset is null on the last page."
    ),
    group=Group.READ,
    arguments=HistoryArguments,
    output_schema={
        "type": "object",
        "properties": {
            "history": {"type": "array"},
            "next_offset": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["history", "next_offset"],
    },
    handler=get_lead_history,
    hints=UnknownArgumentHints(aliases={"channel": "channels", "id": "lead_id", "page_size": "limit"}),
)


INSTANTS = "starts_at_utc/ends_at_utc are the absolute instants (Z)"


def utc_instant(moment: Any, zone: Any) -> str | None:
    """`moment` (ISO 8601) as the UTC instant it names, ending in Z: one with an offset (or Z) is
    that instant; one without is a wall-clock time in `zone` (an IANA name; UTC when absent), with
    that zone's offset on that date, daylight saving time included. None when it cannot be read."""
    if not isinstance(moment, str) or not isinstance(zone, str | None):
        return None
    try:
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC if zone in (None, "", "UTC") else ZoneInfo(zone))
        instant = parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError, ZoneInfoNotFoundError):
        return None  # not a timestamp, not a time zone name, or out of range: never a guess
    return instant.isoformat(timespec="milliseconds" if instant.microsecond else "seconds").replace("+00:00", "Z")


def instants(meeting: Json) -> Json:
    """`starts_at_utc` and `ends_at_utc` of a meeting Nexor listed (null when not readable). Nexor
    documents the listing's times as UTC, so a time there without an offset is read as UTC."""
    return {
        "starts_at_utc": utc_instant(meeting.get("starts_at"), None),
        "ends_at_utc": utc_instant(meeting.get("ends_at"), None),
    }


def with_instants(meeting: Any, known: Json | None = None) -> Any:
    """A meeting from Nexor plus its absolute instants (`known` when given); anything else as it is."""
    return {**meeting, **(known or instants(meeting))} if isinstance(meeting, dict) else meeting


class MeetingsArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    statuses: Annotated[list[MeetingStatus], Field(min_length=1)] | MISSING = Field(
        MISSING, description="Default: all."
    )


async def get_lead_meetings(client: NexorClient, arguments: MeetingsArguments, on_retry: OnRetry | None) -> Json:
    statuses: list[str] | None = None if arguments.statuses is MISSING else list(arguments.statuses)
    result = await client.call(endpoints.get_lead_meetings(arguments.lead_id, statuses), on_retry)
    return {**result, "meetings": [with_instants(meeting) for meeting in result["meetings"]]}


GET_LEAD_MEETINGS = ToolSpec(
    name="get_lead_meetings",
    title="Get lead meetings",
    description=(
        f"List a lead's meetings, most recent first; {INSTANTS}. status: scheduled (booked), confirmed (the "
        "lead said they will attend), completed, cancelled, no_show."
    ),
    group=Group.READ,
    arguments=MeetingsArguments,
    output_schema={"type": "object", "properties": {"meetings": {"type": "array"}}, "required": ["meetings"]},
    handler=get_lead_meetings,
    hints=UnknownArgumentHints(aliases={"status": "statuses", "id": "lead_id"}),
)


class Attendee(Arguments):
    name: Text = Field(description="Their name.")
    email: Email = Field(description="Their email.")


class RecordMeetingArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    title: Text = Field(description='Example: "Product demo".')
    starts_at: Timestamp = Field(
        description='ISO 8601; without offset, local time in timezone. Example: "2026-12-01T10:00:00".'
    )
    ends_at: Timestamp | MISSING = Field(MISSING, description="Like starts_at.")
    duration_minutes: int | MISSING = Field(MISSING, ge=1, le=1440, description="Instead of ends_at.")
    timezone: TimeZone | MISSING = Field(MISSING, description='IANA name; default UTC. Example: "America/Santiago".')
    status: Literal["scheduled", "confirmed"] | MISSING = Field(
        MISSING, description="Default scheduled; confirmed: the lead said they will attend."
    )
    location_type: Literal["video", "phone", "in_person"] | MISSING = Field(MISSING, description="Default video.")
    meeting_url: Text | MISSING = Field(MISSING, description="Video link.")
    location_details: FreeText | MISSING = Field(MISSING, description="Address or dial-in.")
    description: FreeText | MISSING = Field(MISSING, description="Notes.")
    host_email: Email | MISSING = Field(MISSING, description="An active user of the Nexor account.")
    attendee_name: Text | MISSING = Field(MISSING, description="Default: the lead's.")
    attendee_email: Email | MISSING = Field(MISSING, description="Default: the lead's.")
    attendee_phone: Text | MISSING = Field(MISSING, description="Default: the lead's.")
    additional_attendees: list[Attendee] | MISSING = Field(MISSING, description="Others invited.")
    external_calendar_provider: Text | MISSING = Field(
        MISSING, description='Example: "google". With external_event_id, a repeat updates the same meeting.'
    )
    external_event_id: Text | MISSING = Field(MISSING, description="Its event id there.")

    @model_validator(mode="after")
    def _one_end(self) -> Self:
        if (self.ends_at is MISSING) == (self.duration_minutes is MISSING):
            raise problem("give exactly one of ends_at and duration_minutes")
        return self


def record_meeting(arguments: RecordMeetingArguments) -> Request:
    return endpoints.record_meeting(arguments.payload())


async def meeting_instants(arguments: RecordMeetingArguments, result: Json, send_more: SendMore) -> Json:
    """The meeting in the answer gets the absolute instants of what was sent (Nexor reads a time
    without an offset in `timezone`)."""
    if result.get("accepted") is True:
        return result  # applied, answer unreadable: its message says so
    # The instants of what was sent, not of Nexor's echo: its answer is undocumented and may echo a
    # wall-clock time without the offset that `timezone` gave it.
    known = sent_instants(arguments)
    if isinstance(result.get("meeting"), dict):
        return {**result, "meeting": with_instants(result["meeting"], known)}
    return {**result, **known}


def sent_instants(arguments: RecordMeetingArguments) -> Json:
    """`starts_at_utc` and `ends_at_utc` of the meeting as sent (Nexor reads a time without an
    offset in `timezone`, default UTC)."""
    zone = None if arguments.timezone is MISSING else arguments.timezone
    starts = utc_instant(arguments.starts_at, zone)
    if arguments.ends_at is not MISSING:
        ends = utc_instant(arguments.ends_at, zone)
    elif starts is not None and arguments.duration_minutes is not MISSING:
        end = datetime.fromisoformat(starts) + timedelta(minutes=arguments.duration_minutes)
        ends = utc_instant(end.isoformat(), None)
    else:
        ends = None
    return {"starts_at_utc": starts, "ends_at_utc": ends}


RECORD_MEETING = ToolSpec(
    name="record_meeting",
    title="Record meeting",
    description=(
        "Record a meeting booked outside Nexor against a lead; nobody is notified. "
        f"Give ends_at or duration_minutes, not both. In the result, {INSTANTS}."
    ),
    group=Group.WRITE,
    arguments=RecordMeetingArguments,
    output_schema=PASSED_THROUGH,
    request=record_meeting,
    after=meeting_instants,
    writes="POST /meetings",
    hints=UnknownArgumentHints(
        aliases={"start": "starts_at", "end": "ends_at", "duration": "duration_minutes", "id": "lead_id"},
        not_here={"lead_email": "pass lead_id; this tool does not match leads by email"},
    ),
)
