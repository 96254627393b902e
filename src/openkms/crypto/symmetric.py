"""SYMMETRIC_DEFAULT encryption and the ciphertext blob format.

Blob layout (version 1, all fields fixed-size except the ciphertext)::

    0x01 | id-kind (0 uuid, 1 mrk) | key id (16) | material id (32) | salt (16) | iv (12) | ct | tag (16)

For each encryption a one-time AES-256-GCM key is derived from the key material and the random salt
(NIST SP 800-108 KDF in counter mode with HMAC-SHA256). The header (everything before the ciphertext)
and the canonical encryption context are authenticated as associated data. Any failure to decrypt is
one opaque :class:`InvalidCiphertext`.

A key in an external key store has version 2 blobs (double encryption, :func:`pack_external`): the
version 1 blob above, made with the key's own material, encrypted again by the external key through
the XKS proxy::

    0x02 | id-kind | key id (16) | material id (32) | iv length (1) | iv | tag (16)
         | metadata length (1) | ciphertext metadata | the proxy's ciphertext of the version 1 blob

The first 50 bytes (the external header) are the additional authenticated data of the outer
encryption, so the proxy's ciphertext cannot be moved under another key's header.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from openkms.crypto.randomness import random_bytes

VERSION = 1
EXTERNAL_VERSION = 2
EXTERNAL_HEADER_LEN = 1 + 1 + 16 + 32
HEADER_LEN = 1 + 1 + 16 + 32 + 16 + 12
TAG_LEN = 16
OVERHEAD = HEADER_LEN + TAG_LEN
_LABEL = b"\x00\x00\x00\x01openkms/symmetric/v1\x00"
_LENGTH = b"\x00\x00\x01\x00"


class InvalidCiphertext(Exception):
    """The blob is not a ciphertext this service can decrypt (opaque on purpose)."""


@dataclass(frozen=True, slots=True)
class BlobHeader:
    key_id: str
    material_id: str


@functools.lru_cache(maxsize=65536)  # pure memo of a pure function (key ids are not secret)
def _encode_key_id(key_id: str) -> bytes:
    if key_id.startswith("mrk-"):
        return b"\x01" + bytes.fromhex(key_id[4:])
    return b"\x00" + uuid.UUID(key_id).bytes


def _decode_key_id(raw: bytes) -> str:
    if raw[0] == 1:
        return "mrk-" + raw[1:].hex()
    if raw[0] == 0:
        return str(uuid.UUID(bytes=raw[1:]))
    raise InvalidCiphertext()


def canonical_context(context: Mapping[str, str] | None) -> bytes:
    if not context:
        return b""
    out = bytearray()
    for k in sorted(context):
        kb = k.encode("utf-8")
        vb = str(context[k]).encode("utf-8")
        out += len(kb).to_bytes(4, "big") + kb + len(vb).to_bytes(4, "big") + vb
    return bytes(out)


def _derive(material: bytes, salt: bytes) -> AESGCM:
    return AESGCM(hmac.new(material, _LABEL + salt + _LENGTH, hashlib.sha256).digest())


def encrypt(
    key_id: str, material_id: str, material: bytes, plaintext: bytes, context: Mapping[str, str] | None
) -> bytes:
    fresh = random_bytes(28)
    salt, iv = fresh[:16], fresh[16:]
    header = bytes((VERSION,)) + _encode_key_id(key_id) + bytes.fromhex(material_id) + salt + iv
    return header + _derive(material, salt).encrypt(iv, plaintext, header + canonical_context(context))


def parse_header(blob: bytes) -> BlobHeader:
    """The key and material a blob names; raises :class:`InvalidCiphertext` for anything malformed."""
    if len(blob) < OVERHEAD or blob[0] not in (VERSION, EXTERNAL_VERSION):
        raise InvalidCiphertext()
    return BlobHeader(_decode_key_id(blob[1:18]), blob[18:50].hex())


def decrypt(material: bytes, blob: bytes, context: Mapping[str, str] | None) -> bytes:
    if len(blob) < OVERHEAD:
        raise InvalidCiphertext()
    header = blob[:HEADER_LEN]
    try:
        return _derive(material, blob[50:66]).decrypt(
            blob[66:78], blob[HEADER_LEN:], header + canonical_context(context)
        )
    except InvalidTag:
        raise InvalidCiphertext() from None


def is_external(blob: bytes) -> bool:
    """Whether the blob is a double encryption (a key in an external key store)."""
    return blob[:1] == bytes((EXTERNAL_VERSION,))


@dataclass(frozen=True, slots=True)
class ExternalParts:
    header: bytes  # the first 50 bytes: the outer encryption's additional authenticated data
    iv: bytes
    tag: bytes
    metadata: bytes
    ciphertext: bytes


def external_header(key_id: str, material_id: str) -> bytes:
    return bytes((EXTERNAL_VERSION,)) + _encode_key_id(key_id) + bytes.fromhex(material_id)


def pack_external(parts: ExternalParts) -> bytes:
    if not 0 < len(parts.iv) < 256 or len(parts.tag) != TAG_LEN or len(parts.metadata) > 255:
        raise InvalidCiphertext()
    return (
        parts.header
        + bytes((len(parts.iv),))
        + parts.iv
        + parts.tag
        + bytes((len(parts.metadata),))
        + parts.metadata
        + parts.ciphertext
    )


def unpack_external(blob: bytes) -> ExternalParts:
    """The parts of a version 2 blob; :class:`InvalidCiphertext` for anything malformed."""
    if not is_external(blob) or len(blob) < EXTERNAL_HEADER_LEN + 2:
        raise InvalidCiphertext()
    at = EXTERNAL_HEADER_LEN
    iv_len = blob[at]
    iv = blob[at + 1 : at + 1 + iv_len]
    at += 1 + iv_len
    tag = blob[at : at + TAG_LEN]
    at += TAG_LEN
    if iv_len == 0 or len(iv) != iv_len or len(tag) != TAG_LEN or at >= len(blob):
        raise InvalidCiphertext()
    md_len = blob[at]
    metadata = blob[at + 1 : at + 1 + md_len]
    at += 1 + md_len
    if len(metadata) != md_len or at >= len(blob):
        raise InvalidCiphertext()
    return ExternalParts(blob[:EXTERNAL_HEADER_LEN], iv, tag, metadata, blob[at:])
