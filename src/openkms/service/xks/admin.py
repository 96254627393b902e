"""Managing the XKS proxy: key stores, their SigV4 credentials (created, rotated) and their external
AES-256 keys (created, enabled or disabled, usage and allowed callers changed, deleted).

Secrets are sealed under the root key like every secret the service stores: a credential's secret
access key (it must be recoverable to verify signatures) and a key's material. A new secret access key
is shown once, when it is made.

Credential rotation: the new credential is valid at once; the one it replaces stays valid for a grace
period (``grace`` seconds, 24 hours by default; 0 ends it at once), and any older credential ends at
the rotation. So a key store has at most two valid credentials, as the API recommends, and AWS KMS (or
any client) can switch to the new one while the old one still works.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from openkms.crypto import xks as xks_crypto
from openkms.crypto.envelope import RootKey
from openkms.domain import xks
from openkms.storage.rows import Conflict, XksCredentialRow, XksKeyRow, XksKeyStoreRow
from openkms.storage.store import Store, Tx

SECRET_PURPOSE = "xks-credential-secret"  # noqa: S105 - a sealing label, not a secret
MATERIAL_PURPOSE = "xks-key-material"
DEFAULT_GRACE = 86400.0
MAX_TPS = 1_000_000.0


class XksAdminError(Exception):
    """A management request that cannot be done (unknown key store, duplicate name, bad value…)."""


@dataclass(frozen=True, slots=True)
class NewCredential:
    """A key store's new SigV4 credential, with the key store's ``XksProxyUriPath``."""

    uri_path: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    previous_access_key_id: str | None = None  # rotation: the credential replaced
    previous_valid_until: float | None = None  # …and until when it stays valid (None: no longer)


def secret_ident(keystore: str, access_key_id: str) -> str:
    return f"{keystore}/{access_key_id}"


def material_ident(keystore: str, key_id: str) -> str:
    return f"{keystore}/{key_id}"


def _check_tps(max_tps: float | None) -> None:
    if max_tps is not None and not 0 < max_tps <= MAX_TPS:
        raise XksAdminError(f"the request rate must be in (0, {MAX_TPS:g}] requests per second")


def _check_cn(client_cn: str | None) -> None:
    if client_cn is not None and not (0 < len(client_cn) <= 256 and client_cn.isprintable()):
        raise XksAdminError("the TLS client certificate's CN must be 1 to 256 printable characters")


def _insert_credential(tx: Tx, root: RootKey, keystore: str, now: float) -> tuple[str, str]:
    """A new credential: 24 characters of A-Z and 2-7 (120 random bits), and a secret of 44
    characters of Base64 (264 random bits)."""
    while True:
        access_key_id = base64.b32encode(os.urandom(15)).decode("ascii")
        secret = base64.b64encode(os.urandom(33)).decode("ascii")
        sealed = root.seal(SECRET_PURPOSE, secret_ident(keystore, access_key_id), secret.encode("ascii"))
        try:
            tx.insert_xks_credential(XksCredentialRow(access_key_id, keystore, sealed, now, None))
        except Conflict:
            continue  # an id already taken (2^-120): draw again
        return access_key_id, secret


def _keystore(tx: Tx, name: str) -> XksKeyStoreRow:
    row = tx.get_xks_keystore(name, for_update=True)
    if row is None:
        raise XksAdminError(f"key store {name!r} does not exist")
    return row


def create_keystore(
    store: Store,
    root: RootKey,
    now: float,
    name: str,
    *,
    max_tps: float | None = None,
    client_cn: str | None = None,
) -> NewCredential:
    if not xks.valid_name(name):
        raise XksAdminError("a key store name is 1 to 64 letters, digits, '-' and '_'")
    _check_tps(max_tps)
    _check_cn(client_cn)
    with store.write() as tx:
        try:
            tx.insert_xks_keystore(XksKeyStoreRow(name, now, max_tps, client_cn))
        except Conflict:
            raise XksAdminError(f"key store {name!r} already exists") from None
        access_key_id, secret = _insert_credential(tx, root, name, now)
    return NewCredential(xks.uri_path(name), access_key_id, secret)


def update_keystore(store: Store, name: str, **changes: Any) -> XksKeyStoreRow:
    """Change ``max_tps`` and/or ``client_cn`` (None: no limit, any certificate)."""
    unknown = set(changes) - {"max_tps", "client_cn"}
    if unknown:
        raise XksAdminError(f"unknown key store settings: {', '.join(sorted(unknown))}")
    _check_tps(changes.get("max_tps"))
    _check_cn(changes.get("client_cn"))
    with store.write() as tx:
        row = dataclasses.replace(_keystore(tx, name), **changes)
        tx.update_xks_keystore(row)
    return row


def rotate_credential(
    store: Store, root: RootKey, now: float, name: str, grace: float = DEFAULT_GRACE
) -> NewCredential:
    if grace < 0:
        raise XksAdminError("the grace period cannot be negative")
    with store.write() as tx:
        _keystore(tx, name)
        previous: str | None = None
        for row in tx.list_xks_credentials(name):
            if row.valid_until is None and grace > 0:
                previous = row.access_key_id
                tx.set_xks_credential_valid_until(row.access_key_id, now + grace)
            else:  # an older credential in its grace period, or the current one without grace
                tx.delete_xks_credential(row.access_key_id)
        access_key_id, secret = _insert_credential(tx, root, name, now)
    return NewCredential(
        xks.uri_path(name), access_key_id, secret, previous, now + grace if previous is not None else None
    )


def create_key(
    store: Store,
    root: RootKey,
    now: float,
    keystore: str,
    key_id: str,
    *,
    usage: tuple[str, ...] = (xks.ENCRYPT, xks.DECRYPT),
    allowed_principals: tuple[str, ...] = (),
) -> XksKeyRow:
    """A new external AES-256 key with fresh random material."""
    if not xks.valid_key_id(key_id):
        raise XksAdminError("an external key id is 1 to 128 letters, digits, '.', '-' and '_'")
    _check_principals(allowed_principals)
    material = xks_crypto.new_key()
    sealed = root.seal(MATERIAL_PURPOSE, material_ident(keystore, key_id), material)
    row = XksKeyRow(keystore, key_id, xks.KEY_SPEC, usage, xks.ENABLED, sealed, allowed_principals, now)
    with store.write() as tx:
        _keystore(tx, keystore)
        try:
            tx.insert_xks_key(row)
        except Conflict:
            raise XksAdminError(f"key {key_id!r} already exists in key store {keystore!r}") from None
    return row


def update_key(store: Store, keystore: str, key_id: str, **changes: Any) -> XksKeyRow:
    """Change a key's ``status`` (ENABLED or DISABLED), ``key_usage`` and/or ``allowed_principals``."""
    unknown = set(changes) - {"status", "key_usage", "allowed_principals"}
    if unknown:
        raise XksAdminError(f"unknown key settings: {', '.join(sorted(unknown))}")
    if changes.get("status", xks.ENABLED) not in (xks.ENABLED, xks.DISABLED):
        raise XksAdminError("a key's status is ENABLED or DISABLED")
    _check_principals(changes.get("allowed_principals", ()))
    with store.write() as tx:
        _keystore(tx, keystore)
        row = tx.get_xks_key(keystore, key_id)
        if row is None:
            raise XksAdminError(f"key {key_id!r} does not exist in key store {keystore!r}")
        row = dataclasses.replace(row, **changes)
        tx.update_xks_key(row)
    return row


