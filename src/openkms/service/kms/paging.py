"""Pagination markers: opaque to clients, authenticated by the service, validated when they come back.

A marker names the last item of the previous page and the listing it belongs to, with an HMAC tag
under a key derived from the root key (:func:`configure`), so that every node sharing a database
accepts the markers of the others and no client can forge one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from openkms.errors import InvalidMarkerException

_key = os.urandom(32)
_TAG = 12


def configure(key: bytes) -> None:
    global _key
    _key = hashlib.sha256(b"openkms/markers/v1" + key).digest()


def make_marker(kind: str, last: str) -> str:
    body = f"{kind}:{last}".encode()
    tag = hmac.new(_key, body, hashlib.sha256).digest()[:_TAG]
    return base64.urlsafe_b64encode(tag + body).decode()


def read_marker(kind: str, marker: str | None) -> str | None:
    if marker is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(marker.encode())
    except (binascii.Error, ValueError):
        raise InvalidMarkerException("Marker is invalid") from None
    tag, body = raw[:_TAG], raw[_TAG:]
    if len(tag) != _TAG or not hmac.compare_digest(tag, hmac.new(_key, body, hashlib.sha256).digest()[:_TAG]):
        raise InvalidMarkerException("Marker is invalid")
    prefix, sep, last = body.decode("utf-8", "replace").partition(":")
    if not sep or prefix != kind or not last:
        raise InvalidMarkerException("Marker is invalid")
    return last


def page(items: list[str], limit: int, kind: str) -> tuple[list[str], str | None]:
    """Given up to limit+1 items, the page and the next marker (None when there is no more)."""
    if len(items) > limit:
        return items[:limit], make_marker(kind, items[limit - 1])
    return items, None
