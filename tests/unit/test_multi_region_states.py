"""The multi-Region columns of AWS's "key states: effect on your KMS key" table (PendingReplicaDeletion,
Creating, Updating), operation by operation, against the key-state rules (domain/keystate.py); the
e2e tests (tests/e2e/test_multi_region.py) reach the same cells through the API."""

from __future__ import annotations

import dataclasses

import pytest

from openkms.domain.keyspec import KeySpec, KeyUsage, Origin
from openkms.domain.keystate import RULES, check_key_state
from openkms.domain.model import KeyRecord, KeyState
from openkms.errors import KMSInvalidStateException

ARN_STATES = (KeyState.PENDING_REPLICA_DELETION, KeyState.CREATING, KeyState.UPDATING)
OK = None
PRD = "{arn} is pending replica deletion."
CREATING = "{arn} is creating."
UPDATING = "{arn} is updating."
NOT_PD = "{arn} is not pending deletion (or pending replica deletion)."

# Operation -> the cell for PendingReplicaDeletion, Creating, Updating (None: allowed by the state;
# the operation's other rules, such as key type or origin, are checked after it). Footnotes 3, 4,
# 14 and 15 of the table; "?7" cells (rotation of keys that support it) are allowed.
CRYPTO = (PRD, CREATING, OK)
TABLE: dict[str, tuple[str | None, str | None, str | None]] = {
    "CancelKeyDeletion": (OK, NOT_PD, NOT_PD),
    "CreateAlias": (PRD, OK, OK),
    "CreateGrant": CRYPTO,
    "Decrypt": CRYPTO,
    "DeleteAlias": (OK, OK, OK),
    "DeleteImportedKeyMaterial": (OK, CREATING, UPDATING),
    "DeriveSharedSecret": CRYPTO,
    "DescribeKey": (OK, OK, OK),
    "DisableKey": (PRD, CREATING, UPDATING),
    "DisableKeyRotation": (PRD, CREATING, OK),
    "EnableKey": (PRD, CREATING, UPDATING),
    "EnableKeyRotation": (PRD, CREATING, OK),
    "Encrypt": CRYPTO,
    "GenerateDataKey": CRYPTO,
    "GenerateDataKeyPair": CRYPTO,
    "GenerateDataKeyPairWithoutPlaintext": CRYPTO,
    "GenerateDataKeyWithoutPlaintext": CRYPTO,
    "GenerateMac": CRYPTO,
    "GetKeyLastUsage": (OK, OK, OK),
    "GetKeyPolicy": (OK, OK, OK),
    "GetKeyRotationStatus": (OK, OK, OK),
    "GetParametersForImport": (PRD, CREATING, UPDATING),
    "GetPublicKey": CRYPTO,
    "ImportKeyMaterial": (PRD, CREATING, OK),
    "ListAliases": (OK, OK, OK),
    "ListGrants": (OK, OK, OK),
    "ListKeyPolicies": (OK, OK, OK),
    "ListKeyRotations": (OK, OK, OK),
    "ListResourceTags": (OK, OK, OK),
    "PutKeyPolicy": (OK, OK, OK),
    "ReEncrypt": CRYPTO,
    "ReplicateKey": (PRD, CREATING, UPDATING),
    "RetireGrant": (OK, OK, OK),
    "RevokeGrant": (OK, OK, OK),
    "RotateKeyOnDemand": (PRD, CREATING, OK),
    "ScheduleKeyDeletion": (PRD, OK, UPDATING),
    "Sign": CRYPTO,
    "TagResource": (PRD, OK, OK),
    "UntagResource": (PRD, OK, OK),
    "UpdateAlias": (PRD, OK, OK),  # as destination (footnote 10: a source pending deletion is fine)
    "UpdateKeyDescription": (PRD, OK, OK),
    "UpdatePrimaryRegion": (PRD, CREATING, OK),
    "Verify": CRYPTO,
    "VerifyMac": CRYPTO,
}


def _key(state: KeyState) -> KeyRecord:
    return KeyRecord(
        region="us-west-2",
        key_id="mrk-" + "0" * 32,
        account_id="111122223333",
        key_spec=KeySpec.SYMMETRIC_DEFAULT,
        key_usage=KeyUsage.ENCRYPT_DECRYPT,
        origin=Origin.AWS_KMS,
        key_state=state,
        creation_date=1.0,
        policy="{}",
        multi_region=True,
        primary_region="us-east-1",
        replica_regions=("us-west-2",),
    )


def test_the_table_covers_every_rule() -> None:
    assert set(TABLE) == set(RULES)


@pytest.mark.parametrize("operation", sorted(TABLE))
@pytest.mark.parametrize("column", range(3), ids=[s.value for s in ARN_STATES])
def test_multi_region_states(operation: str, column: int) -> None:
    key = _key(ARN_STATES[column])
    expected = TABLE[operation][column]
    if expected is None:
        check_key_state(operation, key)
        return
    with pytest.raises(KMSInvalidStateException) as exc:
        check_key_state(operation, key)
    assert exc.value.message == expected.format(arn=key.arn)


def test_a_replica_names_its_primary_and_its_set() -> None:
    replica = _key(KeyState.ENABLED)
    assert replica.is_replica and replica.multi_region_type == "REPLICA"
    assert replica.related_regions == ("us-east-1", "us-west-2")
    primary = dataclasses.replace(replica, region="us-east-1")
    assert not primary.is_replica and primary.multi_region_type == "PRIMARY"
    new = dataclasses.replace(replica, primary_region=None, replica_regions=())  # made by CreateKey
    assert new.multi_region_type == "PRIMARY" and new.related_regions == ("us-west-2",)
    single = dataclasses.replace(new, multi_region=False, key_id="1234abcd-12ab-34cd-56ef-1234567890ab")
    assert single.multi_region_type is None and not single.is_replica
