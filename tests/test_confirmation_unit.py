"""Issue 14, confirmation, the parts an end-to-end test cannot reach cheaply: every way a live
elicitation can fail (a timeout of 5 minutes, a connection that breaks mid-question) is a no; the
question and the token refusal say what they must. End to end: test_e2e_confirmation_fails_closed.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import anyio
import pytest
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp.types import ElicitResult
from pydantic import ValidationError

from nexor_mcp import confirm
from nexor_mcp.config import Secret
from nexor_mcp.confirm import Sealer, Stop, question_text
from nexor_mcp.request import Request
from nexor_mcp.safety import dry_run_reply, pending_text
from nexor_mcp.tools.preview import Preview

pytestmark = pytest.mark.anyio

ARGS: dict[str, Any] = {"lead_id": "a", "channel": "email", "content": "Hello"}


def invalid_answer() -> ValidationError:
    try:
        ElicitResult.model_validate({"action": "maybe"})
    except ValidationError as error:
        return error
    raise AssertionError("ElicitResult accepted an unknown action")


class Unanswered:
    """A session whose client never answers."""

    async def elicit_form(self, *args: Any, **kwargs: Any) -> ElicitResult:
        await anyio.sleep_forever()
        raise AssertionError


class Failing:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def elicit_form(self, *args: Any, **kwargs: Any) -> ElicitResult:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        MCPError(-32603, "Client callback returned an invalid result"),
        NoBackChannelError("elicitation/create"),
        invalid_answer(),
        anyio.BrokenResourceError(),
        anyio.ClosedResourceError(),
        RuntimeError("stream closed"),
        OSError("broken pipe"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_every_failure_of_a_live_elicitation_is_a_no(error: BaseException) -> None:
    decision = await confirm._live(SimpleNamespace(session=Failing(error), request_id=1), "Send it?")  # type: ignore[arg-type]
    assert isinstance(decision, Stop)
    assert decision.text.startswith("Not sent") and "Nothing was sent" in decision.text
    assert "counts as no" in decision.text


async def test_a_live_elicitation_nobody_answers_is_a_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(confirm, "ELICIT_TIMEOUT_SECONDS", 0.05)
    decision = await confirm._live(SimpleNamespace(session=Unanswered(), request_id=1), "Send it?")  # type: ignore[arg-type]
    assert isinstance(decision, Stop) and "nobody answered" in decision.text


async def test_cancellation_is_not_taken_for_an_answer() -> None:
    """The call being cancelled (client gone) must end it, not turn into a reply."""
    with anyio.move_on_after(0.05) as scope:
        await confirm._live(SimpleNamespace(session=Unanswered(), request_id=1), "Send it?")  # type: ignore[arg-type]
    assert scope.cancelled_caught


def test_a_mac_mismatch_names_the_secret_only_when_there_is_no_shared_one() -> None:
    token = Sealer(None).issue("c1", "t", ARGS, "a")
    unshared = Sealer(None).check(token, "c1", "t", ARGS, "a")
    assert unshared is not None and "not issued for these exact arguments" in unshared
    assert "if the server was restarted or runs as several processes" in unshared and "NEXOR_MCP_SECRET" in unshared
    shared = Sealer(Secret("x" * 32)).check(token, "c1", "t", ARGS, "a")
    assert shared is not None and "NEXOR_MCP_SECRET" not in shared


def test_a_token_with_characters_no_token_has_is_refused_not_raised() -> None:
    sealer = Sealer(Secret("x" * 32))
    for bad in ("c1.\ud800.x", "c1.x.\udfff", "c1.é.ñ"):
        assert sealer.check(bad, "c1", "t", ARGS, "a") == "it is not a confirmation token from this server"


def test_the_question_spells_out_invisible_characters_wherever_they_are() -> None:
    text = question_text("Send \u202eevil\u200b to Ana\r", ["content: \u2066x\u2069", "tab\there"])
    for shown in ("[U+202E]", "[U+200B]", "[U+2066]", "[U+2069]", "\\r", "\\t"):
        assert shown in text
    assert all(char == "\n" or char.isprintable() for char in text)
    assert text.split("\n")[:3] == ["Send [U+202E]evil[U+200B] to Ana\\r", "", "Changes:"]


REQUEST = cast(Request, SimpleNamespace(method="POST", path="messages", body={"lead_id": "a", "content": "Hello"}))


def test_a_dry_run_with_changes_still_says_what_it_does() -> None:
    """The summary (e.g. "its cadence starts at once") is a fact the model needs, changes or not."""
    preview = Preview(summary="Enroll Ana: its cadence starts at once.", changes=["workflow: null → \"SDR\""])
    reply = dry_run_reply("assign_workflow", REQUEST, preview)
    assert "its cadence starts at once" in reply.text and 'workflow: null → "SDR"' in reply.text
    assert "needs_confirmation" not in reply.structured


def test_the_token_ways_text_holds_every_fact_of_its_structured_part() -> None:
    structured = {
        "sent": False, "confirmation_required": True, "confirmation": "c1.abc.def", "expires_in_seconds": 300,
        "question": "Send Hello to Ana?", "would_send": {"method": "POST", "path": "/messages", "body": {"x": 1}},
        "changes": [],
    }
    text = pending_text("send_message", structured)
    assert text.startswith("NOT DONE") and "c1.abc.def" in text and "Send Hello to Ana?" in text
    assert "5 minutes" in text and '{"method":"POST","path":"/messages","body":{"x":1}}' in text
