"""IAM users, their inline policies and their access keys."""

from __future__ import annotations

from typing import Any

from openkms.arns import PARTITION
from openkms.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    InvalidInput,
    LimitExceeded,
    NoSuchEntity,
    ValidationError,
)
from openkms.service.iam import identities
from openkms.service.iam.common import (
    MAX_ACCESS_KEYS,
    USER_INLINE_LIMIT,
    IamContext,
    authorize_iam,
    merge_tags,
    normalized_path,
    paginate,
    tags_in,
    tags_out,
    user_arn,
)
from openkms.service.iam.identities import Kind
from openkms.service.identity.principals import add_access_key, new_user
from openkms.storage.store import (
    AccessKeyRow,
    Conflict,
    Store,
    Tx,
    UserRow,
)

# --- users ------------------------------------------------------------------------------------------


def _user_view(u: UserRow, with_tags: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "path": u.path,
        "user_name": u.user_name,
        "user_id": u.user_id,
        "arn": user_arn(u.account_id, u.path, u.user_name),
        "create_date": u.created_at,
    }
    if with_tags and u.tags:
        view["tags"] = tags_out(u.tags)
    return view


def _no_user(name: str) -> NoSuchEntity:
    return NoSuchEntity(f"The user with name {name} cannot be found.")


def user_row(tx: Tx, ctx: IamContext, name: str) -> UserRow:
    """The user, its row locked in a write transaction: every change to a user or to what belongs to
    it (access keys, policies, tags, attachments, its deletion) is serialised on that lock."""
    user = tx.get_user(ctx.account_id, name, for_update=tx.write)
    if user is None:
        raise _no_user(name)
    return user


def user_resource(ctx: IamContext, name: str) -> str:
    """The ARN IAM authorizes a user operation on (with the user's path when the user exists)."""
    with ctx.store.read() as tx:
        user = tx.get_user(ctx.account_id, name)
    return user_arn(ctx.account_id, user.path if user is not None else "/", name)


def _own_user_name(ctx: IamContext, user_name: str | None) -> str:
    """An omitted UserName means the calling user (IAM's rule for GetUser, access keys…)."""
    if user_name:
        return user_name
    if ctx.caller is None or ctx.caller.identity_type != "IAMUser" or not ctx.caller.user_name:
        raise ValidationError("Must specify userName when calling with non-User credentials")
    return ctx.caller.user_name


