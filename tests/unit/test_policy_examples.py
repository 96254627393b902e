"""Key policy and IAM policy examples from the AWS KMS Developer Guide (key-policy-default,
conditions-kms, abac, key-policy-overview), each with the allow/deny answers the guide gives."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from openkms.auth.policy import (
    REASON_DENY_IDENTITY,
    REASON_DENY_RESOURCE,
    Caller,
    Decision,
    PolicyDocument,
    Request,
    authorize,
    build_console_key_policy,
    parse_policy,
)

A = "111122223333"
B = "444455556666"
KEY = f"arn:aws:kms:us-west-2:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROOT_A = f"arn:aws:iam::{A}:root"


def session(role: str, account: str = A, name: str = "s", tags: Mapping[str, str] | None = None) -> Caller:
    return Caller(
        f"arn:aws:sts::{account}:assumed-role/{role}/{name}",
        account,
        "AssumedRole",
        f"AROA{role.upper()}:{name}",
        None,
        f"arn:aws:iam::{account}:role/{role}",
        dict(tags or {}),
    )


def user(name: str, account: str = A, tags: Mapping[str, str] | None = None) -> Caller:
    return Caller(
        f"arn:aws:iam::{account}:user/{name}",
        account,
        "IAMUser",
        f"AIDA{name.upper()}",
        name,
        None,
        dict(tags or {}),
    )


ROOT = Caller(ROOT_A, A, "Root", A, None, None, {})
ENABLE_IAM = {
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Principal": {"AWS": ROOT_A},
    "Action": "kms:*",
    "Resource": "*",
}


def key_policy(*statements: dict[str, Any]) -> PolicyDocument:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def iam(*statements: dict[str, Any]) -> PolicyDocument:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}), kind="identity")


def decide(
    caller: Caller,
    action: str,
    policy: PolicyDocument | None,
    identities: Sequence[PolicyDocument] = (),
    context: Mapping[str, Any] | None = None,
) -> Decision:
    ctx = {"kms:CallerAccount": caller.account_id, **(context or {})}
    if policy is None:
        return authorize(
            caller, Request(action, "*", None, ctx), key_policy=None, identity_policies=identities
        )
    return authorize(caller, Request(action, KEY, A, ctx), key_policy=policy, identity_policies=identities)


def no_identity(action: str) -> str:
    return f"because no identity-based policy allows the {action} action"


def no_resource(action: str) -> str:
    return f"because no resource-based policy allows the {action} action"


ALLOWED = Decision(True, "")
IAM_ALL_KMS = iam({"Effect": "Allow", "Action": "kms:*", "Resource": "*"})


# --- Default key policy (key-policy-default): the account and its IAM policies --------------------------
DEFAULT = parse_policy(
    json.dumps({"Version": "2012-10-17", "Id": "key-default-1", "Statement": [ENABLE_IAM]}, indent=2)
)


@pytest.mark.parametrize(
    ("caller", "action", "identities", "expected"),
    [
        pytest.param(ROOT, "kms:PutKeyPolicy", [], ALLOWED, id="root-full-access"),
        pytest.param(
            user("admin"), "kms:ScheduleKeyDeletion", [IAM_ALL_KMS], ALLOWED, id="iam-policy-effective"
        ),
        pytest.param(
            user("dev"),
            "kms:Encrypt",
            [],
            Decision(False, no_identity("kms:Encrypt")),
            id="no-iam-policy-denied",
        ),
        pytest.param(
            user("dev"),
            "kms:Decrypt",
            [IAM_ALL_KMS, iam({"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"})],
            Decision(False, REASON_DENY_IDENTITY),
            id="iam-deny-wins",
        ),
        pytest.param(
            user("carol", B),
            "kms:Encrypt",
            [IAM_ALL_KMS],
            Decision(False, no_resource("kms:Encrypt")),
            id="other-account-not-in-policy",
        ),
    ],
)
def test_default_key_policy(
    caller: Caller, action: str, identities: list[PolicyDocument], expected: Decision
) -> None:
    assert decide(caller, action, DEFAULT, identities) == expected


# --- Console default policy (key-policy-default: administrators, users, persistent resources) ------------
ADMIN = session("KMSAdminRole")
KEY_USER = session("KMSKeyUserRole")
OUTSIDER = session("Other")
CAROL = user("carol", B)
CONSOLE = parse_policy(
    build_console_key_policy(
        A,
        key_type="SYMMETRIC",
        origin="AWS_KMS",
        multi_region=False,
        administrators=[f"arn:aws:iam::{A}:role/KMSAdminRole"],
        allow_admin_delete=True,
        users=[f"arn:aws:iam::{A}:role/KMSKeyUserRole"],
        other_accounts=[B],
    )
)


@pytest.mark.parametrize(
    ("caller", "action", "context", "identities", "allowed"),
    [
        pytest.param(ADMIN, "kms:PutKeyPolicy", {}, [], True, id="admin-put-key-policy"),
        pytest.param(ADMIN, "kms:DescribeKey", {}, [], True, id="admin-describe"),
        pytest.param(ADMIN, "kms:ScheduleKeyDeletion", {}, [], True, id="admin-schedule-deletion"),
        pytest.param(ADMIN, "kms:CreateGrant", {}, [], True, id="admin-create-star-covers-grants"),
        pytest.param(ADMIN, "kms:Encrypt", {}, [], False, id="admin-cannot-use-key"),
        pytest.param(ADMIN, "kms:Encrypt", {}, [IAM_ALL_KMS], True, id="admin-with-iam-can-use-key"),
        pytest.param(KEY_USER, "kms:Encrypt", {}, [], True, id="user-encrypt"),
        pytest.param(KEY_USER, "kms:ReEncryptFrom", {}, [], True, id="user-reencrypt-from"),
        pytest.param(
            KEY_USER, "kms:GenerateDataKeyWithoutPlaintext", {}, [], True, id="user-gdk-wo-plaintext"
        ),
        pytest.param(KEY_USER, "kms:ScheduleKeyDeletion", {}, [], False, id="user-cannot-administer"),
        pytest.param(
            KEY_USER,
            "kms:CreateGrant",
            {"kms:GrantIsForAWSResource": True},
            [],
            True,
            id="user-grant-for-aws-resource",
        ),
        pytest.param(
            KEY_USER,
            "kms:CreateGrant",
            {"kms:GrantIsForAWSResource": False},
            [],
            False,
            id="user-grant-not-for-aws-resource",
        ),
        pytest.param(KEY_USER, "kms:CreateGrant", {}, [], False, id="user-grant-key-absent"),
        pytest.param(OUTSIDER, "kms:Encrypt", {}, [], False, id="unnamed-role-needs-iam"),
        pytest.param(CAROL, "kms:Decrypt", {}, [IAM_ALL_KMS], True, id="other-account-with-iam"),
        pytest.param(CAROL, "kms:Decrypt", {}, [], False, id="other-account-without-iam"),
        pytest.param(
            CAROL,
            "kms:CreateGrant",
            {"kms:GrantIsForAWSResource": "true"},
            [IAM_ALL_KMS],
            True,
            id="other-account-grant-for-aws-resource",
        ),
        pytest.param(
            CAROL, "kms:ScheduleKeyDeletion", {}, [IAM_ALL_KMS], False, id="other-account-not-admin"
        ),
    ],
)
def test_console_key_policy(
    caller: Caller, action: str, context: dict[str, Any], identities: list[PolicyDocument], allowed: bool
) -> None:
    assert decide(caller, action, CONSOLE, identities, context).allowed is allowed


# --- kms:EncryptionContext:context-key (conditions-kms) ---------------------------------------------------
ROLE_APP = {"AWS": f"arn:aws:iam::{A}:role/RoleForExampleApp"}
APP = session("RoleForExampleApp")
REQUIRE_PAIR = key_policy(
    {
        "Effect": "Allow",
        "Principal": ROLE_APP,
        "Action": "kms:GenerateDataKey",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:AppName": "ExampleApp"}},
    }
)
REQUIRE_ONLY_PAIR = key_policy(
    {
        "Effect": "Allow",
        "Principal": ROLE_APP,
        "Action": "kms:GenerateDataKey",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"kms:EncryptionContext:AppName": "ExampleApp"},
            "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["AppName"]},
        },
    }
)
DENY_RESTRICTED = key_policy(
    {"Effect": "Allow", "Principal": ROLE_APP, "Action": "kms:GenerateDataKey", "Resource": "*"},
    {
        "Effect": "Deny",
        "Principal": ROLE_APP,
        "Action": "kms:GenerateDataKey",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:Stage": ["Restricted", "Production"]}},
    },
)
TWO_PAIRS = key_policy(
    {
        "Effect": "Allow",
        "Principal": ROLE_APP,
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {
            "StringEquals": {
                "kms:EncryptionContext:Department": "IT",
                "kms:EncryptionContext:Project": "Alpha",
            }
        },
    }
)
CASE_INSENSITIVE_KEY = key_policy(
    {
        "Effect": "Allow",
        "Principal": ROLE_APP,
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:Appname": "ExampleApp"}},
    }
)
KEYS_ANY = key_policy(
    {
        "Effect": "Allow",
        "Principal": ROLE_APP,
        "Action": ["kms:Encrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "AppName"}},
    }
)
KEYS_NOT_NULL = key_policy(
    {
        "Effect": "Allow",
        "Principal": ROLE_APP,
        "Action": ["kms:Encrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {"Null": {"kms:EncryptionContextKeys": False}},
    }
)
USER_VARIABLE = key_policy(
    {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{A}:role/TestTeam"},
        "Action": ["kms:Decrypt", "kms:Encrypt"],
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:user": "${aws:username}"}},
    }
)


def ec(**pairs: str) -> dict[str, Any]:
    context: dict[str, Any] = {f"kms:EncryptionContext:{k}": v for k, v in pairs.items()}
    context["kms:EncryptionContextKeys"] = list(pairs)
    return context


@pytest.mark.parametrize(
    ("policy", "action", "context", "expected"),
    [
        pytest.param(
            REQUIRE_PAIR, "kms:GenerateDataKey", ec(AppName="ExampleApp"), ALLOWED, id="pair-present"
        ),
        pytest.param(
            REQUIRE_PAIR,
            "kms:GenerateDataKey",
            ec(AppName="ExampleApp", Project="Alpha"),
            ALLOWED,
            id="other-pairs-permitted",
        ),
        pytest.param(
            REQUIRE_PAIR,
            "kms:GenerateDataKey",
            ec(AppName="exampleapp"),
            Decision(False, no_resource("kms:GenerateDataKey")),
            id="value-case-sensitive",
        ),
        pytest.param(
            REQUIRE_PAIR,
            "kms:GenerateDataKey",
            {},
            Decision(False, no_resource("kms:GenerateDataKey")),
            id="no-context",
        ),
        pytest.param(
            REQUIRE_ONLY_PAIR, "kms:GenerateDataKey", ec(AppName="ExampleApp"), ALLOWED, id="only-pair"
        ),
        pytest.param(
            REQUIRE_ONLY_PAIR,
            "kms:GenerateDataKey",
            ec(AppName="ExampleApp", Project="Alpha"),
            Decision(False, no_resource("kms:GenerateDataKey")),
            id="only-pair-extra-key-denied",
        ),
        pytest.param(
            REQUIRE_ONLY_PAIR,
            "kms:GenerateDataKey",
            {},
            Decision(False, no_resource("kms:GenerateDataKey")),
            id="only-pair-no-context-denied",
        ),
        pytest.param(
            DENY_RESTRICTED,
            "kms:GenerateDataKey",
            ec(Stage="Restricted"),
            Decision(False, REASON_DENY_RESOURCE),
            id="deny-restricted",
        ),
        pytest.param(
            DENY_RESTRICTED,
            "kms:GenerateDataKey",
            ec(Stage="Production"),
            Decision(False, REASON_DENY_RESOURCE),
            id="deny-production",
        ),
        pytest.param(
            DENY_RESTRICTED, "kms:GenerateDataKey", ec(Stage="Test"), ALLOWED, id="stage-test-allowed"
        ),
        pytest.param(
            TWO_PAIRS, "kms:Decrypt", ec(Department="IT", Project="Alpha"), ALLOWED, id="both-pairs"
        ),
        pytest.param(
            TWO_PAIRS,
            "kms:Decrypt",
            ec(Department="IT"),
            Decision(False, no_resource("kms:Decrypt")),
            id="one-pair-missing",
        ),
        pytest.param(
            CASE_INSENSITIVE_KEY,
            "kms:Decrypt",
            ec(AppName="ExampleApp"),
            ALLOWED,
            id="context-key-name-case-insensitive",
        ),
        pytest.param(
            KEYS_ANY,
            "kms:GenerateDataKey",
            ec(AppName="Helper", Project="Alpha"),
            ALLOWED,
            id="keys-any-appname",
        ),
        pytest.param(
            KEYS_ANY,
            "kms:GenerateDataKey",
            ec(Project="Alpha"),
            Decision(False, no_resource("kms:GenerateDataKey")),
            id="keys-any-without-appname",
        ),
        pytest.param(
            KEYS_ANY, "kms:Encrypt", {}, Decision(False, no_resource("kms:Encrypt")), id="keys-any-none"
        ),
        pytest.param(KEYS_NOT_NULL, "kms:Encrypt", ec(x="y"), ALLOWED, id="require-any-context"),
        pytest.param(
            KEYS_NOT_NULL,
            "kms:Encrypt",
            {},
            Decision(False, no_resource("kms:Encrypt")),
            id="require-any-context-missing",
        ),
    ],
)
def test_encryption_context_conditions(
    policy: PolicyDocument, action: str, context: dict[str, Any], expected: Decision
) -> None:
    assert decide(APP, action, policy, [], context) == expected


def test_encryption_context_with_username_variable() -> None:
    """A user federated into TestTeam may decrypt only data whose context names them (aws:username is
    present for IAM users; the example's role session here stands for a user-named caller)."""
    bob = Caller(
        f"arn:aws:sts::{A}:assumed-role/TestTeam/bob",
        A,
        "AssumedRole",
        "AROATEST:bob",
        "bob",
        f"arn:aws:iam::{A}:role/TestTeam",
        {},
    )
    assert decide(bob, "kms:Decrypt", USER_VARIABLE, [], ec(user="bob")) == ALLOWED
    assert not decide(bob, "kms:Decrypt", USER_VARIABLE, [], ec(user="alice")).allowed


# --- kms:CallerAccount + kms:ViaService (AWS managed key for Amazon EBS) ---------------------------------
EBS = key_policy(
    {
        "Sid": "Allow access through EBS for all principals in the account that are authorized to use EBS",
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Condition": {
            "StringEquals": {"kms:CallerAccount": A, "kms:ViaService": "ec2.us-west-2.amazonaws.com"}
        },
        "Action": [
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:CreateGrant",
            "kms:DescribeKey",
        ],
        "Resource": "*",
    }
)


