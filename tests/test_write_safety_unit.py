"""The pure parts of write safety, fast: confirmation tokens, previews, the guard's clock, the lead
memory. The end-to-end behaviour is in test_e2e_safety.py and test_e2e_safety_http.py."""

from __future__ import annotations

from typing import Any

import pytest

from nexor_mcp.config import CONFIRMABLE_GROUPS, ConfigError, Secret, load_settings
from nexor_mcp.confirm import TOKEN_SECONDS, Sealer
from nexor_mcp.rules import instant, same_instant
from nexor_mcp.safety import LeadMemory, lead_changes
from nexor_mcp.tools import ALL_TOOLS
from nexor_mcp.tools.preview import active_run, lead_update, tag_set, takeover
from nexor_mcp.tools.spec import CONFIRMED

ARGS: dict[str, Any] = {"lead_id": "a", "channel": "email", "content": "Hello Ana, see you Monday"}
SECRET = Secret("x" * 32)


def test_a_token_is_good_once_for_exactly_its_tool_arguments_and_account() -> None:
    sealer = Sealer(SECRET)
    token = sealer.issue("c1", "send_message", ARGS, "acct", now=1000.0)
    assert "Hello" not in token and "send_message" not in token and token.count(".") == 2
    for tool, arguments, account, purpose in [
        ("send_message", {**ARGS, "content": "Hello Ana, see you Tuesday"}, "acct", "c1"),
        ("send_message", {**ARGS, "extra": None}, "acct", "c1"),
        ("assign_workflow", ARGS, "acct", "c1"),
        ("send_message", ARGS, "other", "c1"),
        ("send_message", ARGS, "acct", "q1"),
    ]:
        assert sealer.check(token, purpose, tool, arguments, account, now=1001.0) is not None
    assert sealer.check(token, "c1", "send_message", dict(reversed(ARGS.items())), "acct", now=1001.0) is None
    assert sealer.check(token, "c1", "send_message", ARGS, "acct", now=1002.0) == "it was already used once"


def test_expired_forged_and_malformed_tokens_are_refused() -> None:
    sealer = Sealer(SECRET)
    token = sealer.issue("c1", "t", ARGS, "a", now=1000.0)
    assert "expired" in str(sealer.check(token, "c1", "t", ARGS, "a", now=1000.0 + TOKEN_SECONDS))
    purpose, claims, mac = token.split(".")
    for bad in (f"{purpose}.{claims[:-2]}xx.{mac}", f"{purpose}.{claims}.{mac[:-2]}xx", "c1.x", "", "c1..", "x.y.z"):
        assert sealer.check(bad, "c1", "t", ARGS, "a", now=1001.0) is not None, bad
    assert Sealer(Secret("y" * 32)).check(token, "c1", "t", ARGS, "a", now=1001.0) is not None
    assert Sealer(None).check(token, "c1", "t", ARGS, "a", now=1001.0) is not None  # a random key per process


def test_the_secret_and_confirm_settings_are_checked() -> None:
    assert load_settings(environ={}).confirm == ("automation", "outreach")
    assert load_settings(environ={"NEXOR_CONFIRM": "never"}).confirm == ()
    assert load_settings(environ={"NEXOR_CONFIRM": " Outreach "}).confirm == ("outreach",)
    for wrong in ("write", "always", "outreach,send"):
        with pytest.raises(ConfigError, match="confirm must be"):
            load_settings(environ={"NEXOR_CONFIRM": wrong})
    assert load_settings(environ={}).confirm_via == "auto"
    assert load_settings(environ={"NEXOR_CONFIRM_VIA": "Token"}).confirm_via == "token"
    with pytest.raises(ConfigError, match="confirm_via must be one of auto, token"):
        load_settings(environ={"NEXOR_CONFIRM_VIA": "elicit"})
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        load_settings(environ={"NEXOR_MCP_SECRET": "short"})
    assert repr(load_settings(environ={"NEXOR_MCP_SECRET": "z" * 40}).secret) == "Secret('********')"


LEAD: dict[str, Any] = {
    "id": "l1", "first_name": "Ana", "title": "Manager", "phone": "+56911112222", "email": None,
    "metadata": {"budget": 100, "flag": True, "gone": None},
    "campaign": {"id": "c1", "name": "Q1"}, "updated_at": "2026-11-01T10:00:00Z",
}


