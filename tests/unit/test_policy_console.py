"""The console-style key policy: exact Sids, principals and actions per key type, and the round trip
through describe_console_key_policy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openkms.auth.policy import (
    CONSOLE_POLICY_ID,
    ConsolePolicyView,
    build_console_key_policy,
    describe_console_key_policy,
    parse_policy,
)
from openkms.domain.policy import default_key_policy

A = "111122223333"
ADMIN = f"arn:aws:iam::{A}:role/Admin"
ADMIN2 = f"arn:aws:iam::{A}:user/ops"
USER = f"arn:aws:iam::{A}:role/App"
USER2 = f"arn:aws:iam::{A}:user/alice"
OTHER = "444455556666"

ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
]


def build(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "key_type": "SYMMETRIC",
        "origin": "AWS_KMS",
        "multi_region": False,
        "administrators": [ADMIN],
        "allow_admin_delete": True,
        "users": [USER],
        "other_accounts": [],
    }
    args.update(overrides)
    return build_console_key_policy(A, **args)


def statements(text: str) -> dict[str, dict[str, Any]]:
    doc = json.loads(text)
    assert doc["Version"] == "2012-10-17"
    assert doc["Id"] == CONSOLE_POLICY_ID
    return {s["Sid"]: s for s in doc["Statement"]}


def test_symmetric_console_policy_exact() -> None:
    doc = json.loads(build())
    assert doc == {
        "Version": "2012-10-17",
        "Id": "key-consolepolicy-3",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{A}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "Allow access for Key Administrators",
                "Effect": "Allow",
                "Principal": {"AWS": ADMIN},
                "Action": ADMIN_ACTIONS,
                "Resource": "*",
            },
            {
                "Sid": "Allow use of the key",
                "Effect": "Allow",
                "Principal": {"AWS": USER},
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:DescribeKey",
                ],
                "Resource": "*",
            },
            {
                "Sid": "Allow attachment of persistent resources",
                "Effect": "Allow",
                "Principal": {"AWS": USER},
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
        ],
    }


def test_layout_is_awss_pretty_print() -> None:
    text = build()
    assert text.startswith(
        '{\n  "Version" : "2012-10-17",\n  "Id" : "key-consolepolicy-3",\n  "Statement" : [ {\n'
    )
    assert '    "Sid" : "Enable IAM User Permissions",\n' in text
    assert '    "Action" : [ "kms:Create*", "kms:Describe*", ' in text
    assert text.endswith("  } ]\n}")
    parse_policy(text)  # a valid key policy


@pytest.mark.parametrize(
    ("key_type", "use_actions", "has_grants"),
    [
        (
            "SYMMETRIC",
            ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
            True,
        ),
        ("HMAC", ["kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"], False),
        (
            "ASYMMETRIC_ENCRYPT",
            ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:DescribeKey", "kms:GetPublicKey"],
            False,
        ),
        ("ASYMMETRIC_SIGN", ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"], False),
        ("KEY_AGREEMENT", ["kms:DescribeKey", "kms:GetPublicKey", "kms:DeriveSharedSecret"], False),
    ],
)
def test_use_actions_per_key_type(key_type: str, use_actions: list[str], has_grants: bool) -> None:
    by_sid = statements(build(key_type=key_type))
    assert by_sid["Allow use of the key"]["Action"] == use_actions
    assert ("Allow attachment of persistent resources" in by_sid) is has_grants


@pytest.mark.parametrize(
    ("overrides", "extra", "missing"),
    [
        pytest.param({"origin": "EXTERNAL"}, ["kms:ImportKeyMaterial"], [], id="external"),
        pytest.param(
            {"multi_region": True}, ["kms:ReplicateKey", "kms:UpdatePrimaryRegion"], [], id="multi-region"
        ),
        pytest.param(
            {"origin": "EXTERNAL", "multi_region": True},
            ["kms:ImportKeyMaterial", "kms:ReplicateKey", "kms:UpdatePrimaryRegion"],
            [],
            id="both",
        ),
        pytest.param(
            {"allow_admin_delete": False},
            [],
            ["kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"],
            id="no-delete",
        ),
    ],
)
def test_admin_actions_variants(overrides: dict[str, Any], extra: list[str], missing: list[str]) -> None:
    actions = statements(build(**overrides))["Allow access for Key Administrators"]["Action"]
    assert actions == [a for a in ADMIN_ACTIONS if a not in missing] + extra


def test_empty_principal_lists_omit_statements() -> None:
    assert list(statements(build(administrators=[], users=[]))) == ["Enable IAM User Permissions"]
    assert list(statements(build(users=[]))) == [
        "Enable IAM User Permissions",
        "Allow access for Key Administrators",
    ]
    assert list(statements(build(administrators=[]))) == [
        "Enable IAM User Permissions",
        "Allow use of the key",
        "Allow attachment of persistent resources",
    ]


def test_principals_lists_and_other_accounts() -> None:
    by_sid = statements(build(administrators=[ADMIN, ADMIN2], users=[USER, USER2], other_accounts=[OTHER]))
    assert by_sid["Allow access for Key Administrators"]["Principal"] == {"AWS": [ADMIN, ADMIN2]}
    expected = {"AWS": [USER, USER2, f"arn:aws:iam::{OTHER}:root"]}
    assert by_sid["Allow use of the key"]["Principal"] == expected
    assert by_sid["Allow attachment of persistent resources"]["Principal"] == expected
    only_other = statements(build(users=[], other_accounts=[OTHER]))
    assert only_other["Allow use of the key"]["Principal"] == {"AWS": f"arn:aws:iam::{OTHER}:root"}


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="simple"),
        pytest.param(
            {
                "administrators": [ADMIN, ADMIN2],
                "users": [USER, USER2],
                "other_accounts": [OTHER, "999988887777"],
            },
            id="lists",
        ),
        pytest.param(
            {"allow_admin_delete": False, "origin": "EXTERNAL", "multi_region": True}, id="no-delete"
        ),
        pytest.param({"administrators": [], "users": []}, id="empty"),
        pytest.param(
            {"key_type": "ASYMMETRIC_SIGN", "users": [], "other_accounts": [OTHER]}, id="only-other-account"
        ),
    ],
)
def test_describe_round_trip(overrides: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "administrators": [ADMIN],
        "allow_admin_delete": True,
        "users": [USER],
        "other_accounts": [],
    }
    args.update(overrides)
    view = describe_console_key_policy(build(**overrides))
    assert view == ConsolePolicyView(
        administrators=tuple(args["administrators"]),
        allow_admin_delete=args["allow_admin_delete"] if args["administrators"] else True,
        users=tuple(args["users"]),
        other_accounts=tuple(args["other_accounts"]),
    )


def test_describe_reads_compact_json_too() -> None:
    compact = json.dumps(json.loads(build(other_accounts=[OTHER])))
    view = describe_console_key_policy(compact)
    assert view == ConsolePolicyView((ADMIN,), True, (USER,), (OTHER,))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(default_key_policy(A), id="api-default-policy"),
        pytest.param("not json", id="not-json"),
        pytest.param("[]", id="not-object"),
        pytest.param(
            json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "custom", "Effect": "Allow"}]}),
            id="custom-sids",
        ),
    ],
)
def test_describe_returns_none_for_other_policies(text: str) -> None:
    assert describe_console_key_policy(text) is None


def test_unknown_key_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown key type"):
        build(key_type="RSA_2048")
