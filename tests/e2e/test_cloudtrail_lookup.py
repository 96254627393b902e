"""CloudTrail's LookupEvents on the service's endpoint, with boto3's ``cloudtrail`` client and the AWS
CLI: every lookup attribute, time ranges, pagination with boto3's paginator, authorization by
``cloudtrail:LookupEvents``, one account's and one Region's trail only, the import lifecycle found by
the key's ARN, and CloudTrail's errors."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BIN, Server
from tests.e2e.importing import import_material

DAY = 86400
AUDITOR_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "cloudtrail:LookupEvents", "Resource": "*"}],
    }
)
ALLOW_ALL = {"Effect": "Allow", "Action": ["kms:*", "cloudtrail:LookupEvents"], "Resource": "*"}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def new_user(server: Server, *statements: dict[str, Any]) -> tuple[str, str, Any, Any]:
    """A user of the server's account with an access key and an inline policy of ``statements``;
    returns (name, access key id, kms client, cloudtrail client)."""
    iam = server.client("iam")
    name = "auditor-" + uuid.uuid4().hex[:10]
    iam.create_user(UserName=name)
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy(*statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    creds = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
    return name, key["AccessKeyId"], server.client(**creds), server.client("cloudtrail", **creds)


def lookup(trail: Any, key: str, value: str, **extra: Any) -> list[dict[str, Any]]:
    """Every event of the lookup, all pages."""
    pages = trail.get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": key, "AttributeValue": value}], **extra
    )
    return [event for page in pages for event in page["Events"]]


def until(fn: Any, ok: Any, within: float = 5.0) -> Any:
    """``fn()`` until ``ok(result)`` (a read-only call's record is stored within 50 ms, after its answer)."""
    deadline = time.time() + within
    while True:
        result = fn()
        if ok(result) or time.time() > deadline:
            return result
        time.sleep(0.05)


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["EventName"] for e in events]


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    e = exc.value.response["Error"]
    return e["Code"], e.get("Message", "")


def test_every_lookup_attribute(server: Server) -> None:
    name, access_key, kms, trail = new_user(server, ALLOW_ALL)
    key = kms.create_key(Description="looked up")["KeyMetadata"]
    kms.describe_key(KeyId=key["KeyId"])
    arn = key["Arn"]
    events = until(lambda: lookup(trail, "ResourceName", arn), lambda ev: len(ev) == 2)
    assert names(events) == ["DescribeKey", "CreateKey"]  # newest first
    described, created = events
    assert created["ReadOnly"] == "false" and described["ReadOnly"] == "true"
    assert created["Username"] == name and created["AccessKeyId"] == access_key
    assert created["EventSource"] == "kms.amazonaws.com"
    assert created["Resources"] == [{"ResourceType": "AWS::KMS::Key", "ResourceName": arn}]
    record = json.loads(created["CloudTrailEvent"])
    assert record["eventID"] == created["EventId"] and record["eventName"] == "CreateKey"
    assert record["userIdentity"]["userName"] == name and record["awsRegion"] == "us-east-1"
    assert created["EventTime"] <= described["EventTime"]

    by_id = lookup(trail, "EventId", created["EventId"])
    assert [e["CloudTrailEvent"] for e in by_id] == [created["CloudTrailEvent"]]
    assert created["EventId"] in {e["EventId"] for e in lookup(trail, "EventName", "CreateKey")}
    assert all(e["EventName"] == "CreateKey" for e in lookup(trail, "EventName", "CreateKey"))
    mine = lookup(trail, "Username", name)
    assert {"CreateKey", "DescribeKey", "LookupEvents"} <= set(names(mine))  # the lookups are recorded too
    assert all(e["Username"] == name for e in mine)
    by_key = lookup(trail, "AccessKeyId", access_key)
    assert {created["EventId"], described["EventId"]} <= {e["EventId"] for e in by_key}
    assert all(e["AccessKeyId"] == access_key for e in by_key)
    writes = lookup(trail, "ReadOnly", "false", StartTime=created["EventTime"])
    assert created["EventId"] in {e["EventId"] for e in writes}
    assert all(e["ReadOnly"] == "false" for e in writes)
    reads = lookup(trail, "ReadOnly", "true", StartTime=created["EventTime"])
    assert described["EventId"] in {e["EventId"] for e in reads} and all(
        e["ReadOnly"] == "true" for e in reads
    )
    typed = lookup(trail, "ResourceType", "AWS::KMS::Key", StartTime=created["EventTime"])
    assert {created["EventId"], described["EventId"]} <= {e["EventId"] for e in typed}
    kms_events = lookup(trail, "EventSource", "kms.amazonaws.com", StartTime=created["EventTime"])
    assert {created["EventId"], described["EventId"]} <= {e["EventId"] for e in kms_events}
    own = until(
        lambda: lookup(trail, "EventSource", "cloudtrail.amazonaws.com", StartTime=created["EventTime"]),
        lambda ev: any(e.get("Username") == name for e in ev),
    )
    looked = [e for e in own if e.get("Username") == name]
    assert looked and names(looked)[0] == "LookupEvents" and looked[0]["ReadOnly"] == "true"
    request = json.loads(looked[0]["CloudTrailEvent"])["requestParameters"]
    assert request["lookupAttributes"][0]["attributeKey"] in {
        "ResourceName",
        "EventId",
        "EventName",
        "Username",
        "AccessKeyId",
        "ReadOnly",
        "ResourceType",
        "EventSource",
    }


