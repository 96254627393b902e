"""What IAM users and roles have in common: inline identity policies and tags. Each operation here
takes the kind of identity (:data:`Kind`), so that PutUserPolicy and PutRolePolicy, TagUser and
TagRole… are one implementation each."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openkms.errors import LimitExceeded, NoSuchEntity
from openkms.service.iam.common import (
    IamContext,
    authorize_iam,
    check_document,
    merge_tags,
    paginate,
    policy_size,
    tags_in,
    tags_out,
)
from openkms.service.identity.policies import policy_text
from openkms.storage.store import Tx


@dataclass(frozen=True)
class Kind:
    """How to find, name and save one kind of identity (its rows have ``inline_policies`` and ``tags``)."""

    noun: str  # "user" | "role"
    action: str  # "User" | "Role", as in the IAM action names
    inline_limit: int
    load: Callable[[Tx, IamContext, str], Any]
    save: Callable[[Tx, Any], None]
    resource: Callable[[IamContext, str], str]


def put_policy(ctx: IamContext, kind: Kind, name: str, policy_name: str, document: str) -> None:
    authorize_iam(ctx, f"Put{kind.action}Policy", kind.resource(ctx, name))
    check_document(document, "identity")
    with ctx.store.write() as tx:
        row = kind.load(tx, ctx, name)
        inline = {**row.inline_policies, policy_name: document}
        if sum(policy_size(policy_text(doc)) for doc in inline.values()) > kind.inline_limit:
            raise LimitExceeded(
                f"Maximum policy size of {kind.inline_limit} bytes exceeded for {kind.noun} {name}"
            )
        kind.save(tx, dataclasses.replace(row, inline_policies=inline))


def get_policy(ctx: IamContext, kind: Kind, name: str, policy_name: str) -> dict[str, Any]:
    authorize_iam(ctx, f"Get{kind.action}Policy", kind.resource(ctx, name))
    with ctx.store.read() as tx:
        row = kind.load(tx, ctx, name)
    document = row.inline_policies.get(policy_name)
    if document is None:
        raise NoSuchEntity(f"The {kind.noun} policy with name {policy_name} cannot be found.")
    return {f"{kind.noun}_name": name, "policy_name": policy_name, "policy_document": policy_text(document)}


def delete_policy(ctx: IamContext, kind: Kind, name: str, policy_name: str) -> None:
    authorize_iam(ctx, f"Delete{kind.action}Policy", kind.resource(ctx, name))
    with ctx.store.write() as tx:
        row = kind.load(tx, ctx, name)
        if policy_name not in row.inline_policies:
            raise NoSuchEntity(f"The {kind.noun} policy with name {policy_name} cannot be found.")
        inline = {k: v for k, v in row.inline_policies.items() if k != policy_name}
        kind.save(tx, dataclasses.replace(row, inline_policies=inline))


def list_policies(
    ctx: IamContext, kind: Kind, name: str, marker: str | None, max_items: int | None
) -> dict[str, Any]:
    authorize_iam(ctx, f"List{kind.action}Policies", kind.resource(ctx, name))
    with ctx.store.read() as tx:
        row = kind.load(tx, ctx, name)
    page, extra = paginate(sorted(row.inline_policies), lambda n: n, marker, max_items)
    return {"policy_names": page, **extra}


def tag(ctx: IamContext, kind: Kind, name: str, tags: list[dict[str, Any]]) -> None:
    authorize_iam(ctx, f"Tag{kind.action}", kind.resource(ctx, name))
    with ctx.store.write() as tx:
        row = kind.load(tx, ctx, name)
        kind.save(tx, dataclasses.replace(row, tags=merge_tags(row.tags, tags_in(tags))))


def untag(ctx: IamContext, kind: Kind, name: str, tag_keys: list[str]) -> None:
    authorize_iam(ctx, f"Untag{kind.action}", kind.resource(ctx, name))
    removed = set(tag_keys)
    with ctx.store.write() as tx:
        row = kind.load(tx, ctx, name)
        kind.save(tx, dataclasses.replace(row, tags={k: v for k, v in row.tags.items() if k not in removed}))


def list_tags(ctx: IamContext, kind: Kind, name: str) -> dict[str, Any]:
    authorize_iam(ctx, f"List{kind.action}Tags", kind.resource(ctx, name))
    with ctx.store.read() as tx:
        row = kind.load(tx, ctx, name)
    return {"tags": tags_out(row.tags), "is_truncated": False}
