"""Operations of asymmetric keys: Sign, Verify, GetPublicKey, DeriveSharedSecret, and the RSA side of
Encrypt, Decrypt and ReEncrypt (called from :mod:`openkms.service.kms.crypto_ops`).

Like the symmetric operations these run on the event loop when the key is cached; slow work leaves
the loop first (see :mod:`openkms.service.kms.key_material`). Signatures, plaintexts and shared secrets
are never put in the audit record (the wire layer drops the blob members; the responses of these
operations are not logged).

Order of checks (AWS's): request validation (message type, digest length), key lookup and
authorization, key state, key usage, algorithm for the key spec, DryRun last.
"""

from __future__ import annotations

from typing import Any

from openkms.crypto import asymmetric
from openkms.domain.keyspec import (
    HMAC_SPECS,
    RSA_SPECS,
    SIGNING_ALGORITHMS,
    KeySpec,
    KeyUsage,
    algorithm_lists,
)
from openkms.domain.keystate import check_key_state
from openkms.domain.model import KeyRecord
from openkms.errors import (
    DryRunOperationException,
    IncorrectKeyException,
    InvalidCiphertextException,
    KMSInvalidSignatureException,
    UnsupportedOperationException,
    ValidationException,
)
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore
from openkms.service.kms.key_material import (
    check_usage,
    incompatible_algorithm,
    off_loop_if_slow,
    private_key,
)
from openkms.service.kms.keycache import LoadedKey

RAW, DIGEST, EXTERNAL_MU = "RAW", "DIGEST", "EXTERNAL_MU"
RSA_ENCRYPTION_ALGORITHMS = frozenset({"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"})
ML_DSA = "ML_DSA_SHAKE_256"
# Algorithms whose message type is fixed (AWS: Ed25519 pure takes RAW, Ed25519ph takes DIGEST).
_REQUIRED_MESSAGE_TYPE = {"ED25519_SHA_512": RAW, "ED25519_PH_SHA_512": DIGEST}


def _message_type(algorithm: str, message_type: str | None, message: bytes) -> str:
    """Validate MessageType and the message length for the algorithm; returns the message type."""
    kind = message_type or RAW
    required = _REQUIRED_MESSAGE_TYPE.get(algorithm)
    if required is not None and kind != required:
        raise ValidationException(f"Message type {kind} is incompatible with algorithm {algorithm}.")
    if algorithm == ML_DSA:
        if kind == DIGEST:
            raise ValidationException(f"Message type {kind} is incompatible with algorithm {algorithm}.")
        if kind == EXTERNAL_MU and len(message) != 64:
            raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    elif kind == EXTERNAL_MU:
        raise ValidationException(f"Message type {kind} is incompatible with algorithm {algorithm}.")
    if kind == DIGEST:
        length = asymmetric.digest_length(algorithm)
        if length is not None and len(message) != length:
            raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    return kind


def _signing_key(
    core: KmsCore, ctx: RequestContext, key_id: str, algorithm: str, operation: str
) -> LoadedKey:
    loaded = core.resolve(ctx, key_id, action=operation, allow_alias=True)
    record = loaded.record
    check_key_state(operation, record)
    check_usage(record, KeyUsage.SIGN_VERIFY, operation)
    if algorithm not in SIGNING_ALGORITHMS.get(record.key_spec, ()):
        raise incompatible_algorithm(algorithm, record)
    return loaded


def sign(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    message: bytes,
    signing_algorithm: str,
    message_type: str | None = None,
    grant_tokens: list[str] | None = None,
    dry_run: bool | None = None,
) -> dict[str, Any]:
    kind = _message_type(signing_algorithm, message_type, message)
    loaded = _signing_key(core, ctx, key_id, signing_algorithm, "Sign")
    if dry_run:
        raise DryRunOperationException()
    key = private_key(ctx, loaded)
    off_loop_if_slow(ctx, loaded.record, signing_algorithm, private_op=True)
    signature = asymmetric.sign(key, signing_algorithm, message, digest=kind != RAW)
    return {"key_id": loaded.record.arn, "signature": signature, "signing_algorithm": signing_algorithm}


def verify(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    message: bytes,
    signature: bytes,
    signing_algorithm: str,
    message_type: str | None = None,
    grant_tokens: list[str] | None = None,
    dry_run: bool | None = None,
) -> dict[str, Any]:
    kind = _message_type(signing_algorithm, message_type, message)
    loaded = _signing_key(core, ctx, key_id, signing_algorithm, "Verify")
    key = private_key(ctx, loaded)
    off_loop_if_slow(ctx, loaded.record, signing_algorithm, private_op=False)
    if not asymmetric.verify(key, signing_algorithm, message, signature, digest=kind != RAW):
        raise KMSInvalidSignatureException("")
    if dry_run:
        raise DryRunOperationException()
    return {"key_id": loaded.record.arn, "signature_valid": True, "signing_algorithm": signing_algorithm}


