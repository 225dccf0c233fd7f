"""Messages: list WhatsApp templates, and send a message or start a call (contacts a real person)."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import MISSING, Field, model_validator

from nexor_mcp.client import Json, NexorClient, OnRetry
from nexor_mcp.tools.arguments import UnknownArgumentHints
from nexor_mcp.tools.fields import FreeText, Text, Uuid, confirmation, dry_run, problem
from nexor_mcp.tools.leads import LEAD_ID, PASSED_THROUGH
from nexor_mcp.tools.preview import Facts, Preview, lead_name, workflow_name
from nexor_mcp.tools.spec import CONFIRMED, Arguments, Group, ToolSpec


class TemplatesArguments(Arguments):
    status: Literal["APPROVED", "PENDING", "REJECTED"] | MISSING = MISSING
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"] | MISSING = MISSING


async def list_templates(client: NexorClient, arguments: TemplatesArguments, on_retry: OnRetry | None) -> Json:
    status = None if arguments.status is MISSING else arguments.status
    category = None if arguments.category is MISSING else arguments.category
    return await client.list_templates(status, category, on_retry)


LIST_TEMPLATES = ToolSpec(
    name="list_templates",
    title="List WhatsApp templates",
    description="List the account's WhatsApp templates (id, name, language, status, variables); id is a template_id.",
    group=Group.READ,
    arguments=TemplatesArguments,
    output_schema={"type": "object", "properties": {"templates": {"type": "array"}}, "required": ["templates"]},
    handler=list_templates,
)


class SendMessageArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    workflow_id: Uuid = Field(description="The workflow whose WhatsApp number, email sender or voice agent is used.")
    channel: Literal["whatsapp", "email", "call"] = Field(description="call starts an AI phone call now.")
    content: FreeText | MISSING = Field(MISSING, description="The text (plain; \\n for line breaks).")
    subject: Text | MISSING = Field(MISSING, description="Email subject.")
    template_id: Uuid | MISSING = Field(MISSING, description="WhatsApp template id, from list_templates.")
    components: list[dict[str, Any]] | MISSING = Field(
        MISSING, description="Template parameters in Meta's format; with template_id."
    )
    dry_run: bool = dry_run()
    confirmation: Text | MISSING = confirmation()

    @model_validator(mode="after")
    def _what_the_channel_needs(self) -> Self:
        if self.channel == "whatsapp" and self.content is MISSING and self.template_id is MISSING:
            raise problem("whatsapp needs content or template_id (outside the 24-hour window, a template)")
        if self.channel == "email" and self.content is MISSING:
            raise problem("email needs content")
        if self.channel != "whatsapp" and (self.template_id is not MISSING or self.components is not MISSING):
            raise problem("template_id and components are for whatsapp only")
        if self.channel == "call" and (self.content is not MISSING or self.subject is not MISSING):
            raise problem("a call takes no content or subject")
        if self.components is not MISSING and self.template_id is MISSING:
            raise problem("components need a template_id")
        return self


async def send_message(client: NexorClient, arguments: SendMessageArguments, on_retry: OnRetry | None) -> Json:
    return await client.send_message(arguments.payload(), on_retry)


CHANNELS = {
    "whatsapp": ("a WhatsApp message", "phone"),
    "email": ("an email", "email"),
    "call": ("an AI phone call", "phone"),
}


async def preview_send(arguments: SendMessageArguments, facts: Facts) -> Preview:
    what, contact_field = CHANNELS[arguments.channel]
    lead = facts.lead or {}
    contact = lead.get(contact_field)
    to = lead_name(facts.lead, arguments.lead_id) + (f" ({contact})" if isinstance(contact, str) else "")
    workflow = await workflow_name(facts.client, arguments.workflow_id)
    verb = "Start" if arguments.channel == "call" else "Send"
    lines = [f"{verb} {what} to {to} now, from workflow {workflow}."]
    if arguments.subject is not MISSING:
        lines.append(f"Subject: {arguments.subject}")
    if arguments.content is not MISSING:
        lines.append(f"Text:\n{arguments.content}")
    if arguments.template_id is not MISSING:
        lines.append(f"WhatsApp template {arguments.template_id}")
    return Preview(summary="\n".join(lines))


SEND_MESSAGE = ToolSpec(
    name="send_message",
    title="Send message",
    description=(
        "Contact the lead NOW: send a WhatsApp or email, or start an AI phone call. A real person receives "
        "it; it cannot be undone and is never retried. WhatsApp free text only works within 24 hours of "
        "the lead's last message; otherwise use a template_id." + CONFIRMED
    ),
    group=Group.OUTREACH,
    arguments=SendMessageArguments,
    output_schema=PASSED_THROUGH,
    handler=send_message,
    destructive=True,
    idempotent=False,
    preview=preview_send,
    hints=UnknownArgumentHints(
        aliases={"message": "content", "text": "content", "body": "content", "template": "template_id",
                 "id": "lead_id"},
        not_here={"html": "send plain content; HTML email bodies are not supported by this tool"},
    ),
)
