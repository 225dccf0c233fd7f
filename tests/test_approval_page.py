"""Issue 17, the approval page below the browser: `MemoryApprovals` keeps exactly the `Store`'s
approval contract (checked against a real SQLite store), the page's HTML escapes and spells out
everything it shows and fetches nothing, and its handlers (Starlette's TestClient, and the real
`LocalApprovalServer` over HTTP) only ever decide on a POST from the page itself, once."""

from __future__ import annotations

import html
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from nexor_mcp.approvals import (
    DECIDED_BY,
    ApprovalStore,
    LocalApprovalServer,
    MemoryApprovals,
    approval_routes,
    approval_token,
)
from nexor_mcp.approvals.page import (
    NEXT_STEP,
    consequence,
    decided_page,
    expired_page,
    not_found_page,
    pending_page,
    pretty_body,
    refused_page,
    remaining,
)
from nexor_mcp.approvals.routes import MAX_FORM_BYTES, SECURITY_HEADERS
from nexor_mcp.quoting import block, quote
from nexor_mcp.store import Approval, Store, StoreError, open_store
from nexor_mcp.store.base import APPROVAL_RETENTION_SECONDS
from tests.test_store import in_threads

KEY = b"approval-page-test-key-0123456789abcdef"
NOW = 1_800_000_000.0
ORIGIN = "http://testserver"
LINK = "https://evil.example/login?session=" + "x" * 120
LEAD_NAME = "Ana \u202eRojas"
QUESTION = "\n".join([
    f"Send a WhatsApp template message to {quote(LEAD_NAME)} at {quote('+56987654321')} now.",
    f"Template {quote('first_contact_es')} (b3c1f0a2, language {quote('es')}), as Nexor lists it:",
    "Body:",
    block("Hola {{1}}, soy {{2}}.\nSegunda línea <b>bold</b>"),
    "Parameters filled in, as sent:",
    f"- body {{{{1}}}}: {quote('Ana')}",
    f"- body {{{{2}}}}: {quote(LINK, limit=10_000)}",
    f"From workflow {quote('SDR <script>alert(1)</script>')} (1a2b3c4d): its WhatsApp number is used.",
])
BODY: dict[str, Any] = {"lead_id": "3f2b8c1e", "channel": "whatsapp", "template_id": "b3c1f0a2",
                        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                                                        {"type": "text", "text": LINK}]}]}
BUTTONS = ('<button type="submit" name="decision" value="approve" class="approve">Approve</button>',
           '<button type="submit" name="decision" value="decline" class="decline">Decline</button>')


def both_fit(store: Store, memory: MemoryApprovals) -> list[ApprovalStore]:
    """Never called: mypy checks here that `Store` and `MemoryApprovals` both are `ApprovalStore`s."""
    return [store, memory]


@pytest.fixture(params=["memory", "sqlite"])
def registry(request: pytest.FixtureRequest) -> Iterator[ApprovalStore]:
    """Each test that takes it runs on `MemoryApprovals` and on a real SQLite store."""
    if request.param == "memory":
        yield MemoryApprovals()
        return
    with open_store(request.getfixturevalue("sqlite_url")) as store:
        yield store


def create(approvals: ApprovalStore, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "account": "5f2c1a9e0b7d4c3a", "tool": "send_message", "method": "POST", "path": "/messages", "body": BODY,
        "question": QUESTION, "expires_at": time.time() + 300,
    }
    arguments.update(overrides)
    return approvals.create_approval(**arguments)


def state(approvals: ApprovalStore, approval_id: str) -> str:
    found = approvals.get_approval(approval_id)
    assert found is not None
    return found.state


def approval(**overrides: Any) -> Approval:
    fields: dict[str, Any] = {
        "id": "A" * 43, "account": "5f2c1a9e0b7d4c3a", "tool": "send_message", "method": "POST",
        "path": "/messages", "body": BODY, "question": QUESTION, "created_at": NOW, "expires_at": NOW + 300,
        "state": "pending", "decided_by": None, "decided_at": None,
    }
    fields.update(overrides)
    return Approval(**fields)


