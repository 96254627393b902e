"""The ``pkcs11`` root of trust: a non-extractable AES-256 key in a PKCS#11 token wraps the keyring."""

from __future__ import annotations


class Pkcs11Error(Exception):
    """The token cannot be used (module, token, PIN or key)."""


class Pkcs11Kek:
    source = "pkcs11"

    def __init__(self, module: str, token_label: str, key_label: str, pin: str, *, create: bool) -> None:
        raise Pkcs11Error("the pkcs11 root of trust is not available yet")

    def wrap(self, plaintext: bytes) -> bytes:
        raise Pkcs11Error("unavailable")

    def unwrap(self, blob: bytes) -> bytes:
        raise Pkcs11Error("unavailable")
