"""Key material import into every key type AWS lets you import into (reference §1.2 to §1.7): HMAC, RSA
(ENCRYPT_DECRYPT and SIGN_VERIFY), ECC (NIST curves for SIGN_VERIFY and KEY_AGREEMENT, secp256k1,
Ed25519). Material is made locally with pyca ``cryptography`` (and openssl, as AWS's guide does) and
wrapped with only the wrapping public key; after import, every output of the key is checked against
the local private key: GetPublicKey, signatures both ways, MACs, RSA decryption, ECDH.

Symmetric (SYMMETRIC_DEFAULT) import is covered in ``test_import.py`` and not repeated here.

Run time: local private keys are generated once per module (:class:`LocalKeys`), and the wrapping
matrix is a covering set rather than the full cross product (see :data:`ROUND_TRIPS`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from Crypto.Hash import SHA512
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from tests.e2e.asym import ECDSA_BY_SPEC, RSA_SIGNING, hash_of, offline_verify
from tests.e2e.importing import import_material, oaep, openssl_wrap, params, wrap
from tests.e2e.util import aws_error, members

OAEP_SHA_1, OAEP_SHA_256 = "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"
KW_SHA_1, KW_SHA_256 = "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"
ALGORITHMS = (OAEP_SHA_1, OAEP_SHA_256, KW_SHA_1, KW_SHA_256)
WRAPPING_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096")
HMAC_SPECS = {
    "HMAC_224": ("HMAC_SHA_224", 28, hashlib.sha224),
    "HMAC_256": ("HMAC_SHA_256", 32, hashlib.sha256),
    "HMAC_384": ("HMAC_SHA_384", 48, hashlib.sha384),
    "HMAC_512": ("HMAC_SHA_512", 64, hashlib.sha512),
}
RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}
DOES_NOT_EXPIRE = {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}
MESSAGE = b"imported key material, checked from outside"

#: (KeySpec, KeyUsage, WrappingAlgorithm, WrappingKeySpec) imported and checked end to end.
#:
#: A covering set, not the full cross product (which would cost ~100 imports and ~30 RSA-4096 wrapping
#: key pairs per backend). Every key spec and usage appears; every allowed wrapping algorithm and every
#: wrapping key spec appears for each material family; for RSA and ECC material every (algorithm x
#: wrapping key spec) pair appears exactly once (``_coverage_is_complete`` checks these claims):
#:
#: * HMAC (4 x HMAC_*): each of the four algorithms once, over all three wrapping specs (HMAC material
#:   is raw bytes like symmetric material, whose full matrix ``test_import.py`` runs);
#: * RSA (3 x RSA_* x {ENCRYPT_DECRYPT, SIGN_VERIFY}; only RSA_AES_KEY_WRAP_* is allowed): the 2 x 3
#:   (algorithm x wrapping spec) matrix exactly, every key spec with both algorithms;
#: * ECC (P-256/P-384/P-521 x {SIGN_VERIFY, KEY_AGREEMENT}, secp256k1, Ed25519): the full 4 x 3 matrix,
#:   every key spec with two or more algorithms, and the OAEP capacity edges: a P-384 PKCS#8 key (185
#:   bytes) under RSA_2048 + RSAES_OAEP_SHA_256 (190 bytes of room), P-521 under RSA_3072 + OAEP, and
#:   P-521 under RSA_2048 through RSA_AES_KEY_WRAP (the way around the refused RSA_2048 + OAEP).
#:
#: RSA_4096 wrapping key pairs (the slow ones) are used 7 times per backend.
ROUND_TRIPS = [
    ("HMAC_224", "GENERATE_VERIFY_MAC", OAEP_SHA_1, "RSA_2048"),
    ("HMAC_256", "GENERATE_VERIFY_MAC", OAEP_SHA_256, "RSA_3072"),
    ("HMAC_384", "GENERATE_VERIFY_MAC", KW_SHA_1, "RSA_4096"),
    ("HMAC_512", "GENERATE_VERIFY_MAC", KW_SHA_256, "RSA_2048"),
    ("RSA_2048", "ENCRYPT_DECRYPT", KW_SHA_1, "RSA_2048"),
    ("RSA_2048", "SIGN_VERIFY", KW_SHA_256, "RSA_3072"),
    ("RSA_3072", "ENCRYPT_DECRYPT", KW_SHA_256, "RSA_2048"),
    ("RSA_3072", "SIGN_VERIFY", KW_SHA_1, "RSA_4096"),
    ("RSA_4096", "ENCRYPT_DECRYPT", KW_SHA_1, "RSA_3072"),
    ("RSA_4096", "SIGN_VERIFY", KW_SHA_256, "RSA_4096"),
    ("ECC_NIST_P256", "SIGN_VERIFY", OAEP_SHA_1, "RSA_2048"),
    ("ECC_NIST_P256", "SIGN_VERIFY", KW_SHA_1, "RSA_3072"),
    ("ECC_NIST_P256", "KEY_AGREEMENT", KW_SHA_256, "RSA_3072"),
    ("ECC_NIST_P384", "SIGN_VERIFY", OAEP_SHA_256, "RSA_2048"),
    ("ECC_NIST_P384", "KEY_AGREEMENT", KW_SHA_1, "RSA_4096"),
    ("ECC_NIST_P521", "SIGN_VERIFY", OAEP_SHA_1, "RSA_3072"),
    ("ECC_NIST_P521", "SIGN_VERIFY", KW_SHA_256, "RSA_2048"),
    ("ECC_NIST_P521", "KEY_AGREEMENT", OAEP_SHA_256, "RSA_4096"),
    ("ECC_SECG_P256K1", "SIGN_VERIFY", KW_SHA_1, "RSA_2048"),
    ("ECC_SECG_P256K1", "SIGN_VERIFY", OAEP_SHA_256, "RSA_3072"),
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", KW_SHA_256, "RSA_4096"),
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", OAEP_SHA_1, "RSA_4096"),
]


def _coverage_is_complete() -> None:
    """The covering claims of :data:`ROUND_TRIPS` hold (checked at import time)."""
    families = {"HMAC": "HMAC_", "RSA": "RSA_", "ECC": "ECC_"}
    for family, prefix in families.items():
        cases = [c for c in ROUND_TRIPS if c[0].startswith(prefix)]
        allowed = (KW_SHA_1, KW_SHA_256) if family == "RSA" else ALGORITHMS
        pairs = {(c[2], c[3]) for c in cases}
        if family == "HMAC":
            assert {c[2] for c in cases} == set(allowed) and {c[3] for c in cases} == set(WRAPPING_SPECS)
        else:
            assert pairs == {(a, s) for a in allowed for s in WRAPPING_SPECS}, family
    specs = {(c[0], c[1]) for c in ROUND_TRIPS}
    assert specs == {
        *((s, "GENERATE_VERIFY_MAC") for s in HMAC_SPECS),
        *((s, u) for s in RSA_BITS for u in ("ENCRYPT_DECRYPT", "SIGN_VERIFY")),
        *((s, u) for s in ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521")
          for u in ("SIGN_VERIFY", "KEY_AGREEMENT")),
        ("ECC_SECG_P256K1", "SIGN_VERIFY"),
        ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
    }  # fmt: skip


_coverage_is_complete()


# --- local key material -------------------------------------------------------------------------------


def pkcs8(private: PrivateKeyTypes) -> bytes:
    return private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def spki(private: PrivateKeyTypes) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class LocalKeys:
    """Private keys generated once per module, by key spec and index (index 1 = another key)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, int], Any] = {}

    def private(self, spec: str, index: int = 0) -> Any:
        if (spec, index) not in self._keys:
            if spec in RSA_BITS:
                key: Any = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS[spec])
            elif spec in CURVES:
                key = ec.generate_private_key(CURVES[spec]())
            elif spec == "ECC_NIST_EDWARDS25519":
                key = ed25519.Ed25519PrivateKey.generate()
            elif spec in HMAC_SPECS:
                key = os.urandom(HMAC_SPECS[spec][1])
            else:
                raise AssertionError(spec)
            self._keys[(spec, index)] = key
        return self._keys[(spec, index)]

    def material(self, spec: str, index: int = 0) -> bytes:
        key = self.private(spec, index)
        return key if isinstance(key, bytes) else pkcs8(key)


