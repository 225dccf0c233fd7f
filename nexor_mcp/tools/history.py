"""The conversation and the meetings: read the lead's timeline, list and record meetings."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import MISSING, Field, model_validator

from nexor_mcp.client import Json, NexorClient, OnRetry
from nexor_mcp.tools.arguments import UnknownArgumentHints
from nexor_mcp.tools.fields import Email, FreeText, Text, Timestamp, Uuid, problem
from nexor_mcp.tools.leads import LEAD_ID, PASSED_THROUGH
from nexor_mcp.tools.spec import Arguments, Group, ToolSpec

Channel = Literal["call", "whatsapp", "email"]
MeetingStatus = Literal["scheduled", "confirmed", "completed", "cancelled", "no_show"]


class HistoryArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    channels: Annotated[list[Channel], Field(min_length=1)] | MISSING = Field(MISSING, description="Default: all.")
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, description="The previous page's next_offset.")


async def get_lead_history(client: NexorClient, arguments: HistoryArguments, on_retry: OnRetry | None) -> Json:
    channels: list[str] | None = None if arguments.channels is MISSING else list(arguments.channels)
    return await client.get_lead_history(arguments.lead_id, channels, arguments.limit, arguments.offset, on_retry)


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


class MeetingsArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    statuses: Annotated[list[MeetingStatus], Field(min_length=1)] | MISSING = Field(
        MISSING, description="Default: all."
    )


async def get_lead_meetings(client: NexorClient, arguments: MeetingsArguments, on_retry: OnRetry | None) -> Json:
    statuses: list[str] | None = None if arguments.statuses is MISSING else list(arguments.statuses)
    return await client.get_lead_meetings(arguments.lead_id, statuses, on_retry)


GET_LEAD_MEETINGS = ToolSpec(
    name="get_lead_meetings",
    title="Get lead meetings",
    description="List a lead's meetings, most recent first: times (UTC), status, place, outcome notes.",
    group=Group.READ,
    arguments=MeetingsArguments,
    output_schema={"type": "object", "properties": {"meetings": {"type": "array"}}, "required": ["meetings"]},
    handler=get_lead_meetings,
    hints=UnknownArgumentHints(aliases={"status": "statuses", "id": "lead_id"}),
)


class Attendee(Arguments):
    name: Text
    email: Email


class RecordMeetingArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    title: Text
    starts_at: Timestamp = Field(description='ISO 8601; no offset: in timezone. Example: "2026-12-01T15:00:00Z".')
    ends_at: Timestamp | MISSING = MISSING
    duration_minutes: int | MISSING = Field(MISSING, ge=1, le=1440)
    timezone: Text | MISSING = Field(MISSING, description='IANA name; default UTC. Example: "America/Santiago".')
    status: Literal["scheduled", "confirmed"] | MISSING = MISSING
    location_type: Literal["video", "phone", "in_person"] | MISSING = MISSING
    meeting_url: Text | MISSING = MISSING
    location_details: FreeText | MISSING = MISSING
    description: FreeText | MISSING = MISSING
    host_email: Email | MISSING = Field(MISSING, description="An active user of the Nexor account.")
    attendee_name: Text | MISSING = Field(MISSING, description="Default: the lead's.")
    attendee_email: Email | MISSING = Field(MISSING, description="Default: the lead's.")
    attendee_phone: Text | MISSING = Field(MISSING, description="Default: the lead's.")
    additional_attendees: list[Attendee] | MISSING = MISSING
    external_calendar_provider: Text | MISSING = Field(
        MISSING, description="With external_event_id, a repeat updates the same meeting."
    )
    external_event_id: Text | MISSING = MISSING

    @model_validator(mode="after")
    def _one_end(self) -> Self:
        if (self.ends_at is MISSING) == (self.duration_minutes is MISSING):
            raise problem("give exactly one of ends_at and duration_minutes")
        return self


async def record_meeting(client: NexorClient, arguments: RecordMeetingArguments, on_retry: OnRetry | None) -> Json:
    return await client.record_meeting(arguments.model_dump(exclude_unset=True), on_retry)


RECORD_MEETING = ToolSpec(
    name="record_meeting",
    title="Record meeting",
    description=(
        "Record a meeting booked outside Nexor against a lead; nobody is notified. "
        "Give ends_at or duration_minutes, not both."
    ),
    group=Group.WRITE,
    arguments=RecordMeetingArguments,
    output_schema=PASSED_THROUGH,
    handler=record_meeting,
    idempotent=False,
    hints=UnknownArgumentHints(
        aliases={"start": "starts_at", "end": "ends_at", "duration": "duration_minutes", "id": "lead_id"},
        not_here={"lead_email": "pass lead_id; this tool does not match leads by email"},
    ),
)