def delete_key(store: Store, keystore: str, key_id: str) -> None:
    """Delete a key and its material: ciphertexts under it can never be decrypted again."""
    with store.write() as tx:
        _keystore(tx, keystore)
        if not tx.delete_xks_key(keystore, key_id):
            raise XksAdminError(f"key {key_id!r} does not exist in key store {keystore!r}")
    store.scrub()


def _check_principals(allowed: tuple[str, ...]) -> None:
    for entry in allowed:
        if not xks.valid_allowed_principal(entry):
            raise XksAdminError(f"an allowed principal is an account id or an ARN; got {entry!r}")


# --- views (what ``openkms admin`` prints) -----------------------------------------------------------


def keystore_view(tx: Tx, row: XksKeyStoreRow, now: float) -> dict[str, Any]:
    return {
        "Name": row.name,
        "XksProxyUriPath": xks.uri_path(row.name),
        "CreationDate": row.created_at,
        "MaxRequestsPerSecond": row.max_tps,
        "TlsClientCommonName": row.client_cn,
        "AccessKeys": [
            {"AccessKeyId": c.access_key_id, "CreationDate": c.created_at, "ValidUntil": c.valid_until}
            for c in tx.list_xks_credentials(row.name)
            if c.valid_until is None or c.valid_until > now
        ],
        "KeyCount": len(tx.list_xks_keys(row.name)),
    }


def key_view(row: XksKeyRow) -> dict[str, Any]:
    return {
        "KeyStore": row.keystore,
        "XksKeyId": row.key_id,
        "KeySpec": row.key_spec,
        "KeyUsage": list(row.key_usage),
        "KeyStatus": row.status,
        "AllowedPrincipals": list(row.allowed_principals),
        "CreationDate": row.created_at,
    }


def list_keystores(store: Store, now: float) -> list[dict[str, Any]]:
    with store.read() as tx:
        return [keystore_view(tx, row, now) for row in tx.list_xks_keystores()]


def describe_keystore(store: Store, name: str, now: float) -> dict[str, Any]:
    with store.read() as tx:
        row = tx.get_xks_keystore(name)
        if row is None:
            raise XksAdminError(f"key store {name!r} does not exist")
        return keystore_view(tx, row, now)


def list_keys(store: Store, keystore: str) -> list[dict[str, Any]]:
    with store.read() as tx:
        if tx.get_xks_keystore(keystore) is None:
            raise XksAdminError(f"key store {keystore!r} does not exist")
        return [key_view(row) for row in tx.list_xks_keys(keystore)]
