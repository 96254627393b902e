"""Pagination markers: opaque to clients, authenticated by the service, validated when they come back.

A marker names the last item of the previous page and the listing it belongs to, with an HMAC tag
under a key derived from the root key, so that every node sharing a database accepts the markers of
the others and no client can forge one. The key lives on the :class:`Pager` the service core holds
(``KmsCore.pager``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable

from openkms.errors import InvalidMarkerException

_TAG = 12


class Pager:
    """Makes and reads the markers of one service (``secret``: the keyring's token key, read when the
    first marker is made or read, so a service starting sealed builds its pager before it is unsealed;
    the key never changes, not even when the root key is rotated)."""

    __slots__ = ("_key", "_secret")

    def __init__(self, secret: Callable[[], bytes]) -> None:
        self._secret = secret
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = hashlib.sha256(b"openkms/markers/v1" + self._secret()).digest()
        return self._key

    def __repr__(self) -> str:
        return "Pager()"

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self.key, body, hashlib.sha256).digest()[:_TAG]

    def make_marker(self, kind: str, last: str) -> str:
        body = f"{kind}:{last}".encode()
        return base64.urlsafe_b64encode(self._tag(body) + body).decode()

    def read_marker(self, kind: str, marker: str | None) -> str | None:
        if marker is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(marker.encode())
        except (binascii.Error, ValueError):
            raise InvalidMarkerException("Marker is invalid") from None
        tag, body = raw[:_TAG], raw[_TAG:]
        if len(tag) != _TAG or not hmac.compare_digest(tag, self._tag(body)):
            raise InvalidMarkerException("Marker is invalid")
        prefix, sep, last = body.decode("utf-8", "replace").partition(":")
        if not sep or prefix != kind or not last:
            raise InvalidMarkerException("Marker is invalid")
        return last

    def page(self, items: list[str], limit: int, kind: str) -> tuple[list[str], str | None]:
        """Given up to limit+1 items, the page and the next marker (None when there is no more)."""
        if len(items) > limit:
            return items[:limit], self.make_marker(kind, items[limit - 1])
        return items, None
