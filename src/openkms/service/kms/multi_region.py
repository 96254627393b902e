"""Multi-Region keys: ReplicateKey, UpdatePrimaryRegion, the synchronization of the properties related
keys share (key material, automatic rotation), and the end of the transient states AWS shows while it
works across Regions.

A set of related multi-Region keys is one key per Region with the same ``mrk-`` key id and account
(``storage/tx_multi_region.py``); one of them is the primary. What they share is copied to every key
of the set in the transaction that changes it: the material of a new replica (sealed again under the
replica's own identity; none for an EXTERNAL key, whose replicas need the same material imported),
each new material of a rotation, the rotation settings. A ciphertext names the key id and the material,
never the Region, so any key of the set decrypts what any other made.

AWS is asynchronous here: a new replica is ``Creating`` for a few seconds, and both keys of an
UpdatePrimaryRegion are ``Updating``. This service does the work in the request's transaction and
shows AWS's states all the same: the keys enter the transient state, and the background job
(:func:`sync_due_keys`, given by ``server/runtime.py``) ends it once ``--multi-region-delay`` has
passed, writing the ``SynchronizeMultiRegionKey`` event AWS records for the synchronization. Every node
runs the job; it locks the rows it changes, so each state ends once, also after a restart.

Lock order in a transaction that writes several keys of a set: the key the request names (or the
primary), then the others by Region.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from openkms.arns import key_arn
from openkms.audit.events import (
    EVENT_SOURCE,
    ApiCall,
    cloudtrail_record,
    fast_uuid,
    internal_call_record,
    storage_row,
)
from openkms.domain.keyspec import Origin
from openkms.domain.keystate import check_key_state
from openkms.domain.model import ImportState, KeyMaterial, KeyRecord, KeyState, MaterialState
from openkms.domain.policy import default_key_policy
from openkms.domain.tags import check_new_tags
from openkms.errors import AlreadyExistsException, NotFoundException, UnsupportedOperationException
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import MAX_KEY_ALIASES, KmsCore
from openkms.service.kms.keycache import LoadedKey
from openkms.service.kms.keys import check_description
from openkms.service.kms.metadata import key_metadata
from openkms.storage.store import Tx
from openkms.wire.audit import audit_request_parameters, audit_response_elements

SYNCHRONIZE = "SynchronizeMultiRegionKey"
_BOUND = (MaterialState.CURRENT, MaterialState.NON_CURRENT)


def require_primary(record: KeyRecord) -> None:
    """The operations only a multi-Region primary key accepts (AWS's message, for replicas and for
    single-Region keys alike)."""
    if not record.multi_region or record.is_replica:
        raise UnsupportedOperationException(f"{record.arn} is not a multi-region primary key.")


def partition(region: str) -> str:
    """The AWS partition of a Region: replicas stay in their primary's."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def replicas_for_update(tx: Tx, primary: KeyRecord) -> list[KeyRecord]:
    """The other keys of a primary's set, locked, by Region (after the primary: the lock order)."""
    found = []
    for region in sorted(primary.replica_regions):
        if region == primary.region:
            continue
        record = tx.get_key(region, primary.key_id, for_update=True)
        if record is not None and record.account_id == primary.account_id:
            found.append(record)
    return found


def settled_state(record: KeyRecord, materials: list[KeyMaterial]) -> KeyState:
    """The state a key leaves Creating or Updating for: Enabled, or PendingImport for a key with
    imported material that lacks some of its permanently associated material."""
    if record.origin is Origin.EXTERNAL:
        bound = [m for m in materials if m.state in _BOUND]
        if not bound or any(m.import_state is not ImportState.IMPORTED for m in bound):
            return KeyState.PENDING_IMPORT
    return KeyState.ENABLED


def synchronize_event(primary: KeyRecord, now: float, request_id: str) -> dict[str, Any]:
    """AWS's record of a synchronization of a set's shared properties: in the primary's Region,
    naming the primary key only."""
    record = internal_call_record(
        event_name=SYNCHRONIZE,
        event_time=now,
        region=primary.region,
        account_id=primary.account_id,
        key_arn=primary.arn,
        request_id=request_id,
    )
    return storage_row(record, now, primary.key_id)


