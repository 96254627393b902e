"""Who may do what, enforced as AWS enforces it: key policies (direct, or delegating to IAM), identity
policies, grants, cross-account use, roles assumed through STS, and the policy lockout safety check —
each driven against a running server by several principals."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import REGION, Server
from tests.e2e.util import retry


def err(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    e = exc.value.response["Error"]
    return e["Code"], e.get("Message", "")


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def root_statement(account: str) -> dict[str, Any]:
    return {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def new_user(server: Server, iam: Any, account: str, **identity: Any) -> tuple[str, Any]:
    """A user with an access key (and an inline identity policy if given); returns (arn, kms client)."""
    name = "u-" + uuid.uuid4().hex[:10]
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if identity:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy(identity))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, server.client(access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])


@pytest.fixture
def iam(server: Server) -> Any:
    return server.client("iam")


def test_administrator_manages_but_cannot_use(server: Server, kms: Any, iam: Any) -> None:
    admin_arn, admin = new_user(server, iam, server.account_id)
    user_arn, user = new_user(server, iam, server.account_id)
    from openkms.auth.policy import build_console_key_policy

    doc = build_console_key_policy(
        server.account_id,
        key_type="SYMMETRIC",
        origin="AWS_KMS",
        multi_region=False,
        administrators=[admin_arn],
        allow_admin_delete=True,
        users=[user_arn],
        other_accounts=[],
    )
    key = kms.create_key(Policy=doc)["KeyMetadata"]
    # The key administrator manages the key...
    assert admin.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyId"] == key["KeyId"]
    admin.disable_key(KeyId=key["KeyId"])
    admin.enable_key(KeyId=key["KeyId"])
    admin.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "owner", "TagValue": "admin"}])
    # ...but may not use it.
    with pytest.raises(ClientError) as exc:
        admin.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    assert err(exc) == (
        "AccessDeniedException",
        f"User: {admin_arn} is not authorized to perform: kms:Encrypt on resource: {key['Arn']} "
        "because no identity-based policy allows the kms:Encrypt action",
    )
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # The key user uses it, and may not manage it.
    blob = user.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert user.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    with pytest.raises(ClientError) as exc:
        user.disable_key(KeyId=key["KeyId"])
    assert err(exc)[0] == "AccessDeniedException"
    # A user the policy does not name gets nothing.
    _, stranger = new_user(server, iam, server.account_id)
    with pytest.raises(ClientError) as exc:
        stranger.decrypt(CiphertextBlob=blob)
    assert err(exc)[0] == "AccessDeniedException"


def test_encrypt_only_with_a_given_encryption_context(server: Server, kms: Any, iam: Any) -> None:
    user_arn, user = new_user(server, iam, server.account_id)
    key = kms.create_key(
        Policy=policy(
            root_statement(server.account_id),
            {
                "Sid": "finance only",
                "Effect": "Allow",
                "Principal": {"AWS": user_arn},
                "Action": ["kms:Encrypt", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:EncryptionContext:dept": "finance"}},
            },
        )
    )["KeyMetadata"]
    blob = user.encrypt(KeyId=key["KeyId"], Plaintext=b"ok", EncryptionContext={"dept": "finance"})[
        "CiphertextBlob"
    ]
    assert user.decrypt(CiphertextBlob=blob, EncryptionContext={"dept": "finance"})["Plaintext"] == b"ok"
    for context in ({}, {"dept": "hr"}, {"Dept": "finance"} if False else {"dept": "Finance"}):
        with pytest.raises(ClientError) as exc:
            user.encrypt(KeyId=key["KeyId"], Plaintext=b"no", EncryptionContext=context)
        assert err(exc)[0] == "AccessDeniedException"


def test_resource_aliases_follow_alias_changes_at_once(server: Server, kms: Any, iam: Any) -> None:
    """kms:ResourceAliases sees CreateAlias, UpdateAlias and DeleteAlias on the next request, also when
    the key was just used (its cached entry holds the alias names)."""
    user_arn, user = new_user(server, iam, server.account_id)
    alias = "alias/ra-" + uuid.uuid4().hex[:10]
    allow = {
        "Effect": "Allow",
        "Principal": {"AWS": user_arn},
        "Action": "kms:Encrypt",
        "Resource": "*",
        "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}},
    }
    first = kms.create_key(Policy=policy(root_statement(server.account_id), allow))["KeyMetadata"]["KeyId"]
    second = kms.create_key(Policy=policy(root_statement(server.account_id), allow))["KeyMetadata"]["KeyId"]

    def allowed(key_id: str) -> bool:
        try:
            user.encrypt(KeyId=key_id, Plaintext=b"x")
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDeniedException"
            return False
        return True

    assert not allowed(first) and not allowed(second)
    kms.create_alias(AliasName=alias, TargetKeyId=first)
    assert allowed(first) and not allowed(second)
    kms.update_alias(AliasName=alias, TargetKeyId=second)
    assert not allowed(first) and allowed(second)
    kms.delete_alias(AliasName=alias)
    assert not allowed(first) and not allowed(second)


def test_re_encrypt_on_same_key_condition(server: Server, kms: Any, iam: Any) -> None:
    """kms:ReEncryptOnSameKey compares the keys themselves: the ciphertext's key (SourceKeyId not
    needed) and the destination named by id, ARN or alias."""
    user_arn, user = new_user(server, iam, server.account_id)
    statements = [
        root_statement(server.account_id),
        {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "kms:Encrypt", "Resource": "*"},
        {
            "Effect": "Allow",
            "Principal": {"AWS": user_arn},
            "Action": "kms:ReEncrypt*",
            "Resource": "*",
            "Condition": {"Bool": {"kms:ReEncryptOnSameKey": "true"}},
        },
    ]
    first = kms.create_key(Policy=policy(*statements))["KeyMetadata"]
    second = kms.create_key(Policy=policy(*statements))["KeyMetadata"]
    alias = "alias/same-" + uuid.uuid4().hex[:10]
    kms.create_alias(AliasName=alias, TargetKeyId=first["KeyId"])
    blob = user.encrypt(KeyId=first["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    for destination in (first["KeyId"], first["Arn"], alias):
        out = user.re_encrypt(CiphertextBlob=blob, DestinationKeyId=destination)
        assert out["SourceKeyId"] == out["KeyId"] == first["Arn"]
    out = user.re_encrypt(CiphertextBlob=blob, SourceKeyId=alias, DestinationKeyId=first["Arn"])
    assert out["KeyId"] == first["Arn"]
    for extra in ({}, {"SourceKeyId": first["KeyId"]}):
        with pytest.raises(ClientError) as exc:
            user.re_encrypt(CiphertextBlob=blob, DestinationKeyId=second["KeyId"], **extra)
        assert err(exc)[0] == "AccessDeniedException"


def test_explicit_deny_wins(server: Server, kms: Any, iam: Any) -> None:
    user_arn, user = new_user(server, iam, server.account_id, Effect="Allow", Action="kms:*", Resource="*")
    key = kms.create_key(
        Policy=policy(
            root_statement(server.account_id),
            {"Effect": "Deny", "Principal": {"AWS": user_arn}, "Action": "kms:Decrypt", "Resource": "*"},
        )
    )["KeyMetadata"]
    blob = user.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(ClientError) as exc:
        user.decrypt(CiphertextBlob=blob)
    assert err(exc) == (
        "AccessDeniedException",
        f"User: {user_arn} is not authorized to perform: kms:Decrypt on resource: {key['Arn']} "
        "with an explicit deny in a resource-based policy",
    )


def test_key_less_actions_need_an_identity_policy(server: Server, iam: Any) -> None:
    user_arn, user = new_user(server, iam, server.account_id)
    with pytest.raises(ClientError) as exc:
        user.create_key()
    assert err(exc) == (
        "AccessDeniedException",
        f"User: {user_arn} is not authorized to perform: kms:CreateKey on resource: * "
        "because no identity-based policy allows the kms:CreateKey action",
    )
    _, allowed = new_user(
        server, iam, server.account_id, Effect="Allow", Action=["kms:CreateKey", "kms:ListKeys"], Resource="*"
    )
    allowed.create_key(KeySpec="SYMMETRIC_DEFAULT")
    allowed.list_keys()
    with pytest.raises(ClientError) as exc:
        allowed.create_key(Tags=[{"TagKey": "a", "TagValue": "b"}])
    assert "kms:TagResource" in err(exc)[1]


def test_cross_account_needs_both_halves(server: Server, kms: Any, iam: Any) -> None:
    other = server.new_account()
    other_iam = server.client("iam", access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"])
    bob_arn, bob = new_user(server, other_iam, other["AccountId"])
    key = kms.create_key(
        Policy=policy(
            root_statement(server.account_id),
            {
                "Sid": "Allow use of the key",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{other['AccountId']}:root"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
                "Resource": "*",
            },
        )
    )["KeyMetadata"]
    # The key policy allows the other account, but bob's own account does not allow him.
    with pytest.raises(ClientError) as exc:
        bob.encrypt(KeyId=key["Arn"], Plaintext=b"x")
    assert err(exc) == (
        "AccessDeniedException",
        f"User: {bob_arn} is not authorized to perform: kms:Encrypt on resource: {key['Arn']} "
        "because no identity-based policy allows the kms:Encrypt action",
    )
    other_iam.put_user_policy(
        UserName=bob_arn.rsplit("/", 1)[1],
        PolicyName="use-a-key",
        PolicyDocument=policy(
            {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": key["Arn"]}
        ),
    )

    def works() -> bytes:
        blob: bytes = bob.encrypt(KeyId=key["Arn"], Plaintext=b"across")["CiphertextBlob"]
        return blob

    blob = retry(works)
    assert bob.decrypt(CiphertextBlob=blob)["Plaintext"] == b"across"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"across"
    # The other account's administrator is allowed by its IAM policy, but not for what the key policy omits.
    other_admin = server.client(access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"])
    with pytest.raises(ClientError) as exc:
        other_admin.disable_key(KeyId=key["Arn"])
    assert err(exc)[0] in ("AccessDeniedException", "NotFoundException")
    # A key whose policy does not name the other account.
    private = kms.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as exc:
        other_admin.encrypt(KeyId=private["Arn"], Plaintext=b"x")
    assert err(exc)[1].endswith("because no resource-based policy allows the kms:Encrypt action")


def test_grant_with_token_then_retired(server: Server, kms: Any, iam: Any) -> None:
    carol_arn, carol = new_user(server, iam, server.account_id)
    key = kms.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as exc:
        carol.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    assert err(exc)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=carol_arn, Operations=["Encrypt"], DryRun=True)
    assert err(exc) == (
        "DryRunOperationException",
        "The request would have succeeded, but the DryRun option is set.",
    )
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []
    with pytest.raises(ClientError) as exc:
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=carol_arn, Operations=["Sign"])
    assert err(exc)[0] == "ValidationException"

    grant = kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=carol_arn,
        Operations=["Encrypt", "Decrypt", "RetireGrant"],
        Constraints={"EncryptionContextSubset": {"app": "billing"}},
        Name="carol-billing",
    )
    assert set(grant) >= {"GrantId", "GrantToken"}
    assert len(grant["GrantId"]) == 64
    again = kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=carol_arn,
        Operations=["Encrypt", "Decrypt", "RetireGrant"],
        Constraints={"EncryptionContextSubset": {"app": "billing"}},
        Name="carol-billing",
    )
    assert again["GrantId"] == grant["GrantId"]
    tokens = [grant["GrantToken"]]
    blob = carol.encrypt(
        KeyId=key["KeyId"],
        Plaintext=b"granted",
        EncryptionContext={"app": "billing", "x": "y"},
        GrantTokens=tokens,
    )["CiphertextBlob"]
    assert (
        carol.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "billing", "x": "y"})["Plaintext"]
        == b"granted"
    )
    with pytest.raises(ClientError) as exc:  # outside the grant's constraint
        carol.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"app": "payroll"})
    assert err(exc)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:  # not a granted operation
        carol.describe_key(KeyId=key["KeyId"])
    assert err(exc)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        carol.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=["not-a-token"])
    assert err(exc)[0] == "InvalidGrantTokenException"

    entries = kms.list_grants(KeyId=key["KeyId"])["Grants"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["GrantId"] == grant["GrantId"]
    assert entry["GranteePrincipal"] == carol_arn
    assert entry["IssuingAccount"] == f"arn:aws:iam::{server.account_id}:root"
    assert entry["Constraints"] == {"EncryptionContextSubset": {"app": "billing"}}
    assert entry["Name"] == "carol-billing"

    carol.retire_grant(GrantToken=grant["GrantToken"])
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []
    with pytest.raises(ClientError) as exc:
        carol.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"app": "billing"})
    assert err(exc)[0] == "AccessDeniedException"

    # RevokeGrant by the key's administrator.
    second = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=carol_arn, Operations=["DescribeKey"])
    carol.describe_key(KeyId=key["KeyId"])
    kms.revoke_grant(KeyId=key["KeyId"], GrantId=second["GrantId"])
    with pytest.raises(ClientError) as exc:
        carol.describe_key(KeyId=key["KeyId"])
    assert err(exc)[0] == "AccessDeniedException"


def test_retiring_principal_and_list_retirable_grants(server: Server, kms: Any, iam: Any) -> None:
    grantee_arn, _ = new_user(server, iam, server.account_id)
    retirer_arn, retirer = new_user(
        server, iam, server.account_id, Effect="Allow", Action="kms:ListRetirableGrants", Resource="*"
    )
    key = kms.create_key()["KeyMetadata"]
    grant = kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=grantee_arn,
        RetiringPrincipal=retirer_arn,
        Operations=["Decrypt"],
    )
    listed = retirer.list_retirable_grants(RetiringPrincipal=retirer_arn)["Grants"]
    assert [g["GrantId"] for g in listed] == [grant["GrantId"]]
    assert listed[0]["RetiringPrincipal"] == retirer_arn
    retirer.retire_grant(KeyId=key["Arn"], GrantId=grant["GrantId"])
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []


def test_lockout_safety_check(server: Server, kms: Any, iam: Any) -> None:
    someone_arn, _ = new_user(server, iam, server.account_id)
    locking = policy(
        {"Effect": "Allow", "Principal": {"AWS": someone_arn}, "Action": "kms:*", "Resource": "*"}
    )
    message = "The new key policy will not allow you to update the key policy in the future."
    with pytest.raises(ClientError) as exc:
        kms.create_key(Policy=locking)
    assert err(exc) == ("MalformedPolicyDocumentException", message)
    key = kms.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as exc:
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=locking)
    assert err(exc) == ("MalformedPolicyDocumentException", message)
    # The policy is unchanged; with the bypass flag the caller really locks itself out.
    assert json.loads(kms.get_key_policy(KeyId=key["KeyId"])["Policy"])["Id"] == "key-default-1"
    kms.put_key_policy(
        KeyId=key["KeyId"], PolicyName="default", Policy=locking, BypassPolicyLockoutSafetyCheck=True
    )
    with pytest.raises(ClientError) as exc:
        kms.get_key_policy(KeyId=key["KeyId"])
    assert err(exc)[0] == "AccessDeniedException"


def test_policy_naming_an_unknown_principal(server: Server, kms: Any) -> None:
    bad = policy(
        root_statement(server.account_id),
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:user/nobody-{uuid.uuid4().hex[:6]}"},
            "Action": "kms:Encrypt",
            "Resource": "*",
        },
    )
    with pytest.raises(ClientError) as exc:
        kms.create_key(Policy=bad)
    assert err(exc) == (
        "MalformedPolicyDocumentException",
        "Policy contains a statement with one or more invalid principals.",
    )


def test_role_assumed_through_sts(server: Server, kms: Any, iam: Any) -> None:
    role_name = "r-" + uuid.uuid4().hex[:8]
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"},
            "Action": "sts:AssumeRole",
        }
    )
    role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    key = kms.create_key(
        Policy=policy(
            root_statement(server.account_id),
            {
                "Effect": "Allow",
                "Principal": {"AWS": role_arn},
                "Action": ["kms:Encrypt", "kms:Decrypt"],
                "Resource": "*",
            },
        )
    )["KeyMetadata"]
    out = server.aws(
        "sts", "assume-role", "--role-arn", role_arn, "--role-session-name", "worker", "--region", REGION
    )
    creds = json.loads(out.stdout)["Credentials"]
    import boto3
    from botocore.config import Config

    session_kms = boto3.client(
        "kms",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=Config(retries={"max_attempts": 1}),
    )
    blob = session_kms.encrypt(KeyId=key["KeyId"], Plaintext=b"from a role")["CiphertextBlob"]
    assert session_kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"from a role"
    with pytest.raises(ClientError) as exc:
        session_kms.disable_key(KeyId=key["KeyId"])
    code, message = err(exc)
    assert code == "AccessDeniedException"
    assert message.startswith(
        f"User: arn:aws:sts::{server.account_id}:assumed-role/{role_name}/worker is not authorized"
    )
