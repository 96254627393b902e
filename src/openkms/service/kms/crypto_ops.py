"""Symmetric cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
GenerateDataKeyWithoutPlaintext and GenerateRandom.

These run on the hot path: with the key in the cache they touch no database and run directly on the
event loop (``ctx.allow_io`` is False); a cache miss raises NeedsIO before anything has happened.
"""

from __future__ import annotations

from typing import Any

from openkms.crypto import symmetric
from openkms.crypto.randomness import random_bytes
from openkms.domain.keyspec import KeySpec, KeyUsage
from openkms.domain.keystate import check_key_state
from openkms.domain.model import KeyRecord
from openkms.errors import (
    AccessDeniedException,
    CustomKeyStoreNotFoundException,
    DryRunOperationException,
    IncorrectKeyException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    KMSInvalidStateException,
    ServiceError,
    UnsupportedOperationException,
    ValidationException,
)
from openkms.service.kms import asymmetric_ops, external_keys
from openkms.service.kms.context import NeedsIO, RequestContext
from openkms.service.kms.core import KmsCore
from openkms.service.kms.keycache import LoadedKey

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
IGNORE_CIPHERTEXT = "IGNORE_CIPHERTEXT"
_NO_CIPHERTEXT_KEY = (
    "The ciphertext refers to a customer master key that does not exist, does not exist in this region, "
    "or you are not allowed to access."
)


def _check_usage(record: KeyRecord, usage: KeyUsage, operation: str) -> None:
    if record.key_usage is not usage:
        raise InvalidKeyUsageException(
            f"{record.arn} key usage is {record.key_usage} which is not valid for {operation}."
        )


def _check_encryption_algorithm(record: KeyRecord, algorithm: str) -> None:
    if record.key_spec is KeySpec.SYMMETRIC_DEFAULT and algorithm != SYMMETRIC_DEFAULT:
        raise InvalidKeyUsageException(
            f"Algorithm {algorithm} is incompatible with key spec {record.key_spec}."
        )


def _no_recipient(recipient: Any) -> None:
    if recipient is not None:
        raise UnsupportedOperationException(
            "Recipient (Nitro Enclaves attestation) is not supported by this service."
        )


def _symmetric_encrypt(
    core: KmsCore, ctx: RequestContext, loaded: LoadedKey, plaintext: bytes, context: dict[str, str] | None
) -> bytes:
    record = loaded.record
    material_id = record.current_material_id
    if material_id is None or material_id not in loaded.secrets:
        raise KMSInvalidStateException(f"{record.arn} is pending import.")
    if external_keys.is_external(record) and not ctx.allow_io:
        raise NeedsIO()  # the proxy is called off the event loop, before anything is done
    ctx.additional_event_data["keyMaterialId"] = material_id
    blob = symmetric.encrypt(
        record.key_id, material_id, loaded.secrets[material_id].reveal(), plaintext, context
    )
    if external_keys.is_external(record):  # double encryption: then the external key's
        blob = external_keys.wrap(core, ctx, loaded, blob, material_id)
    return blob


def _usable_for_encrypt(
    core: KmsCore, ctx: RequestContext, key_id: str, operation: str, algorithm: str, action: str
) -> LoadedKey:
    loaded = core.resolve(ctx, key_id, action=action, allow_alias=True)
    check_key_state(operation, loaded.record)
    _check_usage(loaded.record, KeyUsage.ENCRYPT_DECRYPT, operation)
    _check_encryption_algorithm(loaded.record, algorithm)
    return loaded


def encrypt(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    plaintext: bytes,
    encryption_context: dict[str, str] | None = None,
    grant_tokens: list[str] | None = None,
    encryption_algorithm: str | None = None,
    dry_run: bool | None = None,
) -> dict[str, Any]:
    algorithm = encryption_algorithm or SYMMETRIC_DEFAULT
    loaded = _usable_for_encrypt(core, ctx, key_id, "Encrypt", algorithm, "Encrypt")
    if loaded.record.key_spec is not KeySpec.SYMMETRIC_DEFAULT:
        asymmetric_ops.check_rsa_encrypt(loaded.record, algorithm, plaintext, encryption_context)
        if dry_run:
            raise DryRunOperationException()
        blob = asymmetric_ops.rsa_encrypt(ctx, loaded, algorithm, plaintext)
        return {"ciphertext_blob": blob, "key_id": loaded.record.arn, "encryption_algorithm": algorithm}
    if dry_run:
        raise DryRunOperationException()
    blob = _symmetric_encrypt(core, ctx, loaded, plaintext, encryption_context)
    return {"ciphertext_blob": blob, "key_id": loaded.record.arn, "encryption_algorithm": algorithm}


