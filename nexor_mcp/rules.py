"""Nexor's own rules, written once, for everything that must agree with Nexor: previews, undo, the
sandbox. Nexor documents that tags are "found or created by slug" but not how a slug is made; this
is the one rule the whole project uses for it, so a preview, an undo and the sandbox never disagree.
"""

from __future__ import annotations

import re
import unicodedata

_NOT_SLUG = re.compile(r"[^0-9a-z]+")


def tag_slug(name: str) -> str:
    """The slug a tag name is matched by: case-folded ("Straße" and "STRASSE" are one tag),
    accents dropped ("Café" is "cafe"), every run of other characters one "-". A name with no
    letter or digit left keeps its case-folded self, so it still matches only itself."""
    folded = unicodedata.normalize("NFKD", name.strip().casefold())
    plain = "".join(char for char in folded if not unicodedata.combining(char))
    return _NOT_SLUG.sub("-", plain).strip("-") or name.strip().casefold()