def test_time_ranges(server: Server) -> None:
    _, _, kms, trail = new_user(server, ALLOW_ALL)
    before = int(time.time()) - 1
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    after = int(time.time()) + 1
    assert names(lookup(trail, "ResourceName", arn, StartTime=before, EndTime=after)) == ["CreateKey"]
    assert lookup(trail, "ResourceName", arn, EndTime=before - 60) == []
    assert lookup(trail, "ResourceName", arn, StartTime=after + 60) == []
    assert names(lookup(trail, "ResourceName", arn, StartTime=before)) == ["CreateKey"]
    with pytest.raises(ClientError) as exc:
        trail.lookup_events(StartTime=after, EndTime=before)
    assert error(exc)[0] == "InvalidTimeRangeException"


def test_pagination_across_200_events(server: Server) -> None:
    _, _, kms, trail = new_user(server, ALLOW_ALL)
    key = kms.create_key()["KeyMetadata"]
    for _ in range(200):
        kms.describe_key(KeyId=key["KeyId"])
    attribute = [{"AttributeKey": "ResourceName", "AttributeValue": key["Arn"]}]
    paginator = trail.get_paginator("lookup_events")

    def everything() -> list[list[dict[str, Any]]]:
        return [p["Events"] for p in paginator.paginate(LookupAttributes=attribute)]

    pages = until(everything, lambda ps: sum(len(p) for p in ps) == 201)
    assert [len(p) for p in pages] == [50, 50, 50, 50, 1]
    events = [e for p in pages for e in p]
    assert len({e["EventId"] for e in events}) == 201
    assert names(events) == ["DescribeKey"] * 200 + ["CreateKey"]
    ids = [json.loads(e["CloudTrailEvent"])["eventID"] for e in events]
    assert ids == [e["EventId"] for e in events]
    small = [
        p["Events"] for p in paginator.paginate(LookupAttributes=attribute, PaginationConfig={"PageSize": 7})
    ]
    assert [e["EventId"] for p in small for e in p] == [e["EventId"] for e in events]
    first = trail.lookup_events(LookupAttributes=attribute, MaxResults=10)
    # A token is bound to its query and cannot be forged.
    with pytest.raises(ClientError) as exc:
        trail.lookup_events(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DescribeKey"}],
            NextToken=first["NextToken"],
        )
    assert error(exc)[0] == "InvalidNextTokenException"
    forged = first["NextToken"][:-4] + ("AAAA" if not first["NextToken"].endswith("AAAA") else "BBBB")
    for token in (forged, "not-a-token"):
        with pytest.raises(ClientError) as exc:
            trail.lookup_events(LookupAttributes=attribute, NextToken=token)
        assert error(exc)[0] == "InvalidNextTokenException"
    second = trail.lookup_events(LookupAttributes=attribute, MaxResults=10, NextToken=first["NextToken"])
    assert [e["EventId"] for e in first["Events"] + second["Events"]] == [e["EventId"] for e in events[:20]]