def text_of(page: str) -> str:
    """What a person reads: the page without its tags and style, entities decoded."""
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    page = re.sub(r"</?(span|b|time)\b[^>]*>", "", page)  # inline: no word break
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


# --- MemoryApprovals: the Store's contract -----------------------------------------------------------


def scenario(approvals: ApprovalStore) -> list[Any]:
    """One run through every rule, with explicit times; what each call answered."""
    seen: list[Any] = []
    fresh = approvals.create_approval(account="a", tool="send_message", method="POST", path="/messages",
                                      body={"t": "Hola\u202e", "n": [1, 2.5, None, True], "half": "\ud83d"},
                                      question="Q?", expires_at=NOW + 300, now=NOW)
    seen.append(approvals.use_approval(fresh, now=NOW + 1))
    seen.append(approvals.decide_approval(fresh, True, "ana", NOW + 2))
    seen.append(approvals.decide_approval(fresh, False, "mallory", NOW + 3))
    seen.append(approvals.use_approval(fresh, now=NOW + 4))
    seen.append(approvals.use_approval(fresh, now=NOW + 5))
    declined = approvals.create_approval(account="a", tool="t", method="POST", path="/p", body=None, question="",
                                         expires_at=NOW + 300, now=NOW)
    seen.append(approvals.decide_approval(declined, False, "ana", NOW + 6))
    seen.append(approvals.use_approval(declined, now=NOW + 7))
    expiring = approvals.create_approval(account="a", tool="t", method="POST", path="/p", body=[1], question="",
                                         expires_at=NOW + 300, now=NOW)
    seen.append(approvals.get_approval(expiring, now=NOW + 300).state)  # type: ignore[union-attr]
    seen.append(approvals.get_approval(expiring, now=NOW + 301).state)  # type: ignore[union-attr]
    seen.append(approvals.decide_approval(expiring, True, "ana", NOW + 301))
    seen.append(approvals.get_approval(expiring, now=NOW).state)  # type: ignore[union-attr]  # recorded expired
    late = approvals.create_approval(account="a", tool="t", method="POST", path="/p", body={}, question="",
                                     expires_at=NOW + 300, now=NOW)
    seen.append(approvals.decide_approval(late, True, "ana", NOW + 299))
    seen.append(approvals.use_approval(late, now=NOW + 301))
    seen.append(approvals.get_approval(late, now=NOW + 302).state)  # type: ignore[union-attr]
    seen += [approvals.get_approval("nope"), approvals.decide_approval("nope", True, "x", NOW),
             approvals.use_approval("nope", now=NOW)]
    for approval_id in (fresh, declined, expiring, late):
        found = approvals.get_approval(approval_id, now=NOW + 400)
        assert found is not None and found.id == approval_id
        seen.append({key: value for key, value in vars(found).items() if key != "id"})
    return seen


