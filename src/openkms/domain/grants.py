"""Grant rules: which grant operations each kind of key supports, and which of them are subject to a
grant's encryption-context constraints."""

from __future__ import annotations

from openkms.domain.keyspec import HMAC_SPECS, KeySpec, KeyUsage

COMMON = ("DescribeKey", "CreateGrant", "RetireGrant")
SYMMETRIC = (
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
)
ASYMMETRIC_ENCRYPT = ("Decrypt", "Encrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey")
SIGN = ("Sign", "Verify", "GetPublicKey")
MAC = ("GenerateMac", "VerifyMac")
AGREEMENT = ("DeriveSharedSecret", "GetPublicKey")
# Grant operations whose encryption-context constraints apply.
CONSTRAINED = frozenset(SYMMETRIC)


def allowed_operations(spec: KeySpec, usage: KeyUsage) -> frozenset[str]:
    """The grant operations a key of this spec and usage supports."""
    if spec is KeySpec.SYMMETRIC_DEFAULT:
        ops: tuple[str, ...] = SYMMETRIC
    elif spec in HMAC_SPECS:
        ops = MAC
    elif usage is KeyUsage.ENCRYPT_DECRYPT:
        ops = ASYMMETRIC_ENCRYPT
    elif usage is KeyUsage.KEY_AGREEMENT:
        ops = AGREEMENT
    else:
        ops = SIGN
    return frozenset(ops + COMMON)
