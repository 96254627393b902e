"""Key lifecycle as AWS KMS answers it: CreateKey defaults and the exact KeyMetadata member set
(Appendix A), key specs and usages, the default key policy, DescribeKey by every KeyId form,
NotFound messages, ListKeys pagination, Enable/Disable, descriptions, deletion scheduling and
multi-Region key ids."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any

import pytest

from openkms.crypto.keygen import SUPPORTED_SPECS
from openkms.domain.keyspec import USAGES, KeySpec
from tests.conftest import Server
from tests.e2e.util import ALWAYS_MEMBERS, aws_error, members

DAY = 86400
DEFAULT_SYMMETRIC_MEMBERS = ALWAYS_MEMBERS | {"EncryptionAlgorithms", "CurrentKeyMaterialId"}
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")


def _arn(server: Server, key_id: str, region: str = "us-east-1") -> str:
    return f"arn:aws:kms:{region}:{server.account_id}:key/{key_id}"


def test_create_key_defaults_and_exact_members(kms: Any, server: Server) -> None:
    before = time.time()
    md = kms.create_key()["KeyMetadata"]
    assert set(md) == DEFAULT_SYMMETRIC_MEMBERS
    assert UUID_RE.match(md["KeyId"])
    assert md["AWSAccountId"] == server.account_id
    assert md["Arn"] == _arn(server, md["KeyId"])
    assert before - 2 <= md["CreationDate"].timestamp() <= time.time() + 2
    assert md["Enabled"] is True
    assert md["Description"] == ""
    assert md["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert md["KeyState"] == "Enabled"
    assert md["Origin"] == "AWS_KMS"
    assert md["KeyManager"] == "CUSTOMER"
    assert md["KeySpec"] == md["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    assert md["MultiRegion"] is False
    assert md["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert re.fullmatch(r"[0-9a-f]{64}", md["CurrentKeyMaterialId"])
    # DescribeKey carries the same members with the same values.
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"] == md


def test_create_key_external_origin(kms: Any) -> None:
    md = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    assert set(md) == ALWAYS_MEMBERS | {"EncryptionAlgorithms"}
    assert md["KeyState"] == "PendingImport"
    assert md["Enabled"] is False
    assert md["Origin"] == "EXTERNAL"
    assert "CurrentKeyMaterialId" not in md
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"] == md


def test_create_key_description_tags_policy(kms: Any, server: Server) -> None:
    policy = {
        "Version": "2012-10-17",
        "Id": "custom",
        "Statement": [
            {
                "Sid": "Allow everything for the account",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    tags = [{"TagKey": "team", "TagValue": "crypto"}, {"TagKey": "empty", "TagValue": ""}]
    md = kms.create_key(Description="my key", Tags=tags, Policy=json.dumps(policy))["KeyMetadata"]
    assert md["Description"] == "my key"
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["Description"] == "my key"
    listed = kms.list_resource_tags(KeyId=md["KeyId"])
    assert sorted(listed["Tags"], key=lambda t: t["TagKey"]) == sorted(tags, key=lambda t: t["TagKey"])
    got = kms.get_key_policy(KeyId=md["KeyId"], PolicyName="default")
    assert json.loads(got["Policy"]) == policy


def test_default_key_policy(kms: Any, server: Server) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    got = kms.get_key_policy(KeyId=key_id)
    assert members(got) == {"Policy", "PolicyName"}
    assert got["PolicyName"] == "default"
    assert json.loads(got["Policy"]) == {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


@pytest.mark.parametrize(
    ("spec", "usage"),
    [
        ("RSA_2048", "KEY_AGREEMENT"),
        ("SYMMETRIC_DEFAULT", "SIGN_VERIFY"),
        ("SYMMETRIC_DEFAULT", "GENERATE_VERIFY_MAC"),
        ("ECC_NIST_P256", "ENCRYPT_DECRYPT"),
        ("ECC_SECG_P256K1", "KEY_AGREEMENT"),
        ("HMAC_256", "SIGN_VERIFY"),
        ("HMAC_512", "ENCRYPT_DECRYPT"),
    ],
)
def test_incompatible_key_spec_and_usage(kms: Any, spec: str, usage: str) -> None:
    err = aws_error(kms.create_key, KeySpec=spec, KeyUsage=usage)
    assert (err.code, err.message, err.status) == (
        "ValidationException",
        f"KeyUsage {usage} is not compatible with KeySpec {spec}",
        400,
    )


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "HMAC_256"])
def test_key_usage_required_except_for_symmetric(kms: Any, spec: str) -> None:
    err = aws_error(kms.create_key, KeySpec=spec)
    assert (err.code, err.message) == (
        "ValidationException",
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
    )


def test_key_specs_not_yet_implemented_are_refused(kms: Any) -> None:
    """Every KeySpec the service cannot generate yet is refused with UnsupportedOperationException;
    the expectation follows ``SUPPORTED_SPECS`` so it stays right as more specs land."""
    assert KeySpec.SYMMETRIC_DEFAULT in SUPPORTED_SPECS
    pending = sorted(set(KeySpec) - SUPPORTED_SPECS - {KeySpec.SM2})
    for spec in pending:
        usage = sorted(USAGES[spec])[0]
        err = aws_error(kms.create_key, KeySpec=str(spec), KeyUsage=str(usage))
        assert err.code == "UnsupportedOperationException", (spec, err)
        assert str(spec) in err.message
    # The deprecated CustomerMasterKeySpec member is read like KeySpec.
    md = kms.create_key(CustomerMasterKeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]
    assert md["KeySpec"] == md["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    # SM2 exists only in China Regions.
    assert aws_error(kms.create_key, KeySpec="SM2", KeyUsage="SIGN_VERIFY").code == "ValidationException"


def test_describe_key_by_every_key_id_form(kms: Any, server: Server) -> None:
    md = kms.create_key()["KeyMetadata"]
    alias = f"alias/describe-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])
    alias_arn = f"arn:aws:kms:us-east-1:{server.account_id}:{alias}"
    for key_id in (md["KeyId"], md["Arn"], alias, alias_arn):
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"] == md, key_id


def test_not_found_messages(kms: Any, server: Server) -> None:
    unknown = str(uuid.uuid4())
    alias_arn = f"arn:aws:kms:us-east-1:{server.account_id}:alias/does-not-exist"
    cases = {
        unknown: f"Key '{_arn(server, unknown)}' does not exist",
        _arn(server, unknown): f"Key '{_arn(server, unknown)}' does not exist",
        "mrk-" + "0" * 32: f"Key '{_arn(server, 'mrk-' + '0' * 32)}' does not exist",
        "x": "Invalid keyId 'x'",
        "fake-key-id": "Invalid keyId 'fake-key-id'",
        "mrk-fake-key-id": "Invalid keyId 'mrk-fake-key-id'",
        unknown.replace("-", ""): f"Invalid keyId '{unknown.replace('-', '')}'",
        _arn(server, unknown, "us-west-2"): "Invalid arn us-west-2",
        "alias/does-not-exist": f"Alias {alias_arn} is not found.",
        alias_arn: f"Alias {alias_arn} is not found.",
    }
    for key_id, message in cases.items():
        err = aws_error(kms.describe_key, KeyId=key_id)
        assert (err.code, err.message, err.status) == ("NotFoundException", message, 400), key_id
    # Operations that take only a key id or ARN say the same about an unknown key.
    err = aws_error(kms.disable_key, KeyId=unknown)
    assert (err.code, err.message) == ("NotFoundException", f"Key '{_arn(server, unknown)}' does not exist")


def test_list_keys_pagination(server: Server) -> None:
    creds = server.new_account()
    kms = server.client(access_key=creds["AccessKeyId"], secret_key=creds["SecretAccessKey"])
    empty = kms.list_keys()
    assert members(empty) == {"Keys", "Truncated"}
    assert empty["Keys"] == [] and empty["Truncated"] is False
    created = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(5)}

    everything = kms.list_keys()
    assert members(everything) == {"Keys", "Truncated"}
    assert everything["Truncated"] is False
    assert {k["KeyId"] for k in everything["Keys"]} == created
    for entry in everything["Keys"]:
        assert set(entry) == {"KeyId", "KeyArn"}
        assert entry["KeyArn"] == f"arn:aws:kms:us-east-1:{creds['AccountId']}:key/{entry['KeyId']}"

    seen: list[str] = []
    pages = []
    marker: str | None = None
    while True:
        page = kms.list_keys(Limit=2, **({"Marker": marker} if marker else {}))
        pages.append(page)
        assert len(page["Keys"]) <= 2
        seen += [k["KeyId"] for k in page["Keys"]]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        assert members(page) == {"Keys", "Truncated", "NextMarker"}
        marker = page["NextMarker"]
    assert [len(p["Keys"]) for p in pages] == [2, 2, 1]
    assert sorted(seen) == sorted(created)

    exact = kms.list_keys(Limit=5)
    assert len(exact["Keys"]) == 5 and exact["Truncated"] is False and "NextMarker" not in exact

    assert aws_error(kms.list_keys, Marker="forged-marker").code == "InvalidMarkerException"
    assert aws_error(kms.list_keys, Marker="x" * 40).code == "InvalidMarkerException"
    other_listing = base64.urlsafe_b64encode(b"aliases:alias/x").decode()
    assert aws_error(kms.list_keys, Marker=other_listing).code == "InvalidMarkerException"


def test_aws_cli_paginates_list_keys(kms: Any, server: Server) -> None:
    """The AWS CLI follows NextMarker page by page and sees the same keys as boto3's paginator."""
    for _ in range(3):
        kms.create_key()
    via_boto3 = [k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]]
    page_size = max(1, len(via_boto3) // 3)  # three or four pages, however many keys the account has
    out = json.loads(server.aws("kms", "list-keys", "--page-size", str(page_size)).stdout)
    via_cli = [k["KeyId"] for k in out["Keys"]]
    assert len(via_cli) == len(set(via_cli)) > page_size
    assert sorted(via_cli) == sorted(via_boto3)


def test_list_keys_well_formed_forged_marker(kms: Any) -> None:
    forged = base64.urlsafe_b64encode(f"keys:{uuid.uuid4()}".encode()).decode()
    assert aws_error(kms.list_keys, Marker=forged).code == "InvalidMarkerException"


def test_enable_disable(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert members(kms.disable_key(KeyId=key_id)) == set()
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (md["KeyState"], md["Enabled"]) == ("Disabled", False)
    kms.disable_key(KeyId=key_id)  # idempotent
    assert members(kms.enable_key(KeyId=key_id)) == set()
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (md["KeyState"], md["Enabled"]) == ("Enabled", True)
    assert set(md) == DEFAULT_SYMMETRIC_MEMBERS


def test_update_key_description(kms: Any, server: Server) -> None:
    key_id = kms.create_key(Description="before")["KeyMetadata"]["KeyId"]
    assert members(kms.update_key_description(KeyId=key_id, Description="after")) == set()
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "after"
    kms.update_key_description(KeyId=key_id, Description="")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == ""
    unchecked = server.client(parameter_validation=False)
    err = aws_error(unchecked.update_key_description, KeyId=key_id, Description="d" * 8193)
    assert (err.code, err.message) == (
        "ValidationException",
        f"1 validation error detected: Value '{'d' * 8193}' at 'description' failed to satisfy constraint: "
        "Member must have length less than or equal to 8192",
    )


@pytest.mark.parametrize(
    ("days", "bound"), [(6, "greater than or equal to 7"), (31, "less than or equal to 30")]
)
def test_schedule_key_deletion_window_bounds(kms: Any, days: int, bound: str) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    err = aws_error(kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=days)
    assert (err.code, err.message, err.status) == (
        "ValidationException",
        f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: "
        f"Member must have value {bound}",
        400,
    )
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


@pytest.mark.parametrize("days", [None, 7, 30])
def test_schedule_and_cancel_key_deletion(kms: Any, server: Server, days: int | None) -> None:
    md = kms.create_key()["KeyMetadata"]
    before = time.time()
    resp = kms.schedule_key_deletion(KeyId=md["KeyId"], **({"PendingWindowInDays": days} if days else {}))
    window = days or 30
    assert members(resp) == {"KeyId", "DeletionDate", "KeyState", "PendingWindowInDays"}
    assert resp["KeyId"] == md["Arn"]
    assert resp["KeyState"] == "PendingDeletion"
    assert resp["PendingWindowInDays"] == window
    assert abs(resp["DeletionDate"].timestamp() - (before + window * DAY)) < 60

    described = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert set(described) == DEFAULT_SYMMETRIC_MEMBERS | {"DeletionDate"}
    assert (described["KeyState"], described["Enabled"]) == ("PendingDeletion", False)
    assert described["DeletionDate"] == resp["DeletionDate"]

    again = aws_error(kms.schedule_key_deletion, KeyId=md["KeyId"])
    assert (again.code, again.message) == ("KMSInvalidStateException", f"{md['Arn']} is pending deletion.")

    cancelled = kms.cancel_key_deletion(KeyId=md["KeyId"])
    assert members(cancelled) == {"KeyId"}
    assert cancelled["KeyId"] == md["Arn"]
    described = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert set(described) == DEFAULT_SYMMETRIC_MEMBERS
    assert (described["KeyState"], described["Enabled"]) == ("Disabled", False)

    err = aws_error(kms.cancel_key_deletion, KeyId=md["KeyId"])
    assert (err.code, err.message) == (
        "KMSInvalidStateException",
        f"{md['Arn']} is not pending deletion (or pending replica deletion).",
    )


def test_multi_region_key(kms: Any, server: Server) -> None:
    md = kms.create_key(MultiRegion=True, Description="mrk")["KeyMetadata"]
    assert re.fullmatch(r"mrk-[0-9a-f]{32}", md["KeyId"])
    assert md["Arn"] == _arn(server, md["KeyId"])
    assert md["MultiRegion"] is True
    assert set(md) == DEFAULT_SYMMETRIC_MEMBERS | {"MultiRegionConfiguration"}
    assert md["MultiRegionConfiguration"] == {
        "MultiRegionKeyType": "PRIMARY",
        "PrimaryKey": {"Arn": md["Arn"], "Region": "us-east-1"},
        "ReplicaKeys": [],
    }
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"] == md
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"multi")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["KeyId"] == md["Arn"]
    single = kms.create_key(MultiRegion=False)["KeyMetadata"]
    assert UUID_RE.match(single["KeyId"]) and "MultiRegionConfiguration" not in single