@pytest.fixture(scope="module")
def local() -> LocalKeys:
    return LocalKeys()


def external_key(kms: Any, spec: str, usage: str) -> dict[str, Any]:
    md: dict[str, Any] = kms.create_key(KeySpec=spec, KeyUsage=usage, Origin="EXTERNAL")["KeyMetadata"]
    assert md["KeyState"] == "PendingImport"
    return md


def default_algorithm(spec: str) -> str:
    """A wrapping algorithm that can carry material of ``spec``."""
    return KW_SHA_256 if spec.startswith("RSA_") else OAEP_SHA_256


def attempt(kms: Any, key_id: str, p: dict[str, Any], algorithm: str, material: bytes, **extra: Any) -> Any:
    """ImportKeyMaterial with a given parameter set (which a refused import leaves usable)."""
    return kms.import_key_material(
        KeyId=key_id,
        ImportToken=p["ImportToken"],
        EncryptedKeyMaterial=wrap(algorithm, p["PublicKey"], material),
        **{**DOES_NOT_EXPIRE, **extra},
    )


def state(kms: Any, key_id: str) -> str:
    return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])


# --- local signing ---------------------------------------------------------------------------------------


def signing_algorithms(spec: str) -> list[str]:
    if spec in RSA_BITS:
        return list(RSA_SIGNING)
    if spec in CURVES:
        return [ECDSA_BY_SPEC[spec]]
    return ["ED25519_SHA_512", "ED25519_PH_SHA_512"]


def signed_message(algorithm: str) -> tuple[bytes, str]:
    """(Message, MessageType) to sign: Ed25519ph takes a SHA-512 digest (MessageType DIGEST), which
    the scheme hashes once more; every other algorithm here signs the raw message."""
    if algorithm == "ED25519_PH_SHA_512":
        return hashlib.sha512(MESSAGE).digest(), "DIGEST"
    return MESSAGE, "RAW"