def test_memory_approvals_answer_every_call_as_a_real_sqlite_store_does(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        expected = scenario(store)
    assert scenario(MemoryApprovals()) == expected
    assert expected[:5] == [False, True, False, True, False]


def test_memory_approvals_keep_a_copy_of_the_body_and_refuse_what_is_not_json() -> None:
    approvals = MemoryApprovals()
    body: dict[str, Any] = {"items": [1]}
    approval_id = approvals.create_approval(account="a", tool="t", method="POST", path="/p", body=body,
                                            question="", expires_at=NOW + 300, now=NOW)
    body["items"].append(2)
    read = approvals.get_approval(approval_id, now=NOW)
    assert read is not None and read.body == {"items": [1]}
    read.body["items"].append(3)
    again = approvals.get_approval(approval_id, now=NOW)
    assert again is not None and again.body == {"items": [1]}
    with pytest.raises(TypeError):
        approvals.create_approval(account="a", tool="t", method="POST", path="/p", body={"x": object()},
                                  question="", expires_at=NOW + 300, now=NOW)


def test_memory_approvals_ids_are_random_and_long_expired_ones_are_deleted() -> None:
    approvals = MemoryApprovals()
    ids = {approvals.create_approval(account="a", tool="t", method="POST", path="/p", body=None, question="",
                                     expires_at=NOW + 300, now=NOW) for _ in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(r"[A-Za-z0-9_-]{43}", approval_id) for approval_id in ids)
    old = approvals.create_approval(account="a", tool="t", method="POST", path="/p", body=None, question="",
                                    expires_at=NOW - APPROVAL_RETENTION_SECONDS - 1, now=NOW - 8 * 86400)
    recent = approvals.create_approval(account="a", tool="t", method="POST", path="/p", body=None, question="",
                                       expires_at=NOW - 10, now=NOW - 310)
    approvals.create_approval(account="a", tool="t", method="POST", path="/p", body=None, question="",
                              expires_at=NOW + 300, now=NOW)
    assert approvals.get_approval(old) is None and approvals.get_approval(recent) is not None
    assert len(approvals) == 52


def test_racing_deciders_and_users_of_memory_approvals_succeed_once() -> None:
    approvals = MemoryApprovals()

    def race() -> None:
        approval_id = approvals.create_approval(account="a", tool="t", method="POST", path="/p", body=None,
                                                question="", expires_at=time.time() + 300)
        decided = in_threads(8, lambda index: approvals.decide_approval(approval_id, index % 2 == 0, f"p{index}"))
        assert sorted(decided) == [False] * 7 + [True]
        used = in_threads(8, lambda index: approvals.use_approval(approval_id))
        winner = decided.index(True)
        assert sorted(used) == ([False] * 8 if winner % 2 else [False] * 7 + [True])

    for _ in range(20):
        race()


# --- the HTML ---------------------------------------------------------------------------------------


def test_the_pending_page_shows_what_is_done_its_consequence_undo_expiry_request_and_next_step() -> None:
    page = pending_page(approval(), token="t0k3n", action="/approve/" + "A" * 43, now=NOW)
    text = text_of(page)
    assert "nexor-mcp" in text and "Approval requested" in text and "Send message" in text
    assert "Contacts a real person now." in text
    assert "No. A message cannot be unsent" in text
    assert "In 5 minutes, at 08:05 UTC on 15 Jan 2027" in text
    assert NEXT_STEP in text
    assert all(button in page for button in BUTTONS)
    assert '<form class="decide" method="post" action="/approve/' + "A" * 43 + '">' in page
    assert '<input type="hidden" name="token" value="t0k3n">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "prefers-color-scheme:dark" in page
    assert '<meta http-equiv="refresh" content="302">' in page  # shows "expired" once it is


def test_every_line_of_the_question_is_shown_and_the_text_block_whole_without_its_bars() -> None:
    page = pending_page(approval(), token="t", action="/a", now=NOW)
    text = text_of(page)
    for line in QUESTION.replace("\u202e", "[U+202E]").splitlines():
        shown = line.removeprefix("│ ")
        assert shown in text, shown
    sent = '<blockquote class="sent">Hola {{1}}, soy {{2}}.\nSegunda línea &lt;b&gt;bold&lt;/b&gt;</blockquote>'
    assert sent in page
    assert f'- body {{{{2}}}}: "{LINK}"' in text  # a parameter (a link) is never cut


def test_nothing_from_the_request_becomes_markup_or_hides_a_character() -> None:
    evil = "<script>alert(1)</script>\"'&\u202e\u200b\x1b\ud83d"
    shown = approval(tool=evil, method=evil, path=evil, question=evil + "\n│ " + evil, body={"k": evil, evil: [evil]},
                     decided_by=evil, account=evil, state="approved", decided_at=NOW + 5)
    pages = [pending_page(shown, token=evil, action=evil, now=NOW), decided_page(shown, now=NOW),
             decided_page(shown, just_now=True, now=NOW), expired_page(shown), refused_page(evil, back=evil),
             decided_page(approval(state="declined", decided_by=evil, decided_at=NOW), notice=evil, now=NOW)]
    for page in pages:
        page.encode("utf-8")  # a lone surrogate was spelled out, not passed on
        assert "<script" not in page.lower()
        assert not re.search("[\u202e\u200b\x1b\ud83d]", page)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "[U+202E][U+200B][U+001B][U+D83D]" in text_of(page)
    assert "[U+202E]" in text_of(pages[0])
    assert "\\u202e\\u200b\\u001b\\ud83d" in pages[0]  # in the JSON body: the same JSON, visibly


def test_the_page_fetches_nothing_and_runs_no_script() -> None:
    for page in (pending_page(approval(), token="t", action="/a", now=NOW), not_found_page(),
                 decided_page(approval(state="approved", decided_at=NOW), now=NOW), expired_page(approval())):
        assert not re.search(r"<script|src=|<link|@import|url\(|https?://(?!evil\.example)", page, re.I)


@pytest.mark.parametrize(("tool", "headline", "undo"), [
    ("send_message", "Contacts a real person now.", "A message cannot be unsent"),
    ("set_lead_status", "Moves the lead in the pipeline now.", "the follow-ups it triggers cannot be taken back"),
    ("assign_workflow", "Moves the lead in the pipeline now.", "the follow-ups it triggers cannot be taken back"),
    ("resume_automation", "Hands the lead back to Nexor's automation now.", "follow-ups it triggers cannot"),
    ("update_lead", "Changes the lead's data in Nexor now.", "nexor-mcp audit undo restores it"),
    ("stop_automation", "Changes the lead's data in Nexor now.", "Only by hand"),
    ("no_such_tool", "Makes a change in Nexor now.", "assume it cannot be undone"),
])
def test_the_consequence_and_whether_it_can_be_undone_follow_from_the_tool(tool: str, headline: str,
                                                                            undo: str) -> None:
    said = consequence(tool)
    assert said.headline == headline and undo in said.undo
    page = text_of(pending_page(approval(tool=tool), token="t", action="/a", now=NOW))
    assert headline in page and undo in page


@pytest.mark.parametrize(("seconds", "said"), [
    (299, "in 5 minutes"), (300, "in 5 minutes"), (61, "in 2 minutes"), (60, "in 1 minute"),
    (30, "in less than a minute"), (0, "now"), (-5, "now"), (3 * 3600, "in about 3 hours"),
])
def test_the_time_left_is_rounded_up(seconds: float, said: str) -> None:
    assert remaining(seconds) == said


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_body_shown_is_the_same_json_with_nothing_invisible(body: Any) -> None:
    shown = pretty_body(body)
    assert json.loads(shown) == body
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2028\u2029\ud800-\udfff]", shown)


