"""Key rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand,
ListKeyRotations, and the automatic rotation of keys whose rotation date has come.

Rotation adds a new CURRENT key material and keeps the previous ones (NON_CURRENT), so ciphertexts
made under older material still decrypt: the ciphertext names the material that made it. Rotation is
shared by related multi-Region keys: it is set and made on the primary key, and every replica gets
the new material and the settings in the same transaction (``multi_region.py``).
"""

from __future__ import annotations

from typing import Any

from openkms.audit.events import fast_uuid, service_event_record, storage_row
from openkms.crypto.keygen import generate_material
from openkms.domain.keyspec import KeySpec, Origin
from openkms.domain.keystate import check_key_state
from openkms.domain.model import ImportState, KeyMaterial, KeyRecord, KeyState, MaterialState
from openkms.errors import LimitExceededException, UnsupportedOperationException
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore
from openkms.service.kms.importing import rotate_external_on_demand
from openkms.service.kms.multi_region import (
    propagate_material,
    propagate_rotation_settings,
    require_primary,
)
from openkms.storage.store import Tx

DAY = 86400.0
MAX_ON_DEMAND_ROTATIONS = 25


def _require_primary_if_multi_region(record: KeyRecord) -> None:
    """Rotation of related multi-Region keys is set and made on their primary key only."""
    if record.multi_region:
        require_primary(record)


def _require_symmetric(record: KeyRecord, empty_message: bool = False) -> None:
    if record.origin is Origin.EXTERNAL_KEY_STORE:
        raise UnsupportedOperationException(
            f"{record.arn} is in a custom key store: its key material cannot be rotated."
        )
    if record.key_spec is not KeySpec.SYMMETRIC_DEFAULT:
        raise UnsupportedOperationException(
            "" if empty_message else f"{record.arn} key spec {record.key_spec} does not support key rotation."
        )


def enable_key_rotation(
    core: KmsCore, ctx: RequestContext, *, key_id: str, rotation_period_in_days: int | None = None
) -> None:
    period = rotation_period_in_days or 365
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action="EnableKeyRotation")
        check_key_state("EnableKeyRotation", record)
        _require_primary_if_multi_region(record)
        _require_symmetric(record)
        now = core.clock.now()
        record.rotation_enabled = True
        record.rotation_period_days = period
        record.next_rotation_date = now + period * DAY
        tx.update_key(record)
        if record.multi_region:
            propagate_rotation_settings(tx, record, now, ctx.request_id)


def disable_key_rotation(core: KmsCore, ctx: RequestContext, *, key_id: str) -> None:
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action="DisableKeyRotation")
        check_key_state("DisableKeyRotation", record)
        _require_primary_if_multi_region(record)
        _require_symmetric(record)
        record.rotation_enabled = False
        record.next_rotation_date = None
        tx.update_key(record)
        if record.multi_region:
            propagate_rotation_settings(tx, record, core.clock.now(), ctx.request_id)


def get_key_rotation_status(core: KmsCore, ctx: RequestContext, *, key_id: str) -> dict[str, Any]:
    record = core.resolve(ctx, key_id, action="GetKeyRotationStatus").record
    check_key_state("GetKeyRotationStatus", record)
    _require_symmetric(record)
    pending_deletion = record.key_state in (KeyState.PENDING_DELETION, KeyState.PENDING_REPLICA_DELETION)
    enabled = record.rotation_enabled and not pending_deletion
    result: dict[str, Any] = {"key_id": record.arn, "key_rotation_enabled": enabled}
    if enabled:
        result["rotation_period_in_days"] = record.rotation_period_days
        result["next_rotation_date"] = record.next_rotation_date
    return result


def _rotate(
    core: KmsCore, tx: Tx, record: KeyRecord, rotation_type: str, now: float, request_id: str
) -> tuple[str | None, str]:
    """Make a new AWS_KMS material current, on the key and on its multi-Region replicas; returns
    (previous, new) material ids."""
    previous = record.current_material_id
    for m in tx.get_materials(record.region, record.key_id):
        if m.state is MaterialState.CURRENT:
            m.state = MaterialState.NON_CURRENT
            tx.put_material(record.region, record.key_id, m)
    raw = generate_material(record.key_spec, core.keypairs)
    material_id = core.root.material_id(record.key_id, raw)
    material = KeyMaterial(
        material_id=material_id,
        state=MaterialState.CURRENT,
        created=now,
        sealed=core.seal_material(record.region, record.key_id, material_id, raw),
        rotation_date=now,
        rotation_type=rotation_type,
    )
    tx.put_material(record.region, record.key_id, material)
    record.current_material_id = material_id
    if record.multi_region:
        propagate_material(core, tx, record, material, now, request_id)
    return previous, material_id


def _rotate_event(
    record: KeyRecord, rotation_type: str, previous: str | None, current: str, now: float
) -> dict[str, Any]:
    event = service_event_record(
        event_name="RotateKey",
        event_time=now,
        region=record.region,
        account_id=record.account_id,
        key_arn=record.arn,
        details={
            "rotationType": rotation_type,
            "keyOrigin": str(record.origin),
            "previousKeyMaterialId": previous,
            "currentKeyMaterialId": current,
            "keyId": record.arn,
        },
    )
    return storage_row(event, now, record.key_id)