@pytest.mark.parametrize(
    ("caller", "context", "allowed"),
    [
        pytest.param(user("dev"), {"kms:ViaService": "ec2.us-west-2.amazonaws.com"}, True, id="via-ebs"),
        pytest.param(user("dev"), {}, False, id="direct-call"),
        pytest.param(
            user("dev"), {"kms:ViaService": "s3.us-west-2.amazonaws.com"}, False, id="via-other-service"
        ),
        pytest.param(
            user("dev"), {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}, False, id="via-other-region"
        ),
        pytest.param(
            user("carol", B), {"kms:ViaService": "ec2.us-west-2.amazonaws.com"}, False, id="other-account"
        ),
    ],
)
def test_caller_account_and_via_service(caller: Caller, context: dict[str, Any], allowed: bool) -> None:
    assert (
        decide(caller, "kms:Decrypt", EBS, [IAM_ALL_KMS] if caller.account_id == B else [], context).allowed
        is allowed
    )


# --- kms:EncryptionAlgorithm -----------------------------------------------------------------------------
ONE_ALGORITHM = key_policy(
    ENABLE_IAM,
    {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{A}:role/ExampleRole"},
        "Action": ["kms:Encrypt", "kms:Decrypt"],
        "Resource": "*",
    },
    {
        "Sid": "Allow only one encryption algorithm with this asymmetric KMS key",
        "Effect": "Deny",
        "Principal": {"AWS": f"arn:aws:iam::{A}:role/ExampleRole"},
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*"],
        "Resource": "*",
        "Condition": {"StringNotEquals": {"kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}},
    },
)
ONLY_SYMMETRIC_IAM = iam(
    {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
    {
        "Sid": "AllowOnlySymmetricAlgorithm",
        "Effect": "Deny",
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
        "Resource": f"arn:aws:kms:us-west-2:{A}:key/*",
        "Condition": {"StringNotEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}},
    },
)


@pytest.mark.parametrize(
    ("policy", "identities", "algorithm", "expected"),
    [
        pytest.param(ONE_ALGORITHM, [], "RSAES_OAEP_SHA_256", ALLOWED, id="allowed-algorithm"),
        pytest.param(
            ONE_ALGORITHM, [], "RSAES_OAEP_SHA_1", Decision(False, REASON_DENY_RESOURCE), id="other-algorithm"
        ),
        pytest.param(DEFAULT, [ONLY_SYMMETRIC_IAM], "SYMMETRIC_DEFAULT", ALLOWED, id="iam-symmetric-only-ok"),
        pytest.param(
            DEFAULT,
            [ONLY_SYMMETRIC_IAM],
            "RSAES_OAEP_SHA_256",
            Decision(False, REASON_DENY_IDENTITY),
            id="iam-symmetric-only-denies-rsa",
        ),
    ],
)
def test_encryption_algorithm(
    policy: PolicyDocument, identities: list[PolicyDocument], algorithm: str, expected: Decision
) -> None:
    caller = session("ExampleRole")
    assert (
        decide(caller, "kms:Encrypt", policy, identities, {"kms:EncryptionAlgorithm": algorithm}) == expected
    )


# --- Grants: kms:GrantIsForAWSResource, kms:GrantOperations ----------------------------------------------
EXAMPLE_ROLE = {"AWS": f"arn:aws:iam::{A}:role/ExampleRole"}
GRANT_OPERATIONS = key_policy(
    {
        "Effect": "Allow",
        "Principal": EXAMPLE_ROLE,
        "Action": "kms:CreateGrant",
        "Resource": "*",
        "Condition": {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Encrypt", "ReEncryptTo"]}},
    }
)
GRANTEE = key_policy(
    {
        "Effect": "Allow",
        "Principal": EXAMPLE_ROLE,
        "Action": "kms:CreateGrant",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:GranteePrincipal": f"arn:aws:iam::{A}:role/LimitedAdminRole"}},
    }
)


@pytest.mark.parametrize(
    ("policy", "context", "allowed"),
    [
        pytest.param(GRANT_OPERATIONS, {"kms:GrantOperations": ["Encrypt"]}, True, id="ops-subset"),
        pytest.param(
            GRANT_OPERATIONS, {"kms:GrantOperations": ["Encrypt", "ReEncryptTo"]}, True, id="ops-equal"
        ),
        pytest.param(
            GRANT_OPERATIONS, {"kms:GrantOperations": ["Encrypt", "Decrypt"]}, False, id="ops-extra"
        ),
        pytest.param(
            GRANTEE,
            {"kms:GranteePrincipal": f"arn:aws:iam::{A}:role/LimitedAdminRole"},
            True,
            id="grantee-ok",
        ),
        pytest.param(
            GRANTEE, {"kms:GranteePrincipal": f"arn:aws:iam::{A}:role/Other"}, False, id="grantee-other"
        ),
    ],
)
def test_grant_conditions(policy: PolicyDocument, context: dict[str, Any], allowed: bool) -> None:
    assert decide(session("ExampleRole"), "kms:CreateGrant", policy, [], context).allowed is allowed


# --- Aliases: kms:RequestAlias, kms:ResourceAliases ------------------------------------------------------
REQUEST_ALIAS = key_policy(
    {
        "Sid": "Key policy using a request alias condition",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{A}:role/developer"},
        "Action": "kms:GenerateDataKey",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:RequestAlias": "alias/finance-key"}},
    }
)
RESOURCE_ALIAS_ANY = iam(
    {
        "Sid": "AliasBasedIAMPolicy",
        "Effect": "Allow",
        "Action": "kms:GenerateDataKey",
        "Resource": [f"arn:aws:kms:*:{A}:key/*", f"arn:aws:kms:*:{B}:key/*"],
        "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/finance-key"}},
    }
)
RESOURCE_ALIAS_ALL_TEST = iam(
    {
        "Sid": "AliasBasedIAMPolicy",
        "Effect": "Allow",
        "Action": ["kms:EnableKey", "kms:DisableKey"],
        "Resource": f"arn:aws:kms:*:{A}:key/*",
        "Condition": {
            "ForAllValues:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]},
            "ForAnyValue:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]},
        },
    }
)


@pytest.mark.parametrize(
    ("action", "policy", "identities", "context", "allowed"),
    [
        pytest.param(
            "kms:GenerateDataKey",
            REQUEST_ALIAS,
            [],
            {"kms:RequestAlias": "alias/finance-key"},
            True,
            id="request-alias",
        ),
        pytest.param("kms:GenerateDataKey", REQUEST_ALIAS, [], {}, False, id="request-by-key-id"),
        pytest.param(
            "kms:GenerateDataKey",
            REQUEST_ALIAS,
            [],
            {"kms:RequestAlias": "alias/other"},
            False,
            id="request-other-alias",
        ),
        pytest.param(
            "kms:GenerateDataKey",
            DEFAULT,
            [RESOURCE_ALIAS_ANY],
            {"kms:ResourceAliases": ["alias/finance-key", "alias/x"]},
            True,
            id="resource-aliases-any",
        ),
        pytest.param(
            "kms:GenerateDataKey",
            DEFAULT,
            [RESOURCE_ALIAS_ANY],
            {"kms:ResourceAliases": ["alias/x"]},
            False,
            id="resource-aliases-none-matching",
        ),
        pytest.param(
            "kms:GenerateDataKey", DEFAULT, [RESOURCE_ALIAS_ANY], {}, False, id="resource-no-aliases"
        ),
        pytest.param(
            "kms:EnableKey",
            DEFAULT,
            [RESOURCE_ALIAS_ALL_TEST],
            {"kms:ResourceAliases": ["alias/Test1", "alias/myTest"]},
            True,
            id="all-aliases-test",
        ),
        pytest.param(
            "kms:EnableKey",
            DEFAULT,
            [RESOURCE_ALIAS_ALL_TEST],
            {"kms:ResourceAliases": ["alias/Test1", "alias/prod"]},
            False,
            id="one-alias-not-test",
        ),
        pytest.param(
            "kms:EnableKey",
            DEFAULT,
            [RESOURCE_ALIAS_ALL_TEST],
            {"kms:ResourceAliases": []},
            False,
            id="no-aliases-not-allowed",
        ),
    ],
)
def test_alias_conditions(
    action: str,
    policy: PolicyDocument,
    identities: list[PolicyDocument],
    context: dict[str, Any],
    allowed: bool,
) -> None:
    assert decide(session("developer"), action, policy, identities, context).allowed is allowed


# --- ABAC: aws:ResourceTag, aws:RequestTag, aws:TagKeys, aws:PrincipalTag (abac, tag-authorization) --------
ABAC_IAM = iam(
    {
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"],
        "Resource": f"arn:aws:kms:*:{A}:key/*",
        "Condition": {"StringEquals": {"aws:ResourceTag/Project": "${aws:PrincipalTag/Project}"}},
    }
)
TAG_ONLY_PURPOSE = iam(
    {
        "Effect": "Allow",
        "Action": "kms:TagResource",
        "Resource": f"arn:aws:kms:*:{A}:key/*",
        "Condition": {
            "ForAllValues:StringEquals": {"aws:TagKeys": ["Purpose"]},
            "StringEquals": {"aws:RequestTag/Purpose": ["Test", "Prod"]},
        },
    }
)
PRINCIPAL_TAG_KEY_POLICY = key_policy(
    ENABLE_IAM,
    {
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": ["kms:Encrypt", "kms:Decrypt"],
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalTag/Department": "Finance", "kms:CallerAccount": A}},
    },
)


@pytest.mark.parametrize(
    ("caller", "action", "policy", "identities", "context", "allowed"),
    [
        pytest.param(
            session("Dev", tags={"Project": "Alpha"}),
            "kms:Encrypt",
            DEFAULT,
            [ABAC_IAM],
            {"aws:ResourceTag/Project": "Alpha"},
            True,
            id="abac-matching-tag",
        ),
        pytest.param(
            session("Dev", tags={"Project": "Alpha"}),
            "kms:Encrypt",
            DEFAULT,
            [ABAC_IAM],
            {"aws:ResourceTag/Project": "Beta"},
            False,
            id="abac-other-project",
        ),
        pytest.param(
            session("Dev", tags={"Project": "Alpha"}),
            "kms:Encrypt",
            DEFAULT,
            [ABAC_IAM],
            {},
            False,
            id="abac-untagged-key",
        ),
        pytest.param(
            session("Dev"),
            "kms:Encrypt",
            DEFAULT,
            [ABAC_IAM],
            {"aws:ResourceTag/Project": "Alpha"},
            False,
            id="abac-untagged-principal",
        ),
        pytest.param(
            user("ops"),
            "kms:TagResource",
            DEFAULT,
            [TAG_ONLY_PURPOSE],
            {"aws:TagKeys": ["Purpose"], "aws:RequestTag/Purpose": "Test"},
            True,
            id="tag-allowed-key",
        ),
        pytest.param(
            user("ops"),
            "kms:TagResource",
            DEFAULT,
            [TAG_ONLY_PURPOSE],
            {
                "aws:TagKeys": ["Purpose", "Owner"],
                "aws:RequestTag/Purpose": "Test",
                "aws:RequestTag/Owner": "me",
            },
            False,
            id="tag-extra-key",
        ),
        pytest.param(
            user("ops"),
            "kms:TagResource",
            DEFAULT,
            [TAG_ONLY_PURPOSE],
            {"aws:TagKeys": ["Purpose"], "aws:RequestTag/Purpose": "Dev"},
            False,
            id="tag-bad-value",
        ),
        pytest.param(
            user("fin", tags={"Department": "Finance"}),
            "kms:Encrypt",
            PRINCIPAL_TAG_KEY_POLICY,
            [],
            {},
            True,
            id="principal-tag-in-key-policy",
        ),
        pytest.param(
            user("eng", tags={"Department": "Engineering"}),
            "kms:Encrypt",
            PRINCIPAL_TAG_KEY_POLICY,
            [],
            {},
            False,
            id="principal-tag-other-department",
        ),
        pytest.param(
            user("fin", B, tags={"Department": "Finance"}),
            "kms:Encrypt",
            PRINCIPAL_TAG_KEY_POLICY,
            [IAM_ALL_KMS],
            {},
            False,
            id="principal-tag-other-account",
        ),
    ],
)
def test_tags_and_abac(
    caller: Caller,
    action: str,
    policy: PolicyDocument,
    identities: list[PolicyDocument],
    context: dict[str, Any],
    allowed: bool,
) -> None:
    assert decide(caller, action, policy, identities, context).allowed is allowed


# --- aws:SourceIp -----------------------------------------------------------------------------------------
SOURCE_IP = key_policy(
    ENABLE_IAM,
    {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {
            "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]},
            "Bool": {"aws:ViaAWSService": "false"},
        },
    },
)


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        pytest.param({"aws:SourceIp": "192.0.2.10", "aws:ViaAWSService": False}, ALLOWED, id="inside-v4"),
        pytest.param({"aws:SourceIp": "2001:db8::10", "aws:ViaAWSService": False}, ALLOWED, id="inside-v6"),
        pytest.param(
            {"aws:SourceIp": "198.51.100.7", "aws:ViaAWSService": False},
            Decision(False, REASON_DENY_RESOURCE),
            id="outside",
        ),
        pytest.param(
            {"aws:SourceIp": "198.51.100.7", "aws:ViaAWSService": True}, ALLOWED, id="outside-via-service"
        ),
    ],
)
def test_source_ip(context: dict[str, Any], expected: Decision) -> None:
    assert decide(user("dev"), "kms:Decrypt", SOURCE_IP, [IAM_ALL_KMS], context) == expected


# --- Numeric and request-parameter conditions ---------------------------------------------------------------
PENDING_WINDOW = key_policy(
    ENABLE_IAM,
    {
        "Effect": "Deny",
        "Action": "kms:ScheduleKeyDeletion",
        "Principal": "*",
        "Resource": "*",
        "Condition": {"NumericLessThanEquals": {"kms:ScheduleKeyDeletionPendingWindowInDays": "21"}},
    },
)
REPLICA_REGION = key_policy(
    {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{A}:role/Administrator"},
        "Action": "kms:ReplicateKey",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ReplicaRegion": ["us-east-1", "eu-west-3", "ap-southeast-2"]}},
    }
)
RSA_ONLY_CREATE = iam(
    {
        "Effect": "Allow",
        "Action": "kms:CreateKey",
        "Resource": "*",
        "Condition": {"StringLike": {"kms:KeySpec": "RSA_*"}},
    }
)
NO_BYPASS = iam(
    {"Effect": "Allow", "Action": ["kms:CreateKey", "kms:PutKeyPolicy"], "Resource": "*"},
    {
        "Effect": "Deny",
        "Action": ["kms:CreateKey", "kms:PutKeyPolicy"],
        "Resource": "*",
        "Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": True}},
    },
)


