"""Tag rules: reserved ``aws:`` prefix, duplicates, at most 50 tags per key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from openkms.errors import TagException

MAX_TAGS = 50


def check_new_tags(
    tags: Iterable[tuple[str, str]], existing: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Validate tags to add and return the resulting tag map (existing keys overwritten)."""
    seen: set[str] = set()
    result = dict(existing or {})
    for key, value in tags:
        if key.lower().startswith("aws:"):
            raise TagException("Tags beginning with aws: are reserved")
        if key in seen:
            raise TagException("Duplicate tag keys")
        seen.add(key)
        result[key] = value
    if len(result) > MAX_TAGS:
        raise TagException("Too many tags")
    return result
