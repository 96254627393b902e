"""Envelope sealing under the keyring: every secret the service stores passes through here.

The *keyring* holds versioned data-encryption keys (AES-256) and one derivation secret. It is stored in
the database wrapped under the *root key* (a :class:`Kek`: a file, a PKCS#11 token's key, or a key
rebuilt from Shamir shares), unwrapped once at start, and never written in plaintext (the barrier
pattern: the hot path never calls the root key's holder).

``seal(purpose, ident, plaintext)`` encrypts with AES-256-GCM under the keyring's active version with a
random nonce and binds the record to what it is (``purpose``, e.g. ``key-material``), whose it is
(``ident``, e.g. ``us-east-1/<key-id>/<material-id>``) and the version as associated data, so sealed
rows cannot be swapped between records. Any failure to unseal is one opaque :class:`SealError`.

Formats: ``01 ‖ nonce ‖ ciphertext`` is a value sealed before keyrings existed (version 1 of an adopted
keyring, the installation's first root key); ``02 ‖ version (4 bytes) ‖ nonce ‖ ciphertext`` names its
version. The derivation secret (KeyMaterialId, the service's token and marker keys, the installation's
fingerprint) never changes, so rotating the keyring changes no id and invalidates no token.

A :class:`RootKey` is the process's barrier: it holds an open keyring, or none while the service is
sealed (every use then raises :class:`ServiceSealed`). Installing, replacing or dropping the keyring is
one attribute assignment, safe under concurrent use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_LEGACY = b"\x01"
_V2 = b"\x02"
ROOT_KEY_BYTES = 32
_KEYRING_AAD = b"openkms/keyring/v1"


class SealError(Exception):
    """A sealed value could not be opened (wrong root key, tampered, or bound to another record)."""


class ServiceSealed(Exception):
    """The service is sealed: no keyring is loaded, so nothing sealed can be made or opened."""


class Kek(Protocol):
    """What holds the root key: wraps and unwraps the keyring (and nothing else)."""

    source: str

    def wrap(self, plaintext: bytes) -> bytes: ...

    def unwrap(self, blob: bytes) -> bytes:
        """The plaintext, or :class:`SealError` (a wrong root key, a tampered blob)."""
        ...


class AesKek:
    """A root key held as 32 bytes in this process (the ``file`` source, or rebuilt from Shamir
    shares): AES-256-GCM under a key derived from them."""

    def __init__(self, raw: bytes, source: str = "file") -> None:
        if len(raw) != ROOT_KEY_BYTES:
            raise ValueError("the root key must be 32 bytes")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"openkms/kek/v1").derive(raw)
        self._aead = AESGCM(derived)
        self.source = source

    def __repr__(self) -> str:
        return f"AesKek(source={self.source})"

    def wrap(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, _KEYRING_AAD)

    def unwrap(self, blob: bytes) -> bytes:
        if len(blob) < 28:
            raise SealError()
        try:
            return self._aead.decrypt(blob[:12], blob[12:], _KEYRING_AAD)
        except InvalidTag:
            raise SealError() from None


@dataclass(frozen=True)
class Keyring:
    """The data-encryption keys by version, the version new seals use, and the derivation secret."""

    derive: bytes
    keys: dict[int, bytes] = field(repr=False)
    active: int

    def __repr__(self) -> str:
        return f"Keyring(active={self.active}, versions={sorted(self.keys)})"

    @classmethod
    def new(cls) -> Keyring:
        return cls(os.urandom(32), {1: os.urandom(32)}, 1)

    @classmethod
    def adopted(cls, raw: bytes) -> Keyring:
        """The keyring of an installation sealed under ``raw`` before keyrings existed."""
        return cls(raw, {1: raw}, 1)

    def with_new_version(self) -> Keyring:
        version = max(self.keys) + 1
        return Keyring(self.derive, {**self.keys, version: os.urandom(32)}, version)

    def without(self, versions: set[int]) -> Keyring:
        if self.active in versions:
            raise ValueError("the active version cannot be destroyed")
        return Keyring(self.derive, {v: k for v, k in self.keys.items() if v not in versions}, self.active)

    def to_bytes(self) -> bytes:
        b64 = base64.b64encode
        return json.dumps(
            {
                "derive": b64(self.derive).decode(),
                "active": self.active,
                "keys": {str(v): b64(k).decode() for v, k in sorted(self.keys.items())},
            }
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Keyring:
        try:
            doc = json.loads(data)
            keys = {int(v): base64.b64decode(k) for v, k in doc["keys"].items()}
            ring = cls(base64.b64decode(doc["derive"]), keys, int(doc["active"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise SealError() from exc
        if ring.active not in ring.keys or any(len(k) != 32 for k in ring.keys.values()):
            raise SealError()
        return ring


def sealed_version(sealed: bytes) -> int | None:
    """The keyring version a sealed value was made under (None: not a sealed value)."""
    if sealed[:1] == _LEGACY and len(sealed) >= 29:
        return 1
    if sealed[:1] == _V2 and len(sealed) >= 33:
        return int(struct.unpack(">I", sealed[1:5])[0])
    return None


class _Open:
    """An unwrapped keyring with its AEADs and derived keys."""

    __slots__ = ("aeads", "backup_key", "fingerprint", "id_key", "ring", "token_key")

    def __init__(self, ring: Keyring) -> None:
        self.ring = ring
        self.aeads = {v: AESGCM(k) for v, k in ring.keys.items()}
        self.id_key = hmac.new(ring.derive, b"openkms/material-id/v1", hashlib.sha256).digest()
        self.token_key = hmac.new(ring.derive, b"openkms/tokens/v1", hashlib.sha256).digest()
        self.backup_key = hmac.new(ring.derive, b"openkms/backup/v1", hashlib.sha256).digest()
        self.fingerprint = hashlib.sha256(b"openkms/root-fingerprint/v1" + ring.derive).hexdigest()[:16]


class RootKey:
    """The barrier: seals and opens under the loaded keyring; raises :class:`ServiceSealed` without one.

    ``RootKey(raw)`` is an installation's keyring adopted from a 32-byte root key (as tests and tools
    that hold one use it); the server builds it from the stored keyring (:meth:`from_keyring`) or
    sealed (:meth:`sealed_barrier`)."""

    def __init__(self, raw: bytes | None = None) -> None:
        self._open: _Open | None = None
        self._refresh: Callable[[], None] | None = None
        if raw is not None:
            if len(raw) != ROOT_KEY_BYTES:
                raise ValueError("the root key must be 32 bytes")
            self._open = _Open(Keyring.adopted(raw))

    @classmethod
    def from_keyring(cls, ring: Keyring) -> RootKey:
        barrier = cls()
        barrier.load(ring)
        return barrier

    @classmethod
    def sealed_barrier(cls) -> RootKey:
        return cls()

    def __repr__(self) -> str:
        return "RootKey(sealed)" if self._open is None else f"RootKey(fingerprint={self.fingerprint})"

    # -- the barrier's state ---------------------------------------------------------------------------
    @property
    def sealed(self) -> bool:
        return self._open is None

    def load(self, ring: Keyring) -> None:
        """Install (or replace, after a rotation) the keyring."""
        self._open = _Open(ring)

    def drop(self) -> None:
        """Seal: forget the keyring."""
        self._open = None

    @property
    def keyring(self) -> Keyring:
        return self._opened().ring

    def _opened(self) -> _Open:
        opened = self._open
        if opened is None:
            raise ServiceSealed()
        return opened

    # -- sealing -----------------------------------------------------------------------------------------
    @staticmethod
    def _aad(purpose: str, ident: str) -> bytes:
        return b"openkms/seal/v1\x00" + purpose.encode() + b"\x00" + ident.encode()

    @staticmethod
    def _aad_v2(version: bytes, purpose: str, ident: str) -> bytes:
        return b"openkms/seal/v2\x00" + version + purpose.encode() + b"\x00" + ident.encode()

    def seal(self, purpose: str, ident: str, plaintext: bytes) -> bytes:
        opened = self._opened()
        active = opened.ring.active
        nonce = os.urandom(12)
        version = struct.pack(">I", active)
        aad = self._aad_v2(version, purpose, ident)
        return _V2 + version + nonce + opened.aeads[active].encrypt(nonce, plaintext, aad)

    def on_unknown_version(self, refresh: Callable[[], None] | None) -> None:
        """Call ``refresh`` (which loads the stored keyring again) when a value names a version the
        loaded keyring lacks, then try once more: another process's rotation added it a moment ago."""
        self._refresh = refresh

    def unseal(self, purpose: str, ident: str, sealed: bytes) -> bytes:
        opened = self._opened()
        version = sealed_version(sealed)
        if version is None:
            raise SealError()
        aead = opened.aeads.get(version)
        if aead is None and self._refresh is not None:
            self._refresh()
            aead = self._opened().aeads.get(version)
        if aead is None:
            raise SealError()
        try:
            if sealed[:1] == _LEGACY:
                return aead.decrypt(sealed[1:13], sealed[13:], self._aad(purpose, ident))
            return aead.decrypt(sealed[5:17], sealed[17:], self._aad_v2(sealed[1:5], purpose, ident))
        except InvalidTag:
            raise SealError() from None

    def reseal(self, purpose: str, ident: str, sealed: bytes) -> bytes | None:
        """``sealed`` sealed again under the active version; None when it already is."""
        if sealed_version(sealed) == self._opened().ring.active and sealed[:1] == _V2:
            return None
        return self.seal(purpose, ident, self.unseal(purpose, ident, sealed))

    # -- derived values (stable across rotations) ---------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return self._opened().fingerprint

    def material_id(self, key_id: str, material: bytes) -> str:
        """The 64-hex KeyMaterialId: deterministic for one key and one material, reveals nothing of it."""
        message = key_id.encode() + b"\x00" + material
        return hmac.new(self._opened().id_key, message, hashlib.sha256).hexdigest()

    def token_key(self) -> bytes:
        """A key derived from the keyring for the service's own authenticated tokens."""
        return self._opened().token_key

    def backup_key(self) -> bytes:
        """The key of backup files' HMAC (openkms.storage.backup): derived from the keyring's
        derivation secret, so the same before and after a root key rotation."""
        return self._opened().backup_key


def read_root_key_file(path: Path, create: bool) -> bytes:
    """The 32 bytes of a root key file, creating it (random, mode 0600) when ``create`` and missing."""
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"root key file {path} does not exist")
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
    if len(raw) != ROOT_KEY_BYTES:
        raise ValueError(f"root key file {path} must hold exactly {ROOT_KEY_BYTES} bytes")
    return raw


def load_or_create_root_key(path: Path) -> RootKey:
    """A barrier over the keyring adopted from a root key file (tools working without a database)."""
    return RootKey(read_root_key_file(path, create=True))
