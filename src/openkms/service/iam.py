"""IAM: users, access keys, roles (with trust policies), inline and managed identity policies, tags.

Each operation is ``fn(ctx, **params)`` with the snake_case parameters of the IAM Query API and a
snake_case result shaped like the operation's output (see :mod:`openkms.wire.query`). The same
functions serve ``openkms admin`` (``ctx.caller`` None: the local administrator, not subject to
policies) and the IAM Query API (``ctx.caller`` the authenticated principal: every call is authorized
as ``iam:<Operation>`` on the resource's ARN by the caller's identity policies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openkms.service.iam_common import (
    IamContext,
    authorize_iam,
    parsed_identity_policies,
    policy_arn,
    policy_caller,
    role_arn,
    user_arn,
)
from openkms.service.iam_policies import (
    attach_role_policy,
    attach_user_policy,
    create_policy,
    delete_policy,
    detach_role_policy,
    detach_user_policy,
    get_policy,
    get_policy_version,
    list_attached_role_policies,
    list_attached_user_policies,
    list_policies,
)
from openkms.service.iam_roles import (
    create_role,
    delete_role,
    delete_role_policy,
    get_role,
    get_role_policy,
    list_role_policies,
    list_role_tags,
    list_roles,
    put_role_policy,
    tag_role,
    untag_role,
    update_assume_role_policy,
    update_role,
)
from openkms.service.iam_users import (
    create_access_key,
    create_user,
    delete_access_key,
    delete_user,
    delete_user_policy,
    get_user,
    get_user_policy,
    list_access_keys,
    list_user_policies,
    list_user_tags,
    list_users,
    put_user_policy,
    tag_user,
    untag_user,
    update_access_key,
)

__all__ = [
    "OPERATIONS",
    "READ_ONLY",
    "IamContext",
    "Operation",
    "attach_role_policy",
    "attach_user_policy",
    "authorize_iam",
    "create_access_key",
    "create_policy",
    "create_role",
    "create_user",
    "delete_access_key",
    "delete_policy",
    "delete_role",
    "delete_role_policy",
    "delete_user",
    "delete_user_policy",
    "detach_role_policy",
    "detach_user_policy",
    "get_policy",
    "get_policy_version",
    "get_role",
    "get_role_policy",
    "get_user",
    "get_user_policy",
    "list_access_keys",
    "list_attached_role_policies",
    "list_attached_user_policies",
    "list_policies",
    "list_role_policies",
    "list_role_tags",
    "list_roles",
    "list_user_policies",
    "list_user_tags",
    "list_users",
    "parsed_identity_policies",
    "policy_arn",
    "policy_caller",
    "put_role_policy",
    "put_user_policy",
    "role_arn",
    "tag_role",
    "tag_user",
    "untag_role",
    "untag_user",
    "update_access_key",
    "update_assume_role_policy",
    "update_role",
    "user_arn",
]

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
