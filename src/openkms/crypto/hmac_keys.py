"""HMAC keys (RFC 2104): material generation and MACs for AWS's HMAC_SHA_224/256/384/512.

Material format (the contract with key-material import): the raw HMAC key bytes. Generated keys are
as long as the hash output (HMAC_224 → 28 bytes, 256 → 32, 384 → 48, 512 → 64); imported keys may be
longer (the import feature decides the accepted range), and a MAC is always the HMAC of the message
under exactly those bytes, so it equals an HMAC computed anywhere else with the same key.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from openkms.domain.keyspec import KeySpec

#: MacAlgorithm -> hashlib name.
HASHES = {
    "HMAC_SHA_224": "sha224",
    "HMAC_SHA_256": "sha256",
    "HMAC_SHA_384": "sha384",
    "HMAC_SHA_512": "sha512",
}
#: Bytes of generated material per key spec (the hash output length).
KEY_BYTES = {KeySpec.HMAC_224: 28, KeySpec.HMAC_256: 32, KeySpec.HMAC_384: 48, KeySpec.HMAC_512: 64}

# hashlib constructors, looked up once (hmac.digest takes a constructor and runs in C).
_DIGESTMODS = {alg: getattr(hashlib, name) for alg, name in HASHES.items()}


def generate_hmac_key(spec: KeySpec) -> bytes:
    return os.urandom(KEY_BYTES[spec])


def compute_mac(algorithm: str, key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, _DIGESTMODS[algorithm])


def verify_mac(algorithm: str, key: bytes, message: bytes, mac: bytes) -> bool:
    """Constant-time comparison of ``mac`` with the MAC of ``message``."""
    return hmac.compare_digest(compute_mac(algorithm, key, message), mac)
