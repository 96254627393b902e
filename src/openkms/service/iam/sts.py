"""STS: AssumeRole (temporary credentials for a role session) and GetCallerIdentity.

A session is an access key id ``ASIA…``, a secret (stored sealed under the root key, purpose
``session-secret``) and a session token (only its SHA-256 is stored). Requests signed with the session's
key must carry the token in ``X-Amz-Security-Token``; :meth:`Credentials.check_session` checks it and the
expiry against the service clock.

AssumeRole authorization, as AWS does it within an account: the role's trust policy must allow
``sts:AssumeRole`` for the caller. If it names the caller itself (or ``*``), that suffices; if it admits
the caller only through its account (``arn:aws:iam::A:root``, ``"A"``), the caller's identity policies
must allow ``sts:AssumeRole`` on the role ARN too (always across accounts). Session tags need
``sts:TagSession`` the same way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import string
from typing import Any

from openkms.arns import role_arn
from openkms.auth.policy import Request, authorize
from openkms.domain.model import Principal
from openkms.errors import AccessDenied, InternalError, ServiceError, ValidationError
from openkms.service.iam.common import (
    IamContext,
    Operation,
    parsed_identity_policies,
    policy_caller,
)
from openkms.service.identity.principals import SESSION_PURPOSE, new_secret, session_arn
from openkms.storage.store import RoleRow, SessionRow

DEFAULT_DURATION = 3600
CHAINING_LIMIT = 3600
_ALNUM = string.ascii_uppercase + string.digits


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _parse_role_arn(arn: str) -> tuple[str, str, str] | None:
    """(account, path, name) of ``arn:aws:iam::A:role/path/Name``."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "iam" or not parts[5].startswith("role/"):
        return None
    resource = parts[5][len("role") :]
    path, _, name = resource.rpartition("/")
    if not name:
        return None
    return parts[4], path + "/", name


def _caller(ctx: IamContext) -> Principal:
    """The signed-in caller: STS is served only to signed requests (``openkms admin`` has no STS)."""
    if ctx.caller is None:
        raise InternalError("an STS operation without an authenticated caller")
    return ctx.caller


def _denied(caller: Principal, action: str, resource: str) -> AccessDenied:
    return AccessDenied(f"User: {caller.arn} is not authorized to perform: {action} on resource: {resource}")


def _trust_allows(
    ctx: IamContext, caller: Principal, role: RoleRow, action: str, context: dict[str, Any]
) -> bool:
    """The trust policy as the resource policy of the role, with the caller's identity policies: the
    engine's :func:`authorize` applies AWS's rules (a trust policy naming the caller itself suffices in
    the same account; naming its account, or another account, needs the identity policies too)."""
    arn = role_arn(role.account_id, role.path, role.role_name)
    try:
        trust = ctx.documents.parse(role.trust_policy, kind="trust")
    except ServiceError:  # a trust policy the engine cannot read admits nobody
        return False
    request = Request(action=action, resource=arn, resource_account=role.account_id, context=context)
    decision = authorize(
        policy_caller(caller),
        request,
        key_policy=trust,
        identity_policies=parsed_identity_policies(ctx.policies, ctx.documents, caller),
    )
    return bool(decision.allowed)


def assume_role(
    ctx: IamContext,
    *,
    role_arn: str,
    role_session_name: str,
    duration_seconds: int | None = None,
    policy: str | None = None,
    policy_arns: list[dict[str, Any]] | None = None,
    tags: list[dict[str, Any]] | None = None,
    transitive_tag_keys: list[str] | None = None,
    external_id: str | None = None,
    serial_number: str | None = None,
    token_code: str | None = None,
    source_identity: str | None = None,
    provided_contexts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    caller = _caller(ctx)
    if policy is not None or policy_arns:
        raise ValidationError("Session policies (Policy, PolicyArns) are not supported by this service.")
    denied = _denied(caller, "sts:AssumeRole", role_arn)
    parsed = _parse_role_arn(role_arn)
    if parsed is None:
        raise ValidationError(f"{role_arn} is invalid")
    account, path, name = parsed
    with ctx.store.read() as tx:
        role = tx.get_role(account, name)
    if role is None or role.path != path:
        raise denied
    session_tags = {str(t.get("key", "")): str(t.get("value", "")) for t in tags or []}
    context: dict[str, Any] = {"sts:RoleSessionName": role_session_name}
    if external_id is not None:
        context["sts:ExternalId"] = external_id
    if source_identity is not None:
        context["sts:SourceIdentity"] = source_identity
    if session_tags:
        context["aws:TagKeys"] = sorted(session_tags)
        for key, value in session_tags.items():
            context[f"aws:RequestTag/{key}"] = value
    if transitive_tag_keys:
        context["sts:TransitiveTagKeys"] = list(transitive_tag_keys)
    if not _trust_allows(ctx, caller, role, "sts:AssumeRole", context):
        raise denied
    if session_tags and not _trust_allows(ctx, caller, role, "sts:TagSession", context):
        raise _denied(caller, "sts:TagSession", role_arn)
    duration = duration_seconds or DEFAULT_DURATION
    if caller.identity_type == "AssumedRole" and duration > CHAINING_LIMIT:
        raise ValidationError(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role "
            "chaining."
        )
    if duration > role.max_session_duration:
        raise ValidationError(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )

    akid = "ASIA" + "".join(secrets.choice(_ALNUM) for _ in range(16))
    secret = new_secret()
    token = base64.b64encode(os.urandom(192)).decode()
    expires = float(int(ctx.now) + duration)
    row = SessionRow(
        access_key_id=akid,
        secret_sealed=ctx.root.seal(SESSION_PURPOSE, akid, secret.encode()),
        token_sha256=token_digest(token),
        account_id=account,
        role_name=role.role_name,
        role_id=role.role_id,
        role_path=role.path,
        session_name=role_session_name,
        created_at=ctx.now,
        expires=expires,
        tags={**role.tags, **session_tags},
        source_identity=source_identity,
    )
    with ctx.store.write() as tx:
        tx.put_session(row)
    result: dict[str, Any] = {
        "credentials": {
            "access_key_id": akid,
            "secret_access_key": secret,
            "session_token": token,
            "expiration": expires,
        },
        "assumed_role_user": {
            "assumed_role_id": f"{role.role_id}:{role_session_name}",
            "arn": session_arn(account, role.role_name, role_session_name),
        },
    }
    if session_tags:
        result["packed_policy_size"] = min(100, max(1, len(json.dumps(session_tags)) * 100 // 2048))
    if source_identity is not None:
        result["source_identity"] = source_identity
    return result


def get_caller_identity(ctx: IamContext) -> dict[str, Any]:
    """Who the caller is: always allowed, whatever the policies say (as on AWS)."""
    caller = _caller(ctx)
    return {"user_id": caller.principal_id, "account": caller.account_id, "arn": caller.arn}


#: The STS Query API operations served.
OPERATIONS: dict[str, Operation] = {
    "AssumeRole": assume_role,
    "GetCallerIdentity": get_caller_identity,
}

READ_ONLY = frozenset({"GetCallerIdentity"})
