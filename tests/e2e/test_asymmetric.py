"""Asymmetric keys as AWS KMS answers (reference §11.1, §11.2, §4): CreateKey for every KeySpec x
KeyUsage, Sign/Verify with every signing algorithm AWS lists (RAW and DIGEST), GetPublicKey, RSA
encryption, imported key material, the key-state rules and the audit trail.

Every signature is checked with an implementation independent of the server: pyca ``cryptography``
holding only the public key from GetPublicKey, pycryptodome (Ed25519ph), the ``openssl`` command line
and a JWT library (joserfc); ciphertexts are made offline with the public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from tests.conftest import Server
from tests.e2e import importing
from tests.e2e.asym import (
    ECDSA_BY_SPEC,
    RSA_SIGNING,
    RSA_SPECS,
    SIGNING_CASES,
    KeyBank,
    digest,
    offline_verify,
    offline_verify_digest,
    pem_file,
    run,
)
from tests.e2e.storage_scan import stored_bytes
from tests.e2e.util import ALWAYS_MEMBERS, aws_error, members, wait_for_audit
from tests.unit.test_asymmetric_crypto import openssl_pkcs8

RSA_ENCRYPTION = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
ML_DSA = "ML_DSA_SHAKE_256"
# AWS's RSA plaintext limits (reference §4, LS-snap).
RSA_LIMITS = {
    ("RSA_2048", "RSAES_OAEP_SHA_1"): 214,
    ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
    ("RSA_3072", "RSAES_OAEP_SHA_1"): 342,
    ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
    ("RSA_4096", "RSAES_OAEP_SHA_1"): 470,
    ("RSA_4096", "RSAES_OAEP_SHA_256"): 446,
}
RE_ENCRYPT_RSA_MEMBERS = {
    "CiphertextBlob",
    "KeyId",
    "SourceKeyId",
    "SourceEncryptionAlgorithm",
    "DestinationEncryptionAlgorithm",
}
INCORRECT_KEY = "The key ID in the request does not identify a CMK that can perform this operation."

# (KeySpec, KeyUsage) -> the algorithm list member and its value (Appendix A).
VALID_PAIRS: dict[tuple[str, str], tuple[str, list[str]]] = {
    **{(s, "ENCRYPT_DECRYPT"): ("EncryptionAlgorithms", RSA_ENCRYPTION) for s in RSA_SPECS},
    **{(s, "SIGN_VERIFY"): ("SigningAlgorithms", list(RSA_SIGNING)) for s in RSA_SPECS},
    **{(s, "SIGN_VERIFY"): ("SigningAlgorithms", [a]) for s, a in ECDSA_BY_SPEC.items()},
    **{
        (s, "KEY_AGREEMENT"): ("KeyAgreementAlgorithms", ["ECDH"])
        for s in ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521")
    },
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"): (
        "SigningAlgorithms",
        ["ED25519_SHA_512", "ED25519_PH_SHA_512"],
    ),
    **{
        (s, "SIGN_VERIFY"): ("SigningAlgorithms", ["ML_DSA_SHAKE_256"])
        for s in ("ML_DSA_44", "ML_DSA_65", "ML_DSA_87")
    },
}


@pytest.fixture(scope="module")
def bank(server: Server) -> KeyBank:
    return KeyBank(server.client())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- CreateKey / DescribeKey -------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "usage"), list(VALID_PAIRS))
def test_create_key_every_spec_and_usage(kms: Any, bank: KeyBank, spec: str, usage: str) -> None:
    created = bank.key(spec, usage)
    described = kms.describe_key(KeyId=created["KeyId"])["KeyMetadata"]
    member, algorithms = VALID_PAIRS[(spec, usage)]
    for md in (created, described):
        assert set(md) == ALWAYS_MEMBERS | {member}
        assert md[member] == algorithms
        assert md["KeySpec"] == md["CustomerMasterKeySpec"] == spec
        assert md["KeyUsage"] == usage
        assert md["KeyState"] == "Enabled" and md["Enabled"] is True
        assert md["Origin"] == "AWS_KMS"


def test_deprecated_customer_master_key_spec_parameter(kms: Any) -> None:
    md = kms.create_key(CustomerMasterKeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert md["KeySpec"] == "ECC_NIST_P256"
    assert md["SigningAlgorithms"] == ["ECDSA_SHA_256"]


@pytest.mark.parametrize(
    ("spec", "usage"),
    [
        ("SYMMETRIC_DEFAULT", "SIGN_VERIFY"),
        ("SYMMETRIC_DEFAULT", "KEY_AGREEMENT"),
        ("RSA_2048", "KEY_AGREEMENT"),
        ("RSA_4096", "GENERATE_VERIFY_MAC"),
        ("ECC_NIST_P256", "ENCRYPT_DECRYPT"),
        ("ECC_SECG_P256K1", "KEY_AGREEMENT"),
        ("ECC_NIST_EDWARDS25519", "KEY_AGREEMENT"),
        ("ECC_NIST_EDWARDS25519", "ENCRYPT_DECRYPT"),
        ("ML_DSA_44", "ENCRYPT_DECRYPT"),
        ("HMAC_256", "SIGN_VERIFY"),
    ],
)
def test_create_key_refuses_incompatible_usage(kms: Any, spec: str, usage: str) -> None:
    err = aws_error(kms.create_key, KeySpec=spec, KeyUsage=usage)
    assert (err.code, err.message) == (
        "ValidationException",
        f"KeyUsage {usage} is not compatible with KeySpec {spec}",
    )


@pytest.mark.parametrize(
    "spec", ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_EDWARDS25519", "ML_DSA_65", "HMAC_512"]
)
def test_create_key_requires_key_usage(kms: Any, spec: str) -> None:
    err = aws_error(kms.create_key, KeySpec=spec)
    assert (err.code, err.message) == (
        "ValidationException",
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
    )


def test_create_key_refuses_sm2_outside_china_and_ml_dsa_import(kms: Any) -> None:
    err = aws_error(kms.create_key, KeySpec="SM2", KeyUsage="SIGN_VERIFY")
    assert (err.code, err.message) == (
        "ValidationException",
        "KeySpec SM2 is not supported in the us-east-1 region.",
    )
    err = aws_error(kms.create_key, KeySpec="ML_DSA_44", KeyUsage="SIGN_VERIFY", Origin="EXTERNAL")
    assert (err.code, err.message) == (
        "UnsupportedOperationException",
        "Importing ML-DSA keys is not supported.",
    )


def test_private_keys_are_stored_only_sealed(server: Server, kms: Any) -> None:
    """The public point is inside every PKCS#8 EC key cryptography writes: if the material were stored
    in clear, these bytes would be in the database."""
    key = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key["KeyId"])["PublicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    rsa_key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    rsa_public = serialization.load_der_public_key(kms.get_public_key(KeyId=rsa_key["KeyId"])["PublicKey"])
    assert isinstance(rsa_public, rsa.RSAPublicKey)
    modulus = rsa_public.public_numbers().n.to_bytes(256, "big")
    stored = stored_bytes(server)
    assert point[1:] not in stored
    assert modulus not in stored


# --- Sign / Verify -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "algorithm"), SIGNING_CASES)
def test_sign_and_verify_every_algorithm(kms: Any, bank: KeyBank, spec: str, algorithm: str) -> None:
    key = bank.key(spec, "SIGN_VERIFY")
    public_der = bank.public_der(key["KeyId"])
    message = b"openkms signs this " + spec.encode() + os.urandom(8)
    message_type = "DIGEST" if algorithm == "ED25519_PH_SHA_512" else "RAW"
    signed_message = hashlib.sha512(message).digest() if message_type == "DIGEST" else message

    out = kms.sign(
        KeyId=key["KeyId"], Message=signed_message, MessageType=message_type, SigningAlgorithm=algorithm
    )
    assert members(out) == {"KeyId", "Signature", "SigningAlgorithm"}
    assert out["KeyId"] == key["Arn"] and out["SigningAlgorithm"] == algorithm
    signature = out["Signature"]
    # Independent verification with only the public key.
    assert offline_verify(public_der, algorithm, signed_message, signature)
    assert not offline_verify(public_der, algorithm, signed_message + b"!", signature)

    ok = kms.verify(
        KeyId=key["KeyId"],
        Message=signed_message,
        MessageType=message_type,
        Signature=signature,
        SigningAlgorithm=algorithm,
    )
    assert members(ok) == {"KeyId", "SignatureValid", "SigningAlgorithm"}
    assert ok["SignatureValid"] is True and ok["KeyId"] == key["Arn"]

    # Another message, a flipped bit: KMSInvalidSignatureException with an empty message, never false.
    tampered = bytearray(signature)
    tampered[len(tampered) // 2] ^= 0x01
    other = signed_message[:-1] + bytes([signed_message[-1] ^ 1])
    for msg, sig in ((other, signature), (signed_message, bytes(tampered))):
        err = aws_error(
            kms.verify, KeyId=key["KeyId"], Message=msg, MessageType=message_type, Signature=sig,
            SigningAlgorithm=algorithm,
        )  # fmt: skip
        assert (err.code, err.message, err.status) == ("KMSInvalidSignatureException", "", 400)


@pytest.mark.parametrize(
    ("spec", "algorithm"), [c for c in SIGNING_CASES if c[1].startswith(("RSASSA_", "ECDSA_"))]
)
def test_digest_and_raw_are_the_same_signature_scheme(
    kms: Any, bank: KeyBank, spec: str, algorithm: str
) -> None:
    """Sign a digest, verify the raw message offline and in KMS; sign raw, verify the digest."""
    key = bank.key(spec, "SIGN_VERIFY")
    public_der = bank.public_der(key["KeyId"])
    message = os.urandom(100)
    d = digest(algorithm, message)
    sig = kms.sign(KeyId=key["KeyId"], Message=d, MessageType="DIGEST", SigningAlgorithm=algorithm)[
        "Signature"
    ]
    assert offline_verify(public_der, algorithm, message, sig)
    assert offline_verify_digest(public_der, algorithm, d, sig)
    assert kms.verify(KeyId=key["KeyId"], Message=message, Signature=sig, SigningAlgorithm=algorithm)[
        "SignatureValid"
    ]
    raw_sig = kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm=algorithm)["Signature"]
    assert offline_verify_digest(public_der, algorithm, d, raw_sig)
    assert kms.verify(
        KeyId=key["KeyId"], Message=d, MessageType="DIGEST", Signature=raw_sig, SigningAlgorithm=algorithm
    )["SignatureValid"]
    # A digest signed as a RAW message is hashed again: it does not verify as the digest.
    double = kms.sign(KeyId=key["KeyId"], Message=d, MessageType="RAW", SigningAlgorithm=algorithm)[
        "Signature"
    ]
    assert not offline_verify(public_der, algorithm, message, double)


def test_pkcs1_signatures_are_deterministic_and_pss_are_not(kms: Any, bank: KeyBank) -> None:
    key = bank.key("RSA_2048", "SIGN_VERIFY")["KeyId"]
    sigs = [
        kms.sign(KeyId=key, Message=b"m", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["Signature"]
        for _ in "ab"
    ]
    assert sigs[0] == sigs[1] and len(sigs[0]) == 256
    pss = [
        kms.sign(KeyId=key, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"] for _ in "ab"
    ]
    assert pss[0] != pss[1]
    # A PKCS#1 v1.5 signature checked as PSS does not verify.
    err = aws_error(
        kms.verify, KeyId=key, Message=b"m", Signature=sigs[0], SigningAlgorithm="RSASSA_PSS_SHA_256"
    )
    assert err.code == "KMSInvalidSignatureException"


@pytest.mark.parametrize(
    ("spec", "size"), [("ECC_NIST_P256", 32), ("ECC_NIST_P384", 48), ("ECC_NIST_P521", 66)]
)
def test_ecdsa_signatures_are_der(kms: Any, bank: KeyBank, spec: str, size: int) -> None:
    key = bank.key(spec, "SIGN_VERIFY")["KeyId"]
    sig = kms.sign(KeyId=key, Message=b"der", SigningAlgorithm=ECDSA_BY_SPEC[spec])["Signature"]
    assert sig[0] == 0x30
    r, s = decode_dss_signature(sig)  # raises if not a DER Ecdsa-Sig-Value
    assert 0 < r < 2 ** (8 * size) and 0 < s < 2 ** (8 * size)


OPENSSL_CASES = [
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", "sha256", []),
    ("RSA_2048", "RSASSA_PSS_SHA_256", "sha256", ["rsa_padding_mode:pss", "rsa_pss_saltlen:digest"]),
    ("RSA_3072", "RSASSA_PSS_SHA_384", "sha384", ["rsa_padding_mode:pss", "rsa_pss_saltlen:digest"]),
    ("RSA_4096", "RSASSA_PKCS1_V1_5_SHA_512", "sha512", []),
    ("ECC_NIST_P256", "ECDSA_SHA_256", "sha256", []),
    ("ECC_NIST_P384", "ECDSA_SHA_384", "sha384", []),
    ("ECC_NIST_P521", "ECDSA_SHA_512", "sha512", []),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256", "sha256", []),
]


@pytest.mark.parametrize(("spec", "algorithm", "md", "sigopts"), OPENSSL_CASES)
def test_openssl_dgst_verifies_signatures_made_with_the_aws_cli(
    server: Server, bank: KeyBank, tmp_path: Path, spec: str, algorithm: str, md: str, sigopts: list[str]
) -> None:
    key = bank.key(spec, "SIGN_VERIFY")
    msg = tmp_path / "msg.bin"
    msg.write_bytes(os.urandom(3000))
    out = json.loads(
        server.aws(
            "kms", "sign", "--key-id", key["KeyId"], "--message", f"fileb://{msg}", "--message-type", "RAW",
            "--signing-algorithm", algorithm,
        ).stdout
    )  # fmt: skip
    sig = tmp_path / "sig.bin"
    sig.write_bytes(base64.b64decode(out["Signature"]))
    pub = json.loads(server.aws("kms", "get-public-key", "--key-id", key["KeyId"]).stdout)
    pem = pem_file(tmp_path, base64.b64decode(pub["PublicKey"]))
    opts = [x for o in sigopts for x in ("-sigopt", o)]
    ok = run("openssl", "dgst", f"-{md}", "-verify", str(pem), *opts, "-signature", str(sig), str(msg))
    assert ok.returncode == 0 and "Verified OK" in ok.stdout, ok.stderr
    msg.write_bytes(msg.read_bytes() + b"x")
    bad = run("openssl", "dgst", f"-{md}", "-verify", str(pem), *opts, "-signature", str(sig), str(msg))
    assert bad.returncode != 0
    # The AWS CLI's verify of the same signature.
    msg.write_bytes(msg.read_bytes()[:-1])
    verified = json.loads(
        server.aws(
            "kms", "verify", "--key-id", key["KeyId"], "--message", f"fileb://{msg}", "--signature",
            f"fileb://{sig}", "--signing-algorithm", algorithm,
        ).stdout
    )  # fmt: skip
    assert verified["SignatureValid"] is True


def test_openssl_verifies_ed25519_signatures(kms: Any, bank: KeyBank, tmp_path: Path) -> None:
    key = bank.key("ECC_NIST_EDWARDS25519", "SIGN_VERIFY")["KeyId"]
    msg = tmp_path / "msg.bin"
    msg.write_bytes(b"pure ed25519 " + os.urandom(16))
    sig = tmp_path / "sig.bin"
    sig.write_bytes(
        kms.sign(KeyId=key, Message=msg.read_bytes(), SigningAlgorithm="ED25519_SHA_512")["Signature"]
    )
    pem = pem_file(tmp_path, bank.public_der(key))
    ok = run(
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        str(pem),
        "-rawin",
        "-in",
        str(msg),
        "-sigfile",
        str(sig),
    )
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout, ok.stderr


def _jws_input(alg: str) -> bytes:
    header = _b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": "openkms", "iat": 1700000000}).encode())
    return f"{header}.{payload}".encode()


JWT_CASES = [
    ("RS256", "RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", 0),
    ("RS512", "RSA_4096", "RSASSA_PKCS1_V1_5_SHA_512", 0),
    ("PS256", "RSA_2048", "RSASSA_PSS_SHA_256", 0),
    ("PS384", "RSA_3072", "RSASSA_PSS_SHA_384", 0),
    ("ES256", "ECC_NIST_P256", "ECDSA_SHA_256", 32),
    ("ES384", "ECC_NIST_P384", "ECDSA_SHA_384", 48),
    ("ES512", "ECC_NIST_P521", "ECDSA_SHA_512", 66),
    ("ES256K", "ECC_SECG_P256K1", "ECDSA_SHA_256", 32),
    ("EdDSA", "ECC_NIST_EDWARDS25519", "ED25519_SHA_512", 0),
]


@pytest.mark.parametrize(("alg", "spec", "algorithm", "ec_size"), JWT_CASES)
def test_a_jwt_library_accepts_the_signatures(
    kms: Any, bank: KeyBank, alg: str, spec: str, algorithm: str, ec_size: int
) -> None:
    key = bank.key(spec, "SIGN_VERIFY")["KeyId"]
    signing_input = _jws_input(alg)
    signature = kms.sign(KeyId=key, Message=signing_input, SigningAlgorithm=algorithm)["Signature"]
    if ec_size:
        # JWS wants r||s where AWS (like every X.509 tool) returns DER: the one conversion AWS requires.
        r, s = decode_dss_signature(signature)
        signature = r.to_bytes(ec_size, "big") + s.to_bytes(ec_size, "big")
    token = signing_input.decode() + "." + _b64url(signature)
    der = bank.public_der(key)
    jwk = (
        RSAKey.import_key(der)
        if spec.startswith("RSA")
        else ECKey.import_key(der)
        if ec_size
        else OKPKey.import_key(der)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoded = jws.deserialize_compact(token, jwk, algorithms=[alg])
    assert json.loads(decoded.payload)["sub"] == "openkms"


# --- Sign / Verify refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "algorithm", "length"),
    [
        ("RSA_2048", "RSASSA_PSS_SHA_256", 48),
        ("RSA_2048", "RSASSA_PSS_SHA_384", 32),
        ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512", 48),
        ("ECC_NIST_P256", "ECDSA_SHA_256", 31),
        ("ECC_NIST_P384", "ECDSA_SHA_384", 32),
        ("ECC_NIST_P521", "ECDSA_SHA_512", 66),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256", 64),
        ("ECC_NIST_EDWARDS25519", "ED25519_PH_SHA_512", 32),
    ],
)
def test_digest_of_the_wrong_length(kms: Any, bank: KeyBank, spec: str, algorithm: str, length: int) -> None:
    key = bank.key(spec, "SIGN_VERIFY")["KeyId"]
    expected = ("ValidationException", f"Digest is invalid length for algorithm {algorithm}.")
    err = aws_error(
        kms.sign, KeyId=key, Message=os.urandom(length), MessageType="DIGEST", SigningAlgorithm=algorithm
    )
    assert (err.code, err.message) == expected
    err = aws_error(
        kms.verify, KeyId=key, Message=os.urandom(length), MessageType="DIGEST", Signature=b"\x30" * 64,
        SigningAlgorithm=algorithm,
    )  # fmt: skip
    assert (err.code, err.message) == expected


def test_message_size_limit(server: Server, kms: Any, bank: KeyBank) -> None:
    key = bank.key("ECC_NIST_P256", "SIGN_VERIFY")["KeyId"]
    sig = kms.sign(KeyId=key, Message=b"x" * 4096, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    assert kms.verify(KeyId=key, Message=b"x" * 4096, Signature=sig, SigningAlgorithm="ECDSA_SHA_256")[
        "SignatureValid"
    ]
    unchecked = server.client(parameter_validation=False)
    expected = (
        "ValidationException",
        "1 validation error detected: Value at 'message' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096",
    )
    err = aws_error(unchecked.sign, KeyId=key, Message=b"x" * 4097, SigningAlgorithm="ECDSA_SHA_256")
    assert (err.code, err.message) == expected
    err = aws_error(
        unchecked.verify, KeyId=key, Message=b"x" * 4097, Signature=sig, SigningAlgorithm="ECDSA_SHA_256"
    )
    assert (err.code, err.message) == expected
    err = aws_error(unchecked.sign, KeyId=key, Message=b"m")
    assert (err.code, err.message) == (
        "ValidationException",
        "1 validation error detected: Value null at 'signingAlgorithm' failed to satisfy constraint: "
        "Member must not be null",
    )


@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [
        ("ECC_NIST_P256", "ECDSA_SHA_384"),
        ("ECC_NIST_P384", "ECDSA_SHA_256"),
        ("ECC_NIST_P256", "RSASSA_PSS_SHA_256"),
        ("RSA_2048", "ECDSA_SHA_256"),
        ("ECC_SECG_P256K1", "ECDSA_SHA_512"),
        ("ECC_NIST_EDWARDS25519", "ECDSA_SHA_512"),
        ("ML_DSA_44", "ED25519_SHA_512"),
        ("RSA_2048", "ML_DSA_SHAKE_256"),
        ("ECC_NIST_P256", "SM2DSA"),
    ],
)
def test_signing_algorithm_not_for_the_key_spec(kms: Any, bank: KeyBank, spec: str, algorithm: str) -> None:
    key = bank.key(spec, "SIGN_VERIFY")["KeyId"]
    err = aws_error(kms.sign, KeyId=key, Message=b"m", SigningAlgorithm=algorithm)
    assert (err.code, err.message) == (
        "InvalidKeyUsageException",
        f"Algorithm {algorithm} is incompatible with key spec {spec}.",
    )
    err = aws_error(kms.verify, KeyId=key, Message=b"m", Signature=b"s" * 64, SigningAlgorithm=algorithm)
    assert err.code == "InvalidKeyUsageException"


def test_message_type_rules_of_ed25519_and_ml_dsa(kms: Any, bank: KeyBank) -> None:
    ed = bank.key("ECC_NIST_EDWARDS25519", "SIGN_VERIFY")["KeyId"]
    err = aws_error(
        kms.sign, KeyId=ed, Message=os.urandom(64), MessageType="DIGEST", SigningAlgorithm="ED25519_SHA_512"
    )
    assert (err.code, err.message) == (
        "ValidationException",
        "Message type DIGEST is incompatible with algorithm ED25519_SHA_512.",
    )
    err = aws_error(kms.sign, KeyId=ed, Message=os.urandom(64), SigningAlgorithm="ED25519_PH_SHA_512")
    assert (err.code, err.message) == (
        "ValidationException",
        "Message type RAW is incompatible with algorithm ED25519_PH_SHA_512.",
    )
    ml = bank.key("ML_DSA_44", "SIGN_VERIFY")["KeyId"]
    err = aws_error(
        kms.sign, KeyId=ml, Message=os.urandom(32), MessageType="DIGEST", SigningAlgorithm="ML_DSA_SHAKE_256"
    )
    assert (err.code, err.message) == (
        "ValidationException",
        "Message type DIGEST is incompatible with algorithm ML_DSA_SHAKE_256.",
    )
    err = aws_error(
        kms.sign,
        KeyId=ml,
        Message=os.urandom(32),
        MessageType="EXTERNAL_MU",
        SigningAlgorithm="ML_DSA_SHAKE_256",
    )
    assert (err.code, err.message) == (
        "ValidationException",
        "Digest is invalid length for algorithm ML_DSA_SHAKE_256.",
    )
    err = aws_error(
        kms.verify,
        KeyId=ml,
        Message=os.urandom(65),
        MessageType="EXTERNAL_MU",
        Signature=b"s" * 2420,
        SigningAlgorithm="ML_DSA_SHAKE_256",
    )
    assert (err.code, err.message) == (
        "ValidationException",
        "Digest is invalid length for algorithm ML_DSA_SHAKE_256.",
    )
    ecc = bank.key("ECC_NIST_P256", "SIGN_VERIFY")["KeyId"]
    err = aws_error(
        kms.sign,
        KeyId=ecc,
        Message=os.urandom(64),
        MessageType="EXTERNAL_MU",
        SigningAlgorithm="ECDSA_SHA_256",
    )
    assert (err.code, err.message) == (
        "ValidationException",
        "Message type EXTERNAL_MU is incompatible with algorithm ECDSA_SHA_256.",
    )


ML_DSA_PUBLIC_KEY_BYTES = {"ML_DSA_44": 1312, "ML_DSA_65": 1952, "ML_DSA_87": 2592}
ML_DSA_SIGNATURE_BYTES = {"ML_DSA_44": 2420, "ML_DSA_65": 3309, "ML_DSA_87": 4627}


def external_mu(public_der: bytes, spec: str, message: bytes) -> bytes:
    """FIPS 204 μ of pure ML-DSA with an empty context, computed here with hashlib alone:
    μ = SHAKE256(SHAKE256(pk, 64) || 0x00 || 0x00 || M, 64); pk is the SPKI's BIT STRING content."""
    raw = public_der[-ML_DSA_PUBLIC_KEY_BYTES[spec] :]
    tr = hashlib.shake_256(raw).digest(64)
    return hashlib.shake_256(tr + b"\x00\x00" + message).digest(64)