def local_sign(private: Any, algorithm: str, message: bytes) -> bytes:
    """An AWS-format signature made with the local private key."""
    if algorithm.startswith("RSASSA_"):
        h = hash_of(algorithm)
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
            if "_PSS_" in algorithm
            else padding.PKCS1v15()
        )
        return bytes(private.sign(message, pad, h))
    if algorithm.startswith("ECDSA_"):
        return bytes(private.sign(message, ec.ECDSA(hash_of(algorithm))))
    if algorithm == "ED25519_SHA_512":
        return bytes(private.sign(message))
    if algorithm == "ED25519_PH_SHA_512":  # RFC 8032 Ed25519ph (pycryptodome; pyca has none)
        return bytes(eddsa.new(ECC.import_key(pkcs8(private)), "rfc8032").sign(SHA512.new(message)))
    raise AssertionError(algorithm)


def check_key_works(kms: Any, local: LocalKeys, key: dict[str, Any], spec: str, usage: str) -> dict[str, Any]:
    """Every output of the imported key agrees with the local key; returns artifacts made by KMS
    (signatures, MACs, ciphertexts) for later checks."""
    key_id = key["KeyId"]
    made: dict[str, Any] = {}
    if usage == "GENERATE_VERIFY_MAC":
        algorithm, _, digestmod = HMAC_SPECS[spec]
        material = local.material(spec)
        expected = hmac.new(material, MESSAGE, digestmod).digest()
        mac = kms.generate_mac(KeyId=key_id, Message=MESSAGE, MacAlgorithm=algorithm)["Mac"]
        assert mac == expected
        ok = kms.verify_mac(KeyId=key_id, Message=MESSAGE, Mac=expected, MacAlgorithm=algorithm)
        assert ok["MacValid"] is True
        made["mac"] = mac
        return made
    private = local.private(spec)
    public = kms.get_public_key(KeyId=key_id)
    assert public["PublicKey"] == spki(private)
    assert (public["KeySpec"], public["KeyUsage"]) == (spec, usage)
    if usage == "SIGN_VERIFY":
        made["signatures"] = {}
        for algorithm in signing_algorithms(spec):
            message, message_type = signed_message(algorithm)
            signature = kms.sign(
                KeyId=key_id, Message=message, MessageType=message_type, SigningAlgorithm=algorithm
            )["Signature"]
            assert offline_verify(spki(private), algorithm, message, signature), algorithm
            mine = local_sign(private, algorithm, message)
            out = kms.verify(
                KeyId=key_id,
                Message=message,
                MessageType=message_type,
                Signature=mine,
                SigningAlgorithm=algorithm,
            )
            assert out["SignatureValid"] is True, algorithm
            made["signatures"][algorithm] = signature
    elif usage == "ENCRYPT_DECRYPT":
        made["ciphertexts"] = {}
        for algorithm in (OAEP_SHA_1, OAEP_SHA_256):
            blob = private.public_key().encrypt(MESSAGE, oaep(algorithm))
            out = kms.decrypt(KeyId=key_id, CiphertextBlob=blob, EncryptionAlgorithm=algorithm)
            assert out["Plaintext"] == MESSAGE, algorithm
            theirs = kms.encrypt(KeyId=key_id, Plaintext=MESSAGE, EncryptionAlgorithm=algorithm)
            assert private.decrypt(theirs["CiphertextBlob"], oaep(algorithm)) == MESSAGE
            made["ciphertexts"][algorithm] = theirs["CiphertextBlob"]
    elif usage == "KEY_AGREEMENT":
        peer = ec.generate_private_key(CURVES[spec]())
        out = kms.derive_shared_secret(KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=spki(peer))
        assert out["SharedSecret"] == private.exchange(ec.ECDH(), peer.public_key())
        assert out["SharedSecret"] == peer.exchange(ec.ECDH(), private.public_key())
        assert out["KeyOrigin"] == "EXTERNAL"
        made["peer"] = peer
        made["secret"] = out["SharedSecret"]
    else:
        raise AssertionError(usage)
    return made


