"""Masking the API key, and cleaning strings that came from outside, before anything is emitted.

One place decides what "the key does not leak" means, for log records, error texts and successful
results alike. It covers the key as written and any clipped prefix of it (8 characters or more that
reach past the public `nxr_live_` prefix), wherever it stands in a string or a JSON value. It does
not cover encoded forms (base64, URL-encoding, hex): nothing here can recognise those.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "nxr_****"
PUBLIC_PREFIX = "nxr_live_"
MIN_PREFIX = 8
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _shortest_secret_prefix(secret: str) -> int:
    """How many leading characters of `secret` must show before a run of them counts as a leak."""
    public = len(PUBLIC_PREFIX) if secret.startswith(PUBLIC_PREFIX) else 0
    return min(len(secret), max(MIN_PREFIX, public + 1))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret, and every run that is a long-enough prefix of one, masked."""
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, MASK)
        shortest = _shortest_secret_prefix(secret)
        start = secret[:shortest]
        if start not in text:
            continue
        pieces: list[str] = []
        position = 0
        while (found := text.find(start, position)) != -1:
            end = found + shortest
            while end < len(text) and end - found < len(secret) and text[end] == secret[end - found]:
                end += 1
            pieces.append(text[position:found])
            pieces.append(MASK)
            position = end
        pieces.append(text[position:])
        text = "".join(pieces)
    return text


def may_need_masking(text: str, secrets: tuple[str, ...]) -> bool:
    """Whether `text` (a JSON rendering) could hold a lone surrogate or a maskable run of a secret.

    A cheap scan of one string, so that the walk over every value (`clean_json`) runs only when
    it can change something.
    """
    if _LONE_SURROGATE.search(text):
        return True
    for secret in secrets:
        # A key with a quote or backslash would be escaped in JSON text: walk to be sure.
        if secret and (secret[: _shortest_secret_prefix(secret)] in text or '"' in secret or "\\" in secret):
            return True
    return False


def clean_text(text: str) -> str:
    """Lone UTF-16 surrogates (half an emoji, from a `\\ud83d` escape) become U+FFFD: they cannot
    be encoded as UTF-8, so one of them would otherwise make the whole result unsendable."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def clean_json(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """`value` (decoded JSON) with `clean_text` and `redact` applied to every string and key."""
    if isinstance(value, str):
        return redact(clean_text(value), secrets) if secrets else clean_text(value)
    if isinstance(value, dict):
        return {clean_json(key, secrets): clean_json(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_json(item, secrets) for item in value]
    return value
