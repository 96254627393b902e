"""The condition keys a KMS request's parameters set (``kms:EncryptionAlgorithm``,
``kms:EncryptionContext:<key>``, ``aws:RequestTag/<key>``…), with AWS's defaults for omitted parameters.

Pure: the request context computes them when it learns the request's parameters
(``RequestContext.set_request``), and authorization (``service/kms/authz.py``) reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class _Ambiguous:
    """The type of :data:`AMBIGUOUS`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "AMBIGUOUS"


#: The value of a condition key whose name the request gives more than once in spellings that differ
#: only in case (an encryption context ``{"A": "1", "a": "2"}``): which value ``kms:EncryptionContext:a``
#: means is ambiguous. A condition on such a key never lets an Allow statement apply and always lets
#: a Deny statement apply (see the policy engine), whatever the order of the pairs.
AMBIGUOUS = _Ambiguous()


def encryption_context_conditions(context: Mapping[str, str] | None) -> dict[str, Any]:
    """kms:EncryptionContext:<key> and kms:EncryptionContextKeys for a request's encryption context.
    Condition key names are matched without regard to case, so keys of the context that differ only
    in case (``{"A": "1", "a": "2"}``) make ``kms:EncryptionContext:a`` ambiguous: every spelling of
    it is AMBIGUOUS, which no Allow statement's condition accepts and every Deny statement's does,
    whatever the order of the pairs."""
    conditions: dict[str, Any] = {}
    first: dict[str, str] = {}
    for key, value in (context or {}).items():
        spelling = first.setdefault(key.lower(), key)
        if spelling != key:
            conditions[f"kms:EncryptionContext:{spelling}"] = AMBIGUOUS
            conditions[f"kms:EncryptionContext:{key}"] = AMBIGUOUS
        else:
            conditions[f"kms:EncryptionContext:{key}"] = value
    conditions["kms:EncryptionContextKeys"] = list(context or {})
    return conditions


# Per operation: request parameter -> (condition key, value used when the parameter is omitted).
_ALGORITHM = ("encryption_algorithm", "kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
_SIGNING = (("signing_algorithm", "kms:SigningAlgorithm", None), ("message_type", "kms:MessageType", "RAW"))
_OPERATION_KEYS: dict[str, tuple[tuple[str, str, Any], ...]] = {
    "Encrypt": (_ALGORITHM,),
    "Decrypt": (_ALGORITHM,),
    "GenerateDataKey": (_ALGORITHM,),
    "GenerateDataKeyWithoutPlaintext": (_ALGORITHM,),
    "GenerateDataKeyPair": (_ALGORITHM, ("key_pair_spec", "kms:DataKeyPairSpec", None)),
    "GenerateDataKeyPairWithoutPlaintext": (_ALGORITHM, ("key_pair_spec", "kms:DataKeyPairSpec", None)),
    "ReEncrypt": (("source_encryption_algorithm", "kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT"),),
    "Sign": (("signing_algorithm", "kms:SigningAlgorithm", None), ("message_type", "kms:MessageType", "RAW")),
    "Verify": (
        ("signing_algorithm", "kms:SigningAlgorithm", None),
        ("message_type", "kms:MessageType", "RAW"),
    ),
    "GenerateMac": (("mac_algorithm", "kms:MacAlgorithm", None),),
    "VerifyMac": (("mac_algorithm", "kms:MacAlgorithm", None),),
    "DeriveSharedSecret": (("key_agreement_algorithm", "kms:KeyAgreementAlgorithm", None),),
    "GetParametersForImport": (
        ("wrapping_algorithm", "kms:WrappingAlgorithm", None),
        ("wrapping_key_spec", "kms:WrappingKeySpec", None),
    ),
    "ImportKeyMaterial": (
        ("expiration_model", "kms:ExpirationModel", "KEY_MATERIAL_EXPIRES"),
        ("valid_to", "kms:ValidTo", None),
    ),
    "ScheduleKeyDeletion": (("pending_window_in_days", "kms:ScheduleKeyDeletionPendingWindowInDays", 30),),
    "EnableKeyRotation": (("rotation_period_in_days", "kms:RotationPeriodInDays", 365),),
    "CreateKey": (("bypass_policy_lockout_safety_check", "kms:BypassPolicyLockoutSafetyCheck", False),),
    "PutKeyPolicy": (("bypass_policy_lockout_safety_check", "kms:BypassPolicyLockoutSafetyCheck", False),),
    "ReplicateKey": (("replica_region", "kms:ReplicaRegion", None),),
    "UpdatePrimaryRegion": (("primary_region", "kms:PrimaryRegion", None),),
}
# Operations whose encryption context is a condition (kms:EncryptionContext:…, kms:EncryptionContextKeys).
_WITH_CONTEXT = frozenset(
    {
        "Encrypt",
        "Decrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
    }
)


def request_conditions(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The condition keys a request's parameters set (defaults apply to omitted parameters, as in AWS)."""
    conditions: dict[str, Any] = {}
    for name, key, default in _OPERATION_KEYS.get(operation, ()):
        value = params.get(name)
        if value is None:
            value = default
        if value is not None:
            conditions[key] = value
    if operation in _WITH_CONTEXT:
        conditions.update(encryption_context_conditions(params.get("encryption_context")))
    elif operation == "ReEncrypt":
        conditions.update(encryption_context_conditions(params.get("source_encryption_context")))
        # kms:ReEncryptOnSameKey is set by ReEncrypt itself, once it knows both keys.
    tags = params.get("tags")
    if tags:
        for tag in tags:
            conditions[f"aws:RequestTag/{tag['tag_key']}"] = tag["tag_value"]
        conditions["aws:TagKeys"] = [tag["tag_key"] for tag in tags]
    if params.get("tag_keys"):
        conditions["aws:TagKeys"] = list(params["tag_keys"])
    return conditions
