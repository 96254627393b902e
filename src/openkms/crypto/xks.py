"""AES-256-GCM as the XKS Proxy API v1 asks of a proxy: the associated data that binds both the
caller's ``additionalAuthenticatedData`` and the proxy's ``ciphertextMetadata`` with their lengths,
and the ciphertext data integrity value (CDIV).

The associated data given to AES-GCM is ``len(aad) (2 bytes, big-endian) || aad || len(metadata)
(1 byte) || metadata``, absent fields counting as empty: a caller cannot move bytes between the two
fields and still decrypt. The CDIV is SHA-256 over ``aad || metadata || iv || ciphertext || tag``.
Any failure to decrypt is one opaque :class:`InvalidCiphertext`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from openkms.crypto.randomness import random_bytes

KEY_BYTES = 32
IV_BYTES = 12
TAG_BYTES = 16


class InvalidCiphertext(Exception):
    """The ciphertext, IV, tag, AAD or ciphertext metadata is not what the key encrypted."""


@dataclass(frozen=True, slots=True)
class Encrypted:
    iv: bytes
    ciphertext: bytes
    tag: bytes


def new_key() -> bytes:
    """The material of a new external key (AES-256)."""
    return os.urandom(KEY_BYTES)


def associated_data(aad: bytes | None, ciphertext_metadata: bytes | None) -> bytes:
    aad = aad or b""
    metadata = ciphertext_metadata or b""
    return len(aad).to_bytes(2, "big") + aad + len(metadata).to_bytes(1, "big") + metadata


def encrypt(key: bytes, plaintext: bytes, aad: bytes | None, ciphertext_metadata: bytes | None) -> Encrypted:
    iv = random_bytes(IV_BYTES)
    sealed = AESGCM(key).encrypt(iv, plaintext, associated_data(aad, ciphertext_metadata))
    return Encrypted(iv, sealed[:-TAG_BYTES], sealed[-TAG_BYTES:])


def decrypt(
    key: bytes,
    iv: bytes,
    ciphertext: bytes,
    tag: bytes,
    aad: bytes | None,
    ciphertext_metadata: bytes | None,
) -> bytes:
    try:
        return AESGCM(key).decrypt(iv, ciphertext + tag, associated_data(aad, ciphertext_metadata))
    except (InvalidTag, ValueError):
        raise InvalidCiphertext() from None


def integrity_value(aad: bytes | None, ciphertext_metadata: bytes | None, encrypted: Encrypted) -> bytes:
    """The CDIV: SHA-256 of ``aad || ciphertextMetadata || iv || ciphertext || tag``."""
    digest = hashlib.sha256(aad or b"")
    for part in (ciphertext_metadata or b"", encrypted.iv, encrypted.ciphertext, encrypted.tag):
        digest.update(part)
    return digest.digest()


def self_test() -> bool:
    """A round trip under a throwaway key (the deep part of GetHealthStatus)."""
    key = new_key()
    encrypted = encrypt(key, b"openkms health", b"aad", b"\x01")
    try:
        return (
            decrypt(key, encrypted.iv, encrypted.ciphertext, encrypted.tag, b"aad", b"\x01")
            == b"openkms health"
        )
    except InvalidCiphertext:
        return False