def create_user(
    ctx: IamContext,
    *,
    user_name: str,
    path: str | None = None,
    permissions_boundary: str | None = None,
    tags: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    if permissions_boundary is not None:
        raise InvalidInput("Permissions boundaries are not supported by this service.")
    resource = user_arn(ctx.account_id, normalized_path(path), user_name)
    authorize_iam(ctx, "CreateUser", resource)
    new_tags = tags_in(tags)
    if new_tags:
        authorize_iam(ctx, "TagUser", resource)
    merge_tags({}, new_tags)
    row = new_user(ctx.account_id, user_name, ctx.now, path=normalized_path(path), tags=new_tags)
    with ctx.store.write() as tx:
        if not tx.account_exists(ctx.account_id):
            raise NoSuchEntity(f"The account {ctx.account_id} cannot be found.")
        try:
            tx.insert_user(row)
        except Conflict:
            raise EntityAlreadyExists(f"User with name {user_name} already exists.") from None
    return {"user": _user_view(row)}


def get_user(ctx: IamContext, *, user_name: str | None = None) -> dict[str, Any]:
    name = _own_user_name(ctx, user_name)
    authorize_iam(ctx, "GetUser", user_resource(ctx, name))
    with ctx.store.read() as tx:
        return {"user": _user_view(user_row(tx, ctx, name))}


def list_users(
    ctx: IamContext,
    *,
    path_prefix: str | None = None,
    marker: str | None = None,
    max_items: int | None = None,
) -> dict[str, Any]:
    authorize_iam(ctx, "ListUsers", f"arn:{PARTITION}:iam::{ctx.account_id}:user/")
    with ctx.store.read() as tx:
        users = [u for u in tx.list_users(ctx.account_id) if u.path.startswith(path_prefix or "/")]
    page, extra = paginate(users, lambda u: u.user_name, marker, max_items)
    return {"users": [_user_view(u, with_tags=False) for u in page], **extra}


def delete_user(ctx: IamContext, *, user_name: str, force: bool = False) -> None:
    """DeleteUser; ``force`` (``openkms admin delete-user --force``) first removes the user's access
    keys, inline policies and attachments instead of answering DeleteConflict."""
    authorize_iam(ctx, "DeleteUser", user_resource(ctx, user_name))
    with ctx.store.write() as tx:
        user = user_row(tx, ctx, user_name)
        keys = tx.list_access_keys(ctx.account_id, user_name)
        attached = tx.attached_policies(ctx.account_id, "user", user_name)
        if not force:
            if keys:
                raise DeleteConflict("Cannot delete entity, must delete access keys first.")
            if user.inline_policies:
                raise DeleteConflict("Cannot delete entity, must delete policies first.")
            if attached:
                raise DeleteConflict("Cannot delete entity, must detach all policies first.")
        for key in keys:
            tx.delete_access_key(key.access_key_id)
        for arn in attached:
            tx.detach_policy(ctx.account_id, "user", user_name, arn)
        tx.delete_user(ctx.account_id, user_name)


USER = Kind(
    noun="user",
    action="User",
    inline_limit=USER_INLINE_LIMIT,
    load=user_row,
    save=lambda tx, row: tx.update_user(row),
    resource=user_resource,
)


def tag_user(ctx: IamContext, *, user_name: str, tags: list[dict[str, Any]]) -> None:
    identities.tag(ctx, USER, user_name, tags)


def untag_user(ctx: IamContext, *, user_name: str, tag_keys: list[str]) -> None:
    identities.untag(ctx, USER, user_name, tag_keys)


def list_user_tags(
    ctx: IamContext, *, user_name: str, marker: str | None = None, max_items: int | None = None
) -> dict[str, Any]:
    return identities.list_tags(ctx, USER, user_name)


def put_user_policy(ctx: IamContext, *, user_name: str, policy_name: str, policy_document: str) -> None:
    identities.put_policy(ctx, USER, user_name, policy_name, policy_document)


def get_user_policy(ctx: IamContext, *, user_name: str, policy_name: str) -> dict[str, Any]:
    return identities.get_policy(ctx, USER, user_name, policy_name)


def delete_user_policy(ctx: IamContext, *, user_name: str, policy_name: str) -> None:
    identities.delete_policy(ctx, USER, user_name, policy_name)


def list_user_policies(
    ctx: IamContext, *, user_name: str, marker: str | None = None, max_items: int | None = None
) -> dict[str, Any]:
    return identities.list_policies(ctx, USER, user_name, marker, max_items)


# --- access keys ------------------------------------------------------------------------------------


def _key_view(row: AccessKeyRow) -> dict[str, Any]:
    return {
        "user_name": row.user_name,
        "access_key_id": row.access_key_id,
        "status": row.status,
        "create_date": row.created_at,
    }


def create_access_key(ctx: IamContext, *, user_name: str | None = None) -> dict[str, Any]:
    name = _own_user_name(ctx, user_name)
    authorize_iam(ctx, "CreateAccessKey", user_resource(ctx, name))
    with ctx.store.write() as tx:
        user_row(tx, ctx, name)
        if len(tx.list_access_keys(ctx.account_id, name)) >= MAX_ACCESS_KEYS:
            raise LimitExceeded(f"Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS}")
        new = add_access_key(tx, ctx.root, ctx.account_id, name, ctx.now)
    row = AccessKeyRow(new.access_key_id, ctx.account_id, name, b"", "Active", ctx.now)
    return {"access_key": {**_key_view(row), "secret_access_key": new.secret_access_key.reveal()}}


def list_access_keys(
    ctx: IamContext, *, user_name: str | None = None, marker: str | None = None, max_items: int | None = None
) -> dict[str, Any]:
    name = _own_user_name(ctx, user_name)
    authorize_iam(ctx, "ListAccessKeys", user_resource(ctx, name))
    with ctx.store.read() as tx:
        user_row(tx, ctx, name)
        rows = tx.list_access_keys(ctx.account_id, name)
    page, extra = paginate(rows, lambda r: r.access_key_id, marker, max_items)
    return {"access_key_metadata": [_key_view(r) for r in page], **extra}


def _no_key(access_key_id: str) -> NoSuchEntity:
    return NoSuchEntity(f"The Access Key with id {access_key_id} cannot be found.")


def _own_key(tx: Tx, ctx: IamContext, access_key_id: str, user_name: str) -> AccessKeyRow:
    row = tx.get_access_key(access_key_id)
    if row is None or row.account_id != ctx.account_id or row.user_name != user_name:
        raise _no_key(access_key_id)
    return row


def access_key_owner(store: Store, access_key_id: str) -> tuple[str, str]:
    """The account and user name of an access key, for the local administrator, who names a key by its
    id alone (``openkms admin delete-access-key``); NoSuchEntity as DeleteAccessKey answers."""
    with store.read() as tx:
        row = tx.get_access_key(access_key_id)
    if row is None:
        raise _no_key(access_key_id)
    return row.account_id, row.user_name


def delete_access_key(ctx: IamContext, *, access_key_id: str, user_name: str | None = None) -> None:
    name = _own_user_name(ctx, user_name)
    authorize_iam(ctx, "DeleteAccessKey", user_resource(ctx, name))
    with ctx.store.write() as tx:
        user_row(tx, ctx, name)
        _own_key(tx, ctx, access_key_id, name)
        tx.delete_access_key(access_key_id)


def update_access_key(
    ctx: IamContext, *, access_key_id: str, status: str, user_name: str | None = None
) -> None:
    name = _own_user_name(ctx, user_name)
    authorize_iam(ctx, "UpdateAccessKey", user_resource(ctx, name))
    with ctx.store.write() as tx:
        user_row(tx, ctx, name)
        _own_key(tx, ctx, access_key_id, name)
        tx.set_access_key_status(access_key_id, status)
