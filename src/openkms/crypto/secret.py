"""Secret values held by long-lived objects: a holder whose ``repr`` and ``str`` never show its contents,
so that a stray log line, traceback or debugger print cannot leak it.

Wrap a secret where it enters an object that outlives the call making it (credentials in the cache, a
new access key, a console session's id, unsealed key material) and :meth:`Secret.reveal` it at the
point of use (deriving a signing key, printing the new key once, setting the cookie, encrypting).
Revealing returns the held object itself (no copy), cheap enough for every request. Two secrets compare
in constant time; a secret is not hashable, so it cannot become a dictionary key by accident.
"""

from __future__ import annotations

import hmac
from typing import Generic, TypeVar

T = TypeVar("T", str, bytes)


class Secret(Generic[T]):
    __slots__ = ("_value",)
    _value: T

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        if type(self._value) is not type(other._value):
            return False
        return hmac.compare_digest(_bytes(self._value), _bytes(other._value))

    def __hash__(self) -> int:
        raise TypeError("a Secret is not hashable")


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value