def test_decided_pages_say_what_happened_and_never_offer_the_buttons() -> None:
    approved = approval(state="approved", decided_by=DECIDED_BY, decided_at=NOW + 60)
    cases = {
        "Approved: nexor-mcp is sending it now": decided_page(approved, just_now=True, now=NOW + 61),
        "Already decided: approved": decided_page(approved, now=NOW + 61),
        "Declined: nothing was sent": decided_page(approval(state="declined", decided_by=DECIDED_BY,
                                                            decided_at=NOW + 60), just_now=True, now=NOW + 61),
        "Already decided: declined": decided_page(approval(state="declined", decided_by=DECIDED_BY,
                                                           decided_at=NOW + 60), now=NOW + 61),
        "This request expired": expired_page(approval(state="expired")),
        "No such approval": not_found_page(),
    }
    for heading, page in cases.items():
        text = text_of(page)
        assert heading in text
        assert "<button" not in page and "<form" not in page
    assert "You can return to your assistant now." in text_of(cases["Approved: nexor-mcp is sending it now"])
    assert "by browser page" in text_of(cases["Already decided: approved"])
    used = text_of(decided_page(approval(state="used", decided_by=DECIDED_BY, decided_at=NOW + 60), now=NOW + 61))
    assert "nexor-mcp has taken it to send, once" in used
    stale = text_of(decided_page(approved, now=NOW + 400))
    assert "It was not sent before it expired" in stale and "will not be sent" in stale