# --- 1. every key type round trips ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "usage", "algorithm", "wrapping_spec"),
    ROUND_TRIPS,
    ids=[f"{s}-{u}-{a}-{w}" for s, u, a, w in ROUND_TRIPS],
)
def test_round_trip(
    kms: Any, local: LocalKeys, spec: str, usage: str, algorithm: str, wrapping_spec: str
) -> None:
    key = external_key(kms, spec, usage)
    p = params(kms, key["KeyId"], algorithm, wrapping_spec)
    assert p["KeyId"] == key["Arn"]
    wrapping_public = serialization.load_der_public_key(p["PublicKey"])
    assert isinstance(wrapping_public, rsa.RSAPublicKey)
    assert wrapping_public.key_size == RSA_BITS[wrapping_spec]
    imported = attempt(kms, key["KeyId"], p, algorithm, local.material(spec))
    # 5. The response of an asymmetric/HMAC import is the key ARN only (no KeyMaterialId), and
    # DescribeKey shows no CurrentKeyMaterialId for these keys either.
    assert members(imported) == {"KeyId"}
    assert imported["KeyId"] == key["Arn"]
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["Enabled"] is True and md["Origin"] == "EXTERNAL"
    assert md["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "CurrentKeyMaterialId" not in md and "ValidTo" not in md
    check_key_works(kms, local, key, spec, usage)


@pytest.mark.parametrize("spec", list(HMAC_SPECS))
def test_hmac_material_length_bounds(kms: Any, spec: str) -> None:
    """HMAC material: from the spec's size up to 1024 bits (128 bytes); one byte outside is refused."""
    algorithm, minimum, digestmod = HMAC_SPECS[spec]
    refused = ("IncorrectKeyMaterialException", f"The key material is not valid for key spec {spec}.")
    for length in (minimum, 128):
        key = external_key(kms, spec, "GENERATE_VERIFY_MAC")
        p = params(kms, key["KeyId"], OAEP_SHA_256, "RSA_2048")
        for bad in (minimum - 1, 129):
            err = aws_error(
                attempt, kms=kms, key_id=key["KeyId"], p=p, algorithm=OAEP_SHA_256, material=os.urandom(bad)
            )
            assert (err.code, err.message) == refused, bad
            assert state(kms, key["KeyId"]) == "PendingImport"
        material = os.urandom(length)
        attempt(kms, key["KeyId"], p, OAEP_SHA_256, material)
        mac = kms.generate_mac(KeyId=key["KeyId"], Message=MESSAGE, MacAlgorithm=algorithm)["Mac"]
        assert mac == hmac.new(material, MESSAGE, digestmod).digest(), length


def _openssl(*args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=stdin, check=True, capture_output=True).stdout


def test_aws_guide_openssl_material_and_wrapping(kms: Any, tmp_path: Path) -> None:
    """As AWS's guide does it: openssl generates the private key, converts it to PKCS#8 DER and wraps
    it (RSA_AES_KEY_WRAP for RSA, OAEP for ECC); KMS signatures verify with the openssl key."""
    for spec, usage, gen, algorithm in (
        ("RSA_2048", "SIGN_VERIFY", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], KW_SHA_256),
        (
            "ECC_NIST_P256",
            "SIGN_VERIFY",
            ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            OAEP_SHA_1,
        ),
        ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", ["-algorithm", "ED25519"], KW_SHA_1),
    ):
        work = tmp_path / spec
        work.mkdir()
        pem = work / "private.pem"
        _openssl("genpkey", *gen, "-out", str(pem))
        der = work / "PlaintextKeyMaterial.der"
        _openssl(
            "pkcs8",
            "-topk8",
            "-inform",
            "PEM",
            "-outform",
            "DER",
            "-nocrypt",
            "-in",
            str(pem),
            "-out",
            str(der),
        )
        key = external_key(kms, spec, usage)
        p = params(kms, key["KeyId"], algorithm, "RSA_2048")
        wrapped = openssl_wrap(work, algorithm, p["PublicKey"], der)
        kms.import_key_material(
            KeyId=key["KeyId"],
            ImportToken=p["ImportToken"],
            EncryptedKeyMaterial=wrapped.read_bytes(),
            **DOES_NOT_EXPIRE,
        )
        public_der = _openssl("pkey", "-in", str(pem), "-pubout", "-outform", "DER")
        assert kms.get_public_key(KeyId=key["KeyId"])["PublicKey"] == public_der
        algorithm_name = signing_algorithms(spec)[0]
        signature = kms.sign(KeyId=key["KeyId"], Message=MESSAGE, SigningAlgorithm=algorithm_name)[
            "Signature"
        ]
        assert offline_verify(public_der, algorithm_name, MESSAGE, signature)


def test_ec_material_encodings_aws_accepts(kms: Any, local: LocalKeys, tmp_path: Path) -> None:
    """PKCS#8 EC keys whose embedded public point is compressed, or absent: KMS derives the public
    key; GetPublicKey is the (uncompressed) SubjectPublicKeyInfo of the same key pair."""
    private = local.private("ECC_NIST_P256")
    pem = tmp_path / "k.pem"
    pem.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    compressed = _openssl("ec", "-in", str(pem), "-conv_form", "compressed", "-outform", "DER")
    no_public = _openssl("ec", "-in", str(pem), "-no_public", "-outform", "DER")
    for traditional in (compressed, no_public):
        material = _openssl(
            "pkcs8", "-topk8", "-nocrypt", "-inform", "DER", "-outform", "DER", stdin=traditional
        )
        assert material != pkcs8(private)
        key = external_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")
        import_material(kms, key["KeyId"], material, OAEP_SHA_256, "RSA_2048")
        check_key_works(kms, local, key, "ECC_NIST_P256", "SIGN_VERIFY")


# --- 2. refused wrapping choices and key specs -----------------------------------------------------------


def test_rsa_material_refuses_oaep_wrapping(kms: Any) -> None:
    for spec in RSA_BITS:
        for usage in ("ENCRYPT_DECRYPT", "SIGN_VERIFY"):
            key = external_key(kms, spec, usage)
            for algorithm in (OAEP_SHA_1, OAEP_SHA_256):
                for wrapping_spec in WRAPPING_SPECS:
                    err = aws_error(
                        kms.get_parameters_for_import,
                        KeyId=key["KeyId"], WrappingAlgorithm=algorithm, WrappingKeySpec=wrapping_spec,
                    )  # fmt: skip
                    assert (err.code, err.message) == (
                        "ValidationException",
                        f"Wrapping algorithm {algorithm} cannot wrap {spec} key material. "
                        "Use RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1.",
                    )
                    assert err.status == 400


