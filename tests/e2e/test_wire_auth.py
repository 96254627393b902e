"""The wire protocol and authentication, checked with raw HTTP requests signed by botocore's SigV4
signer (so that each part can be broken on purpose): AWS's errors for bad signatures, unknown access
keys, missing authentication, expired dates, wrong service and unanswered regions; headers that must be
signed (host, the date, every x-amz-* header) and those that need not be; unknown and
unimplemented operations; validation errors with their exact ``__type``, status and message; the
shape of error and empty responses; and regions as separate namespaces of keys and aliases."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from openkms.service.kms.registry import OPERATIONS
from openkms.wire import model
from tests.conftest import BIN, REGION, Server, _new_server, drop_pg_database
from tests.e2e.util import JSON_CT, RawResponse, aws_error, raw_call

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
UNRECOGNIZED = "The security token included in the request is invalid."
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def assert_error(resp: RawResponse, code: str, message: str | None, status: int = 400) -> None:
    """An AWS JSON 1.1 error: the status, JSON body of exactly __type and message, the headers."""
    assert resp.status == status, (resp.status, resp.body)
    assert resp.headers["content-type"] == JSON_CT
    assert UUID_RE.match(resp.headers["x-amzn-requestid"])
    body = resp.json()
    assert set(body) == {"__type", "message"}, body
    assert body["__type"] == code, body
    if message is not None:
        assert body["message"] == message, body


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --- authentication ------------------------------------------------------------------------------------


def test_signed_request_succeeds(server: Server) -> None:
    resp = raw_call(server, "ListKeys", {})
    assert resp.status == 200
    assert resp.headers["content-type"] == JSON_CT
    assert UUID_RE.match(resp.headers["x-amzn-requestid"])
    body = resp.json()
    assert {"Keys", "Truncated"} <= set(body) <= {"Keys", "Truncated", "NextMarker"}
    assert ("NextMarker" in body) is body["Truncated"]


def test_bad_signature(server: Server) -> None:
    wrong_secret = raw_call(server, "ListKeys", {}, secret_key="x" * 40)
    assert_error(wrong_secret, "InvalidSignatureException", SIGNATURE_MISMATCH)
    # A body changed after signing.
    changed = raw_call(
        server, "GenerateRandom", {"NumberOfBytes": 8}, body_after_signing=b'{"NumberOfBytes": 9}'
    )
    assert_error(changed, "InvalidSignatureException", SIGNATURE_MISMATCH)

    def corrupt(headers: dict[str, str]) -> None:
        auth = headers["Authorization"]
        last = auth[-1]
        headers["Authorization"] = auth[:-1] + ("0" if last != "0" else "1")

    assert_error(
        raw_call(server, "ListKeys", {}, mutate=corrupt), "InvalidSignatureException", SIGNATURE_MISMATCH
    )

    def change_target(headers: dict[str, str]) -> None:
        headers["X-Amz-Target"] = "TrentService.ListAliases"

    assert_error(
        raw_call(server, "ListKeys", {}, mutate=change_target),
        "InvalidSignatureException",
        SIGNATURE_MISMATCH,
    )


def test_unknown_access_key(server: Server) -> None:
    resp = raw_call(server, "ListKeys", {}, access_key="AKIA" + "Z" * 16, secret_key="s" * 40)
    assert_error(resp, "UnrecognizedClientException", UNRECOGNIZED)
    err = aws_error(server.client(access_key="AKIAUNKNOWNUNKNOWN00").list_keys)
    assert (err.code, err.message, err.status) == ("UnrecognizedClientException", UNRECOGNIZED, 400)


def test_missing_authentication(server: Server) -> None:
    resp = raw_call(server, "ListKeys", {}, sign=False)
    assert resp.status in (400, 403)
    assert_error(resp, "MissingAuthenticationTokenException", "Missing Authentication Token", resp.status)


def test_expired_and_future_dates(server: Server) -> None:
    old = _now() - dt.timedelta(minutes=20)
    resp = raw_call(server, "ListKeys", {}, when=old)
    assert_error(resp, "InvalidSignatureException", None)
    stamp = old.strftime("%Y%m%dT%H%M%SZ")
    assert re.fullmatch(
        rf"Signature expired: {stamp} is now earlier than \d{{8}}T\d{{6}}Z \(\d{{8}}T\d{{6}}Z - 15 min\.\)",
        resp.json()["message"],
    ), resp.json()["message"]
    future = _now() + dt.timedelta(minutes=20)
    resp = raw_call(server, "ListKeys", {}, when=future)
    assert_error(resp, "InvalidSignatureException", None)
    assert resp.json()["message"].startswith(
        f"Signature not yet current: {future.strftime('%Y%m%dT%H%M%SZ')} "
    )
    # Within the 15 minutes allowed either way, the request is accepted.
    assert raw_call(server, "ListKeys", {}, when=_now() - dt.timedelta(minutes=10)).status == 200


def test_expired_date_is_reported_before_the_access_key(server: Server) -> None:
    """AWS checks the request time and the scope before it looks up the access key."""
    old = _now() - dt.timedelta(minutes=20)
    resp = raw_call(server, "ListKeys", {}, when=old, access_key="AKIA" + "Q" * 16, secret_key="s" * 40)
    assert_error(resp, "InvalidSignatureException", None)
    assert resp.json()["message"].startswith("Signature expired: ")
    resp = raw_call(server, "ListKeys", {}, service="s3", access_key="AKIA" + "Q" * 16, secret_key="s" * 40)
    assert_error(resp, "InvalidSignatureException", "Credential should be scoped to correct service: 'kms'. ")


def test_wrong_service_in_scope(server: Server) -> None:
    resp = raw_call(server, "ListKeys", {}, service="s3")
    assert_error(resp, "InvalidSignatureException", "Credential should be scoped to correct service: 'kms'. ")


def test_malformed_region_in_scope(server: Server) -> None:
    resp = raw_call(server, "ListKeys", {}, region="not_a_region")
    assert_error(resp, "InvalidSignatureException", "Credential should be scoped to a valid region. ")


@pytest.fixture
def us_east_only(workdir: Path, backend: str) -> Iterator[Server]:
    """A server that answers only us-east-1 (``--region us-east-1``)."""
    srv, url = _new_server(workdir, backend, extra_args=["--region", "us-east-1"])
    yield srv
    srv.stop()
    if url:
        drop_pg_database(url)


def test_region_not_answered(us_east_only: Server) -> None:
    assert raw_call(us_east_only, "ListKeys", {}, region="us-east-1").status == 200
    resp = raw_call(us_east_only, "ListKeys", {}, region="eu-west-1")
    assert_error(resp, "InvalidSignatureException", "Credential should be scoped to a valid region. ")
    err = aws_error(us_east_only.client(region="eu-west-1").list_keys)
    assert (err.code, err.status) == ("InvalidSignatureException", 400)


# --- headers that must be signed ------------------------------------------------------------------------

FORM_CT = "application/x-www-form-urlencoded; charset=utf-8"
FAKE_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLEunsignedTOKEN=="  # noqa: S105 - refused before any lookup


def _not_signed(name: str) -> str:
    return f"'{name}' must be a 'SignedHeader' in the AWS Authorization."


class PartialSigV4Auth(SigV4Auth):
    """botocore's signer, signing every header it would except ``unsigned`` (lowercased names)."""

    def __init__(self, credentials: Credentials, service: str, region: str, unsigned: frozenset[str]) -> None:
        super().__init__(credentials, service, region)
        self._unsigned = unsigned

    def headers_to_sign(self, request: AWSRequest) -> Any:
        headers = super().headers_to_sign(request)
        for name in self._unsigned:
            del headers[name]
        return headers


