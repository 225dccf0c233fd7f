"""Tags: GET /tags, GET and POST /leads/{id}/tags (by id), PUT /leads/tags (the whole set, by name)."""

from __future__ import annotations

import uuid

from nexor_mcp.json_types import Json
from nexor_mcp.rules import tag_slug
from nexor_mcp.sandbox.common import Call, Invalid, Reply, is_uuid, json_object, now, query_params, validation
from nexor_mcp.sandbox.leads import find_lead, tag_views
from nexor_mcp.sandbox.seed import State, copy_of


def list_tags(state: State, call: Call) -> Reply:
    search = query_params(call.query, ("search",)).get("search", "").casefold()
    found = [
        tag for tag in state.tags.values()
        if not search or any(search in (tag[key] or "").casefold() for key in ("name", "slug", "description"))
    ]
    return 200, {"data": copy_of(found)}


def lead_tags(state: State, call: Call) -> Reply:
    return 200, {"data": tag_views(state, find_lead(state, call.lead_id))}


def add_lead_tags(state: State, call: Call) -> Reply:
    """Unknown tag ids are a 400 naming them (a 404 would read as "no such lead")."""
    lead = find_lead(state, call.lead_id)
    body = json_object(call.body, ("tagId", "tagIds"))
    if "tagId" in body and "tagIds" in body:
        raise Invalid(400, {"error": "Provide either tagId or tagIds, not both"})
    if "tagId" in body:
        ids = [body["tagId"]]
    elif "tagIds" in body:
        ids = body["tagIds"]
        if not isinstance(ids, list) or not ids:
            raise validation("tagIds must be a non-empty array of tag ids")
    else:
        raise Invalid(400, {"error": "tagId or tagIds is required"})
    if not all(is_uuid(tag_id) for tag_id in ids):
        raise validation("every tag id must be a UUID")
    unknown = [tag_id for tag_id in ids if tag_id not in state.tags]
    if unknown:
        raise validation(f"Tag(s) not found or not in your account: {', '.join(unknown)}")
    for tag_id in ids:
        if tag_id not in lead["tags"]:
            lead["tags"].append(tag_id)
    return 201, {"data": tag_views(state, lead)}


def set_lead_tags(state: State, call: Call) -> Reply:
    """The lead (by lead_id, else email) gets exactly `tags`; missing names are created by slug.

    Nexor says the fields may be nested anywhere in the body; the sandbox takes them at the top only."""
    body = json_object(call.body, ("lead_id", "email", "tags"))
    lead = _lead_by_id_or_email(state, body)
    names = body.get("tags")
    if not isinstance(names, list) or not all(isinstance(name, str) and name.strip() for name in names):
        raise validation("tags is required: an array of tag names")
    wanted: list[str] = []
    for name in names:
        tag = _tag_by_slug(state, name)
        if tag["id"] not in wanted:
            wanted.append(tag["id"])
    added = [tag_id for tag_id in wanted if tag_id not in lead["tags"]]
    removed = [tag_id for tag_id in lead["tags"] if tag_id not in wanted]
    lead["tags"] = wanted
    return 200, {"success": True, "lead_id": lead["id"], "tags": tag_views(state, lead), "added": added,
                 "removed": removed}


def _lead_by_id_or_email(state: State, body: Json) -> Json:
    if "lead_id" in body:
        lead_id = body["lead_id"]
        if not is_uuid(lead_id):
            raise validation("lead_id must be a UUID")
        return find_lead(state, lead_id)
    email = body.get("email")
    if not isinstance(email, str) or not email:
        raise validation("lead_id or email is required")
    matches = [lead for lead in state.leads.values() if (lead["email"] or "").casefold() == email.casefold()]
    if not matches:
        raise Invalid(404, {"error": "Not found", "message": "No lead with this email in your account"})
    return max(matches, key=lambda lead: str(lead["updated_at"]))


def _tag_by_slug(state: State, name: str) -> Json:
    """Found or created by slug, with the project's one slug rule (what previews and undo use)."""
    slug = tag_slug(name)
    for tag in state.tags.values():
        if tag["slug"] == slug:
            return tag
    stamp = now()
    tag = {"id": str(uuid.uuid4()), "name": name.strip(), "slug": slug, "description": None, "created_at": stamp,
           "updated_at": stamp}
    state.tags[tag["id"]] = tag
    return tag
