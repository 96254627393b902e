"""DeriveSharedSecret (ECDH) as AWS KMS answers (reference §11.4): the raw shared secret equals what
the peer computes locally from the KMS public key; refusals carry AWS's errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.conftest import Server
from tests.e2e import importing
from tests.e2e.asym import KeyBank
from tests.e2e.util import aws_error, members, wait_for_audit

CURVES = {
    "ECC_NIST_P256": (ec.SECP256R1, 32),
    "ECC_NIST_P384": (ec.SECP384R1, 48),
    "ECC_NIST_P521": (ec.SECP521R1, 66),
}


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.fixture(scope="module")
def bank(server: Server) -> KeyBank:
    return KeyBank(server.client())


@pytest.mark.parametrize("spec", list(CURVES))
def test_shared_secret_equals_the_peers(kms: Any, bank: KeyBank, spec: str) -> None:
    curve, size = CURVES[spec]
    key = bank.key(spec, "KEY_AGREEMENT")
    peer = ec.generate_private_key(curve())
    out = kms.derive_shared_secret(KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=_spki(peer))
    assert members(out) == {"KeyId", "SharedSecret", "KeyAgreementAlgorithm", "KeyOrigin"}
    assert (
        out["KeyId"] == key["Arn"]
        and out["KeyAgreementAlgorithm"] == "ECDH"
        and out["KeyOrigin"] == "AWS_KMS"
    )
    kms_public = serialization.load_der_public_key(bank.public_der(key["KeyId"]))
    assert isinstance(kms_public, ec.EllipticCurvePublicKey)
    local = peer.exchange(ec.ECDH(), kms_public)
    assert out["SharedSecret"] == local and len(local) == size
    # Two KMS keys agree with each other.
    other = kms.create_key(KeySpec=spec, KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    a = kms.derive_shared_secret(
        KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=bank.public_der(other)
    )
    b = kms.derive_shared_secret(
        KeyId=other, KeyAgreementAlgorithm="ECDH", PublicKey=bank.public_der(key["KeyId"])
    )
    assert a["SharedSecret"] == b["SharedSecret"]


def test_imported_key_agreement_key(kms: Any) -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    key = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="KEY_AGREEMENT", Origin="EXTERNAL")["KeyMetadata"]
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    importing.import_material(kms, key["KeyId"], der)
    peer = ec.generate_private_key(ec.SECP384R1())
    out = kms.derive_shared_secret(KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=_spki(peer))
    assert out["KeyOrigin"] == "EXTERNAL"
    assert out["SharedSecret"] == private.exchange(ec.ECDH(), peer.public_key())


def test_aws_cli_derive_shared_secret(server: Server, bank: KeyBank, tmp_path: Path) -> None:
    key = bank.key("ECC_NIST_P256", "KEY_AGREEMENT")["KeyId"]
    peer = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "peer.der").write_bytes(_spki(peer))
    out = json.loads(
        server.aws(
            "kms", "derive-shared-secret", "--key-id", key, "--key-agreement-algorithm", "ECDH",
            "--public-key", f"fileb://{tmp_path / 'peer.der'}",
        ).stdout
    )  # fmt: skip
    kms_public = serialization.load_der_public_key(bank.public_der(key))
    assert isinstance(kms_public, ec.EllipticCurvePublicKey)
    assert base64.b64decode(out["SharedSecret"]) == peer.exchange(ec.ECDH(), kms_public)


def test_derive_shared_secret_refusals(server: Server, kms: Any, bank: KeyBank) -> None:
    key = bank.key("ECC_NIST_P256", "KEY_AGREEMENT")
    kid = key["KeyId"]
    p384 = _spki(ec.generate_private_key(ec.SECP384R1()))
    k1 = _spki(ec.generate_private_key(ec.SECP256K1()))
    rsa_pub = _spki(rsa.generate_private_key(65537, 2048))
    ed = _spki(ed25519.Ed25519PrivateKey.generate())
    good = _spki(ec.generate_private_key(ec.SECP256R1()))
    for bad in (b"not a key", good[:-1], good + b"\x00", p384, k1, rsa_pub, ed):
        err = aws_error(kms.derive_shared_secret, KeyId=kid, KeyAgreementAlgorithm="ECDH", PublicKey=bad)
        assert (err.code, err.message) == ("ValidationException", "")
    signer = bank.key("ECC_NIST_P256", "SIGN_VERIFY")
    err = aws_error(
        kms.derive_shared_secret, KeyId=signer["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=good
    )
    assert (err.code, err.message) == (
        "InvalidKeyUsageException",
        f"{signer['Arn']} key usage is SIGN_VERIFY which is not valid for DeriveSharedSecret.",
    )
    unchecked = server.client(parameter_validation=False)
    err = aws_error(unchecked.derive_shared_secret, KeyId=kid, KeyAgreementAlgorithm="DH", PublicKey=good)
    assert err.message == (
        "1 validation error detected: Value 'DH' at 'keyAgreementAlgorithm' failed to satisfy constraint: "
        "Member must satisfy enum value set: [ECDH]"
    )
    err = aws_error(
        kms.derive_shared_secret, KeyId=kid, KeyAgreementAlgorithm="ECDH", PublicKey=good, DryRun=True
    )
    assert err.code == "DryRunOperationException"
    kms.disable_key(KeyId=kid)
    try:
        err = aws_error(kms.derive_shared_secret, KeyId=kid, KeyAgreementAlgorithm="ECDH", PublicKey=good)
        assert (err.code, err.message) == ("DisabledException", f"{key['Arn']} is disabled.")
    finally:
        kms.enable_key(KeyId=kid)


def test_audit_records_never_hold_shared_secrets(server: Server, kms: Any) -> None:
    key = kms.create_key(KeySpec="ECC_NIST_P521", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
    peer = ec.generate_private_key(ec.SECP521R1())
    secret = kms.derive_shared_secret(
        KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=_spki(peer)
    )["SharedSecret"]
    records = wait_for_audit(
        server, ("--key-id", key["KeyId"], "--event-name", "DeriveSharedSecret"), lambda r: len(r) >= 1
    )
    assert len(records) == 1
    assert records[0]["requestParameters"] == {"keyId": key["KeyId"], "keyAgreementAlgorithm": "ECDH"}
    assert records[0]["responseElements"] is None
    text = json.dumps(records)
    assert base64.b64encode(secret).decode() not in text and secret.hex() not in text
