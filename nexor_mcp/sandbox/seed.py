"""The sandbox's account: its seeded leads, workflows, tags, templates, meetings and timelines, and
the `State` that holds them while the sandbox runs.

Seeded facts the tests and the demo rely on:
- Ana (DEMO_LEAD_IDS[0]) is in "SDR inbound" at status contacted, AI on, cadence active with 2
  pending tasks; she has the VIP tag, an AI-extracted budget, 2 meetings and a 9-item timeline whose
  last item is an inbound WhatsApp from an hour before the reset (so free WhatsApp text may be sent).
- John (DEMO_LEAD_IDS[1]) has a phone but no email and no workflow run; his only WhatsApp message is
  from June 2026, so free text to him is outside the 24-hour window.
- María (DEMO_LEAD_IDS[2]) has a run in "Reactivation outbound" at the terminal status lost.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nexor_mcp.json_types import Json
from nexor_mcp.sandbox.common import iso, now

CAMPAIGNS = {
    "0b7e2d4c-5f61-4a8e-9c3b-2a1d0e9f8b7c": "Q4 Outbound",
    "5d1e0c2b-8a7f-4e3d-9b6c-1f2e3d4c5b6a": "Webinar follow-up",
}

DEMO_LEAD_IDS = (
    "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b",
    "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "a1b2c3d4-e5f6-4a5b-8c7d-9e0f1a2b3c4d",
)
ANA, JOHN, MARIA = DEMO_LEAD_IDS

SDR_INBOUND = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
REACTIVATION = "6e5d4c3b-2a19-4f08-9e7d-6c5b4a392817"
ANA_RUN = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
MARIA_RUN = "4b3a2918-0f7e-4d6c-9b5a-483726150f9e"

VIP_TAG = "8f14e45f-ceea-467f-a0e6-1b2c3d4e5f60"
HOT_TAG = "c9f0f895-fb98-4b91-9c1d-2e3f4a5b6c70"
FOLLOW_UP_TAG = "45c48cce-2e2d-4fbd-8a5e-3f4a5b6c7d80"
ENTERPRISE_TAG = "d3d94468-02a4-4e3b-b1a2-4a5b6c7d8e90"

FIRST_CONTACT_TEMPLATE = "b3c1f0a2-4d5e-4f60-8a7b-9c0d1e2f3a4b"
REMINDER_TEMPLATE = "e4d2a1b3-5c6d-4e7f-9a8b-0c1d2e3f4a5b"
PROMO_TEMPLATE = "f5e3b2c4-6d7e-4f80-8b9c-1d2e3f4a5b6c"

HOST = {"email": "sofia.mendez@nexor-demo.example", "name": "Sofía Méndez"}
MEETING_TYPES = {"0d9c8b7a-6f5e-4d4c-8b3a-291807f6e5d4": "Google Meet"}

CREATED = "2026-06-18T09:30:00.000Z"


def _status(workflow: int, n: int, key: str, label: str, category: str) -> Json:
    # SDR inbound's "contacted" (0, 1) keeps the id get_lead has always shown: c0ffee00-…-000000000001.
    return {"id": f"c0ffee00-0000-4000-8000-{workflow:06d}{n:06d}", "key": key, "label": label,
            "category": category, "is_terminal": category in ("won", "lost")}


def _workflows() -> dict[str, Json]:
    sdr: list[tuple[str, str, str]] = [
        ("new", "New", "active"), ("contacted", "Contacted", "active"), ("engaged", "Engaged", "active"),
        ("qualified", "Qualified", "active"), ("lost", "Lost", "lost"), ("converted", "Converted", "won")]
    reactivation: list[tuple[str, str, str]] = [
        ("new", "New", "active"), ("contacted", "Contacted", "active"), ("interested", "Interested", "active"),
        ("lost", "Lost", "lost"), ("converted", "Converted", "won")]
    workflows: list[Json] = [
        {"id": SDR_INBOUND, "name": "SDR inbound", "goal_type": "appointment", "paused": False,
         "statuses": [_status(0, n, *s) for n, s in enumerate(sdr)]},
        {"id": REACTIVATION, "name": "Reactivation outbound", "goal_type": "qualification", "paused": False,
         "statuses": [_status(1, n, *s) for n, s in enumerate(reactivation)]},
    ]
    return {workflow["id"]: workflow for workflow in workflows}


def _tags() -> dict[str, Json]:
    tags = [
        (VIP_TAG, "VIP", "vip", "High-value lead: answer first"),
        (HOT_TAG, "Hot lead", "hot-lead", "Asked for pricing or a demo"),
        (FOLLOW_UP_TAG, "Needs follow-up", "needs-follow-up", None),
        (ENTERPRISE_TAG, "Enterprise", "enterprise", "Company with more than 500 employees"),
    ]
    return {
        tag_id: {"id": tag_id, "name": name, "slug": slug, "description": description,
                 "created_at": "2026-06-01T12:00:00.000Z", "updated_at": "2026-06-01T12:00:00.000Z"}
        for tag_id, name, slug, description in tags
    }


def _templates() -> list[Json]:
    return [
        {"id": FIRST_CONTACT_TEMPLATE, "name": "first_contact_es", "language": "es", "category": "MARKETING",
         "status": "APPROVED",
         "components": [{"type": "BODY", "text": "Hola {{1}}, soy {{2}} de Nexor Demo. ¿Tienes 15 minutos esta "
                                                 "semana para conversar sobre tu equipo de ventas?"}],
         "variables": [{"name": "first_name", "position": 1, "component": "BODY"},
                       {"name": "agent_name", "position": 2, "component": "BODY"}]},
        {"id": REMINDER_TEMPLATE, "name": "meeting_reminder_en", "language": "en", "category": "UTILITY",
         "status": "APPROVED",
         "components": [{"type": "BODY", "text": "Hi {{1}}, a reminder of our meeting on {{2}}."},
                        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Confirm"}]}],
         "variables": [{"name": "first_name", "position": 1, "component": "BODY"},
                       {"name": "meeting_time", "position": 2, "component": "BODY"}]},
        {"id": PROMO_TEMPLATE, "name": "q4_promo_es", "language": "es", "category": "MARKETING",
         "status": "PENDING",
         "components": [{"type": "BODY", "text": "¡Ofertas de fin de año para tu equipo!"}], "variables": None},
    ]


def _leads() -> dict[str, Json]:
    leads: list[Json] = [
        {"id": ANA, "first_name": "Ana", "last_name": "Rojas", "email": "ana.rojas@example.com",
         "phone": "+56987654321", "source": "website", "company": "Acme SpA", "title": "Head of Sales",
         "campaign_id": "0b7e2d4c-5f61-4a8e-9c3b-2a1d0e9f8b7c", "metadata": {"edad": 34, "utm_source": "google"},
         "tags": [VIP_TAG]},
        {"id": JOHN, "first_name": "John", "last_name": None, "email": None, "phone": "+14155550123",
         "source": "api", "company": None, "title": None, "campaign_id": None, "metadata": {}, "tags": []},
        {"id": MARIA, "first_name": "María", "last_name": "González", "email": "maria@example.org",
         "phone": "+34600111222", "source": "meta_ads", "company": "Olivos SL", "title": None,
         "campaign_id": "5d1e0c2b-8a7f-4e3d-9b6c-1f2e3d4c5b6a", "metadata": {"language": "ES"}, "tags": []},
    ]
    return {lead["id"]: {**lead, "created_at": CREATED, "updated_at": CREATED} for lead in leads}


def new_run(lead_id: str, workflow: Json, status_key: str = "new", run_id: str | None = None) -> Json:
    """A fresh active run of `workflow` (its cadence starts unless the workflow is paused)."""
    return {"id": run_id or str(uuid.uuid4()), "lead_id": lead_id, "workflow_id": workflow["id"],
            "is_active": True, "human_takeover": False,
            "cadence_state": "paused" if workflow["paused"] else "active", "run_status": "running",
            "status_key": status_key, "pending_tasks": 0 if workflow["paused"] else 1,
            "status_reason": None, "deactivation_reason": None, "created_at": now()}


def _runs(workflows: dict[str, Json]) -> dict[str, Json]:
    ana = new_run(ANA, workflows[SDR_INBOUND], "contacted", ANA_RUN)
    ana.update(pending_tasks=2, created_at="2026-06-18T09:30:02.000Z")
    maria = new_run(MARIA, workflows[REACTIVATION], "lost", MARIA_RUN)
    maria.update(cadence_state="stopped", run_status="completed", pending_tasks=0,
                 status_reason="Not interested this year", created_at="2026-06-18T09:30:02.000Z")
    return {ana["id"]: ana, maria["id"]: maria}


def _message(item_id: str, channel: str, direction: str, content: str, at: str, **extra: Any) -> Json:
    whatsapp = channel == "whatsapp"
    item: Json = {
        "type": "message", "id": item_id, "channel": channel, "direction": direction, "content": content,
        "message_type": "text", "status": "read" if direction == "inbound" else "delivered",
        "provider_message_id": f"wamid.HBgL{item_id.replace('-', '')[:20].upper()}" if whatsapp else None,
        "media_url": None, "attachments": [], "sent_at": at, "delivered_at": at,
        "read_at": at if direction == "inbound" else None, "reaction": None, "buttons": [], "timestamp": at,
    }
    item.update(extra)
    return item


def activity(activity_type: str, title: str, description: str, at: str, actor_type: str = "system") -> Json:
    return {"type": "activity", "channel": "system", "activity_type": activity_type, "title": title,
            "description": description, "actor_type": actor_type, "timestamp": at}


def _history(reset_at: datetime) -> dict[str, list[Json]]:
    def ago(hours: float) -> str:
        return iso(reset_at - timedelta(hours=hours))

    ana = [
        activity("workflow_assigned", "Assigned to SDR inbound", "Lead enrolled in workflow SDR inbound",
                 "2026-06-18T09:30:02.000Z"),
        _message("5a0f3c1e-1111-4a2b-8c3d-000000000001", "whatsapp", "outbound",
                 "Hola Ana, soy Sofía de Nexor Demo. ¿Tienes 15 minutos esta semana para conversar sobre tu "
                 "equipo de ventas?", "2026-06-18T09:31:00.000Z", message_type="template", status="read",
                 read_at="2026-06-18T09:40:00.000Z",
                 buttons=[{"type": "URL", "text": "Agendar", "url": "https://cal.example.com/sofia"}]),
        {"type": "call_missed", "id": "6b1e4d2f-2222-4b3c-9d4e-000000000002", "channel": "call",
         "call_status": "not_connected", "disconnection_reason": "dial_no_answer",
         "content": "Outbound call not answered", "provider_call_id": "call_8f2a61c0d9e4",
         "timestamp": "2026-06-18T15:00:00.000Z"},
        {"type": "call", "id": "7c2f5e30-3333-4c4d-8e5f-000000000003", "channel": "call", "direction": "outbound",
         "duration_seconds": 312, "call_status": "ended", "call_successful": True,
         "summary": "Ana leads a 12-person sales team at Acme SpA. Budget about 5k USD. Wants a demo and "
                    "pricing for 12 seats.",
         "recording_url": "https://recordings.example.com/7c2f5e30.mp3", "provider_call_id": "call_1b7d93e2aa05",
         "timestamp": "2026-06-19T10:12:00.000Z"},
        _message("8d3a6f41-4444-4d5e-9f60-000000000004", "email", "outbound",
                 "Hi Ana, thanks for the call. Attached is the pricing for 12 seats.", "2026-06-19T10:20:00.000Z",
                 subject="Pricing for Acme SpA", attachments=[{"name": "pricing.pdf", "type": "application/pdf"}]),
        activity("status_changed", "Status changed to Contacted", "new → contacted", "2026-06-19T10:21:00.000Z"),
        _message("9e4b7052-5555-4e6f-8a71-000000000005", "whatsapp", "inbound",
                 "Hola Sofía, ¿podemos mover la demo del jueves a las 16:00?", ago(3)),
        _message("af5c8163-6666-4f70-9b82-000000000006", "whatsapp", "outbound",
                 "¡Claro, Ana! Queda el jueves a las 16:00.", ago(2.9)),
        _message("b06d9274-7777-4081-8c93-000000000007", "whatsapp", "inbound", "Perfecto, gracias 🙌", ago(1)),
    ]
    john = [
        _message("c17ea385-8888-4192-9da4-000000000008", "whatsapp", "inbound",
                 "Hi, I saw your ad. Send me more info?", "2026-06-19T08:00:00.000Z"),
    ]
    maria = [
        activity("workflow_assigned", "Assigned to Reactivation outbound",
                 "Lead enrolled in workflow Reactivation outbound", "2026-06-18T09:30:02.000Z"),
        activity("status_changed", "Status changed to Lost", "Not interested this year",
                 "2026-06-21T11:00:00.000Z", actor_type="user"),
    ]
    return {ANA: ana, JOHN: john, MARIA: maria}


def meeting(lead: Json, **fields: Any) -> Json:
    """A meeting with every documented field (defaults from the lead and the account's host)."""
    name = " ".join(part for part in (lead["first_name"], lead["last_name"]) if part)
    record: Json = {
        "id": str(uuid.uuid4()), "lead_id": lead["id"], "title": "", "starts_at": "", "ends_at": "",
        "duration_minutes": 0,
        "timezone": "UTC", "status": "scheduled", "meeting_url": None, "location_type": "video",
        "location_details": None, "host_name": HOST["name"], "meeting_type": "Google Meet",
        "attendee_name": name, "attendee_email": lead["email"], "confirmed_by_lead": False, "cancelled_at": None,
        "cancellation_reason": None, "no_show_reason": None, "outcome_notes": None, "created_at": now(),
    }
    record.update(fields)
    return record


def _meetings(leads: dict[str, Json]) -> dict[str, list[Json]]:
    ana = leads[ANA]
    return {ANA: [
        meeting(ana, id="1f0e2d3c-4b5a-4697-8877-665544332211", title="Discovery call",
                starts_at="2026-06-20T15:00:00.000Z", ends_at="2026-06-20T15:30:00.000Z", duration_minutes=30,
                timezone="America/Santiago", status="completed", meeting_url="https://meet.google.com/abc-defg-hij",
                confirmed_by_lead=True, outcome_notes="Interested; wants pricing for 12 seats.",
                created_at="2026-06-19T10:15:00.000Z"),
        meeting(ana, id="2a1b3c4d-5e6f-4a70-8b91-c2d3e4f5a6b7", title="Product demo",
                starts_at="2026-12-03T19:00:00.000Z", ends_at="2026-12-03T19:45:00.000Z", duration_minutes=45,
                timezone="America/Santiago", status="confirmed", meeting_url="https://meet.google.com/xyz-uvwx-rst",
                confirmed_by_lead=True, created_at="2026-06-21T09:00:00.000Z"),
    ]}


@dataclass
class State:
    """Everything the sandbox account holds. Handlers mutate it under `SandboxApi`'s lock."""

    leads: dict[str, Json]
    workflows: dict[str, Json]
    runs: dict[str, Json]
    tags: dict[str, Json]
    templates: list[Json]
    history: dict[str, list[Json]]
    meetings: dict[str, list[Json]]
    variables: dict[str, Json]
    external_meetings: dict[tuple[str, str], str] = field(default_factory=dict)
    """(external_calendar_provider, external_event_id) → meeting id, for idempotent POST /meetings."""
    legacy_leads: set[str] = field(default_factory=set)
    """Leads GET /leads/{id} shows in the legacy shape (`SandboxApi.use_legacy_shape`)."""

    def active_run(self, lead_id: str, workflow_id: str | None = None) -> Json | None:
        """The lead's active run (of `workflow_id`, if given), terminal status or not."""
        for run in self.runs.values():
            if run["lead_id"] == lead_id and run["is_active"] and workflow_id in (None, run["workflow_id"]):
                return run
        return None

    def status_of(self, run: Json) -> Json:
        statuses = self.workflows[run["workflow_id"]]["statuses"]
        found: Json = next(status for status in statuses if status["key"] == run["status_key"])
        return found

    def is_live(self, run: Json) -> bool:
        """Active and not in a terminal status: what automation stop/resume and is_paused act on."""
        return bool(run["is_active"]) and not self.status_of(run)["is_terminal"]

    def record(self, lead_id: str, item: Json) -> None:
        self.history.setdefault(lead_id, []).append(item)


def blank_lead(**fields: Any) -> Json:
    """A lead as `SandboxApi.add_lead` and `POST /leads` create it."""
    stamp = now()
    lead: Json = {
        "id": str(uuid.uuid4()), "first_name": "Test", "last_name": None, "email": None, "phone": None,
        "source": "api", "company": None, "title": None, "campaign_id": None, "metadata": {},
        "tags": [], "created_at": stamp, "updated_at": stamp,
    }
    lead.update(fields)
    return lead


def seed_state() -> State:
    workflows = _workflows()
    leads = _leads()
    budget = {"value": 5000, "value_text": "about 5k USD", "confidence": 0.95, "updated_at": "2026-06-19T10:13:00.000Z"}
    return State(
        leads=leads, workflows=workflows, runs=_runs(workflows), tags=_tags(), templates=_templates(),
        history=_history(datetime.now(UTC)), meetings=_meetings(leads), variables={ANA: {"budget": budget}},
    )


def copy_of(value: Any) -> Any:
    return copy.deepcopy(value)
