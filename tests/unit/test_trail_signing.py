"""The audit digest signing keys (service/trail/signing.py) on a SQLite store: made on first use with
the private key sealed, reused, renewed after their validity with the old key kept for verification,
and a signature checked with the public key alone (independently, with pyca cryptography)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from openkms.crypto.envelope import Keyring, RootKey
from openkms.service.trail import signing
from openkms.storage.store import Store


def test_a_region_key_is_made_once_sealed_and_verifies_from_its_pem(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    root = RootKey.from_keyring(Keyring.new())
    first = signing.signer(store, root, "us-east-1", 1000.0)
    assert signing.signer(store, root, "us-east-1", 2000.0).fingerprint == first.fingerprint
    other = signing.signer(store, root, "eu-west-1", 1000.0)
    assert other.fingerprint != first.fingerprint
    with store.read() as tx:
        (row,) = tx.signing_keys("us-east-1")
    assert b"PRIVATE" not in row["private_key_sealed"] and row["private_key_sealed"][:1] == b"\x02"

    keys = signing.public_keys(store, "us-east-1")
    assert [k.fingerprint for k in keys] == [first.fingerprint]
    pem = keys[0].pem
    public = serialization.load_pem_public_key(pem.encode())
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert hashlib.sha256(der).hexdigest() == first.fingerprint
    signature = first.sign(b"digest body")
    public.verify(signature, b"digest body", padding.PKCS1v15(), hashes.SHA256())
    assert signing.verify(keys[0], b"digest body", signature)
    assert not signing.verify(keys[0], b"digest bodY", signature)
    assert not signing.verify(signing.public_keys(store, "eu-west-1")[0], b"digest body", signature)


def test_an_expired_key_is_renewed_and_kept_for_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "KEY_VALIDITY_DAYS", 1.0)
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    root = RootKey.from_keyring(Keyring.new())
    old = signing.signer(store, root, "us-east-1", 1000.0)
    new = signing.signer(store, root, "us-east-1", 1000.0 + 2 * 86400)
    assert new.fingerprint != old.fingerprint
    keys = signing.public_keys(store)
    assert [(k.fingerprint, k.valid_from, k.valid_to) for k in keys] == [
        (old.fingerprint, 1000.0, 1000.0 + 2 * 86400),
        (new.fingerprint, 1000.0 + 2 * 86400, None),
    ]
    assert signing.verify(keys[0], b"m", old.sign(b"m"))
