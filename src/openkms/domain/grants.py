"""Grant rules: which grant operations each kind of key supports and which of them are subject to a
grant's encryption-context constraints (both derived from the operations' records in
``domain/operations.py``), how a request's encryption context is compared with those constraints, and
which grants a grant's CreateGrant permission may create (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from openkms.domain.keyspec import HMAC_SPECS, KeySpec, KeyUsage
from openkms.domain.operations import OPERATIONS, KeyKind


def key_kind(spec: KeySpec, usage: KeyUsage) -> KeyKind:
    """The kind of a key of this spec and usage, as far as grant operations are concerned."""
    if spec is KeySpec.SYMMETRIC_DEFAULT:
        return KeyKind.SYMMETRIC
    if spec in HMAC_SPECS:
        return KeyKind.MAC
    if usage is KeyUsage.ENCRYPT_DECRYPT:
        return KeyKind.ASYMMETRIC_ENCRYPT
    if usage is KeyUsage.KEY_AGREEMENT:
        return KeyKind.AGREEMENT
    return KeyKind.SIGN


#: The grant operations each kind of key supports (from the records' ``grant_key_kinds``).
BY_KEY_KIND: Mapping[KeyKind, frozenset[str]] = {
    kind: frozenset(
        grant_operation
        for facts in OPERATIONS.values()
        if kind in facts.grant_key_kinds
        for grant_operation in facts.grant_operations
    )
    for kind in KeyKind
}
#: Grant operations whose encryption-context constraints apply (the records' ``grant_constrained``).
CONSTRAINED: frozenset[str] = frozenset(
    grant_operation
    for facts in OPERATIONS.values()
    if facts.grant_constrained
    for grant_operation in facts.grant_operations
)


def allowed_operations(spec: KeySpec, usage: KeyUsage) -> frozenset[str]:
    """The grant operations a key of this spec and usage supports."""
    return BY_KEY_KIND[key_kind(spec, usage)]


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