def signed_request(
    server: Server,
    service: str,
    body: bytes,
    headers: dict[str, str],
    *,
    unsigned: frozenset[str] = frozenset(),
    after: dict[str, str | None] | None = None,
    credentials: Credentials | None = None,
) -> RawResponse:
    """POST ``body`` signed by botocore for ``service`` with ``headers`` sent but the ``unsigned`` ones
    left out of the signature; then the headers of ``after`` are set (None: removed) and it is sent."""
    creds = credentials or Credentials(server.access_key, server.secret_key)
    request = AWSRequest(method="POST", url=server.endpoint + "/", data=body, headers=dict(headers))
    PartialSigV4Auth(creds, service, REGION, unsigned).add_auth(request)
    sent = dict(request.headers.items())
    for name, value in (after or {}).items():
        for existing in [k for k in sent if k.lower() == name.lower()]:
            del sent[existing]
        if value is not None:
            sent[name] = value
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/", body=body, headers=sent)
        resp = conn.getresponse()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def _kms(operation: str, **extra: str) -> dict[str, str]:
    return {"Content-Type": JSON_CT, "X-Amz-Target": f"TrentService.{operation}", **extra}


_LIST_USERS = b"Action=ListUsers&Version=2010-05-08"
_WHO_AM_I = b"Action=GetCallerIdentity&Version=2011-06-15"
_DATE = {"Date": "Mon, 01 Jan 2001 00:00:00 GMT"}  # botocore sets it to the signing time
_SHA = {"X-Amz-Content-SHA256": hashlib.sha256(b"{}").hexdigest()}


