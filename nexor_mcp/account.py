"""Which Nexor account a key belongs to, without the key: the one account id, and the journal's
short form of it."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexor_mcp.config import Secret

FINGERPRINT_LENGTH = 12
"""Hex digits of the account id the audit journal records (every journal line so far has 12)."""


def account_id(key: Secret | str | None) -> str:
    """The key's SHA-256 in hex: tells accounts apart, cannot give the key back. What a
    confirmation is bound to; "" without a key."""
    text = key if isinstance(key, str) or key is None else key.reveal()
    return hashlib.sha256(text.encode()).hexdigest() if text else ""


def account_fingerprint(key: Secret | str | None) -> str | None:
    """The account id's first 12 hex digits, as the audit journal records it; None without a key."""
    return account_id(key)[:FINGERPRINT_LENGTH] or None
