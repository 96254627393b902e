"""Wrapping keys for key material import: the RSA wrapping key pool, unwrapping on the service side
and wrapping on the client side (``openkms wrap-key-material``).

Algorithms (AWS's): RSAES_OAEP_SHA_1 / RSAES_OAEP_SHA_256 (OAEP with MGF1 of the same hash, empty
label, directly over the material) and RSA_AES_KEY_WRAP_SHA_1 / _SHA_256 (an ephemeral AES-256 key
wrapped with RSA-OAEP, followed by the material wrapped with AES key wrap with padding, RFC 5649).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

log = logging.getLogger("openkms.wrapping")

WRAPPING_KEY_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
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
    assert isinstance(key, rsa.RSAPrivateKey)
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


def generate_wrapping_pair(bits: int) -> tuple[bytes, bytes]:
    """(private PKCS#8 DER, public SPKI DER) of a fresh RSA wrapping key pair."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


class WrappingKeyPool:
    """Pre-generated RSA wrapping key pairs per size, refilled by a background thread, so that
    GetParametersForImport never pays for RSA key generation on the request path. Every pair is
    handed out once; an empty pool generates inline."""

    def __init__(self, targets: dict[int, int] | None = None) -> None:
        self._targets = targets if targets is not None else {2048: 4, 3072: 2, 4096: 2}
        self._pairs: dict[int, deque[tuple[bytes, bytes]]] = {
            bits: deque() for bits in WRAPPING_KEY_BITS.values()
        }
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openkms-wrapping-pool", daemon=True)

    def start(self) -> None:
        if any(self._targets.values()):
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def take(self, bits: int) -> tuple[bytes, bytes]:
        try:
            pair = self._pairs[bits].popleft()
        except IndexError:
            pair = generate_wrapping_pair(bits)
        self._wake.set()
        return pair

    def size(self, bits: int) -> int:
        return len(self._pairs[bits])

    def _run(self) -> None:
        while not self._stop.is_set():
            missing = [bits for bits, want in self._targets.items() if len(self._pairs[bits]) < want]
            if not missing:
                self._wake.wait(5.0)
                self._wake.clear()
                continue
            bits = min(missing)  # the cheap sizes first
            try:
                self._pairs[bits].append(generate_wrapping_pair(bits))
            except Exception:
                log.exception("could not generate a %d-bit wrapping key", bits)
                self._stop.wait(1.0)
