"""Generating key material for each key spec the service implements."""

from __future__ import annotations

import os

from openkms.crypto import asymmetric, hmac_keys
from openkms.crypto.keypair_pool import KeyPairPool
from openkms.domain.keyspec import HMAC_SPECS, KeySpec

# Key specs whose cryptography is implemented. CreateKey refuses the others with a clear error
# (SM2: pyca ``cryptography`` has no SM2, and AWS offers it only in China Regions).
SUPPORTED_SPECS: frozenset[KeySpec] = frozenset(
    {KeySpec.SYMMETRIC_DEFAULT, *HMAC_SPECS, *asymmetric.ASYMMETRIC_SPECS}
)


def generate_material(spec: KeySpec, pool: KeyPairPool | None = None) -> bytes:
    """New material: 32 random bytes (symmetric), raw HMAC key bytes, or a PKCS#8 DER private key
    (asymmetric; RSA keys come from ``pool`` when it has one, else are generated now)."""
    if spec is KeySpec.SYMMETRIC_DEFAULT:
        return os.urandom(32)
    if spec in HMAC_SPECS:
        return hmac_keys.generate_hmac_key(spec)
    if spec in asymmetric.ASYMMETRIC_SPECS:
        return (pool.key_pair(spec) if pool is not None else asymmetric.generate_key_pair(spec))[0]
    raise NotImplementedError(spec)
