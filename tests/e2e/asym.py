"""Helpers of the asymmetric, HMAC, ECDH and data-key-pair tests: a per-server bank of keys (created
once per key spec and usage), and offline checks made with independent implementations using only
public data: pyca ``cryptography`` with the public key from GetPublicKey, pycryptodome for Ed25519ph
(which pyca ``cryptography`` lacks), the ``openssl`` command line."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from Crypto.Hash import SHA512
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa, utils

from tests.conftest import Server

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}
RSA_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096")
RSA_SIGNING = (
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
)
ECDSA_BY_SPEC = {
    "ECC_NIST_P256": "ECDSA_SHA_256",
    "ECC_NIST_P384": "ECDSA_SHA_384",
    "ECC_NIST_P521": "ECDSA_SHA_512",
    "ECC_SECG_P256K1": "ECDSA_SHA_256",
}
#: Every (key spec, signing algorithm) AWS lists.
SIGNING_CASES = [
    *[(spec, alg) for spec in RSA_SPECS for alg in RSA_SIGNING],
    *ECDSA_BY_SPEC.items(),
    ("ECC_NIST_EDWARDS25519", "ED25519_SHA_512"),
    ("ECC_NIST_EDWARDS25519", "ED25519_PH_SHA_512"),
    ("ML_DSA_44", "ML_DSA_SHAKE_256"),
    ("ML_DSA_65", "ML_DSA_SHAKE_256"),
    ("ML_DSA_87", "ML_DSA_SHAKE_256"),
]


class KeyBank:
    """Keys of one server, created on first use and shared by the tests of a module."""

    def __init__(self, kms: Any) -> None:
        self.kms = kms
        self._keys: dict[tuple[str, str], dict[str, Any]] = {}
        self._public: dict[str, bytes] = {}

    def key(self, spec: str, usage: str) -> dict[str, Any]:
        if (spec, usage) not in self._keys:
            self._keys[(spec, usage)] = self.kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
        return self._keys[(spec, usage)]

    def public_der(self, key_id: str) -> bytes:
        if key_id not in self._public:
            self._public[key_id] = self.kms.get_public_key(KeyId=key_id)["PublicKey"]
        return self._public[key_id]


def hash_of(algorithm: str) -> hashes.HashAlgorithm:
    return HASHES[algorithm[-7:]]()


def digest(algorithm: str, message: bytes) -> bytes:
    h = hashes.Hash(hash_of(algorithm))
    h.update(message)
    return h.finalize()


def offline_verify(public_der: bytes, algorithm: str, message: bytes, signature: bytes) -> bool:
    """Verify an AWS-format signature of a raw ``message`` with only the DER public key."""
    public = serialization.load_der_public_key(public_der)
    try:
        if algorithm.startswith("RSASSA_"):
            assert isinstance(public, rsa.RSAPublicKey)
            h = hash_of(algorithm)
            pad: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
                if "PSS" in algorithm
                else padding.PKCS1v15()
            )
            public.verify(signature, message, pad, h)
        elif algorithm.startswith("ECDSA_"):
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(signature, message, ec.ECDSA(hash_of(algorithm)))
        elif algorithm == "ED25519_SHA_512":
            assert isinstance(public, ed25519.Ed25519PublicKey)
            public.verify(signature, message)
        elif algorithm == "ED25519_PH_SHA_512":
            # pycryptodome's RFC 8032 Ed25519ph: the message is hashed with SHA-512 by the scheme.
            verifier = eddsa.new(ECC.import_key(public_der), "rfc8032")
            try:
                verifier.verify(SHA512.new(message), signature)
            except ValueError:
                return False
        elif algorithm == "ML_DSA_SHAKE_256":
            assert isinstance(
                public, mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey
            )
            public.verify(signature, message)
        else:
            raise AssertionError(algorithm)
    except InvalidSignature:
        return False
    return True


def offline_verify_digest(public_der: bytes, algorithm: str, message_digest: bytes, signature: bytes) -> bool:
    """Verify a signature over a precomputed digest (RSA/ECDSA ``Prehashed``)."""
    public = serialization.load_der_public_key(public_der)
    pre = utils.Prehashed(hash_of(algorithm))
    try:
        if isinstance(public, rsa.RSAPublicKey):
            h = hash_of(algorithm)
            pad: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
                if "PSS" in algorithm
                else padding.PKCS1v15()
            )
            public.verify(signature, message_digest, pad, pre)
        else:
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(signature, message_digest, ec.ECDSA(pre))
    except InvalidSignature:
        return False
    return True


def pem_file(tmp: Path, public_der: bytes, name: str = "pub.pem") -> Path:
    public = serialization.load_der_public_key(public_der)
    path = tmp / name
    path.write_bytes(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


def server_has_no_plain(server: Server, secret: bytes) -> bool:
    from tests.e2e.storage_scan import stored_bytes

    return secret not in stored_bytes(server)
