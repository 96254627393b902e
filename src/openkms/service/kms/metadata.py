"""KeyMetadata as AWS returns it: exactly the members that apply to the key (Appendix A), with the
MultiRegionConfiguration of a multi-Region key naming its primary and every replica of its set."""

from __future__ import annotations

from typing import Any

from openkms.arns import key_arn
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
    # A primary waiting for its replicas' deletion has no deletion date yet (its window starts when
    # the last replica is gone).
    if key.key_state is KeyState.PENDING_DELETION:
        md["deletion_date"] = key.deletion_date
    if key.key_state is KeyState.PENDING_REPLICA_DELETION:
        md["pending_deletion_window_in_days"] = key.pending_window_days
    if key.origin is Origin.EXTERNAL and key.expiration_model is not None:
        md["expiration_model"] = key.expiration_model
        if key.valid_to is not None:
            md["valid_to"] = key.valid_to
    # A replica being created shows no current material yet (as AWS's ReplicateKey response).
    if (
        key.key_spec is KeySpec.SYMMETRIC_DEFAULT
        and key.current_material_id
        and key.key_state is not KeyState.CREATING
    ):
        md["current_key_material_id"] = key.current_material_id
    if key.multi_region:
        primary = key.primary_region or key.region
        md["multi_region_configuration"] = {
            "multi_region_key_type": key.multi_region_type,
            "primary_key": {"arn": key_arn(primary, key.account_id, key.key_id), "region": primary},
            "replica_keys": [
                {"arn": key_arn(region, key.account_id, key.key_id), "region": region}
                for region in key.replica_regions
            ],
        }
    return md
