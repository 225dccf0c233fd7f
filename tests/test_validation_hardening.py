"""Unit tests for the input rules an outside review found missing: invisible or control characters,
loose emails, the text "null", sizes over the send limits, `clear`, and bounded error texts.

Each family is tested with several members, not only the one trigger the review named.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nexor_mcp.tools.arguments import MAX_LISTED_PROBLEMS, MAX_MESSAGE_CHARS, InvalidArguments
from nexor_mcp.tools.fields import MAX_BODY_BYTES, MAX_TEXT_BYTES
from tests.lead_arguments import parse_update_arguments

LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
TEXT_FIELDS = ("first_name", "last_name", "phone", "company", "title", "source")
NULLABLE = ("last_name", "email", "phone", "company", "title", "campaign_id")


def reject(**arguments: Any) -> InvalidArguments:
    with pytest.raises(InvalidArguments) as info:
        parse_update_arguments({"lead_id": LEAD, **arguments})
    return info.value


def problems(exc: InvalidArguments) -> dict[str, str]:
    return {problem.argument: problem.message for problem in exc.problems}


INVISIBLE = [
    "\u200b",  # zero-width space
    "\u3164",  # Hangul filler
    "\u200f\u200e",  # right-to-left and left-to-right marks
    "\u200d",  # zero-width joiner
    "\u2060\ufeff",  # word joiner, BOM
    "\u115f\u1160",  # Hangul choseong/jungseong fillers
    "\u2800",  # braille blank
    " \u200b \u00a0\u3000",  # mixed with spaces
    "\u0301",  # a combining accent with nothing to sit on
]


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("value", INVISIBLE, ids=ascii)
def test_text_of_only_invisible_characters_is_empty(field: str, value: str) -> None:
    message = problems(reject(**{field: value}))[field]
    assert "empty" in message


@pytest.mark.parametrize("value", ["Ana\u200d", "\u200bAna", "José\u0301"], ids=ascii)
def test_visible_text_with_invisible_marks_is_kept_exactly(value: str) -> None:
    assert parse_update_arguments({"lead_id": LEAD, "first_name": value}).body == {"first_name": value}


CONTROLS = ["\x00", "\x01", "\x1b", "\n", "\r", "\t", "\x7f", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("field", (*TEXT_FIELDS, "email"))
@pytest.mark.parametrize("control", CONTROLS, ids=ascii)
def test_control_characters_are_rejected_in_single_line_fields(field: str, control: str) -> None:
    value = f"ana{control}@example.com" if field == "email" else f"Ana{control}Maria"
    message = problems(reject(**{field: value}))[field]
    assert "control character" in message or "email address" in message


@pytest.mark.parametrize("control", ["\x00", "\x01", "\x1b", "\x7f", "\u2028"], ids=ascii)
def test_metadata_values_refuse_controls_other_than_tabs_and_line_breaks(control: str) -> None:
    message = problems(reject(metadata={"notes": f"a{control}b"}))["metadata.notes"]
    assert "control character" in message
    assert "tab and line breaks are allowed" in message


def test_metadata_values_keep_tabs_and_line_breaks() -> None:
    notes = "line 1\nline 2\r\n\tindented"
    assert parse_update_arguments({"lead_id": LEAD, "metadata": {"notes": notes}}).body == {
        "metadata": {"notes": notes}
    }


@pytest.mark.parametrize("key", ["a\nb", "a\x00b", "\u200b"], ids=ascii)
def test_metadata_keys_refuse_controls_and_invisible_names(key: str) -> None:
    exc = reject(metadata={key: 1})
    assert len(str(exc).splitlines()) == 2
    assert "\x00" not in str(exc)
    assert "\n" not in exc.argument_names()


BAD_EMAILS = [
    "a@-.x", "a@x.-y", "a@-x.com", "a@x-.com", "a@b.c", "a@b..com", "a@.b.com", "a@b.c1", "a@b.123",
    "a b@c.com", "a@b_c.com", "a@b .com", "@b.com", "a@", "a@b", "a@@b.com", "a\x00@b.com",
]


@pytest.mark.parametrize("value", BAD_EMAILS, ids=ascii)
def test_malformed_emails_are_rejected(value: str) -> None:
    assert "expected an email address" in problems(reject(email=value))["email"]


@pytest.mark.parametrize(
    "value",
    ["a@b.co", "ana.rojas+x@mail.example.com", "ñ@ejemplo.es", "x@münchen.de", "x@xn--mnchen-3ya.de", "A@B-C.ORG"],
)
def test_plausible_emails_pass(value: str) -> None:
    assert parse_update_arguments({"lead_id": LEAD, "email": value}).body == {"email": value}


@pytest.mark.parametrize("field", (*TEXT_FIELDS, "email", "campaign_id"))
def test_the_text_null_is_not_stored(field: str) -> None:
    message = problems(reject(**{field: "null"}))[field]
    assert 'the text "null" is not stored' in message
    if field in NULLABLE:
        assert f'pass null or clear: ["{field}"]' in message or "expected" in message
    else:
        assert "cannot be cleared" in message


# --- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_a_text_value_over_the_limit_is_rejected_before_sending(field: str) -> None:
    message = problems(reject(**{field: "x" * (MAX_TEXT_BYTES + 1)}))[field]
    assert f"{MAX_TEXT_BYTES + 1:,} bytes long, over the 64 KiB limit" in message


def test_the_limit_counts_utf8_bytes_and_is_inclusive() -> None:
    at_limit = "é" * (MAX_TEXT_BYTES // 2)
    assert parse_update_arguments({"lead_id": LEAD, "company": at_limit}).body == {"company": at_limit}
    assert "over the 64 KiB limit" in problems(reject(company=at_limit + "x"))["company"]


def test_metadata_values_and_keys_have_the_same_limit() -> None:
    big = "x" * (MAX_TEXT_BYTES + 1)
    assert "over the 64 KiB limit" in problems(reject(metadata={"notes": big}))["metadata.notes"]
    exc = reject(metadata={big: 1})
    assert any("over the 64 KiB limit" in p.message for p in exc.problems)
    assert len(str(exc)) < 1000


def test_a_body_over_the_limit_is_rejected_before_sending() -> None:
    value = "x" * (MAX_TEXT_BYTES - 100)
    metadata = {f"part{i}": value for i in range(MAX_BODY_BYTES // MAX_TEXT_BYTES + 1)}
    message = problems(reject(metadata=metadata))["(arguments)"]
    assert "over the 256 KiB limit" in message


# --- clear ---------------------------------------------------------------------------------------


def test_clear_sends_null_for_each_named_field() -> None:
    update = parse_update_arguments({"lead_id": LEAD, "title": "CTO", "clear": ["phone", "campaign_id"]})
    assert update.body == {"title": "CTO", "phone": None, "campaign_id": None}
    assert json.dumps(update.body) == '{"title": "CTO", "phone": null, "campaign_id": null}'


def test_clear_alone_is_an_update_and_duplicates_are_sent_once() -> None:
    assert parse_update_arguments({"lead_id": LEAD, "clear": ["email", "email"]}).body == {"email": None}


@pytest.mark.parametrize(
    ("clear", "fact"),
    [
        (["first_name"], "first_name cannot be cleared"),
        (["source"], "source cannot be cleared"),
        (["metadata"], "metadata cannot be cleared"),
        (["phone_number"], "'phone_number' is not a field"),
        ([1], "got number 1 in it"),
        ("phone", 'e.g. ["phone", "title"]; got string "phone"'),
        ({"phone": True}, "expected an array of field names"),
        (None, "expected an array of field names"),
    ],
    ids=str,
)
def test_bad_clear_is_explained(clear: Any, fact: str) -> None:
    assert fact in problems(reject(clear=clear))["clear"]


@pytest.mark.parametrize("value", ["+56911112222", None])
def test_a_field_both_set_and_cleared_is_an_error(value: Any) -> None:
    assert "phone is both set and cleared" in problems(reject(phone=value, clear=["phone"]))["clear"]


def test_an_empty_clear_alone_is_nothing_to_update() -> None:
    assert "nothing to update" in problems(reject(clear=[]))["(arguments)"]


# --- bounded error texts -------------------------------------------------------------------------


def test_a_flood_of_unknown_arguments_lists_the_first_and_counts_the_rest() -> None:
    arguments: dict[str, Any] = {f"field{i}": i for i in range(100_000)}
    exc = reject(**arguments)
    text = str(exc)
    lines = text.splitlines()
    assert len(lines) == 1 + MAX_LISTED_PROBLEMS + 1
    assert lines[-1] == f"- … and {100_000 - MAX_LISTED_PROBLEMS} more problems not listed here."
    assert len(text) <= MAX_MESSAGE_CHARS + 100
    assert exc.argument_names().endswith(f"(+{100_000 - MAX_LISTED_PROBLEMS} more)")


def test_long_problem_lines_are_bounded_in_total() -> None:
    arguments: dict[str, Any] = {f"{'k' * 39}{i}": "v" for i in range(15)}
    arguments.update(email="x" * 5000, metadata={f"{'m' * 300}{i}": [1] for i in range(30)})
    text = str(reject(**arguments))
    assert len(text) <= MAX_MESSAGE_CHARS + 100
    assert "more problems not listed here" in text


@pytest.mark.parametrize("name", ["a\nb", "x\r\n- first_name: forged", "\x1b[31mred", "\u2028line"], ids=ascii)
def test_argument_names_cannot_forge_lines(name: str) -> None:
    exc = reject(**{name: 1})
    assert len(str(exc).splitlines()) == 2
    assert "\n" not in exc.argument_names() and "\r" not in exc.argument_names()
    assert "\x1b" not in str(exc) and "\u2028" not in str(exc)