@pytest.mark.parametrize(
    ("caller", "action", "policy", "identities", "context", "allowed"),
    [
        pytest.param(
            ROOT,
            "kms:ScheduleKeyDeletion",
            PENDING_WINDOW,
            [],
            {"kms:ScheduleKeyDeletionPendingWindowInDays": 7},
            False,
            id="window-too-short",
        ),
        pytest.param(
            ROOT,
            "kms:ScheduleKeyDeletion",
            PENDING_WINDOW,
            [],
            {"kms:ScheduleKeyDeletionPendingWindowInDays": 30},
            True,
            id="window-long-enough",
        ),
        pytest.param(
            session("Administrator"),
            "kms:ReplicateKey",
            REPLICA_REGION,
            [],
            {"kms:ReplicaRegion": "eu-west-3"},
            True,
            id="replica-region-listed",
        ),
        pytest.param(
            session("Administrator"),
            "kms:ReplicateKey",
            REPLICA_REGION,
            [],
            {"kms:ReplicaRegion": "us-west-1"},
            False,
            id="replica-region-other",
        ),
        pytest.param(
            user("dev"),
            "kms:CreateKey",
            None,
            [RSA_ONLY_CREATE],
            {"kms:KeySpec": "RSA_2048"},
            True,
            id="create-rsa-key",
        ),
        pytest.param(
            user("dev"),
            "kms:CreateKey",
            None,
            [RSA_ONLY_CREATE],
            {"kms:KeySpec": "SYMMETRIC_DEFAULT"},
            False,
            id="create-symmetric-denied",
        ),
        pytest.param(
            user("dev"),
            "kms:CreateKey",
            None,
            [NO_BYPASS],
            {"kms:BypassPolicyLockoutSafetyCheck": True},
            False,
            id="bypass-denied",
        ),
        pytest.param(
            user("dev"),
            "kms:CreateKey",
            None,
            [NO_BYPASS],
            {"kms:BypassPolicyLockoutSafetyCheck": False},
            True,
            id="no-bypass-allowed",
        ),
    ],
)
def test_request_parameter_conditions(
    caller: Caller,
    action: str,
    policy: PolicyDocument | None,
    identities: list[PolicyDocument],
    context: dict[str, Any],
    allowed: bool,
) -> None:
    assert decide(caller, action, policy, identities, context).allowed is allowed


