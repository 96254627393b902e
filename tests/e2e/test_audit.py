"""The audit trail in CloudTrail format: every call, accepted or refused, is recorded with the
CloudTrail fields (§7); cryptographic calls log their parameters but never a plaintext, ciphertext or
data key; CreateKey logs the key metadata; failures carry errorCode/errorMessage; and
``openkms audit list`` filters by key, event name and time and prints JSON."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import subprocess
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import OPENKMS, Server
from tests.e2e.console.http import ConsoleHttp
from tests.e2e.util import audit_list, by_request_id, raw_call, wait_for_audit

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
HUMAN_TIME = re.compile(r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d\d:\d\d [AP]M\Z")
API_CALL_FIELDS = {
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "requestID",
    "eventID",
    "readOnly",
    "resources",
    "eventType",
    "managementEvent",
    "recipientAccountId",
    "eventCategory",
}


def _rid(response: dict[str, Any]) -> str:
    return str(response["ResponseMetadata"]["RequestId"])


def _rid_of_error(fn: Any, **kwargs: Any) -> str:
    try:
        fn(**kwargs)
    except ClientError as exc:
        return str(exc.response["ResponseMetadata"]["RequestId"])
    raise AssertionError("expected an error")


def assert_api_call(record: dict[str, Any], server: Server, event_name: str, read_only: bool) -> None:
    optional = {"errorCode", "errorMessage", "additionalEventData"}
    assert API_CALL_FIELDS <= set(record) <= API_CALL_FIELDS | optional, set(record) ^ API_CALL_FIELDS
    assert re.fullmatch(r"1\.\d\d", record["eventVersion"])
    identity = record["userIdentity"]
    assert identity["type"] == "IAMUser"
    assert identity["accountId"] == server.account_id
    assert identity["accessKeyId"] == server.access_key
    assert identity["arn"] == f"arn:aws:iam::{server.account_id}:user/{identity['userName']}"
    assert identity["principalId"]
    assert ISO_Z.match(record["eventTime"])
    event_time = dt.datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs(event_time.timestamp() - time.time()) < 120
    assert record["eventSource"] == "kms.amazonaws.com"
    assert record["eventName"] == event_name
    assert record["awsRegion"] == "us-east-1"
    assert record["sourceIPAddress"] == "127.0.0.1"
    assert record["userAgent"]
    uuid.UUID(record["eventID"])
    uuid.UUID(record["requestID"])
    assert record["readOnly"] is read_only
    assert record["eventType"] == "AwsApiCall"
    assert record["managementEvent"] is True
    assert record["eventCategory"] == "Management"
    assert record["recipientAccountId"] == server.account_id


def _resources(arn: str, server: Server) -> list[dict[str, str]]:
    return [{"accountId": server.account_id, "type": "AWS::KMS::Key", "ARN": arn}]


@pytest.fixture(scope="module")
def story(server: Server) -> dict[str, Any]:
    """A key and a handful of calls on it, accepted and refused; their request ids and secrets (made
    once per backend: the tests below only read the records)."""
    kms = server.client()
    created = kms.create_key(Description="audited", Tags=[{"TagKey": "t", "TagValue": "v"}])
    key = created["KeyMetadata"]
    plaintext = b"audit-canary-" + uuid.uuid4().hex.encode()
    context = {"purpose": "audit", "Department": "10103.0"}
    enc = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext, EncryptionContext=context)
    dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=context)
    data_key = kms.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256")
    described = kms.describe_key(KeyId=key["KeyId"])
    bad_context = _rid_of_error(kms.decrypt, CiphertextBlob=enc["CiphertextBlob"])
    disabled = kms.disable_key(KeyId=key["KeyId"])
    refused = _rid_of_error(kms.encrypt, KeyId=key["KeyId"], Plaintext=plaintext)
    return {
        "key": key,
        "plaintext": plaintext,
        "context": context,
        "ciphertext": enc["CiphertextBlob"],
        "data_key": data_key,
        "rids": {
            "CreateKey": _rid(created),
            "Encrypt": _rid(enc),
            "Decrypt": _rid(dec),
            "GenerateDataKey": _rid(data_key),
            "DescribeKey": _rid(described),
            "Decrypt(refused)": bad_context,
            "DisableKey": _rid(disabled),
            "Encrypt(refused)": refused,
        },
    }


def _records(server: Server, story: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if "records" not in story:
        wanted = set(story["rids"].values())
        records = wait_for_audit(
            server, ("--key-id", story["key"]["KeyId"]), lambda r: wanted <= set(by_request_id(r))
        )
        found = by_request_id(records)
        assert wanted <= set(found), wanted - set(found)
        story["records"] = {name: found[rid] for name, rid in story["rids"].items()}
    return copy.deepcopy(story["records"])


def test_every_call_is_recorded_with_cloudtrail_fields(server: Server, story: dict[str, Any]) -> None:
    records = _records(server, story)
    key = story["key"]
    read_only = {
        "Encrypt",
        "Decrypt",
        "GenerateDataKey",
        "DescribeKey",
        "Decrypt(refused)",
        "Encrypt(refused)",
    }
    for name, record in records.items():
        assert_api_call(record, server, name.split("(")[0], name in read_only)
        assert record["resources"] == _resources(key["Arn"], server), name
    for name in ("Decrypt(refused)", "Encrypt(refused)"):
        assert "errorCode" in records[name]
    for name in ("CreateKey", "Encrypt", "Decrypt", "GenerateDataKey", "DescribeKey", "DisableKey"):
        assert "errorCode" not in records[name] and "errorMessage" not in records[name]


def test_encrypt_and_decrypt_records(server: Server, story: dict[str, Any]) -> None:
    records = _records(server, story)
    key = story["key"]
    enc = records["Encrypt"]
    assert enc["requestParameters"] == {
        "keyId": key["KeyId"],
        "encryptionContext": story["context"],
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    assert enc["responseElements"] is None
    assert enc["additionalEventData"] == {"keyMaterialId": key["CurrentKeyMaterialId"]}
    assert enc["readOnly"] is True

    dec = records["Decrypt"]
    assert dec["requestParameters"] == {
        "encryptionContext": story["context"],
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    assert dec["responseElements"] is None
    assert dec["additionalEventData"] == {"keyMaterialId": key["CurrentKeyMaterialId"]}

    gdk = records["GenerateDataKey"]
    assert gdk["requestParameters"] == {"keyId": key["Arn"], "keySpec": "AES_256"}
    assert gdk["responseElements"] is None
    assert gdk["additionalEventData"] == {"keyMaterialId": key["CurrentKeyMaterialId"]}

    described = records["DescribeKey"]
    assert described["requestParameters"] == {"keyId": key["KeyId"]}
    assert described["responseElements"] is None


def test_create_key_and_management_records(server: Server, story: dict[str, Any]) -> None:
    records = _records(server, story)
    key = story["key"]
    created = records["CreateKey"]
    assert created["readOnly"] is False
    assert created["requestParameters"]["description"] == "audited"
    assert created["requestParameters"]["tags"] == [{"tagKey": "t", "tagValue": "v"}]
    metadata = created["responseElements"]["keyMetadata"]
    assert HUMAN_TIME.match(metadata.pop("creationDate"))
    assert metadata == {
        "AWSAccountId": server.account_id,
        "keyId": key["KeyId"],
        "arn": key["Arn"],
        "enabled": True,
        "description": "audited",
        "keyUsage": "ENCRYPT_DECRYPT",
        "keyState": "Enabled",
        "origin": "AWS_KMS",
        "keyManager": "CUSTOMER",
        "customerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "keySpec": "SYMMETRIC_DEFAULT",
        "encryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "multiRegion": False,
        "currentKeyMaterialId": key["CurrentKeyMaterialId"],
    }
    disabled = records["DisableKey"]
    assert disabled["readOnly"] is False
    assert disabled["requestParameters"] == {"keyId": key["KeyId"]}
    # A management call without a response still names the key it acted on.
    assert disabled["responseElements"] == {"keyId": key["Arn"]}


def test_failures_carry_error_code_and_message(server: Server, story: dict[str, Any]) -> None:
    records = _records(server, story)
    key = story["key"]
    refused = records["Encrypt(refused)"]
    assert refused["errorCode"] == "DisabledException"
    assert refused["errorMessage"] == f"{key['Arn']} is disabled."
    assert refused["requestParameters"]["keyId"] == key["KeyId"]
    assert refused["responseElements"] is None
    bad = records["Decrypt(refused)"]
    assert (bad["errorCode"], bad["errorMessage"]) == ("InvalidCiphertextException", "")


def test_no_plaintext_or_ciphertext_in_records(server: Server, story: dict[str, Any]) -> None:
    records = _records(server, story)
    text = json.dumps(list(records.values()))
    data_key = story["data_key"]
    secrets = {
        "plaintext": story["plaintext"],
        "ciphertext": story["ciphertext"],
        "data key": data_key["Plaintext"],
        "data key ciphertext": data_key["CiphertextBlob"],
    }
    for name, secret in secrets.items():
        assert base64.b64encode(secret).decode() not in text, name
        assert secret.hex() not in text, name
    assert story["plaintext"].decode() not in text
    assert server.secret_key not in text


def test_refused_calls_are_recorded(server: Server, kms: Any) -> None:
    start = time.time() - 1
    unchecked = server.client(parameter_validation=False)
    invalid = _rid_of_error(unchecked.generate_random, NumberOfBytes=0)
    unknown = str(uuid.uuid4())
    not_found = _rid_of_error(kms.describe_key, KeyId=unknown)
    bad_signature = raw_call(
        server,
        "ListKeys",
        {},
        secret_key="x" * 40,
        mutate=lambda h: h.update({"User-Agent": "e2e-refused/1.0"}),
    )
    assert bad_signature.status == 400
    random_bytes = kms.generate_random(NumberOfBytes=64)
    wanted = {invalid, not_found, bad_signature.headers["x-amzn-requestid"], _rid(random_bytes)}
    records = wait_for_audit(server, ("--start-time", str(start)), lambda r: wanted <= set(by_request_id(r)))
    found = by_request_id(records)
    rec = found[invalid]
    assert (rec["eventName"], rec["errorCode"]) == ("GenerateRandom", "ValidationException")
    assert rec["errorMessage"].startswith("1 validation error detected: Value '0' at 'numberOfBytes'")
    rec = found[not_found]
    assert (rec["eventName"], rec["errorCode"]) == ("DescribeKey", "NotFoundException")
    assert (
        rec["errorMessage"] == f"Key 'arn:aws:kms:us-east-1:{server.account_id}:key/{unknown}' does not exist"
    )
    rec = found[bad_signature.headers["x-amzn-requestid"]]
    assert (rec["eventName"], rec["errorCode"]) == ("ListKeys", "InvalidSignatureException")
    assert rec["userAgent"] == "e2e-refused/1.0"
    assert rec["userIdentity"].get("accessKeyId") == server.access_key
    rec = found[_rid(random_bytes)]
    assert rec["eventName"] == "GenerateRandom" and "errorCode" not in rec
    assert rec["responseElements"] is None
    assert base64.b64encode(random_bytes["Plaintext"]).decode() not in json.dumps(rec)


def test_audit_list_filters(server: Server, kms: Any) -> None:
    before = time.time() - 1
    key = kms.create_key()["KeyMetadata"]
    other = kms.create_key()["KeyMetadata"]
    kms.encrypt(KeyId=key["KeyId"], Plaintext=b"one")
    kms.encrypt(KeyId=other["KeyId"], Plaintext=b"two")
    last = _rid(kms.describe_key(KeyId=key["KeyId"]))
    records = wait_for_audit(server, ("--key-id", key["KeyId"]), lambda r: last in by_request_id(r))
    after = time.time() + 1
    assert {r["eventName"] for r in records} == {"CreateKey", "Encrypt", "DescribeKey"}
    assert all(r["resources"][0]["ARN"] == key["Arn"] for r in records)
    by_arn = wait_for_audit(server, ("--key-id", key["Arn"]), lambda r: True, timeout=0)
    assert [r["eventID"] for r in by_arn] == [r["eventID"] for r in records]
    # Newest first.
    times = [r["eventTime"] for r in records]
    assert times == sorted(times, reverse=True)

    encrypts = wait_for_audit(
        server, ("--key-id", key["KeyId"], "--event-name", "Encrypt"), lambda r: True, 0
    )
    assert [r["eventName"] for r in encrypts] == ["Encrypt"]

    iso = dt.datetime.fromtimestamp(before, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for start in (str(before), iso):
        window = wait_for_audit(
            server,
            ("--key-id", key["KeyId"], "--start-time", start, "--end-time", str(after)),
            lambda r: True,
            0,
        )
        assert len(window) == len(records)
    future = dt.datetime.fromtimestamp(after + 3600, dt.UTC).isoformat()
    assert wait_for_audit(server, ("--key-id", key["KeyId"], "--start-time", future), lambda r: True, 0) == []
    assert (
        wait_for_audit(server, ("--key-id", key["KeyId"], "--end-time", str(before - 60)), lambda r: True, 0)
        == []
    )

    both = wait_for_audit(
        server, ("--event-name", "CreateKey", "--start-time", str(before)), lambda r: True, 0
    )
    # (failed CreateKey calls of other tests in the same second have no responseElements)
    created = {r["responseElements"]["keyMetadata"]["keyId"] for r in both if r.get("responseElements")}
    assert {key["KeyId"], other["KeyId"]} <= created

    # Without --json: one line per record.
    out = subprocess.run(
        [OPENKMS, "audit", "list", *server.data_args(), "--key-id", key["KeyId"]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = out.strip().splitlines()
    assert len(lines) == len(records)
    assert "CreateKey" in lines[-1] and "DescribeKey" in lines[0]


def test_refused_request_is_audited_with_its_parameters(server: Server, kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as exc:
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=400)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    request_id = exc.value.response["ResponseMetadata"]["RequestId"]
    records = wait_for_audit(
        server, ("--event-name", "ScheduleKeyDeletion"), lambda r: request_id in by_request_id(r)
    )
    record = by_request_id(records)[request_id]
    assert record["errorCode"] == "ValidationException"
    assert record["requestParameters"] == {"keyId": key["KeyId"], "pendingWindowInDays": 400}


def _refuse_audit_records(server: Server, event_name: str) -> None:
    """Make the database itself refuse audit records of one event name (a trigger), as it would refuse
    a record it cannot store."""
    if server.database_url:
        import psycopg

        with psycopg.connect(server.database_url, autocommit=True) as conn:
            conn.execute(
                "CREATE OR REPLACE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.event_name = '{event_name}' THEN RAISE EXCEPTION 'refused'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.execute(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
            )
    else:
        import sqlite3
        from pathlib import Path

        db = sqlite3.connect(Path(server.data_dir) / "openkms.db", timeout=10)
        db.execute(
            f"CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events WHEN NEW.event_name = '{event_name}' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        db.commit()
        db.close()


def test_a_record_the_database_refuses_holds_back_no_other(own_server: Server) -> None:
    server = own_server
    kms = server.client()
    _refuse_audit_records(server, "PoisonPill")
    answer = raw_call(server, "PoisonPill", {})
    assert answer.status == 404 and answer.json()["__type"] == "UnknownOperationException"
    # Calls after it: their records are written (a change waits for its record), the refused one is
    # dropped and logged by its event id alone.
    key = kms.create_key()["KeyMetadata"]
    rid = _rid(kms.describe_key(KeyId=key["KeyId"]))
    records = wait_for_audit(server, ("--key-id", key["KeyId"]), lambda r: rid in by_request_id(r))
    assert {r["eventName"] for r in records} == {"CreateKey", "DescribeKey"}
    assert wait_for_audit(server, ("--event-name", "PoisonPill"), lambda r: True, 0) == []
    assert server.log_path is not None
    deadline = time.time() + 5
    while "refused by the database; dropped" not in server.log_path.read_text() and time.time() < deadline:
        kms.list_keys()
        time.sleep(0.1)
    assert "refused by the database; dropped" in server.log_path.read_text()


def test_a_change_whose_record_cannot_be_stored_is_not_answered_as_a_success(own_server: Server) -> None:
    server = own_server
    kms = server.client()
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    _refuse_audit_records(server, "DisableKey")
    with pytest.raises(ClientError) as exc:
        kms.disable_key(KeyId=key)
    error = exc.value.response["Error"]
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert error["Code"] == "KMSInternalException"
    assert error["Message"].startswith("The request was carried out, but its audit record could not")
    # The change itself was made, and the server goes on answering and auditing.
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(KeyId=key)
    rid = _rid(kms.describe_key(KeyId=key))
    records = wait_for_audit(server, ("--key-id", key), lambda r: rid in by_request_id(r))
    assert "EnableKey" in {r["eventName"] for r in records}


# The same rule on the IAM/STS Query API and the console: a change whose record cannot be stored is
# answered with the protocol's internal error (HTTP 500), never as a success and never as a bare 500.


def test_an_iam_change_whose_record_cannot_be_stored_is_not_answered_as_a_success(own_server: Server) -> None:
    server = own_server
    iam = server.client("iam", retries={"total_max_attempts": 1})  # a retry would find the user
    _refuse_audit_records(server, "CreateUser")
    name = f"unrecorded-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClientError) as exc:
        iam.create_user(UserName=name)
    error = exc.value.response["Error"]
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert (error["Code"], error["Type"]) == ("InternalFailure", "Receiver")
    assert error["Message"].startswith("The request was carried out, but its audit record could not")
    request_id = _rid_of_error(iam.create_user, UserName=f"unrecorded-{uuid.uuid4().hex[:8]}")
    assert server.log_path is not None
    assert f"audit record of request {request_id} (CreateUser) not stored" in server.log_path.read_text()
    # The change itself was made, and the server goes on answering and auditing.
    assert iam.get_user(UserName=name)["User"]["UserName"] == name
    iam.tag_user(UserName=name, Tags=[{"Key": "recorded", "Value": "yes"}])
    records = audit_list(server, "--event-name", "TagUser")
    assert [r["requestParameters"]["userName"] for r in records] == [name]


def test_a_console_sign_in_whose_record_cannot_be_stored_signs_nobody_in(own_server: Server) -> None:
    server = own_server
    _refuse_audit_records(server, "ConsoleLogin")
    console = ConsoleHttp(server.endpoint)
    answer = console.sign_in(server.access_key, server.secret_key)
    assert answer.status == 500
    found = re.search(
        r"The sign-in could not be recorded in the audit trail, so you are not signed in\. "
        r"Request id: ([0-9a-f-]{36})",
        answer.text,
    )
    assert found is not None, answer.text
    assert "openkms_session" not in console.cookies
    assert console.get("/console/keys").status == 303  # to the sign-in page
    assert server.log_path is not None
    logged = f"audit record of request {found.group(1)} (ConsoleLogin) not stored"
    assert logged in server.log_path.read_text()
    # The server goes on answering and auditing.
    kms = server.client()
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    assert [r["eventName"] for r in audit_list(server, "--key-id", key)] == ["CreateKey"]
