"""The operation table: AWS operation name -> service function, and which operations may run on the
event loop when their key is cached (the hot path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openkms.service import aliases, crypto_ops, importing, keys, policies, rotation, tagging

Operation = Callable[..., dict[str, Any] | None]

OPERATIONS: dict[str, Operation] = {
    "CreateKey": keys.create_key,
    "DescribeKey": keys.describe_key,
    "ListKeys": keys.list_keys,
    "EnableKey": keys.enable_key,
    "DisableKey": keys.disable_key,
    "UpdateKeyDescription": keys.update_key_description,
    "ScheduleKeyDeletion": keys.schedule_key_deletion,
    "CancelKeyDeletion": keys.cancel_key_deletion,
    "CreateAlias": aliases.create_alias,
    "UpdateAlias": aliases.update_alias,
    "DeleteAlias": aliases.delete_alias,
    "ListAliases": aliases.list_aliases,
    "TagResource": tagging.tag_resource,
    "UntagResource": tagging.untag_resource,
    "ListResourceTags": tagging.list_resource_tags,
    "GetKeyPolicy": policies.get_key_policy,
    "PutKeyPolicy": policies.put_key_policy,
    "ListKeyPolicies": policies.list_key_policies,
    "EnableKeyRotation": rotation.enable_key_rotation,
    "DisableKeyRotation": rotation.disable_key_rotation,
    "GetKeyRotationStatus": rotation.get_key_rotation_status,
    "RotateKeyOnDemand": rotation.rotate_key_on_demand,
    "ListKeyRotations": rotation.list_key_rotations,
    "Encrypt": crypto_ops.encrypt,
    "Decrypt": crypto_ops.decrypt,
    "ReEncrypt": crypto_ops.re_encrypt,
    "GenerateDataKey": crypto_ops.generate_data_key,
    "GenerateDataKeyWithoutPlaintext": crypto_ops.generate_data_key_without_plaintext,
    "GenerateRandom": crypto_ops.generate_random,
    "GetParametersForImport": importing.get_parameters_for_import,
    "ImportKeyMaterial": importing.import_key_material,
    "DeleteImportedKeyMaterial": importing.delete_imported_key_material,
}

# Operations that need no database when their key is cached: run on the event loop first.
HOT = frozenset(
    {
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateRandom",
        "DescribeKey",
    }
)