@pytest.mark.parametrize("spec", sorted(ML_DSA_PUBLIC_KEY_BYTES))
def test_ml_dsa_external_mu(kms: Any, bank: KeyBank, spec: str) -> None:
    """A μ computed by the caller signs the message: the signature verifies as a plain ML-DSA
    signature of the message with only the public key, and KMS verifies either form."""
    key = bank.key(spec, "SIGN_VERIFY")
    public_der = bank.public_der(key["KeyId"])
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey)
    message = os.urandom(10_000)  # larger than Sign accepts as a RAW message (4096 bytes)
    mu = external_mu(public_der, spec, message)

    out = kms.sign(KeyId=key["KeyId"], Message=mu, MessageType="EXTERNAL_MU", SigningAlgorithm=ML_DSA)
    assert out["KeyId"] == key["Arn"] and out["SigningAlgorithm"] == ML_DSA
    signature = out["Signature"]
    assert len(signature) == ML_DSA_SIGNATURE_BYTES[spec]
    public.verify(signature, message)  # the whole message, μ computed by pyca's ML-DSA
    assert not offline_verify(public_der, ML_DSA, message + b"!", signature)

    ok = kms.verify(
        KeyId=key["KeyId"],
        Message=mu,
        MessageType="EXTERNAL_MU",
        Signature=signature,
        SigningAlgorithm=ML_DSA,
    )
    assert ok["SignatureValid"] is True and ok["SigningAlgorithm"] == ML_DSA

    # A RAW signature of a short message verifies in KMS as EXTERNAL_MU of the same message.
    short = b"openkms ml-dsa " + os.urandom(16)
    raw_sig = kms.sign(KeyId=key["KeyId"], Message=short, SigningAlgorithm=ML_DSA)["Signature"]
    assert kms.verify(
        KeyId=key["KeyId"],
        Message=external_mu(public_der, spec, short),
        MessageType="EXTERNAL_MU",
        Signature=raw_sig,
        SigningAlgorithm=ML_DSA,
    )["SignatureValid"]
    # ... and an EXTERNAL_MU signature verifies in KMS as RAW.
    mu_sig = kms.sign(
        KeyId=key["KeyId"],
        Message=external_mu(public_der, spec, short),
        MessageType="EXTERNAL_MU",
        SigningAlgorithm=ML_DSA,
    )["Signature"]
    assert kms.verify(KeyId=key["KeyId"], Message=short, Signature=mu_sig, SigningAlgorithm=ML_DSA)[
        "SignatureValid"
    ]

    # μ signed as a RAW message is hashed again: not a signature of the message.
    double = kms.sign(KeyId=key["KeyId"], Message=mu, MessageType="RAW", SigningAlgorithm=ML_DSA)["Signature"]
    assert not offline_verify(public_der, ML_DSA, message, double)
    # Another μ, a flipped bit: KMSInvalidSignatureException, never false.
    tampered = bytearray(signature)
    tampered[100] ^= 0x01
    other_mu = bytes([mu[0] ^ 1]) + mu[1:]
    for m, sig in ((other_mu, signature), (mu, bytes(tampered))):
        err = aws_error(
            kms.verify, KeyId=key["KeyId"], Message=m, MessageType="EXTERNAL_MU", Signature=sig,
            SigningAlgorithm=ML_DSA,
        )  # fmt: skip
        assert (err.code, err.message) == ("KMSInvalidSignatureException", "")


