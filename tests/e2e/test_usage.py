"""GetKeyLastUsage (answered from the audit trail) and DescribeCustomKeyStores (none exist here)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError


def test_get_key_last_usage(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]
    fresh = kms.get_key_last_usage(KeyId=key["KeyId"])
    assert fresh["KeyId"] == key["Arn"]
    assert "KeyLastUsage" not in fresh
    assert fresh["KeyCreationDate"] == key["CreationDate"]
    assert fresh["TrackingStartDate"] == key["CreationDate"]
    out = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    request_id = out["ResponseMetadata"]["RequestId"]
    kms.describe_key(KeyId=key["KeyId"])  # not a usage
    deadline = time.time() + 5
    while True:
        usage = kms.get_key_last_usage(KeyId=key["KeyId"]).get("KeyLastUsage")
        if usage or time.time() > deadline:
            break
        time.sleep(0.05)
    assert usage is not None
    assert usage["Operation"] == "Encrypt"
    assert usage["KmsRequestId"] == request_id
    assert len(usage["CloudTrailEventId"]) == 36
    assert abs(usage["Timestamp"].timestamp() - time.time()) < 30


def test_describe_custom_key_stores_is_empty(kms: Any) -> None:
    assert kms.describe_custom_key_stores()["CustomKeyStores"] == []
    with pytest.raises(ClientError) as exc:
        kms.describe_custom_key_stores(CustomKeyStoreId="cks-1234567890abcdef0")
    assert exc.value.response["Error"]["Code"] == "CustomKeyStoreNotFoundException"