def _invoked_record(
    ctx: RequestContext,
    now: float,
    event_name: str,
    region: str,
    request_parameters: dict[str, Any] | None,
    response_elements: dict[str, Any] | None,
    resources: list[str],
) -> dict[str, Any]:
    """The record of what a call does in another Region (ReplicateKey's CreateKey in the replica's
    Region, UpdatePrimaryRegion in the new primary's): the caller's identity, invoked by KMS."""
    principal = ctx.principal
    call = ApiCall(
        event_source=EVENT_SOURCE,
        event_name=event_name,
        read_only=False,
        principal=principal,
        access_key_id=principal.access_key_id,
        region=region,
        source_ip=ctx.source_ip,
        user_agent=ctx.user_agent,
        request_id=ctx.request_id,
        started=now,
        request_parameters=request_parameters,
        response_elements=response_elements,
        resources=resources,
    )
    record = cloudtrail_record(call)
    record["userIdentity"] = {**record["userIdentity"], "invokedBy": "kms.amazonaws.com"}
    if not resources:
        del record["resources"]  # as AWS's example of the new primary's UpdatePrimaryRegion record
    return record


def _copy_material(core: KmsCore, source: KeyRecord, m: KeyMaterial, target: KeyRecord) -> KeyMaterial:
    """A material of ``source`` as ``target`` holds it: sealed again under the target's identity
    (the sealing binds the Region), or without material when the source has none (imported material
    the target must import itself)."""
    sealed = None
    import_state = m.import_state
    if m.sealed is not None and source.origin is not Origin.EXTERNAL:
        raw = core.unseal_material(source.region, source.key_id, m.material_id, m.sealed)
        sealed = core.seal_material(target.region, target.key_id, m.material_id, raw)
    elif source.origin is Origin.EXTERNAL:
        import_state = ImportState.PENDING_IMPORT
    return KeyMaterial(
        material_id=m.material_id,
        state=m.state,
        created=m.created,
        sealed=sealed,
        import_state=import_state,
        rotation_date=m.rotation_date,
        rotation_type=m.rotation_type,
        description=m.description,
    )


def _authorize_other(core: KmsCore, ctx: RequestContext, tx: Tx, action: str, record: KeyRecord) -> None:
    """Authorize ``action`` on a second key of the request (its own key policy, tags and aliases)."""
    loaded = LoadedKey(
        record,
        {},
        {},
        tx.get_tags(record.region, record.key_id),
        tuple(
            a.alias_name
            for a in tx.list_aliases(record.region, record.account_id, record.key_id, None, MAX_KEY_ALIASES)
        ),
    )
    core.authorize(ctx, action, record, None, loaded)


# -- ReplicateKey --------------------------------------------------------------------------------------