def test_an_update_preview_follows_nexors_semantics_line_by_line() -> None:
    preview = lead_update(LEAD, {"title": "CTO", "phone": None, "metadata": {"budget": 100.0, "new": 1, "flag": 1}})
    assert preview.changes == [
        'title: "Manager" → "CTO"',
        'phone: "+56911112222" → null (cleared)',
        "metadata.budget: 100 → 100.0",
        "metadata.new: (absent) → 1",
        "metadata.flag: true → 1",
    ]
    assert preview.after is not None
    assert preview.after["metadata"] == {"budget": 100.0, "flag": 1, "gone": None, "new": 1}
    assert preview.undo == {
        "fields": {"title": "Manager", "phone": "+56911112222"},
        "metadata": {"budget": 100, "flag": True},
        "metadata_absent": ["new"],
    }
    assert LEAD["metadata"] == {"budget": 100, "flag": True, "gone": None}  # the lead read is not touched


def test_an_update_that_sets_what_is_there_is_a_no_op_and_campaigns_are_followed() -> None:
    assert lead_update(LEAD, {"first_name": "Ana", "metadata": {"gone": None}}).no_op
    moved = lead_update(LEAD, {"campaign_id": "c2"})
    assert moved.changes == ['campaign_id: "c1" → "c2"'] and moved.after is not None
    assert moved.after["campaign"] == {"id": "c2"} and moved.after["campaign_id"] == "c2"
    assert lead_update(LEAD, {"campaign_id": "c1"}).no_op


def test_a_tag_preview_matches_names_as_nexor_does() -> None:
    lead = {**LEAD, "tags": [{"id": "t1", "name": "VIP"}, {"id": "t2", "name": "Cold lead"}]}
    preview = tag_set(lead, ["vip", "Hot"])
    assert preview.after == {"tags": ["vip", "Hot"], "added": ["Hot"], "removed": ["Cold lead"], "kept": ["VIP"]}
    assert preview.changes == ['tags: + "Hot"', 'tags: - "Cold lead"', 'tags kept: "VIP"']
    assert preview.undo == {"tags": ["VIP", "Cold lead"]}
    assert tag_set(lead, ["VIP", "cold-lead"]).no_op
    unknown = tag_set(LEAD, ["VIP"])  # Nexor's lead came without a tag list
    assert unknown.undo is None and unknown.before is None and not unknown.no_op


def test_the_guard_compares_moments() -> None:
    assert instant("2026-11-01T10:00:00Z") == instant("2026-11-01T07:00:00-03:00") == instant(
        "2026-11-01T10:00:00.000+00:00"
    )
    assert instant("2026-11-01T10:00:00Z") != instant("2026-11-01T10:00:00.001Z")
    assert instant("not a time") == "not a time"
    assert same_instant("2026-11-01T10:00:00Z", "2026-11-01T07:00:00-03:00")
    assert not same_instant("2026-11-01T10:00:00Z", "2026-11-01T10:00:00.001Z")


def test_changes_between_versions_ignore_fields_one_shape_lacks() -> None:
    patch_shape = {"id": "l1", "title": "CTO", "campaign_id": "c1", "metadata": {"a": 1}}
    get_shape = {"id": "l1", "title": "VP", "campaign": {"id": "c1"}, "tags": [], "metadata": {"b": 2}}
    assert lead_changes(patch_shape, get_shape) == [
        'title: "CTO" → "VP"', "metadata.a: 1 → (absent)", "metadata.b: (absent) → 2"
    ]


def test_the_lead_memory_is_bounded_and_per_account() -> None:
    memory = LeadMemory(size=2)
    for index in range(3):
        memory.remember("acct", {**LEAD, "id": f"l{index}"})
    assert memory.recall("acct", "l0", LEAD["updated_at"]) is None
    assert memory.recall("acct", "l2", "2026-11-01T07:00:00-03:00") is not None
    assert memory.recall("other", "l2", LEAD["updated_at"]) is None
    memory.remember("acct", {"id": "no-time"})
    memory.remember("acct", None)
    assert memory.recall("acct", "no-time", "") is None


def test_declarations_agree_on_dry_run_confirmation_and_what_the_description_says() -> None:
    for spec in ALL_TOOLS:
        fields = spec.arguments.model_fields
        assert ("dry_run" in fields) == (spec.preview is not None), spec.name
        confirmable = spec.group.value in CONFIRMABLE_GROUPS
        assert ("confirmation" in fields) == confirmable, spec.name
        assert (CONFIRMED in spec.description) == confirmable, spec.name
        if "dry_run" in fields:
            assert not spec.read_only and fields["dry_run"].default is False
    dry_runs = sorted(spec.name for spec in ALL_TOOLS if spec.preview is not None)
    assert dry_runs == sorted(["update_lead", "set_lead_tags", "add_lead_tags", "stop_automation",
                               "resume_automation", "assign_workflow", "set_lead_status", "send_message"])
    guarded = sorted(spec.name for spec in ALL_TOOLS if "if_unchanged_since" in spec.arguments.model_fields)
    assert guarded == ["set_lead_tags", "update_lead"]


