"""The audit trail's digest signing keys: one RSA-2048 key pair per Region (CloudTrail signs each Region's
digests with a key of that Region), made on first use, its private key sealed under the keyring
(purpose :data:`SIGNING_PURPOSE`, ident ``<region>/<fingerprint>``: a root key rotation re-seals it,
see :mod:`openkms.service.trust.sealed_columns`), its public key stored in the clear.

A key signs for :data:`KEY_VALIDITY_DAYS` (``OPENKMS_AUDIT_SIGNING_KEY_DAYS``) days; the next use after
that makes a new one and ends the old one's validity, which stays for verification. A digest names
the fingerprint (SHA-256 hex of the DER SubjectPublicKeyInfo) of the key that signed it.

Two nodes making a Region's first key at once both succeed; each digest names its own key, both
verify, and the newest becomes the one every node signs with.

The export of CloudTrail-layout digest files signs with the same :class:`Signer`
(``signer(store, root, region, now).sign(body)``) and names ``Signer.fingerprint`` as
``digestPublicKeyFingerprint``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from openkms.crypto import trail_signing
from openkms.crypto.envelope import RootKey
from openkms.storage.store import Store

SIGNING_PURPOSE = "audit-signing-key"
ALGORITHM = trail_signing.ALGORITHM
KEY_VALIDITY_DAYS = float(os.environ.get("OPENKMS_AUDIT_SIGNING_KEY_DAYS", "365"))


@dataclass(frozen=True)
class PublicKeyInfo:
    """A verification key: its Region, PEM, fingerprint, and validity (``valid_to`` None: current)."""

    region: str
    fingerprint: str
    pem: str
    der: bytes
    valid_from: float
    valid_to: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "Region": self.region,
            "Fingerprint": self.fingerprint,
            "ValidityStartTime": self.valid_from,
            "ValidityEndTime": self.valid_to,
            "PublicKey": self.pem,
            "Algorithm": ALGORITHM,
        }


class Signer:
    """Signs with one Region's current key."""

    def __init__(
        self, region: str, fingerprint: str, key: trail_signing.PrivateKey, valid_from: float
    ) -> None:
        self.region = region
        self.fingerprint = fingerprint
        self.valid_from = valid_from
        self.algorithm = ALGORITHM
        self._key = key

    def __repr__(self) -> str:
        return f"Signer(region={self.region}, fingerprint={self.fingerprint})"

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def _ident(region: str, fingerprint: str) -> str:
    return f"{region}/{fingerprint}"


_cache: dict[tuple[int, str, str], Signer] = {}
_lock = threading.Lock()


def signer(store: Store, root: RootKey, region: str, now: float) -> Signer:
    """The signer of ``region``'s current key, made (or renewed, when older than the validity) first."""
    with store.read() as tx:
        keys = [k for k in tx.signing_keys(region) if k["valid_to"] is None]
    current = keys[-1] if keys else None
    if current is None or now - current["valid_from"] > KEY_VALIDITY_DAYS * 86400:
        current = _new_key(store, root, region, now)
    cache_key = (id(store), region, current["fingerprint"])
    with _lock:
        cached = _cache.get(cache_key)
    if cached is not None:
        return cached
    ident = _ident(region, current["fingerprint"])
    pkcs8 = root.unseal(SIGNING_PURPOSE, ident, current["private_key_sealed"])
    made = Signer(region, current["fingerprint"], trail_signing.PrivateKey(pkcs8), current["valid_from"])
    with _lock:
        _cache[cache_key] = made
    return made


def _new_key(store: Store, root: RootKey, region: str, now: float) -> dict[str, Any]:
    private, public = trail_signing.generate()
    fingerprint = trail_signing.fingerprint(public)
    row = {
        "fingerprint": fingerprint,
        "region": region,
        "valid_from": now,
        "valid_to": None,
        "public_key": public,
        "private_key_sealed": root.seal(SIGNING_PURPOSE, _ident(region, fingerprint), private),
    }
    with store.write() as tx:
        tx.insert_signing_key(row)
        tx.retire_signing_keys(region, fingerprint, now)
    return row


def public_keys(store: Store, region: str | None = None) -> list[PublicKeyInfo]:
    """Every verification key (of ``region``), oldest first: public material only."""
    with store.read() as tx:
        rows = tx.signing_keys(region)
    return [
        PublicKeyInfo(
            region=r["region"],
            fingerprint=r["fingerprint"],
            pem=trail_signing.public_pem(r["public_key"]),
            der=r["public_key"],
            valid_from=r["valid_from"],
            valid_to=r["valid_to"],
        )
        for r in rows
    ]


def verify(key: PublicKeyInfo | bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``message`` signed by ``key`` (a :class:`PublicKeyInfo` or its DER)."""
    der = key.der if isinstance(key, PublicKeyInfo) else key
    return trail_signing.verify(der, message, signature)
