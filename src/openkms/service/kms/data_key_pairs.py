"""GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: a fresh key pair for use outside
the service, its private key (PKCS#8 DER) encrypted under a symmetric KMS key — a ciphertext that
Decrypt opens like any other.

RSA pairs come from the runtime's pre-generated pool (``core.keypairs``) when it has one;
otherwise they are generated now, on a worker thread (never on the event loop). Elliptic-curve pairs
are generated on the spot (well under a millisecond).
"""

from __future__ import annotations

from typing import Any

from openkms.crypto import asymmetric
from openkms.domain.keyspec import RSA_SPECS, KeySpec, KeyUsage
from openkms.domain.keystate import check_key_state
from openkms.errors import (
    DryRunOperationException,
    InvalidKeyUsageException,
    UnsupportedOperationException,
    ValidationException,
)
from openkms.service.kms.context import NeedsIO, RequestContext
from openkms.service.kms.core import KmsCore
from openkms.service.kms.crypto_ops import _no_recipient, _symmetric_encrypt
from openkms.service.kms.key_material import check_usage


def _generate_data_key_pair(
    core: KmsCore,
    ctx: RequestContext,
    operation: str,
    key_id: str,
    key_pair_spec: str,
    encryption_context: dict[str, str] | None,
    dry_run: bool | None,
) -> dict[str, Any]:
    spec = KeySpec(key_pair_spec)
    if spec is KeySpec.SM2:
        if not ctx.region.startswith("cn-"):
            raise ValidationException(f"KeyPairSpec SM2 is not supported in the {ctx.region} region.")
        raise UnsupportedOperationException("KeyPairSpec SM2 is not supported by this service.")
    loaded = core.resolve(ctx, key_id, action=operation, allow_alias=True)
    record = loaded.record
    check_key_state(operation, record)
    check_usage(record, KeyUsage.ENCRYPT_DECRYPT, operation)
    if record.key_spec is not KeySpec.SYMMETRIC_DEFAULT:
        raise InvalidKeyUsageException(
            f"{record.arn} key spec {record.key_spec} is not valid for {operation}."
        )
    if dry_run:
        raise DryRunOperationException()
    pair = core.keypairs.take(spec)
    if pair is None:
        if spec in RSA_SPECS and not ctx.allow_io:
            raise NeedsIO()  # RSA generation takes 0.05-2 s: not on the event loop
        pair = asymmetric.generate_key_pair(spec)
    private_der, public_der = pair
    blob = _symmetric_encrypt(core, ctx, loaded, private_der, encryption_context)
    return {
        "private_key_ciphertext_blob": blob,
        "private_key_plaintext": private_der,
        "public_key": public_der,
        "key_id": record.arn,
        "key_pair_spec": str(spec),
        "key_material_id": record.current_material_id,
    }


def generate_data_key_pair(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    key_pair_spec: str,
    encryption_context: dict[str, str] | None = None,
    grant_tokens: list[str] | None = None,
    recipient: dict[str, Any] | None = None,
    dry_run: bool | None = None,
) -> dict[str, Any]:
    _no_recipient(recipient)
    return _generate_data_key_pair(
        core, ctx, "GenerateDataKeyPair", key_id, key_pair_spec, encryption_context, dry_run
    )


def generate_data_key_pair_without_plaintext(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    key_pair_spec: str,
    encryption_context: dict[str, str] | None = None,
    grant_tokens: list[str] | None = None,
    dry_run: bool | None = None,
) -> dict[str, Any]:
    result = _generate_data_key_pair(
        core, ctx, "GenerateDataKeyPairWithoutPlaintext", key_id, key_pair_spec, encryption_context, dry_run
    )
    del result["private_key_plaintext"]
    return result
