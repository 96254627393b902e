"""IAM roles: trust policies, inline policies, tags."""

from __future__ import annotations

import dataclasses
from typing import Any

from openkms.arns import PARTITION, role_arn
from openkms.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    InvalidInput,
    LimitExceeded,
    NoSuchEntity,
)
from openkms.service.iam import identities
from openkms.service.iam.common import (
    DEFAULT_MAX_SESSION,
    ROLE_INLINE_LIMIT,
    TRUST_POLICY_LIMIT,
    IamContext,
    authorize_iam,
    check_document,
    merge_tags,
    normalized_path,
    paginate,
    policy_size,
    tags_in,
    tags_out,
)
from openkms.service.iam.identities import Kind
from openkms.service.identity.principals import new_id
from openkms.storage.store import (
    Conflict,
    RoleRow,
    Tx,
)

# --- roles ------------------------------------------------------------------------------------------


def _role_view(r: RoleRow, with_tags: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "path": r.path,
        "role_name": r.role_name,
        "role_id": r.role_id,
        "arn": role_arn(r.account_id, r.path, r.role_name),
        "create_date": r.created_at,
        "assume_role_policy_document": r.trust_policy,
        "max_session_duration": r.max_session_duration,
    }
    if r.description:
        view["description"] = r.description
    if with_tags and r.tags:
        view["tags"] = tags_out(r.tags)
    return view


def _no_role(name: str) -> NoSuchEntity:
    return NoSuchEntity(f"The role with name {name} cannot be found.")


def role_row(tx: Tx, ctx: IamContext, name: str) -> RoleRow:
    """The role, its row locked in a write transaction (see ``iam_users.user_row``)."""
    role = tx.get_role(ctx.account_id, name, for_update=tx.write)
    if role is None:
        raise _no_role(name)
    return role


def role_resource(ctx: IamContext, name: str) -> str:
    with ctx.store.read() as tx:
        role = tx.get_role(ctx.account_id, name)
    return role_arn(ctx.account_id, role.path if role is not None else "/", name)


def _check_trust(document: str) -> None:
    if policy_size(document) > TRUST_POLICY_LIMIT:
        raise LimitExceeded(f"Cannot exceed quota for ACLSizePerRole: {TRUST_POLICY_LIMIT}")
    check_document(document, "trust")