def test_a_user_without_the_permission_is_refused(server: Server) -> None:
    name, _, _, trail = new_user(server, {"Effect": "Allow", "Action": "kms:*", "Resource": "*"})
    user_arn = f"arn:aws:iam::{server.account_id}:user/{name}"
    with pytest.raises(ClientError) as exc:
        trail.lookup_events()
    assert error(exc) == (
        "AccessDeniedException",
        f"User: {user_arn} is not authorized to perform: cloudtrail:LookupEvents because no "
        "identity-based policy allows the cloudtrail:LookupEvents action",
    )
    _, _, _, denied = new_user(
        server, ALLOW_ALL, {"Effect": "Deny", "Action": "cloudtrail:*", "Resource": "*"}
    )
    with pytest.raises(ClientError) as exc:
        denied.lookup_events()
    assert error(exc)[0] == "AccessDeniedException"
    assert "with an explicit deny in an identity-based policy" in error(exc)[1]


def test_another_accounts_and_regions_events_are_invisible(server: Server) -> None:
    other = server.new_account()
    creds = {"access_key": other["AccessKeyId"], "secret_key": other["SecretAccessKey"]}
    theirs = server.client(**creds).create_key()["KeyMetadata"]["Arn"]
    their_trail = server.client("cloudtrail", **creds)
    assert names(until(lambda: lookup(their_trail, "ResourceName", theirs), bool)) == ["CreateKey"]
    ours = server.client("cloudtrail")
    assert lookup(ours, "ResourceName", theirs) == []
    assert all(
        json.loads(e["CloudTrailEvent"])["recipientAccountId"] == server.account_id
        for e in ours.lookup_events(MaxResults=50)["Events"]
    )
    # One Region's trail: the key's events are not in another Region's.
    west = server.client("cloudtrail", region="us-west-2", **creds)
    assert lookup(west, "ResourceName", theirs) == []
    west_key = server.client(region="us-west-2", **creds).create_key()["KeyMetadata"]["Arn"]
    assert names(until(lambda: lookup(west, "ResourceName", west_key), bool)) == ["CreateKey"]
    assert lookup(their_trail, "ResourceName", west_key) == []


def test_errors(server: Server) -> None:
    trail = server.client("cloudtrail")
    two = [
        {"AttributeKey": "EventName", "AttributeValue": "CreateKey"},
        {"AttributeKey": "ReadOnly", "AttributeValue": "true"},
    ]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"LookupAttributes": two}, "InvalidLookupAttributesException"),
        (
            {"LookupAttributes": [{"AttributeKey": "KeyId", "AttributeValue": "x"}]},
            "InvalidLookupAttributesException",
        ),
        (
            {"LookupAttributes": [{"AttributeKey": "ReadOnly", "AttributeValue": "maybe"}]},
            "InvalidLookupAttributesException",
        ),
        ({"MaxResults": 51}, "InvalidMaxResultsException"),
        ({"EventCategory": "data"}, "InvalidEventCategoryException"),
        ({"NextToken": "x"}, "InvalidNextTokenException"),
    ]
    for params, code in cases:
        with pytest.raises(ClientError) as exc:
            trail.lookup_events(**params)
        assert error(exc)[0] == code, params
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as exc:
        trail.lookup_events(MaxResults=51)
    assert error(exc)[1] == "A max results value of 51 is invalid. Specify max results between 1 and 50."
    assert trail.lookup_events(EventCategory="insight")["Events"] == []
    with pytest.raises(ClientError) as exc:
        trail.describe_trails()
    assert error(exc) == ("UnsupportedOperationException", "DescribeTrails is not supported by this service.")


