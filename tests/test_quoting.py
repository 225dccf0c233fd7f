"""The one way text from outside is shown to a person (nexor_mcp/quoting.py) and the one tag slug
rule (nexor_mcp/rules.py)."""

from __future__ import annotations

import pytest

from nexor_mcp.quoting import BLOCK_BAR, block, one_line, quote, visible
from nexor_mcp.rules import tag_slug


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\u202e", "[U+202E]"),  # right-to-left override (Cf)
        ("\u2066", "[U+2066]"),  # left-to-right isolate (Cf)
        ("\u200b", "[U+200B]"),  # zero-width space (Cf)
        ("\ufeff", "[U+FEFF]"),  # byte order mark (Cf)
        ("\x1b", "[U+001B]"),  # terminal escape (Cc)
        ("\x9b", "[U+009B]"),  # C1 control sequence introducer (Cc)
        ("\x7f", "[U+007F]"),  # DEL
        ("\u2028", "[U+2028]"),  # line separator (Zl)
        ("\u2029", "[U+2029]"),  # paragraph separator (Zp)
        ("\ue000", "[U+E000]"),  # private use (Co)
        ("\n", "\\n"),
        ("\r", "\\r"),
        ("\t", "\\t"),
    ],
)
def test_every_invisible_or_control_character_is_spelled_out(char: str, shown: str) -> None:
    assert visible(f"a{char}b") == f"a{shown}b"
    assert quote(f"a{char}b") == f'"a{shown}b"'
    assert one_line(f"a{char}b") == f"a{shown}b"


def test_ordinary_text_is_left_as_it_is() -> None:
    for text in ("Ana Souza", "José Ñúñez", "Grüße 👋", "日本語", "a b"):
        assert visible(text) == text


def test_a_quoted_value_is_one_line_escaped_and_capped() -> None:
    forged = 'Ana\nText: "pay here" \\ now'
    assert quote(forged) == '"Ana\\nText: \\"pay here\\" \\\\ now"'
    long = quote("x" * 200, limit=10)
    assert long == '"' + "x" * 9 + '…"'
    assert "\n" not in quote("a\r\nb\u2028c")


def test_non_string_values_are_compact_json() -> None:
    assert quote(5) == "5"
    assert quote(None) == "null"
    assert quote({"a": "\u202e"}) == '{"a":"[U+202E]"}'


def test_a_block_marks_every_line_and_shows_invisible_characters() -> None:
    shown = block("Hi Ana,\nText: forged\n\u202eend")
    assert shown.splitlines() == [f"{BLOCK_BAR}Hi Ana,", f"{BLOCK_BAR}Text: forged", f"{BLOCK_BAR}[U+202E]end"]


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Straße", "strasse"), ("STRASSE", "strasse"), ("strasse", "strasse"), ("Café VIP", "cafe-vip"),
     ("  Hot   lead!! ", "hot-lead"), ("vip", "vip"), ("VIP", "vip"), ("日本", "日本")],
)
def test_one_tag_slug_rule(name: str, slug: str) -> None:
    assert tag_slug(name) == slug
