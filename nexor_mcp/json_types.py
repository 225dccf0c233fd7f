"""The one name for a JSON object as this project handles it (Nexor's bodies, the journal's records)."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
"""A decoded JSON object: what Nexor sends and takes, and what a journal line holds."""
