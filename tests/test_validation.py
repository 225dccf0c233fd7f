"""Unit tests for argument validation: `parse_update_arguments`, `parse_get_arguments`, `excerpt`.

The body an update sends must hold exactly the keys the caller wrote, with the values exactly as
written (a string that looks like JSON stays a string); every rejection must name the argument and
say what to do, without echoing huge values or pydantic boilerplate.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexor_mcp.tools.arguments import InvalidArguments, Problem, excerpt
from nexor_mcp.tools.fields import is_blank
from tests.lead_arguments import (
    NULLABLE_FIELDS,
    UPDATABLE_FIELDS,
    LeadUpdate,
    parse_get_arguments,
    parse_update_arguments,
)

LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
LEAD_UPPER = LEAD.upper()
CAMPAIGN = "0b7e2d4c-5f61-4a8e-9c3b-2a1d0e9f8b7c"
HUGE = "x" * 10_000
MAX_MESSAGE_CHARS = 600

TEXT_FIELDS = ("first_name", "last_name", "phone", "company", "title", "source")
STRING_FIELDS = (*TEXT_FIELDS, "email", "campaign_id")
NON_NULLABLE_FIELDS = tuple(name for name in UPDATABLE_FIELDS if name not in NULLABLE_FIELDS)
NULLABLE_STRING_FIELDS = tuple(name for name in STRING_FIELDS if name in NULLABLE_FIELDS)
NON_NULLABLE_STRING_FIELDS = tuple(name for name in STRING_FIELDS if name not in NULLABLE_FIELDS)


def update(**fields: Any) -> LeadUpdate:
    return parse_update_arguments({"lead_id": LEAD, **fields})


def reject_update(arguments: dict[str, Any] | None) -> InvalidArguments:
    with pytest.raises(InvalidArguments) as info:
        parse_update_arguments(arguments)
    return info.value


def reject_get(arguments: dict[str, Any] | None) -> InvalidArguments:
    with pytest.raises(InvalidArguments) as info:
        parse_get_arguments(arguments)
    return info.value


def messages(exc: InvalidArguments) -> dict[str, str]:
    """Problem messages keyed by argument (joined when one argument has several problems)."""
    found: dict[str, list[str]] = {}
    for problem in exc.problems:
        found.setdefault(problem.argument, []).append(problem.message)
    return {name: " | ".join(texts) for name, texts in found.items()}


def assert_same_json(actual: Any, expected: Any) -> None:
    """Equal *and* of the same JSON types: `True == 1` and `1 == 1.0` in Python, not on the wire."""
    assert actual == expected
    assert json.dumps(actual, ensure_ascii=False) == json.dumps(expected, ensure_ascii=False)


# --------------------------------------------------------------------------------------------------
# Accepted updates: the exact body
# --------------------------------------------------------------------------------------------------

TEXT_VALUES = [
    "Ana",
    "[1, 2]",
    "Null",
    "NULL",
    "true",
    "false",
    "42",
    "0",
    "{}",
    '{"a": 1}',
    "  padded  ",
    "ñandú 😀 中文",
    "O'Brien \"quoted\" \\ back",
    "x" * 5000,
]


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("value", TEXT_VALUES, ids=lambda v: repr(v)[:20])
def test_text_field_is_sent_exactly_as_given(field: str, value: str) -> None:
    result = update(**{field: value})
    assert_same_json(result.body, {field: value})
    assert type(result.body[field]) is str
    assert result.body[field].encode() == value.encode()


@pytest.mark.parametrize(
    "value",
    ["ana.rojas@example.com", "ANA@Example.COM", "first.last+tag@sub.example.co", "a@b.cl", "ñ@ejemplo.es"],
)
def test_email_is_sent_exactly_as_given(value: str) -> None:
    assert_same_json(update(email=value).body, {"email": value})


@pytest.mark.parametrize("value", [CAMPAIGN, CAMPAIGN.upper(), "0B7E2D4C-5f61-4A8E-9c3b-2A1D0E9F8B7C"])
def test_campaign_id_is_lower_cased_like_lead_id(value: str) -> None:
    # A UUID in any case is one id; Nexor returns them lowercase, so that is what is sent.
    assert_same_json(update(campaign_id=value).body, {"campaign_id": CAMPAIGN})


@pytest.mark.parametrize("field", NULLABLE_FIELDS)
def test_explicit_null_is_kept_as_null(field: str) -> None:
    result = update(**{field: None})
    assert field in result.body
    assert result.body[field] is None
    assert json.dumps(result.body) == json.dumps({field: None})


def test_nullable_fields_are_the_documented_ones() -> None:
    assert set(NULLABLE_FIELDS) == {"last_name", "email", "phone", "company", "title", "campaign_id"}
    assert set(NON_NULLABLE_FIELDS) == {"first_name", "source", "metadata"}


@pytest.mark.parametrize(
    "fields",
    [
        {"first_name": "Ana"},
        {"last_name": None},
        {"first_name": "Ana", "last_name": "Rojas", "email": None},
        {"phone": "+56987654321", "company": "Acme SpA", "title": "[1, 2]", "source": "website"},
        {"campaign_id": None, "metadata": {"budget": 5000}},
        {
            "first_name": "Ana", "last_name": "Null", "email": "ana@example.com", "phone": None,
            "company": "true", "title": "42", "source": "website", "campaign_id": CAMPAIGN,
            "metadata": {"k": "v"},
        },
    ],
    ids=lambda f: ",".join(f),
)
def test_body_holds_exactly_the_given_fields(fields: dict[str, Any]) -> None:
    result = update(**fields)
    assert_same_json(result.body, fields)
    assert list(result.body) == list(fields)  # no extras, order kept
    assert "lead_id" not in result.body
    omitted = set(UPDATABLE_FIELDS) - set(fields)
    assert not omitted & set(result.body)


def test_arguments_are_not_mutated() -> None:
    arguments: dict[str, Any] = {"lead_id": LEAD_UPPER, "first_name": "Ana", "metadata": {"a": 1}}
    snapshot = json.dumps(arguments)
    parse_update_arguments(arguments)
    assert json.dumps(arguments) == snapshot


@pytest.mark.parametrize(
    "lead_id",
    [LEAD, LEAD_UPPER, "3F2b8C1e-9A4d-4E6f-8B7a-1C2d3E4f5A6b"],
)
def test_lead_id_is_lower_cased_for_the_path(lead_id: str) -> None:
    result = parse_update_arguments({"lead_id": lead_id, "first_name": "Ana"})
    assert result.lead_id == LEAD
    assert parse_get_arguments({"lead_id": lead_id}) == LEAD


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(TEXT_FIELDS),
    value=st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40).filter(
        lambda s: not is_blank(s) and s != "null" and "\u2028" not in s and "\u2029" not in s
    ),
)
def test_any_non_blank_text_round_trips(field: str, value: str) -> None:
    assert_same_json(update(**{field: value}).body, {field: value})


# --------------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"budget": 5000},
        {"interested_in": "premium plan", "decision_maker": True, "score": 0.75, "neg": -3},
        {"flag": False, "zero": 0, "empty": "", "cleared": None},
        {"looks_like_json": "[1, 2]", "looks_null": "null", "big": 10**30},
        {"ñ clave": "valor 😀"},
    ],
    ids=lambda m: ",".join(m) or "empty",
)
def test_metadata_object_is_sent_as_given(metadata: dict[str, Any]) -> None:
    assert_same_json(update(metadata=metadata).body, {"metadata": metadata})


def test_metadata_booleans_stay_booleans() -> None:
    body = update(metadata={"t": True, "f": False, "one": 1, "zero": 0}).body
    assert [type(v) for v in body["metadata"].values()] == [bool, bool, int, int]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ('{"budget": 5000}', {"budget": 5000}),
        ('  {"a": "b", "c": null, "d": true}  ', {"a": "b", "c": None, "d": True}),
        ("{}", {}),
        ('{"nested_json_text": "[1, 2]"}', {"nested_json_text": "[1, 2]"}),
    ],
)
def test_metadata_as_json_text_holding_an_object_is_parsed(text: str, parsed: dict[str, Any]) -> None:
    result = update(metadata=text)
    assert isinstance(result.body["metadata"], dict)
    assert_same_json(result.body, {"metadata": parsed})


@pytest.mark.parametrize(
    "value",
    ["[1, 2]", '[{"a": 1}]', "null", "42", '"{}"', "true", "not json", "", "{", "1" * 5000],
    ids=lambda v: repr(v)[:15],
)
def test_metadata_json_text_not_holding_an_object_is_rejected(value: str) -> None:
    exc = reject_update({"lead_id": LEAD, "metadata": value})
    assert list(messages(exc)) == ["metadata"]
    assert "expected an object" in messages(exc)["metadata"]
    assert "got string" in messages(exc)["metadata"]


@pytest.mark.parametrize(
    ("value", "kind"),
    [(42, "number"), (1.5, "number"), (True, "boolean"), ([], "array"), ([{"a": 1}], "array")],
)
def test_metadata_that_is_not_an_object_is_rejected(value: Any, kind: str) -> None:
    exc = reject_update({"lead_id": LEAD, "metadata": value})
    message = messages(exc)["metadata"]
    assert "expected an object of custom fields" in message
    assert f"got {kind}" in message


def test_metadata_null_is_rejected() -> None:
    message = messages(reject_update({"lead_id": LEAD, "metadata": None}))["metadata"]
    assert "cannot be null" in message
    assert "pass an object" in message


@pytest.mark.parametrize(
    ("metadata", "kind"),
    [
        ({"address": {"city": "Santiago"}}, "object"),
        ({"tags": ["a", "b"]}, "array"),
        ({"empty_obj": {}}, "object"),
        ('{"address": {"city": "Santiago"}}', "object"),
    ],
)
def test_nested_metadata_values_are_named_by_key(metadata: Any, kind: str) -> None:
    exc = reject_update({"lead_id": LEAD, "metadata": metadata})
    problems = messages(exc)
    (key,) = problems
    assert key.startswith("metadata.")
    assert f"nested {kind}s are not supported" in problems[key]
    assert f'"{key.removeprefix("metadata.")}_city"' in problems[key]


def test_every_bad_metadata_key_is_reported() -> None:
    exc = reject_update({
        "lead_id": LEAD,
        "metadata": {"ok": 1, "a": {"x": 1}, "b": [1], "c": float("nan"), "d": "fine"},
    })
    assert list(messages(exc)) == ["metadata.a", "metadata.b", "metadata.c"]


@pytest.mark.parametrize(
    "metadata",
    [
        {"n": float("nan")},
        {"n": float("inf")},
        {"n": float("-inf")},
        '{"n": NaN}',
        '{"n": Infinity}',
        '{"n": -Infinity}',
    ],
    ids=["nan", "inf", "-inf", "json-NaN", "json-Infinity", "json--Infinity"],
)
def test_non_finite_numbers_in_metadata_are_rejected(metadata: Any) -> None:
    exc = reject_update({"lead_id": LEAD, "metadata": metadata})
    assert messages(exc) == {"metadata.n": "numbers must be finite"}


@pytest.mark.parametrize("key", ["", " ", "\t"])
def test_blank_metadata_keys_are_rejected(key: str) -> None:
    exc = reject_update({"lead_id": LEAD, "metadata": {key: 1, "fine": 2}})
    assert messages(exc) == {"metadata": "keys must be non-empty strings"}


@pytest.mark.parametrize("value", [b"bytes", (1, 2), {1, 2}, object()], ids=["bytes", "tuple", "set", "object"])
def test_unsupported_metadata_value_types_are_rejected(value: Any) -> None:
    exc = reject_update({"lead_id": LEAD, "metadata": {"k": value}})
    assert "unsupported value" in messages(exc)["metadata.k"]


# --------------------------------------------------------------------------------------------------
# Rejected field values
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["first_name", "source"])
def test_non_nullable_text_fields_cannot_be_null(field: str) -> None:
    exc = reject_update({"lead_id": LEAD, field: None})
    assert list(messages(exc)) == [field]
    assert "cannot be null" in messages(exc)[field]
    assert "omit it to leave it unchanged" in messages(exc)[field]


@pytest.mark.parametrize("field", STRING_FIELDS)
@pytest.mark.parametrize("value", ["", " ", "   ", "\t\n", "\u00a0"], ids=repr)
def test_empty_strings_are_rejected(field: str, value: str) -> None:
    exc = reject_update({"lead_id": LEAD, field: value})
    message = messages(exc)[field]
    if field in NULLABLE_FIELDS:
        assert "is empty" in message
        assert f'to clear it pass null or clear: ["{field}"]' in message
    else:
        assert "cannot be empty" in message


WRONG_TYPES: list[tuple[Any, str]] = [
    (True, "boolean true"),
    (False, "boolean false"),
    (0, "number 0"),
    (42, "number 42"),
    (1.5, "number 1.5"),
    (float("nan"), "number NaN"),
    ([], "array []"),
    (["Ana"], 'array ["Ana"]'),
    ({}, "object {}"),
    ({"first": "Ana"}, 'object {"first": "Ana"}'),
]


@pytest.mark.parametrize("field", STRING_FIELDS)
@pytest.mark.parametrize(("value", "shown"), WRONG_TYPES, ids=[repr(v) for v, _ in WRONG_TYPES])
def test_wrong_types_for_string_fields_are_rejected(field: str, value: Any, shown: str) -> None:
    exc = reject_update({"lead_id": LEAD, field: value})
    assert list(messages(exc)) == [field]
    message = messages(exc)[field]
    expected = "a string or null" if field in NULLABLE_FIELDS else "a string"
    assert f"expected {expected}, got {shown}" in message


@pytest.mark.parametrize(
    "value",
    [
        "ana",
        "ana@",
        "@example.com",
        "ana@example",
        "ana@example.",
        "ana@.example.com",
        "ana @example.com",
        "ana@exa mple.com",
        "ana@@example.com",
        "ana@example..com",
        "ana@example.com\n",
        "mailto:ana",
    ],
)
def test_bad_email_is_rejected(value: str) -> None:
    exc = reject_update({"lead_id": LEAD, "email": value})
    message = messages(exc)["email"]
    assert "email address" in message
    assert 'like "ana@example.com"' in message


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "3f2b8c1e9a4d4e6f8b7a1c2d3e4f5a6b",
        "{" + CAMPAIGN + "}",
        CAMPAIGN + "\n",
        " " + CAMPAIGN,
        CAMPAIGN[:-1],
        CAMPAIGN[:-1] + "g",
        "urn:uuid:" + CAMPAIGN,
    ],
)
def test_bad_campaign_id_is_rejected(value: str) -> None:
    message = messages(reject_update({"lead_id": LEAD, "campaign_id": value}))["campaign_id"]
    assert "UUID" in message
    assert "or null" in message


# --------------------------------------------------------------------------------------------------
# lead_id
# --------------------------------------------------------------------------------------------------

BAD_LEAD_IDS: list[Any] = [
    "abc",
    "",
    LEAD + "\n",
    LEAD[:-1],
    "3f2b8c1e9a4d4e6f8b7a1c2d3e4f5a6b",
    "../" + LEAD,
    LEAD + "/tags",
    None,
    42,
    True,
    [LEAD],
    {"id": LEAD},
]


@pytest.mark.parametrize("lead_id", BAD_LEAD_IDS, ids=repr)
def test_bad_lead_id_is_rejected_by_both_tools(lead_id: Any) -> None:
    for exc in (
        reject_update({"lead_id": lead_id, "first_name": "Ana"}),
        reject_get({"lead_id": lead_id}),
    ):
        assert list(messages(exc)) == ["lead_id"]
        assert "expected a UUID like" in messages(exc)["lead_id"]
        assert excerpt(lead_id) in messages(exc)["lead_id"]


@pytest.mark.parametrize("arguments", [None, {}, {"first_name": "Ana"}])
def test_missing_lead_id_is_required(arguments: dict[str, Any] | None) -> None:
    exc = reject_update(arguments)
    assert "required" in messages(exc)["lead_id"]
    assert "UUID" in messages(exc)["lead_id"]
    # A missing lead_id is the problem; "nothing to update" would be noise on top of it.
    assert "(arguments)" not in messages(exc)


@pytest.mark.parametrize("arguments", [None, {}])
def test_get_lead_requires_lead_id(arguments: dict[str, Any] | None) -> None:
    exc = reject_get(arguments)
    assert exc.tool == "get_lead"
    assert list(messages(exc)) == ["lead_id"]
    assert "required" in messages(exc)["lead_id"]


@pytest.mark.parametrize("extra", ["first_name", "include_history", "metadata"])
def test_get_lead_rejects_other_arguments(extra: str) -> None:
    exc = reject_get({"lead_id": LEAD, extra: "x"})
    assert list(messages(exc)) == [extra]
    assert "not an argument of get_lead" in messages(exc)[extra]
    assert "only lead_id" in messages(exc)[extra]


def test_get_lead_suggests_lead_id_for_its_spellings() -> None:
    for name in ("leadId", "LeadId", "lead-id"):
        assert messages(reject_get({"lead_id": LEAD, name: "x"})) == {name: "unknown argument; did you mean lead_id?"}


# --------------------------------------------------------------------------------------------------
# Unknown arguments
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("firstName", "first_name"),
        ("FirstName", "first_name"),
        ("first-name", "first_name"),
        ("first name", "first_name"),
        ("first_nme", "first_name"),
        ("frist_name", "first_name"),
        ("lastName", "last_name"),
        ("campaignId", "campaign_id"),
        ("emial", "email"),
        ("sorce", "source"),
        ("metdata", "metadata"),
        ("leadId", "lead_id"),
        ("id", "lead_id"),
        ("email_address", "email"),
        ("phoneNumber", "phone"),
        ("job_title", "title"),
        ("company_name", "company"),
        ("surname", "last_name"),
        ("custom_fields", "metadata"),
    ],
)
def test_misspelled_field_gets_did_you_mean(name: str, meant: str) -> None:
    exc = reject_update({"lead_id": LEAD, name: "x"})
    assert list(messages(exc)) == [name]
    assert messages(exc)[name] == f"unknown argument; did you mean {meant}?"
    assert f"did you mean {meant}" in str(exc)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("tags", "add_lead_tags or set_lead_tags"),
        ("Tags", "add_lead_tags or set_lead_tags"),
        ("workflow_id", "assign_workflow"),
        ("workflowId", "assign_workflow"),
        ("status", "set_lead_status"),
        ("created_at", "set by Nexor"),
        ("updatedAt", "set by Nexor"),
        ("campaign", "use campaign_id"),
        ("variables", "extracted by Nexor"),
    ],
)
def test_not_writable_attributes_are_explained(name: str, reason: str) -> None:
    exc = reject_update({"lead_id": LEAD, name: ["x"]})
    message = messages(exc)[name]
    assert message.startswith("not an argument of update_lead: ")
    assert reason in message
    assert "metadata" not in message  # must not steer the model into storing it as a custom field


@pytest.mark.parametrize(
    ("name", "value"),
    [("budget", 5000), ("interested_in", "premium plan"), ("decision_maker", True), ("notes", None)],
)
def test_custom_fields_are_pointed_to_metadata(name: str, value: Any) -> None:
    exc = reject_update({"lead_id": LEAD, name: value})
    message = messages(exc)[name]
    assert "not a lead field; custom fields go inside metadata" in message
    example = json.dumps({"metadata": {name: value}}, ensure_ascii=False)
    assert message.endswith(f"e.g. {example}")


def test_custom_field_example_with_huge_value_is_elided() -> None:
    exc = reject_update({"lead_id": LEAD, "notes": HUGE})
    message = messages(exc)["notes"]
    assert "inside metadata" in message
    assert '{"metadata": {"notes": "..."}}' in message
    assert len(str(exc)) < MAX_MESSAGE_CHARS


def test_unknown_argument_alone_does_not_count_as_empty_update() -> None:
    exc = reject_update({"lead_id": LEAD, "budget": 1})
    assert list(messages(exc)) == ["budget"]


# --------------------------------------------------------------------------------------------------
# Empty update, several problems, message format
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lead_id", [LEAD, LEAD_UPPER])
def test_empty_update_is_rejected(lead_id: str) -> None:
    exc = reject_update({"lead_id": lead_id})
    assert exc.tool == "update_lead"
    assert list(messages(exc)) == ["(arguments)"]
    message = messages(exc)["(arguments)"]
    assert "nothing to update" in message
    for name in UPDATABLE_FIELDS:
        assert name in message


def test_several_problems_are_reported_at_once() -> None:
    exc = reject_update({
        "lead_id": "not-a-uuid",
        "first_name": None,
        "last_name": "",
        "email": "nope",
        "phone": 56987654321,
        "campaign_id": "123",
        "metadata": {"address": {"city": "x"}},
        "firstName": "Ana",
        "tags": ["vip"],
        "budget": 5,
        "company": "Acme",  # valid, must not be reported
    })
    problems = messages(exc)
    assert list(problems) == [
        "lead_id", "first_name", "last_name", "email", "phone", "campaign_id",
        "metadata.address", "firstName", "tags", "budget",
    ]
    assert "company" not in problems
    text = str(exc)
    for fact in ("UUID", "cannot be null", "is empty", "email address", "got number 56987654321",
                 "nested objects", "did you mean first_name", "add_lead_tags", "inside metadata"):
        assert fact in text


def test_message_layout() -> None:
    exc = reject_update({"lead_id": LEAD, "first_name": None, "email": "x"})
    lines = str(exc).split("\n")
    assert lines[0] == (
        "Invalid arguments for update_lead; nothing was sent to Nexor. Fix these and call again:"
    )
    assert lines[1] == "- first_name: cannot be null; omit it to leave it unchanged"
    assert lines[2].startswith("- email: expected an email address")
    assert len(lines) == 3
    assert str(exc) == exc.render()


def test_problem_renders_as_a_bullet() -> None:
    assert str(Problem("email", "bad")) == "- email: bad"


def test_newlines_in_values_cannot_forge_problem_lines() -> None:
    exc = reject_update({"lead_id": LEAD, "email": "a\n- first_name: fine"})
    assert len(str(exc).split("\n")) == 2


HUGE_CASES: list[dict[str, Any]] = [
    {"lead_id": HUGE},
    {"lead_id": LEAD, "email": HUGE},
    {"lead_id": LEAD, "email": "a@" + HUGE},
    {"lead_id": LEAD, "campaign_id": HUGE},
    {"lead_id": LEAD, "first_name": [HUGE]},
    {"lead_id": LEAD, "title": {"k": HUGE}},
    {"lead_id": LEAD, "phone": 10**4000},
    {"lead_id": LEAD, "metadata": HUGE},
    {"lead_id": LEAD, "metadata": [HUGE]},
    {"lead_id": LEAD, "metadata": {"k": [HUGE]}},
    {"lead_id": LEAD, "metadata": {"k": {"x": HUGE}}},
    {"lead_id": LEAD, "notes": HUGE},
    {"lead_id": LEAD, "notes": {"deep": [HUGE] * 3}},
    {"lead_id": LEAD, "tags": [HUGE]},
]


@pytest.mark.parametrize("arguments", HUGE_CASES, ids=[",".join(a) for a in HUGE_CASES])
def test_huge_values_are_not_echoed(arguments: dict[str, Any]) -> None:
    with pytest.raises(InvalidArguments) as info:
        parse_update_arguments(arguments)
    text = str(info.value)
    assert len(text) < MAX_MESSAGE_CHARS
    assert "x" * 100 not in text
    assert "0" * 100 not in text


@pytest.mark.parametrize(
    "arguments",
    [
        {"lead_id": LEAD, HUGE: 1},
        {"lead_id": LEAD, "metadata": {HUGE: {"a": 1}}},
    ],
    ids=["huge-argument-name", "huge-metadata-key"],
)
def test_huge_names_are_not_echoed(arguments: dict[str, Any]) -> None:
    text = str(reject_update(arguments))
    assert len(text) < MAX_MESSAGE_CHARS


BAD_ARGUMENTS: list[dict[str, Any] | None] = [
    None,
    {"lead_id": LEAD},
    {"lead_id": 5, "first_name": 5},
    {"lead_id": LEAD, "email": "x", "campaign_id": "y", "metadata": 3},
    {"lead_id": LEAD, "metadata": {"a": {"b": 1}}, "source": ""},
    {"lead_id": LEAD, "firstName": "x", "tags": [], "budget": 1},
]


@pytest.mark.parametrize("arguments", BAD_ARGUMENTS)
def test_messages_have_no_pydantic_boilerplate(arguments: dict[str, Any] | None) -> None:
    text = str(reject_update(arguments))
    assert "pydantic" not in text.lower()
    assert "http" not in text
    assert "validation error" not in text.lower()
    assert "input_value" not in text
    assert text.startswith("Invalid arguments for update_lead; nothing was sent to Nexor.")


# --------------------------------------------------------------------------------------------------
# Edge cases that once slipped through (regression tests)
# --------------------------------------------------------------------------------------------------

def test_deeply_nested_metadata_text_is_rejected_cleanly() -> None:
    exc = reject_update({"lead_id": LEAD, "metadata": "[" * 100_000})
    assert "expected an object" in messages(exc)["metadata"]


def test_lone_surrogate_is_rejected() -> None:
    first_name = json.loads('"Ana\\ud800"')  # what a JSON client can send: an unpaired surrogate
    assert first_name == "Ana\ud800"
    exc = reject_update({"lead_id": LEAD, "first_name": first_name})
    assert "not valid Unicode text" in messages(exc)["first_name"]


# --------------------------------------------------------------------------------------------------
# excerpt
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        ("Ana", 'string "Ana"'),
        ("", 'string ""'),
        ("null", 'string "null"'),
        ("ñandú", 'string "ñandú"'),
        ("a\nb", 'string "a\\nb"'),
        (True, "boolean true"),
        (False, "boolean false"),
        (0, "number 0"),
        (42, "number 42"),
        (-1.5, "number -1.5"),
        (float("nan"), "number NaN"),
        (float("inf"), "number Infinity"),
        ([1, 2], "array [1, 2]"),
        ([], "array []"),
        ({"a": 1}, 'object {"a": 1}'),
        (b"ab", "bytes b'ab'"),
        ("x" * 38, 'string "' + "x" * 38 + '"'),
        ("x" * 39, 'string "' + "x" * 39 + "…"),
        ("x" * 10_000, 'string "' + "x" * 39 + "…"),
        ([HUGE], 'array ["' + "x" * 38 + "…"),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_excerpt(value: Any, expected: str) -> None:
    assert excerpt(value) == expected


@pytest.mark.parametrize(
    "value",
    [HUGE, [HUGE], {"k": HUGE}, 10**4000, object(), b"y" * 10_000],
    ids=["str", "list", "dict", "int", "object", "bytes"],
)
def test_excerpt_is_always_short(value: Any) -> None:
    shown = excerpt(value)
    assert len(shown) <= 60
    assert re.fullmatch(r"[a-z]+ .+", shown, flags=re.DOTALL)
