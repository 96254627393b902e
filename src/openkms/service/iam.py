"""IAM: users, access keys, roles (with trust policies), inline and managed identity policies, tags.

Each operation is ``fn(ctx, **params)`` with the snake_case parameters of the IAM Query API and a
snake_case result shaped like the operation's output (see :mod:`openkms.wire.query`). The same
functions serve ``openkms admin`` (``ctx.caller`` None: the local administrator, not subject to
policies) and the IAM Query API (``ctx.caller`` the authenticated principal: every call is authorized
as ``iam:<Operation>`` on the resource's ARN by the caller's identity policies).
"""

from __future__ import annotations

import base64
import os
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openkms.auth.policy import (
    Caller,
    PolicyDocument,
    PolicyKind,
    Request,
    access_denied_message,
    authorize,
    parse_policy,
)
from openkms.crypto.envelope import RootKey
from openkms.domain.model import Principal
from openkms.errors import LimitExceededException, ServiceError
from openkms.service.iam_errors import (
    AccessDenied,
    DeleteConflict,
    EntityAlreadyExists,
    InvalidInput,
    LimitExceeded,
    MalformedPolicyDocument,
    NoSuchEntity,
    ValidationError,
)
from openkms.service.identity_policies import identity_policies, policy_text
from openkms.service.principals import SECRET_PURPOSE
from openkms.storage.store import (
    AccessKeyRow,
    Conflict,
    ManagedPolicyRow,
    RoleRow,
    Store,
    Tx,
    UserRow,
)

PARTITION = "aws"
MAX_ACCESS_KEYS = 2
MAX_TAGS = 50
USER_INLINE_LIMIT = 2048
ROLE_INLINE_LIMIT = 10240
MANAGED_POLICY_LIMIT = 6144
TRUST_POLICY_LIMIT = 2048
DEFAULT_MAX_SESSION = 3600
_ALNUM = string.ascii_uppercase + string.digits


@dataclass(frozen=True, slots=True)
class IamContext:
    """Who calls and on which data. ``caller`` None is the local administrator (``openkms admin``)."""

    store: Store
    root: RootKey
    now: float
    account_id: str
    caller: Principal | None = None


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(17))


def new_secret() -> str:
    return base64.b64encode(os.urandom(30)).decode()


# --- ARNs -------------------------------------------------------------------------------------------


def user_arn(account: str, path: str, name: str) -> str:
    return f"arn:{PARTITION}:iam::{account}:user{path}{name}"


def role_arn(account: str, path: str, name: str) -> str:
    return f"arn:{PARTITION}:iam::{account}:role{path}{name}"


def policy_arn(account: str, path: str, name: str) -> str:
    return f"arn:{PARTITION}:iam::{account}:policy{path}{name}"


# --- authorization ----------------------------------------------------------------------------------


def policy_caller(principal: Principal) -> Caller:
    """The policy engine's ``Caller`` for an authenticated principal."""
    return Caller(
        arn=principal.arn,
        account_id=principal.account_id,
        principal_type=principal.identity_type,
        user_id=principal.principal_id,
        user_name=principal.user_name,
        role_arn=principal.role_arn,
        tags=dict(principal.tags),
    )


def parsed_identity_policies(store: Store, principal: Principal) -> list[PolicyDocument]:
    parsed = []
    for text in identity_policies(store, principal):
        try:
            parsed.append(parse_policy(text, kind="identity"))
        except ServiceError:
            continue
    return parsed


def authorize_iam(
    ctx: IamContext, operation: str, resource: str, context: dict[str, Any] | None = None
) -> None:
    """Raise AccessDenied unless the caller's identity policies allow ``iam:<operation>`` on ``resource``."""
    if ctx.caller is None:
        return
    caller = policy_caller(ctx.caller)
    request = Request(
        action=f"iam:{operation}", resource=resource, resource_account=ctx.account_id, context=context or {}
    )
    decision = authorize(
        caller, request, key_policy=None, identity_policies=parsed_identity_policies(ctx.store, ctx.caller)
    )
    if not decision.allowed:
        raise AccessDenied(access_denied_message(caller, request, decision))


# --- documents, tags, paging ------------------------------------------------------------------------