def test_p521_refuses_oaep_with_rsa_2048(kms: Any) -> None:
    for usage in ("SIGN_VERIFY", "KEY_AGREEMENT"):
        key = external_key(kms, "ECC_NIST_P521", usage)
        for algorithm in (OAEP_SHA_1, OAEP_SHA_256):
            err = aws_error(
                kms.get_parameters_for_import,
                KeyId=key["KeyId"], WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_2048",
            )  # fmt: skip
            assert (err.code, err.message) == (
                "ValidationException",
                f"Wrapping algorithm {algorithm} with wrapping key spec RSA_2048 cannot wrap ECC_NIST_P521 "
                "key material. Use a larger wrapping key spec or RSA_AES_KEY_WRAP_SHA_256.",
            )
    # The other P-384/P-256/Ed25519 keys may use RSA_2048 with OAEP (their PKCS#8 fits).
    for spec in ("ECC_NIST_P384", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"):
        key = external_key(kms, spec, "SIGN_VERIFY")
        assert params(kms, key["KeyId"], OAEP_SHA_1, "RSA_2048")["KeyId"] == key["Arn"]


@pytest.mark.parametrize(
    ("spec", "usage"),
    [
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
        ("RSA_2048", "SIGN_VERIFY"),
        ("ECC_NIST_P256", "KEY_AGREEMENT"),
        ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
    ],
)
def test_refused_wrapping_algorithms_and_specs(kms: Any, spec: str, usage: str) -> None:
    key = external_key(kms, spec, usage)
    pkcs1 = (
        "ValidationException",
        "The wrapping algorithm RSAES_PKCS1_V1_5 is no longer supported. "
        "Use RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1, RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1.",
    )
    sm2 = ("ValidationException", "SM2 wrapping is only supported in China Regions, not in us-east-1.")
    for algorithm, wrapping_spec, expected in (
        ("RSAES_PKCS1_V1_5", "RSA_2048", pkcs1),
        ("RSAES_PKCS1_V1_5", "RSA_4096", pkcs1),
        ("SM2PKE", "SM2", sm2),
        ("SM2PKE", "RSA_2048", sm2),
        (OAEP_SHA_256, "SM2", sm2),
        (KW_SHA_256, "SM2", sm2),
    ):
        err = aws_error(
            kms.get_parameters_for_import,
            KeyId=key["KeyId"], WrappingAlgorithm=algorithm, WrappingKeySpec=wrapping_spec,
        )  # fmt: skip
        assert (err.code, err.message) == expected, (algorithm, wrapping_spec)
    assert state(kms, key["KeyId"]) == "PendingImport"


def test_origin_is_checked_before_the_wrapping_choice(kms: Any) -> None:
    key = kms.create_key(KeySpec="ECC_NIST_P521", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    err = aws_error(
        kms.get_parameters_for_import,
        KeyId=key["KeyId"], WrappingAlgorithm=OAEP_SHA_256, WrappingKeySpec="RSA_2048",
    )  # fmt: skip
    assert (err.code, err.message) == (
        "UnsupportedOperationException",
        f"{key['Arn']} origin is AWS_KMS which is not valid for this operation.",
    )


def test_key_specs_that_cannot_be_imported(kms: Any) -> None:
    for spec in ("ML_DSA_44", "ML_DSA_65", "ML_DSA_87"):
        err = aws_error(kms.create_key, KeySpec=spec, KeyUsage="SIGN_VERIFY", Origin="EXTERNAL")
        assert (err.code, err.message) == (
            "UnsupportedOperationException",
            "Importing ML-DSA keys is not supported.",
        )
    for usage in ("SIGN_VERIFY", "ENCRYPT_DECRYPT", "KEY_AGREEMENT"):
        err = aws_error(kms.create_key, KeySpec="SM2", KeyUsage=usage, Origin="EXTERNAL")
        assert (err.code, err.message) == (
            "ValidationException",
            "KeySpec SM2 is not supported in the us-east-1 region.",
        )


# --- 3. material checks ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_materials(local: LocalKeys, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Material that is not a two-prime RSA / named-curve EC PKCS#8 key, made with openssl."""
    work = tmp_path_factory.mktemp("odd-materials")
    pem = work / "p256.pem"
    pem.write_bytes(
        local.private("ECC_NIST_P256").private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    explicit = _openssl("ec", "-in", str(pem), "-param_enc", "explicit", "-outform", "DER")
    three_primes = _openssl(
        "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-pkeyopt", "rsa_keygen_primes:3",
        "-outform", "PEM",
    )  # fmt: skip
    topk8 = ("pkcs8", "-topk8", "-nocrypt", "-outform", "DER")
    return {
        "explicit": _openssl(*topk8, "-inform", "DER", stdin=explicit),
        "three_primes": _openssl(*topk8, "-inform", "PEM", stdin=three_primes),
    }


def _wrong_materials(local: LocalKeys, odd: dict[str, bytes]) -> list[tuple[str, str, str, bytes]]:
    """(case, KeySpec, KeyUsage, material) that ImportKeyMaterial must refuse."""
    rsa2048 = local.private("RSA_2048")
    p256 = local.private("ECC_NIST_P256")
    traditional = serialization.PrivateFormat.TraditionalOpenSSL
    encrypted = serialization.BestAvailableEncryption(b"passphrase")
    return [
        ("P-384 key into P-256", "ECC_NIST_P256", "SIGN_VERIFY", local.material("ECC_NIST_P384")),
        ("secp256k1 key into P-256", "ECC_NIST_P256", "KEY_AGREEMENT", local.material("ECC_SECG_P256K1")),
        ("P-256 key into secp256k1", "ECC_SECG_P256K1", "SIGN_VERIFY", local.material("ECC_NIST_P256")),
        ("P-384 key into P-521", "ECC_NIST_P521", "SIGN_VERIFY", local.material("ECC_NIST_P384")),
        ("P-521 key into P-384", "ECC_NIST_P384", "KEY_AGREEMENT", local.material("ECC_NIST_P521")),
        ("P-256 key into Ed25519", "ECC_NIST_EDWARDS25519", "SIGN_VERIFY", local.material("ECC_NIST_P256")),
        ("Ed25519 key into P-256", "ECC_NIST_P256", "SIGN_VERIFY", local.material("ECC_NIST_EDWARDS25519")),
        ("RSA-3072 key into RSA-2048", "RSA_2048", "SIGN_VERIFY", local.material("RSA_3072")),
        ("RSA-2048 key into RSA-4096", "RSA_4096", "ENCRYPT_DECRYPT", local.material("RSA_2048")),
        ("RSA-4096 key into RSA-3072", "RSA_3072", "SIGN_VERIFY", local.material("RSA_4096")),
        ("RSA key into an ECC key", "ECC_NIST_P256", "SIGN_VERIFY", local.material("RSA_2048")),
        ("ECC key into an RSA key", "RSA_2048", "ENCRYPT_DECRYPT", local.material("ECC_NIST_P256")),
        ("HMAC bytes into an ECC key", "ECC_NIST_P256", "SIGN_VERIFY", local.material("HMAC_256")),
        (
            "PKCS#1 RSAPrivateKey",
            "RSA_2048",
            "SIGN_VERIFY",
            rsa2048.private_bytes(serialization.Encoding.DER, traditional, serialization.NoEncryption()),
        ),
        (
            "SEC1 ECPrivateKey",
            "ECC_NIST_P256",
            "SIGN_VERIFY",
            p256.private_bytes(serialization.Encoding.DER, traditional, serialization.NoEncryption()),
        ),
        (
            "encrypted PKCS#8",
            "ECC_NIST_P256",
            "SIGN_VERIFY",
            p256.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, encrypted),
        ),
        ("PEM instead of DER", "ECC_NIST_P256", "SIGN_VERIFY", p256.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )),
        ("PKCS#8 with trailing bytes", "ECC_NIST_P256", "SIGN_VERIFY",
         local.material("ECC_NIST_P256") + b"\x00"),
        ("EC key with explicit parameters", "ECC_NIST_P256", "SIGN_VERIFY", odd["explicit"]),
        ("three-prime RSA key", "RSA_2048", "SIGN_VERIFY", odd["three_primes"]),
        ("garbage into an ECC key", "ECC_NIST_P256", "SIGN_VERIFY", os.urandom(138)),
        ("garbage into an RSA key", "RSA_2048", "SIGN_VERIFY", os.urandom(1217)),
        ("an empty DER SEQUENCE", "ECC_NIST_P384", "SIGN_VERIFY", b"\x30\x00"),
        ("HMAC_512 material too short", "HMAC_512", "GENERATE_VERIFY_MAC", os.urandom(63)),
        ("HMAC_224 material too short", "HMAC_224", "GENERATE_VERIFY_MAC", os.urandom(27)),
    ]  # fmt: skip


def test_material_that_does_not_fit_the_key_spec(
    kms: Any, local: LocalKeys, odd_materials: dict[str, bytes]
) -> None:
    """Each refused with IncorrectKeyMaterialException; the key stays PendingImport and the same
    parameter set then imports the right material."""
    keys: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
    for case, spec, usage, material in _wrong_materials(local, odd_materials):
        if (spec, usage) not in keys:
            key = external_key(kms, spec, usage)
            keys[(spec, usage)] = (key, params(kms, key["KeyId"], KW_SHA_256, "RSA_2048"))
        key, p = keys[(spec, usage)]
        err = aws_error(attempt, kms=kms, key_id=key["KeyId"], p=p, algorithm=KW_SHA_256, material=material)
        assert (err.code, err.message) == (
            "IncorrectKeyMaterialException",
            f"The key material is not valid for key spec {spec}.",
        ), case
        assert state(kms, key["KeyId"]) == "PendingImport", case
    for (spec, _usage), (key, p) in keys.items():
        assert members(attempt(kms, key["KeyId"], p, KW_SHA_256, local.material(spec))) == {"KeyId"}
        assert state(kms, key["KeyId"]) == "Enabled"


# --- 4. reimport rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "usage"),
    [("HMAC_384", "GENERATE_VERIFY_MAC"), ("ECC_NIST_P256", "SIGN_VERIFY"), ("RSA_2048", "ENCRYPT_DECRYPT")],
)
def test_symmetric_only_import_parameters_are_refused(
    kms: Any, local: LocalKeys, spec: str, usage: str
) -> None:
    key = external_key(kms, spec, usage)
    algorithm = default_algorithm(spec)
    p = params(kms, key["KeyId"], algorithm, "RSA_2048")
    refused = (
        "ValidationException",
        "ImportType, KeyMaterialId and KeyMaterialDescription are supported only for symmetric "
        "encryption keys.",
    )
    extras: list[dict[str, Any]] = [
        {"ImportType": "NEW_KEY_MATERIAL"},
        {"ImportType": "EXISTING_KEY_MATERIAL"},
        {"KeyMaterialId": "a" * 64},
        {"KeyMaterialDescription": "mine"},
    ]
    material = local.material(spec)
    for when in ("first import", "reimport"):
        for extra in extras:
            err = aws_error(
                attempt, kms=kms, key_id=key["KeyId"], p=p, algorithm=algorithm, material=material, **extra
            )
            assert (err.code, err.message) == refused, (when, extra)
        if when == "first import":
            assert state(kms, key["KeyId"]) == "PendingImport"
            attempt(kms, key["KeyId"], p, algorithm, material)
            p = params(kms, key["KeyId"], algorithm, "RSA_2048")
    assert state(kms, key["KeyId"]) == "Enabled"


