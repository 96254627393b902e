"""Every fact about each KMS operation, one frozen record per operation of botocore's KMS model.

A rule that depends on the operation is written once, here, as data; the modules that apply it derive
their tables from :data:`OPERATIONS` and hold no list of operation names of their own:

========================  ====================================================================
fact (field)              derived table, and the module that applies it
========================  ====================================================================
``cross_account``         :data:`CROSS_ACCOUNT` — the key lookup (``service/kms/core.py``)
``read_only``             ``audit/events.READ_ONLY`` — the record's ``readOnly``; ``server/app.py``
                          answers such calls before their record is stored and logs no response
``response_logged``       ``wire/audit.RESPONSE_NOT_LOGGED`` — ``responseElements`` always null
``logged_defaults``       ``wire/audit.REQUEST_DEFAULTS`` — ``requestParameters`` given a default
``usage_tracked``         ``service/kms/usage.TRACKED`` — what GetKeyLastUsage reports
``key_state``             ``domain/keystate.RULES`` — the row of AWS's key-state table
``grant_operations``,     ``domain/grants.allowed_operations`` and ``domain/grants.CONSTRAINED``
``grant_key_kinds``,      — which grant operations allow the call, on which kinds of key, and
``grant_constrained``     whether the grant's encryption-context constraints apply
``conditions``,           ``domain/conditions.request_conditions`` — the condition keys the
``context_conditions``,   request's parameters set; ``service_conditions`` names those the
``tag_conditions``,       operation's service function adds once it knows them
``service_conditions``
``quota``,                ``domain/quotas.BY_KEY_TYPE``, ``KEY_PAIR_OPERATIONS``, ``AWS_DEFAULT`` —
``default_quota``         the request-quota budget charged, and AWS's default for its own budget
``hot``                   ``service/kms/registry.HOT`` — run on the event loop when the key is cached
========================  ====================================================================

The operation's service function stays in ``service/kms/registry.py`` (service code); which operations
are implemented is that table's keys. ``tests/unit/test_operations.py`` checks this table against the
model: every operation has a record, cross-account use is the sentence ``Cross-account use: Yes. /
No. / Not applicable.`` of the operation's documentation, usage tracking is the model's list of
operations GetKeyLastUsage reports, the grant operations are the model's ``GrantOperation`` values,
the read-only, response-logging, key-state, condition and quota facts agree with the operations'
names and request and response members, and the derived tables agree with the records.

Cross-account use:

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
from typing import NamedTuple


class CrossAccount(enum.Enum):
    YES = "Yes"
    NO = "No"
    NOT_APPLICABLE = "Not applicable"
    CALLER_PRINCIPAL = "principal in the caller's account"


class KeyStateRule(enum.Enum):
    """A row of AWS's "key states: effect on your KMS key" table; ``domain/keystate.py`` holds what
    each row allows and the error (with AWS's message) it raises otherwise."""

    USABLE = "Enabled keys, and multi-Region keys being updated (cryptographic use)"
    ANY_STATE = "every state"
    NOT_PENDING_DELETION = "not pending (replica) deletion"
    ENABLE_DISABLE = "not pending deletion or import, creating or updating"
    ROTATION_SETTING = "not disabled, pending deletion, creating or pending import; origin not EXTERNAL"
    ROTATION_STATUS = "not pending import"
    ROTATE_ON_DEMAND = "not disabled, pending deletion, creating or pending import"
    CANCEL_DELETION = "pending (replica) deletion only"
    REPLICATE = "Enabled keys only, not being updated"
    SCHEDULE_DELETION = "not pending (replica) deletion or updating"
    IMPORT_PARAMETERS = "not pending (replica) deletion, creating or updating"
    IMPORT = "not pending (replica) deletion or creating"
    DELETE_IMPORTED = "not creating or updating"


class KeyKind(enum.Enum):
    """The kinds of KMS key that support different grant operations (``domain/grants.key_kind``)."""

    SYMMETRIC = "SYMMETRIC_DEFAULT"
    ASYMMETRIC_ENCRYPT = "asymmetric ENCRYPT_DECRYPT"
    SIGN = "asymmetric SIGN_VERIFY"
    MAC = "HMAC"
    AGREEMENT = "asymmetric KEY_AGREEMENT"


class Quota(enum.Enum):
    """Which request-quota budget a call is charged to (``domain/quotas.operation_group``)."""

    OWN = "the operation's own budget, named after it"
    KEY_TYPE = "the cryptographic budget of its key's type, once the key is known"
    KEY_PAIR_SPEC = "GenerateDataKeyPair:<the requested key pair spec>"


class RequestCondition(NamedTuple):
    """A condition key a request parameter sets, and the value it has when the parameter is omitted
    (None: the key is then absent). A condition of no parameter always has its default value."""

    parameter: str | None  # snake_case, as decoded by the wire layer
    key: str
    default: str | int | bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationFacts:
    """What AWS states (or this service observes) about one KMS operation. A field left out means: no
    such fact (not read-only, response logged, no key-state row, not grantable, no condition keys,
    its own quota budget, not on the hot path)."""

    name: str
    #: Whether a key of another account may be named (see the module docstring).
    cross_account: CrossAccount
    #: CloudTrail ``readOnly``: the call changes nothing. Its response is never logged, and it is
    #: answered before its record is stored (the record follows within 50 ms, in a batch).
    read_only: bool = False
    #: False when CloudTrail records the response as null (cryptographic operations, GetKeyPolicy,
    #: GetParametersForImport) rather than its members that are neither blobs nor sensitive.
    response_logged: bool = True
    #: ``requestParameters`` CloudTrail records with a default value when the request omitted them.
    logged_defaults: tuple[tuple[str, str], ...] = ()
    #: A successful call counts as use of its key(s) for GetKeyLastUsage.
    usage_tracked: bool = False
    #: The key-state row of the key the operation acts on; None for operations without a key.
    key_state: KeyStateRule | None = None
    #: The grant operations that allow the call (ReEncrypt: ReEncryptFrom and ReEncryptTo, one per
    #: key); empty when no grant can allow it.
    grant_operations: tuple[str, ...] = ()
    #: The kinds of key a grant for ``grant_operations`` may be created on.
    grant_key_kinds: frozenset[KeyKind] = frozenset()
    #: A grant's encryption-context constraints apply to the call (it takes an encryption context).
    grant_constrained: bool = False
    #: The condition keys set from the request's parameters (with AWS's defaults).
    conditions: tuple[RequestCondition, ...] = ()
    #: The parameter whose encryption context sets ``kms:EncryptionContext:<key>`` and
    #: ``kms:EncryptionContextKeys``.
    context_conditions: str | None = None
    #: The request's ``Tags`` set ``aws:RequestTag/<key>`` and ``aws:TagKeys``, its ``TagKeys`` (to
    #: remove) set ``aws:TagKeys``.
    tag_conditions: bool = False
    #: Condition keys the operation's service function adds once it knows them (the new key's spec,
    #: the grant asked for, whether both keys are one).
    service_conditions: tuple[str, ...] = ()
    #: The request-quota budget the call is charged to.
    quota: Quota = Quota.OWN
    #: AWS's default quota of the operation's own budget (requests per second per account and Region);
    #: None for the operations charged to a shared budget.
    default_quota: float | None = None
    #: Needs no database when its key is cached: runs on the event loop first (slow work — parsing a
    #: private key, RSA-3072/4096 private-key operations, RSA key generation, Ed25519ph — raises
    #: NeedsIO and moves the call to a worker thread).
    hot: bool = False


_Y, _N = CrossAccount.YES, CrossAccount.NO
_USABLE = KeyStateRule.USABLE
_ANY_STATE = KeyStateRule.ANY_STATE
_NOT_PD = KeyStateRule.NOT_PENDING_DELETION
_SYM, _ASYM, _SIGN = KeyKind.SYMMETRIC, KeyKind.ASYMMETRIC_ENCRYPT, KeyKind.SIGN
_ENCRYPTION = frozenset({_SYM, _ASYM})
_ALL_KINDS = frozenset(KeyKind)

_ALGORITHM = RequestCondition("encryption_algorithm", "kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
# GenerateDataKey* take no algorithm: their data keys are always under the symmetric algorithm.
_SYMMETRIC_ALGORITHM = RequestCondition(None, "kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
_KEY_PAIR_SPEC = RequestCondition("key_pair_spec", "kms:DataKeyPairSpec")
_SIGNING = (
    RequestCondition("signing_algorithm", "kms:SigningAlgorithm"),
    RequestCondition("message_type", "kms:MessageType", "RAW"),
)
_MAC = RequestCondition("mac_algorithm", "kms:MacAlgorithm")
_BYPASS_LOCKOUT = RequestCondition(
    "bypass_policy_lockout_safety_check", "kms:BypassPolicyLockoutSafetyCheck", False
)
_LOGGED_ALGORITHM = (("encryptionAlgorithm", "SYMMETRIC_DEFAULT"),)  # the ct-encrypt/ct-decrypt examples
_CONTEXT = "encryption_context"

_RECORDS = (
    OperationFacts(
        name="CancelKeyDeletion", cross_account=_N, key_state=KeyStateRule.CANCEL_DELETION, default_quota=5
    ),
    OperationFacts(name="ConnectCustomKeyStore", cross_account=_N, default_quota=5),
    OperationFacts(name="CreateAlias", cross_account=_N, key_state=_NOT_PD, default_quota=5),
    OperationFacts(name="CreateCustomKeyStore", cross_account=_N, default_quota=5),
    OperationFacts(
        name="CreateGrant",
        cross_account=_Y,
        key_state=_USABLE,
        grant_operations=("CreateGrant",),
        grant_key_kinds=_ALL_KINDS,
        service_conditions=(
            "kms:GrantOperations",
            "kms:GranteePrincipal",
            "kms:GrantIsForAWSResource",
            "kms:RetiringPrincipal",
            "kms:GrantConstraintType",
            # the new grant's constraints (AWS's condition keys reference)
            "kms:EncryptionContext:<key>",
            "kms:EncryptionContextKeys",
        ),
        default_quota=50,
    ),
    OperationFacts(
        name="CreateKey",
        cross_account=_N,
        conditions=(_BYPASS_LOCKOUT,),
        tag_conditions=True,
        service_conditions=(
            "kms:KeySpec",
            "kms:CustomerMasterKeySpec",
            "kms:KeyUsage",
            "kms:CustomerMasterKeyUsage",
            "kms:KeyOrigin",
            "kms:MultiRegion",
        ),
        default_quota=5,
    ),
    OperationFacts(
        name="Decrypt",
        cross_account=_Y,
        read_only=True,
        response_logged=False,
        logged_defaults=_LOGGED_ALGORITHM,
        usage_tracked=True,
        key_state=_USABLE,
        grant_operations=("Decrypt",),
        grant_key_kinds=_ENCRYPTION,
        grant_constrained=True,
        conditions=(_ALGORITHM,),
        context_conditions=_CONTEXT,
        quota=Quota.KEY_TYPE,
        hot=True,
    ),
    OperationFacts(name="DeleteAlias", cross_account=_N, key_state=_ANY_STATE, default_quota=15),
    OperationFacts(name="DeleteCustomKeyStore", cross_account=_N, default_quota=5),
    OperationFacts(
        name="DeleteImportedKeyMaterial",
        cross_account=_N,
        key_state=KeyStateRule.DELETE_IMPORTED,
        default_quota=15,
    ),
    OperationFacts(
        name="DeriveSharedSecret",
        cross_account=_Y,
        read_only=True,
        response_logged=False,
        usage_tracked=True,
        key_state=_USABLE,
        grant_operations=("DeriveSharedSecret",),
        grant_key_kinds=frozenset({KeyKind.AGREEMENT}),
        conditions=(RequestCondition("key_agreement_algorithm", "kms:KeyAgreementAlgorithm"),),
        quota=Quota.KEY_TYPE,
        hot=True,
    ),
    OperationFacts(name="DescribeCustomKeyStores", cross_account=_N, read_only=True, default_quota=5),
    OperationFacts(
        name="DescribeKey",
        cross_account=_Y,
        read_only=True,
        key_state=_ANY_STATE,
        grant_operations=("DescribeKey",),
        grant_key_kinds=_ALL_KINDS,
        default_quota=2_000,
        hot=True,
    ),
    OperationFacts(
        name="DisableKey", cross_account=_N, key_state=KeyStateRule.ENABLE_DISABLE, default_quota=5
    ),
    OperationFacts(
        name="DisableKeyRotation", cross_account=_N, key_state=KeyStateRule.ROTATION_SETTING, default_quota=5
    ),
    OperationFacts(name="DisconnectCustomKeyStore", cross_account=_N, default_quota=5),
    OperationFacts(
        name="EnableKey", cross_account=_N, key_state=KeyStateRule.ENABLE_DISABLE, default_quota=5
    ),
    OperationFacts(
        name="EnableKeyRotation",
        cross_account=_N,
        key_state=KeyStateRule.ROTATION_SETTING,
        conditions=(RequestCondition("rotation_period_in_days", "kms:RotationPeriodInDays", 365),),
        default_quota=15,
    ),
    OperationFacts(
        name="Encrypt",
        cross_account=_Y,
        read_only=True,
        response_logged=False,
        logged_defaults=_LOGGED_ALGORITHM,
        usage_tracked=True,
        key_state=_USABLE,
        grant_operations=("Encrypt",),
        grant_key_kinds=_ENCRYPTION,
        grant_constrained=True,
        conditions=(_ALGORITHM,),
        context_conditions=_CONTEXT,
        quota=Quota.KEY_TYPE,
        hot=True,
    ),
    OperationFacts(
        name="GenerateDataKey",
        cross_account=_Y,
        read_only=True,
        response_logged=False,
        usage_tracked=True,
        key_state=_USABLE,
        grant_operations=("GenerateDataKey",),
        grant_key_kinds=frozenset({_SYM}),
        grant_constrained=True,
        conditions=(_SYMMETRIC_ALGORITHM,),
        context_conditions=_CONTEXT,
        quota=Quota.KEY_TYPE,
        hot=True,
    ),
    OperationFacts(
        name="GenerateDataKeyPair",
        cross_account=_Y,
        read_only=True,
        response_logged=False,
        usage_tracked=True,
        key_state=_USABLE,
        grant_operations=("GenerateDataKeyPair",),
        grant_key_kinds=frozenset({_SYM}),
        grant_constrained=True,
        conditions=(_SYMMETRIC_ALGORITHM, _KEY_PAIR_SPEC),
        context_conditions=_CONTEXT,
        quota=Quota.KEY_PAIR_SPEC,
        hot=True,
    ),
    OperationFacts(
        name="GenerateDataKeyPairWithoutPlaintext",
        cross_account=_Y,
        read_only=True,
        response_logged=False,
        usage_tracked=True,
        key_state=_USABLE,
        grant_operations=("GenerateDataKeyPairWithoutPlaintext",),
        grant_key_kinds=frozenset({_SYM}),
        grant_constrained=True,
        conditions=(_SYMMETRIC_ALGORITHM, _KEY_PAIR_SPEC),
        context_conditions=_CONTEXT,
        quota=Quota.KEY_PAIR_SPEC,
        hot=True,
    ),
    OperationFacts(
        name="GenerateDataKeyWithoutPlaintext",
        cross_account=_Y,
        read_only=True,
        response_logged=False,
        usage_tracked=True,
        key_state=_USABLE,
        grant_operations=("GenerateDataKeyWithoutPlaintext",),
        grant_key_kinds=frozenset({_SYM}),
        grant_constrained=True,
        conditions=(_SYMMETRIC_ALGORITHM,),
        context_conditions=_CONTEXT,
        quota=Quota.KEY_TYPE,
        hot=True,
    ),
    OperationFacts(
        name="GenerateMac",
        cross_account=_Y,
        read_only=True,
        response_logged=False,
        usage_tracked=True,
        key_state=_USABLE,
        grant_operations=("GenerateMac",),
        grant_key_kinds=frozenset({KeyKind.MAC}),
        conditions=(_MAC,),
        quota=Quota.KEY_TYPE,
        hot=True,
    ),
    OperationFacts(
        name="GenerateRandom",
        cross_account=CrossAccount.NOT_APPLICABLE,
        read_only=True,
        response_logged=False,
        default_quota=10_000,
        hot=True,
    ),
    OperationFacts(
        name="GetKeyLastUsage", cross_account=_N, read_only=True, key_state=_ANY_STATE, default_quota=5
    ),
    OperationFacts(
        name="GetKeyPolicy",
        cross_account=_N,
        read_only=True,
        response_logged=False,
        key_state=_ANY_STATE,
        default_quota=1_000,
    ),
    OperationFacts(
        name="GetKeyRotationStatus",
        cross_account=_Y,
        read_only=True,
        key_state=KeyStateRule.ROTATION_STATUS,
        default_quota=1_000,
    ),
    OperationFacts(
        name="GetParametersForImport",
        cross_account=_N,
        read_only=True,
        response_logged=False,
        key_state=KeyStateRule.IMPORT_PARAMETERS,
        conditions=(
            RequestCondition("wrapping_algorithm", "kms:WrappingAlgorithm"),
            RequestCondition("wrapping_key_spec", "kms:WrappingKeySpec"),
        ),
        default_quota=1,
    ),
    OperationFacts(
        name="GetPublicKey",
        cross_account=_Y,
        read_only=True,
        key_state=_USABLE,
        grant_operations=("GetPublicKey",),
        grant_key_kinds=frozenset({_ASYM, _SIGN, KeyKind.AGREEMENT}),
        default_quota=2_000,
        hot=True,
    ),
    OperationFacts(
        name="ImportKeyMaterial",
        cross_account=_N,
        key_state=KeyStateRule.IMPORT,
        conditions=(
            RequestCondition("expiration_model", "kms:ExpirationModel", "KEY_MATERIAL_EXPIRES"),
            RequestCondition("valid_to", "kms:ValidTo"),
        ),
        default_quota=15,
    ),
    OperationFacts(
        name="ListAliases", cross_account=_N, read_only=True, key_state=_ANY_STATE, default_quota=500
    ),
    OperationFacts(
        name="ListGrants", cross_account=_Y, read_only=True, key_state=_ANY_STATE, default_quota=100
    ),
    OperationFacts(
        name="ListKeyPolicies", cross_account=_N, read_only=True, key_state=_ANY_STATE, default_quota=100
    ),
    OperationFacts(
        name="ListKeyRotations", cross_account=_N, read_only=True, key_state=_ANY_STATE, default_quota=100
    ),
    OperationFacts(name="ListKeys", cross_account=_N, read_only=True, default_quota=500),
    OperationFacts(
        name="ListResourceTags", cross_account=_N, read_only=True, key_state=_ANY_STATE, default_quota=2_000
    ),
    OperationFacts(
        name="ListRetirableGrants",
        cross_account=CrossAccount.CALLER_PRINCIPAL,
        read_only=True,
        default_quota=100,
    ),
    OperationFacts(
        name="PutKeyPolicy",
        cross_account=_N,
        key_state=_ANY_STATE,
        conditions=(_BYPASS_LOCKOUT,),
        default_quota=15,
    ),
    OperationFacts(
        name="ReEncrypt",
        cross_account=_Y,  # source and destination keys alike
        read_only=True,
        response_logged=False,
        usage_tracked=True,  # both keys
        key_state=_USABLE,
        grant_operations=("ReEncryptFrom", "ReEncryptTo"),
        grant_key_kinds=_ENCRYPTION,
        grant_constrained=True,
        conditions=(
            RequestCondition("source_encryption_algorithm", "kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT"),
        ),
        # ReEncryptTo is authorized with the destination's context and algorithm instead
        # (service/kms/authz.py).
        context_conditions="source_encryption_context",
        service_conditions=("kms:ReEncryptOnSameKey",),
        quota=Quota.KEY_TYPE,
        hot=True,
    ),
    OperationFacts(
        name="ReplicateKey",
        cross_account=_N,
        key_state=KeyStateRule.REPLICATE,
        conditions=(RequestCondition("replica_region", "kms:ReplicaRegion"),),
        tag_conditions=True,
        default_quota=5,
    ),
    OperationFacts(
        name="RetireGrant",
        cross_account=_Y,
        key_state=_ANY_STATE,
        grant_operations=("RetireGrant",),
        grant_key_kinds=_ALL_KINDS,
        default_quota=50,
    ),
    OperationFacts(name="RevokeGrant", cross_account=_Y, key_state=_ANY_STATE, default_quota=50),
    OperationFacts(
        name="RotateKeyOnDemand", cross_account=_N, key_state=KeyStateRule.ROTATE_ON_DEMAND, default_quota=5
    ),
    OperationFacts(
        name="ScheduleKeyDeletion",
        cross_account=_N,
        key_state=KeyStateRule.SCHEDULE_DELETION,
        conditions=(
            RequestCondition("pending_window_in_days", "kms:ScheduleKeyDeletionPendingWindowInDays", 30),
        ),
        default_quota=15,
    ),
    OperationFacts(
        name="Sign",
        cross_account=_Y,
        read_only=True,
        response_logged=False,
        usage_tracked=True,
        key_state=_USABLE,
        grant_operations=("Sign",),
        grant_key_kinds=frozenset({_SIGN}),
        conditions=_SIGNING,
        quota=Quota.KEY_TYPE,
        hot=True,
    ),
    OperationFacts(
        name="TagResource", cross_account=_N, key_state=_NOT_PD, tag_conditions=True, default_quota=10
    ),
    OperationFacts(
        name="UntagResource", cross_account=_N, key_state=_NOT_PD, tag_conditions=True, default_quota=5
    ),
    OperationFacts(name="UpdateAlias", cross_account=_N, key_state=_NOT_PD, default_quota=5),
    OperationFacts(name="UpdateCustomKeyStore", cross_account=_N, default_quota=5),
    OperationFacts(name="UpdateKeyDescription", cross_account=_N, key_state=_NOT_PD, default_quota=5),
    OperationFacts(
        name="UpdatePrimaryRegion",
        cross_account=_N,
        key_state=_USABLE,
        conditions=(RequestCondition("primary_region", "kms:PrimaryRegion"),),
        default_quota=5,
    ),
    OperationFacts(
        name="Verify",
        cross_account=_Y,
        read_only=True,
        response_logged=False,
        usage_tracked=True,
        key_state=_USABLE,
        grant_operations=("Verify",),
        grant_key_kinds=frozenset({_SIGN}),
        conditions=_SIGNING,
        quota=Quota.KEY_TYPE,
        hot=True,
    ),
    OperationFacts(
        name="VerifyMac",
        cross_account=_Y,
        read_only=True,
        response_logged=False,
        usage_tracked=True,
        key_state=_USABLE,
        grant_operations=("VerifyMac",),
        grant_key_kinds=frozenset({KeyKind.MAC}),
        conditions=(_MAC,),
        quota=Quota.KEY_TYPE,
        hot=True,
    ),
)

#: Operation name -> its record, in the model's (alphabetical) order.
OPERATIONS: Mapping[str, OperationFacts] = MappingProxyType({facts.name: facts for facts in _RECORDS})


#: The operations that accept a KMS key of another account (by key ARN or alias ARN).
CROSS_ACCOUNT: frozenset[str] = frozenset(
    name for name, facts in OPERATIONS.items() if facts.cross_account is CrossAccount.YES
)


def accepts_other_accounts_key(operation: str) -> bool:
    """Whether ``operation`` may act on a key of another account (False for an unknown name)."""
    return operation in CROSS_ACCOUNT