def check_document(document: str, kind: PolicyKind) -> PolicyDocument:
    """The parsed document; IAM's MalformedPolicyDocument / LimitExceeded for a bad one."""
    try:
        return parse_policy(document, kind=kind)
    except LimitExceededException as exc:
        raise LimitExceeded(exc.message) from None
    except ServiceError as exc:  # the engine's MalformedPolicyDocumentException, in IAM's words
        raise MalformedPolicyDocument(exc.message or "Syntax errors in policy.") from None


def _policy_size(text: str) -> int:
    return len("".join(text.split()))


def _tags_in(tags: list[dict[str, Any]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for tag in tags or []:
        out[str(tag.get("key", ""))] = str(tag.get("value", ""))
    return out


def _tags_out(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def _merge_tags(current: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    merged = {**current, **new}
    if len(merged) > MAX_TAGS:
        raise LimitExceeded("The number of tags has reached the maximum limit.")
    return merged


def _page(
    items: list[Any], key: Callable[[Any], str], marker: str | None, max_items: int | None
) -> tuple[list[Any], dict[str, Any]]:
    if marker:
        items = [item for item in items if key(item) > marker]
    limit = max_items or 100
    page = items[:limit]
    extra: dict[str, Any] = {"is_truncated": len(items) > limit}
    if len(items) > limit:
        extra["marker"] = key(page[-1])
    return page, extra


def _path(path: str | None) -> str:
    return path or "/"


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
        view["tags"] = _tags_out(u.tags)
    return view


def _no_user(name: str) -> NoSuchEntity:
    return NoSuchEntity(f"The user with name {name} cannot be found.")


def _user(tx: Tx, ctx: IamContext, name: str) -> UserRow:
    user = tx.get_user(ctx.account_id, name)
    if user is None:
        raise _no_user(name)
    return user


def _user_resource(ctx: IamContext, name: str) -> str:
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
    resource = user_arn(ctx.account_id, _path(path), user_name)
    authorize_iam(ctx, "CreateUser", resource)
    new_tags = _tags_in(tags)
    if new_tags:
        authorize_iam(ctx, "TagUser", resource)
    _merge_tags({}, new_tags)
    row = UserRow(ctx.account_id, user_name, new_id("AIDA"), _path(path), ctx.now, {}, new_tags)
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
    authorize_iam(ctx, "GetUser", _user_resource(ctx, name))
    with ctx.store.read() as tx:
        return {"user": _user_view(_user(tx, ctx, name))}


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
    page, extra = _page(users, lambda u: u.user_name, marker, max_items)
    return {"users": [_user_view(u, with_tags=False) for u in page], **extra}


def delete_user(ctx: IamContext, *, user_name: str, force: bool = False) -> None:
    """DeleteUser; ``force`` (``openkms admin delete-user --force``) first removes the user's access
    keys, inline policies and attachments instead of answering DeleteConflict."""
    authorize_iam(ctx, "DeleteUser", _user_resource(ctx, user_name))
    with ctx.store.write() as tx:
        user = _user(tx, ctx, user_name)
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


def tag_user(ctx: IamContext, *, user_name: str, tags: list[dict[str, Any]]) -> None:
    authorize_iam(ctx, "TagUser", _user_resource(ctx, user_name))
    with ctx.store.write() as tx:
        user = _user(tx, ctx, user_name)
        tx.update_user(_replace_user(user, tags=_merge_tags(user.tags, _tags_in(tags))))


def untag_user(ctx: IamContext, *, user_name: str, tag_keys: list[str]) -> None:
    authorize_iam(ctx, "UntagUser", _user_resource(ctx, user_name))
    with ctx.store.write() as tx:
        user = _user(tx, ctx, user_name)
        tx.update_user(
            _replace_user(user, tags={k: v for k, v in user.tags.items() if k not in set(tag_keys)})
        )


def list_user_tags(
    ctx: IamContext, *, user_name: str, marker: str | None = None, max_items: int | None = None
) -> dict[str, Any]:
    authorize_iam(ctx, "ListUserTags", _user_resource(ctx, user_name))
    with ctx.store.read() as tx:
        user = _user(tx, ctx, user_name)
    return {"tags": _tags_out(user.tags), "is_truncated": False}


def _replace_user(
    u: UserRow, *, tags: dict[str, str] | None = None, inline: dict[str, Any] | None = None
) -> UserRow:
    return UserRow(
        u.account_id,
        u.user_name,
        u.user_id,
        u.path,
        u.created_at,
        u.inline_policies if inline is None else inline,
        u.tags if tags is None else tags,
    )


def put_user_policy(ctx: IamContext, *, user_name: str, policy_name: str, policy_document: str) -> None:
    authorize_iam(ctx, "PutUserPolicy", _user_resource(ctx, user_name))
    check_document(policy_document, "identity")
    with ctx.store.write() as tx:
        user = _user(tx, ctx, user_name)
        inline = {**user.inline_policies, policy_name: policy_document}
        if sum(_policy_size(policy_text(doc)) for doc in inline.values()) > USER_INLINE_LIMIT:
            raise LimitExceeded(
                f"Maximum policy size of {USER_INLINE_LIMIT} bytes exceeded for user {user_name}"
            )
        tx.update_user(_replace_user(user, inline=inline))


def get_user_policy(ctx: IamContext, *, user_name: str, policy_name: str) -> dict[str, Any]:
    authorize_iam(ctx, "GetUserPolicy", _user_resource(ctx, user_name))
    with ctx.store.read() as tx:
        user = _user(tx, ctx, user_name)
    document = user.inline_policies.get(policy_name)
    if document is None:
        raise NoSuchEntity(f"The user policy with name {policy_name} cannot be found.")
    return {"user_name": user_name, "policy_name": policy_name, "policy_document": policy_text(document)}


def delete_user_policy(ctx: IamContext, *, user_name: str, policy_name: str) -> None:
    authorize_iam(ctx, "DeleteUserPolicy", _user_resource(ctx, user_name))
    with ctx.store.write() as tx:
        user = _user(tx, ctx, user_name)
        if policy_name not in user.inline_policies:
            raise NoSuchEntity(f"The user policy with name {policy_name} cannot be found.")
        inline = {k: v for k, v in user.inline_policies.items() if k != policy_name}
        tx.update_user(_replace_user(user, inline=inline))


def list_user_policies(
    ctx: IamContext, *, user_name: str, marker: str | None = None, max_items: int | None = None
) -> dict[str, Any]:
    authorize_iam(ctx, "ListUserPolicies", _user_resource(ctx, user_name))
    with ctx.store.read() as tx:
        user = _user(tx, ctx, user_name)
    page, extra = _page(sorted(user.inline_policies), lambda n: n, marker, max_items)
    return {"policy_names": page, **extra}


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
    authorize_iam(ctx, "CreateAccessKey", _user_resource(ctx, name))
    akid = "AKIA" + "".join(secrets.choice(_ALNUM) for _ in range(16))
    secret = new_secret()
    with ctx.store.write() as tx:
        _user(tx, ctx, name)
        if len(tx.list_access_keys(ctx.account_id, name)) >= MAX_ACCESS_KEYS:
            raise LimitExceeded(f"Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS}")
        row = AccessKeyRow(
            akid,
            ctx.account_id,
            name,
            ctx.root.seal(SECRET_PURPOSE, akid, secret.encode()),
            "Active",
            ctx.now,
        )
        tx.put_access_key(row)
    return {"access_key": {**_key_view(row), "secret_access_key": secret}}


def list_access_keys(
    ctx: IamContext, *, user_name: str | None = None, marker: str | None = None, max_items: int | None = None
) -> dict[str, Any]:
    name = _own_user_name(ctx, user_name)
    authorize_iam(ctx, "ListAccessKeys", _user_resource(ctx, name))
    with ctx.store.read() as tx:
        _user(tx, ctx, name)
        rows = tx.list_access_keys(ctx.account_id, name)
    page, extra = _page(rows, lambda r: r.access_key_id, marker, max_items)
    return {"access_key_metadata": [_key_view(r) for r in page], **extra}


def _own_key(tx: Tx, ctx: IamContext, access_key_id: str, user_name: str) -> AccessKeyRow:
    row = tx.get_access_key(access_key_id)
    if row is None or row.account_id != ctx.account_id or row.user_name != user_name:
        raise NoSuchEntity(f"The Access Key with id {access_key_id} cannot be found.")
    return row


def delete_access_key(ctx: IamContext, *, access_key_id: str, user_name: str | None = None) -> None:
    name = _own_user_name(ctx, user_name)
    authorize_iam(ctx, "DeleteAccessKey", _user_resource(ctx, name))
    with ctx.store.write() as tx:
        _user(tx, ctx, name)
        _own_key(tx, ctx, access_key_id, name)
        tx.delete_access_key(access_key_id)


def update_access_key(
    ctx: IamContext, *, access_key_id: str, status: str, user_name: str | None = None
) -> None:
    name = _own_user_name(ctx, user_name)
    authorize_iam(ctx, "UpdateAccessKey", _user_resource(ctx, name))
    with ctx.store.write() as tx:
        _user(tx, ctx, name)
        _own_key(tx, ctx, access_key_id, name)
        tx.set_access_key_status(access_key_id, status)


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
        view["tags"] = _tags_out(r.tags)
    return view


def _no_role(name: str) -> NoSuchEntity:
    return NoSuchEntity(f"The role with name {name} cannot be found.")


def _role(tx: Tx, ctx: IamContext, name: str) -> RoleRow:
    role = tx.get_role(ctx.account_id, name)
    if role is None:
        raise _no_role(name)
    return role


def _role_resource(ctx: IamContext, name: str) -> str:
    with ctx.store.read() as tx:
        role = tx.get_role(ctx.account_id, name)
    return role_arn(ctx.account_id, role.path if role is not None else "/", name)


def _replace_role(r: RoleRow, **changes: Any) -> RoleRow:
    values = {
        "trust_policy": r.trust_policy,
        "description": r.description,
        "max_session_duration": r.max_session_duration,
        "inline_policies": r.inline_policies,
        "tags": r.tags,
        **changes,
    }
    return RoleRow(
        r.account_id,
        r.role_name,
        r.role_id,
        r.path,
        values["trust_policy"],
        values["description"],
        values["max_session_duration"],
        r.created_at,
        values["inline_policies"],
        values["tags"],
    )


def _check_trust(document: str) -> None:
    if _policy_size(document) > TRUST_POLICY_LIMIT:
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
    resource = role_arn(ctx.account_id, _path(path), role_name)
    authorize_iam(ctx, "CreateRole", resource)
    new_tags = _tags_in(tags)
    if new_tags:
        authorize_iam(ctx, "TagRole", resource)
    _merge_tags({}, new_tags)
    _check_trust(assume_role_policy_document)
    row = RoleRow(
        ctx.account_id,
        role_name,
        new_id("AROA"),
        _path(path),
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
    authorize_iam(ctx, "GetRole", _role_resource(ctx, role_name))
    with ctx.store.read() as tx:
        return {"role": {**_role_view(_role(tx, ctx, role_name)), "role_last_used": {}}}


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
    page, extra = _page(roles, lambda r: r.role_name, marker, max_items)
    return {"roles": [_role_view(r, with_tags=False) for r in page], **extra}


def delete_role(ctx: IamContext, *, role_name: str, force: bool = False) -> None:
    """DeleteRole; ``force`` removes inline policies and attachments first instead of DeleteConflict."""
    authorize_iam(ctx, "DeleteRole", _role_resource(ctx, role_name))
    with ctx.store.write() as tx:
        role = _role(tx, ctx, role_name)
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
    authorize_iam(ctx, "UpdateAssumeRolePolicy", _role_resource(ctx, role_name))
    _check_trust(policy_document)
    with ctx.store.write() as tx:
        role = _role(tx, ctx, role_name)
        tx.update_role(_replace_role(role, trust_policy=policy_document))


def update_role(
    ctx: IamContext,
    *,
    role_name: str,
    description: str | None = None,
    max_session_duration: int | None = None,
) -> dict[str, Any]:
    authorize_iam(ctx, "UpdateRole", _role_resource(ctx, role_name))
    with ctx.store.write() as tx:
        role = _role(tx, ctx, role_name)
        changes: dict[str, Any] = {}
        if description is not None:
            changes["description"] = description
        if max_session_duration is not None:
            changes["max_session_duration"] = max_session_duration
        tx.update_role(_replace_role(role, **changes))
    return {}


def tag_role(ctx: IamContext, *, role_name: str, tags: list[dict[str, Any]]) -> None:
    authorize_iam(ctx, "TagRole", _role_resource(ctx, role_name))
    with ctx.store.write() as tx:
        role = _role(tx, ctx, role_name)
        tx.update_role(_replace_role(role, tags=_merge_tags(role.tags, _tags_in(tags))))


def untag_role(ctx: IamContext, *, role_name: str, tag_keys: list[str]) -> None:
    authorize_iam(ctx, "UntagRole", _role_resource(ctx, role_name))
    with ctx.store.write() as tx:
        role = _role(tx, ctx, role_name)
        tx.update_role(
            _replace_role(role, tags={k: v for k, v in role.tags.items() if k not in set(tag_keys)})
        )


def list_role_tags(
    ctx: IamContext, *, role_name: str, marker: str | None = None, max_items: int | None = None
) -> dict[str, Any]:
    authorize_iam(ctx, "ListRoleTags", _role_resource(ctx, role_name))
    with ctx.store.read() as tx:
        role = _role(tx, ctx, role_name)
    return {"tags": _tags_out(role.tags), "is_truncated": False}


def put_role_policy(ctx: IamContext, *, role_name: str, policy_name: str, policy_document: str) -> None:
    authorize_iam(ctx, "PutRolePolicy", _role_resource(ctx, role_name))
    check_document(policy_document, "identity")
    with ctx.store.write() as tx:
        role = _role(tx, ctx, role_name)
        inline = {**role.inline_policies, policy_name: policy_document}
        if sum(_policy_size(policy_text(doc)) for doc in inline.values()) > ROLE_INLINE_LIMIT:
            raise LimitExceeded(
                f"Maximum policy size of {ROLE_INLINE_LIMIT} bytes exceeded for role {role_name}"
            )
        tx.update_role(_replace_role(role, inline_policies=inline))


def get_role_policy(ctx: IamContext, *, role_name: str, policy_name: str) -> dict[str, Any]:
    authorize_iam(ctx, "GetRolePolicy", _role_resource(ctx, role_name))
    with ctx.store.read() as tx:
        role = _role(tx, ctx, role_name)
    document = role.inline_policies.get(policy_name)
    if document is None:
        raise NoSuchEntity(f"The role policy with name {policy_name} cannot be found.")
    return {"role_name": role_name, "policy_name": policy_name, "policy_document": policy_text(document)}


def delete_role_policy(ctx: IamContext, *, role_name: str, policy_name: str) -> None:
    authorize_iam(ctx, "DeleteRolePolicy", _role_resource(ctx, role_name))
    with ctx.store.write() as tx:
        role = _role(tx, ctx, role_name)
        if policy_name not in role.inline_policies:
            raise NoSuchEntity(f"The role policy with name {policy_name} cannot be found.")
        inline = {k: v for k, v in role.inline_policies.items() if k != policy_name}
        tx.update_role(_replace_role(role, inline_policies=inline))


def list_role_policies(
    ctx: IamContext, *, role_name: str, marker: str | None = None, max_items: int | None = None
) -> dict[str, Any]:
    authorize_iam(ctx, "ListRolePolicies", _role_resource(ctx, role_name))
    with ctx.store.read() as tx:
        role = _role(tx, ctx, role_name)
    page, extra = _page(sorted(role.inline_policies), lambda n: n, marker, max_items)
    return {"policy_names": page, **extra}


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
    row = tx.get_managed_policy(arn)
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
    arn = policy_arn(ctx.account_id, _path(path), policy_name)
    authorize_iam(ctx, "CreatePolicy", arn)
    if _policy_size(policy_document) > MANAGED_POLICY_LIMIT:
        raise LimitExceeded(f"Cannot exceed quota for PolicySize: {MANAGED_POLICY_LIMIT}")
    check_document(policy_document, "identity")
    row = ManagedPolicyRow(
        ctx.account_id,
        policy_name,
        new_id("ANPA"),
        arn,
        _path(path),
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
    page, extra = _page(rows, lambda item: item[0].policy_name, marker, max_items)
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
        _user(tx, ctx, name) if kind == "user" else _role(tx, ctx, name)
        _managed(tx, ctx, arn)
        if attach:
            tx.attach_policy(ctx.account_id, kind, name, arn)
        elif not tx.detach_policy(ctx.account_id, kind, name, arn):
            raise NoSuchEntity(f"Policy {arn} was not found.")


def attach_user_policy(ctx: IamContext, *, user_name: str, policy_arn: str) -> None:
    authorize_iam(ctx, "AttachUserPolicy", _user_resource(ctx, user_name), {"iam:PolicyARN": policy_arn})
    _attach(ctx, "user", user_name, policy_arn, True)


def detach_user_policy(ctx: IamContext, *, user_name: str, policy_arn: str) -> None:
    authorize_iam(ctx, "DetachUserPolicy", _user_resource(ctx, user_name), {"iam:PolicyARN": policy_arn})
    _attach(ctx, "user", user_name, policy_arn, False)


def attach_role_policy(ctx: IamContext, *, role_name: str, policy_arn: str) -> None:
    authorize_iam(ctx, "AttachRolePolicy", _role_resource(ctx, role_name), {"iam:PolicyARN": policy_arn})
    _attach(ctx, "role", role_name, policy_arn, True)


def detach_role_policy(ctx: IamContext, *, role_name: str, policy_arn: str) -> None:
    authorize_iam(ctx, "DetachRolePolicy", _role_resource(ctx, role_name), {"iam:PolicyARN": policy_arn})
    _attach(ctx, "role", role_name, policy_arn, False)


def _attached(
    ctx: IamContext, kind: str, name: str, marker: str | None, max_items: int | None
) -> dict[str, Any]:
    with ctx.store.read() as tx:
        _user(tx, ctx, name) if kind == "user" else _role(tx, ctx, name)
        arns = tx.attached_policies(ctx.account_id, kind, name)
    page, extra = _page(arns, lambda a: a, marker, max_items)
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
    authorize_iam(ctx, "ListAttachedUserPolicies", _user_resource(ctx, user_name))
    return _attached(ctx, "user", user_name, marker, max_items)


def list_attached_role_policies(
    ctx: IamContext,
    *,
    role_name: str,
    path_prefix: str | None = None,
    marker: str | None = None,
    max_items: int | None = None,
) -> dict[str, Any]:
    authorize_iam(ctx, "ListAttachedRolePolicies", _role_resource(ctx, role_name))
    return _attached(ctx, "role", role_name, marker, max_items)


Operation = Callable[..., dict[str, Any] | None]

#: The IAM Query API operations served (AWS operation name -> function).
OPERATIONS: dict[str, Operation] = {
    "CreateUser": create_user,
    "GetUser": get_user,
    "ListUsers": list_users,
    "DeleteUser": delete_user,
    "TagUser": tag_user,
    "UntagUser": untag_user,
    "ListUserTags": list_user_tags,
    "PutUserPolicy": put_user_policy,
    "GetUserPolicy": get_user_policy,
    "DeleteUserPolicy": delete_user_policy,
    "ListUserPolicies": list_user_policies,
    "CreateAccessKey": create_access_key,
    "ListAccessKeys": list_access_keys,
    "DeleteAccessKey": delete_access_key,
    "UpdateAccessKey": update_access_key,
    "CreateRole": create_role,
    "GetRole": get_role,
    "ListRoles": list_roles,
    "DeleteRole": delete_role,
    "UpdateAssumeRolePolicy": update_assume_role_policy,
    "UpdateRole": update_role,
    "TagRole": tag_role,
    "UntagRole": untag_role,
    "ListRoleTags": list_role_tags,
    "PutRolePolicy": put_role_policy,
    "GetRolePolicy": get_role_policy,
    "DeleteRolePolicy": delete_role_policy,
    "ListRolePolicies": list_role_policies,
    "CreatePolicy": create_policy,
    "GetPolicy": get_policy,
    "GetPolicyVersion": get_policy_version,
    "ListPolicies": list_policies,
    "DeletePolicy": delete_policy,
    "AttachUserPolicy": attach_user_policy,
    "DetachUserPolicy": detach_user_policy,
    "AttachRolePolicy": attach_role_policy,
    "DetachRolePolicy": detach_role_policy,
    "ListAttachedUserPolicies": list_attached_user_policies,
    "ListAttachedRolePolicies": list_attached_role_policies,
}

#: Operations that change nothing (CloudTrail ``readOnly``).
READ_ONLY = frozenset(name for name in OPERATIONS if name.startswith(("Get", "List")))
