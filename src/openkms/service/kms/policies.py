"""Key policies: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies (stored and syntax-checked)."""

from __future__ import annotations

from typing import Any

from openkms.domain.keystate import check_key_state
from openkms.errors import NotFoundException
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore

POLICY_NAME = "default"


def _check_name(name: str | None) -> None:
    if name is not None and name != POLICY_NAME:
        raise NotFoundException("No such policy exists")


def get_key_policy(
    core: KmsCore, ctx: RequestContext, *, key_id: str, policy_name: str | None = None
) -> dict[str, Any]:
    loaded = core.resolve(ctx, key_id, action="GetKeyPolicy")
    _check_name(policy_name)
    check_key_state("GetKeyPolicy", loaded.record)
    return {"policy": loaded.record.policy, "policy_name": POLICY_NAME}


def put_key_policy(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    policy: str,
    policy_name: str | None = None,
    bypass_policy_lockout_safety_check: bool | None = None,
) -> None:
    _check_name(policy_name)
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action="PutKeyPolicy")
        check_key_state("PutKeyPolicy", record)
        core.authorizer.check_new_policy(
            ctx,
            policy,
            record.arn,
            record.account_id,
            core.clock.now(),
            bool(bypass_policy_lockout_safety_check),
        )
        record.policy = policy
        tx.update_key(record)


def list_key_policies(
    core: KmsCore, ctx: RequestContext, *, key_id: str, limit: int | None = None, marker: str | None = None
) -> dict[str, Any]:
    core.resolve(ctx, key_id, action="ListKeyPolicies")
    return {"policy_names": [POLICY_NAME], "truncated": False}