def test_ml_dsa_external_mu_with_the_aws_cli(server: Server, bank: KeyBank, tmp_path: Path) -> None:
    key = bank.key("ML_DSA_65", "SIGN_VERIFY")
    public_der = bank.public_der(key["KeyId"])
    message = os.urandom(50_000)
    mu_file = tmp_path / "mu.bin"
    mu_file.write_bytes(external_mu(public_der, "ML_DSA_65", message))
    out = json.loads(
        server.aws(
            "kms", "sign", "--key-id", key["KeyId"], "--message", f"fileb://{mu_file}", "--message-type",
            "EXTERNAL_MU", "--signing-algorithm", ML_DSA,
        ).stdout
    )  # fmt: skip
    signature = base64.b64decode(out["Signature"])
    assert offline_verify(public_der, ML_DSA, message, signature)
    sig_file = tmp_path / "sig.bin"
    sig_file.write_bytes(signature)
    verified = json.loads(
        server.aws(
            "kms", "verify", "--key-id", key["KeyId"], "--message", f"fileb://{mu_file}", "--message-type",
            "EXTERNAL_MU", "--signature", f"fileb://{sig_file}", "--signing-algorithm", ML_DSA,
        ).stdout
    )  # fmt: skip
    assert verified["SignatureValid"] is True


