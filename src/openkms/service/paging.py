"""Pagination markers: opaque to clients, validated when they come back."""

from __future__ import annotations

import base64
import binascii

from openkms.errors import InvalidMarkerException


def make_marker(kind: str, last: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last}".encode()).decode()


def read_marker(kind: str, marker: str | None) -> str | None:
    if marker is None:
        return None
    try:
        text = base64.urlsafe_b64decode(marker.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidMarkerException("Marker is invalid") from None
    prefix, sep, last = text.partition(":")
    if not sep or prefix != kind or not last:
        raise InvalidMarkerException("Marker is invalid")
    return last


def page(items: list[str], limit: int, kind: str) -> tuple[list[str], str | None]:
    """Given up to limit+1 items, the page and the next marker (None when there is no more)."""
    if len(items) > limit:
        return items[:limit], make_marker(kind, items[limit - 1])
    return items, None
