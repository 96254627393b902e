"""Import tokens: opaque to clients, authenticated and encrypted by the service (AES-256-GCM under a
key derived from the root key), so they can be neither forged nor edited. A token binds the key it
was issued for, the stored wrapping key pair, the wrapping algorithm and its expiry."""

from __future__ import annotations

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
