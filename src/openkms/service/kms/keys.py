"""Key lifecycle: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey, UpdateKeyDescription,
ScheduleKeyDeletion, CancelKeyDeletion, and the deletion of keys whose waiting period is over."""

from __future__ import annotations

from typing import Any

from openkms.arns import key_arn, new_key_id, new_mrk_id
from openkms.audit.events import service_event_record, storage_row
from openkms.crypto.keygen import SUPPORTED_SPECS, generate_material
from openkms.domain.keyspec import ML_DSA_SPECS, KeySpec, Origin, resolve_spec_and_usage
from openkms.domain.keystate import check_key_state
from openkms.domain.model import KeyMaterial, KeyRecord, KeyState, MaterialState
from openkms.domain.policy import default_key_policy
from openkms.domain.tags import check_new_tags
from openkms.errors import (
    UnsupportedOperationException,
    ValidationException,
)
from openkms.service.kms import external_keys
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore
from openkms.service.kms.metadata import key_metadata
from openkms.storage.store import Tx

DAY = 86400.0


def _is_china(region: str) -> bool:
    return region.startswith("cn-")


def check_description(description: str | None) -> None:
    """A description is free text, but PostgreSQL cannot store U+0000: refused on every backend."""
    if description is not None and "\x00" in description:
        raise ValidationException(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: "
            "Member must not contain the character U+0000"
        )


def create_key(
    core: KmsCore,
    ctx: RequestContext,
    *,
    policy: str | None = None,
    description: str | None = None,
    key_usage: str | None = None,
    customer_master_key_spec: str | None = None,
    key_spec: str | None = None,
    origin: str | None = None,
    custom_key_store_id: str | None = None,
    bypass_policy_lockout_safety_check: bool | None = None,
    tags: list[dict[str, str]] | None = None,
    multi_region: bool | None = None,
    xks_key_id: str | None = None,
) -> dict[str, Any]:
    check_description(description)
    if key_spec is not None and customer_master_key_spec is not None:
        raise ValidationException(
            "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. "
            "CustomerMasterKeySpec is deprecated."
        )
    spec, usage = resolve_spec_and_usage(key_spec or customer_master_key_spec, key_usage)
    key_origin = Origin(origin) if origin else Origin.AWS_KMS
    _check_custom_key_store(key_origin, spec, custom_key_store_id, xks_key_id, multi_region)
    if spec is KeySpec.SM2 and not _is_china(ctx.region):
        raise ValidationException(f"KeySpec SM2 is not supported in the {ctx.region} region.")
    if key_origin is Origin.EXTERNAL and spec in ML_DSA_SPECS:
        raise UnsupportedOperationException("Importing ML-DSA keys is not supported.")
    if spec not in SUPPORTED_SPECS:
        raise UnsupportedOperationException(f"KeySpec {spec} is not supported by this service yet.")
    tag_map = check_new_tags([(t["tag_key"], t["tag_value"]) for t in tags or []])
    create_conditions = {
        "kms:KeySpec": str(spec),
        "kms:CustomerMasterKeySpec": str(spec),
        "kms:KeyUsage": str(usage),
        "kms:CustomerMasterKeyUsage": str(usage),
        "kms:KeyOrigin": str(key_origin),
        "kms:MultiRegion": bool(multi_region),
    }
    core.authorize(ctx, "CreateKey", None, create_conditions)
    if tag_map:
        core.authorize(ctx, "TagResource", None, create_conditions)
    placement = None
    if key_origin is Origin.EXTERNAL_KEY_STORE and custom_key_store_id is not None:
        placement = external_keys.check_new_key(core, ctx, custom_key_store_id, xks_key_id)
    now = core.clock.now()
    key_id = new_mrk_id() if multi_region else new_key_id()
    if policy is not None:
        core.authorizer.check_new_policy(
            ctx, policy, key_arn(ctx.region, ctx.account_id, key_id), ctx.account_id, now,
            bool(bypass_policy_lockout_safety_check),
        )  # fmt: skip
    document = policy if policy is not None else default_key_policy(ctx.account_id)
    record = KeyRecord(
        region=ctx.region,
        key_id=key_id,
        account_id=ctx.account_id,
        key_spec=spec,
        key_usage=usage,
        origin=key_origin,
        key_state=KeyState.PENDING_IMPORT if key_origin is Origin.EXTERNAL else KeyState.ENABLED,
        creation_date=now,
        policy=document,
        description=description or "",
        multi_region=bool(multi_region),
    )
    material: KeyMaterial | None = None
    if key_origin in (Origin.AWS_KMS, Origin.EXTERNAL_KEY_STORE):  # an XKS key's own half too
        raw = generate_material(spec, core.keypairs)
        material_id = core.root.material_id(key_id, raw)
        material = KeyMaterial(
            material_id=material_id,
            state=MaterialState.CURRENT,
            created=now,
            sealed=core.seal_material(ctx.region, key_id, material_id, raw),
        )
        if spec is KeySpec.SYMMETRIC_DEFAULT:
            record.current_material_id = material_id

    metadata = key_metadata(record)
    if placement is not None:
        metadata["custom_key_store_id"] = placement.store.custom_key_store_id
        metadata["xks_key_configuration"] = {"id": placement.xks_key_id}
    result = {"key_metadata": metadata}
    audit = ctx.change_record
    if audit is not None:
        audit.prepare(result, record.arn)

    def store_key(tx: Tx) -> None:
        tx.insert_key(record)
        if material is not None:
            tx.put_material(ctx.region, key_id, material)
        if tag_map:
            tx.set_tags(ctx.region, key_id, tag_map)
        if placement is not None:
            external_keys.record_new_key(tx, record, placement)
        if audit is not None:
            audit.write(tx)  # the key and its CloudTrail record commit together

    # Concurrent CreateKeys share a commit on SQLite (group commit): each is durable when this returns.
    core.store.write_grouped(store_key)
    if audit is not None:
        audit.committed()
    ctx.touch(record.arn)
    return result


