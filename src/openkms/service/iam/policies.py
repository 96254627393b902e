"""Customer managed policies and their attachments to users and roles."""

from __future__ import annotations

from typing import Any

from openkms.arns import PARTITION, policy_arn
from openkms.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    LimitExceeded,
    NoSuchEntity,
    ValidationError,
)
from openkms.service.iam.common import (
    MANAGED_POLICY_LIMIT,
    IamContext,
    authorize_iam,
    check_document,
    normalized_path,
    paginate,
    policy_size,
)
from openkms.service.iam.roles import role_resource, role_row
from openkms.service.iam.users import user_resource, user_row
from openkms.service.identity.principals import new_id
from openkms.storage.store import (
    Conflict,
    ManagedPolicyRow,
    Tx,
)

# --- managed policies -------------------------------------------------------------------------------


def _policy_view(p: ManagedPolicyRow, attachments: int) -> dict[str, Any]:
    view: dict[str, Any] = {
        "policy_name": p.policy_name,
        "policy_id": p.policy_id,
        "arn": p.arn,
        "path": p.path,
        "default_version_id": "v1",
        "attachment_count": attachments,
        "permissions_boundary_usage_count": 0,
        "is_attachable": True,
        "create_date": p.created_at,
        "update_date": p.updated_at,
    }
    if p.description:
        view["description"] = p.description
    return view


def _managed(tx: Tx, ctx: IamContext, arn: str) -> ManagedPolicyRow:
    """The managed policy, its row locked in a write transaction: DeletePolicy cannot miss an
    attachment made at the same time."""
    row = tx.get_managed_policy(arn, for_update=tx.write)
    if row is None or row.account_id != ctx.account_id:
        raise NoSuchEntity(f"Policy {arn} does not exist or is not attachable.")
    return row


