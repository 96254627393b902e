"""Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant, and which grants
allow a request (used by the authorizer).

A grant allows (never denies) one grantee principal to call the listed operations on one key, within
its encryption-context constraints. Grants take effect at once here (no eventual consistency), and
grant tokens are validated (a token this service did not issue is InvalidGrantTokenException).
CreateGrant permission that comes from a grant creates only grants derivable from it (the rule is in
``domain/grants.py``, applied by ``service/kms/authz.py``); RetireGrant is decided by the grant
(``KmsAuthorizer.check_retire``); ListRetirableGrants answers only for principals of the caller's
account.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from openkms.arns import account_root_arn, key_arn, parse_arn
from openkms.crypto import tokens
from openkms.domain.conditions import encryption_context_conditions
from openkms.domain.grants import NewGrant, allowed_operations
from openkms.domain.keystate import check_key_state
from openkms.domain.model import KeyRecord
from openkms.errors import (
    AccessDeniedException,
    DryRunOperationException,
    InvalidGrantIdException,
    InvalidGrantTokenException,
    LimitExceededException,
    NotFoundException,
    ValidationException,
)
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore
from openkms.storage.store import GrantRow

MAX_GRANTS_PER_KEY = 50_000


def check_grant_tokens(core: KmsCore, grant_tokens: Iterable[str] | None) -> None:
    for token in grant_tokens or ():
        try:
            tokens.open_grant_token(core.root.token_key(), token)
        except tokens.TokenError:
            raise InvalidGrantTokenException("The grant token is invalid.") from None


def principal_account(principal: str) -> str | None:
    """The account of a principal as a grant names it: an IAM or STS ARN, or a bare account id."""
    if principal.isdigit() and len(principal) == 12:
        return principal
    arn = parse_arn(principal)
    if arn is None or arn.service not in ("iam", "sts"):
        return None
    return arn.account


def _entry(key: KeyRecord, g: GrantRow) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key_id": key.arn,
        "grant_id": g.grant_id,
        "creation_date": g.creation_date,
        "grantee_principal": g.grantee_principal,
        "issuing_account": account_root_arn(g.account_id),
        "operations": list(g.operations),
    }
    if g.name is not None:
        entry["name"] = g.name
    if g.retiring_principal is not None:
        entry["retiring_principal"] = g.retiring_principal
    if g.constraints:
        entry["constraints"] = g.constraints
    return entry


def create_grant(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    grantee_principal: str,
    operations: list[str],
    retiring_principal: str | None = None,
    constraints: dict[str, dict[str, str]] | None = None,
    grant_tokens: list[str] | None = None,
    name: str | None = None,
    dry_run: bool | None = None,
) -> dict[str, Any]:
    if not operations:
        raise ValidationException(
            "1 validation error detected: Value '[]' at 'operations' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1"
        )
    conditions: dict[str, Any] = {
        "kms:GrantOperations": list(operations),
        "kms:GranteePrincipal": grantee_principal,
        "kms:GrantIsForAWSResource": False,
    }
    if retiring_principal is not None:
        conditions["kms:RetiringPrincipal"] = retiring_principal
    if constraints:
        conditions["kms:GrantConstraintType"] = [
            "EncryptionContextEquals" if k == "encryption_context_equals" else "EncryptionContextSubset"
            for k in constraints
        ]
    clean = {k: v for k, v in (constraints or {}).items() if v is not None} or None
    if clean:
        # In CreateGrant, kms:EncryptionContext:<key> and kms:EncryptionContextKeys describe the new
        # grant's encryption context constraints (AWS's condition keys reference).
        pairs = {
            **(clean.get("encryption_context_subset") or {}),
            **(clean.get("encryption_context_equals") or {}),
        }
        conditions.update(encryption_context_conditions(pairs))
    ctx.new_grant = NewGrant(frozenset(operations), clean)
    loaded = core.resolve(ctx, key_id, action="CreateGrant", conditions=conditions)
    key = loaded.record
    check_key_state("CreateGrant", key)
    unsupported = [op for op in operations if op not in allowed_operations(key.key_spec, key.key_usage)]
    if unsupported:
        raise ValidationException(
            f"Grant operations {', '.join(unsupported)} are not valid for {key.arn} "
            f"(key spec {key.key_spec}, key usage {key.key_usage})."
        )
    if dry_run:
        raise DryRunOperationException()
    with core.store.write() as tx:
        # The key row locked: concurrent CreateGrant calls on one key are serialised, so a named grant
        # is created once and the count below is exact; the key's state is checked again under the lock.
        locked = tx.get_key(key.region, key.key_id, for_update=True)
        if locked is None:
            raise NotFoundException(f"Key '{key.arn}' does not exist")
        check_key_state("CreateGrant", locked)
        if name is not None:
            for g in tx.list_grants(key.region, key.key_id):
                if (
                    g.name == name
                    and g.grantee_principal == grantee_principal
                    and g.retiring_principal == retiring_principal
                    and set(g.operations) == set(operations)
                    and g.constraints == clean
                ):
                    return {
                        "grant_id": g.grant_id,
                        "grant_token": tokens.issue_grant_token(core.root.token_key(), g.grant_id),
                    }
        if tx.count_grants(key.region, key.key_id) >= MAX_GRANTS_PER_KEY:
            raise LimitExceededException(f"The number of grants on {key.arn} has reached its limit.")
        grant = GrantRow(
            grant_id=os.urandom(32).hex(),
            region=key.region,
            key_id=key.key_id,
            account_id=key.account_id,
            name=name,
            creation_date=core.clock.now(),
            grantee_principal=grantee_principal,
            retiring_principal=retiring_principal,
            operations=tuple(dict.fromkeys(operations)),
            constraints=clean,
        )
        tx.insert_grant(grant)
    return {
        "grant_id": grant.grant_id,
        "grant_token": tokens.issue_grant_token(core.root.token_key(), grant.grant_id),
    }


def list_grants(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    limit: int | None = None,
    marker: str | None = None,
    grant_id: str | None = None,
    grantee_principal: str | None = None,
) -> dict[str, Any]:
    key = core.resolve(ctx, key_id, action="ListGrants").record
    n = limit or 50
    after = core.pager.read_marker("grants", marker)
    with core.store.read() as tx:
        rows = tx.list_grants(key.region, key.key_id)
    rows = [
        g
        for g in rows
        if (grant_id is None or g.grant_id == grant_id)
        and (grantee_principal is None or g.grantee_principal == grantee_principal)
        and (after is None or g.grant_id > after)
    ]
    ids, next_marker = core.pager.page([g.grant_id for g in rows], n, "grants")
    result: dict[str, Any] = {
        "grants": [_entry(key, g) for g in rows[: len(ids)]],
        "truncated": next_marker is not None,
    }
    if next_marker:
        result["next_marker"] = next_marker
    return result


def list_retirable_grants(
    core: KmsCore,
    ctx: RequestContext,
    *,
    retiring_principal: str,
    limit: int | None = None,
    marker: str | None = None,
) -> dict[str, Any]:
    core.authorize(ctx, "ListRetirableGrants", None)
    if principal_account(retiring_principal) != ctx.account_id:
        # AWS: "You must specify a principal in your AWS account." Grants naming another account's
        # principal are that account's business (its key ARNs, grantees, operations, names).
        raise AccessDeniedException(
            f"User: {ctx.principal.arn} is not authorized to perform: kms:ListRetirableGrants "
            f"on resource: {retiring_principal} because no resource-based policy allows the "
            "kms:ListRetirableGrants action"
        )
    n = limit or 50
    after = core.pager.read_marker("retirable", marker)
    with core.store.read() as tx:
        rows = tx.list_retirable_grants(retiring_principal, after, n + 1)
        keys = {(g.region, g.key_id): tx.get_key(g.region, g.key_id) for g in rows}
    ids, next_marker = core.pager.page([g.grant_id for g in rows], n, "retirable")
    entries = []
    for g in rows[: len(ids)]:
        key = keys[(g.region, g.key_id)]
        if key is not None:
            entries.append(_entry(key, g))
    result: dict[str, Any] = {"grants": entries, "truncated": next_marker is not None}
    if next_marker:
        result["next_marker"] = next_marker
    return result


def _find_grant(core: KmsCore, ctx: RequestContext, key: KeyRecord, grant_id: str) -> GrantRow:
    with core.store.read() as tx:
        grant = tx.get_grant(grant_id)
    if grant is None or (grant.region, grant.key_id) != (key.region, key.key_id):
        raise NotFoundException(f"Grant ID {grant_id} not found")
    return grant


def retire_grant(
    core: KmsCore,
    ctx: RequestContext,
    *,
    grant_token: str | None = None,
    key_id: str | None = None,
    grant_id: str | None = None,
    dry_run: bool | None = None,
) -> None:
    if grant_token is not None:
        try:
            token_grant = tokens.open_grant_token(core.root.token_key(), grant_token)
        except tokens.TokenError:
            raise InvalidGrantTokenException("The grant token is invalid.") from None
        if grant_id is not None and grant_id != token_grant:
            raise InvalidGrantIdException("The grant ID does not match the grant token.")
        grant_id = token_grant
    if grant_id is None or (key_id is None and grant_token is None):
        raise ValidationException("Either GrantToken, or both KeyId and GrantId, must be specified.")
    with core.store.read() as tx:
        grant = tx.get_grant(grant_id)
        key = tx.get_key(grant.region, grant.key_id) if grant is not None else None
    if grant is None or key is None:
        raise NotFoundException(f"Grant ID {grant_id} not found")
    if key_id is not None:
        region, account, named = core.locate(ctx, key_id, allow_alias=False)
        if account != key.account_id:  # a bare key id names a key of the caller's own account
            raise NotFoundException(f"Key '{key_arn(region, account, named)}' does not exist")
        if (region, named) != (key.region, key.key_id):
            raise NotFoundException(f"Grant ID {grant_id} not found")
    ctx.touch(key.arn)
    core.authorizer.check_retire(ctx, grant, key, core.clock.now())
    check_key_state("RetireGrant", key)
    if dry_run:
        raise DryRunOperationException()
    with core.store.write() as tx:
        tx.delete_grant(grant)


def revoke_grant(
    core: KmsCore, ctx: RequestContext, *, key_id: str, grant_id: str, dry_run: bool | None = None
) -> None:
    key = core.resolve(ctx, key_id, action="RevokeGrant").record
    check_key_state("RevokeGrant", key)
    grant = _find_grant(core, ctx, key, grant_id)
    if dry_run:
        raise DryRunOperationException()
    with core.store.write() as tx:
        tx.delete_grant(grant)