@dataclass(frozen=True)
class Unsigned:
    service: str
    body: bytes
    headers: dict[str, str]
    unsigned: frozenset[str] = frozenset()
    after: dict[str, str | None] = field(default_factory=dict)


# label -> the request; the header AWS's message names (Host: its own message)
UNSIGNED_CASES: dict[str, tuple[Unsigned, str]] = {
    "kms: X-Amz-Target": (
        Unsigned("kms", b"{}", _kms("ListKeys"), frozenset({"x-amz-target"})),
        "X-Amz-Target",
    ),
    "kms: X-Amz-Date": (Unsigned("kms", b"{}", _kms("ListKeys"), frozenset({"x-amz-date"})), "X-Amz-Date"),
    "kms: Date as the request time": (
        Unsigned("kms", b"{}", _kms("ListKeys", **_DATE), frozenset({"date"})),
        "Date",
    ),
    "kms: X-Amz-Security-Token": (
        Unsigned("kms", b"{}", _kms("ListKeys"), after={"X-Amz-Security-Token": FAKE_TOKEN}),
        "X-Amz-Security-Token",
    ),
    "kms: X-Amz-Content-SHA256": (
        Unsigned("kms", b"{}", _kms("ListKeys", **_SHA), frozenset({"x-amz-content-sha256"})),
        "X-Amz-Content-Sha256",
    ),
    "kms: a custom x-amz-foo": (
        Unsigned("kms", b"{}", _kms("ListKeys", **{"X-Amz-Foo": "bar"}), frozenset({"x-amz-foo"})),
        "X-Amz-Foo",
    ),
    "kms: host": (Unsigned("kms", b"{}", _kms("ListKeys"), frozenset({"host"})), "Host"),
    "iam: X-Amz-Date": (
        Unsigned("iam", _LIST_USERS, {"Content-Type": FORM_CT}, frozenset({"x-amz-date"})),
        "X-Amz-Date",
    ),
    "iam: an X-Amz-Target added": (
        Unsigned(
            "iam", _LIST_USERS, {"Content-Type": FORM_CT}, after={"X-Amz-Target": "TrentService.ListKeys"}
        ),
        "X-Amz-Target",
    ),
    "sts: X-Amz-Security-Token": (
        Unsigned("sts", _WHO_AM_I, {"Content-Type": FORM_CT}, after={"X-Amz-Security-Token": FAKE_TOKEN}),
        "X-Amz-Security-Token",
    ),
    "sts: host": (Unsigned("sts", _WHO_AM_I, {"Content-Type": FORM_CT}, frozenset({"host"})), "Host"),
}


@pytest.mark.parametrize("case", UNSIGNED_CASES)
def test_headers_that_must_be_signed(server: Server, case: str) -> None:
    """AWS: "You must include the host header and any x-amz-* headers in the signature." Refused with
    InvalidSignatureException (JSON) / SignatureDoesNotMatch (Query), naming the header."""
    request, name = UNSIGNED_CASES[case]
    resp = signed_request(
        server, request.service, request.body, request.headers, unsigned=request.unsigned, after=request.after
    )
    message = MSG_HOST if name == "Host" else _not_signed(name)
    if request.service == "kms":
        assert_error(resp, "InvalidSignatureException", message)
    else:
        assert resp.status == 403, (resp.status, resp.body)
        text = resp.body.decode()
        assert "<Code>SignatureDoesNotMatch</Code>" in text and f"<Message>{message}</Message>" in text, text


