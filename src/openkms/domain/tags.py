"""Tag rules: no control characters, reserved ``aws:`` prefix, duplicates, at most 50 tags per key."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

from openkms.errors import TagException

MAX_TAGS = 50


def _has_control_character(text: str) -> bool:
    """AWS allows letters, digits, white space and ``_ . : / = + - @`` in tags: control characters
    (NUL among them, which PostgreSQL cannot store) are refused."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def check_new_tags(
    tags: Iterable[tuple[str, str]], existing: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Validate tags to add and return the resulting tag map (existing keys overwritten)."""
    seen: set[str] = set()
    result = dict(existing or {})
    for key, value in tags:
        if _has_control_character(key) or _has_control_character(value):
            raise TagException("Invalid tag")
        if key.lower().startswith("aws:"):
            raise TagException("Tags beginning with aws: are reserved")
        if key in seen:
            raise TagException("Duplicate tag keys")
        seen.add(key)
        result[key] = value
    if len(result) > MAX_TAGS:
        raise TagException("Too many tags")
    return result
