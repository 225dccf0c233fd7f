"""Tags: list the account's tags, add some to a lead, or set a lead's whole tag set."""

from __future__ import annotations

from typing import Annotated

from pydantic import MISSING, Field

from nexor_mcp.client import Json, NexorClient, OnRetry
from nexor_mcp.tools.arguments import UnknownArgumentHints
from nexor_mcp.tools.fields import Text, Timestamp, Uuid, dry_run, if_unchanged_since
from nexor_mcp.tools.leads import LEAD_ID
from nexor_mcp.tools.preview import Facts, Preview, lead_name, tag_set
from nexor_mcp.tools.spec import Arguments, Group, ToolSpec


class ListTagsArguments(Arguments):
    search: Text | MISSING = Field(MISSING, description="Matched against name, slug and description.")


async def list_tags(client: NexorClient, arguments: ListTagsArguments, on_retry: OnRetry | None) -> Json:
    return await client.list_tags(None if arguments.search is MISSING else arguments.search, on_retry)


LIST_TAGS = ToolSpec(
    name="list_tags",
    title="List tags",
    description="List the account's tags (id, name, slug, description); use an id with add_lead_tags.",
    group=Group.READ,
    arguments=ListTagsArguments,
    output_schema={"type": "object", "properties": {"tags": {"type": "array"}}, "required": ["tags"]},
    handler=list_tags,
)


class AddTagsArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    tag_ids: Annotated[list[Uuid], Field(min_length=1, max_length=50)] = Field(description="From list_tags.")
    dry_run: bool = dry_run()


async def add_lead_tags(client: NexorClient, arguments: AddTagsArguments, on_retry: OnRetry | None) -> Json:
    return await client.add_lead_tags(arguments.lead_id, list(dict.fromkeys(arguments.tag_ids)), on_retry)


async def preview_add(arguments: AddTagsArguments, facts: Facts) -> Preview:
    wanted = list(dict.fromkeys(arguments.tag_ids))
    summary = f"Add {len(wanted)} tag(s) to {lead_name(facts.lead, 'the lead')}"
    tags = facts.lead.get("tags") if facts.lead else None
    if not isinstance(tags, list):
        return Preview(summary=summary, changes=[f"tags: + {tag_id}" for tag_id in wanted])
    had = [str(tag.get("id")) for tag in tags if isinstance(tag, dict)]
    added = [tag_id for tag_id in wanted if tag_id not in had]
    return Preview(
        summary=summary, before={"tag_ids": had}, after={"tag_ids": had + added},
        changes=[f"tags: + {tag_id}" for tag_id in added], no_op=not added,
    )


ADD_LEAD_TAGS = ToolSpec(
    name="add_lead_tags",
    title="Add lead tags",
    description="Add existing tags to a lead by id; tags it already has are kept, none are removed.",
    group=Group.WRITE,
    arguments=AddTagsArguments,
    output_schema={"type": "object", "properties": {"tags": {"type": "array"}}},
    handler=add_lead_tags,
    hints=UnknownArgumentHints(
        aliases={"tags": "tag_ids", "tag_id": "tag_ids", "ids": "tag_ids", "id": "lead_id"},
    ),
    preview=preview_add,
)


class SetTagsArguments(Arguments):
    lead_id: Uuid = Field(description=LEAD_ID)
    tags: Annotated[list[Text], Field(max_length=100)] = Field(
        description='All the lead\'s tag names; new ones are created, [] removes all. Example: ["VIP"].'
    )
    if_unchanged_since: Timestamp | MISSING = if_unchanged_since()
    dry_run: bool = dry_run()


async def set_lead_tags(client: NexorClient, arguments: SetTagsArguments, on_retry: OnRetry | None) -> Json:
    return await client.set_lead_tags(arguments.lead_id, list(dict.fromkeys(arguments.tags)), on_retry)


async def preview_set(arguments: SetTagsArguments, facts: Facts) -> Preview:
    assert facts.lead is not None
    return tag_set(facts.lead, list(dict.fromkeys(arguments.tags)))


SET_LEAD_TAGS = ToolSpec(
    name="set_lead_tags",
    title="Set lead tags",
    description=(
        "Replace a lead's WHOLE tag set with these names: tags not listed are removed. "
        "To add tags and keep the rest, use add_lead_tags."
    ),
    group=Group.WRITE,
    arguments=SetTagsArguments,
    output_schema={
        "type": "object",
        "properties": {"tags": {"type": "array"}, "added": {"type": "array"}, "removed": {"type": "array"}},
    },
    handler=set_lead_tags,
    destructive=True,
    hints=UnknownArgumentHints(aliases={"tag_names": "tags", "names": "tags", "id": "lead_id"},
                               not_here={"tag_ids": "set_lead_tags takes names in tags; add_lead_tags takes ids"}),
    preview=preview_set,
    undoable=True,
)
