"""GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext as AWS KMS answers (reference §4.1):
for every KeyPairSpec the private key is PKCS#8 DER, matches the DER SubjectPublicKeyInfo, and its
ciphertext decrypts with Decrypt (under the encryption context); refusals carry AWS's errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tests.conftest import Server
from tests.e2e.util import aws_error, members, wait_for_audit

PAIR_SPECS = {
    "RSA_2048": (rsa.RSAPrivateKey, 2048),
    "RSA_3072": (rsa.RSAPrivateKey, 3072),
    "RSA_4096": (rsa.RSAPrivateKey, 4096),
    "ECC_NIST_P256": (ec.EllipticCurvePrivateKey, "secp256r1"),
    "ECC_NIST_P384": (ec.EllipticCurvePrivateKey, "secp384r1"),
    "ECC_NIST_P521": (ec.EllipticCurvePrivateKey, "secp521r1"),
    "ECC_SECG_P256K1": (ec.EllipticCurvePrivateKey, "secp256k1"),
    "ECC_NIST_EDWARDS25519": (ed25519.Ed25519PrivateKey, None),
}
WITHOUT_PLAINTEXT = {"KeyId", "KeyPairSpec", "PrivateKeyCiphertextBlob", "PublicKey", "KeyMaterialId"}


@pytest.fixture(scope="module")
def wrapping_key(server: Server) -> dict[str, Any]:
    return dict(server.client().create_key(Description="data key pairs")["KeyMetadata"])


def _is_pkcs8(der: bytes) -> bool:
    """A DER PrivateKeyInfo: SEQUENCE { INTEGER 0, SEQUENCE AlgorithmIdentifier, OCTET STRING }, not a
    traditional RSAPrivateKey / ECPrivateKey."""
    if der[0] != 0x30:
        return False
    pos = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    return der[pos : pos + 4] == b"\x02\x01\x00\x30"


def _check_pair(spec: str, private_der: bytes, public_der: bytes) -> None:
    kind, detail = PAIR_SPECS[spec]
    private = serialization.load_der_private_key(private_der, password=None)
    assert isinstance(private, kind)
    assert _is_pkcs8(private_der)
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public == public_der
    if isinstance(private, rsa.RSAPrivateKey):
        assert private.key_size == detail
        sig = private.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
        loaded = serialization.load_der_public_key(public_der)
        assert isinstance(loaded, rsa.RSAPublicKey)
        loaded.verify(sig, b"m", padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        assert private.curve.name == detail


@pytest.mark.parametrize("spec", list(PAIR_SPECS))
def test_generate_data_key_pair(kms: Any, wrapping_key: dict[str, Any], spec: str) -> None:
    context = {"purpose": "test", "spec": spec}
    out = kms.generate_data_key_pair(KeyId=wrapping_key["KeyId"], KeyPairSpec=spec, EncryptionContext=context)
    assert members(out) == WITHOUT_PLAINTEXT | {"PrivateKeyPlaintext"}
    assert out["KeyId"] == wrapping_key["Arn"] and out["KeyPairSpec"] == spec
    assert out["KeyMaterialId"] == wrapping_key["CurrentKeyMaterialId"]
    _check_pair(spec, out["PrivateKeyPlaintext"], out["PublicKey"])
    dec = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"], EncryptionContext=context)
    assert dec["Plaintext"] == out["PrivateKeyPlaintext"]
    err = aws_error(kms.decrypt, CiphertextBlob=out["PrivateKeyCiphertextBlob"])
    assert err.code == "InvalidCiphertextException"
    # Each call returns a new pair.
    again = kms.generate_data_key_pair(KeyId=wrapping_key["KeyId"], KeyPairSpec=spec)
    assert again["PublicKey"] != out["PublicKey"]


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_EDWARDS25519"])
def test_generate_data_key_pair_without_plaintext(kms: Any, wrapping_key: dict[str, Any], spec: str) -> None:
    out = kms.generate_data_key_pair_without_plaintext(KeyId=wrapping_key["Arn"], KeyPairSpec=spec)
    assert members(out) == WITHOUT_PLAINTEXT
    private_der = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"])["Plaintext"]
    _check_pair(spec, private_der, out["PublicKey"])


def test_aws_cli_generate_data_key_pair(server: Server, wrapping_key: dict[str, Any]) -> None:
    out = json.loads(
        server.aws(
            "kms",
            "generate-data-key-pair",
            "--key-id",
            wrapping_key["KeyId"],
            "--key-pair-spec",
            "ECC_NIST_P384",
        ).stdout
    )
    _check_pair(
        "ECC_NIST_P384", base64.b64decode(out["PrivateKeyPlaintext"]), base64.b64decode(out["PublicKey"])
    )


def test_data_key_pair_refusals(server: Server, kms: Any, wrapping_key: dict[str, Any]) -> None:
    kid = wrapping_key["KeyId"]
    err = aws_error(kms.generate_data_key_pair, KeyId=kid, KeyPairSpec="SM2")
    assert (err.code, err.message) == (
        "ValidationException",
        "KeyPairSpec SM2 is not supported in the us-east-1 region.",
    )
    unchecked = server.client(parameter_validation=False)
    err = aws_error(unchecked.generate_data_key_pair, KeyId=kid, KeyPairSpec="RSA_1024")
    assert err.code == "ValidationException" and "at 'keyPairSpec'" in err.message
    for spec, usage in (
        ("RSA_2048", "ENCRYPT_DECRYPT"),
        ("ECC_NIST_P256", "SIGN_VERIFY"),
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
    ):
        other = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
        for name, op in (
            ("GenerateDataKeyPair", kms.generate_data_key_pair),
            ("GenerateDataKeyPairWithoutPlaintext", kms.generate_data_key_pair_without_plaintext),
        ):
            err = aws_error(op, KeyId=other["KeyId"], KeyPairSpec="ECC_NIST_P256")
            assert err.code == "InvalidKeyUsageException"
            if usage != "ENCRYPT_DECRYPT":
                assert err.message == f"{other['Arn']} key usage is {usage} which is not valid for {name}."
    err = aws_error(kms.generate_data_key_pair, KeyId=kid, KeyPairSpec="RSA_2048", DryRun=True)
    assert err.code == "DryRunOperationException"
    disabled = kms.create_key()["KeyMetadata"]
    kms.disable_key(KeyId=disabled["KeyId"])
    err = aws_error(
        kms.generate_data_key_pair_without_plaintext, KeyId=disabled["KeyId"], KeyPairSpec="ECC_NIST_P256"
    )
    assert (err.code, err.message) == ("DisabledException", f"{disabled['Arn']} is disabled.")


def test_audit_records_never_hold_private_keys(server: Server, kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]
    out = kms.generate_data_key_pair(
        KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P256", EncryptionContext={"a": "b"}
    )
    records = wait_for_audit(
        server, ("--key-id", key["KeyId"], "--event-name", "GenerateDataKeyPair"), lambda r: len(r) >= 1
    )
    assert len(records) == 1
    record = records[0]
    assert record["requestParameters"] == {
        "keyId": key["KeyId"],
        "keyPairSpec": "ECC_NIST_P256",
        "encryptionContext": {"a": "b"},
    }
    assert record["responseElements"] is None
    assert record["additionalEventData"] == {"keyMaterialId": key["CurrentKeyMaterialId"]}
    text = json.dumps(records)
    for secret in (out["PrivateKeyPlaintext"], out["PrivateKeyCiphertextBlob"], out["PublicKey"]):
        assert base64.b64encode(secret).decode() not in text