def _not_null(member: str) -> ValidationException:
    return ValidationException(
        f"1 validation error detected: Value null at '{member}' failed to satisfy constraint: "
        "Member must not be null"
    )


def _ignores_ciphertext(dry_run: bool | None, modifiers: list[str] | None) -> bool:
    """A dry run with the IGNORE_CIPHERTEXT modifier checks only the keys named in the request
    (authorization, key state, key usage), not the ciphertext, which it does not need. That is why
    the model leaves CiphertextBlob optional; every other Decrypt and ReEncrypt must carry one."""
    return bool(dry_run) and IGNORE_CIPHERTEXT in (modifiers or ())


def _open(
    core: KmsCore,
    ctx: RequestContext,
    blob: bytes,
    context: dict[str, str] | None,
    key_id: str | None,
    algorithm: str,
    operation: str,
    action: str,
) -> tuple[LoadedKey, str | None, bytes]:
    """Decrypt a ciphertext: (key, material id or None for asymmetric keys, plaintext).

    An asymmetric ciphertext names no key: the request must name the key and its algorithm."""
    named: LoadedKey | None = None
    if key_id is not None:
        named = core.resolve(ctx, key_id, action=action, allow_alias=True)
        if named.record.key_spec is not KeySpec.SYMMETRIC_DEFAULT:
            plaintext = asymmetric_ops.rsa_decrypt(ctx, named, blob, context, algorithm, operation)
            return named, None, plaintext
    elif algorithm != SYMMETRIC_DEFAULT:
        raise InvalidCiphertextException("")
    return _open_symmetric(core, ctx, blob, context, named, algorithm, operation, action)


def _open_symmetric(
    core: KmsCore,
    ctx: RequestContext,
    blob: bytes,
    context: dict[str, str] | None,
    named: LoadedKey | None,
    algorithm: str,
    operation: str,
    action: str,
) -> tuple[LoadedKey, str, bytes]:
    """Find the key a symmetric ciphertext names, check it may decrypt, and decrypt."""
    try:
        header = symmetric.parse_header(blob)
    except symmetric.InvalidCiphertext:
        raise InvalidCiphertextException("") from None
    if named is not None and named.record.key_id != header.key_id:
        raise IncorrectKeyException(
            "The key ID in the request does not identify a CMK that can perform this operation."
        )
    loaded = named
    if loaded is None:
        loaded = core.load_key(ctx, ctx.region, header.key_id)
        if loaded is None:
            raise AccessDeniedException(_NO_CIPHERTEXT_KEY)
        core.authorize(ctx, action, loaded.record, None, loaded)
        ctx.touch(loaded.record.arn)
    if header.material_id not in loaded.secrets:
        # Key material this process has not loaded: a rotation or an import on another process may
        # have made it a moment ago (its change not yet heard of here). Read the key again, and check
        # the caller against what was read, before calling the ciphertext invalid.
        fresh = core.reload_key(ctx, loaded.record.region, loaded.record.key_id)
        if fresh is None:
            raise AccessDeniedException(_NO_CIPHERTEXT_KEY)
        core.authorize(ctx, action, fresh.record, None, fresh)
        loaded = fresh
    record = loaded.record
    check_key_state(operation, record)
    if record.key_spec is not KeySpec.SYMMETRIC_DEFAULT:
        raise IncorrectKeyException(
            "The key ID in the request does not identify a CMK that can perform this operation."
        )
    _check_encryption_algorithm(record, algorithm)
    material = loaded.secrets.get(header.material_id)
    if material is None or symmetric.is_external(blob) is not external_keys.is_external(record):
        raise InvalidCiphertextException("")
    if external_keys.is_external(record):  # double encryption: the external key's layer first
        if not ctx.allow_io:
            raise NeedsIO()
        blob = external_keys.unwrap(core, ctx, loaded, blob)
        try:
            inner = symmetric.parse_header(blob)
        except symmetric.InvalidCiphertext:
            raise InvalidCiphertextException("") from None
        if symmetric.is_external(blob) or inner != header:
            raise InvalidCiphertextException("")
    try:
        plaintext = symmetric.decrypt(material.reveal(), blob, context)
    except symmetric.InvalidCiphertext:
        raise InvalidCiphertextException("") from None
    return loaded, header.material_id, plaintext


