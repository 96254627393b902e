"""The audit trail's digest signatures: RSA key pairs and SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256,
CloudTrail's digest signature algorithm), and the public key's PEM and fingerprint.

A private key travels as PKCS#8 DER (sealed by the caller), a public key as SubjectPublicKeyInfo DER;
its fingerprint is the SHA-256 hex of that DER. :func:`verify` needs only public key material.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALGORITHM = "SHA256withRSA"
KEY_BITS = 2048


def generate() -> tuple[bytes, bytes]:
    """A new RSA key pair: (PKCS#8 DER private key, SubjectPublicKeyInfo DER public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def fingerprint(public_der: bytes) -> str:
    return hashlib.sha256(public_der).hexdigest()


def public_pem(public_der: bytes) -> str:
    key = serialization.load_der_public_key(public_der)
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode()


def public_der_from_pem(pem: str | bytes) -> bytes:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class PrivateKey:
    """A loaded signing key (parsed once: RSA parsing costs milliseconds)."""

    def __init__(self, pkcs8_der: bytes) -> None:
        key = serialization.load_der_private_key(pkcs8_der, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("an audit signing key is an RSA key")
        self._key = key

    def __repr__(self) -> str:
        return "PrivateKey(RSA)"

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def verify(public_der: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a SHA256withRSA signature of ``message`` by the key ``public_der``."""
    try:
        key = serialization.load_der_public_key(public_der)
    except ValueError:
        return False
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