MSG_HOST = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."


def test_unsigned_target_cannot_turn_describe_into_disable(server: Server) -> None:
    """The review's case: signed over host;x-amz-date only, the target changed from DescribeKey to
    DisableKey after signing. Refused before anything is looked up; the key stays enabled."""
    key_id = server.client().create_key()["KeyMetadata"]["KeyId"]
    body = json.dumps({"KeyId": key_id}).encode()
    only_host_and_date = frozenset({"content-type", "x-amz-target"})
    for target in ("TrentService.DescribeKey", "TrentService.DisableKey"):
        resp = signed_request(
            server,
            "kms",
            body,
            _kms("DescribeKey"),
            unsigned=only_host_and_date,
            after={"X-Amz-Target": target},
        )
        assert_error(resp, "InvalidSignatureException", _not_signed("X-Amz-Target"))
    assert server.client().describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    # signed, the same change is a signature mismatch
    resp = signed_request(
        server, "kms", body, _kms("DescribeKey"), after={"X-Amz-Target": "TrentService.DisableKey"}
    )
    assert_error(resp, "InvalidSignatureException", SIGNATURE_MISMATCH)
    assert server.client().describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_unsigned_content_type_changes_nothing(server: Server) -> None:
    """Content-Type may be left unsigned (AWS lists it as optional). Changing it cannot change how a
    signed request is read: the credential scope chooses the API, the signed X-Amz-Target (or Action
    in the signed body) the operation, and the body is parsed by the API's own protocol."""
    for content_type in (None, FORM_CT, "application/x-amz-json-1.0", "text/plain"):
        resp = signed_request(
            server,
            "kms",
            b"{}",
            _kms("ListKeys"),
            unsigned=frozenset({"content-type"}),
            after={"Content-Type": content_type},
        )
        assert resp.status == 200 and "Keys" in resp.json(), (content_type, resp.body)
        assert resp.headers["content-type"] == JSON_CT
        resp = signed_request(
            server,
            "iam",
            _LIST_USERS,
            {"Content-Type": FORM_CT},
            unsigned=frozenset({"content-type"}),
            after={"Content-Type": content_type or JSON_CT},
        )
        assert resp.status == 200 and resp.body.startswith(b"<ListUsersResponse"), (content_type, resp.body)
    # signed, a changed Content-Type is a signature mismatch like any signed header
    resp = signed_request(server, "kms", b"{}", _kms("ListKeys"), after={"Content-Type": FORM_CT})
    assert_error(resp, "InvalidSignatureException", SIGNATURE_MISMATCH)


