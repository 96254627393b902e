"""Key policy conditions on CreateGrant: ``kms:EncryptionContext:<key>`` and
``kms:EncryptionContextKeys`` describe the new grant's encryption context constraints, so a policy can
require that every grant a user makes is limited to a context (AWS's condition keys reference)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server
from tests.e2e.test_authorization import new_user, policy, root_statement


@pytest.fixture
def iam(server: Server) -> Any:
    return server.client("iam")


def test_create_grant_conditions_see_the_grant_constraints(server: Server, kms: Any, iam: Any) -> None:
    user_arn, user_kms = new_user(server, iam, server.account_id)  # no IAM policy: the key policy decides
    grantee_arn, _ = new_user(server, iam, server.account_id)
    allow_hr_only = {
        "Effect": "Allow",
        "Principal": {"AWS": user_arn},
        "Action": "kms:CreateGrant",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:dept": "hr"}},
    }
    deny_other_keys = {
        "Effect": "Deny",
        "Principal": {"AWS": user_arn},
        "Action": "kms:CreateGrant",
        "Resource": "*",
        "Condition": {"ForAnyValue:StringNotEquals": {"kms:EncryptionContextKeys": ["dept"]}},
    }
    key = kms.create_key(Policy=policy(root_statement(server.account_id), allow_hr_only, deny_other_keys))[
        "KeyMetadata"
    ]["KeyId"]

    def create(constraints: dict[str, Any] | None) -> str:
        kwargs: dict[str, Any] = {"KeyId": key, "GranteePrincipal": grantee_arn, "Operations": ["Decrypt"]}
        if constraints is not None:
            kwargs["Constraints"] = constraints
        try:
            user_kms.create_grant(**kwargs)
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "ok"

    assert create({"EncryptionContextEquals": {"dept": "hr"}}) == "ok"
    assert create({"EncryptionContextSubset": {"dept": "hr"}}) == "ok"
    assert create({"EncryptionContextSubset": {"dept": "finance"}}) == "AccessDeniedException"
    assert create({"EncryptionContextEquals": {"dept": "hr", "project": "x"}}) == "AccessDeniedException"
    assert create(None) == "AccessDeniedException"  # no constraint: the condition's key is absent
    assert json.loads(kms.get_key_policy(KeyId=key)["Policy"])["Statement"][1] == allow_hr_only
