"""Grant rules: which grant operations each kind of key supports, which of them are subject to a
grant's encryption-context constraints, how a request's encryption context is compared with those
constraints, and which grants a grant's CreateGrant permission may create (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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


# --- encryption-context constraints -------------------------------------------------------------------
# A grant's constraints as stored: {"encryption_context_equals": {...}, "encryption_context_subset": {...}}
# (either or both; absent or empty means unconstrained).
EQUALS = "encryption_context_equals"
SUBSET = "encryption_context_subset"
Constraints = Mapping[str, Mapping[str, str] | None]


def fold_context(context: Mapping[str, str] | None) -> dict[str, str] | None:
    """The encryption context with its keys lower-cased (grant constraints compare key names without
    regard to case, values exactly), or None when two keys are equal under case-folding: such a context
    is ambiguous, and no constraint is satisfied by it, whatever the order of its pairs."""
    folded: dict[str, str] = {}
    for key, value in (context or {}).items():
        name = key.lower()
        if name in folded:
            return None
        folded[name] = value
    return folded


def context_satisfies(constraints: Constraints | None, context: Mapping[str, str] | None) -> bool:
    """Whether a request's encryption context satisfies a grant's constraints: EncryptionContextEquals
    is the whole context, EncryptionContextSubset pairs are all in it. An ambiguous context (see
    :func:`fold_context`) or an ambiguous constraint satisfies no constraint."""
    if not constraints:
        return True
    given = fold_context(context)
    if given is None:
        return False
    equals = constraints.get(EQUALS)
    if equals is not None and fold_context(equals) != given:
        return False
    subset = constraints.get(SUBSET)
    if subset is None:
        return True
    wanted = fold_context(subset)
    return wanted is not None and all(given.get(k) == v for k, v in wanted.items())


def at_least_as_strict(child: Constraints | None, parent: Constraints | None) -> bool:
    """Whether every encryption context the child constraints allow is allowed by the parent's (AWS:
    a grant created with CreateGrant permission from a grant has constraints as strict or stricter).

    An EncryptionContextEquals child allows one context: the parent must allow it (an Equals parent
    therefore needs the same map, a Subset parent needs its pairs in it). A child with only
    EncryptionContextSubset allows any superset of its pairs: the parent must not be Equals, and its
    Subset pairs must all be among the child's. An unconstrained child needs an unconstrained parent."""
    if not parent:
        return True
    if not child:
        return False
    child_equals = child.get(EQUALS)
    if child_equals is not None:
        return fold_context(child_equals) is not None and context_satisfies(parent, child_equals)
    if parent.get(EQUALS) is not None:
        return False
    child_subset = child.get(SUBSET)
    parent_subset = parent.get(SUBSET)
    if parent_subset is None:
        return True
    if child_subset is None:
        return False
    mine, theirs = fold_context(child_subset), fold_context(parent_subset)
    return mine is not None and theirs is not None and all(mine.get(k) == v for k, v in theirs.items())


@dataclass(frozen=True, slots=True)
class NewGrant:
    """What a CreateGrant request asks for: the operations and constraints of the grant to create."""

    operations: frozenset[str]
    constraints: Constraints | None


def derivable(parent_operations: Iterable[str], parent: Constraints | None, child: NewGrant) -> bool:
    """Whether a grant whose CreateGrant permission comes from a parent grant may be created: its
    operations are some or all of the parent's, its constraints at least as strict."""
    return child.operations <= frozenset(parent_operations) and at_least_as_strict(child.constraints, parent)
