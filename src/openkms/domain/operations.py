"""Per-operation facts of the KMS API, one record per operation of botocore's KMS model.

This module holds what AWS states about each operation as data, so that a rule about operations is
written once and read from here (a later restructuring will move more per-operation facts here).
Today it holds each operation's *cross-account use* — the sentence ``Cross-account use: Yes. / No. /
Not applicable.`` of the operation's documentation in the model (tests/unit/test_operations.py
checks this table against it):

* ``YES``: the operation accepts a KMS key of another account, named by its key ARN or alias ARN;
  the key policy and the caller's identity policies decide.
* ``NO``: a key of another account is refused whatever the policies say. The service answers as if
  the key had been looked up in the caller's own account (``NotFoundException`` "Key
  'arn:aws:kms:<region>:<caller account>:key/<id>' does not exist"), before the key is read or any
  policy evaluated, so the answer is the same whether or not the other account's key exists.
* ``NOT_APPLICABLE``: the operation uses no account resource (GenerateRandom).
* ``CALLER_PRINCIPAL``: ListRetirableGrants, whose RetiringPrincipal must be of the caller's account
  (the operation takes no key).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class CrossAccount(enum.Enum):
    YES = "Yes"
    NO = "No"
    NOT_APPLICABLE = "Not applicable"
    CALLER_PRINCIPAL = "principal in the caller's account"


@dataclass(frozen=True, slots=True)
class OperationFacts:
    name: str
    cross_account: CrossAccount


_Y, _N = CrossAccount.YES, CrossAccount.NO

_TABLE: tuple[tuple[str, CrossAccount], ...] = (
    ("CancelKeyDeletion", _N),
    ("ConnectCustomKeyStore", _N),
    ("CreateAlias", _N),
    ("CreateCustomKeyStore", _N),
    ("CreateGrant", _Y),
    ("CreateKey", _N),
    ("Decrypt", _Y),
    ("DeleteAlias", _N),
    ("DeleteCustomKeyStore", _N),
    ("DeleteImportedKeyMaterial", _N),
    ("DeriveSharedSecret", _Y),
    ("DescribeCustomKeyStores", _N),
    ("DescribeKey", _Y),
    ("DisableKey", _N),
    ("DisableKeyRotation", _N),
    ("DisconnectCustomKeyStore", _N),
    ("EnableKey", _N),
    ("EnableKeyRotation", _N),
    ("Encrypt", _Y),
    ("GenerateDataKey", _Y),
    ("GenerateDataKeyPair", _Y),
    ("GenerateDataKeyPairWithoutPlaintext", _Y),
    ("GenerateDataKeyWithoutPlaintext", _Y),
    ("GenerateMac", _Y),
    ("GenerateRandom", CrossAccount.NOT_APPLICABLE),
    ("GetKeyLastUsage", _N),
    ("GetKeyPolicy", _N),
    ("GetKeyRotationStatus", _Y),
    ("GetParametersForImport", _N),
    ("GetPublicKey", _Y),
    ("ImportKeyMaterial", _N),
    ("ListAliases", _N),
    ("ListGrants", _Y),
    ("ListKeyPolicies", _N),
    ("ListKeyRotations", _N),
    ("ListKeys", _N),
    ("ListResourceTags", _N),
    ("ListRetirableGrants", CrossAccount.CALLER_PRINCIPAL),
    ("PutKeyPolicy", _N),
    ("ReEncrypt", _Y),  # source and destination keys alike
    ("ReplicateKey", _N),
    ("RetireGrant", _Y),
    ("RevokeGrant", _Y),
    ("RotateKeyOnDemand", _N),
    ("ScheduleKeyDeletion", _N),
    ("Sign", _Y),
    ("TagResource", _N),
    ("UntagResource", _N),
    ("UpdateAlias", _N),
    ("UpdateCustomKeyStore", _N),
    ("UpdateKeyDescription", _N),
    ("UpdatePrimaryRegion", _N),
    ("Verify", _Y),
    ("VerifyMac", _Y),
)

OPERATIONS: Mapping[str, OperationFacts] = MappingProxyType(
    {name: OperationFacts(name, cross) for name, cross in _TABLE}
)

#: The operations that accept a KMS key of another account (by key ARN or alias ARN).
CROSS_ACCOUNT: frozenset[str] = frozenset(
    name for name, facts in OPERATIONS.items() if facts.cross_account is CrossAccount.YES
)


def accepts_other_accounts_key(operation: str) -> bool:
    """Whether ``operation`` may act on a key of another account (False for an unknown name)."""
    return operation in CROSS_ACCOUNT