@pytest.fixture
def clock_file(tmp_path: Path) -> Path:
    path = tmp_path / "clock-offset"
    path.write_text("0")
    return path


def test_the_import_lifecycle_found_by_the_keys_arn_with_boto3_and_the_cli(
    own_server: Server, clock_file: Path
) -> None:
    own_server.env["OPENKMS_CLOCK_OFFSET_FILE"] = str(clock_file)
    own_server.restart()
    kms = own_server.client()
    key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    material = os.urandom(32)
    first = import_material(kms, key["KeyId"], material)
    kms.delete_imported_key_material(KeyId=key["KeyId"])
    import_material(
        kms,
        key["KeyId"],
        material,
        KeyMaterialId=first["KeyMaterialId"],
        ExpirationModel="KEY_MATERIAL_EXPIRES",
        ValidTo=int(time.time()) + DAY,
    )
    clock_file.write_text(str(2 * DAY))  # the service's clock passes ValidTo: KMS deletes the material
    trail = own_server.client("cloudtrail")
    events = until(
        lambda: lookup(trail, "ResourceName", key["Arn"]),
        lambda ev: "DeleteExpiredKeyMaterial" in names(ev),
        within=15,
    )
    assert names(events) == [
        "DeleteExpiredKeyMaterial",
        "ImportKeyMaterial",
        "GetParametersForImport",
        "DeleteImportedKeyMaterial",
        "ImportKeyMaterial",
        "GetParametersForImport",
        "CreateKey",
    ]
    expired = json.loads(events[0]["CloudTrailEvent"])
    assert expired["eventType"] == "AwsServiceEvent" and "Username" not in events[0]
    imported = json.loads(events[1]["CloudTrailEvent"])
    assert imported["requestParameters"]["validTo"] and imported["userIdentity"]["userName"] == "admin"
    # The auditor: an IAM user allowed cloudtrail:LookupEvents only, made with openkms admin, and the
    # commands of the README's "Audit" section with the AWS CLI.
    account = own_server.account_id
    own_server.admin("create-user", "--account-id", account, "--user-name", "auditor")
    own_server.admin(
        "put-user-policy", "--account-id", account, "--user-name", "auditor",
        "--policy-name", "lookup-events", "--policy-document", AUDITOR_POLICY,
    )  # fmt: skip
    key_of = own_server.admin("create-access-key", "--account-id", account, "--user-name", "auditor")
    env = {
        **own_server.cli_env(),
        "AWS_ACCESS_KEY_ID": key_of["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key_of["SecretAccessKey"],
    }

    def aws(*args: str) -> list[dict[str, Any]]:
        out = subprocess.run(
            [str(BIN / "aws"), "cloudtrail", "lookup-events", "--endpoint-url", own_server.endpoint, *args],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        events: list[dict[str, Any]] = json.loads(out.stdout)["Events"]
        return events

    cli = aws("--lookup-attributes", f"AttributeKey=ResourceName,AttributeValue={key['Arn']}")
    assert [e["EventId"] for e in cli] == [e["EventId"] for e in events]
    hour_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    expiries = aws(
        "--lookup-attributes", "AttributeKey=EventName,AttributeValue=DeleteExpiredKeyMaterial",
        "--start-time", hour_ago,
    )  # fmt: skip
    assert [e["EventId"] for e in expiries] == [events[0]["EventId"]]
    by_admin = aws("--lookup-attributes", "AttributeKey=Username,AttributeValue=admin", "--max-items", "3")
    assert len(by_admin) == 3 and all(e["Username"] == "admin" for e in by_admin)
    looked = aws("--lookup-attributes", "AttributeKey=Username,AttributeValue=auditor")
    assert looked and {e["EventName"] for e in looked} == {"LookupEvents"}  # who looked is on record
    denied = subprocess.run(
        [str(BIN / "aws"), "kms", "list-keys", "--endpoint-url", own_server.endpoint],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert denied.returncode != 0 and "AccessDeniedException" in denied.stderr  # it may only look
