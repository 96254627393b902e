"""Strict JSON for submitted policies: every entry point that accepts a policy document (CreateKey,
PutKeyPolicy, PutUserPolicy, CreatePolicy, CreateRole, PutRolePolicy, UpdateAssumeRolePolicy)
refuses NaN, Infinity, -Infinity, 1e999 and duplicate keys (top level and inside a statement) with
the same error it gives for text that is not JSON; the same documents with an ordinary number and
no repeated key are accepted."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.util import aws_error

PLACEHOLDER = '"__NUMBER__"'
KMS_ERROR = ("MalformedPolicyDocumentException", "The policy is not valid JSON.", 400)
IAM_ERROR = ("MalformedPolicyDocument", "Syntax errors in policy.", 400)

# defect name -> how it turns a valid document (with PLACEHOLDER standing for a number) into text
DEFECTS: dict[str, Callable[[str], str]] = {
    "NaN": lambda text: text.replace(PLACEHOLDER, "NaN"),
    "Infinity": lambda text: text.replace(PLACEHOLDER, "Infinity"),
    "-Infinity": lambda text: text.replace(PLACEHOLDER, "-Infinity"),
    "1e999": lambda text: text.replace(PLACEHOLDER, "1e999"),
    "huge integer": lambda text: text.replace(PLACEHOLDER, "9" * 400),
    "duplicate top-level key": lambda text: '{"Version": "2012-10-17", ' + fine(text)[1:],
    "duplicate key in a statement": lambda text: fine(text).replace(
        '"Effect": ', '"Effect": "Deny", "Effect": ', 1
    ),
}


def fine(text: str) -> str:
    return text.replace(PLACEHOLDER, "3600")


def _document(statement: dict[str, Any]) -> str:
    # the placeholder goes where a number belongs: a numeric condition
    statement = {
        **statement,
        "Condition": {"NumericLessThanIfExists": {"aws:MultiFactorAuthAge": "__NUMBER__"}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def key_policy(server: Server) -> str:
    root = f"arn:aws:iam::{server.account_id}:root"
    return _document({"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"})


def identity_policy(server: Server) -> str:
    return _document({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"})


def trust_policy(server: Server) -> str:
    root = f"arn:aws:iam::{server.account_id}:root"
    return _document({"Effect": "Allow", "Principal": {"AWS": root}, "Action": "sts:AssumeRole"})


def create_key(server: Server, text: str) -> None:
    server.client().create_key(Policy=text)


def put_key_policy(server: Server, text: str) -> None:
    kms = server.client()
    key_id = _shared(server, "key", lambda: kms.create_key()["KeyMetadata"]["KeyId"])
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=text)


def put_user_policy(server: Server, text: str) -> None:
    iam = server.client("iam")
    user = _shared(server, "user", lambda: iam.create_user(UserName=_name("strict"))["User"]["UserName"])
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=text)


def create_policy(server: Server, text: str) -> None:
    server.client("iam").create_policy(PolicyName=_name("strict"), PolicyDocument=text)


def create_role(server: Server, text: str) -> None:
    server.client("iam").create_role(RoleName=_name("strict"), AssumeRolePolicyDocument=text)


def _role(server: Server) -> str:
    iam = server.client("iam")
    return _shared(
        server,
        "role",
        lambda: iam.create_role(
            RoleName=_name("strict"), AssumeRolePolicyDocument=fine(trust_policy(server))
        )["Role"]["RoleName"],
    )


def put_role_policy(server: Server, text: str) -> None:
    server.client("iam").put_role_policy(RoleName=_role(server), PolicyName="p", PolicyDocument=text)


def update_assume_role_policy(server: Server, text: str) -> None:
    server.client("iam").update_assume_role_policy(RoleName=_role(server), PolicyDocument=text)


def _shared(server: Server, what: str, make: Callable[[], str]) -> str:
    return server.once(f"strict-json {what}", make)


# entry point -> (call, valid document, expected error)
ENTRY_POINTS: dict[
    str, tuple[Callable[[Server, str], None], Callable[[Server], str], tuple[str, str, int]]
] = {
    "CreateKey": (create_key, key_policy, KMS_ERROR),
    "PutKeyPolicy": (put_key_policy, key_policy, KMS_ERROR),
    "PutUserPolicy": (put_user_policy, identity_policy, IAM_ERROR),
    "CreatePolicy": (create_policy, identity_policy, IAM_ERROR),
    "CreateRole": (create_role, trust_policy, IAM_ERROR),
    "PutRolePolicy": (put_role_policy, identity_policy, IAM_ERROR),
    "UpdateAssumeRolePolicy": (update_assume_role_policy, trust_policy, IAM_ERROR),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_valid_document_is_accepted(server: Server, entry: str) -> None:
    call, document, _ = ENTRY_POINTS[entry]
    call(server, fine(document(server)))


@pytest.mark.parametrize("defect", list(DEFECTS))
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_non_strict_json_is_refused(server: Server, entry: str, defect: str) -> None:
    call, document, expected = ENTRY_POINTS[entry]
    text = DEFECTS[defect](document(server))
    json.loads(text)  # Python's lenient parser takes every one of these
    error = aws_error(lambda: call(server, text))
    assert (error.code, error.message, error.status) == expected