def decrypt(
    core: KmsCore,
    ctx: RequestContext,
    *,
    ciphertext_blob: bytes | None = None,
    encryption_context: dict[str, str] | None = None,
    grant_tokens: list[str] | None = None,
    key_id: str | None = None,
    encryption_algorithm: str | None = None,
    recipient: dict[str, Any] | None = None,
    dry_run: bool | None = None,
    dry_run_modifiers: list[str] | None = None,
) -> dict[str, Any]:
    _no_recipient(recipient)
    algorithm = encryption_algorithm or SYMMETRIC_DEFAULT
    if _ignores_ciphertext(dry_run, dry_run_modifiers):
        if key_id is None:
            raise _not_null("keyId")
        _usable_for_encrypt(core, ctx, key_id, "Decrypt", algorithm, "Decrypt")
        raise DryRunOperationException()
    if ciphertext_blob is None:
        raise _not_null("ciphertextBlob")
    loaded, material_id, plaintext = _open(
        core, ctx, ciphertext_blob, encryption_context, key_id, algorithm, "Decrypt", "Decrypt"
    )
    if dry_run:
        raise DryRunOperationException()
    result: dict[str, Any] = {
        "key_id": loaded.record.arn,
        "plaintext": plaintext,
        "encryption_algorithm": algorithm,
    }
    if material_id is not None:
        ctx.additional_event_data["keyMaterialId"] = material_id
        result["key_material_id"] = material_id
    return result


def _same_key(
    core: KmsCore, ctx: RequestContext, blob: bytes, source_key_id: str | None, destination_key_id: str
) -> bool | None:
    """Condition key kms:ReEncryptOnSameKey: whether the ciphertext's key (named in a symmetric
    ciphertext, or SourceKeyId) is the destination key, aliases and ARNs resolved. None when either
    cannot be told; the request then fails on that key with its own error, in AWS's order."""
    try:  # key ids are unique: a symmetric ciphertext names its key by id alone
        source = (ctx.region, symmetric.parse_header(blob).key_id)
    except symmetric.InvalidCiphertext:
        if source_key_id is None:
            return None
        try:
            region, _, key_id = core.locate(ctx, source_key_id, allow_alias=True)
        except ServiceError:
            return None
        source = (region, key_id)
    try:
        region, _, key_id = core.locate(ctx, destination_key_id, allow_alias=True)
    except ServiceError:
        return None
    return source == (region, key_id)


def re_encrypt(
    core: KmsCore,
    ctx: RequestContext,
    *,
    destination_key_id: str,
    ciphertext_blob: bytes | None = None,
    source_encryption_context: dict[str, str] | None = None,
    source_key_id: str | None = None,
    destination_encryption_context: dict[str, str] | None = None,
    source_encryption_algorithm: str | None = None,
    destination_encryption_algorithm: str | None = None,
    grant_tokens: list[str] | None = None,
    dry_run: bool | None = None,
    dry_run_modifiers: list[str] | None = None,
) -> dict[str, Any]:
    source_alg = source_encryption_algorithm or SYMMETRIC_DEFAULT
    dest_alg = destination_encryption_algorithm or SYMMETRIC_DEFAULT
    ignore_ciphertext = _ignores_ciphertext(dry_run, dry_run_modifiers)
    if ignore_ciphertext and source_key_id is None:
        raise _not_null("sourceKeyId")
    if ciphertext_blob is None and not ignore_ciphertext:
        raise _not_null("ciphertextBlob")
    same = _same_key(core, ctx, ciphertext_blob or b"", source_key_id, destination_key_id)
    if same is not None:
        ctx.conditions["kms:ReEncryptOnSameKey"] = same
    if ignore_ciphertext or ciphertext_blob is None:
        if source_key_id is None:  # refused above: ignoring the ciphertext needs the source key
            raise _not_null("sourceKeyId")
        _usable_for_encrypt(core, ctx, source_key_id, "ReEncrypt", source_alg, "ReEncryptFrom")
        _usable_for_encrypt(core, ctx, destination_key_id, "ReEncrypt", dest_alg, "ReEncryptTo")
        raise DryRunOperationException()
    source, source_material, plaintext = _open(
        core,
        ctx,
        ciphertext_blob,
        source_encryption_context,
        source_key_id,
        source_alg,
        "ReEncrypt",
        "ReEncryptFrom",
    )
    dest = _usable_for_encrypt(core, ctx, destination_key_id, "ReEncrypt", dest_alg, "ReEncryptTo")
    dest_symmetric = dest.record.key_spec is KeySpec.SYMMETRIC_DEFAULT
    if not dest_symmetric:
        asymmetric_ops.check_rsa_encrypt(dest.record, dest_alg, plaintext, destination_encryption_context)
    if dry_run:
        raise DryRunOperationException()
    if dest_symmetric:
        blob = _symmetric_encrypt(core, ctx, dest, plaintext, destination_encryption_context)
        ctx.additional_event_data.pop("keyMaterialId", None)
    else:
        blob = asymmetric_ops.rsa_encrypt(ctx, dest, dest_alg, plaintext)
    result: dict[str, Any] = {
        "ciphertext_blob": blob,
        "source_key_id": source.record.arn,
        "key_id": dest.record.arn,
        "source_encryption_algorithm": source_alg,
        "destination_encryption_algorithm": dest_alg,
    }
    if source_material is not None:
        result["source_key_material_id"] = source_material
    if dest_symmetric:
        result["destination_key_material_id"] = dest.record.current_material_id
    return result


