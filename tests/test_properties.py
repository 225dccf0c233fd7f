"""Property-based, end to end: generated arguments go through a real server process over stdio to
the sandbox. Valid updates must arrive as exactly the body that was passed; invalid ones must be
rejected naming the argument, with zero requests sent. 300 + 300 generated cases, derandomized so
CI is deterministic."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.rpc import RawServer
from nexor_mcp.sandbox import CAMPAIGNS, DEMO_LEAD_IDS, SandboxApi, SandboxServer
from nexor_mcp.tools.arguments import shown_name
from nexor_mcp.tools.fields import is_blank
from tests.conftest import TEST_KEY
from tests.lead_arguments import UPDATABLE_FIELDS

CASES = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
TEXT_FIELDS = ["first_name", "last_name", "phone", "company", "title", "source"]
NULLABLE = ["last_name", "email", "phone", "company", "title", "campaign_id"]


@pytest.fixture(scope="module")
def server(sandbox_server: SandboxServer) -> Iterator[RawServer]:
    env = {"PATH": "/usr/bin:/bin", "NEXOR_BASE_URL": sandbox_server.base_url, "NEXOR_API_KEY": TEST_KEY}
    with RawServer([sys.executable, "-m", "nexor_mcp", "--log-level", "warning"], env) as process:
        process.initialize()
        yield process


# --- strategies -----------------------------------------------------------------------------------

# Text a valid call may hold: no control characters, not blank (invisible-only counts as blank), and
# not the text "null" (rejected on purpose: it is what clients that cannot send null send).
visible = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"))
text = st.text(visible, min_size=1, max_size=40).filter(lambda s: not is_blank(s) and s != "null")
emails = st.from_regex(r"[a-z0-9._+-]{1,16}@[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?(\.[a-z]{2,6}){1,2}", fullmatch=True)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(visible, max_size=30),
)
metadata = st.dictionaries(text, scalars, max_size=6)
lead_ids = st.sampled_from(DEMO_LEAD_IDS).flatmap(lambda i: st.sampled_from([i, i.upper()]))

VALID_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "first_name": text,
    "source": text,
    "email": emails,
    "campaign_id": st.sampled_from(sorted(CAMPAIGNS)),
    "metadata": metadata,
    **{name: text for name in TEXT_FIELDS if name not in ("first_name", "source")},
}
for _name in NULLABLE:
    VALID_VALUES[_name] = st.one_of(st.none(), VALID_VALUES[_name])


@st.composite
def valid_updates(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(sorted(VALID_VALUES)), min_size=1, unique=True))
    return {name: draw(VALID_VALUES[name]) for name in names}


not_a_string = st.one_of(
    st.integers(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@st.composite
def invalid_calls(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """Arguments with exactly one bad argument, and the name the error must give it."""
    arguments: dict[str, Any] = {"lead_id": draw(lead_ids), "title": "kept valid"}
    kind = draw(st.sampled_from(
        ["wrong type", "bad lead_id", "bad email", "bad campaign_id", "unknown key", "nested metadata", "null"]
    ))
    if kind == "wrong type":
        name = draw(st.sampled_from([*TEXT_FIELDS, "email", "campaign_id"]))
        arguments[name] = draw(not_a_string)
    elif kind == "bad lead_id":
        name = "lead_id"
        arguments[name] = draw(st.one_of(st.text().filter(lambda s: not UUID.fullmatch(s)), not_a_string))
    elif kind == "bad email":
        name = "email"
        arguments[name] = draw(st.text(min_size=1, max_size=40).filter(lambda s: "@" not in s))
    elif kind == "bad campaign_id":
        name = "campaign_id"
        arguments[name] = draw(st.text(min_size=1, max_size=40).filter(lambda s: not UUID.fullmatch(s)))
    elif kind == "unknown key":
        reserved = {*UPDATABLE_FIELDS, "lead_id", "clear"}
        name = draw(st.text(min_size=1, max_size=30).filter(lambda k: k not in reserved))
        arguments[name] = draw(scalars)
    elif kind == "nested metadata":
        key = draw(text)
        name = f"metadata.{key}"
        nested = draw(st.one_of(st.lists(scalars, max_size=3), st.dictionaries(text, scalars, max_size=2)))
        arguments["metadata"] = {key: nested}
    else:
        name = draw(st.sampled_from(["first_name", "source", "metadata"]))
        arguments[name] = None
    return arguments, name


# --- properties -----------------------------------------------------------------------------------


@CASES
@given(lead_id=lead_ids, changes=valid_updates())
def test_any_valid_update_arrives_as_exactly_the_body_passed(
    server: RawServer, api: SandboxApi, lead_id: str, changes: dict[str, Any]
) -> None:
    seen = len(api.requests)
    result = server.call_tool("update_lead", {"lead_id": lead_id, **changes})
    assert result["isError"] is False, result["content"][0]["text"]
    new = api.requests[seen:]
    assert len(new) == 1
    assert new[0].method == "PATCH"
    assert new[0].path == f"/api/public/leads/{lead_id.lower()}"
    assert new[0].json == changes
    lead = result["structuredContent"]["lead"]
    for name, value in changes.items():
        if name != "metadata":
            assert lead[name] == value


@CASES
@given(call=invalid_calls())
def test_any_invalid_call_names_the_argument_and_sends_nothing(
    server: RawServer, api: SandboxApi, call: tuple[dict[str, Any], str]
) -> None:
    arguments, name = call
    seen = len(api.requests)
    result = server.call_tool("update_lead", arguments)
    text = result["content"][0]["text"]
    assert result["isError"] is True
    assert text.startswith("Invalid arguments for update_lead; nothing was sent to Nexor.")
    assert f"\n- {shown_name(name)}:" in text, (name, text)
    assert len(api.requests) == seen