def test_sign_needs_a_sign_verify_key(kms: Any, bank: KeyBank) -> None:
    for spec, usage in (("RSA_2048", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "KEY_AGREEMENT")):
        key = bank.key(spec, usage)
        alg = "RSASSA_PSS_SHA_256" if spec.startswith("RSA") else "ECDSA_SHA_256"
        for name, op, extra in (("Sign", kms.sign, {}), ("Verify", kms.verify, {"Signature": b"s" * 64})):
            err = aws_error(op, KeyId=key["KeyId"], Message=b"m", SigningAlgorithm=alg, **extra)
            assert (err.code, err.message) == (
                "InvalidKeyUsageException",
                f"{key['Arn']} key usage is {usage} which is not valid for {name}.",
            )
    symmetric = kms.create_key()["KeyMetadata"]
    err = aws_error(kms.sign, KeyId=symmetric["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert err.message == f"{symmetric['Arn']} key usage is ENCRYPT_DECRYPT which is not valid for Sign."


def test_sign_through_alias_and_dry_run(kms: Any, bank: KeyBank) -> None:
    key = bank.key("ECC_NIST_P256", "SIGN_VERIFY")
    alias = f"alias/sign-{os.urandom(4).hex()}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    out = kms.sign(KeyId=alias, Message=b"a", SigningAlgorithm="ECDSA_SHA_256")
    assert out["KeyId"] == key["Arn"]
    assert (
        kms.verify(KeyId=alias, Message=b"a", Signature=out["Signature"], SigningAlgorithm="ECDSA_SHA_256")[
            "KeyId"
        ]
        == key["Arn"]
    )
    err = aws_error(kms.sign, KeyId=alias, Message=b"a", SigningAlgorithm="ECDSA_SHA_256", DryRun=True)
    assert err.code == "DryRunOperationException"
    err = aws_error(
        kms.verify,
        KeyId=alias,
        Message=b"a",
        Signature=out["Signature"],
        SigningAlgorithm="ECDSA_SHA_256",
        DryRun=True,
    )
    assert err.code == "DryRunOperationException"
    # A bad signature fails before DryRun: DryRun answers only requests that would succeed.
    err = aws_error(
        kms.verify,
        KeyId=alias,
        Message=b"b",
        Signature=out["Signature"],
        SigningAlgorithm="ECDSA_SHA_256",
        DryRun=True,
    )
    assert err.code == "KMSInvalidSignatureException"


# --- GetPublicKey ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "usage"), list(VALID_PAIRS))
def test_get_public_key(kms: Any, bank: KeyBank, spec: str, usage: str) -> None:
    key = bank.key(spec, usage)
    out = kms.get_public_key(KeyId=key["Arn"])
    member, algorithms = VALID_PAIRS[(spec, usage)]
    assert members(out) == {"KeyId", "PublicKey", "CustomerMasterKeySpec", "KeySpec", "KeyUsage", member}
    assert out["KeyId"] == key["Arn"]
    assert out["KeySpec"] == out["CustomerMasterKeySpec"] == spec and out["KeyUsage"] == usage
    assert out[member] == algorithms
    public = serialization.load_der_public_key(out["PublicKey"])  # DER SubjectPublicKeyInfo
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert der == out["PublicKey"]
    if spec.startswith("RSA"):
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == int(spec[4:])
    elif spec == "ECC_NIST_EDWARDS25519":
        assert isinstance(public, ed25519.Ed25519PublicKey)
    elif spec.startswith("ECC"):
        assert isinstance(public, ec.EllipticCurvePublicKey)
        curve = {"ECC_NIST_P256": "secp256r1", "ECC_NIST_P384": "secp384r1", "ECC_NIST_P521": "secp521r1"}
        assert public.curve.name == curve.get(spec, "secp256k1")


def test_get_public_key_refusals(kms: Any) -> None:
    for key in (
        kms.create_key()["KeyMetadata"],
        kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"],
    ):
        err = aws_error(kms.get_public_key, KeyId=key["KeyId"])
        assert err.code == "UnsupportedOperationException" and key["Arn"] in err.message


# --- RSA encryption ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "algorithm"), list(RSA_LIMITS))
def test_rsa_encryption_and_size_limits(kms: Any, bank: KeyBank, spec: str, algorithm: str) -> None:
    key = bank.key(spec, "ENCRYPT_DECRYPT")
    public = serialization.load_der_public_key(bank.public_der(key["KeyId"]))
    assert isinstance(public, rsa.RSAPublicKey)
    limit = RSA_LIMITS[(spec, algorithm)]
    biggest = os.urandom(limit)
    out = kms.encrypt(KeyId=key["KeyId"], Plaintext=biggest, EncryptionAlgorithm=algorithm)
    assert members(out) == {"CiphertextBlob", "KeyId", "EncryptionAlgorithm"}
    assert out["KeyId"] == key["Arn"] and out["EncryptionAlgorithm"] == algorithm
    assert len(out["CiphertextBlob"]) == public.key_size // 8  # the raw RSAES-OAEP output
    dec = kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=out["CiphertextBlob"], EncryptionAlgorithm=algorithm)
    assert members(dec) == {"KeyId", "Plaintext", "EncryptionAlgorithm"}
    assert dec["Plaintext"] == biggest and dec["KeyId"] == key["Arn"]
    err = aws_error(
        kms.encrypt, KeyId=key["KeyId"], Plaintext=os.urandom(limit + 1), EncryptionAlgorithm=algorithm
    )
    assert (err.code, err.message) == (
        "ValidationException",
        f"Algorithm {algorithm} and key spec {spec} cannot encrypt data larger than {limit} bytes.",
    )
    # Made offline with the public key (MGF1 hash = OAEP hash), decrypted by KMS.
    h = importing.oaep(algorithm)
    offline = public.encrypt(b"offline " + spec.encode(), h)
    dec = kms.decrypt(KeyId=key["Arn"], CiphertextBlob=offline, EncryptionAlgorithm=algorithm)
    assert dec["Plaintext"] == b"offline " + spec.encode()
    # The other OAEP algorithm does not decrypt it.
    other = RSA_ENCRYPTION[1 - RSA_ENCRYPTION.index(algorithm)]
    err = aws_error(kms.decrypt, KeyId=key["KeyId"], CiphertextBlob=offline, EncryptionAlgorithm=other)
    assert err.code == "InvalidCiphertextException"


def test_openssl_encrypts_for_kms(server: Server, bank: KeyBank, tmp_path: Path) -> None:
    key = bank.key("RSA_3072", "ENCRYPT_DECRYPT")
    pem = pem_file(tmp_path, bank.public_der(key["KeyId"]))
    (tmp_path / "pt").write_bytes(b"made by openssl")
    enc = run(
        "openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", str(pem), "-in", str(tmp_path / "pt"), "-out",
        str(tmp_path / "ct"), "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
        "-pkeyopt", "rsa_mgf1_md:sha256",
    )  # fmt: skip
    assert enc.returncode == 0, enc.stderr
    out = json.loads(
        server.aws(
            "kms", "decrypt", "--key-id", key["KeyId"], "--ciphertext-blob", f"fileb://{tmp_path / 'ct'}",
            "--encryption-algorithm", "RSAES_OAEP_SHA_256",
        ).stdout
    )  # fmt: skip
    assert base64.b64decode(out["Plaintext"]) == b"made by openssl"


def test_rsa_encryption_refusals(kms: Any, bank: KeyBank) -> None:
    key = bank.key("RSA_2048", "ENCRYPT_DECRYPT")
    kid = key["KeyId"]
    err = aws_error(kms.encrypt, KeyId=kid, Plaintext=b"p")
    assert (err.code, err.message) == (
        "InvalidKeyUsageException",
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.",
    )
    err = aws_error(kms.encrypt, KeyId=kid, Plaintext=b"p", EncryptionAlgorithm="SM2PKE")
    assert err.code == "InvalidKeyUsageException"
    err = aws_error(
        kms.encrypt,
        KeyId=kid,
        Plaintext=b"p",
        EncryptionAlgorithm="RSAES_OAEP_SHA_256",
        EncryptionContext={"a": "b"},
    )
    assert err.code == "ValidationException"
    blob = kms.encrypt(KeyId=kid, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    # Asymmetric ciphertexts carry no key id: Decrypt needs KeyId and EncryptionAlgorithm.
    err = aws_error(kms.decrypt, CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert err.code == "InvalidCiphertextException"
    err = aws_error(kms.decrypt, CiphertextBlob=blob, KeyId=kid)
    assert (err.code, err.message) == ("IncorrectKeyException", INCORRECT_KEY)
    err = aws_error(
        kms.decrypt,
        CiphertextBlob=blob,
        KeyId=kid,
        EncryptionAlgorithm="RSAES_OAEP_SHA_256",
        EncryptionContext={"a": "b"},
    )
    assert err.code == "ValidationException"
    err = aws_error(
        kms.decrypt, CiphertextBlob=os.urandom(256), KeyId=kid, EncryptionAlgorithm="RSAES_OAEP_SHA_256"
    )
    assert err.code == "InvalidCiphertextException"
    err = aws_error(
        kms.decrypt, CiphertextBlob=blob[:-1], KeyId=kid, EncryptionAlgorithm="RSAES_OAEP_SHA_256"
    )
    assert err.code == "InvalidCiphertextException"
    # A signing key cannot encrypt or decrypt; GenerateDataKey needs a symmetric key.
    signer = bank.key("RSA_2048", "SIGN_VERIFY")
    err = aws_error(
        kms.encrypt, KeyId=signer["KeyId"], Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256"
    )
    assert err.message == f"{signer['Arn']} key usage is SIGN_VERIFY which is not valid for Encrypt."
    err = aws_error(
        kms.decrypt, KeyId=signer["KeyId"], CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256"
    )
    assert err.message == f"{signer['Arn']} key usage is SIGN_VERIFY which is not valid for Decrypt."
    err = aws_error(kms.generate_data_key, KeyId=kid, KeySpec="AES_256")
    assert err.code == "InvalidKeyUsageException"
    # A symmetric key refuses the RSA algorithms.
    sym = kms.create_key()["KeyMetadata"]["KeyId"]
    err = aws_error(kms.encrypt, KeyId=sym, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert (err.code, err.message) == (
        "InvalidKeyUsageException",
        "Algorithm RSAES_OAEP_SHA_1 is incompatible with key spec SYMMETRIC_DEFAULT.",
    )


def test_rsa_encrypt_dry_run(kms: Any, bank: KeyBank) -> None:
    kid = bank.key("RSA_2048", "ENCRYPT_DECRYPT")["KeyId"]
    err = aws_error(
        kms.encrypt, KeyId=kid, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256", DryRun=True
    )
    assert err.code == "DryRunOperationException"
    err = aws_error(
        kms.encrypt, KeyId=kid, Plaintext=b"p" * 191, EncryptionAlgorithm="RSAES_OAEP_SHA_256", DryRun=True
    )
    assert err.code == "ValidationException"


def test_re_encrypt_between_rsa_and_symmetric_keys(kms: Any, bank: KeyBank) -> None:
    r1 = bank.key("RSA_2048", "ENCRYPT_DECRYPT")
    r2 = bank.key("RSA_3072", "ENCRYPT_DECRYPT")
    sym = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=r1["KeyId"], Plaintext=b"travels", EncryptionAlgorithm="RSAES_OAEP_SHA_1")[
        "CiphertextBlob"
    ]
    # RSA -> RSA: exactly five members.
    out = kms.re_encrypt(
        CiphertextBlob=blob, SourceKeyId=r1["KeyId"], SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1",
        DestinationKeyId=r2["KeyId"], DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )  # fmt: skip
    assert members(out) == RE_ENCRYPT_RSA_MEMBERS
    assert (out["SourceKeyId"], out["KeyId"]) == (r1["Arn"], r2["Arn"])
    assert len(out["CiphertextBlob"]) == 384
    dec = kms.decrypt(
        KeyId=r2["KeyId"], CiphertextBlob=out["CiphertextBlob"], EncryptionAlgorithm="RSAES_OAEP_SHA_256"
    )
    assert dec["Plaintext"] == b"travels"
    # RSA -> symmetric (with a destination context) and back.
    out = kms.re_encrypt(
        CiphertextBlob=blob, SourceKeyId=r1["KeyId"], SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1",
        DestinationKeyId=sym["KeyId"], DestinationEncryptionContext={"k": "v"},
    )  # fmt: skip
    assert members(out) == RE_ENCRYPT_RSA_MEMBERS | {"DestinationKeyMaterialId"}
    assert (
        kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"k": "v"})["Plaintext"]
        == b"travels"
    )
    back = kms.re_encrypt(
        CiphertextBlob=out["CiphertextBlob"],
        SourceEncryptionContext={"k": "v"},
        DestinationKeyId=r1["KeyId"],
        DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )
    assert members(back) == RE_ENCRYPT_RSA_MEMBERS | {"SourceKeyMaterialId"}
    dec = kms.decrypt(
        KeyId=r1["KeyId"], CiphertextBlob=back["CiphertextBlob"], EncryptionAlgorithm="RSAES_OAEP_SHA_256"
    )
    assert dec["Plaintext"] == b"travels"
    # Destination RSA: its size limit and no encryption context.
    big = kms.encrypt(KeyId=sym["KeyId"], Plaintext=os.urandom(300))["CiphertextBlob"]
    err = aws_error(
        kms.re_encrypt,
        CiphertextBlob=big,
        DestinationKeyId=r1["KeyId"],
        DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )
    assert err.code == "ValidationException" and "cannot encrypt data larger than 190 bytes" in err.message
    # A signing key as destination.
    signer = bank.key("ECC_NIST_P256", "SIGN_VERIFY")
    err = aws_error(kms.re_encrypt, CiphertextBlob=big, DestinationKeyId=signer["KeyId"])
    assert err.code == "InvalidKeyUsageException"


# --- imported key material --------------------------------------------------------------------------------


def _pkcs8(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def _import(kms: Any, spec: str, usage: str, private: Any) -> dict[str, Any]:
    key = kms.create_key(KeySpec=spec, KeyUsage=usage, Origin="EXTERNAL")["KeyMetadata"]
    assert key["KeyState"] == "PendingImport"
    importing.import_material(kms, key["KeyId"], _pkcs8(private), "RSA_AES_KEY_WRAP_SHA_256", "RSA_3072")
    return dict(kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"])


IMPORT_CASES = [
    (
        "RSA_2048",
        lambda: rsa.generate_private_key(65537, 2048),
        ["RSASSA_PSS_SHA_384", "RSASSA_PKCS1_V1_5_SHA_256"],
    ),
    ("ECC_NIST_P256", lambda: ec.generate_private_key(ec.SECP256R1()), ["ECDSA_SHA_256"]),
    ("ECC_NIST_P521", lambda: ec.generate_private_key(ec.SECP521R1()), ["ECDSA_SHA_512"]),
    ("ECC_SECG_P256K1", lambda: ec.generate_private_key(ec.SECP256K1()), ["ECDSA_SHA_256"]),
    ("ECC_NIST_EDWARDS25519", ed25519.Ed25519PrivateKey.generate, ["ED25519_SHA_512", "ED25519_PH_SHA_512"]),
]


@pytest.mark.parametrize(("spec", "make", "algorithms"), IMPORT_CASES, ids=[c[0] for c in IMPORT_CASES])
def test_imported_signing_keys(kms: Any, spec: str, make: Any, algorithms: list[str]) -> None:
    private = make()
    key = _import(kms, spec, "SIGN_VERIFY", private)
    assert key["KeyState"] == "Enabled" and key["Origin"] == "EXTERNAL"
    local_public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert kms.get_public_key(KeyId=key["KeyId"])["PublicKey"] == local_public
    for algorithm in algorithms:
        message = b"imported " + os.urandom(16)
        mtype = "DIGEST" if algorithm == "ED25519_PH_SHA_512" else "RAW"
        if mtype == "DIGEST":
            message = hashlib.sha512(message).digest()
        sig = kms.sign(KeyId=key["KeyId"], Message=message, MessageType=mtype, SigningAlgorithm=algorithm)[
            "Signature"
        ]
        assert offline_verify(local_public, algorithm, message, sig)
        # A signature made locally with the private key verifies in KMS.
        if isinstance(private, rsa.RSAPrivateKey):
            h = importing.hashes.SHA384() if "384" in algorithm else importing.hashes.SHA256()
            pad = (
                padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
                if "PSS" in algorithm
                else padding.PKCS1v15()
            )
            local = private.sign(message, pad, h)
        elif isinstance(private, ec.EllipticCurvePrivateKey):
            h = importing.hashes.SHA512() if algorithm.endswith("512") else importing.hashes.SHA256()
            local = private.sign(message, ec.ECDSA(h))
        elif algorithm == "ED25519_SHA_512":
            local = private.sign(message)
        else:
            local = sig  # Ed25519ph: pyca cryptography cannot sign it; checked offline above
        ok = kms.verify(
            KeyId=key["KeyId"],
            Message=message,
            MessageType=mtype,
            Signature=local,
            SigningAlgorithm=algorithm,
        )
        assert ok["SignatureValid"] is True


def test_imported_rsa_encryption_key_both_ways(kms: Any) -> None:
    private = rsa.generate_private_key(65537, 2048)
    key = _import(kms, "RSA_2048", "ENCRYPT_DECRYPT", private)
    for algorithm in RSA_ENCRYPTION:
        blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"to the owner", EncryptionAlgorithm=algorithm)[
            "CiphertextBlob"
        ]
        assert private.decrypt(blob, importing.oaep(algorithm)) == b"to the owner"  # decrypted outside KMS
        local = private.public_key().encrypt(b"from outside", importing.oaep(algorithm))
        assert (
            kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=local, EncryptionAlgorithm=algorithm)["Plaintext"]
            == b"from outside"
        )


def test_imported_material_must_match_the_key_spec(kms: Any, tmp_path: Path) -> None:
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Origin="EXTERNAL")["KeyMetadata"][
        "KeyId"
    ]
    p384 = ec.generate_private_key(ec.SECP384R1())
    p256 = ec.generate_private_key(ec.SECP256R1())
    sec1 = p256.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    explicit = openssl_pkcs8(tmp_path, "EC", "ec_paramgen_curve:P-256", "ec_param_enc:explicit")
    for bad in (_pkcs8(p384), bytes(sec1), explicit, _pkcs8(p256) + b"\x00"):
        with pytest.raises(Exception) as info:
            importing.import_material(kms, key, bad, "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")
        assert info.value.response["Error"]["Code"] == "IncorrectKeyMaterialException"  # type: ignore[attr-defined]
    rsa_key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY", Origin="EXTERNAL")["KeyMetadata"][
        "KeyId"
    ]
    three = openssl_pkcs8(tmp_path, "RSA", "rsa_keygen_bits:2048", "rsa_keygen_primes:3")
    for bad in (three, _pkcs8(rsa.generate_private_key(65537, 3072))):
        with pytest.raises(Exception) as info:
            importing.import_material(kms, rsa_key, bad, "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")
        assert info.value.response["Error"]["Code"] == "IncorrectKeyMaterialException"  # type: ignore[attr-defined]


