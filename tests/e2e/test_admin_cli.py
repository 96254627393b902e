"""``openkms admin`` holds principals to the IAM Query API's rules: for every command that creates,
lists or deletes users, access keys, roles and policies, a request the API refuses (a name the model
rejects, the access-key quota, an unknown or busy entity) is refused by the CLI with the same AWS error
code and the same message, a non-zero exit and no traceback, and changes nothing."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import OPENKMS, Server
from tests.e2e.util import aws_error

POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
)
USER, MISSING = "{user}", "{missing}"  # a user with two access keys; a name no user has


def _trust(account: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


@dataclass(frozen=True)
class Refusal:
    """One refused request, as ``openkms admin`` arguments and as the same IAM API call."""

    command: list[str]
    operation: str
    params: dict[str, Any]
    code: str
    in_account: bool = True  # the command takes --account-id

    @property
    def id(self) -> str:
        return f"{self.command[0]}-{self.code}"


REFUSALS = [
    Refusal(
        ["create-user", "--user-name", "bad name!"],
        "create_user",
        {"UserName": "bad name!"},
        "ValidationError",
    ),
    Refusal(
        ["create-user", "--user-name", "u" * 65], "create_user", {"UserName": "u" * 65}, "ValidationError"
    ),
    Refusal(["create-user", "--user-name", USER], "create_user", {"UserName": USER}, "EntityAlreadyExists"),
    Refusal(
        ["create-access-key", "--user-name", USER], "create_access_key", {"UserName": USER}, "LimitExceeded"
    ),
    Refusal(
        ["create-access-key", "--user-name", "a/b"],
        "create_access_key",
        {"UserName": "a/b"},
        "ValidationError",
    ),
    Refusal(
        ["create-access-key", "--user-name", MISSING],
        "create_access_key",
        {"UserName": MISSING},
        "NoSuchEntity",
    ),
    Refusal(
        ["list-access-keys", "--user-name", "bad name!"],
        "list_access_keys",
        {"UserName": "bad name!"},
        "ValidationError",
    ),
    Refusal(
        ["list-access-keys", "--user-name", MISSING],
        "list_access_keys",
        {"UserName": MISSING},
        "NoSuchEntity",
    ),
    Refusal(
        ["delete-access-key", "--access-key-id", "AKIA-not-an-id"],
        "delete_access_key",
        {"UserName": USER, "AccessKeyId": "AKIA-not-an-id"},
        "ValidationError",
        in_account=False,
    ),
    Refusal(
        ["delete-access-key", "--access-key-id", "AKIA0000000000000000"],
        "delete_access_key",
        {"UserName": USER, "AccessKeyId": "AKIA0000000000000000"},
        "NoSuchEntity",
        in_account=False,
    ),
    Refusal(["delete-user", "--user-name", USER], "delete_user", {"UserName": USER}, "DeleteConflict"),
    Refusal(
        ["tag-user", "--user-name", MISSING, "--tag", "a=b"],
        "tag_user",
        {"UserName": MISSING, "Tags": [{"Key": "a", "Value": "b"}]},
        "NoSuchEntity",
    ),
    Refusal(
        ["put-user-policy", "--user-name", USER, "--policy-name", "p:q", "--policy-document", POLICY],
        "put_user_policy",
        {"UserName": USER, "PolicyName": "p:q", "PolicyDocument": POLICY},
        "ValidationError",
    ),
    Refusal(
        ["create-role", "--role-name", "bad name!", "--assume-role-policy-document", "{trust}"],
        "create_role",
        {"RoleName": "bad name!", "AssumeRolePolicyDocument": "{trust}"},
        "ValidationError",
    ),
    Refusal(
        [
            "create-role",
            "--role-name",
            "r",
            "--assume-role-policy-document",
            "{trust}",
            "--max-session-duration",
            "60",
        ],
        "create_role",
        {"RoleName": "r", "AssumeRolePolicyDocument": "{trust}", "MaxSessionDuration": 60},
        "ValidationError",
    ),
    Refusal(
        ["create-policy", "--policy-name", "bad name!", "--policy-document", POLICY],
        "create_policy",
        {"PolicyName": "bad name!", "PolicyDocument": POLICY},
        "ValidationError",
    ),
    Refusal(
        ["attach-user-policy", "--user-name", USER, "--policy-arn", "arn:aws"],
        "attach_user_policy",
        {"UserName": USER, "PolicyArn": "arn:aws"},
        "ValidationError",
    ),
]


@dataclass(frozen=True)
class Names:
    user: str
    missing: str
    trust: str

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return (
                value.replace(USER, self.user).replace(MISSING, self.missing).replace("{trust}", self.trust)
            )
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value


@pytest.fixture
def names(server: Server) -> Iterator[Names]:
    """A fresh user with two access keys (the quota), made through the IAM API."""
    iam = server.client("iam")
    user = f"cli-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    for _ in range(2):
        iam.create_access_key(UserName=user)
    yield Names(user, f"nobody-{uuid.uuid4().hex[:8]}", _trust(server.account_id))
    for key in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    iam.delete_user(UserName=user)


def admin_refused(server: Server, *args: str) -> str:
    """Run ``openkms admin …`` that must fail; its one line of error output."""
    out = subprocess.run([OPENKMS, "admin", *args, *server.data_args()], capture_output=True, text=True)
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and out.stdout == "", out.stderr
    return out.stderr.strip()


@pytest.mark.parametrize("case", REFUSALS, ids=[r.id for r in REFUSALS])
def test_admin_refuses_as_the_iam_api_does(server: Server, names: Names, case: Refusal) -> None:
    account = ["--account-id", server.account_id] if case.in_account else []
    shown = admin_refused(server, *names.fill(case.command), *account)
    # The Query API, without botocore's own client-side checks, refuses the same request in the same words.
    iam = server.client("iam", parameter_validation=False)
    error = aws_error(getattr(iam, case.operation), **names.fill(case.params))
    assert error.code == case.code
    assert shown == f"Error: {error.code}: {error.message}"
    # Neither path changed anything: the user still has exactly its two keys, the missing name no user.
    assert len(iam.list_access_keys(UserName=names.user)["AccessKeyMetadata"]) == 2
    assert names.missing not in {u["UserName"] for u in iam.list_users()["Users"]}


def test_admin_third_access_key_is_the_quota(server: Server, names: Names) -> None:
    """The quota counts keys however they were made: a key made by the CLI, one by the API, then neither
    path may add a third."""
    iam = server.client("iam")
    first = iam.list_access_keys(UserName=names.user)["AccessKeyMetadata"][0]["AccessKeyId"]
    iam.delete_access_key(UserName=names.user, AccessKeyId=first)
    made = server.admin("create-access-key", "--account-id", server.account_id, "--user-name", names.user)
    assert made["UserName"] == names.user and made["AccessKeyId"].startswith("AKIA")
    shown = admin_refused(
        server, "create-access-key", "--account-id", server.account_id, "--user-name", names.user
    )
    assert shown == "Error: LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2"
    assert aws_error(iam.create_access_key, UserName=names.user).message == shown.split(": ", 2)[2]
    listed = server.admin("list-access-keys", "--account-id", server.account_id, "--user-name", names.user)
    assert made["AccessKeyId"] in {k["AccessKeyId"] for k in listed} and len(listed) == 2