# --- Lockout safety check: does the new policy still let the caller call PutKeyPolicy? -------------------
def lockout_check_passes(
    caller: Caller, new_policy: PolicyDocument, identities: Sequence[PolicyDocument]
) -> bool:
    request = Request(
        "kms:PutKeyPolicy",
        KEY,
        A,
        {"kms:CallerAccount": caller.account_id, "kms:BypassPolicyLockoutSafetyCheck": False},
    )
    return authorize(caller, request, key_policy=new_policy, identity_policies=identities).allowed


ONLY_ENCRYPT_FOR_ADMIN = key_policy(
    {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{A}:role/Admin"},
        "Action": "kms:Encrypt",
        "Resource": "*",
    }
)
ADMIN_PUT = key_policy(
    {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{A}:role/Admin"},
        "Action": ["kms:Put*", "kms:Get*"],
        "Resource": "*",
    }
)
NULL_BYPASS = key_policy(
    {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{A}:role/Admin"},
        "Action": "kms:PutKeyPolicy",
        "Resource": "*",
        "Condition": {"Null": {"kms:BypassPolicyLockoutSafetyCheck": True}},
    }
)
DENY_EVERYONE_PUT = key_policy(
    ENABLE_IAM, {"Effect": "Deny", "Principal": "*", "Action": "kms:PutKeyPolicy", "Resource": "*"}
)