ODD_LEADS: list[dict[str, Any]] = [
    {},
    {"metadata": "not an object", "tags": "VIP", "campaign": "c1", "active_workflow_run": []},
    {"metadata": None, "tags": [1, None, {"name": 5}], "campaign": None,
     "activeWorkflowRun": {"human_takeover": "yes"}},
    {"metadata": {"k": [1, 2]}, "tags": [{"id": None}], "active_workflow_run": {"current_status": "qualified"}},
]


@pytest.mark.parametrize("lead", ODD_LEADS)
def test_previews_of_an_oddly_shaped_lead_never_raise(lead: dict[str, Any]) -> None:
    """Nexor's lead shape is loosely documented: whatever comes back, a preview is built."""
    update = lead_update(lead, {"title": "CTO", "campaign_id": None, "metadata": {"k": 1}})
    assert "title: null → \"CTO\"" in update.changes
    tags = tag_set(lead, ["VIP"])
    assert tags.after is not None and tags.after["tags"] == ["VIP"]
    before, after, _ = takeover(lead, paused=True)
    assert after == {"human_takeover": True}
    assert before is None or isinstance(before["human_takeover"], bool)
    assert active_run(lead) is None or isinstance(active_run(lead), dict)
    assert lead_changes(lead, {**lead, "title": "x"}) == ([] if "title" not in lead else ['title: null → "x"'])


@pytest.mark.anyio
async def test_a_confirmed_tool_without_a_preview_still_asks_and_sends_nothing() -> None:
    """Confirmation never depends on a tool having declared a preview (fail closed for a new tool).
    In token mode (NEXOR_CONFIRM_VIA=token), so the question handed back shows what it asks about."""
    import dataclasses
    from types import SimpleNamespace

    import httpx2

    from nexor_mcp.client import NexorClient
    from nexor_mcp.confirm import Pending
    from nexor_mcp.safety import WriteSafety
    from nexor_mcp.tools import TOOLS_BY_NAME
    from nexor_mcp.tools.spec import Group

    sent: list[str] = []

    def nexor(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.method)
        return httpx2.Response(200, json={"success": True, "lead": {"id": LEAD_ID, "first_name": "Ana"}})

    settings = load_settings(environ={"NEXOR_API_KEY": "nxr_live_unit_key_123", "NEXOR_BASE_URL": "http://127.0.0.1",
                                      "NEXOR_CONFIRM_VIA": "token"})
    client = NexorClient(settings, transport=httpx2.MockTransport(nexor))
    spec = dataclasses.replace(TOOLS_BY_NAME["record_meeting"], group=Group.OUTREACH)
    assert spec.preview is None
    arguments = spec.parse(
        {"title": "Demo", "starts_at": "2026-12-01T15:00:00Z", "duration_minutes": 30, "lead_id": LEAD_ID}
    )
    session = SimpleNamespace(client_capabilities=None, can_send_request=False)
    ctx: Any = SimpleNamespace(session=session, protocol_version="2025-11-25", request_id=1)
    params: Any = SimpleNamespace(input_responses=None, request_state=None)
    outcome = await WriteSafety.from_settings(settings).run(spec, client, arguments, ctx, params, None)
    assert isinstance(outcome, Pending) and isinstance(outcome.result, dict)
    assert outcome.result["confirmation_required"] is True and "POST /meetings" in outcome.result["question"]
    assert sent == ["GET"]  # the lead was read; nothing was written
    await client.aclose()


LEAD_ID = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"


def test_undo_compares_values_as_json_so_true_is_not_1() -> None:
    """The undo check (`audit undo` refuses when the lead no longer holds what the entry wrote)."""
    from nexor_mcp.audit import Entry
    from nexor_mcp.audit.undo import plan

    entry = Entry(
        id="e1", time="t", tool="update_lead", lead_id=LEAD_ID, method="PATCH", path=f"leads/{LEAD_ID}",
        body={"title": "CTO", "metadata": {"vip": True}},
        before={"fields": {"title": "Manager"}, "metadata": {"vip": False}, "metadata_absent": []},
        account=None, undoes=None, line=1, outcome="ok",
    )
    unchanged = plan(entry, {"id": LEAD_ID, "title": "CTO", "metadata": {"vip": True}})
    assert not isinstance(unchanged, str) and unchanged.differences == []
    assert unchanged.body == {"title": "Manager", "metadata": {"vip": False}}
    changed = plan(entry, {"id": LEAD_ID, "title": "CTO", "metadata": {"vip": 1}})
    assert not isinstance(changed, str) and changed.differences == ["metadata.vip is 1, not true as the entry wrote"]
