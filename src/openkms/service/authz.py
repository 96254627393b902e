"""Authorization of KMS requests: the key policy, the caller's identity policies and the key's grants,
evaluated by the policy engine with the condition keys KMS defines.

Every operation authorizes with AWS's action name before key state is considered. Denials raise
AccessDeniedException with AWS's message (``User: <arn> is not authorized to perform: kms:<Action> on
resource: <arn> because …``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from openkms.arns import parse_arn
from openkms.auth.policy import (
    Caller,
    PolicyDocument,
    Request,
    access_denied_message,
    authorize,
    check_principals,
    parse_policy,
)
from openkms.domain.conditions import encryption_context_conditions
from openkms.domain.grants import CONSTRAINED
from openkms.domain.model import KeyRecord, Principal
from openkms.errors import AccessDeniedException, MalformedPolicyDocumentException
from openkms.service.context import NeedsIO, RequestContext
from openkms.service.identity_policies import identity_policies, policy_cache
from openkms.service.keycache import LoadedKey
from openkms.storage.store import GrantRow, Store

LOCKOUT_MESSAGE = "The new key policy will not allow you to update the key policy in the future."
_callers: dict[Principal, Caller] = {}


def caller_of(principal: Principal) -> Caller:
    caller = _callers.get(principal)
    if caller is None:
        if len(_callers) > 10_000:
            _callers.clear()
        caller = Caller(
            arn=principal.arn,
            account_id=principal.account_id,
            principal_type=principal.identity_type,
            user_id=principal.principal_id,
            user_name=principal.user_name,
            role_arn=principal.role_arn,
            tags=dict(principal.tags),
        )
        _callers[principal] = caller
    return caller


def base_context(ctx: RequestContext, now: float) -> dict[str, Any]:
    return {
        "kms:CallerAccount": ctx.account_id,
        "aws:CurrentTime": dt.datetime.fromtimestamp(now, dt.UTC),
        "aws:EpochTime": int(now),
        "aws:SourceIp": ctx.source_ip,
        "aws:SecureTransport": ctx.secure_transport,
        "aws:RequestedRegion": ctx.region,
    }


def key_context(key: KeyRecord, loaded: LoadedKey | None) -> dict[str, Any]:
    context: dict[str, Any] = {
        "kms:KeySpec": str(key.key_spec),
        "kms:CustomerMasterKeySpec": str(key.key_spec),
        "kms:KeyUsage": str(key.key_usage),
        "kms:CustomerMasterKeyUsage": str(key.key_usage),
        "kms:KeyOrigin": str(key.origin),
        "kms:MultiRegion": key.multi_region,
    }
    if key.multi_region:
        context["kms:MultiRegionKeyType"] = "PRIMARY"
    if loaded is not None:
        for k, v in loaded.tags.items():
            context[f"aws:ResourceTag/{k}"] = v
        context["kms:ResourceAliases"] = list(loaded.aliases)
    return context


def _constraints_hold(grant: GrantRow, operation: str, context: Mapping[str, str] | None) -> bool:
    if not grant.constraints or operation not in CONSTRAINED:
        return True
    given = {k.lower(): v for k, v in (context or {}).items()}
    equals = grant.constraints.get("encryption_context_equals")
    if equals is not None and {k.lower(): v for k, v in equals.items()} != given:
        return False
    subset = grant.constraints.get("encryption_context_subset")
    return subset is None or all(given.get(k.lower()) == v for k, v in subset.items())


def grant_allows(
    grants: Iterable[GrantRow], caller_arns: Iterable[str], operation: str, context: Mapping[str, str] | None
) -> bool:
    """Whether a grant lets one of the caller's identities (its ARN, or its role's ARN) do ``operation``."""
    names = set(caller_arns)
    return any(
        g.grantee_principal in names
        and operation in g.operations
        and _constraints_hold(g, operation, context)
        for g in grants
    )


def caller_identities(principal: Principal) -> set[str]:
    names = {principal.arn}
    if principal.role_arn:
        names.add(principal.role_arn)
    return names


class KmsAuthorizer:
    def __init__(self, store: Store) -> None:
        self._store = store

    def identity_documents(self, principal: Principal) -> list[PolicyDocument]:
        return [parse_policy(text, kind="identity") for text in identity_policies(self._store, principal)]

    def check(
        self,
        ctx: RequestContext,
        action: str,
        key: KeyRecord | None,
        conditions: Mapping[str, Any] | None,
        loaded: LoadedKey | None,
        now: float,
    ) -> None:
        if not ctx.allow_io and not policy_cache(self._store).is_warm(ctx.principal):
            raise NeedsIO()
        context = base_context(ctx, now)
        if key is not None:
            if loaded is None:
                context.update(key_context(key, None))
            else:
                if loaded.policy_context is None:
                    loaded.policy_context = key_context(key, loaded)
                context.update(loaded.policy_context)
        if ctx.request_alias:
            context["kms:RequestAlias"] = ctx.request_alias
        if ctx.conditions:
            context.update(ctx.conditions)
        encryption_context = ctx.encryption_context
        if action == "ReEncryptTo":
            encryption_context = ctx.destination_encryption_context
            context.update(encryption_context_conditions(encryption_context))
            context["kms:EncryptionAlgorithm"] = ctx.destination_encryption_algorithm
        if conditions:
            context.update(conditions)
        caller = caller_of(ctx.principal)
        request = Request(
            action=f"kms:{action}",
            resource=key.arn if key is not None else "*",
            resource_account=key.account_id if key is not None else None,
            context=context,
        )
        grants_ok = False
        if loaded is not None and loaded.grants:
            grants_ok = grant_allows(
                loaded.grants, caller_identities(ctx.principal), action, encryption_context
            )
        decision = authorize(
            caller,
            request,
            key_policy=parse_policy(key.policy, kind="key") if key is not None else None,
            identity_policies=self.identity_documents(ctx.principal),
            grant_allows=grants_ok,
        )
        if not decision.allowed:
            raise AccessDeniedException(access_denied_message(caller, request, decision))

    def check_new_policy(
        self, ctx: RequestContext, policy: str, key_arn: str, key_account: str, now: float, bypass: bool
    ) -> PolicyDocument:
        """Parse a key policy for CreateKey/PutKeyPolicy: syntax, principals that exist, and (unless
        bypassed) the lockout safety check — the caller must still be allowed kms:PutKeyPolicy."""
        doc = parse_policy(policy, kind="key", strict=True)
        check_principals(doc, self.principal_exists)
        if not bypass:
            request = Request(
                action="kms:PutKeyPolicy",
                resource=key_arn,
                resource_account=key_account,
                context=base_context(ctx, now),
            )
            decision = authorize(
                caller_of(ctx.principal),
                request,
                key_policy=doc,
                identity_policies=self.identity_documents(ctx.principal),
            )
            if not decision.allowed:
                raise MalformedPolicyDocumentException(LOCKOUT_MESSAGE)
        return doc

    def principal_exists(self, value: str) -> bool:
        """Does a principal named in a policy exist? Principals of accounts this service does not
        host cannot be checked and are accepted."""
        arn = parse_arn(value)
        if arn is None or arn.service not in ("iam", "sts"):
            return True
        with self._store.read() as tx:
            if not tx.account_exists(arn.account):
                return True
            kind, _, rest = arn.resource.partition("/")
            name = rest.rsplit("/", 1)[-1]
            if kind == "user":
                return tx.get_user(arn.account, name) is not None
            if kind == "role":
                return tx.get_role(arn.account, name) is not None
            if kind == "assumed-role":
                return tx.get_role(arn.account, rest.split("/", 1)[0]) is not None
        return True
