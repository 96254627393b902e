"""KeyMetadata as AWS returns it: exactly the members that apply to the key (Appendix A)."""

from __future__ import annotations

from typing import Any

from openkms.domain.keyspec import KeySpec, Origin, algorithm_lists
from openkms.domain.model import KeyRecord, KeyState


def key_metadata(key: KeyRecord) -> dict[str, Any]:
    md: dict[str, Any] = {
        "aws_account_id": key.account_id,
        "key_id": key.key_id,
        "arn": key.arn,
        "creation_date": key.creation_date,
        "enabled": key.key_state is KeyState.ENABLED,
        "description": key.description,
        "key_usage": str(key.key_usage),
        "key_state": str(key.key_state),
        "origin": str(key.origin),
        "key_manager": "CUSTOMER",
        "customer_master_key_spec": str(key.key_spec),
        "key_spec": str(key.key_spec),
        "multi_region": key.multi_region,
    }
    md.update({k: list(v) for k, v in algorithm_lists(key.key_spec, key.key_usage).items()})
    if key.key_state in (KeyState.PENDING_DELETION, KeyState.PENDING_REPLICA_DELETION):
        md["deletion_date"] = key.deletion_date
    if key.key_state is KeyState.PENDING_REPLICA_DELETION:
        md["pending_deletion_window_in_days"] = key.pending_window_days
    if key.origin is Origin.EXTERNAL and key.expiration_model is not None:
        md["expiration_model"] = key.expiration_model
        if key.valid_to is not None:
            md["valid_to"] = key.valid_to
    if key.key_spec is KeySpec.SYMMETRIC_DEFAULT and key.current_material_id:
        md["current_key_material_id"] = key.current_material_id
    if key.multi_region:
        md["multi_region_configuration"] = {
            "multi_region_key_type": "PRIMARY",
            "primary_key": {"arn": key.arn, "region": key.region},
            "replica_keys": [],
        }
    return md