def rotate_key_on_demand(core: KmsCore, ctx: RequestContext, *, key_id: str) -> dict[str, Any]:
    with core.store.write() as tx:
        record = core.resolve_for_update(ctx, tx, key_id, action="RotateKeyOnDemand")
        check_key_state("RotateKeyOnDemand", record)
        _require_primary_if_multi_region(record)
        _require_symmetric(record, empty_message=True)
        now = core.clock.now()
        if record.origin is Origin.EXTERNAL:
            previous, current = rotate_external_on_demand(core, tx, record, now, ctx.request_id)
            tx.update_key(record)
            tx.append_audit([_rotate_event(record, "ON_DEMAND", previous, current, now)])
            return {"key_id": record.arn}
        on_demand = [
            m for m in tx.get_materials(record.region, record.key_id) if m.rotation_type == "ON_DEMAND"
        ]
        if len(on_demand) >= MAX_ON_DEMAND_ROTATIONS:
            raise LimitExceededException(
                "The on-demand rotations limit has been reached for the given keyId. "
                f"No more on-demand rotations can be performed for this key: {record.arn}"
            )
        previous, current = _rotate(core, tx, record, "ON_DEMAND", now, ctx.request_id)
        tx.update_key(record)
        tx.append_audit([_rotate_event(record, "ON_DEMAND", previous, current, now)])
    return {"key_id": record.arn}


def list_key_rotations(
    core: KmsCore,
    ctx: RequestContext,
    *,
    key_id: str,
    include_key_material: str | None = None,
    limit: int | None = None,
    marker: str | None = None,
) -> dict[str, Any]:
    record = core.resolve(ctx, key_id, action="ListKeyRotations").record
    check_key_state("ListKeyRotations", record)
    _require_symmetric(record)
    awaited: set[str] = set()
    with core.store.read() as tx:
        materials = tx.get_materials(record.region, record.key_id)
        if record.multi_region and not record.is_replica and record.origin is Origin.EXTERNAL:
            awaited = _awaiting_replicas(tx, record, materials)
    if include_key_material != "ALL_KEY_MATERIAL":
        materials = [m for m in materials if m.rotation_date is not None]
    n = limit or 100
    after = core.pager.read_marker("rotations", marker)
    ids = [m.material_id for m in materials]
    if after is not None:
        ids = ids[ids.index(after) + 1 :] if after in ids else []
    ids_page, next_marker = core.pager.page(ids, n, "rotations")
    by_id = {m.material_id: m for m in materials}
    entries = []
    for mid in ids_page:
        m = by_id[mid]
        entry: dict[str, Any] = {"key_id": record.key_id, "key_material_id": m.material_id}
        if m.description is not None:
            entry["key_material_description"] = m.description
        if record.origin is Origin.EXTERNAL:
            entry["import_state"] = str(m.import_state) if m.import_state else None
            entry["expiration_model"] = m.expiration_model
            entry["valid_to"] = m.valid_to
        state = MaterialState.PENDING_MULTI_REGION_IMPORT_AND_ROTATION if mid in awaited else m.state
        entry["key_material_state"] = str(state)
        entry["rotation_date"] = m.rotation_date
        entry["rotation_type"] = m.rotation_type
        entries.append(entry)
    result: dict[str, Any] = {"rotations": entries, "truncated": next_marker is not None}
    if next_marker:
        result["next_marker"] = next_marker
    return result


def _awaiting_replicas(tx: Tx, primary: KeyRecord, materials: list[KeyMaterial]) -> set[str]:
    """The primary's materials pending rotation that a replica has not imported yet (shown as
    PENDING_MULTI_REGION_IMPORT_AND_ROTATION: RotateKeyOnDemand waits for every replica)."""
    pending = {m.material_id for m in materials if m.state is MaterialState.PENDING_ROTATION}
    awaited: set[str] = set()
    for region in primary.replica_regions:
        if pending - awaited:
            held = {
                m.material_id
                for m in tx.get_materials(region, primary.key_id)
                if m.import_state is ImportState.IMPORTED
            }
            awaited |= pending - held
    return awaited


def rotate_due_keys(core: KmsCore) -> int:
    """Automatic rotation of every key whose next rotation date has passed (idempotent across nodes)."""
    now = core.clock.now()
    with core.store.read() as tx:
        due = tx.keys_due_for_rotation(now)
    rotated = 0
    for region, key_id in due:
        with core.store.write() as tx:
            record = tx.get_key(region, key_id, for_update=True)
            if record is None or not record.rotation_enabled or record.next_rotation_date is None:
                continue
            if record.next_rotation_date > now or record.key_state is not KeyState.ENABLED:
                continue
            if record.is_replica:
                continue  # became a replica meanwhile: its primary rotates it
            record.next_rotation_date = now + (record.rotation_period_days or 365) * DAY
            previous, current = _rotate(core, tx, record, "AUTOMATIC", now, fast_uuid())
            tx.update_key(record)
            tx.append_audit([_rotate_event(record, "AUTOMATIC", previous, current, now)])
            rotated += 1
    return rotated