# --- the handlers ------------------------------------------------------------------------------------


class Decisions:
    """What `on_decided` was told, and from which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.threads: set[int] = set()

    def __call__(self, approval_id: str, approved: bool) -> None:
        self.calls.append((approval_id, approved))
        self.threads.add(threading.get_ident())


@pytest.fixture
def decisions() -> Decisions:
    return Decisions()


@pytest.fixture
def client(registry: ApprovalStore, decisions: Decisions) -> Iterator[TestClient]:
    app = Starlette(routes=approval_routes(registry, KEY, on_decided=decisions))
    with TestClient(app, base_url=ORIGIN, follow_redirects=False) as test_client:
        yield test_client


def post(client: TestClient, approval_id: str, decision: str = "approve", *, token: str | None = "page",
         headers: dict[str, str] | None = None, prefix: str = "/approve") -> httpx2.Response:
    form = {"decision": decision}
    if token is not None:
        form["token"] = approval_token(KEY, approval_id) if token == "page" else token
    return client.post(f"{prefix}/{approval_id}", data=form,
                       headers={"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"} if headers is None else headers)


def test_get_and_head_show_the_page_with_its_security_headers_and_change_nothing(
    client: TestClient, registry: ApprovalStore
) -> None:
    approval_id = create(registry)
    for _ in range(3):
        shown = client.get(f"/approve/{approval_id}")
        assert shown.status_code == 200 and all(button in shown.text for button in BUTTONS)
        assert {name: shown.headers[name] for name in SECURITY_HEADERS} == dict(SECURITY_HEADERS)
        assert shown.headers["content-security-policy"] == (
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
            "base-uri 'none'")
        assert shown.headers["content-type"] == "text/html; charset=utf-8"
        assert f'name="token" value="{approval_token(KEY, approval_id)}"' in shown.text
        assert client.head(f"/approve/{approval_id}").status_code == 200
    assert state(registry, approval_id) == "pending"
    for method in ("PUT", "DELETE", "PATCH"):
        assert client.request(method, f"/approve/{approval_id}").status_code == 405
    assert state(registry, approval_id) == "pending"


def test_an_unknown_or_malformed_id_is_a_404_page(client: TestClient) -> None:
    for approval_id in ("A" * 43, "x", "a.b", "%3Cscript%3E"):
        missing = client.get(f"/approve/{approval_id}")
        assert missing.status_code == 404 and "No such approval" in missing.text
        assert missing.headers["x-frame-options"] == "DENY"
    assert post(client, "A" * 43).status_code == 404


def test_approve_decides_once_then_redirects_to_the_page_that_says_so(
    client: TestClient, registry: ApprovalStore, decisions: Decisions
) -> None:
    approval_id = create(registry)
    answered = post(client, approval_id)
    assert answered.status_code == 303 and answered.headers["location"] == f"/approve/{approval_id}"
    decided = registry.get_approval(approval_id)
    assert decided is not None and (decided.state, decided.decided_by) == ("approved", "browser page")
    assert decisions.calls == [(approval_id, True)]
    after = client.get(answered.headers["location"])
    assert "Approved: nexor-mcp is sending it now" in text_of(after.text) and "<button" not in after.text
    assert "You can return to your assistant now." in after.text
    reloaded = client.get(f"/approve/{approval_id}")
    assert "Already decided: approved" in reloaded.text and "<button" not in reloaded.text
    again = post(client, approval_id, "decline")
    assert again.status_code == 409 and "already been decided" in again.text and "<button" not in again.text
    assert state(registry, approval_id) == "approved" and decisions.calls == [(approval_id, True)]


def test_decline_decides_and_says_nothing_was_sent(
    client: TestClient, registry: ApprovalStore, decisions: Decisions
) -> None:
    approval_id = create(registry)
    answered = post(client, approval_id, "decline")
    assert answered.status_code == 303 and state(registry, approval_id) == "declined"
    assert "Declined: nothing was sent" in text_of(client.get(f"/approve/{approval_id}").text)
    assert decisions.calls == [(approval_id, False)]
    assert post(client, approval_id, "approve").status_code == 409
    assert state(registry, approval_id) == "declined"


@pytest.mark.parametrize(("token", "headers", "why"), [
    (None, None, "no approval token"),
    ("0" * 64, None, "not this page's"),
    ("", None, "not this page's"),
    ("page", {"Origin": "http://evil.example"}, "another origin"),
    ("page", {"Origin": "null"}, "another origin"),
    ("page", {"Origin": "https://testserver"}, "another origin"),
    ("page", {"Origin": ORIGIN, "Sec-Fetch-Site": "cross-site"}, "another site"),
    ("page", {"Origin": ORIGIN, "Sec-Fetch-Site": "same-site"}, "another site"),
    ("page", {}, "no Origin header"),
    ("page", {"Sec-Fetch-Site": "none"}, "no Origin header"),
])
def test_a_decision_not_made_on_the_page_is_refused_and_changes_nothing(
    client: TestClient, registry: ApprovalStore, decisions: Decisions, token: str | None,
    headers: dict[str, str] | None, why: str
) -> None:
    approval_id = create(registry)
    refused = post(client, approval_id, token=token, headers=headers)
    assert refused.status_code == 403, refused.text
    assert "Refused: nothing was decided" in text_of(refused.text) and why in text_of(refused.text)
    assert "<button" not in refused.text
    assert state(registry, approval_id) == "pending" and decisions.calls == []


def test_a_token_is_good_for_its_own_approval_only(client: TestClient, registry: ApprovalStore) -> None:
    first, second = create(registry), create(registry)
    assert post(client, first, token=approval_token(KEY, second)).status_code == 403
    assert post(client, first, token=approval_token(b"another-key-of-32-bytes-long!!!!", first)).status_code == 403
    assert (state(registry, first), state(registry, second)) == ("pending", "pending")


def test_without_origin_only_a_same_origin_fetch_may_decide(client: TestClient, registry: ApprovalStore) -> None:
    approval_id = create(registry)
    assert post(client, approval_id, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 303
    assert state(registry, approval_id) == "approved"


def test_bodies_that_are_too_large_or_not_the_form_are_refused(client: TestClient, registry: ApprovalStore) -> None:
    approval_id = create(registry)
    token = approval_token(KEY, approval_id)
    headers = {"Origin": ORIGIN, "Content-Type": "application/x-www-form-urlencoded"}
    big = f"decision=approve&token={token}&pad={'x' * MAX_FORM_BYTES}".encode()
    assert client.post(f"/approve/{approval_id}", content=big, headers=headers).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield f"decision=approve&token={token}&pad=".encode()
        for _ in range(10):
            yield b"x" * 1024

    assert client.post(f"/approve/{approval_id}", content=chunks(), headers=headers).status_code == 413
    as_json = json.dumps({"decision": "approve", "token": token})
    assert client.post(f"/approve/{approval_id}", content=as_json,
                       headers={"Origin": ORIGIN, "Content-Type": "application/json"}).status_code == 415
    assert post(client, approval_id, "yes").status_code == 400
    twice = f"decision=approve&decision=decline&token={token}"
    assert client.post(f"/approve/{approval_id}", content=twice, headers=headers).status_code == 400
    assert state(registry, approval_id) == "pending"


def test_an_expired_approval_shows_expired_and_refuses_a_decision(client: TestClient, registry: ApprovalStore,
                                                                   decisions: Decisions) -> None:
    approval_id = create(registry, expires_at=time.time() - 1)
    shown = client.get(f"/approve/{approval_id}")
    assert "This request expired" in shown.text and "<button" not in shown.text
    refused = post(client, approval_id)
    assert refused.status_code == 409 and "the request had expired" in refused.text
    assert state(registry, approval_id) == "expired" and decisions.calls == []


def test_a_used_approval_says_it_was_approved_and_taken_to_send(client: TestClient, registry: ApprovalStore) -> None:
    approval_id = create(registry)
    assert post(client, approval_id).status_code == 303
    assert registry.use_approval(approval_id)
    assert "Approved: nexor-mcp is sending it now" in text_of(client.get(f"/approve/{approval_id}").text)
    text = text_of(client.get(f"/approve/{approval_id}").text)  # the reload
    assert "Already decided: approved" in text and "taken it to send, once" in text


def test_a_failing_callback_does_not_undo_the_decision(registry: ApprovalStore) -> None:
    def broken(approval_id: str, approved: bool) -> None:
        raise RuntimeError("waiter gone")

    app = Starlette(routes=approval_routes(registry, KEY, on_decided=broken))
    with TestClient(app, base_url=ORIGIN, follow_redirects=False) as test_client:
        approval_id = create(registry)
        assert post(test_client, approval_id).status_code == 303
    assert state(registry, approval_id) == "approved"


def test_mounted_under_a_prefix_the_form_posts_to_its_own_full_path(registry: ApprovalStore) -> None:
    app = Starlette(routes=[Mount("/hosted", routes=approval_routes(registry, KEY, prefix="/ok"))])
    with TestClient(app, base_url=ORIGIN, follow_redirects=False) as test_client:
        approval_id = create(registry)
        shown = test_client.get(f"/hosted/ok/{approval_id}")
        assert f'action="/hosted/ok/{approval_id}"' in shown.text
        answered = post(test_client, approval_id, prefix="/hosted/ok")
        assert answered.status_code == 303 and answered.headers["location"] == f"/hosted/ok/{approval_id}"
    assert state(registry, approval_id) == "approved"


def test_allowed_hosts_and_trusted_origins(registry: ApprovalStore) -> None:
    routes = approval_routes(registry, KEY, allowed_hosts={"crm.example.com"},
                             trusted_origins={"https://crm.example.com"})
    with TestClient(Starlette(routes=routes), base_url="http://crm.example.com", follow_redirects=False) as proxied:
        approval_id = create(registry)
        assert proxied.get(f"/approve/{approval_id}", headers={"Host": "rebound.example"}).status_code == 421
        assert post(proxied, approval_id, headers={"Origin": "https://crm.example.com", "Host": "rebound.example"}
                    ).status_code == 421
        assert post(proxied, approval_id, headers={"Origin": "https://crm.example.com"}).status_code == 303
    assert state(registry, approval_id) == "approved"


def test_allowed_hosts_take_the_sdks_any_port_patterns(registry: ApprovalStore) -> None:
    routes = approval_routes(registry, KEY, allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "localhost"])
    approval_id = create(registry)
    with TestClient(Starlette(routes=routes), base_url="http://127.0.0.1:8000") as served:
        for host, status in [("127.0.0.1:8000", 200), ("localhost:1", 200), ("[::1]:8000", 200), ("localhost", 200),
                             ("127.0.0.1", 421), ("127.0.0.1:80x", 421), ("127.0.0.1.evil.example:80", 421),
                             ("evil.example:8000", 421), ("", 421)]:
            assert served.get(f"/approve/{approval_id}", headers={"Host": host}).status_code == status, host


def test_a_store_that_does_not_answer_decides_nothing() -> None:
    class Down(MemoryApprovals):
        def get_approval(self, approval_id: str, *, now: float | None = None) -> Approval | None:
            raise StoreError("sqlite:///x", "database is locked")

    with TestClient(Starlette(routes=approval_routes(Down(), KEY)), base_url=ORIGIN) as down:
        assert down.get(f"/approve/{'A' * 43}").status_code == 503
        answered = post(down, "A" * 43)
        assert answered.status_code == 503 and "nothing was decided" in answered.text


def test_the_key_must_be_long_enough(registry: ApprovalStore) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        approval_routes(registry, b"short")


# --- LocalApprovalServer, over real HTTP ---------------------------------------------------------------


@pytest.mark.anyio
async def test_the_local_server_serves_the_page_on_loopback_and_decides_in_its_own_loop(
    registry: ApprovalStore,
) -> None:
    woken = anyio.Event()
    told: list[tuple[str, bool, int]] = []

    def on_decided(approval_id: str, approved: bool) -> None:
        told.append((approval_id, approved, threading.get_ident()))
        woken.set()  # an anyio.Event, set directly: the callback runs in this loop

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    server = LocalApprovalServer(registry, KEY, on_decided=on_decided)
    base = await server.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base) and await server.start() == base
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
        approval_id = create(registry)
        url = server.url_for(approval_id)
        assert url == f"{base}/approve/{approval_id}"
        async with httpx2.AsyncClient(follow_redirects=False) as http:
            shown = await http.get(url)
            assert shown.status_code == 200 and all(button in shown.text for button in BUTTONS)
            assert (await http.head(url)).status_code == 200
            port = server.port
            assert port is not None
            assert (await http.get(url, headers={"Host": f"localhost:{port}"})).status_code == 200
            for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}"):
                assert (await http.get(url, headers={"Host": host})).status_code == 421
            form = {"decision": "approve", "token": approval_token(KEY, approval_id)}
            rebound = await http.post(url, data=form, headers={"Host": f"evil.example:{port}",
                                                               "Origin": f"http://evil.example:{port}"})
            assert rebound.status_code == 421 and state(registry, approval_id) == "pending"
            other = await http.get(f"{base}/elsewhere")
            assert other.status_code == 404 and other.headers["x-frame-options"] == "DENY"
            assert (await http.put(url)).status_code == 405
            assert state(registry, approval_id) == "pending"
            answered = await http.post(url, data=form, headers={"Origin": base})
            assert answered.status_code == 303
            with anyio.fail_after(5):
                await woken.wait()
        assert told == [(approval_id, True, threading.get_ident())]
        assert state(registry, approval_id) == "approved"
    finally:
        await server.close()
    await server.close()  # idempotent
    async with httpx2.AsyncClient() as http:
        with pytest.raises(httpx2.ConnectError):
            await http.get(base)


def test_the_local_server_writes_nothing_to_stdout() -> None:
    script = """
import asyncio, logging, sys, time
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
import httpx2
from nexor_mcp.approvals import LocalApprovalServer, MemoryApprovals, approval_token
async def main():
    approvals = MemoryApprovals()
    server = LocalApprovalServer(approvals, b"k" * 32)
    base = await server.start()
    approval_id = approvals.create_approval(account="a", tool="send_message", method="POST", path="/m",
                                            body={}, question="Q", expires_at=time.time() + 60)
    async with httpx2.AsyncClient() as http:
        await http.get(server.url_for(approval_id))
        await http.get(base + "/nothing")
        await http.get(server.url_for(approval_id), headers={"Host": "evil.example"})
        await http.post(server.url_for(approval_id), data={"decision": "approve",
                        "token": approval_token(b"k" * 32, approval_id)}, headers={"Origin": base})
    await server.close()
    assert approvals.get_approval(approval_id).state == "approved"
asyncio.run(main())
"""
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr.decode()
    assert ran.stdout == b""
