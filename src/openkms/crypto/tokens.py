"""Import tokens: opaque to clients, authenticated and encrypted by the service (AES-256-GCM under a
key derived from the root key), so they can be neither forged nor edited. A token binds the key it
was issued for, the stored wrapping key pair, the wrapping algorithm and its expiry."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_AAD = b"openkms/import-token/v1"


class TokenError(Exception):
    """Not a token this service issued (or altered)."""


@dataclass(frozen=True, slots=True)
class ImportTokenClaims:
    token_id: str
    region: str
    account_id: str
    key_id: str
    wrapping_algorithm: str
    wrapping_key_spec: str
    expires: float


def issue(token_key: bytes, claims: ImportTokenClaims) -> bytes:
    nonce = os.urandom(12)
    payload = json.dumps(asdict(claims), separators=(",", ":")).encode()
    return _VERSION + nonce + AESGCM(token_key).encrypt(nonce, payload, _AAD)


def open_token(token_key: bytes, token: bytes) -> ImportTokenClaims:
    if len(token) < 29 or token[:1] != _VERSION:
        raise TokenError()
    try:
        payload = AESGCM(token_key).decrypt(token[1:13], token[13:], _AAD)
        return ImportTokenClaims(**json.loads(payload))
    except (InvalidTag, ValueError, TypeError):
        raise TokenError() from None


# --- grant tokens -------------------------------------------------------------------------------------
_GRANT_VERSION = b"\x01"


def issue_grant_token(token_key: bytes, grant_id: str) -> str:
    """A grant token: names the grant, authenticated by the service; a new one on every call."""
    body = _GRANT_VERSION + bytes.fromhex(grant_id) + os.urandom(16)
    tag = hmac.new(token_key, b"openkms/grant-token/v1" + body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + tag).decode().rstrip("=")


def open_grant_token(token_key: bytes, token: str) -> str:
    """The grant id a token names; raises TokenError for anything this service did not issue."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise TokenError() from None
    if len(raw) != 1 + 32 + 16 + 16 or raw[:1] != _GRANT_VERSION:
        raise TokenError()
    body, tag = raw[:-16], raw[-16:]
    expected = hmac.new(token_key, b"openkms/grant-token/v1" + body, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(tag, expected):
        raise TokenError()
    return body[1:33].hex()
