"""Tags: list the account's tags, add some to a lead, or set a lead's whole tag set."""

from __future__ import annotations

from typing import Annotated

from pydantic import MISSING, Field

from nexor_mcp import endpoints
from nexor_mcp.client import NexorClient, OnRetry
from nexor_mcp.errors import NexorError
from nexor_mcp.json_types import Json
from nexor_mcp.quoting import quote
from nexor_mcp.request import Request
from nexor_mcp.tools.arguments import UnknownArgumentHints
from nexor_mcp.tools.fields import Text, Timestamp, Uuid, dry_run, if_unchanged_since
from nexor_mcp.tools.leads import LEAD_ID
from nexor_mcp.tools.preview import Preview, PreviewInputs, lead_name, lead_tags, names_of, quoted_list, tag_set
from nexor_mcp.tools.spec import Arguments, Group, ToolSpec


class ListTagsArguments(Arguments):
    search: Text | MISSING = Field(MISSING, description="Matched against name, slug and description.")


async def list_tags(client: NexorClient, arguments: ListTagsArguments, on_retry: OnRetry | None) -> Json:
    return await client.call(endpoints.list_tags(None if arguments.search is MISSING else arguments.search), on_retry)


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


def add_lead_tags(arguments: AddTagsArguments) -> Request:
    return endpoints.add_lead_tags(arguments.lead_id, list(dict.fromkeys(arguments.tag_ids)))


async def tag_labels(client: NexorClient, tag_ids: list[str]) -> dict[str, str]:
    """Each tag id as a person reads it: its quoted name from list_tags, else the id and why not."""
    try:
        listed = (await client.call(endpoints.list_tags(None)))["tags"]
    except NexorError:
        return {tag_id: f"{tag_id} (its name could not be read)" for tag_id in tag_ids}
    names = {str(tag.get("id")).lower(): tag.get("name") for tag in listed if isinstance(tag, dict)}
    return {
        tag_id: quote(names[tag_id]) if isinstance(names.get(tag_id), str) else f"{tag_id} (not in list_tags)"
        for tag_id in tag_ids
    }


async def preview_add(arguments: AddTagsArguments, inputs: PreviewInputs) -> Preview:
    """The tags added by name, those the lead already has, and the ones it keeps (all of them)."""
    wanted = list(dict.fromkeys(arguments.tag_ids))
    who = lead_name(inputs.lead, "the lead")
    tags = await lead_tags(inputs, arguments.lead_id)
    if isinstance(tags, str):
        labels = await tag_labels(inputs.client, wanted)
        return Preview(summary=f"Add {', '.join(labels.values())} to {who}; its other tags stay, though which they "
                       f"are is unknown ({tags}).", changes=[f"tags: + {labels[tag_id]}" for tag_id in wanted])
    had = [str(tag.get("id")).lower() for tag in tags if isinstance(tag, dict)]
    kept = names_of(tags)
    added = [tag_id for tag_id in wanted if tag_id not in had]
    labels = await tag_labels(inputs.client, added) if added else {}
    already = [quote(name) for tag, name in zip(tags, kept, strict=True)
               if isinstance(tag, dict) and str(tag.get("id")).lower() in wanted]
    summary = f"Add {', '.join(labels.values()) or 'no new tag'} to {who}; it keeps its tags {quoted_list(kept)}"
    if already:
        summary += f" (it already has {', '.join(already)})"
    changes = [f"tags: + {labels[tag_id]}" for tag_id in added]
    return Preview(
        summary=summary, before={"tag_ids": had, "tags": kept}, after={"tag_ids": had + added, "kept": kept},
        changes=changes + ([f"tags kept: {quoted_list(kept)}"] if changes and kept else []), no_op=not added,
    )


ADD_LEAD_TAGS = ToolSpec(
    name="add_lead_tags",
    title="Add lead tags",
    description="Add existing tags to a lead by id; tags it already has are kept, none are removed.",
    group=Group.WRITE,
    arguments=AddTagsArguments,
    output_schema={"type": "object", "properties": {"tags": {"type": "array"}}},
    request=add_lead_tags,
    writes="POST /leads/{id}/tags",
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


def set_lead_tags(arguments: SetTagsArguments) -> Request:
    return endpoints.set_lead_tags(arguments.lead_id, list(dict.fromkeys(arguments.tags)))


async def preview_set(arguments: SetTagsArguments, inputs: PreviewInputs) -> Preview:
    """Also the before-values the journal keeps for undo: from the lead, else from its tag list."""
    assert inputs.lead is not None
    names = list(dict.fromkeys(arguments.tags))
    tags = await lead_tags(inputs, arguments.lead_id)
    if isinstance(tags, str):
        return tag_set(inputs.lead, names, unknown=tags)
    return tag_set(inputs.lead, names, before=names_of(tags))


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
    request=set_lead_tags,
    writes="PUT /leads/tags",
    destructive=True,
    hints=UnknownArgumentHints(aliases={"tag_names": "tags", "names": "tags", "id": "lead_id"},
                               not_here={"tag_ids": "set_lead_tags takes names in tags; add_lead_tags takes ids"}),
    preview=preview_set,
    undoable=True,
)