def create_role(
    ctx: IamContext,
    *,
    role_name: str,
    assume_role_policy_document: str,
    path: str | None = None,
    description: str | None = None,
    max_session_duration: int | None = None,
    permissions_boundary: str | None = None,
    tags: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    if permissions_boundary is not None:
        raise InvalidInput("Permissions boundaries are not supported by this service.")
    resource = role_arn(ctx.account_id, normalized_path(path), role_name)
    authorize_iam(ctx, "CreateRole", resource)
    new_tags = tags_in(tags)
    if new_tags:
        authorize_iam(ctx, "TagRole", resource)
    merge_tags({}, new_tags)
    _check_trust(assume_role_policy_document)
    row = RoleRow(
        ctx.account_id,
        role_name,
        new_id("AROA"),
        normalized_path(path),
        assume_role_policy_document,
        description or "",
        max_session_duration or DEFAULT_MAX_SESSION,
        ctx.now,
        {},
        new_tags,
    )
    with ctx.store.write() as tx:
        if not tx.account_exists(ctx.account_id):
            raise NoSuchEntity(f"The account {ctx.account_id} cannot be found.")
        try:
            tx.insert_role(row)
        except Conflict:
            raise EntityAlreadyExists(f"Role with name {role_name} already exists.") from None
    return {"role": _role_view(row)}


def get_role(ctx: IamContext, *, role_name: str) -> dict[str, Any]:
    authorize_iam(ctx, "GetRole", role_resource(ctx, role_name))
    with ctx.store.read() as tx:
        return {"role": {**_role_view(role_row(tx, ctx, role_name)), "role_last_used": {}}}


def list_roles(
    ctx: IamContext,
    *,
    path_prefix: str | None = None,
    marker: str | None = None,
    max_items: int | None = None,
) -> dict[str, Any]:
    authorize_iam(ctx, "ListRoles", f"arn:{PARTITION}:iam::{ctx.account_id}:role/")
    with ctx.store.read() as tx:
        roles = [r for r in tx.list_roles(ctx.account_id) if r.path.startswith(path_prefix or "/")]
    page, extra = paginate(roles, lambda r: r.role_name, marker, max_items)
    return {"roles": [_role_view(r, with_tags=False) for r in page], **extra}


def delete_role(ctx: IamContext, *, role_name: str, force: bool = False) -> None:
    """DeleteRole; ``force`` removes inline policies and attachments first instead of DeleteConflict."""
    authorize_iam(ctx, "DeleteRole", role_resource(ctx, role_name))
    with ctx.store.write() as tx:
        role = role_row(tx, ctx, role_name)
        attached = tx.attached_policies(ctx.account_id, "role", role_name)
        if not force:
            if role.inline_policies:
                raise DeleteConflict("Cannot delete entity, must delete policies first.")
            if attached:
                raise DeleteConflict("Cannot delete entity, must detach all policies first.")
        for arn in attached:
            tx.detach_policy(ctx.account_id, "role", role_name, arn)
        tx.delete_role(ctx.account_id, role_name)


def update_assume_role_policy(ctx: IamContext, *, role_name: str, policy_document: str) -> None:
    authorize_iam(ctx, "UpdateAssumeRolePolicy", role_resource(ctx, role_name))
    _check_trust(policy_document)
    with ctx.store.write() as tx:
        role = role_row(tx, ctx, role_name)
        tx.update_role(dataclasses.replace(role, trust_policy=policy_document))


def update_role(
    ctx: IamContext,
    *,
    role_name: str,
    description: str | None = None,
    max_session_duration: int | None = None,
) -> dict[str, Any]:
    authorize_iam(ctx, "UpdateRole", role_resource(ctx, role_name))
    with ctx.store.write() as tx:
        role = role_row(tx, ctx, role_name)
        changes: dict[str, Any] = {}
        if description is not None:
            changes["description"] = description
        if max_session_duration is not None:
            changes["max_session_duration"] = max_session_duration
        tx.update_role(dataclasses.replace(role, **changes))
    return {}


ROLE = Kind(
    noun="role",
    action="Role",
    inline_limit=ROLE_INLINE_LIMIT,
    load=role_row,
    save=lambda tx, row: tx.update_role(row),
    resource=role_resource,
)


def tag_role(ctx: IamContext, *, role_name: str, tags: list[dict[str, Any]]) -> None:
    identities.tag(ctx, ROLE, role_name, tags)


def untag_role(ctx: IamContext, *, role_name: str, tag_keys: list[str]) -> None:
    identities.untag(ctx, ROLE, role_name, tag_keys)


def list_role_tags(
    ctx: IamContext, *, role_name: str, marker: str | None = None, max_items: int | None = None
) -> dict[str, Any]:
    return identities.list_tags(ctx, ROLE, role_name)


def put_role_policy(ctx: IamContext, *, role_name: str, policy_name: str, policy_document: str) -> None:
    identities.put_policy(ctx, ROLE, role_name, policy_name, policy_document)


def get_role_policy(ctx: IamContext, *, role_name: str, policy_name: str) -> dict[str, Any]:
    return identities.get_policy(ctx, ROLE, role_name, policy_name)


def delete_role_policy(ctx: IamContext, *, role_name: str, policy_name: str) -> None:
    identities.delete_policy(ctx, ROLE, role_name, policy_name)


def list_role_policies(
    ctx: IamContext, *, role_name: str, marker: str | None = None, max_items: int | None = None
) -> dict[str, Any]:
    return identities.list_policies(ctx, ROLE, role_name, marker, max_items)