# --- key states and audit -------------------------------------------------------------------------------


def test_key_states_of_asymmetric_operations(kms: Any) -> None:
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    crypt = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    sig = kms.sign(KeyId=signer["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    blob = kms.encrypt(KeyId=crypt["KeyId"], Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_1")[
        "CiphertextBlob"
    ]
    calls = [
        (signer, lambda k: kms.sign(KeyId=k, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")),
        (
            signer,
            lambda k: kms.verify(KeyId=k, Message=b"m", Signature=sig, SigningAlgorithm="ECDSA_SHA_256"),
        ),
        (signer, lambda k: kms.get_public_key(KeyId=k)),
        (crypt, lambda k: kms.get_public_key(KeyId=k)),
        (crypt, lambda k: kms.encrypt(KeyId=k, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_1")),
        (crypt, lambda k: kms.decrypt(KeyId=k, CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_1")),
    ]
    for key in (signer, crypt):
        kms.disable_key(KeyId=key["KeyId"])
    for key, call in calls:
        err = aws_error(call, k=key["KeyId"])
        assert (err.code, err.message) == ("DisabledException", f"{key['Arn']} is disabled.")
    for key in (signer, crypt):
        kms.enable_key(KeyId=key["KeyId"])
    for key, call in calls:
        call(key["KeyId"])
    for key in (signer, crypt):
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    for key, call in calls:
        err = aws_error(call, k=key["KeyId"])
        assert (err.code, err.message) == ("KMSInvalidStateException", f"{key['Arn']} is pending deletion.")
    # A key whose material was never imported.
    pending = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Origin="EXTERNAL")[
        "KeyMetadata"
    ]
    for call in (calls[0][1], calls[1][1], calls[2][1]):
        err = aws_error(call, k=pending["KeyId"])
        assert (err.code, err.message) == ("KMSInvalidStateException", f"{pending['Arn']} is pending import.")


def test_audit_records_never_hold_signatures_or_plaintexts(server: Server, kms: Any) -> None:
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    secret_message = b"audit-secret-" + os.urandom(8).hex().encode()
    sig = kms.sign(KeyId=key["KeyId"], Message=secret_message, SigningAlgorithm="ECDSA_SHA_256")
    kms.verify(
        KeyId=key["KeyId"],
        Message=secret_message,
        Signature=sig["Signature"],
        SigningAlgorithm="ECDSA_SHA_256",
    )
    public = kms.get_public_key(KeyId=key["KeyId"])
    aws_error(
        kms.verify,
        KeyId=key["KeyId"],
        Message=b"other",
        Signature=sig["Signature"],
        SigningAlgorithm="ECDSA_SHA_256",
    )
    records = wait_for_audit(server, ("--key-id", key["KeyId"]), lambda r: len(r) >= 5)
    names = sorted(r["eventName"] for r in records)
    assert names == ["CreateKey", "GetPublicKey", "Sign", "Verify", "Verify"]
    text = json.dumps(records)
    for secret in (secret_message, sig["Signature"], public["PublicKey"]):
        assert base64.b64encode(secret).decode() not in text
    assert secret_message.decode() not in text
    signs = [r for r in records if r["eventName"] == "Sign"]
    assert signs[0]["requestParameters"] == {
        "keyId": key["KeyId"],
        "messageType": "RAW",
        "signingAlgorithm": "ECDSA_SHA_256",
    } or signs[0]["requestParameters"] == {"keyId": key["KeyId"], "signingAlgorithm": "ECDSA_SHA_256"}
    for r in records:
        if r["eventName"] in ("Sign", "Verify", "GetPublicKey"):
            assert r.get("responseElements") is None
            assert r["readOnly"] is True
            assert r["resources"][0]["ARN"] == key["Arn"]
    failed = [r for r in records if r.get("errorCode")]
    assert [r["errorCode"] for r in failed] == ["KMSInvalidSignatureException"]
