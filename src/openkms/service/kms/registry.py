"""The operation table: AWS operation name -> service function (the operations implemented), and which
of them may run on the event loop when their key is cached (the hot path, derived from the operations'
records in ``domain/operations.py``, where every other fact about an operation is written)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openkms.domain.operations import OPERATIONS as FACTS
from openkms.service.kms import (
    aliases,
    asymmetric_ops,
    crypto_ops,
    custom_key_stores,
    data_key_pairs,
    grants,
    importing,
    keys,
    mac_ops,
    multi_region,
    policies,
    rotation,
    tagging,
    usage,
)

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
    "Sign": asymmetric_ops.sign,
    "Verify": asymmetric_ops.verify,
    "GetPublicKey": asymmetric_ops.get_public_key,
    "DeriveSharedSecret": asymmetric_ops.derive_shared_secret,
    "GenerateMac": mac_ops.generate_mac,
    "VerifyMac": mac_ops.verify_mac,
    "GenerateDataKeyPair": data_key_pairs.generate_data_key_pair,
    "GenerateDataKeyPairWithoutPlaintext": data_key_pairs.generate_data_key_pair_without_plaintext,
    "CreateGrant": grants.create_grant,
    "ListGrants": grants.list_grants,
    "ListRetirableGrants": grants.list_retirable_grants,
    "RetireGrant": grants.retire_grant,
    "RevokeGrant": grants.revoke_grant,
    "GetKeyLastUsage": usage.get_key_last_usage,
    "CreateCustomKeyStore": custom_key_stores.create_custom_key_store,
    "ConnectCustomKeyStore": custom_key_stores.connect_custom_key_store,
    "DisconnectCustomKeyStore": custom_key_stores.disconnect_custom_key_store,
    "UpdateCustomKeyStore": custom_key_stores.update_custom_key_store,
    "DeleteCustomKeyStore": custom_key_stores.delete_custom_key_store,
    "DescribeCustomKeyStores": custom_key_stores.describe_custom_key_stores,
    "GetParametersForImport": importing.get_parameters_for_import,
    "ImportKeyMaterial": importing.import_key_material,
    "DeleteImportedKeyMaterial": importing.delete_imported_key_material,
    "ReplicateKey": multi_region.replicate_key,
    "UpdatePrimaryRegion": multi_region.update_primary_region,
}

# Operations that need no database when their key is cached: run on the event loop first (the
# records' ``hot``; slow work in some of them raises NeedsIO first and runs on a worker thread).
HOT = frozenset(name for name, facts in FACTS.items() if facts.hot)
