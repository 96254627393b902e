"""IAM account aliases: CreateAccountAlias, DeleteAccountAlias and ListAccountAliases.

As in AWS, an account has at most one alias, and an alias names one account of the whole installation
(the namespace is global). Creating an alias for an account that has one replaces it. The name's
syntax is the service model's (3 to 63 lowercase letters, digits and single hyphens, checked by the
Query API's validation before these functions run).
"""

from __future__ import annotations

from typing import Any

from openkms.errors import EntityAlreadyExists, NoSuchEntity
from openkms.service.iam.common import IamContext, authorize_iam
from openkms.storage.store import Conflict


def create_account_alias(ctx: IamContext, *, account_alias: str) -> None:
    authorize_iam(ctx, "CreateAccountAlias", "*")
    with ctx.store.write() as tx:
        if not tx.account_exists(ctx.account_id):
            raise NoSuchEntity(f"The account {ctx.account_id} cannot be found.")
        current = tx.account_alias(ctx.account_id)
        if current == account_alias:
            return
        if current is not None:
            tx.delete_account_alias(ctx.account_id, current)
        try:
            tx.insert_account_alias(ctx.account_id, account_alias, ctx.now)
        except Conflict:
            raise EntityAlreadyExists(f"The account alias {account_alias} already exists.") from None


def delete_account_alias(ctx: IamContext, *, account_alias: str) -> None:
    authorize_iam(ctx, "DeleteAccountAlias", "*")
    with ctx.store.write() as tx:
        if not tx.delete_account_alias(ctx.account_id, account_alias):
            raise NoSuchEntity(f"The account alias {account_alias} cannot be found.")


def list_account_aliases(
    ctx: IamContext, *, marker: str | None = None, max_items: int | None = None
) -> dict[str, Any]:
    """The account's alias (a list of at most one, as IAM answers)."""
    authorize_iam(ctx, "ListAccountAliases", "*")
    with ctx.store.read() as tx:
        alias = tx.account_alias(ctx.account_id)
    aliases = [alias] if alias is not None and (not marker or alias > marker) else []
    return {"account_aliases": aliases, "is_truncated": False}