#: (KeySpec, KeyUsage) whose outputs must survive deletion and reimport of the material.
REIMPORTED = [
    ("HMAC_224", "GENERATE_VERIFY_MAC"),
    ("ECC_NIST_P256", "SIGN_VERIFY"),
    ("ECC_SECG_P256K1", "SIGN_VERIFY"),
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
    ("ECC_NIST_P384", "KEY_AGREEMENT"),
    ("RSA_2048", "SIGN_VERIFY"),
    ("RSA_2048", "ENCRYPT_DECRYPT"),
]


@pytest.mark.parametrize(("spec", "usage"), REIMPORTED)
def test_reimport_delete_and_restore(kms: Any, local: LocalKeys, spec: str, usage: str) -> None:
    key = external_key(kms, spec, usage)
    arn = key["Arn"]
    created_members = set(key)
    material = local.material(spec)
    algorithm = default_algorithm(spec)
    other_algorithm = KW_SHA_1 if spec.startswith("RSA_") else OAEP_SHA_1
    import_material(kms, key["KeyId"], material, algorithm, "RSA_2048")
    before = check_key_works(kms, local, key, spec, usage)

    # Reimport of the same bytes at any time, changing the expiry (and back).
    valid_to = int(time.time()) + 30 * 86400
    out = import_material(
        kms,
        key["KeyId"],
        material,
        other_algorithm,
        "RSA_3072",
        ExpirationModel="KEY_MATERIAL_EXPIRES",
        ValidTo=valid_to,
    )
    assert members(out) == {"KeyId"} and out["KeyId"] == arn
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (md["KeyState"], md["ExpirationModel"], md["ValidTo"].timestamp()) == (
        "Enabled",
        "KEY_MATERIAL_EXPIRES",
        valid_to,
    )
    import_material(kms, key["KeyId"], material, algorithm, "RSA_2048")
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE" and "ValidTo" not in md

    # Other material of the same spec is refused; the key keeps its own.
    err = aws_error(
        import_material, kms=kms, key_id=key["KeyId"], material=local.material(spec, 1), algorithm=algorithm
    )
    assert (err.code, err.message) == (
        "IncorrectKeyMaterialException",
        f"The key material is not the key material associated with {arn}.",
    )
    assert state(kms, key["KeyId"]) == "Enabled"

    # Deletion: PendingImport, the plain field set of a key that never had material, every use fails.
    deleted = kms.delete_imported_key_material(KeyId=key["KeyId"])
    assert deleted["KeyId"] == arn
    md = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "PendingImport" and md["Enabled"] is False
    assert set(md) == created_members
    pending = ("KMSInvalidStateException", f"{arn} is pending import.")
    key_id = key["KeyId"]
    calls: list[tuple[Any, dict[str, Any]]] = []
    if usage == "GENERATE_VERIFY_MAC":
        mac_algorithm = HMAC_SPECS[spec][0]
        calls += [
            (kms.generate_mac, {"KeyId": key_id, "Message": MESSAGE, "MacAlgorithm": mac_algorithm}),
            (kms.verify_mac,
             {"KeyId": key_id, "Message": MESSAGE, "Mac": before["mac"], "MacAlgorithm": mac_algorithm}),
        ]  # fmt: skip
    else:
        calls.append((kms.get_public_key, {"KeyId": key_id}))
    if usage == "SIGN_VERIFY":
        for sig_algorithm, signature in before["signatures"].items():
            message, message_type = signed_message(sig_algorithm)
            sign_args = {"KeyId": key_id, "Message": message, "MessageType": message_type}
            calls += [
                (kms.sign, {**sign_args, "SigningAlgorithm": sig_algorithm}),
                (kms.verify, {**sign_args, "Signature": signature, "SigningAlgorithm": sig_algorithm}),
            ]
    if usage == "ENCRYPT_DECRYPT":
        blob = before["ciphertexts"][OAEP_SHA_256]
        calls += [
            (kms.encrypt, {"KeyId": key_id, "Plaintext": MESSAGE, "EncryptionAlgorithm": OAEP_SHA_256}),
            (kms.decrypt, {"KeyId": key_id, "CiphertextBlob": blob, "EncryptionAlgorithm": OAEP_SHA_256}),
        ]
    if usage == "KEY_AGREEMENT":
        peer_der = spki(before["peer"])
        calls.append(
            (
                kms.derive_shared_secret,
                {"KeyId": key_id, "KeyAgreementAlgorithm": "ECDH", "PublicKey": peer_der},
            )
        )
    for fn, kwargs in calls:
        err = aws_error(fn, **kwargs)
        assert (err.code, err.message) == pending, fn
    # Other material cannot take the place of the deleted material either.
    err = aws_error(
        import_material, kms=kms, key_id=key["KeyId"], material=local.material(spec, 1), algorithm=algorithm
    )
    assert err.code == "IncorrectKeyMaterialException"
    assert state(kms, key["KeyId"]) == "PendingImport"

    # Reimport of the same bytes (another wrapping set): what was made before the deletion verifies.
    out = import_material(kms, key["KeyId"], material, other_algorithm, "RSA_2048")
    assert members(out) == {"KeyId"}
    assert state(kms, key["KeyId"]) == "Enabled"
    if usage == "GENERATE_VERIFY_MAC":
        ok = kms.verify_mac(
            KeyId=key_id, Message=MESSAGE, Mac=before["mac"], MacAlgorithm=HMAC_SPECS[spec][0]
        )
        assert ok["MacValid"] is True
        assert (
            kms.generate_mac(KeyId=key_id, Message=MESSAGE, MacAlgorithm=HMAC_SPECS[spec][0])["Mac"]
            == before["mac"]
        )
    if usage == "SIGN_VERIFY":
        for sig_algorithm, signature in before["signatures"].items():
            message, message_type = signed_message(sig_algorithm)
            out = kms.verify(
                KeyId=key_id, Message=message, MessageType=message_type, Signature=signature,
                SigningAlgorithm=sig_algorithm,
            )  # fmt: skip
            assert out["SignatureValid"] is True, sig_algorithm
    if usage == "ENCRYPT_DECRYPT":
        for enc_algorithm, blob in before["ciphertexts"].items():
            out = kms.decrypt(KeyId=key_id, CiphertextBlob=blob, EncryptionAlgorithm=enc_algorithm)
            assert out["Plaintext"] == MESSAGE
    if usage == "KEY_AGREEMENT":
        out = kms.derive_shared_secret(
            KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=spki(before["peer"])
        )
        assert out["SharedSecret"] == before["secret"]
    if usage != "GENERATE_VERIFY_MAC":
        assert kms.get_public_key(KeyId=key_id)["PublicKey"] == spki(local.private(spec))


