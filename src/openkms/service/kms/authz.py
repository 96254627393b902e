"""Authorization of KMS requests: the key policy, the caller's identity policies and the key's grants,
evaluated by the policy engine with the condition keys KMS defines.

Every operation authorizes with AWS's action name before key state is considered. Denials raise
AccessDeniedException with AWS's message (``User: <arn> is not authorized to perform: kms:<Action> on
resource: <arn> because …``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from openkms.arns import account_root_arn, parse_arn
from openkms.auth.policy import (
    REASON_DENY_IDENTITY,
    REASON_NO_RESOURCE,
    Caller,
    Decision,
    PolicyCache,
    PolicyDocument,
    Request,
    access_denied_message,
    authorize,
    check_principals,
)
from openkms.crypto import tokens
from openkms.domain.conditions import encryption_context_conditions
from openkms.domain.grants import CONSTRAINED, NewGrant, context_satisfies, derivable
from openkms.domain.model import KeyRecord, Principal
from openkms.errors import AccessDeniedException, MalformedPolicyDocumentException
from openkms.service.identity.policies import IdentityPolicyCache
from openkms.service.kms.context import NeedsIO, RequestContext
from openkms.service.kms.keycache import LoadedKey
from openkms.storage.store import GrantRow, Store

LOCKOUT_MESSAGE = "The new key policy will not allow you to update the key policy in the future."
CALLERS_KEPT = 10_000  # callers the authorizer keeps built (all are dropped past it)


def caller_of(principal: Principal) -> Caller:
    """The policy engine's ``Caller`` for a principal (built once per principal by
    :meth:`KmsAuthorizer.caller`)."""
    return Caller.of(principal)


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
        context["kms:MultiRegionKeyType"] = key.multi_region_type
    if loaded is not None:
        for k, v in loaded.tags.items():
            context[f"aws:ResourceTag/{k}"] = v
        context["kms:ResourceAliases"] = list(loaded.aliases)
    return context


def _constraints_hold(
    grant: GrantRow, operation: str, context: Mapping[str, str] | None, new_grant: NewGrant | None
) -> bool:
    """Whether the grant's constraints allow this request. For the crypto operations the request's
    encryption context must satisfy them; for CreateGrant the grant to create must be derivable from
    this one (some or all of its operations, constraints at least as strict: the parent grant's
    constraints apply to the CreateGrant call); other operations (DescribeKey, RetireGrant) are not
    constrained."""
    if operation == "CreateGrant":
        return new_grant is not None and derivable(grant.operations, grant.constraints, new_grant)
    if not grant.constraints or operation not in CONSTRAINED:
        return True
    return context_satisfies(grant.constraints, context)


def grant_allows(
    grants: Iterable[GrantRow],
    caller_arns: Iterable[str],
    operation: str,
    context: Mapping[str, str] | None,
    new_grant: NewGrant | None = None,
) -> bool:
    """Whether a grant lets one of the caller's identities (its ARN, or its role's ARN) do ``operation``
    (``new_grant``: what a CreateGrant request asks for)."""
    names = set(caller_arns)
    return any(
        g.grantee_principal in names
        and operation in g.operations
        and _constraints_hold(g, operation, context, new_grant)
        for g in grants
    )


def caller_identities(principal: Principal) -> set[str]:
    """The ARNs a grant may name for the caller (its own, and its role's for sessions)."""
    names = {principal.arn}
    if principal.role_arn:
        names.add(principal.role_arn)
    return names


class KmsAuthorizer:
    """The KMS decision for a request, with what it reads through: the store (grants named by grant
    tokens, principals a new key policy names), the principals' identity policies (``policies``) and
    the parsed documents (``documents``), both caches the runtime owns and shares with the IAM code."""

    def __init__(
        self,
        store: Store,
        token_key: Callable[[], bytes] | None,
        policies: IdentityPolicyCache,
        documents: PolicyCache,
    ) -> None:
        self._store = store
        self._token_key = token_key
        self._policies = policies
        self._documents_cache = documents
        self._callers: dict[Principal, Caller] = {}

    def caller(self, principal: Principal) -> Caller:
        """:func:`caller_of`, built once per principal (a principal is immutable; the same one comes
        back from the credential cache on each of its requests)."""
        caller = self._callers.get(principal)
        if caller is None:
            if len(self._callers) > CALLERS_KEPT:
                self._callers.clear()
            caller = self._callers[principal] = caller_of(principal)
        return caller

    def identity_documents(self, principal: Principal) -> list[PolicyDocument]:
        parse = self._documents_cache.parse
        return [parse(text, kind="identity") for text in self._policies.get(principal)]

    def _documents(
        self, ctx: RequestContext, key: KeyRecord | None
    ) -> tuple[PolicyDocument | None, list[PolicyDocument]]:
        """The key policy and the caller's identity policies, parsed. On the event loop only documents
        parsed already are used: a document to parse (a large one takes tens of milliseconds) moves
        the call to a worker thread."""
        documents = self._documents_cache
        if ctx.allow_io:
            key_doc = documents.parse(key.policy, kind="key") if key is not None else None
            return key_doc, self.identity_documents(ctx.principal)
        key_doc = None
        if key is not None:
            key_doc = documents.cached(key.policy, "key")
            if key_doc is None:
                raise NeedsIO()
        docs: list[PolicyDocument] = []
        for text in self._policies.get(ctx.principal):
            doc = documents.cached(text, "identity")
            if doc is None:
                raise NeedsIO()
            docs.append(doc)
        return key_doc, docs

    def _request(
        self,
        ctx: RequestContext,
        action: str,
        key: KeyRecord | None,
        conditions: Mapping[str, Any] | None,
        loaded: LoadedKey | None,
        now: float,
    ) -> Request:
        if not ctx.allow_io and not self._policies.is_warm(ctx.principal):
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
        if action == "ReEncryptTo":  # the destination's context, none of the source's
            for name in [n for n in context if n.startswith("kms:EncryptionContext")]:
                del context[name]
            context.update(encryption_context_conditions(ctx.destination_encryption_context))
            context["kms:EncryptionAlgorithm"] = ctx.destination_encryption_algorithm
        if conditions:
            context.update(conditions)
        return Request(
            action=f"kms:{action}",
            resource=key.arn if key is not None else "*",
            resource_account=key.account_id if key is not None else None,
            context=context,
        )

    def check(
        self,
        ctx: RequestContext,
        action: str,
        key: KeyRecord | None,
        conditions: Mapping[str, Any] | None,
        loaded: LoadedKey | None,
        now: float,
    ) -> None:
        request = self._request(ctx, action, key, conditions, loaded, now)
        caller = self.caller(ctx.principal)
        grants_ok = False
        if key is not None and loaded is not None and (loaded.grants or ctx.grant_tokens):
            encryption_context = (
                ctx.destination_encryption_context if action == "ReEncryptTo" else ctx.encryption_context
            )
            identities = caller_identities(ctx.principal)
            grants_ok = bool(loaded.grants) and grant_allows(
                loaded.grants, identities, action, encryption_context, ctx.new_grant
            )
            if not grants_ok and ctx.grant_tokens:
                presented = self._token_grants(ctx, key, loaded.grants)
                grants_ok = bool(presented) and grant_allows(
                    presented, identities, action, encryption_context, ctx.new_grant
                )
        key_policy, identity_docs = self._documents(ctx, key)
        decision = authorize(
            caller,
            request,
            key_policy=key_policy,
            identity_policies=identity_docs,
            grant_allows=grants_ok,
        )
        if not decision.allowed:
            raise AccessDeniedException(access_denied_message(caller, request, decision))

    def _token_grants(self, ctx: RequestContext, key: KeyRecord, known: Iterable[GrantRow]) -> list[GrantRow]:
        """The grants of this key named by the request's grant tokens that the cached key does not hold
        yet (created a moment ago, possibly on another node): a grant token makes its grant usable at
        once. A token of a grant on another key, or of a grant retired or revoked since, gives nothing;
        a token this service did not issue was refused before the operation ran."""
        if self._token_key is None:
            return []
        cached = {g.grant_id for g in known}
        wanted: list[str] = []
        for token in ctx.grant_tokens or ():
            try:
                grant_id = tokens.open_grant_token(self._token_key(), token)
            except tokens.TokenError:
                continue
            if grant_id not in cached and grant_id not in wanted:
                wanted.append(grant_id)
        if not wanted:
            return []
        if not ctx.allow_io:
            raise NeedsIO()
        found: list[GrantRow] = []
        with self._store.read() as tx:
            for grant_id in wanted:
                grant = tx.get_grant(grant_id)
                if grant is not None and (grant.region, grant.key_id) == (key.region, key.key_id):
                    found.append(grant)
        return found

    def check_retire(self, ctx: RequestContext, grant: GrantRow, key: KeyRecord, now: float) -> None:
        """RetireGrant, as AWS authorizes it ("Retiring and revoking grants"): the grant decides. Its
        retiring principal, and its grantee when the grant includes RetireGrant, may retire it; so may
        principals of the account the grant was created in (the key's account), or of the account the
        grant names as retiring principal, whose IAM policies allow kms:RetireGrant (kms:RetireGrant is
        not effective in a key policy). An explicit Deny of kms:RetireGrant in the caller's IAM
        policies refuses every one of them. Anyone else is refused."""
        request = self._request(ctx, "RetireGrant", key, None, None, now)
        caller = self.caller(ctx.principal)
        decision = authorize(
            caller, request, key_policy=None, identity_policies=self.identity_documents(ctx.principal)
        )
        if decision.reason == REASON_DENY_IDENTITY:
            raise AccessDeniedException(access_denied_message(caller, request, decision))
        identities = caller_identities(ctx.principal)
        if grant.retiring_principal in identities or (
            "RetireGrant" in grant.operations and grant.grantee_principal in identities
        ):
            return
        if ctx.account_id == grant.account_id or grant.retiring_principal == account_root_arn(ctx.account_id):
            if decision.allowed:
                return
        else:
            decision = Decision(False, REASON_NO_RESOURCE.format(action=request.action))
        raise AccessDeniedException(access_denied_message(caller, request, decision))

    def check_new_policy(
        self, ctx: RequestContext, policy: str, key_arn: str, key_account: str, now: float, bypass: bool
    ) -> PolicyDocument:
        """Parse a key policy for CreateKey/PutKeyPolicy: syntax, principals that exist, and (unless
        bypassed) the lockout safety check — the caller must still be allowed kms:PutKeyPolicy."""
        doc = self._documents_cache.parse(policy, kind="key", strict=True)
        check_principals(doc, self.principal_exists)
        if not bypass:
            request = Request(
                action="kms:PutKeyPolicy",
                resource=key_arn,
                resource_account=key_account,
                context=base_context(ctx, now),
            )
            decision = authorize(
                self.caller(ctx.principal),
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
