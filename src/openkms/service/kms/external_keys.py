"""KMS keys in an external key store (Origin EXTERNAL_KEY_STORE): CreateKey's check of the external key
with the proxy (GetKeyMetadata), AWS's double encryption in the cryptographic operations, and what
DescribeKey shows of them (CustomKeyStoreId, XksKeyConfiguration, KeyState Unavailable while the key
store is not connected).

Double encryption, as AWS describes it: the plaintext is encrypted first under the KMS key's own
material, inside this service (a version 1 blob, ``crypto/symmetric.py``), and that ciphertext is then
encrypted by the external key through the proxy; decryption undoes both, so neither side alone can
decrypt. Every call to the proxy happens off the event loop (``NeedsIO`` first) and reads the key store
in the same call: a disconnected key store, a disabled external key or a failing proxy hold at once.
Cryptographic operations answer every failure of the key store or its proxy with
KMSInvalidStateException and a message naming the cause, as AWS does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openkms.crypto import symmetric
from openkms.crypto import xks as xks_crypto
from openkms.domain.custom_key_stores import XKS_KEY_SPEC, ConnectionState, Failure, keys_usable
from openkms.domain.keyspec import Origin
from openkms.domain.model import KeyRecord, KeyState
from openkms.errors import (
    CustomKeyStoreInvalidStateException,
    DependencyTimeoutException,
    InvalidCiphertextException,
    KMSInvalidStateException,
    ValidationException,
    XksKeyAlreadyInUseException,
    XksKeyInvalidConfigurationException,
    XksKeyNotFoundException,
)
from openkms.service.kms import custom_key_stores
from openkms.service.kms.context import NeedsIO, RequestContext
from openkms.service.kms.core import KmsCore
from openkms.service.kms.keycache import LoadedKey
from openkms.service.kms.xks_client import ProxyError, ProxyTarget, b64, unb64
from openkms.storage.rows import CustomKeyStoreRow, ExternalStoreKeyRow

ALGORITHM = "AES_GCM"
CDIV = "SHA_256"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a KMS key of an external key store is: its key store and its external key's id."""

    store: CustomKeyStoreRow
    xks_key_id: str


def _metadata(ctx: RequestContext, key_arn: str | None) -> dict[str, Any]:
    """The spec's requestMetadata for a call made on behalf of ``ctx``'s request."""
    meta: dict[str, Any] = {
        "awsPrincipalArn": ctx.principal.arn,
        "kmsOperation": ctx.operation,
        "kmsRequestId": ctx.request_id,
    }
    if key_arn is not None:
        meta["kmsKeyArn"] = key_arn
    if ctx.user_agent.startswith("openkms-console/"):
        meta["kmsViaService"] = "openkms-console"
    return meta


# -- CreateKey ----------------------------------------------------------------------------------------------
def check_new_key(core: KmsCore, ctx: RequestContext, store_id: str, xks_key_id: str | None) -> Placement:
    """Before CreateKey stores a key in key store ``store_id``: the key store is connected, the
    external key is unused in it, and the proxy's GetKeyMetadata says AES_256, ENCRYPT and DECRYPT,
    ENABLED (AWS's XksKeyNotFoundException / XksKeyInvalidConfigurationException otherwise)."""
    if xks_key_id is None:
        raise ValidationException("XksKeyId is required when Origin is EXTERNAL_KEY_STORE.")
    with core.store.read() as tx:
        store = custom_key_stores.find(core, tx, ctx, store_id)
        if store.connection_state != ConnectionState.CONNECTED:
            raise CustomKeyStoreInvalidStateException(
                f"Custom key store {store_id} is {store.connection_state}: a KMS key can be created only "
                "in a CONNECTED custom key store."
            )
        if tx.external_key_in_use(store_id, xks_key_id):
            raise XksKeyAlreadyInUseException(
                f"External key {xks_key_id} is already associated with a KMS key in custom key store "
                f"{store_id}."
            )
    try:
        answer = custom_key_stores.client(core).call(
            custom_key_stores.target(core, store),
            f"keys/{xks_key_id}/metadata",
            {"requestMetadata": _metadata(ctx, None)},
        )
    except ProxyError as exc:
        if exc.error_name == "KeyNotFoundException":
            raise XksKeyNotFoundException(
                f"The XKS proxy of custom key store {store_id} has no external key {xks_key_id}."
            ) from None
        if exc.failure is Failure.TIMED_OUT:
            raise DependencyTimeoutException(exc.message) from None
        raise CustomKeyStoreInvalidStateException(
            f"The XKS proxy of custom key store {store_id} failed: {exc.message}"
        ) from None
    spec, usage, status = answer.get("keySpec"), answer.get("keyUsage"), answer.get("keyStatus")
    problems = []
    if spec != XKS_KEY_SPEC:
        problems.append(f"its key spec is {spec}, not AES_256")
    if not isinstance(usage, list) or not {"ENCRYPT", "DECRYPT"} <= set(usage):
        problems.append("its key usage does not include both ENCRYPT and DECRYPT")
    if status != "ENABLED":
        problems.append(f"its status is {status}, not ENABLED")
    if problems:
        raise XksKeyInvalidConfigurationException(
            f"External key {xks_key_id} cannot be used: {'; '.join(problems)}."
        )
    return Placement(store, xks_key_id)


def record_new_key(tx: Any, record: KeyRecord, placement: Placement) -> None:
    tx.insert_external_store_key(
        ExternalStoreKeyRow(
            record.region, record.key_id, placement.store.custom_key_store_id, placement.xks_key_id
        )
    )