def test_clients_that_sign_every_header_still_work(server: Server) -> None:
    """botocore's signer (all headers but user-agent, expect, x-amzn-trace-id …), boto3 and the AWS
    CLI, with long-term and session credentials, on the KMS and the IAM/STS APIs."""
    assert signed_request(server, "kms", b"{}", _kms("ListKeys", **_SHA, **{"X-Amz-Foo": "1"})).status == 200
    assert signed_request(server, "kms", b"{}", _kms("ListKeys", **_DATE)).status == 200
    assert signed_request(server, "iam", _LIST_USERS, {"Content-Type": FORM_CT}).status == 200
    iam = server.client("iam")
    role = f"wire-{uuid.uuid4().hex[:8]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName=role,
        PolicyName="kms",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
        ),
    )
    session = server.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{server.account_id}:role/{role}", RoleSessionName="wire"
    )["Credentials"]
    creds = Credentials(session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"])
    assert signed_request(server, "kms", b"{}", _kms("ListKeys"), credentials=creds).status == 200
    assert (
        signed_request(server, "sts", _WHO_AM_I, {"Content-Type": FORM_CT}, credentials=creds).status == 200
    )
    # the session's own token left unsigned
    resp = signed_request(
        server,
        "kms",
        b"{}",
        _kms("ListKeys"),
        credentials=creds,
        unsigned=frozenset({"x-amz-security-token"}),
    )
    assert_error(resp, "InvalidSignatureException", _not_signed("X-Amz-Security-Token"))
    as_session = {
        "aws_access_key_id": session["AccessKeyId"],
        "aws_secret_access_key": session["SecretAccessKey"],
        "aws_session_token": session["SessionToken"],
    }
    kms = boto3.client("kms", endpoint_url=server.endpoint, region_name=REGION, **as_session)
    kms.list_keys()
    who = boto3.client("sts", endpoint_url=server.endpoint, region_name=REGION, **as_session)
    assert who.get_caller_identity()["Arn"].endswith(f":assumed-role/{role}/wire")
    env = {
        **server.cli_env(),
        "AWS_ACCESS_KEY_ID": session["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": session["SecretAccessKey"],
        "AWS_SESSION_TOKEN": session["SessionToken"],
    }
    for args in (["kms", "list-keys"], ["sts", "get-caller-identity"]):
        out = subprocess.run(
            [str(BIN / "aws"), *args, "--endpoint-url", server.endpoint, "--output", "json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert out.returncode == 0, out.stderr
    assert server.aws("iam", "list-users").returncode == 0
    assert server.aws("kms", "list-keys").returncode == 0


# --- operations ----------------------------------------------------------------------------------------


def test_unknown_operation(server: Server) -> None:
    for target in ("TrentService.NoSuchOperation", "OtherService.ListKeys", "ListKeys", ""):
        resp = raw_call(server, "ListKeys", {}, target=target)
        assert_error(resp, "UnknownOperationException", None, 404)


def test_every_modeled_operation_is_implemented_but_cloudhsm_key_stores(server: Server) -> None:
    """Every operation of the model is served; what stays unsupported is CloudHSM key stores, answered
    with UnsupportedOperationException naming them (the wire shape of an unsupported request)."""
    assert set(model.operation_names()) == set(OPERATIONS)
    for body in (
        {"CustomKeyStoreName": "store"},  # AWS_CLOUDHSM is CreateCustomKeyStore's default type
        {"CustomKeyStoreName": "store", "CustomKeyStoreType": "AWS_CLOUDHSM"},
    ):
        resp = raw_call(server, "CreateCustomKeyStore", body)
        assert_error(resp, "UnsupportedOperationException", None)
        assert "CloudHSM" in resp.json()["message"]
    resp = raw_call(
        server, "CreateKey", {"Origin": "AWS_CLOUDHSM", "CustomKeyStoreId": "cks-1234567890abcdef0"}
    )
    assert_error(resp, "UnsupportedOperationException", None)
    assert "AWS_CLOUDHSM" in resp.json()["message"]


def test_empty_output_operation(server: Server) -> None:
    key_id = json.loads(raw_call(server, "CreateKey", {}).body)["KeyMetadata"]["KeyId"]
    resp = raw_call(server, "DisableKey", {"KeyId": key_id})
    assert resp.status == 200
    assert resp.body == b""
    assert resp.headers["content-length"] == "0"
    assert UUID_RE.match(resp.headers["x-amzn-requestid"])
    # The request ids differ per request.
    assert (
        raw_call(server, "EnableKey", {"KeyId": key_id}).headers["x-amzn-requestid"]
        != resp.headers["x-amzn-requestid"]
    )


# --- validation ----------------------------------------------------------------------------------------


def _v(*items: str) -> str:
    n = len(items)
    return f"{n} validation error{'' if n == 1 else 's'} detected: " + "; ".join(items)


VALIDATION_CASES = [
    # missing required members
    pytest.param(
        "Encrypt",
        {"Plaintext": "aGk="},
        _v("Value null at 'keyId' failed to satisfy constraint: Member must not be null"),
        id="missing-keyId",
    ),
    pytest.param(
        "Encrypt",
        {},
        _v(
            "Value null at 'keyId' failed to satisfy constraint: Member must not be null",
            "Value null at 'plaintext' failed to satisfy constraint: Member must not be null",
        ),
        id="missing-two",
    ),
    pytest.param(
        "CreateAlias",
        {"AliasName": "alias/x"},
        _v("Value null at 'targetKeyId' failed to satisfy constraint: Member must not be null"),
        id="missing-targetKeyId",
    ),
    # out of range
    pytest.param(
        "GenerateRandom",
        {"NumberOfBytes": 1025},
        _v(
            "Value '1025' at 'numberOfBytes' failed to satisfy constraint: "
            "Member must have value less than or equal to 1024"
        ),
        id="range-numberOfBytes",
    ),
    pytest.param(
        "ListKeys",
        {"Limit": 1001},
        _v(
            "Value '1001' at 'limit' failed to satisfy constraint: "
            "Member must have value less than or equal to 1000"
        ),
        id="range-limit-high",
    ),
    pytest.param(
        "ListAliases",
        {"Limit": 0},
        _v(
            "Value '0' at 'limit' failed to satisfy constraint: "
            "Member must have value greater than or equal to 1"
        ),
        id="range-limit-low",
    ),
    pytest.param(
        "DescribeKey",
        {"KeyId": "k" * 2049},
        _v(
            f"Value '{'k' * 2049}' at 'keyId' failed to satisfy constraint: "
            "Member must have length less than or equal to 2048"
        ),
        id="length-keyId",
    ),
    pytest.param(
        "DescribeKey",
        {"KeyId": ""},
        _v(
            "Value '' at 'keyId' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1"
        ),
        id="length-keyId-empty",
    ),
    # wrong enum values
    pytest.param(
        "CreateKey",
        {"KeyUsage": "RANDOM"},
        _v(
            "Value 'RANDOM' at 'keyUsage' failed to satisfy constraint: Member must satisfy enum value set: "
            "[SIGN_VERIFY, ENCRYPT_DECRYPT, GENERATE_VERIFY_MAC, KEY_AGREEMENT]"
        ),
        id="enum-keyUsage",
    ),
    pytest.param(
        "CreateKey",
        {"KeySpec": "HMAC_256", "KeyUsage": "RANDOM"},
        _v(
            "Value 'RANDOM' at 'keyUsage' failed to satisfy constraint: Member must satisfy enum value set: "
            "[SIGN_VERIFY, ENCRYPT_DECRYPT, GENERATE_VERIFY_MAC, KEY_AGREEMENT]"
        ),
        id="enum-before-compatibility",
    ),
    pytest.param(
        "CreateKey",
        {"Origin": "SOMEWHERE"},
        _v(
            "Value 'SOMEWHERE' at 'origin' failed to satisfy constraint: Member must satisfy enum value set: "
            "[AWS_KMS, EXTERNAL, AWS_CLOUDHSM, EXTERNAL_KEY_STORE]"
        ),
        id="enum-origin",
    ),
    pytest.param(
        "Encrypt",
        {"KeyId": "k", "Plaintext": "aGk=", "EncryptionAlgorithm": "AES"},
        _v(
            "Value 'AES' at 'encryptionAlgorithm' failed to satisfy constraint: "
            "Member must satisfy enum value set: "
            "[SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]"
        ),
        id="enum-encryptionAlgorithm",
    ),
    # list elements are named <list>.<n>.member.<field>
    pytest.param(
        "TagResource",
        {"KeyId": "k", "Tags": [{"TagKey": "a", "TagValue": "b"}, {"TagValue": "c"}]},
        _v("Value null at 'tags.2.member.tagKey' failed to satisfy constraint: Member must not be null"),
        id="missing-list-member",
    ),
]


def _enum_items(message: str) -> tuple[str, set[str]]:
    """The message with any enum list taken out (AWS's order of enum values is not significant)."""
    found = re.search(r"\[([A-Z0-9_, ]+)\]", message)
    if not found:
        return message, set()
    return message.replace(found.group(0), "[]"), set(found.group(1).split(", "))


@pytest.mark.parametrize(("operation", "body", "message"), VALIDATION_CASES)
def test_validation_errors(server: Server, operation: str, body: dict[str, Any], message: str) -> None:
    resp = raw_call(server, operation, body)
    assert_error(resp, "ValidationException", None, 400)
    assert _enum_items(resp.json()["message"]) == _enum_items(message)


@pytest.mark.parametrize(
    ("operation", "body", "message"),
    [
        ("GenerateRandom", {"NumberOfBytes": "ten"}, "STRING_VALUE can not be converted to an Integer"),
        ("GenerateRandom", {"NumberOfBytes": 1.5}, "NUMBER_VALUE can not be converted to an Integer"),
        ("ListKeys", {"Limit": True}, "BOOLEAN_VALUE can not be converted to an Integer"),
        ("Encrypt", {"KeyId": "k", "Plaintext": 12}, "NUMBER_VALUE can not be converted to a Blob"),
        ("CreateKey", {"Description": ["a"]}, "Start of list found where not expected"),
        ("CreateKey", {"Tags": {"TagKey": "a"}}, "Start of structure or map found where not expected."),
        ("CreateKey", {"MultiRegion": "yes"}, "STRING_VALUE can not be converted to a Boolean"),
    ],
)
def test_wrong_typed_members(server: Server, operation: str, body: dict[str, Any], message: str) -> None:
    assert_error(raw_call(server, operation, body), "SerializationException", message)


def test_body_that_is_not_json(server: Server) -> None:
    assert_error(raw_call(server, "ListKeys", b"{not json"), "SerializationException", None)
    assert_error(raw_call(server, "ListKeys", b"[1, 2]"), "SerializationException", None)
    assert_error(
        raw_call(server, "Encrypt", {"KeyId": "k", "Plaintext": "not base64!"}),
        "SerializationException",
        None,
    )
    # An empty body is an empty input.
    assert raw_call(server, "ListKeys", b"").status == 200


def test_scalars_are_read_as_strings(server: Server) -> None:
    """A number where a string is expected is read as its JSON text, as AWS does."""
    assert_error(raw_call(server, "DescribeKey", {"KeyId": 123}), "NotFoundException", "Invalid keyId '123'")


def test_service_errors_over_raw_http(server: Server) -> None:
    unknown = str(uuid.uuid4())
    resp = raw_call(server, "DescribeKey", {"KeyId": unknown})
    assert_error(
        resp,
        "NotFoundException",
        f"Key 'arn:aws:kms:us-east-1:{server.account_id}:key/{unknown}' does not exist",
    )
    resp = raw_call(server, "Decrypt", {"CiphertextBlob": "AAAA"})
    assert_error(resp, "InvalidCiphertextException", "")


# --- regions -------------------------------------------------------------------------------------------


def test_regions_are_namespaces(server: Server) -> None:
    east = server.client(region="us-east-1")
    west = server.client(region="eu-west-1")
    md = east.create_key()["KeyMetadata"]
    err = aws_error(west.describe_key, KeyId=md["KeyId"])
    assert (err.code, err.message) == (
        "NotFoundException",
        f"Key 'arn:aws:kms:eu-west-1:{server.account_id}:key/{md['KeyId']}' does not exist",
    )
    err = aws_error(west.describe_key, KeyId=md["Arn"])
    assert (err.code, err.message) == ("NotFoundException", "Invalid arn us-east-1")
    assert md["KeyId"] not in {k["KeyId"] for k in west.list_keys(Limit=1000)["Keys"]}

    west_md = west.create_key()["KeyMetadata"]
    assert west_md["Arn"] == f"arn:aws:kms:eu-west-1:{server.account_id}:key/{west_md['KeyId']}"
    alias = f"alias/regional-{uuid.uuid4().hex[:8]}"
    east.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])
    west.create_alias(AliasName=alias, TargetKeyId=west_md["KeyId"])
    assert east.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == md["KeyId"]
    assert west.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == west_md["KeyId"]
    east_blob = east.encrypt(KeyId=alias, Plaintext=b"east")["CiphertextBlob"]
    west_blob = west.encrypt(KeyId=alias, Plaintext=b"west")["CiphertextBlob"]
    assert east.decrypt(CiphertextBlob=east_blob)["KeyId"] == md["Arn"]
    assert west.decrypt(CiphertextBlob=west_blob)["KeyId"] == west_md["Arn"]
    # A ciphertext of another region's key does not decrypt here.
    err = aws_error(west.decrypt, CiphertextBlob=east_blob)
    assert err.code == "AccessDeniedException"
    assert "does not exist in this region" in err.message
