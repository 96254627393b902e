"""Shared by the IAM operations: the call context, ids and ARNs, authorization of IAM calls,
policy documents, tags and paging."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openkms.arns import PARTITION
from openkms.auth.policy import (
    Caller,
    PolicyCache,
    PolicyDocument,
    PolicyKind,
    Request,
    access_denied_message,
    authorize,
    parse_policy,
)
from openkms.crypto.envelope import RootKey
from openkms.domain.model import Principal
from openkms.errors import (
    AccessDenied,
    LimitExceeded,
    LimitExceededException,
    MalformedPolicyDocument,
    ServiceError,
)
from openkms.service.identity.policies import IdentityPolicyCache
from openkms.storage.store import (
    Store,
)

MAX_ACCESS_KEYS = 2
MAX_TAGS = 50
USER_INLINE_LIMIT = 2048
ROLE_INLINE_LIMIT = 10240
MANAGED_POLICY_LIMIT = 6144
TRUST_POLICY_LIMIT = 2048
DEFAULT_MAX_SESSION = 3600

#: An IAM or STS operation's function (AWS operation name -> function tables in ``iam.py``, ``sts.py``).
Operation = Callable[..., dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class IamContext:
    """Who calls and on which data. ``caller`` None is the local administrator (``openkms admin``).
    ``policies`` and ``documents`` are the caches the call reads identity policies and parsed
    documents through (the runtime's, shared with the KMS authorizer)."""

    store: Store
    root: RootKey
    now: float
    account_id: str
    caller: Principal | None = None
    policies: IdentityPolicyCache = field(kw_only=True)
    documents: PolicyCache = field(kw_only=True)


# --- ARNs -------------------------------------------------------------------------------------------


def user_arn(account: str, path: str, name: str) -> str:
    return f"arn:{PARTITION}:iam::{account}:user{path}{name}"


# --- authorization ----------------------------------------------------------------------------------


def policy_caller(principal: Principal) -> Caller:
    """The policy engine's ``Caller`` for an authenticated principal."""
    return Caller.of(principal)


def parsed_identity_policies(
    policies: IdentityPolicyCache, documents: PolicyCache, principal: Principal
) -> list[PolicyDocument]:
    """The principal's identity policies, parsed (a stored document the engine cannot read is left out)."""
    parsed = []
    for text in policies.get(principal):
        try:
            parsed.append(documents.parse(text, kind="identity"))
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
        caller,
        request,
        key_policy=None,
        identity_policies=parsed_identity_policies(ctx.policies, ctx.documents, ctx.caller),
    )
    if not decision.allowed:
        raise AccessDenied(access_denied_message(caller, request, decision))


# --- documents, tags, paging ------------------------------------------------------------------------


def check_document(document: str, kind: PolicyKind) -> PolicyDocument:
    """The parsed document; IAM's MalformedPolicyDocument / LimitExceeded for a bad one. A submitted
    document is checked once (strictly), so it is parsed without the cache: reads of the stored
    document parse it leniently, through ``IamContext.documents``."""
    try:
        return parse_policy(document, kind=kind, strict=True)
    except LimitExceededException as exc:
        raise LimitExceeded(exc.message) from None
    except ServiceError as exc:  # the engine's MalformedPolicyDocumentException, in IAM's words
        raise MalformedPolicyDocument(exc.message or "Syntax errors in policy.") from None


def policy_size(text: str) -> int:
    return len("".join(text.split()))


def tags_in(tags: list[dict[str, Any]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for tag in tags or []:
        out[str(tag.get("key", ""))] = str(tag.get("value", ""))
    return out


def tags_out(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def merge_tags(current: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    merged = {**current, **new}
    if len(merged) > MAX_TAGS:
        raise LimitExceeded("The number of tags has reached the maximum limit.")
    return merged


def paginate(
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


def normalized_path(path: str | None) -> str:
    return path or "/"