def create_policy(
    ctx: IamContext,
    *,
    policy_name: str,
    policy_document: str,
    path: str | None = None,
    description: str | None = None,
    tags: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    if description is not None and "\x00" in description:
        # Free text in the model, but PostgreSQL cannot store U+0000: refused on every backend.
        raise ValidationError(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: "
            "Member must not contain the character U+0000"
        )
    arn = policy_arn(ctx.account_id, normalized_path(path), policy_name)
    authorize_iam(ctx, "CreatePolicy", arn)
    if policy_size(policy_document) > MANAGED_POLICY_LIMIT:
        raise LimitExceeded(f"Cannot exceed quota for PolicySize: {MANAGED_POLICY_LIMIT}")
    check_document(policy_document, "identity")
    row = ManagedPolicyRow(
        ctx.account_id,
        policy_name,
        new_id("ANPA"),
        arn,
        normalized_path(path),
        description or "",
        policy_document,
        ctx.now,
        ctx.now,
    )
    with ctx.store.write() as tx:
        try:
            tx.insert_managed_policy(row)
        except Conflict:
            raise EntityAlreadyExists(
                f"A policy called {policy_name} already exists. Duplicate names are not allowed."
            ) from None
    return {"policy": _policy_view(row, 0)}


def get_policy(ctx: IamContext, *, policy_arn: str) -> dict[str, Any]:
    authorize_iam(ctx, "GetPolicy", policy_arn)
    with ctx.store.read() as tx:
        row = _managed(tx, ctx, policy_arn)
        return {"policy": _policy_view(row, tx.count_attachments(policy_arn))}


def get_policy_version(ctx: IamContext, *, policy_arn: str, version_id: str) -> dict[str, Any]:
    authorize_iam(ctx, "GetPolicyVersion", policy_arn)
    with ctx.store.read() as tx:
        row = _managed(tx, ctx, policy_arn)
    if version_id != "v1":
        raise NoSuchEntity(f"Policy {policy_arn} version {version_id} does not exist or is not attachable.")
    return {
        "policy_version": {
            "document": row.document,
            "version_id": "v1",
            "is_default_version": True,
            "create_date": row.created_at,
        }
    }


def list_policies(
    ctx: IamContext,
    *,
    scope: str | None = None,
    only_attached: bool | None = None,
    path_prefix: str | None = None,
    policy_usage_filter: str | None = None,
    marker: str | None = None,
    max_items: int | None = None,
) -> dict[str, Any]:
    authorize_iam(ctx, "ListPolicies", f"arn:{PARTITION}:iam::{ctx.account_id}:policy/")
    if scope == "AWS":
        return {"policies": [], "is_truncated": False}
    with ctx.store.read() as tx:
        rows = [
            (p, tx.count_attachments(p.arn))
            for p in tx.list_managed_policies(ctx.account_id)
            if p.path.startswith(path_prefix or "/")
        ]
    if only_attached:
        rows = [(p, n) for p, n in rows if n]
    page, extra = paginate(rows, lambda item: item[0].policy_name, marker, max_items)
    return {"policies": [_policy_view(p, n) for p, n in page], **extra}


def delete_policy(ctx: IamContext, *, policy_arn: str) -> None:
    authorize_iam(ctx, "DeletePolicy", policy_arn)
    with ctx.store.write() as tx:
        _managed(tx, ctx, policy_arn)
        if tx.count_attachments(policy_arn):
            raise DeleteConflict("Cannot delete a policy attached to entities.")
        tx.delete_managed_policy(policy_arn)


def _attach(ctx: IamContext, kind: str, name: str, arn: str, attach: bool) -> None:
    with ctx.store.write() as tx:
        user_row(tx, ctx, name) if kind == "user" else role_row(tx, ctx, name)
        _managed(tx, ctx, arn)
        if attach:
            tx.attach_policy(ctx.account_id, kind, name, arn)
        elif not tx.detach_policy(ctx.account_id, kind, name, arn):
            raise NoSuchEntity(f"Policy {arn} was not found.")


def attach_user_policy(ctx: IamContext, *, user_name: str, policy_arn: str) -> None:
    authorize_iam(ctx, "AttachUserPolicy", user_resource(ctx, user_name), {"iam:PolicyARN": policy_arn})
    _attach(ctx, "user", user_name, policy_arn, True)


def detach_user_policy(ctx: IamContext, *, user_name: str, policy_arn: str) -> None:
    authorize_iam(ctx, "DetachUserPolicy", user_resource(ctx, user_name), {"iam:PolicyARN": policy_arn})
    _attach(ctx, "user", user_name, policy_arn, False)


def attach_role_policy(ctx: IamContext, *, role_name: str, policy_arn: str) -> None:
    authorize_iam(ctx, "AttachRolePolicy", role_resource(ctx, role_name), {"iam:PolicyARN": policy_arn})
    _attach(ctx, "role", role_name, policy_arn, True)


def detach_role_policy(ctx: IamContext, *, role_name: str, policy_arn: str) -> None:
    authorize_iam(ctx, "DetachRolePolicy", role_resource(ctx, role_name), {"iam:PolicyARN": policy_arn})
    _attach(ctx, "role", role_name, policy_arn, False)


def _attached(
    ctx: IamContext, kind: str, name: str, marker: str | None, max_items: int | None
) -> dict[str, Any]:
    with ctx.store.read() as tx:
        user_row(tx, ctx, name) if kind == "user" else role_row(tx, ctx, name)
        arns = tx.attached_policies(ctx.account_id, kind, name)
    page, extra = paginate(arns, lambda a: a, marker, max_items)
    return {
        "attached_policies": [{"policy_name": a.rsplit("/", 1)[-1], "policy_arn": a} for a in page],
        **extra,
    }


def list_attached_user_policies(
    ctx: IamContext,
    *,
    user_name: str,
    path_prefix: str | None = None,
    marker: str | None = None,
    max_items: int | None = None,
) -> dict[str, Any]:
    authorize_iam(ctx, "ListAttachedUserPolicies", user_resource(ctx, user_name))
    return _attached(ctx, "user", user_name, marker, max_items)


def list_attached_role_policies(
    ctx: IamContext,
    *,
    role_name: str,
    path_prefix: str | None = None,
    marker: str | None = None,
    max_items: int | None = None,
) -> dict[str, Any]:
    authorize_iam(ctx, "ListAttachedRolePolicies", role_resource(ctx, role_name))
    return _attached(ctx, "role", role_name, marker, max_items)