def _data_key_length(key_spec: str | None, number_of_bytes: int | None) -> int:
    if key_spec is not None and number_of_bytes is not None:
        raise ValidationException("Please specify either number of bytes or key spec, not both.")
    if key_spec is not None:
        return 32 if key_spec == "AES_256" else 16
    if number_of_bytes is None:
        raise ValidationException("Please specify either number of bytes or key spec.")
    return number_of_bytes


def _generate_data_key(
    core: KmsCore,
    ctx: RequestContext,
    operation: str,
    key_id: str,
    encryption_context: dict[str, str] | None,
    number_of_bytes: int | None,
    key_spec: str | None,
    dry_run: bool | None,
) -> dict[str, Any]:
    loaded = core.resolve(ctx, key_id, action=operation, allow_alias=True)
    length = _data_key_length(key_spec, number_of_bytes)
    record = loaded.record
    check_key_state(operation, record)
    _check_usage(record, KeyUsage.ENCRYPT_DECRYPT, operation)
    if record.key_spec is not KeySpec.SYMMETRIC_DEFAULT:
        raise InvalidKeyUsageException(
            f"{record.arn} key spec {record.key_spec} is not valid for {operation}."
        )
    if dry_run:
        raise DryRunOperationException()
    data_key = random_bytes(length)
    blob = _symmetric_encrypt(core, ctx, loaded, data_key, encryption_context)
    return {
        "ciphertext_blob": blob,
        "plaintext": data_key,
        "key_id": record.arn,
        "key_material_id": record.current_material_id,
    }


def generate_data_key(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    encryption_context: dict[str, str] | None = None,
    number_of_bytes: int | None = None,
    key_spec: str | None = None,
    grant_tokens: list[str] | None = None,
    recipient: dict[str, Any] | None = None,
    dry_run: bool | None = None,
) -> dict[str, Any]:
    _no_recipient(recipient)
    return _generate_data_key(
        core, ctx, "GenerateDataKey", key_id, encryption_context, number_of_bytes, key_spec, dry_run
    )


def generate_data_key_without_plaintext(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    encryption_context: dict[str, str] | None = None,
    key_spec: str | None = None,
    number_of_bytes: int | None = None,
    grant_tokens: list[str] | None = None,
    dry_run: bool | None = None,
) -> dict[str, Any]:
    result = _generate_data_key(
        core,
        ctx,
        "GenerateDataKeyWithoutPlaintext",
        key_id,
        encryption_context,
        number_of_bytes,
        key_spec,
        dry_run,
    )
    del result["plaintext"]
    return result


def generate_random(
    core: KmsCore,
    ctx: RequestContext,
    *,
    number_of_bytes: int | None = None,
    custom_key_store_id: str | None = None,
    recipient: dict[str, Any] | None = None,
) -> dict[str, Any]:
    _no_recipient(recipient)
    if number_of_bytes is None:
        raise ValidationException("NumberOfBytes is required.")
    if custom_key_store_id is not None:
        raise CustomKeyStoreNotFoundException(f"Custom key store {custom_key_store_id} does not exist.")
    core.authorize(ctx, "GenerateRandom", None)
    return {"plaintext": random_bytes(number_of_bytes)}
