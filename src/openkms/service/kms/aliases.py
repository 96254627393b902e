"""Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases."""

from __future__ import annotations

from typing import Any

from openkms.arns import alias_arn
from openkms.domain.aliases import MAX_ALIASES_PER_KEY, check_alias_name
from openkms.domain.keyspec import key_type
from openkms.domain.keystate import check_key_state
from openkms.domain.model import Alias
from openkms.errors import (
    AlreadyExistsException,
    LimitExceededException,
    NotFoundException,
    ValidationException,
)
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore
from openkms.storage.store import Conflict, Tx


def create_alias(core: KmsCore, ctx: RequestContext, *, alias_name: str, target_key_id: str) -> None:
    check_alias_name(alias_name)
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, target_key_id, action="CreateAlias")
        check_key_state("CreateAlias", record)
        if tx.count_aliases(record.region, record.key_id) >= MAX_ALIASES_PER_KEY:
            raise LimitExceededException(f"Key {record.arn} already has {MAX_ALIASES_PER_KEY} aliases")
        now = core.clock.now()
        try:
            tx.create_alias(Alias(ctx.region, ctx.account_id, alias_name, record.key_id, now, now))
        except Conflict:
            raise AlreadyExistsException(
                f"An alias with the name {alias_arn(ctx.region, ctx.account_id, alias_name)} already exists"
            ) from None


def _existing_alias(tx: Tx, ctx: RequestContext, alias_name: str, for_update: bool = False) -> Alias:
    alias = tx.get_alias(ctx.region, ctx.account_id, alias_name, for_update=for_update)
    if alias is None:
        raise NotFoundException(f"Alias {alias_arn(ctx.region, ctx.account_id, alias_name)} is not found.")
    return alias


def update_alias(core: KmsCore, ctx: RequestContext, *, alias_name: str, target_key_id: str) -> None:
    check_alias_name(alias_name)
    with core.store.write() as tx:
        _existing_alias(tx, ctx, alias_name)  # AWS reports a missing alias before the target key
        new = core.resolve_for_update(ctx, tx, target_key_id, action="UpdateAlias")
        check_key_state("UpdateAlias", new)
        # Locked after the new target (the order CreateAlias and key deletion take too): a concurrent
        # UpdateAlias or DeleteAlias of this name has committed, and the alias is read as it now is.
        alias = _existing_alias(tx, ctx, alias_name, for_update=True)
        old = tx.get_key(ctx.region, alias.target_key_id)
        if old is not None and (
            key_type(old.key_spec) != key_type(new.key_spec) or old.key_usage != new.key_usage
        ):
            raise ValidationException(
                f"Alias {alias_name} cannot be changed from a key of type {key_type(old.key_spec)} and usage "
                f"{old.key_usage} to a key of type {key_type(new.key_spec)} and usage {new.key_usage}."
            )
        # Every alias that joins a key (CreateAlias, UpdateAlias) holds the key's row lock: exact count.
        if alias.target_key_id != new.key_id and (
            tx.count_aliases(new.region, new.key_id) >= MAX_ALIASES_PER_KEY
        ):
            raise LimitExceededException(f"Key {new.arn} already has {MAX_ALIASES_PER_KEY} aliases")
        tx.update_alias(
            ctx.region, ctx.account_id, alias_name, new.key_id, alias.target_key_id, core.clock.now()
        )


def delete_alias(core: KmsCore, ctx: RequestContext, *, alias_name: str) -> None:
    check_alias_name(alias_name)
    with core.store.write() as tx:
        # Locked: the key it leaves (whose cached alias names change) is the one it points at now.
        alias = _existing_alias(tx, ctx, alias_name, for_update=True)
        record = tx.get_key(ctx.region, alias.target_key_id)
        if record is not None:
            core.authorize(ctx, "DeleteAlias", record)
            ctx.touch(record.arn)
        tx.delete_alias(ctx.region, ctx.account_id, alias_name, alias.target_key_id)


def list_aliases(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str | None = None,
    limit: int | None = None,
    marker: str | None = None,
) -> dict[str, Any]:
    n = limit or 50
    after = core.pager.read_marker("aliases", marker)
    target: str | None = None
    if key_id is not None:
        target = core.resolve(ctx, key_id, action="ListAliases").record.key_id
    else:
        core.authorize(ctx, "ListAliases", None)
    with core.store.read() as tx:
        rows = tx.list_aliases(ctx.region, ctx.account_id, target, after, n + 1)
    names, next_marker = core.pager.page([a.alias_name for a in rows], n, "aliases")
    result: dict[str, Any] = {
        "aliases": [
            {
                "alias_name": a.alias_name,
                "alias_arn": alias_arn(a.region, a.account_id, a.alias_name),
                "target_key_id": a.target_key_id,
                "creation_date": a.creation_date,
                "last_updated_date": a.last_updated_date,
            }
            for a in rows[: len(names)]
        ],
        "truncated": next_marker is not None,
    }
    if next_marker:
        result["next_marker"] = next_marker
    return result