def _check_custom_key_store(
    origin: Origin,
    spec: KeySpec,
    custom_key_store_id: str | None,
    xks_key_id: str | None,
    multi_region: bool | None,
) -> None:
    """CreateKey's rules for custom key stores: CloudHSM key stores do not exist here; a key in an
    external key store is a single-Region SYMMETRIC_DEFAULT key named with its key store and external
    key (the key store and the external key are checked with the proxy later, once authorized)."""
    if origin is Origin.AWS_CLOUDHSM:
        raise UnsupportedOperationException(
            "Origin AWS_CLOUDHSM is not supported by this service: it has no AWS CloudHSM key stores "
            "(use Origin EXTERNAL_KEY_STORE with an external key store)."
        )
    if origin is not Origin.EXTERNAL_KEY_STORE:
        if custom_key_store_id is not None:
            raise ValidationException(
                "CustomKeyStoreId requires Origin EXTERNAL_KEY_STORE (an external key store's KMS key)."
            )
        if xks_key_id is not None:
            raise ValidationException("XksKeyId is valid only when Origin is EXTERNAL_KEY_STORE.")
        return
    if custom_key_store_id is None:
        raise ValidationException("CustomKeyStoreId is required when Origin is EXTERNAL_KEY_STORE.")
    if xks_key_id is None:
        raise ValidationException("XksKeyId is required when Origin is EXTERNAL_KEY_STORE.")
    if spec is not KeySpec.SYMMETRIC_DEFAULT:
        raise UnsupportedOperationException(
            f"KeySpec {spec} is not valid in a custom key store: only SYMMETRIC_DEFAULT keys are."
        )
    if multi_region:
        raise UnsupportedOperationException("A multi-Region key cannot be created in a custom key store.")


def describe_key(
    core: KmsCore, ctx: RequestContext, *, key_id: str, grant_tokens: list[str] | None = None
) -> dict[str, Any]:
    loaded = core.resolve(ctx, key_id, action="DescribeKey", allow_alias=True)
    metadata = key_metadata(loaded.record)
    if external_keys.is_external(loaded.record):  # its key store's state: read off the event loop
        metadata = external_keys.describe(core, ctx, loaded.record, metadata)
    return {"key_metadata": metadata}


def list_keys(
    core: KmsCore, ctx: RequestContext, *, limit: int | None = None, marker: str | None = None
) -> dict[str, Any]:
    core.authorize(ctx, "ListKeys", None)
    n = limit or 100
    after = core.pager.read_marker("keys", marker)
    with core.store.read() as tx:
        ids = tx.list_keys(ctx.region, ctx.account_id, after, n + 1)
    items, next_marker = core.pager.page(ids, n, "keys")
    result: dict[str, Any] = {
        "keys": [{"key_id": k, "key_arn": key_arn(ctx.region, ctx.account_id, k)} for k in items],
        "truncated": next_marker is not None,
    }
    if next_marker:
        result["next_marker"] = next_marker
    return result