# -- where a key is -----------------------------------------------------------------------------------------
def placement(core: KmsCore, ctx: RequestContext, record: KeyRecord) -> Placement:
    """The key's key store (read now, never cached) and external key id; needs I/O."""
    if not ctx.allow_io:
        raise NeedsIO()
    with core.store.read() as tx:
        row = tx.get_external_store_key(record.region, record.key_id)
        store = (
            tx.get_custom_key_store(record.region, record.account_id, row.custom_key_store_id)
            if row
            else None
        )
    if row is None or store is None:
        raise KMSInvalidStateException(f"{record.arn} is unavailable: its custom key store does not exist.")
    return Placement(store, row.xks_key_id)


def describe(
    core: KmsCore, ctx: RequestContext, record: KeyRecord, metadata: dict[str, Any]
) -> dict[str, Any]:
    """DescribeKey's KeyMetadata of a key in an external key store."""
    where = placement(core, ctx, record)
    metadata["custom_key_store_id"] = where.store.custom_key_store_id
    metadata["xks_key_configuration"] = {"id": where.xks_key_id}
    if not keys_usable(where.store.connection_state) and record.key_state in (
        KeyState.ENABLED,
        KeyState.DISABLED,
    ):
        metadata["key_state"] = str(KeyState.UNAVAILABLE)
    return metadata


def _usable(core: KmsCore, ctx: RequestContext, record: KeyRecord) -> tuple[Placement, ProxyTarget]:
    where = placement(core, ctx, record)
    if not keys_usable(where.store.connection_state):
        raise KMSInvalidStateException(
            f"{record.arn} is unavailable: its custom key store {where.store.custom_key_store_id} is "
            f"{where.store.connection_state}."
        )
    return where, custom_key_stores.target(core, where.store)


def _crypto_error(record: KeyRecord, where: Placement, error: ProxyError) -> KMSInvalidStateException:
    cause = str(error.failure) if error.failure is not None else error.error_name
    return KMSInvalidStateException(
        f"{record.arn} cannot be used: the XKS proxy of custom key store {where.store.custom_key_store_id} "
        f"failed for external key {where.xks_key_id} ({cause}). {error.message}"
    )


# -- double encryption --------------------------------------------------------------------------------------
def is_external(record: KeyRecord) -> bool:
    return record.origin is Origin.EXTERNAL_KEY_STORE


def wrap(core: KmsCore, ctx: RequestContext, loaded: LoadedKey, inner: bytes, material_id: str) -> bytes:
    """The outer encryption of ``inner`` (a version 1 blob of the key's own material) by the external key."""
    record = loaded.record
    where, proxy = _usable(core, ctx, record)
    header = symmetric.external_header(record.key_id, material_id)
    body = {
        "requestMetadata": _metadata(ctx, record.arn),
        "plaintext": b64(inner),
        "additionalAuthenticatedData": b64(header),
        "encryptionAlgorithm": ALGORITHM,
        "ciphertextDataIntegrityValueAlgorithm": CDIV,
    }
    try:
        answer = custom_key_stores.client(core).call(proxy, f"keys/{where.xks_key_id}/encrypt", body)
        ciphertext = unb64(answer, "ciphertext") or b""
        iv = unb64(answer, "initializationVector") or b""
        tag = unb64(answer, "authenticationTag") or b""
        metadata = unb64(answer, "ciphertextMetadata", required=False)
        integrity = unb64(answer, "ciphertextDataIntegrityValue", required=False)
    except ProxyError as exc:
        raise _crypto_error(record, where, exc) from None
    if integrity is not None and integrity != xks_crypto.integrity_value(
        header, metadata, xks_crypto.Encrypted(iv, ciphertext, tag)
    ):
        raise _crypto_error(
            record,
            where,
            ProxyError(Failure.INVALID_RESPONSE, "Its ciphertextDataIntegrityValue does not match."),
        )
    try:
        return symmetric.pack_external(symmetric.ExternalParts(header, iv, tag, metadata or b"", ciphertext))
    except symmetric.InvalidCiphertext:
        raise _crypto_error(
            record,
            where,
            ProxyError(Failure.INVALID_RESPONSE, "Its IV, tag or metadata has an invalid length."),
        ) from None


def unwrap(core: KmsCore, ctx: RequestContext, loaded: LoadedKey, blob: bytes) -> bytes:
    """The inner (version 1) blob of a double encryption, decrypted by the external key."""
    record = loaded.record
    try:
        parts = symmetric.unpack_external(blob)
    except symmetric.InvalidCiphertext:
        raise InvalidCiphertextException("") from None
    where, proxy = _usable(core, ctx, record)
    body: dict[str, Any] = {
        "requestMetadata": _metadata(ctx, record.arn),
        "ciphertext": b64(parts.ciphertext),
        "additionalAuthenticatedData": b64(parts.header),
        "encryptionAlgorithm": ALGORITHM,
        "initializationVector": b64(parts.iv),
        "authenticationTag": b64(parts.tag),
    }
    if parts.metadata:
        body["ciphertextMetadata"] = b64(parts.metadata)
    try:
        answer = custom_key_stores.client(core).call(proxy, f"keys/{where.xks_key_id}/decrypt", body)
        return unb64(answer, "plaintext") or b""
    except ProxyError as exc:
        if exc.error_name == "InvalidCiphertextException":
            raise InvalidCiphertextException("") from None
        raise _crypto_error(record, where, exc) from None
