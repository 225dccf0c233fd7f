"""Messages: list WhatsApp templates, and send a message or start a call (contacts a real person)."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import MISSING, Field, model_validator

from nexor_mcp import endpoints
from nexor_mcp.client import NexorClient, OnRetry
from nexor_mcp.errors import NexorError
from nexor_mcp.json_types import Json
from nexor_mcp.quoting import block, one_line, quote
from nexor_mcp.request import Request
from nexor_mcp.tools.arguments import UnknownArgumentHints
from nexor_mcp.tools.automation import RunArguments, run_workflow, sent_workflow_id
from nexor_mcp.tools.fields import FreeText, Text, Uuid, confirmation, dry_run, problem
from nexor_mcp.tools.leads import PASSED_THROUGH
from nexor_mcp.tools.preview import Preview, PreviewInputs, lead_name, whole, workflow_name
from nexor_mcp.tools.spec import CONFIRMED, Arguments, Group, ToolSpec


class TemplatesArguments(Arguments):
    status: Literal["APPROVED", "PENDING", "REJECTED"] | MISSING = Field(
        MISSING, description="Only templates in this Meta review status; only APPROVED ones can be sent."
    )
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"] | MISSING = Field(
        MISSING, description="Only templates of this Meta category."
    )


async def list_templates(client: NexorClient, arguments: TemplatesArguments, on_retry: OnRetry | None) -> Json:
    status = None if arguments.status is MISSING else arguments.status
    category = None if arguments.category is MISSING else arguments.category
    return await client.call(endpoints.list_templates(status, category), on_retry)


LIST_TEMPLATES = ToolSpec(
    name="list_templates",
    title="List WhatsApp templates",
    description="List the account's WhatsApp templates (id, name, language, status, variables); id is a template_id.",
    group=Group.READ,
    arguments=TemplatesArguments,
    output_schema={"type": "object", "properties": {"templates": {"type": "array"}}, "required": ["templates"]},
    handler=list_templates,
)


class SendMessageArguments(RunArguments):
    workflow_id: Uuid | MISSING = Field(
        MISSING, description="Whose WhatsApp number, email sender or voice agent is used. Default: the lead's "
        "active run's workflow (get_lead shows it)."
    )
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


def send_message(arguments: SendMessageArguments) -> Request:
    return endpoints.send_message(arguments.payload())


CHANNELS = {
    "whatsapp": ("a WhatsApp message", "phone", "its WhatsApp number"),
    "email": ("an email", "email", "its email sender"),
    "call": ("an AI phone call", "phone", "its voice agent"),
}


async def preview_send(arguments: SendMessageArguments, inputs: PreviewInputs) -> Preview:
    """What is sent and to whom first, then the text itself, whole, then the rest: nothing from the
    lead can come before the text or pass for a line of it."""
    what, contact_field, sender = CHANNELS[arguments.channel]
    if arguments.template_id is not MISSING:
        what = "a WhatsApp template message"
    lead = inputs.lead or {}
    contact = lead.get(contact_field)
    to = lead_name(inputs.lead, arguments.lead_id) + (f" at {quote(contact)}" if isinstance(contact, str) else "")
    verb = "Start" if arguments.channel == "call" else "Send"
    lines = [f"{verb} {what} to {to} now."]
    if arguments.subject is not MISSING:
        lines.append(f"Subject: {whole(arguments.subject)}")
    if arguments.content is not MISSING:
        lines += ["Text:", block(arguments.content)]
    if arguments.template_id is not MISSING:
        components = None if arguments.components is MISSING else arguments.components
        lines += await template_lines(inputs.client, arguments.template_id, components)
    workflow = await workflow_name(inputs.client, sent_workflow_id(inputs))
    lines.append(f"From workflow {workflow}: {sender} is used.")
    return Preview(summary="\n".join(lines))


async def template_lines(client: NexorClient, template_id: str, components: list[Any] | None) -> list[str]:
    """The template as Nexor lists it (name, text) and every parameter filled in. The listing is
    read best effort; when it cannot be, that is said, and the parameters are shown all the same
    (a parameter can carry a link)."""
    try:
        listed = (await client.call(endpoints.list_templates(None, None)))["templates"]
    except NexorError as error:
        template, missing = None, f"Nexor's template list could not be read ({quote(str(error))})"
    else:
        template = next((item for item in listed if isinstance(item, dict)
                         and str(item.get("id")).lower() == template_id), None)
        missing = "Nexor lists no template with this id"
    if template is None:
        lines = [f"Template {template_id}: its text is NOT shown here: {missing}. Check it with list_templates "
                 "before approving."]
    else:
        name, language = template.get("name"), template.get("language")
        lines = [f"Template {quote(name)} ({template_id}, language {quote(language)}), as Nexor lists it:",
                 *template_text(template)]
    return lines + parameter_lines(components)


def template_text(template: Json) -> list[str]:
    """Each text part of a template (header, body, footer) whole, and its buttons."""
    parts = template.get("components")
    lines: list[str] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        kind = one_line(str(part.get("type", "part")), 20).capitalize()
        if isinstance(part.get("text"), str):
            lines += [f"{kind}:", block(part["text"])]
        buttons = part.get("buttons")
        for button in buttons if isinstance(buttons, list) else ():
            if isinstance(button, dict):
                url = f" → {whole(button['url'])}" if isinstance(button.get("url"), str) else ""
                lines.append(f"Button: {quote(button.get('text'))}{url}")
    return lines or ["(Nexor lists no text for it)"]


def parameter_lines(components: list[Any] | None) -> list[str]:
    """Every parameter sent with the template, whole, labelled by where it goes (`body {{1}}`)."""
    if not components:
        return ["Parameters: none are sent."]
    lines = ["Parameters filled in, as sent:"]
    for number, component in enumerate(components, 1):
        parameters = component.get("parameters") if isinstance(component, dict) else None
        if not isinstance(parameters, list) or not parameters:
            lines.append(f"- component {number}: {whole(component)}")
            continue
        where = one_line(str(component.get("type", "component")), 20)
        if "index" in component or "sub_type" in component:  # a button: which one, and of what kind
            index, kind = (one_line(str(component.get(key, "")), 20) for key in ("index", "sub_type"))
            where += f" {index} ({kind})"
        for position, parameter in enumerate(parameters, 1):
            text = parameter.get("text") if isinstance(parameter, dict) and parameter.get("type") == "text" else None
            lines.append(f"- {where} {{{{{position}}}}}: {whole(text if isinstance(text, str) else parameter)}")
    return lines


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
    request=send_message,
    writes="POST /messages",
    destructive=True,
    preview=preview_send,
    resolve=run_workflow("send_message"),
    hints=UnknownArgumentHints(
        aliases={"message": "content", "text": "content", "body": "content", "template": "template_id",
                 "id": "lead_id"},
        not_here={"html": "send plain content; HTML email bodies are not supported by this tool"},
    ),
)