def replicate_key(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    replica_region: str,
    policy: str | None = None,
    bypass_policy_lockout_safety_check: bool | None = None,
    description: str | None = None,
    tags: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    check_description(description)
    with core.store.write() as tx:
        primary = core.resolve_for_update(ctx, tx, key_id, action="ReplicateKey")
        require_primary(primary)
        check_key_state("ReplicateKey", primary)
        replica_arn = key_arn(replica_region, primary.account_id, primary.key_id)
        if partition(replica_region) != partition(primary.region):
            raise UnsupportedOperationException(
                f"The replica Region {replica_region} is not in the partition of {primary.arn}."
            )
        if replica_region in primary.related_regions:
            raise AlreadyExistsException(
                f"{replica_arn} already exists: the multi-Region key {primary.key_id} has a related key "
                f"in {replica_region}."
            )
        if not core.region_ok(replica_region):
            raise UnsupportedOperationException(
                f"This service does not serve the Region {replica_region}: {primary.arn} cannot be "
                "replicated there."
            )
        tag_map = check_new_tags([(t["tag_key"], t["tag_value"]) for t in tags or []])
        create_conditions = {
            "aws:RequestedRegion": replica_region,
            "kms:KeySpec": str(primary.key_spec),
            "kms:CustomerMasterKeySpec": str(primary.key_spec),
            "kms:KeyUsage": str(primary.key_usage),
            "kms:CustomerMasterKeyUsage": str(primary.key_usage),
            "kms:KeyOrigin": str(primary.origin),
            "kms:MultiRegion": True,
            "kms:MultiRegionKeyType": "REPLICA",
        }
        core.authorize(ctx, "CreateKey", None, create_conditions)
        if tag_map:
            core.authorize(ctx, "TagResource", None, create_conditions)
        now = core.clock.now()
        bypass = bool(bypass_policy_lockout_safety_check)
        if policy is not None:
            core.authorizer.check_new_policy(ctx, policy, replica_arn, primary.account_id, now, bypass)
        document = policy if policy is not None else default_key_policy(primary.account_id)
        replica = KeyRecord(
            region=replica_region,
            key_id=primary.key_id,
            account_id=primary.account_id,
            key_spec=primary.key_spec,
            key_usage=primary.key_usage,
            origin=primary.origin,
            key_state=KeyState.CREATING,
            creation_date=now,
            policy=document,
            description=description or "",
            multi_region=True,
            rotation_enabled=primary.rotation_enabled,
            rotation_period_days=primary.rotation_period_days,
            next_rotation_date=primary.next_rotation_date,
            current_material_id=primary.current_material_id,
            primary_region=primary.region,
            replica_regions=tuple(sorted((*primary.replica_regions, replica_region))),
        )
        tx.insert_key(replica, sync_since=now)
        for m in tx.get_materials(primary.region, primary.key_id):
            tx.put_material(replica_region, replica.key_id, _copy_material(core, primary, m, replica))
        if tag_map:
            tx.set_tags(replica_region, replica.key_id, tag_map)
        metadata = key_metadata(replica)
        replica_tags = [{"tag_key": k, "tag_value": v} for k, v in tag_map.items()]
        tx.append_audit([_replica_create_key_row(ctx, now, replica, metadata, policy, bypass, replica_tags)])
    result: dict[str, Any] = {"replica_key_metadata": metadata, "replica_policy": document}
    if replica_tags:
        result["replica_tags"] = replica_tags
    return result


def _replica_create_key_row(
    ctx: RequestContext,
    now: float,
    replica: KeyRecord,
    metadata: dict[str, Any],
    policy: str | None,
    bypass: bool,
    tags: list[dict[str, str]],
) -> dict[str, Any]:
    """The CreateKey AWS records in the replica's Region for a ReplicateKey call."""
    raw: dict[str, Any] = {
        "Description": replica.description,
        "KeyUsage": str(replica.key_usage),
        "KeySpec": str(replica.key_spec),
        "Origin": str(replica.origin),
        "BypassPolicyLockoutSafetyCheck": bypass,
        "MultiRegion": True,
    }
    if policy is not None:
        raw["Policy"] = policy
    if tags:
        raw["Tags"] = [{"TagKey": t["tag_key"], "TagValue": t["tag_value"]} for t in tags]
    record = _invoked_record(
        ctx,
        now,
        "CreateKey",
        replica.region,
        audit_request_parameters("CreateKey", raw),
        audit_response_elements("CreateKey", {"key_metadata": metadata}),
        [replica.arn],
    )
    return storage_row(record, now, replica.key_id)


# -- UpdatePrimaryRegion ---------------------------------------------------------------------------------


def update_primary_region(core: KmsCore, ctx: RequestContext, *, key_id: str, primary_region: str) -> None:
    with core.store.write() as tx:
        primary = core.resolve_for_update(ctx, tx, key_id, action="UpdatePrimaryRegion")
        require_primary(primary)
        check_key_state("UpdatePrimaryRegion", primary)
        if primary_region == primary.region:
            return  # it is the primary key already
        target_arn = key_arn(primary_region, primary.account_id, primary.key_id)
        replica = None
        if primary_region in primary.replica_regions:
            replica = tx.get_key(primary_region, primary.key_id, for_update=True)
        if replica is None or replica.account_id != primary.account_id:
            raise NotFoundException(f"Key '{target_arn}' does not exist")
        _authorize_other(core, ctx, tx, "UpdatePrimaryRegion", replica)
        check_key_state("UpdatePrimaryRegion", replica)
        now = core.clock.now()
        tx.set_primary_region(primary.account_id, primary.key_id, primary_region)
        for record in (primary, replica):
            record.key_state = KeyState.UPDATING
            tx.update_key(record)
            tx.set_sync_since(record.region, record.key_id, now)
        event = _invoked_record(
            ctx,
            now,
            "UpdatePrimaryRegion",
            primary_region,
            {"keyId": target_arn, "primaryRegion": primary_region},
            {"keyId": target_arn},
            [],
        )
        tx.append_audit([storage_row(event, now, primary.key_id)])


# -- what related keys share ------------------------------------------------------------------------------


def propagate_material(
    core: KmsCore, tx: Tx, primary: KeyRecord, material: KeyMaterial, now: float, request_id: str
) -> None:
    """A rotation of a primary key (``material``: its new CURRENT material, sealed for the primary)
    made the same rotation on every replica: the new material current there too, the previous ones
    kept for decryption, the rotation settings (next rotation date) the primary's. Recorded as a
    synchronization."""
    replicas = replicas_for_update(tx, primary)
    for replica in replicas:
        for m in tx.get_materials(replica.region, replica.key_id):
            if m.state is MaterialState.CURRENT:
                m.state = MaterialState.NON_CURRENT
                tx.put_material(replica.region, replica.key_id, m)
        tx.put_material(replica.region, replica.key_id, _copy_material(core, primary, material, replica))
        replica.current_material_id = material.material_id
        _share_rotation_settings(primary, replica)
        tx.update_key(replica)
    if replicas:
        tx.append_audit([synchronize_event(primary, now, request_id)])


def propagate_rotation_settings(tx: Tx, primary: KeyRecord, now: float, request_id: str) -> None:
    """Automatic rotation is shared: the primary's setting, period and next date on every replica."""
    replicas = replicas_for_update(tx, primary)
    for replica in replicas:
        _share_rotation_settings(primary, replica)
        tx.update_key(replica)
    if replicas:
        tx.append_audit([synchronize_event(primary, now, request_id)])


def _share_rotation_settings(primary: KeyRecord, replica: KeyRecord) -> None:
    replica.rotation_enabled = primary.rotation_enabled
    replica.rotation_period_days = primary.rotation_period_days
    replica.next_rotation_date = primary.next_rotation_date


def sync_due_keys(core: KmsCore, delay: float) -> int:
    """End the Creating and Updating states that began ``delay`` seconds ago or more (a new replica
    becomes Enabled, or PendingImport for imported material; the keys of an UpdatePrimaryRegion
    become Enabled again) and record each set's synchronization. Returns the sets synchronized.
    Idempotent across nodes: each key is locked and its state read again before it changes."""
    now = core.clock.now()
    with core.store.read() as tx:
        due = tx.syncs_due(now - delay)
    sets: dict[tuple[str, str], set[str]] = defaultdict(set)
    for account, key_id, region in due:
        sets[(account, key_id)].add(region)
    synchronized = 0
    for (account, key_id), regions in sets.items():
        with core.store.write() as tx:
            related = tx.related_regions(account, key_id)
            if not related:
                continue
            primary_region = next(iter(related.values()))
            order = [r for r in (primary_region, *sorted(related)) if r in regions]
            settled = False
            for region in dict.fromkeys(order):
                record = tx.get_key(region, key_id, for_update=True)
                since = tx.sync_since(region, key_id)
                if record is None or since is None or since > now - delay:
                    continue
                if record.key_state in (KeyState.CREATING, KeyState.UPDATING):
                    record.key_state = settled_state(record, tx.get_materials(region, key_id))
                    tx.update_key(record)
                tx.set_sync_since(region, key_id, None)
                settled = True
            if settled:
                primary = tx.get_key(primary_region, key_id)
                if primary is not None:
                    tx.append_audit([synchronize_event(primary, now, fast_uuid())])
                    synchronized += 1
    return synchronized
