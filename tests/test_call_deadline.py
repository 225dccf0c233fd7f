"""Issue 14: one deadline per tool call for all its Nexor requests (`nexor_mcp.retry.CallDeadline`),
over `httpx2.MockTransport` with a clock the fake Nexor moves forward as it answers."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
import pytest

from nexor_mcp import endpoints
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Secret, Settings
from nexor_mcp.errors import ServerError
from nexor_mcp.retry import CallDeadline, DeadlinePassed, InputEnd, waiting_for_person

pytestmark = pytest.mark.anyio

KEY = "nxr_live_unit_9c4e1f27b3a8"
LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
WORKFLOW = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowNexor:
    """Answers every request `seconds` late on `clock`; `statuses` script the first answers."""

    def __init__(self, clock: Clock, seconds: float, statuses: list[int] | None = None) -> None:
        self.clock, self.seconds, self.statuses = clock, seconds, list(statuses or [])
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append((request.method, request.url.path.removeprefix("/api/public/")))
        self.clock.now += self.seconds
        status = self.statuses.pop(0) if self.statuses else 200
        body = {"success": True, "lead": {"id": LEAD}} if status == 200 else {"error": "busy"}
        return httpx2.Response(status, content=json.dumps(body).encode(), headers={"Retry-After": "0.5"})


def client_for(nexor: SlowNexor, max_retries: int = 0) -> NexorClient:
    settings = Settings(
        api_key=Secret(KEY), base_url="https://api.example.test/api/public", timeout_seconds=5,
        max_retries=max_retries, retry_budget_seconds=1,
    )
    return NexorClient(settings, transport=httpx2.MockTransport(nexor))


async def test_a_calls_requests_stop_at_its_deadline() -> None:
    """Each answer takes 0.6 s: the second read starts at 0.6 s, within the 1 s budget; the write
    would start at 1.2 s, past it, so it is not sent."""
    clock = Clock()
    nexor = SlowNexor(clock, 0.6)
    client = client_for(nexor)
    deadline = CallDeadline(1, 5, clock=clock)
    with deadline.running():
        await client.call(endpoints.get_lead(LEAD))
        await client.call(endpoints.get_lead(LEAD))
        with pytest.raises(DeadlinePassed) as info:
            await client.call(endpoints.update_lead(LEAD, {"title": "late"}))
    assert nexor.requests == [("GET", f"leads/{LEAD}"), ("GET", f"leads/{LEAD}")]
    assert str(info.value) == (
        "Not sent: Nexor answered this call's earlier requests slowly (1.2 s so far), and every request of one "
        "call must start within its 1 s retry budget (retry_budget_seconds), so that the call is answered "
        "within 6 s. This write was not sent, so it changed nothing; try again shortly."
    )
    assert info.value.may_have_taken_effect() is False  # the journal records it as failed, not unknown
    await client.aclose()


async def test_a_read_refused_by_the_deadline_says_nothing_was_changed() -> None:
    clock = Clock()
    client = client_for(SlowNexor(clock, 0.0))
    deadline = CallDeadline(1, 5, clock=clock)
    clock.now = 1.5
    with deadline.running(), pytest.raises(DeadlinePassed, match=r"\(1\.5 s so far\).*Nothing was changed; try"):
        await client.call(endpoints.get_lead(LEAD))
    await client.aclose()


async def test_retries_share_the_calls_budget_instead_of_each_request_having_its_own() -> None:
    """The read took 0.8 s; the PATCH's 503 asks for 0.5 s: 1.3 s would pass the call's 1 s budget,
    so it is not retried (per request, it would have been: 0.5 s of its own 1 s)."""
    clock = Clock()
    nexor = SlowNexor(clock, 0.0, statuses=[200, 503])
    client = client_for(nexor, max_retries=3)
    deadline = CallDeadline(1, 5, clock=clock)
    with deadline.running():
        await client.call(endpoints.get_lead(LEAD))
        clock.now = 0.8
        with pytest.raises(ServerError) as info:
            await client.call(endpoints.update_lead(LEAD, {"title": "x"}))
    assert [method for method, _ in nexor.requests] == ["GET", "PATCH"]
    assert "It was not retried again: waiting 0.5 s would pass the 1 s retry budget of this call." in str(info.value)
    await client.aclose()


async def test_a_write_that_may_not_be_idempotent_is_never_retried_even_with_budget_left() -> None:
    clock = Clock()
    nexor = SlowNexor(clock, 0.0, statuses=[503, 200])
    client = client_for(nexor, max_retries=3)
    with CallDeadline(100, 5, clock=clock).running(), pytest.raises(ServerError):
        message = {"lead_id": LEAD, "workflow_id": WORKFLOW, "channel": "email", "content": "Hi"}
        await client.call(endpoints.send_message(message))
    assert nexor.requests == [("POST", "messages")]
    await client.aclose()


async def test_the_clock_restarts_once_a_person_has_answered() -> None:
    """A person's minutes are not Nexor's time: after the wait the write has the whole budget."""
    clock = Clock()
    nexor = SlowNexor(clock, 0.9)
    client = client_for(nexor)
    with CallDeadline(1, 5, clock=clock).running():
        await client.call(endpoints.get_lead(LEAD))
        with waiting_for_person():
            clock.now += 240.0
        await client.call(endpoints.update_lead(LEAD, {"title": "approved"}))
    assert nexor.requests == [("GET", f"leads/{LEAD}"), ("PATCH", f"leads/{LEAD}")]
    await client.aclose()


async def test_input_end_stops_a_call_waiting_for_a_person_at_once() -> None:
    input_end = InputEnd()
    deadline = CallDeadline(1, 5, input_end=input_end)
    reached: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_end_soon, input_end)
        with anyio.fail_after(5), deadline.running():
            with waiting_for_person():
                await anyio.sleep(60)  # the person, who can no longer answer
            reached.append("after the wait")
    assert deadline.unanswerable is True
    assert reached == []


async def test_a_wait_that_begins_after_input_ended_is_stopped_at_once() -> None:
    input_end = InputEnd()
    input_end.end()
    deadline = CallDeadline(1, 5, input_end=input_end)
    with anyio.fail_after(5), deadline.running(), waiting_for_person():
        await anyio.sleep(60)
    assert deadline.unanswerable is True


async def test_input_end_lets_a_call_busy_with_nexor_finish() -> None:
    """Only a wait for a person is stopped: a request on its way (a write) finishes."""
    input_end = InputEnd()
    deadline = CallDeadline(1, 5, input_end=input_end)
    finished: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_end_soon, input_end)
        with deadline.running():
            await anyio.sleep(0.2)  # the request in flight
            finished.append(True)
    assert finished == [True]
    assert deadline.unanswerable is False


async def _end_soon(input_end: InputEnd) -> None:
    await anyio.sleep(0.05)
    input_end.end()
