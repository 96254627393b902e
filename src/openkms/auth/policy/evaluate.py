"""The decision: one document's effect (:func:`evaluate`) and AWS KMS's authorization (:func:`authorize`).

:func:`authorize` follows "How AWS KMS key policies and IAM policies work together" (KMS Developer
Guide) and the IAM policy evaluation logic:

1. an explicit Deny in the key policy or in any identity policy denies;
2. actions without a key (``key_policy`` None): allowed iff an identity policy allows;
3. same account: allowed when the key policy allows the caller directly (its user, role or session
   ARN, its service, or ``*``), or allows the caller's account (root ARN / account id: delegation to
   IAM) and an identity policy allows, or a grant allows;
4. another account: the key policy must allow the caller or its account AND an identity policy of
   the caller's account must allow; or a grant allows;
5. the account root user has an implicit allow-all identity policy (it still needs the key policy);
   AWS service principals are authorized by the key policy alone.

Wildcard matching is bounded per authorization (:class:`openkms.auth.policy.glob.Budget`): a
statement whose patterns would need more work is decided the safe way - a Deny applies, an Allow
does not.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from openkms.auth.policy.context import (
    AWS_SERVICE,
    ROOT,
    Ambiguous,
    Caller,
    EvalContext,
    Request,
    Unresolved,
)
from openkms.auth.policy.document import PolicyDocument, Statement
from openkms.auth.policy.glob import TooComplex
from openkms.auth.policy.matching import DIRECT, NO_MATCH

REASON_NO_IDENTITY = "because no identity-based policy allows the {action} action"
REASON_NO_RESOURCE = "because no resource-based policy allows the {action} action"
REASON_DENY_RESOURCE = "with an explicit deny in a resource-based policy"
REASON_DENY_IDENTITY = "with an explicit deny in an identity-based policy"


class Effect(enum.Enum):
    ALLOW = "Allow"
    DENY = "Deny"
    NONE = "None"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str  # "" when allowed


ALLOWED = Decision(True, "")


def _statement_match(statement: Statement, ctx: EvalContext, resource_policy: bool) -> int:
    """NO_MATCH, or how a statement whose Action already covers the request applies (ACCOUNT/DIRECT)."""
    how = DIRECT
    if resource_policy:
        spec = statement.principal
        if spec is None:
            return NO_MATCH
        if statement.not_principal:
            if spec.covers(ctx):
                return NO_MATCH
        else:
            how = spec.match(ctx)
            if how == NO_MATCH:
                return NO_MATCH
    try:
        if statement.resources is None or statement.resources.matches(ctx) == statement.not_resource:
            return NO_MATCH
        for condition in statement.conditions:
            try:
                holds = condition.evaluate(ctx)
            except Ambiguous:  # a key the request spells twice: never allows, always denies
                holds = statement.deny
            if not holds:
                return NO_MATCH
    except Unresolved:  # a policy variable without a value voids the statement
        return NO_MATCH
    except (TooComplex, Ambiguous):  # work bound reached, or a variable naming an ambiguous key:
        # decided the safe way
        return how if statement.deny else NO_MATCH
    return how


def _denies(doc: PolicyDocument, ctx: EvalContext, resource_policy: bool) -> bool:
    """Whether an explicit Deny of the document applies."""
    for statement in doc.for_action(ctx.action)[0]:
        if _statement_match(statement, ctx, resource_policy) != NO_MATCH:
            return True
    return False


def _allows(doc: PolicyDocument, ctx: EvalContext, resource_policy: bool) -> int:
    """The strongest Allow of the document: NO_MATCH, ACCOUNT or DIRECT."""
    best = NO_MATCH
    for statement in doc.for_action(ctx.action)[1]:
        how = _statement_match(statement, ctx, resource_policy)
        if how == DIRECT:
            return DIRECT
        if how > best:
            best = how
    return best


def evaluate(doc: PolicyDocument, caller: Caller, request: Request, *, resource_policy: bool) -> Effect:
    """The effect of one document on the request: DENY, ALLOW or NONE (not applicable)."""
    ctx = EvalContext(caller, request)
    if _denies(doc, ctx, resource_policy):
        return Effect.DENY
    return Effect.ALLOW if _allows(doc, ctx, resource_policy) != NO_MATCH else Effect.NONE


def authorize(
    caller: Caller,
    request: Request,
    *,
    key_policy: PolicyDocument | None,
    identity_policies: Sequence[PolicyDocument],
    grant_allows: bool = False,
) -> Decision:
    """AWS KMS's decision for the request (see the module docstring)."""
    ctx = EvalContext(caller, request)
    if key_policy is not None and _denies(key_policy, ctx, True):
        return Decision(False, REASON_DENY_RESOURCE)
    for doc in identity_policies:
        if _denies(doc, ctx, False):
            return Decision(False, REASON_DENY_IDENTITY)
    action = request.action
    if key_policy is None:
        if caller.principal_type == ROOT or _identity_allows(identity_policies, ctx):
            return ALLOWED
        return Decision(False, REASON_NO_IDENTITY.format(action=action))
    if grant_allows:
        return ALLOWED
    key_allow = _allows(key_policy, ctx, True)
    if caller.principal_type == AWS_SERVICE:
        return ALLOWED if key_allow == DIRECT else Decision(False, REASON_NO_RESOURCE.format(action=action))
    if key_allow == DIRECT and caller.account_id == request.resource_account:
        return ALLOWED
    if key_allow == NO_MATCH:
        return Decision(False, REASON_NO_RESOURCE.format(action=action))
    if caller.principal_type == ROOT or _identity_allows(identity_policies, ctx):
        return ALLOWED
    return Decision(False, REASON_NO_IDENTITY.format(action=action))


def _identity_allows(identity_policies: Sequence[PolicyDocument], ctx: EvalContext) -> bool:
    return any(_allows(doc, ctx, False) != NO_MATCH for doc in identity_policies)


def access_denied_message(caller: Caller, request: Request, decision: Decision) -> str:
    """AWS's AccessDeniedException message for a denied decision."""
    return (
        f"User: {caller.arn} is not authorized to perform: {request.action} "
        f"on resource: {request.resource} {decision.reason}"
    )