def get_public_key(
    core: KmsCore, ctx: RequestContext, *, key_id: str, grant_tokens: list[str] | None = None
) -> dict[str, Any]:
    loaded = core.resolve(ctx, key_id, action="GetPublicKey", allow_alias=True)
    record = loaded.record
    check_key_state("GetPublicKey", record)
    if record.key_spec is KeySpec.SYMMETRIC_DEFAULT or record.key_spec in HMAC_SPECS:
        raise UnsupportedOperationException(
            f"{record.arn} is a symmetric key; GetPublicKey is valid only for asymmetric KMS keys."
        )
    key = private_key(ctx, loaded)
    result: dict[str, Any] = {
        "key_id": record.arn,
        "public_key": key.public_der,
        "customer_master_key_spec": str(record.key_spec),
        "key_spec": str(record.key_spec),
        "key_usage": str(record.key_usage),
    }
    result.update({k: list(v) for k, v in algorithm_lists(record.key_spec, record.key_usage).items()})
    return result


def derive_shared_secret(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    key_agreement_algorithm: str,
    public_key: bytes,
    grant_tokens: list[str] | None = None,
    dry_run: bool | None = None,
    recipient: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if recipient is not None:
        raise UnsupportedOperationException(
            "Recipient (Nitro Enclaves attestation) is not supported by this service."
        )
    loaded = core.resolve(ctx, key_id, action="DeriveSharedSecret", allow_alias=True)
    record = loaded.record
    check_key_state("DeriveSharedSecret", record)
    check_usage(record, KeyUsage.KEY_AGREEMENT, "DeriveSharedSecret")
    if key_agreement_algorithm != "ECDH":
        raise incompatible_algorithm(key_agreement_algorithm, record)
    key = private_key(ctx, loaded)
    try:
        secret = asymmetric.derive_shared_secret(key, public_key)
    except asymmetric.InvalidPeerKey:
        raise ValidationException("") from None
    if dry_run:
        raise DryRunOperationException()
    return {
        "key_id": record.arn,
        "shared_secret": secret,
        "key_agreement_algorithm": "ECDH",
        "key_origin": str(record.origin),
    }


# --- RSA encryption (Encrypt / Decrypt / ReEncrypt with an RSA key) -------------------------------------


def check_rsa_encrypt(
    record: KeyRecord, algorithm: str, plaintext: bytes, context: dict[str, str] | None
) -> None:
    """Request checks of an RSA encryption: algorithm for the spec, no encryption context, size limit."""
    if record.key_spec not in RSA_SPECS or algorithm not in RSA_ENCRYPTION_ALGORITHMS:
        raise incompatible_algorithm(algorithm, record)
    if context:
        raise ValidationException("EncryptionContext is not supported with asymmetric KMS keys.")
    limit = asymmetric.rsa_max_plaintext(record.key_spec, algorithm)
    if len(plaintext) > limit:
        spec = record.key_spec
        raise ValidationException(
            f"Algorithm {algorithm} and key spec {spec} cannot encrypt data larger than {limit} bytes."
        )


def rsa_encrypt(ctx: RequestContext, loaded: LoadedKey, algorithm: str, plaintext: bytes) -> bytes:
    """RSAES-OAEP with the key's public key (checked by :func:`check_rsa_encrypt` first)."""
    return asymmetric.rsa_encrypt(private_key(ctx, loaded), algorithm, plaintext)


def rsa_decrypt(
    ctx: RequestContext,
    loaded: LoadedKey,
    blob: bytes,
    context: dict[str, str] | None,
    algorithm: str,
    operation: str,
) -> bytes:
    """Decrypt an RSAES-OAEP ciphertext with the asymmetric key a Decrypt/ReEncrypt request named."""
    record = loaded.record
    if algorithm == "SYMMETRIC_DEFAULT":
        # The request asks for a symmetric ciphertext, which this key cannot have made.
        raise IncorrectKeyException(
            "The key ID in the request does not identify a CMK that can perform this operation."
        )
    check_key_state(operation, record)
    check_usage(record, KeyUsage.ENCRYPT_DECRYPT, operation)
    if record.key_spec not in RSA_SPECS or algorithm not in RSA_ENCRYPTION_ALGORITHMS:
        raise incompatible_algorithm(algorithm, record)
    if context:
        raise ValidationException("EncryptionContext is not supported with asymmetric KMS keys.")
    key = private_key(ctx, loaded)
    off_loop_if_slow(ctx, record, algorithm, private_op=True)
    try:
        return asymmetric.rsa_decrypt(key, algorithm, blob)
    except asymmetric.DecryptionFailed:
        raise InvalidCiphertextException("") from None