def _set_state(core: KmsCore, ctx: RequestContext, key_id: str, operation: str, state: KeyState) -> None:
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action=operation)
        check_key_state(operation, record)
        if record.key_state is not state:
            record.key_state = state
            tx.update_key(record)


def enable_key(core: KmsCore, ctx: RequestContext, *, key_id: str) -> None:
    _set_state(core, ctx, key_id, "EnableKey", KeyState.ENABLED)


def disable_key(core: KmsCore, ctx: RequestContext, *, key_id: str) -> None:
    _set_state(core, ctx, key_id, "DisableKey", KeyState.DISABLED)


def update_key_description(core: KmsCore, ctx: RequestContext, *, key_id: str, description: str) -> None:
    check_description(description)
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action="UpdateKeyDescription")
        check_key_state("UpdateKeyDescription", record)
        record.description = description
        tx.update_key(record)


def schedule_key_deletion(
    core: KmsCore, ctx: RequestContext, *, key_id: str, pending_window_in_days: int | None = None
) -> dict[str, Any]:
    days = 30 if pending_window_in_days is None else pending_window_in_days
    if days < 7:
        raise ValidationException(
            f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy "
            "constraint: Member must have value greater than or equal to 7"
        )
    if days > 30:
        raise ValidationException(
            f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy "
            "constraint: Member must have value less than or equal to 30"
        )
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action="ScheduleKeyDeletion")
        check_key_state("ScheduleKeyDeletion", record)
        if record.multi_region and not record.is_replica and record.replica_regions:
            # A multi-Region primary key outlives its replicas: its waiting period starts when the
            # last of them is deleted (delete_due_keys).
            record.key_state = KeyState.PENDING_REPLICA_DELETION
            record.deletion_date = None
        else:
            record.key_state = KeyState.PENDING_DELETION
            record.deletion_date = core.clock.now() + days * DAY
        record.pending_window_days = days
        tx.update_key(record)
    result: dict[str, Any] = {"key_id": record.arn}
    if record.deletion_date is not None:
        result["deletion_date"] = record.deletion_date
    result["key_state"] = str(record.key_state)
    result["pending_window_in_days"] = days
    return result


def cancel_key_deletion(core: KmsCore, ctx: RequestContext, *, key_id: str) -> dict[str, Any]:
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action="CancelKeyDeletion")
        check_key_state("CancelKeyDeletion", record)
        has_material = any(m.sealed is not None for m in tx.get_materials(record.region, record.key_id))
        record.key_state = KeyState.DISABLED if has_material else KeyState.PENDING_IMPORT
        record.deletion_date = None
        record.pending_window_days = None
        tx.update_key(record)
    return {"key_id": record.arn}


def delete_due_keys(core: KmsCore) -> int:
    """Delete every key whose deletion date has passed (safe to run on several nodes at once). When
    the last replica of a multi-Region primary key waiting in PendingReplicaDeletion is deleted, the
    primary's own waiting period starts."""
    now = core.clock.now()
    with core.store.read() as tx:
        due = tx.keys_due_for_deletion(now)
    deleted = 0
    for region, key_id in due:
        with core.store.write() as tx:
            seen = tx.get_key(region, key_id)
            primary = None
            if seen is not None and seen.is_replica and seen.primary_region is not None:
                # The lock order of multi-Region sets: the primary first, then the replica.
                primary = tx.get_key(seen.primary_region, key_id, for_update=True)
            record = tx.get_key(region, key_id, for_update=True)
            if record is None or record.key_state is not KeyState.PENDING_DELETION:
                continue
            if record.deletion_date is None or record.deletion_date > now:
                continue
            if seen is None or seen.primary_region != record.primary_region:
                continue  # the set changed its primary meanwhile: next time
            tx.delete_key(region, key_id)
            event = service_event_record(
                event_name="DeleteKey",
                event_time=now,
                region=region,
                account_id=record.account_id,
                key_arn=record.arn,
                details={"keyId": record.key_id},
            )
            tx.append_audit([storage_row(event, now, record.key_id)])
            if (
                primary is not None
                and primary.key_state is KeyState.PENDING_REPLICA_DELETION
                and set(tx.related_regions(primary.account_id, key_id)) <= {primary.region}
            ):
                primary.key_state = KeyState.PENDING_DELETION
                primary.deletion_date = now + (primary.pending_window_days or 30) * DAY
                tx.update_key(primary)
            deleted += 1
    return deleted