def test_same_material_in_a_new_key_reproduces_outputs(kms: Any, local: LocalKeys) -> None:
    """§1.7: asymmetric and HMAC outputs are standard — another key with the same material verifies
    what the first one made."""
    for spec, usage in (("HMAC_256", "GENERATE_VERIFY_MAC"), ("ECC_NIST_P256", "SIGN_VERIFY")):
        first, second = external_key(kms, spec, usage), external_key(kms, spec, usage)
        for key in (first, second):
            import_material(kms, key["KeyId"], local.material(spec))
        if usage == "GENERATE_VERIFY_MAC":
            mac = kms.generate_mac(KeyId=first["KeyId"], Message=MESSAGE, MacAlgorithm="HMAC_SHA_256")["Mac"]
            ok = kms.verify_mac(KeyId=second["KeyId"], Message=MESSAGE, Mac=mac, MacAlgorithm="HMAC_SHA_256")
            assert ok["MacValid"] is True
        else:
            sig = kms.sign(KeyId=first["KeyId"], Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256")[
                "Signature"
            ]
            ok = kms.verify(
                KeyId=second["KeyId"], Message=MESSAGE, Signature=sig, SigningAlgorithm="ECDSA_SHA_256"
            )
            assert ok["SignatureValid"] is True


def test_delete_imported_key_material_response(kms: Any, local: LocalKeys) -> None:
    """DeleteImportedKeyMaterial on asymmetric/HMAC keys answers with the key ARN only: like
    ImportKeyMaterial and DescribeKey, it shows no key material ID for keys that can have only one
    material (symmetric keys get ``KeyMaterialId``, see ``test_import.py``)."""
    for spec, usage in (("HMAC_256", "GENERATE_VERIFY_MAC"), ("ECC_NIST_P256", "SIGN_VERIFY")):
        key = external_key(kms, spec, usage)
        import_material(kms, key["KeyId"], local.material(spec))
        deleted = kms.delete_imported_key_material(KeyId=key["KeyId"])
        assert members(deleted) == {"KeyId"}
        assert deleted["KeyId"] == key["Arn"]
