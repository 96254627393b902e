"""Envelope sealing under the root key: every secret the service stores passes through here.

``seal(purpose, ident, plaintext)`` encrypts with AES-256-GCM under the root key with a random nonce
and binds the record to what it is (``purpose``, e.g. ``key-material``) and whose it is (``ident``,
e.g. ``us-east-1/<key-id>/<material-id>``) as associated data, so that sealed rows cannot be swapped
between records. Any failure to unseal is one opaque :class:`SealError`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
ROOT_KEY_BYTES = 32


class SealError(Exception):
    """A sealed value could not be opened (wrong root key, tampered, or bound to another record)."""


class RootKey:
    def __init__(self, raw: bytes) -> None:
        if len(raw) != ROOT_KEY_BYTES:
            raise ValueError("the root key must be 32 bytes")
        self._aead = AESGCM(raw)
        self._id_key = hmac.new(raw, b"openkms/material-id/v1", hashlib.sha256).digest()
        self._token_key = hmac.new(raw, b"openkms/tokens/v1", hashlib.sha256).digest()
        self.fingerprint = hashlib.sha256(b"openkms/root-fingerprint/v1" + raw).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"RootKey(fingerprint={self.fingerprint})"

    @staticmethod
    def _aad(purpose: str, ident: str) -> bytes:
        return b"openkms/seal/v1\x00" + purpose.encode() + b"\x00" + ident.encode()

    def seal(self, purpose: str, ident: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, self._aad(purpose, ident))

    def unseal(self, purpose: str, ident: str, sealed: bytes) -> bytes:
        if len(sealed) < 29 or sealed[:1] != _VERSION:
            raise SealError()
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], self._aad(purpose, ident))
        except InvalidTag:
            raise SealError() from None

    def material_id(self, key_id: str, material: bytes) -> str:
        """The 64-hex KeyMaterialId: deterministic for one key and one material, reveals nothing of it."""
        return hmac.new(self._id_key, key_id.encode() + b"\x00" + material, hashlib.sha256).hexdigest()

    def token_key(self) -> bytes:
        """A key derived from the root key for the service's own authenticated tokens."""
        return self._token_key


def load_or_create_root_key(path: Path) -> RootKey:
    """Read the root key file, creating it (random, mode 0600) if it does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(ROOT_KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"root key file {path} must not be readable by others (mode {oct(mode)})")
    raw = path.read_bytes()
    return RootKey(raw)
