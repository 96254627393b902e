"""Wrapping for key material import: unwrapping on the service side and wrapping on the client side
(``openkms wrap-key-material``). Wrapping key pairs come from the RSA key pair pool
(:mod:`openkms.crypto.keypair_pool`), so GetParametersForImport never generates RSA keys inline.

Algorithms (AWS's): RSAES_OAEP_SHA_1 / RSAES_OAEP_SHA_256 (OAEP with MGF1 of the same hash, empty
label, directly over the material) and RSA_AES_KEY_WRAP_SHA_1 / _SHA_256 (an ephemeral AES-256 key
wrapped with RSA-OAEP, followed by the material wrapped with AES key wrap with padding, RFC 5649).
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from openkms.errors import InternalError

OAEP_ALGORITHMS = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
KEY_WRAP_ALGORITHMS = ("RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256")


class UnwrapError(Exception):
    """The wrapped material could not be unwrapped with this private key and algorithm (opaque)."""


def _oaep(algorithm: str) -> padding.OAEP:
    h: hashes.HashAlgorithm = hashes.SHA256() if algorithm.endswith("SHA_256") else hashes.SHA1()  # noqa: S303
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def oaep_capacity(bits: int, algorithm: str) -> int:
    """The most bytes RSA-OAEP can carry for this modulus and algorithm's hash."""
    hash_len = 32 if algorithm.endswith("SHA_256") else 20
    return bits // 8 - 2 * hash_len - 2


def unwrap(algorithm: str, private_der: bytes, wrapped: bytes) -> bytes:
    key = serialization.load_der_private_key(private_der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):  # the service made it: an RSA key of a wrapping spec
        raise InternalError("the wrapping private key is not an RSA key")
    size = key.key_size // 8
    try:
        if algorithm in OAEP_ALGORITHMS:
            return key.decrypt(wrapped, _oaep(algorithm))
        if algorithm in KEY_WRAP_ALGORITHMS:
            if len(wrapped) <= size:
                raise UnwrapError()
            aes_key = key.decrypt(wrapped[:size], _oaep(algorithm))
            if len(aes_key) not in (16, 24, 32):
                raise UnwrapError()
            return aes_key_unwrap_with_padding(aes_key, wrapped[size:])
    except (ValueError, InvalidUnwrap):
        raise UnwrapError() from None
    raise UnwrapError()


def wrap(algorithm: str, public_der: bytes, material: bytes) -> bytes:
    """Client side: wrap ``material`` for import with the wrapping public key (DER SPKI)."""
    public = serialization.load_der_public_key(public_der)
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("the wrapping public key is not an RSA key")
    if algorithm in OAEP_ALGORITHMS:
        return public.encrypt(material, _oaep(algorithm))
    if algorithm in KEY_WRAP_ALGORITHMS:
        aes_key = os.urandom(32)
        return public.encrypt(aes_key, _oaep(algorithm)) + aes_key_wrap_with_padding(aes_key, material)
    raise ValueError(f"unsupported wrapping algorithm {algorithm}")


def public_key_bits(public_der: bytes) -> int:
    public = serialization.load_der_public_key(public_der)
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("the wrapping public key is not an RSA key")
    return public.key_size