@pytest.mark.parametrize(
    ("caller", "policy", "identities", "passes"),
    [
        pytest.param(session("Admin"), DEFAULT, [IAM_ALL_KMS], True, id="default-policy-with-iam-admin"),
        pytest.param(session("Admin"), DEFAULT, [], False, id="default-policy-without-iam"),
        pytest.param(ROOT, DEFAULT, [], True, id="root-default-policy"),
        pytest.param(session("Admin"), ONLY_ENCRYPT_FOR_ADMIN, [IAM_ALL_KMS], False, id="would-lock-out"),
        pytest.param(session("Admin"), ADMIN_PUT, [], True, id="admin-keeps-put"),
        pytest.param(session("Admin"), NULL_BYPASS, [], False, id="null-bypass-when-parameter-sent"),
        pytest.param(session("Admin"), CONSOLE, [IAM_ALL_KMS], True, id="console-policy-iam-admin"),
        pytest.param(ADMIN, CONSOLE, [], True, id="console-policy-key-admin"),
        pytest.param(KEY_USER, CONSOLE, [], False, id="console-policy-key-user"),
        pytest.param(ROOT, DENY_EVERYONE_PUT, [], False, id="explicit-deny-locks-out"),
    ],
)
def test_lockout_safety_check(
    caller: Caller, policy: PolicyDocument, identities: list[PolicyDocument], passes: bool
) -> None:
    assert lockout_check_passes(caller, policy, identities) is passes
