"""The Query protocol codec against botocore's own serializer and parser (IAM and STS models)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.parsers import QueryParser
from botocore.serialize import QuerySerializer

from openkms.errors import InvalidAction, ValidationError
from openkms.wire import query
from openkms.wire.naming import to_snake


def _body(service: str, operation: str, params: dict[str, Any]) -> bytes:
    model = query.service_model(service).operation_model(operation)
    request = QuerySerializer().serialize_to_request(params, model)
    return urlencode(request["body"]).encode()


def _parse(service: str, operation: str, xml: bytes, status: int = 200) -> dict[str, Any]:
    model = query.service_model(service).operation_model(operation)
    response = {"body": xml, "headers": {}, "status_code": status}
    parsed: dict[str, Any] = QueryParser().parse(response, model.output_shape)
    return parsed


def test_decode_lists_of_structures_and_integers() -> None:
    body = _body(
        "sts",
        "AssumeRole",
        {
            "RoleArn": "arn:aws:iam::111122223333:role/r",
            "RoleSessionName": "s1",
            "DurationSeconds": 900,
            "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}],
            "TransitiveTagKeys": ["a"],
        },
    )
    request = query.decode_query("sts", body)
    assert request.operation == "AssumeRole"
    assert request.params["duration_seconds"] == 900
    assert request.params["tags"] == [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]
    assert request.params["transitive_tag_keys"] == ["a"]
    assert request.raw["Tags"][1] == {"Key": "b", "Value": "2"}


def test_decode_validation_messages() -> None:
    body = _body("sts", "AssumeRole", {"RoleArn": "arn:aws:iam::111122223333:role/r", "RoleSessionName": "x"})
    with pytest.raises(ValidationError) as exc:
        query.decode_query("sts", body + b"&DurationSeconds=60")
    assert exc.value.message == (
        "2 validation errors detected: Value 'x' at 'roleSessionName' failed to satisfy constraint: "
        "Member must have length greater than or equal to 2; Value '60' at 'durationSeconds' failed to "
        "satisfy constraint: Member must have value greater than or equal to 900"
    )
    with pytest.raises(ValidationError, match="Value null at 'userName'"):
        query.decode_query("iam", b"Action=CreateUser&Version=2010-05-08")
    with pytest.raises(InvalidAction, match="Could not find operation CreateUser for version 2011-06-15"):
        query.decode_query("iam", b"Action=CreateUser&Version=2011-06-15&UserName=u")


def test_results_parse_with_botocore() -> None:
    document = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]})
    role = {
        "path": "/",
        "role_name": "r",
        "role_id": "AROAEXAMPLE",
        "arn": "arn:aws:iam::111122223333:role/r",
        "create_date": 1700000000.0,
        "assume_role_policy_document": document,
        "max_session_duration": 3600,
        "tags": [{"key": "k", "value": "v & <w>"}],
    }
    xml = query.encode_result("iam", "GetRole", {"role": role}, "req-1")
    assert xml.startswith(
        b'<GetRoleResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><GetRoleResult>'
    )
    assert b"%7B%22Version%22" in xml  # IAM URL-encodes policy documents
    parsed = _parse("iam", "GetRole", xml)
    assert parsed["Role"]["CreateDate"] == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert parsed["Role"]["Tags"] == [{"Key": "k", "Value": "v & <w>"}]
    assert parsed["ResponseMetadata"]["RequestId"] == "req-1"

    users = {
        "users": [{"path": "/", "user_name": "u", "user_id": "AIDA", "arn": "a" * 20, "create_date": 0.0}]
    }
    parsed = _parse(
        "iam", "ListUsers", query.encode_result("iam", "ListUsers", {**users, "is_truncated": False}, "r")
    )
    assert parsed["Users"][0]["UserName"] == "u" and parsed["IsTruncated"] is False

    error = query.encode_error("iam", "NoSuchEntity", "The user with name u cannot be found.", "r2")
    parsed = QueryParser().parse({"body": error, "headers": {}, "status_code": 404}, None)
    assert parsed["Error"] == {
        "Type": "Sender",
        "Code": "NoSuchEntity",
        "Message": "The user with name u cannot be found.",
    }


def test_audit_views_never_hold_secrets() -> None:
    result = {
        "credentials": {
            "access_key_id": "ASIAEXAMPLE",
            "secret_access_key": "secret",
            "session_token": "token",
            "expiration": 1700000000.0,
        },
        "assumed_role_user": {
            "assumed_role_id": "AROA:s",
            "arn": "arn:aws:sts::111122223333:assumed-role/r/s",
        },
    }
    logged = query.audit_response("sts", "AssumeRole", result)
    assert logged is not None
    assert logged["credentials"] == {"accessKeyId": "ASIAEXAMPLE", "expiration": "Nov 14, 2023, 10:13:20 PM"}
    key = {
        "user_name": "u",
        "access_key_id": "AKIA",
        "status": "Active",
        "secret_access_key": "s",
        "create_date": 0.0,
    }
    logged = query.audit_response("iam", "CreateAccessKey", {"access_key": key})
    assert logged is not None and "secretAccessKey" not in logged["accessKey"]


def _snake(value: Any) -> Any:
    """PascalCase request parameters as the service functions take them (snake_case members)."""
    if isinstance(value, dict):
        return {to_snake(k): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)

# (service, operation, parameters): accepted and refused ones, each sent both ways.
PARAMS = [
    ("iam", "CreateUser", {"UserName": "alice+ops@example.com", "Path": "/team/"}),
    ("iam", "CreateUser", {"UserName": "u", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}]}),
    ("iam", "CreateUser", {"UserName": "bad name!"}),
    ("iam", "CreateUser", {"UserName": "x" * 65, "Path": "no-slashes"}),
    ("iam", "CreateUser", {"UserName": ""}),
    ("iam", "CreateUser", {"UserName": "u", "Tags": []}),
    ("iam", "CreateUser", {}),
    ("iam", "CreateAccessKey", {"UserName": "alice"}),
    ("iam", "CreateAccessKey", {}),
    ("iam", "DeleteAccessKey", {"AccessKeyId": "short"}),
    ("iam", "UpdateAccessKey", {"AccessKeyId": "AKIAEXAMPLEEXAMPLE", "Status": "Paused"}),
    ("iam", "ListUsers", {"MaxItems": 1000, "Marker": "m"}),
    ("iam", "ListUsers", {"MaxItems": 0}),
    ("iam", "CreateRole", {"RoleName": "r", "AssumeRolePolicyDocument": POLICY, "MaxSessionDuration": 7200}),
    ("iam", "CreateRole", {"RoleName": "r", "AssumeRolePolicyDocument": POLICY, "MaxSessionDuration": 60}),
    ("iam", "PutUserPolicy", {"UserName": "u", "PolicyName": "p:q", "PolicyDocument": POLICY}),
    ("iam", "CreatePolicy", {"PolicyName": "p", "PolicyDocument": POLICY, "Description": "d" * 1001}),
    ("iam", "AttachRolePolicy", {"RoleName": "r", "PolicyArn": "arn:aws:iam::111122223333:policy/p"}),
    ("iam", "UntagRole", {"RoleName": "r", "TagKeys": ["a", "b"]}),
    ("sts", "AssumeRole", {"RoleArn": "arn:aws:iam::111122223333:role/r", "RoleSessionName": "x"}),
]


@pytest.mark.parametrize(("service", "operation", "params"), PARAMS)
def test_validate_params_is_decode_query(service: str, operation: str, params: dict[str, Any]) -> None:
    """Parameters given as a dict (``openkms admin``) are read and refused exactly as a request's."""
    body = _body(service, operation, params)
    try:
        expected = query.decode_query(service, body)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as got:
            query.validate_params(service, operation, _snake(params))
        assert got.value.message == exc.message
        return
    assert query.validate_params(service, operation, _snake(params)) == expected


def test_validate_params_refuses_unknown_names() -> None:
    with pytest.raises(InvalidAction):
        query.validate_params("iam", "CreateKey", {})
    with pytest.raises(TypeError, match="CreateUser has no parameter force"):
        query.validate_params("iam", "CreateUser", {"user_name": "u", "force": True})
    assert query.validate_params("iam", "CreateUser", {"user_name": "u", "path": None}).params == {
        "user_name": "u"
    }
